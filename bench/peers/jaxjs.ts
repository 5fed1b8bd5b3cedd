// jax-js attention peer: nn.dotProductAttention under jit on the wasm device.
//
// Inputs are [B, N, H, E] (jax's BLNH layout), causal via { isCausal: true }.
// Forward + backward: jit(grad(q, k, v ↦ Σ dotProductAttention(q, k, v) ⊙ g,
// argnums [0, 1, 2])), i.e. the forward pass plus dQ, dK, dV.
// Each rep ends by reading the results back (Array.data()), so all queued
// kernels have finished.
//
// Node 20 specifics:
//  - Iterator helpers (Iterator.prototype.map, …) arrive in Node 22; the
//    core-js polyfill is loaded first (in setup(), not at module load).
//  - jax-js parallelises its wasm kernels over Web Workers sharing one
//    WebAssembly.Memory, but only if globalThis.Worker exists (Node 20 has
//    none) and sizes the pool from navigator.hardwareConcurrency (Node 20 has
//    no navigator: it would fall back to 4). Below, a minimal Web-Worker
//    shim over node:worker_threads (blob: URL source, onmessage/onerror,
//    postMessage) is installed, with navigator.hardwareConcurrency =
//    os.availableParallelism(). Set ATTEND_BENCH_JAX_WORKERS=0 to skip the
//    shim (kernels then run on the main thread), or to another count.

import os from "node:os";
import { resolveObjectURL } from "node:buffer";
import { Worker as NodeWorker } from "node:worker_threads";
import type * as JAX from "@jax-js/jax";
import {
  CHECK_N,
  type CheckResult,
  type Inputs,
  type Pass,
  type PeerCase,
  type PeerModule,
  type PeerResult,
  type TimingOptions,
  GiB,
  bhneToBnhe,
  bnheToBhne,
  compareWithReference,
  makeInputs,
  scoreBytes,
  timePrepared,
  B,
  H,
  E,
} from "./common.js";

export const name = "jax-js";
export const forms = ["dotProductAttention"] as const;
export const passes: readonly Pass[] = ["fwd", "fwd+bwd"];
/** jax-js allocates from one wasm32 WebAssembly.Memory (maximum 65536 pages = 4 GiB). */
export const heapLimitBytes = 4 * GiB;

// ---------------------------------------------------------------------------
// Web Worker shim

const WORKER_PRELUDE = `const { parentPort } = require("node:worker_threads");
globalThis.self = globalThis;
globalThis.postMessage = (m) => parentPort.postMessage(m);
parentPort.on("message", (data) => { if (typeof self.onmessage === "function") self.onmessage({ data }); });
`;

const shimWorkers: NodeWorker[] = [];

/** Just enough of the Web Worker API for jax-js's wasm worker pool. */
class WebWorkerShim {
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: { message: string }) => void) | null = null;
  #worker: NodeWorker | null = null;
  #queue: unknown[] = [];

  constructor(url: string | URL) {
    const blob = resolveObjectURL(String(url));
    if (!blob) throw new Error(`Worker shim: only blob: URLs are supported, got ${String(url)}`);
    blob.text().then(
      (src) => {
        const w = new NodeWorker(WORKER_PRELUDE + src, { eval: true });
        w.on("message", (data) => this.onmessage?.({ data }));
        w.on("error", (e) => this.onerror?.({ message: e.message }));
        shimWorkers.push(w);
        this.#worker = w;
        for (const m of this.#queue) w.postMessage(m);
        this.#queue = [];
      },
      (e) => this.onerror?.({ message: String(e) }),
    );
  }

  postMessage(m: unknown): void {
    if (this.#worker) this.#worker.postMessage(m);
    else this.#queue.push(m);
  }

  terminate(): void {
    void this.#worker?.terminate();
  }
}

/** Ends the shim's worker threads (jax-js cannot run wasm kernels afterwards). */
export async function shutdown(): Promise<void> {
  await Promise.all(shimWorkers.splice(0).map((w) => w.terminate()));
}

// ---------------------------------------------------------------------------

let jax: typeof JAX | undefined;
let description = "";

export async function setup(): Promise<string> {
  if (jax) return description;
  const g = globalThis as Record<string, unknown>;
  const env = process.env.ATTEND_BENCH_JAX_WORKERS;
  const want = env !== undefined && env !== "" ? Number(env) : os.availableParallelism();
  let how: string;
  if (typeof g.Worker === "undefined" && want > 0) {
    g.Worker = WebWorkerShim;
    if (typeof g.navigator === "undefined") g.navigator = { hardwareConcurrency: want };
    how = "worker_threads shim";
  } else if (want > 0) {
    how = "native Worker";
  } else {
    how = "no workers requested";
  }
  await import("core-js/actual/iterator/index.js");
  const lib = await import("@jax-js/jax");
  const devices = await lib.init("wasm");
  if (!devices.includes("wasm")) throw new Error(`jax-js: wasm device unavailable (got ${devices.join(", ")})`);
  lib.defaultDevice("wasm");
  // Trigger the (lazily created) worker pool so the count below is real.
  await lib.numpy.ones([1 << 16]).mul(2).data();
  jax = lib;
  const n = g.Worker === WebWorkerShim ? shimWorkers.length : NaN;
  description = `jax-js wasm device, ${Number.isNaN(n) ? how : `${n} workers (${how})`}`;
  return description;
}

function lib(): typeof JAX {
  if (!jax) throw new Error("jax-js: call setup() first");
  return jax;
}

interface Prepared {
  /** One rep; resolves to host copies of [o] or [dq, dk, dv] in [B, N, H, E]. */
  run(): Promise<Float32Array[]>;
  dispose(): void;
}

function prepare(causal: boolean, pass: Pass, inp: Inputs): Prepared {
  const { numpy: np, nn, jit, grad } = lib();
  const { N } = inp;
  const arr = (x: Float32Array) => np.array(bhneToBnhe(x, N)).reshape([B, N, H, E]);
  const q = arr(inp.q);
  const k = arr(inp.k);
  const v = arr(inp.v);
  const attn = (a: JAX.Array, b: JAX.Array, c: JAX.Array) => nn.dotProductAttention(a, b, c, { isCausal: causal });
  if (pass === "fwd") {
    const f = jit(attn);
    return {
      async run() {
        const o = f(q.ref, k.ref, v.ref);
        return [(await o.data()) as Float32Array];
      },
      dispose() {
        f.dispose();
        q.dispose();
        k.dispose();
        v.dispose();
      },
    };
  }
  const gUp = arr(inp.g);
  const loss = (a: JAX.Array, b: JAX.Array, c: JAX.Array, gg: JAX.Array) => attn(a, b, c).mul(gg).sum();
  const f = jit(grad(loss, { argnums: [0, 1, 2] }));
  return {
    async run() {
      const [dq, dk, dv] = f(q.ref, k.ref, v.ref, gUp.ref);
      return (await Promise.all([dq.data(), dk.data(), dv.data()])) as Float32Array[];
    },
    dispose() {
      f.dispose();
      q.dispose();
      k.dispose();
      v.dispose();
      gUp.dispose();
    },
  };
}

function assertForm(form: string): void {
  if (!(forms as readonly string[]).includes(form)) throw new Error(`jax-js: unknown form ${form}`);
}

export async function check(c: Omit<PeerCase, "N">): Promise<CheckResult> {
  await setup();
  assertForm(c.form);
  const inp = makeInputs(CHECK_N);
  const fwd = prepare(c.causal, "fwd", inp);
  const bwd = c.pass === "fwd+bwd" ? prepare(c.causal, "fwd+bwd", inp) : null;
  try {
    const back = (x: Float32Array | undefined) => (x ? bnheToBhne(x, CHECK_N) : undefined);
    const [o] = await fwd.run();
    const grads = await bwd?.run();
    return compareWithReference(inp, c.causal, c.pass, { o: back(o)!, dq: back(grads?.[0]), dk: back(grads?.[1]), dv: back(grads?.[2]) });
  } finally {
    fwd.dispose();
    bwd?.dispose();
  }
}

export async function time(c: PeerCase, opts: TimingOptions = {}): Promise<PeerResult> {
  await setup();
  assertForm(c.form);
  const p = prepare(c.causal, c.pass, makeInputs(c.N));
  return timePrepared(c, { run: () => p.run(), release: () => p.dispose() }, opts);
}

/**
 * Calibrated on peak RSS at N = 4096, in [B, H, N, N] float32 tensors (0.5 GiB
 * there): fwd 3 non-causal / 4 causal, fwd+bwd 6.5 / 7.5 (3.9 GiB RSS: the
 * causal backward at N = 4096 nearly fills the 4 GiB wasm32 heap).
 */
export function estimateBytes(c: PeerCase): number {
  const live = c.pass === "fwd" ? (c.causal ? 4 : 3) : c.causal ? 7.5 : 6.5;
  return scoreBytes(c.N, live) + 8 * B * H * c.N * E * 4;
}

export const peer: PeerModule = { name, forms, passes, heapLimitBytes, setup, estimateBytes, check, time };
