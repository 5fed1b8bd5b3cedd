/**
 * Which wasm attention jobs enlist the worker threads (wasmTuning.minParallelAttentionFlops, and
 * minHotAttentionFlops after a worker's recent job): the thread count each job asks the runtime for,
 * against flops worked out by hand. No timing: the jobs' requested thread counts are read from a spy
 * on WasmRuntime.runJob, the time since the workers' last job is stubbed, and the results are
 * compared bitwise with one thread.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AttentionParams } from "../src/kernels/backend.js";
import { setNumThreads, wasmAvailable, wasmBackend, wasmTuning } from "../src/kernels/index.js";
import { getRuntime, resetRuntime } from "../src/kernels/wasm/runtime.js";
import { rng } from "./kernel-inputs.js";

function randF32(n: number, r: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = r() * 2 - 1;
  return x;
}

/** Runs forward then backward; returns the outputs and the thread count each job asked for, in order. */
function run(p: AttentionParams, seed: number): { results: Float32Array[]; asked: number[] } {
  const r = rng(seed);
  const { B, H, Hkv, L, S, E, Ev } = p;
  const q = randF32(B * H * L * E, r), k = randF32(B * Hkv * S * E, r), v = randF32(B * Hkv * S * Ev, r);
  const dout = randF32(B * H * L * Ev, r);
  const out = new Float32Array(B * H * L * Ev), lse = new Float32Array(B * H * L);
  const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
  const rt = getRuntime()!;
  const asked: number[] = [];
  const runJob = rt.runJob.bind(rt);
  rt.runJob = (threads: number, ntasks: number): void => {
    asked.push(threads);
    runJob(threads, ntasks);
  };
  try {
    wasmBackend.attentionForward(p, q, k, v, out, lse);
    wasmBackend.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
  } finally {
    rt.runJob = runJob;
  }
  return { results: [out, lse, dq, dk, dv], asked };
}

function assertBitwise(a: Float32Array, b: Float32Array, what: string): void {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: differs at ${i}: ${a[i]} vs ${b[i]}`);
}

describe("wasm attention: when workers are woken", { skip: !wasmAvailable() && "WebAssembly SIMD unavailable" }, () => {
  // B = 1, H = Hkv = 2, L = S = 64, E = Ev = 8: 4096 (query, key) pairs per head, all visible.
  //   forward  2 (E + Ev) = 32 flops a pair:    2 heads x 4096 x 32 = 262144
  //   backward 2 (3 E + 2 Ev) = 80 flops a pair: 2 heads x 4096 x 80 = 655360
  // Causal (top-left): row l sees l + 1 keys, 64 * 65 / 2 = 2080 pairs a head:
  //   forward 2 x 2080 x 32 = 133120, backward 2 x 2080 x 80 = 332800
  const base: AttentionParams = {
    B: 1, H: 2, Hkv: 2, L: 64, S: 64, E: 8, Ev: 8, scale: 0.35, causal: "none", mask: null, dropoutP: 0, dropoutSeed: 0,
  };
  const cases: [string, AttentionParams, number, number[]][] = [
    // [what, params, threshold, threads asked by the forward job, the backward's prep job and its main job]
    ["full, threshold between forward and backward", base, 400000, [1, 2, 2]],
    ["full, threshold just above the backward", base, 655361, [1, 1, 1]],
    ["full, threshold at the backward", base, 655360, [1, 2, 2]],
    ["full, threshold at the forward", base, 262144, [2, 2, 2]],
    ["causal: half the pairs", { ...base, causal: "top-left" }, 400000, [1, 1, 1]],
    ["causal, threshold at its backward", { ...base, causal: "top-left" }, 332800, [1, 2, 2]],
    ["causal, threshold at its forward", { ...base, causal: "top-left" }, 133120, [2, 2, 2]],
  ];
  for (const [what, p, threshold, want] of cases) {
    test(`${what}: jobs ask for ${want.join(", ")} thread(s)`, () => {
      const saved = wasmTuning.minParallelAttentionFlops;
      try {
        setNumThreads(1);
        const one = run(p, 7);
        assert.deepEqual(one.asked, [1, 1, 1], "one thread: every job on the calling thread");
        setNumThreads(2);
        wasmTuning.minParallelAttentionFlops = threshold;
        const two = run(p, 7);
        assert.deepEqual(two.asked, want);
        for (let i = 0; i < one.results.length; i++) assertBitwise(two.results[i], one.results[i], `result ${i}`);
      } finally {
        wasmTuning.minParallelAttentionFlops = saved;
      }
    });
  }

  /** Runs f with the runtime's time since the workers' last job stubbed to `ms`. */
  function withSince<T>(ms: number, f: () => T): T {
    const rt = getRuntime()!;
    const since = rt.msSinceWorkerJob;
    rt.msSinceWorkerJob = () => ms;
    try {
      return f();
    } finally {
      rt.msSinceWorkerJob = since;
    }
  }

  test("the default threshold: B·H = 8, E = 64 stays on the calling thread at L = S = 128, not at 256", () => {
    // L = S = 128: forward 8 x 16384 x 256 = 33.6 MFLOP, backward 8 x 16384 x 640 = 83.9 MFLOP (below 100)
    // L = S = 256: forward 8 x 65536 x 256 = 134 MFLOP, backward 8 x 65536 x 640 = 336 MFLOP
    assert.equal(wasmTuning.minParallelAttentionFlops, 100e6);
    setNumThreads(2);
    const big = { ...base, H: 8, Hkv: 8, E: 64, Ev: 64 };
    withSince(Infinity, () => {
      assert.deepEqual(run({ ...big, L: 128, S: 128 }, 3).asked, [1, 1, 1]);
      assert.deepEqual(run({ ...big, L: 256, S: 256 }, 3).asked, [2, 2, 2]);
    });
  });

  test("after a worker's recent job, jobs from minHotAttentionFlops on take the workers too, same bits", () => {
    // B·H = 8, E = 64, L = S = 128 as above: forward 33.6, backward 83.9 MFLOP, both >= 4 MFLOP.
    // The base case (0.26 and 0.66 MFLOP) stays below minHotAttentionFlops.
    assert.equal(wasmTuning.minHotAttentionFlops, 4e6);
    assert.equal(wasmTuning.hotWorkerMs, 3);
    const p = { ...base, H: 8, Hkv: 8, E: 64, Ev: 64, L: 128, S: 128 };
    setNumThreads(1);
    const one = withSince(0, () => run(p, 5));
    assert.deepEqual(one.asked, [1, 1, 1], "one thread: every job on the calling thread");
    setNumThreads(2);
    const hot = withSince(2.5, () => run(p, 5));
    assert.deepEqual(hot.asked, [2, 2, 2]);
    for (let i = 0; i < one.results.length; i++) assertBitwise(hot.results[i], one.results[i], `result ${i}`);
    assert.deepEqual(withSince(3, () => run(p, 5)).asked, [1, 1, 1], "the window is over");
    assert.deepEqual(withSince(0, () => run(base, 5)).asked, [1, 1, 1], "below minHotAttentionFlops");
  });

  test("msSinceWorkerJob: attention jobs do not count, other jobs a worker took part in do", (t) => {
    const rt = resetRuntime();
    setNumThreads(2);
    assert.equal(rt.msSinceWorkerJob(), Infinity, "no job yet");
    const saved = wasmTuning.minParallelAttentionFlops;
    try {
      wasmTuning.minParallelAttentionFlops = 0; // every attention job threaded
      run({ ...base, B: 4 }, 9);
    } finally {
      wasmTuning.minParallelAttentionFlops = saved;
    }
    assert.equal(rt.msSinceWorkerJob(), Infinity, "attention jobs are not counted");
    // a threaded matmul, 256 x 256 x 256 (33.6 MFLOP): once a worker has run a task of one (it may be
    // slow to wake on a loaded machine: then the caller runs them all), the time is finite
    const tasksBefore = rt.workerTasks;
    const n = 256, a = randF32(n * n, rng(1)), b = randF32(n * n, rng(2)), out = new Float32Array(n * n);
    const mm = { batch: 1, m: n, n, k: n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, accumulate: false };
    for (let tries = 0; tries < 100 && rt.workerTasks === tasksBefore; tries++) wasmBackend.matmul(out, a, b, mm);
    if (rt.workerTasks === tasksBefore) {
      t.skip("no worker woke for 100 threaded matmuls (a very loaded machine): the finite case is not checked");
      return;
    }
    assert.ok(Number.isFinite(rt.msSinceWorkerJob()) && rt.msSinceWorkerJob() >= 0);
  });
});
