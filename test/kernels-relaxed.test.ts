/**
 * The "relaxed" wasm variant (relaxed SIMD: fused multiply-add in the product kernels) against the
 * reference, and 2 threads bitwise equal to 1. Node 20 has relaxed SIMD only behind
 * --experimental-wasm-relaxed-simd: there this file reruns itself in a child process with the flag.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { AttentionParams, CausalKind, MatmulParams } from "../src/kernels/backend.js";
import {
  refBackend, relaxedSimdSupported, setNumThreads, setWasmVariant, wasmBackend, wasmTuning, wasmVariant,
} from "../src/kernels/index.js";
import { simdSupported } from "../src/kernels/wasm/runtime.js";
import { uniformArray } from "./kernel-inputs.js";

const CHILD = process.env.ATTEND_RELAXED_CHILD === "1";

const rand = uniformArray;

function close(a: Float32Array, b: Float32Array, atol: number, rtol: number, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    if (!(Math.abs(a[i] - b[i]) <= atol + rtol * Math.abs(b[i]))) assert.fail(`${what}: ${a[i]} vs ${b[i]} at ${i}`);
  }
}

function same(a: Float32Array, b: Float32Array, what: string): void {
  assert.ok(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)), what);
}

function attention(p: AttentionParams, seed: number, be: typeof wasmBackend): Float32Array[] {
  const q = rand(p.B * p.H * p.L * p.E, seed), k = rand(p.B * p.Hkv * p.S * p.E, seed + 1);
  const v = rand(p.B * p.Hkv * p.S * p.Ev, seed + 2), dout = rand(p.B * p.H * p.L * p.Ev, seed + 3);
  const out = new Float32Array(p.B * p.H * p.L * p.Ev), lse = new Float32Array(p.B * p.H * p.L);
  be.attentionForward(p, q, k, v, out, lse);
  const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
  be.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
  return [out, lse, dq, dk, dv];
}

const wanted = simdSupported();

test("relaxed-SIMD variant matches the reference; 2 threads bitwise = 1", { skip: !wanted && "no WebAssembly SIMD" }, () => {
  if (!relaxedSimdSupported()) {
    if (CHILD) assert.fail("relaxed SIMD unavailable even with the flag");
    const self = fileURLToPath(import.meta.url);
    const env: NodeJS.ProcessEnv = { ...process.env, ATTEND_RELAXED_CHILD: "1" };
    delete env.NODE_TEST_CONTEXT; // else node:test in the child thinks it is nested and runs nothing
    const r = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", "--import", "tsx", self], { encoding: "utf8", env });
    if (r.status !== 0 && /bad option|not allowed|unknown/i.test(r.stderr)) return; // an engine without the flag
    assert.equal(r.status, 0, `child run failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /# pass 1/, `child ran no test:\n${r.stdout}`);
    return;
  }
  setWasmVariant("relaxed");
  assert.equal(wasmVariant(), "relaxed");
  wasmTuning.minParallelFlops = 0;
  wasmTuning.minParallelAttentionFlops = 0;
  const causals: CausalKind[] = ["none", "top-left", "bottom-right"];
  let seed = 1;
  for (const [L, S, E, Ev, H, Hkv] of [[33, 257, 64, 64, 4, 2], [100, 70, 24, 80, 2, 1], [257, 130, 80, 24, 2, 2]]) {
    for (const causal of causals) {
      const p: AttentionParams = {
        B: 1, H, Hkv, L, S, E, Ev, scale: 1 / Math.sqrt(E), causal, mask: null, dropoutP: seed % 2 ? 0.2 : 0, dropoutSeed: seed,
      };
      const want = attention(p, seed, refBackend);
      setNumThreads(1);
      const one = attention(p, seed, wasmBackend);
      setNumThreads(2);
      const two = attention(p, seed, wasmBackend);
      for (let i = 0; i < 5; i++) {
        close(one[i], want[i], 3e-5, 3e-4, `L${L} S${S} ${causal} output ${i}`);
        same(two[i], one[i], `L${L} S${S} ${causal} output ${i}: 2 threads vs 1`);
      }
      seed++;
    }
  }
  for (const [m, n, k, tA, tB] of [[130, 70, 300, false, true], [64, 257, 33, true, false]] as const) {
    const a = rand(m * k, 9), b = rand(n * k, 10);
    const p: MatmulParams = { batch: 1, m, n, k, aBatchStride: 0, bBatchStride: 0, transA: tA, transB: tB, accumulate: false };
    const want = new Float32Array(m * n), got = new Float32Array(m * n), got2 = new Float32Array(m * n);
    refBackend.matmul(want, a, b, p);
    setNumThreads(1);
    wasmBackend.matmul(got, a, b, p);
    setNumThreads(2);
    wasmBackend.matmul(got2, a, b, p);
    close(got, want, 2e-5 * Math.sqrt(k), 1e-5, `matmul ${m}x${n}x${k}`);
    same(got2, got, "matmul 2 threads vs 1");
  }
});
