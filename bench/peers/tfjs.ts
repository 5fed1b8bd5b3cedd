// TensorFlow.js (tfjs-core + tfjs-backend-wasm) attention peer.
//
// Forms:
//   batched      — one tf.matMul on [B*H, N, E] (BatchMatMul kernel) per product.
//   per-head-2d  — one 2-D tf.matMul per head on [N, E] (the wasm backend's fast path).
// Both: S = (Q/√E) Kᵀ, (+ causal mask of 0 / −∞), softmax, P V.
// Forward + backward uses tf.grads with the upstream gradient g.
//
// Threads: tfjs-backend-wasm refuses multithreading under Node
// (WASM_HAS_MULTITHREAD_SUPPORT is hard-wired to false when IS_NODE, tfjs
// issue #3830; forcing the flag fails because its pthread workers are loaded
// from blob: URLs, which worker_threads cannot load). setThreadsCount(2) is
// still called; setup() reports what the backend actually uses (1).
//
// Gradients: tfjs-core's Node bundle (dist/tf-core.node.js) registers no
// gradients; they live only in the unbundled ESM dist/register_all_gradients.js,
// whose relative imports omit ".js" (and "./gradients" is both a file and a
// folder). A small resolve hook (module.register) adds the extension for
// files under tfjs-core/dist so Node can load it. That ESM copy shares the
// engine and registries of the CJS copy through globalThis (tfjs's design).

import os from "node:os";
import path from "node:path";
import { createRequire, register } from "node:module";
import type * as TF from "@tensorflow/tfjs-core";
import {
  B,
  CHECK_N,
  E,
  H,
  type CheckResult,
  type Inputs,
  type Pass,
  type PeerCase,
  type PeerModule,
  type PeerResult,
  type TimingOptions,
  GiB,
  compareWithReference,
  makeInputs,
  scoreBytes,
  timePrepared,
} from "./common.js";

export const name = "tfjs-wasm";
export const forms = ["batched", "per-head-2d"] as const;
export type TfjsForm = (typeof forms)[number];
export const passes: readonly Pass[] = ["fwd", "fwd+bwd"];
/** tfjs-backend-wasm is a wasm32 Emscripten module: its heap stops at 4 GiB. */
export const heapLimitBytes = 4 * GiB;

const RESOLVE_HOOK = `
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  if (parent && parent.includes("/@tensorflow/tfjs-core/dist/") && /^\\.\\.?\\//.test(specifier) && !/\\.[cm]?js$/.test(specifier)) {
    const url = new URL(specifier, parent);
    const file = fileURLToPath(url);
    if (existsSync(file + ".js")) return next(url.href + ".js", context);
    if (existsSync(file + "/index.js")) return next(url.href + "/index.js", context);
  }
  return next(specifier, context);
}`;

let tf: typeof TF | undefined;
let description = "";

export async function setup(): Promise<string> {
  if (tf) return description;
  register("data:text/javascript," + encodeURIComponent(RESOLVE_HOOK));
  const core = await import("@tensorflow/tfjs-core");
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  const require = createRequire(import.meta.url);
  const wasmDir = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"));
  wasm.setWasmPaths(wasmDir + path.sep);
  const requested = os.availableParallelism();
  wasm.setThreadsCount(requested);
  await import("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  if (!(await core.setBackend("wasm"))) throw new Error("tfjs: wasm backend failed to initialise");
  await core.ready();
  const simd = await core.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  const mt = await core.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
  tf = core;
  description =
    `tfjs-core ${core.version_core}, backend ${core.getBackend()}, simd=${simd}, ` +
    `threads=${wasm.getThreadsCount()} (asked ${requested}; multithread support in Node: ${mt})`;
  return description;
}

function lib(): typeof TF {
  if (!tf) throw new Error("tfjs: call setup() first");
  return tf;
}

/** [N, N] additive mask: 0 on and below the diagonal, −∞ above. */
function causalMask(N: number): TF.Tensor2D {
  const m = new Float32Array(N * N);
  for (let i = 0; i < N; i++) m.fill(-Infinity, i * N + i + 1, (i + 1) * N);
  return lib().tensor2d(m, [N, N]);
}

/**
 * softmax((q·scale) kᵀ + mask) v for rank-2 ([N, E]) or rank-3 ([BH, N, E]) inputs.
 * The scale is applied to q (N·E multiplies instead of N²). For 2-D inputs kᵀ is
 * formed with tf.transpose: the wasm backend's matMul(q, k, false, true) is ~10×
 * slower than matMul(q, transpose(k)) for 2-D operands; for 3-D operands the
 * transposeB flag is the faster one (measured at N = 1024). With `eager`,
 * intermediates are disposed as soon as they are used (forward only: under
 * tf.grads the tape owns them).
 */
function attention(q: TF.Tensor, k: TF.Tensor, v: TF.Tensor, scale: TF.Scalar, mask: TF.Tensor | null, eager: boolean): TF.Tensor {
  const t = lib();
  const drop = (x: TF.Tensor) => {
    if (eager) x.dispose();
  };
  const qs = t.mul(q, scale);
  let s: TF.Tensor;
  if (q.rank === 2) {
    const kt = t.transpose(k);
    s = t.matMul(qs as TF.Tensor2D, kt as TF.Tensor2D);
    drop(kt);
  } else {
    s = t.matMul(qs as TF.Tensor3D, k as TF.Tensor3D, false, true);
  }
  drop(qs);
  if (mask) {
    const y = t.add(s, mask);
    drop(s);
    s = y;
  }
  const p = t.softmax(s, -1);
  drop(s);
  const o = t.matMul(p as TF.Tensor3D, v as TF.Tensor3D);
  drop(p);
  return o;
}

interface Prepared {
  /** Runs one rep and returns host copies of [o] or [dq, dk, dv] (BHNE). */
  run(): Float32Array[];
  dispose(): void;
}

function prepare(form: TfjsForm, causal: boolean, pass: Pass, inp: Inputs): Prepared {
  const t = lib();
  const { N } = inp;
  const scale = t.scalar(1 / Math.sqrt(E));
  const mask = causal ? causalMask(N) : null;
  const owned: TF.Tensor[] = [scale];
  if (mask) owned.push(mask);

  if (form === "batched") {
    const shape: [number, number, number] = [B * H, N, E];
    const [q, k, v, g] = [inp.q, inp.k, inp.v, inp.g].map((a) => t.tensor3d(a, shape));
    owned.push(q!, k!, v!, g!);
    if (pass === "fwd") {
      return {
        run() {
          const o = attention(q!, k!, v!, scale, mask, true);
          const out = o.dataSync() as Float32Array;
          o.dispose();
          return [out];
        },
        dispose: () => owned.forEach((x) => x.dispose()),
      };
    }
    const gradFn = t.grads((a: TF.Tensor, b: TF.Tensor, c: TF.Tensor) => attention(a, b, c, scale, mask, false));
    return {
      run() {
        const grads = gradFn([q!, k!, v!], g!);
        const out = grads.map((x) => x.dataSync() as Float32Array);
        grads.forEach((x) => x.dispose());
        return out;
      },
      dispose: () => owned.forEach((x) => x.dispose()),
    };
  }

  // per-head-2d: inputs pre-split into H tensors of [N, E] outside the timed region.
  const split = (a: Float32Array) =>
    Array.from({ length: B * H }, (_, h) => t.tensor2d(a.subarray(h * N * E, (h + 1) * N * E), [N, E]));
  const qs = split(inp.q);
  const ks = split(inp.k);
  const vs = split(inp.v);
  const gs = split(inp.g);
  owned.push(...qs, ...ks, ...vs, ...gs);
  const headCopy = (dst: Float32Array, h: number, x: TF.Tensor) => dst.set(x.dataSync() as Float32Array, h * N * E);
  if (pass === "fwd") {
    return {
      run() {
        const out = new Float32Array(B * H * N * E);
        for (let h = 0; h < B * H; h++) {
          const o = attention(qs[h]!, ks[h]!, vs[h]!, scale, mask, true);
          headCopy(out, h, o);
          o.dispose();
        }
        return [out];
      },
      dispose: () => owned.forEach((x) => x.dispose()),
    };
  }
  const gradFn = t.grads((a: TF.Tensor, b: TF.Tensor, c: TF.Tensor) => attention(a, b, c, scale, mask, false));
  return {
    run() {
      const out = [0, 1, 2].map(() => new Float32Array(B * H * N * E));
      for (let h = 0; h < B * H; h++) {
        const grads = gradFn([qs[h]!, ks[h]!, vs[h]!], gs[h]!);
        grads.forEach((x, i) => headCopy(out[i]!, h, x));
        grads.forEach((x) => x.dispose());
      }
      return out;
    },
    dispose: () => owned.forEach((x) => x.dispose()),
  };
}

function asForm(form: string): TfjsForm {
  if (!(forms as readonly string[]).includes(form)) throw new Error(`tfjs: unknown form ${form}`);
  return form as TfjsForm;
}

export async function check(c: Omit<PeerCase, "N">): Promise<CheckResult> {
  await setup();
  const form = asForm(c.form);
  const inp = makeInputs(CHECK_N);
  const fwd = prepare(form, c.causal, "fwd", inp);
  const bwd = c.pass === "fwd+bwd" ? prepare(form, c.causal, "fwd+bwd", inp) : null;
  try {
    const [o] = fwd.run();
    const grads = bwd?.run();
    return compareWithReference(inp, c.causal, c.pass, { o: o!, dq: grads?.[0], dk: grads?.[1], dv: grads?.[2] });
  } finally {
    fwd.dispose();
    bwd?.dispose();
  }
}

export async function time(c: PeerCase, opts: TimingOptions = {}): Promise<PeerResult> {
  await setup();
  const p = prepare(asForm(c.form), c.causal, c.pass, makeInputs(c.N));
  return timePrepared(c, { run: () => p.run(), release: () => p.dispose() }, opts);
}

/**
 * wasm-heap bytes, in score matrices ([N, N] per head, all heads for batched;
 * one head at a time for per-head-2d): 2.5 forward (eager disposal), 8 with the
 * tape and backward (calibrated on peak RSS: batched fwd N = 4096 1.25 GiB,
 * batched fwd+bwd N = 2048 1.15 GiB), plus the mask and inputs.
 */
export function estimateBytes(c: PeerCase): number {
  const live = c.pass === "fwd" ? 2.5 : 8;
  const scores = scoreBytes(c.N, live) / (c.form === "per-head-2d" ? B * H : 1);
  const mask = c.causal ? c.N * c.N * 4 : 0;
  return scores + mask + 8 * B * H * c.N * E * 4;
}

export const peer: PeerModule = { name, forms, passes, heapLimitBytes, setup, estimateBytes, check, time };

/**
 * A 2-D tf.matMul of [m, k] × [k, n] float32 (the wasm backend's XNNPACK fully-connected path: the
 * ceiling attend's own matmul is measured against, one thread as tfjs-wasm runs in Node). run()
 * returns the product read back to the host (dataSync), as every tfjs row here does.
 */
export async function prepareMatmul2d(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<{ run(): Float32Array; dispose(): void }> {
  await setup();
  const t = lib();
  if (a.length !== m * k || b.length !== k * n) throw new Error(`tfjs prepareMatmul2d: expected ${m}×${k} and ${k}×${n} values, got ${a.length} and ${b.length}`);
  const ta = t.tensor2d(a, [m, k]), tb = t.tensor2d(b, [k, n]);
  return {
    run() {
      const c = t.matMul(ta, tb);
      const out = c.dataSync() as Float32Array;
      c.dispose();
      return out;
    },
    dispose() {
      ta.dispose();
      tb.dispose();
    },
  };
}
