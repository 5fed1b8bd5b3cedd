/**
 * Kernel backends: the reference attention against an independent materialising float64 computation
 * (and finite differences), the wasm kernels against the reference (matmul and attention, every option),
 * and bitwise equality of the wasm results with 1 and 2 threads. No timing assertions.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AttentionParams, CausalKind, MatmulParams, RowStrides } from "../src/kernels/backend.js";
import {
  findBackend, getBackend, getBackendName, getNumThreads, refBackend, setBackend, setNumThreads, wasmAvailable,
  elementwiseTuning, wasmBackend, wasmTuning,
} from "../src/kernels/index.js";
import { geluGateExact } from "../src/ops/gelu.js";
import { piecewise, table32 } from "../src/ops/piecewise.js";
import { wasmSourceHash } from "../src/kernels/wasm/build/kernelsWasm.js";
import { getRuntime, resetRuntime } from "../src/kernels/wasm/runtime.js";
import { ArgumentError } from "../src/tensor/errors.js";
import { HEAP_BASE, J_NEXT, JOB_BASE } from "../src/kernels/wasm/build/layout.js";
// @ts-ignore: plain .mjs build script
import { sourceHash } from "../scripts/build-wasm.mjs";
import { type Case, assertClose, caseName, compareResults, makeProblem, naive, randArray, runBackend } from "./attention-naive.js";
import { conformanceBackends } from "./backends.js";
import { rng } from "./kernel-inputs.js";

// ------------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------------

function assertBitwise(a: Float32Array, b: Float32Array, what: string): void {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}: differs at ${i}: ${a[i]} vs ${b[i]}`);
  }
}

/** Runs fn with the given wasm tile sizes, restoring the defaults afterwards. */
function withTiles<T>(Br: number, Bc: number, fn: () => T): T {
  const saved = { Br: wasmTuning.Br, Bc: wasmTuning.Bc };
  wasmTuning.Br = Br;
  wasmTuning.Bc = Bc;
  try {
    return fn();
  } finally {
    wasmTuning.Br = saved.Br;
    wasmTuning.Bc = saved.Bc;
  }
}

// ------------------------------------------------------------------------------------------------
// the reference, proven
// ------------------------------------------------------------------------------------------------

const refCases: Case[] = [
  { B: 1, H: 1, Hkv: 1, L: 1, S: 1, E: 8, Ev: 8 },
  { B: 2, H: 2, Hkv: 1, L: 3, S: 17, E: 8, Ev: 5 },
  { B: 1, H: 4, Hkv: 2, L: 17, S: 3, E: 24, Ev: 8, causal: "bottom-right" },
  { B: 1, H: 2, Hkv: 2, L: 17, S: 33, E: 8, Ev: 24, causal: "top-left", mask: "float-1hls" },
  { B: 2, H: 2, Hkv: 1, L: 33, S: 17, E: 24, Ev: 8, causal: "bottom-right", mask: "bool-b1ls", dropoutP: 0.3 },
  { B: 2, H: 3, Hkv: 3, L: 17, S: 17, E: 8, Ev: 8, mask: "bool-full-rows", scale: 0.37 },
  { B: 2, H: 2, Hkv: 2, L: 3, S: 33, E: 24, Ev: 24, mask: "bool-keypad", dropoutP: 0.5, seed: 99 },
  { B: 1, H: 3, Hkv: 1, L: 9, S: 12, E: 5, Ev: 7, causal: "top-left", mask: "float-ls", dropoutP: 0.2 },
];

// Every registered backend (test/backends.ts) against the materialising float64 computation: float64
// storage to rounding, float32 storage to float32 accuracy.
for (const name of conformanceBackends()) describe(`attention kernels [${name}]`, () => {
  const be = findBackend(name)!;
  for (const c of refCases) {
    test(`match a materialising float64 computation: ${caseName(c)}`, () => {
      const pr = makeProblem(c, Float64Array);
      compareResults(runBackend(be, pr, Float64Array), naive(pr), 1e-12, 1e-10, `${name} vs naive (float64)`);
      const pr32 = makeProblem(c, Float32Array);
      compareResults(runBackend(be, pr32, Float32Array, Float64Array), naive(pr32), 2e-5, 2e-4, `${name} vs naive (float32)`);
    });
  }
  test("matmul matches a float64 triple loop", () => {
    const r = rng(11);
    for (const [m, n, k, transA, transB] of [[1, 1, 1, false, false], [5, 7, 3, true, false], [17, 9, 33, false, true], [33, 65, 20, true, true]] as const) {
      const a = randArray(Float32Array, 2 * m * k, r), b = randArray(Float32Array, n * k, r);
      const p: MatmulParams = { batch: 2, m, n, k, aBatchStride: m * k, bBatchStride: 0, transA, transB, accumulate: true };
      const init = randArray(Float32Array, 2 * m * n, r);
      const got = init.slice();
      be.matmul(got, a, b, p);
      const want = new Float64Array(init);
      for (let t = 0; t < 2; t++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let x = 0; x < k; x++) {
          const av = transA ? a[t * m * k + x * m + i] : a[t * m * k + i * k + x];
          const bv = transB ? b[j * k + x] : b[x * n + j];
          acc += av * bv;
        }
        want[t * m * n + i * n + j] += acc;
      }
      assertClose(got, want, 1e-5, 1e-5, `${name} matmul ${m}x${n}x${k} transA=${transA} transB=${transB}`);
    }
  });
});

describe("reference attention", () => {

  test("backward matches finite differences of the forward (float64)", () => {
    const cases: Case[] = [
      { B: 1, H: 2, Hkv: 1, L: 4, S: 5, E: 3, Ev: 2, causal: "bottom-right", mask: "float-ls", dropoutP: 0.25, scale: 0.7 },
      { B: 2, H: 2, Hkv: 2, L: 5, S: 3, E: 4, Ev: 3, causal: "top-left", mask: "bool-bhls" },
    ];
    for (const c of cases) {
      const pr = makeProblem(c, Float64Array, 5);
      const { p, q, k, v, dout } = pr;
      const res = runBackend(refBackend, pr, Float64Array);
      const loss = (): number => {
        const out = new Float64Array(p.B * p.H * p.L * p.Ev), lse = new Float64Array(p.B * p.H * p.L);
        refBackend.attentionForward(p, q, k, v, out, lse);
        let s = 0;
        for (let i = 0; i < out.length; i++) s += out[i] * dout[i];
        return s;
      };
      const h = 1e-6;
      for (const [x, g, name] of [[q, res.dq, "dq"], [k, res.dk, "dk"], [v, res.dv, "dv"]] as const) {
        for (let i = 0; i < x.length; i++) {
          const x0 = x[i];
          x[i] = x0 + h; const up = loss();
          x[i] = x0 - h; const dn = loss();
          x[i] = x0;
          const fd = (up - dn) / (2 * h);
          assert.ok(Math.abs(fd - g[i]) < 1e-7 + 1e-6 * Math.abs(fd), `${name}[${i}]: fd ${fd} vs ${g[i]} (${caseName(c)})`);
        }
      }
    }
  });

  test("fully masked rows: zero output, lse -Infinity, zero gradients", () => {
    const c: Case = { B: 1, H: 2, Hkv: 1, L: 6, S: 3, E: 8, Ev: 8, causal: "bottom-right", mask: "bool-full-rows" };
    for (const be of [refBackend, wasmBackend]) {
      const pr = makeProblem(c, Float32Array);
      const r = runBackend(be, pr, Float32Array);
      for (let row = 0; row < 12; row++) {
        const l = row % 6;
        const hidden = l < 3 || l % 3 === 1; // bottom-right with L - S = 3 hides rows 0..2
        if (!hidden) continue;
        assert.equal(r.lse[row], -Infinity, `${be.name} lse row ${row}`);
        for (let e = 0; e < 8; e++) {
          assert.equal(r.out[row * 8 + e], 0);
          assert.equal(r.dq[row * 8 + e], 0);
        }
      }
      for (const x of [r.out, r.dq, r.dk, r.dv]) for (const y of x) assert.ok(Number.isFinite(y), `${be.name}: non-finite value`);
    }
  });
});

// ------------------------------------------------------------------------------------------------
// wasm against the reference
// ------------------------------------------------------------------------------------------------

const hasWasm = wasmAvailable();

function matmulCheck(m: number, n: number, k: number, transA: boolean, transB: boolean, accumulate: boolean,
  batch: number, aBroadcast: boolean, bBroadcast: boolean, seed: number): void {
  const r = rng(seed);
  const a = randArray(Float32Array, (aBroadcast ? 1 : batch) * m * k, r);
  const b = randArray(Float32Array, (bBroadcast ? 1 : batch) * n * k, r);
  const init = randArray(Float32Array, batch * m * n, r);
  const p: MatmulParams = {
    batch, m, n, k, aBatchStride: aBroadcast ? 0 : m * k, bBatchStride: bBroadcast ? 0 : n * k, transA, transB, accumulate,
  };
  const want = init.slice(), got1 = init.slice(), got2 = init.slice();
  refBackend.matmul(want, a, b, p);
  setNumThreads(1);
  wasmBackend.matmul(got1, a, b, p);
  poisonStaging(a.length + 3 * b.length + batch * (m + 4) * (n + 8));
  setNumThreads(2);
  wasmBackend.matmul(got2, a, b, p);
  const what = `matmul ${batch}x${m}x${n}x${k} tA=${transA} tB=${transB} acc=${accumulate} bcast=${aBroadcast}/${bBroadcast}`;
  assertClose(got1, want, 2e-5 * Math.sqrt(k), 1e-5, what);
  assertBitwise(got2, got1, `${what} (2 threads vs 1)`);
}

/**
 * Fills the first `floats` (and then some: scratch, counters) of the staging area with NaN, so that a
 * kernel that reads a buffer before the call has staged it (a pack task that runs ahead of the copy
 * of b) cannot pass on what the previous call of the same shape left there.
 */
function poisonStaging(floats: number): void {
  const rt = getRuntime();
  if (rt === null) return;
  const f32 = rt.f32, from = HEAP_BASE >> 2;
  f32.fill(NaN, from, Math.min(f32.length, from + floats + (1 << 18)));
}

/** Makes sure the worker pool is up so that 2-thread runs really use 2 threads. */
async function warmPool(): Promise<void> {
  const rt = getRuntime();
  if (rt === null || !rt.threaded) return;
  setNumThreads(2);
  const saved = wasmTuning.minParallelFlops;
  wasmTuning.minParallelFlops = 0;
  // 256³: more than one task, so the pool spawns its worker (a job of one task spawns none)
  const a = new Float32Array(256 * 256);
  wasmBackend.matmul(new Float32Array(256 * 256), a, a, {
    batch: 1, m: 256, n: 256, k: 256, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, accumulate: false,
  });
  wasmTuning.minParallelFlops = saved;
  // a spawned worker gets as long as a loaded machine needs to start (up to 10 minutes), not a fixed few
  // seconds; none spawned (the call stayed on this thread): nothing to wait for
  for (let i = 0; i < 24_000 && rt.workerCount > 0 && rt.readyWorkers < 1; i++) await new Promise((res) => setTimeout(res, 25));
}

describe("wasm kernels", { skip: !hasWasm && "WebAssembly SIMD unavailable" }, () => {
  test("embedded module matches assembly/ sources (run scripts/build-wasm.mjs if not)", () => {
    assert.equal(wasmSourceHash, sourceHash());
  });

  test("matmul: odd sizes, transposes, accumulate, broadcast batch; 2 threads bitwise = 1", async () => {
    await warmPool();
    const saved = { ...wasmTuning };
    wasmTuning.minParallelFlops = 0;
    wasmTuning.minParallelPack = 0; // workers pack b too
    wasmTuning.minOverlapStage = 0; // while the calling thread stages it
    try {
      let seed = 1;
      for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [17, 33, 9], [64, 64, 64], [65, 257, 300], [130, 31, 513]]) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            matmulCheck(m, n, k, transA, transB, (seed & 1) === 0, 2, false, false, seed++);
          }
        }
      }
      matmulCheck(33, 40, 21, false, true, true, 3, true, false, 100);
      matmulCheck(20, 17, 33, true, false, false, 3, false, true, 101);
      matmulCheck(9, 300, 70, true, true, true, 4, true, true, 102);
      matmulCheck(1024, 8, 1000, false, false, false, 1, false, false, 103); // k beyond one k block
      // b staged while the workers pack (runJob's stage): many pack tasks of 64 columns, a partial last
      // one, b per batch element or broadcast, both layouts (transB: a task reads its 64 rows of b only)
      matmulCheck(40, 1000, 77, false, true, false, 1, false, true, 104);
      matmulCheck(40, 1000, 77, false, false, true, 1, false, true, 105);
      matmulCheck(9, 300, 70, false, true, false, 3, false, false, 106);
      matmulCheck(9, 300, 70, true, false, true, 3, true, false, 107);
      const rt = getRuntime()!;
      if (rt.threaded) assert.ok(rt.workerTasks > 0, "workers took part in 2-thread runs");
    } finally {
      Object.assign(wasmTuning, saved);
    }
  });

  test("matmulBias = matmul, then out[i, j] += bias[j]: bitwise, 1 and 2 threads, with out copied after the job, touched during it, or copied out during it", async () => {
    await warmPool();
    const saved = { ...wasmTuning };
    wasmTuning.minParallelFlops = 0;
    try {
      let seed = 200;
      // 130 x 600: 3 x 3 blocks of out (64 x 256), 9 tasks; 5 x 9000: one row block, 36 column blocks
      for (const [batch, m, n, k] of [[1, 1, 1, 1], [1, 3, 5, 7], [1, 130, 600, 70], [1, 5, 9000, 17], [3, 67, 300, 33], [1, 520, 520, 300]]) {
        // how out comes back: after the job; after it, with out's pages touched during it; or a column block at a time during it
        for (const overlap of ["none", "touch", "copy"] as const) {
          const during = (): void => {
            wasmTuning.minOverlapUnstage = overlap === "touch" ? 0 : Infinity;
            wasmTuning.minCopyOutDuring = overlap === "copy" ? 0 : Infinity;
          };
          const after = (): void => {
            wasmTuning.minOverlapUnstage = Infinity;
            wasmTuning.minCopyOutDuring = Infinity;
          };
          during();
          for (const accumulate of [false, true]) {
            const r = rng(seed++);
            const a = randArray(Float32Array, batch * m * k, r), b = randArray(Float32Array, n * k, r);
            const bias = randArray(Float32Array, n, r), init = randArray(Float32Array, batch * m * n, r);
            const p: MatmulParams = { batch, m, n, k, aBatchStride: m * k, bBatchStride: 0, transA: false, transB: true, accumulate };
            const what = `matmulBias ${batch}x${m}x${n}x${k} acc=${accumulate} overlap=${overlap}`;
            // the readable form: the reference product, then the bias added to each row
            const want = init.slice();
            refBackend.matmul(want, a, b, p);
            for (let i = 0; i < batch * m; i++) for (let j = 0; j < n; j++) want[i * n + j] += bias[j];
            // the same bits as the plain wasm product followed by that addition
            setNumThreads(1);
            after();
            const plain = init.slice();
            wasmBackend.matmul(plain, a, b, p);
            for (let i = 0; i < batch * m; i++) for (let j = 0; j < n; j++) plain[i * n + j] += bias[j];
            during();
            for (const threads of [1, 2]) {
              setNumThreads(threads);
              poisonStaging(a.length + 3 * b.length + batch * (m + 4) * (n + 8));
              const got = init.slice();
              wasmBackend.matmulBias!(got, a, b, bias, p);
              assertClose(got, want, 2e-5 * Math.sqrt(k), 1e-5, `${what} vs reference`);
              assertBitwise(got, plain, `${what}, ${threads} thread(s), vs matmul then += bias`);
              const noBias = init.slice(), plainNoBias = init.slice();
              wasmBackend.matmul(noBias, a, b, p);
              after();
              wasmBackend.matmul(plainNoBias, a, b, p);
              during();
              assertBitwise(noBias, plainNoBias, `${what}, ${threads} thread(s), without bias`);
            }
          }
        }
      }
    } finally {
      Object.assign(wasmTuning, saved);
    }
  });

  test("runJob's stage: while the caller stages, the workers take only the tasks it has released", async () => {
    await warmPool();
    const rt = getRuntime()!;
    if (!rt.threaded) return;
    const saved = { ...wasmTuning };
    wasmTuning.minParallelFlops = 0;
    wasmTuning.minParallelPack = 0;
    wasmTuning.minOverlapStage = 0;
    const runJob = rt.runJob;
    let staged = 0, checks = 0;
    // each release first lets the workers take every task released so far (a bounded wait on the task
    // counter: they then poll for the next), then checks that they have taken no more than that
    rt.runJob = function (threads, ntasks, afterTask, stage) {
      const spied = stage && ((release: (t: number) => void) => stage((t) => {
        const next = (): number => Atomics.load(rt.i32, (JOB_BASE >> 2) + J_NEXT);
        for (let i = 0; i < 1e7 && next() < staged; i++);
        assert.ok(next() <= staged, `tasks taken: ${next()}, released: ${staged}`);
        checks++;
        staged = t;
        release(t);
      }));
      staged = 0;
      runJob.call(rt, threads, ntasks, afterTask, spied);
    };
    try {
      setNumThreads(2);
      // 1000 columns: 16 pack tasks of 64 columns released one at a time (transB), or per batch element
      matmulCheck(40, 1000, 77, false, true, false, 1, false, true, 110);
      matmulCheck(20, 1000, 33, false, false, false, 3, false, false, 111);
      assert.ok(checks >= 16 + 3, `releases checked: ${checks}`);
    } finally {
      rt.runJob = runJob;
      Object.assign(wasmTuning, saved);
    }
  });

  test("an operand that cannot be copied (its buffer detached: transferred away) fails the call naming the function and the operand, not a kernel task; the pool stays usable", async () => {
    await warmPool();
    const saved = { ...wasmTuning };
    // every job threaded, and a matmul's b copied while the workers pack it (runJob's stage)
    Object.assign(wasmTuning, { minParallelFlops: 0, minParallelPack: 0, minOverlapStage: 0, minParallelAttentionFlops: 0 });
    const detached = (n: number): Float32Array => {
      const x = new Float32Array(n);
      structuredClone(x.buffer, { transfer: [x.buffer] });
      return x;
    };
    /** fn() throws an error whose message starts with `start` followed by TypeError's (the cause), and names no task or job */
    const failsWith = (fn: () => void, start: string): void => assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof Error && !(e instanceof ArgumentError));
      assert.ok(e.message.startsWith(`attend: ${start} failed: TypeError: Cannot perform`), e.message);
      assert.doesNotMatch(e.message, /task|packing|job/);
      assert.ok(e.cause instanceof TypeError);
      return true;
    });
    const r = rng(5);
    const [m, n, k] = [40, 1000, 77];
    const mp: MatmulParams = { batch: 1, m, n, k, aBatchStride: 0, bBatchStride: 0, transA: false, transB: true, accumulate: false };
    const a = randArray(Float32Array, m * k, r), b = randArray(Float32Array, n * k, r);
    const want = new Float32Array(m * n);
    refBackend.matmul(want, a, b, mp);
    // attention: k heads-first; then q, k, v as thirds of one array (self-attention's layout)
    const [B, H, L, E] = [1, 2, 17, 8];
    const ap: AttentionParams = { B, H, Hkv: H, L, S: L, E, Ev: E, scale: 0.3, causal: "none", mask: null, dropoutP: 0, dropoutSeed: 0 };
    const q = randArray(Float32Array, B * H * L * E, r), kk = randArray(Float32Array, B * H * L * E, r), v = randArray(Float32Array, B * H * L * E, r);
    const fresh = (): [Float32Array, Float32Array] => [new Float32Array(B * H * L * E), new Float32Array(B * H * L)];
    const [out, lse] = fresh();
    wasmBackend.attentionForward(ap, q, kk, v, out, lse);
    const thirds = (offset: number): RowStrides => ({ offset, sb: L * 3 * H * E, sh: E, sl: 3 * H * E });
    const apI: AttentionParams = { ...ap, layout: { q: thirds(0), k: thirds(H * E), v: thirds(2 * H * E), out: { offset: 0, sb: L * H * E, sh: E, sl: H * E } } };
    try {
      setNumThreads(2);
      failsWith(() => wasmBackend.matmul(new Float32Array(m * n), a, detached(n * k), mp), "wasmMatmul: staging b (1 × 77000 floats; its array holds 0) into wasm memory");
      failsWith(() => wasmBackend.matmul(new Float32Array(m * n), detached(m * k), b, mp), "wasmMatmul: staging a (1 × 3080 floats; its array holds 0) into wasm memory");
      failsWith(() => wasmBackend.matmul(detached(m * n), a, b, mp), "wasmMatmul: writing out (1 × 40000 floats; its array holds 0) from wasm memory");
      failsWith(() => wasmBackend.attentionForward(ap, q, detached(kk.length), v, ...fresh()),
        "wasmAttentionForward: staging k (2 heads of 17 rows of 8 floats per batch element; its array holds 0 floats) into wasm memory");
      const qkv = detached(B * L * 3 * H * E);
      failsWith(() => wasmBackend.attentionForward(apI, qkv, qkv, qkv, ...fresh()),
        "wasmAttentionForward: staging q, k, v (the rows they share: 17 of 48 floats per batch element; their array holds 0 floats) into wasm memory");
      failsWith(() => wasmBackend.attentionBackward(ap, q, kk, v, out, detached(out.length), lse, new Float32Array(q.length), new Float32Array(kk.length), new Float32Array(v.length)),
        "wasmAttentionBackward: staging dout (2 heads of 17 rows of 8 floats per batch element; its array holds 0 floats) into wasm memory");
      failsWith(() => wasmBackend.attentionBackward(ap, q, kk, v, out, out, lse, new Float32Array(q.length), new Float32Array(kk.length), detached(v.length)),
        "wasmAttentionBackward: writing dv (2 heads of 17 rows of 8 floats per batch element; its array holds 0 floats) from wasm memory");
      // the runtime and its workers still work: the same results as before the failures
      const got = new Float32Array(m * n);
      wasmBackend.matmul(got, a, b, mp);
      assertClose(got, want, 2e-5 * Math.sqrt(k), 1e-5, "matmul after the failures");
      const [out2, lse2] = fresh();
      wasmBackend.attentionForward(ap, q, kk, v, out2, lse2);
      assertBitwise(out2, out, "attention after the failures");
    } finally {
      Object.assign(wasmTuning, saved);
    }
  });

  test("mulPiecewise on 2 threads, many small tasks: bitwise = 1 thread", async () => {
    await warmPool();
    const saved = { ...elementwiseTuning };
    // many small tasks (64 elements), every call threaded
    Object.assign(elementwiseTuning, { minElements: 0, taskElements: 64, minParallelElements: 0 });
    const table = table32(piecewise(geluGateExact, -16, 9, 1 / 16), geluGateExact, 0, 1);
    try {
      let seed = 300;
      for (const n of [1, 3, 257, 1000, 5003]) {
        for (const self of [true, false]) {
          const r = rng(seed++);
          const x = randArray(Float32Array, n, r).map((v) => 8 * v), by = self ? x : randArray(Float32Array, n, r);
          // the readable form: out[i] = by[i] * gate(x[i]), to the table's float32 accuracy
          const want = Float32Array.from(x, (v, i) => by[i] * geluGateExact(v));
          const got: Float32Array[] = [];
          for (const threads of [1, 2]) {
            setNumThreads(threads);
            poisonStaging(4 * n);
            const out = new Float32Array(n);
            assert.equal(wasmBackend.mulPiecewise!(out, by, x, table), true);
            got.push(out);
          }
          assertClose(got[0], want, 1e-5, 1e-5, `mulPiecewise n=${n} self=${self} vs formula`);
          assertBitwise(got[1], got[0], `mulPiecewise n=${n} self=${self}, 2 threads vs 1`);
        }
      }
    } finally {
      Object.assign(elementwiseTuning, saved);
    }
  });

  test("matmul: float64 falls back to the reference exactly", () => {
    const r = rng(3);
    const a = randArray(Float64Array, 40 * 30, r), b = randArray(Float64Array, 30 * 20, r);
    const p: MatmulParams = { batch: 1, m: 40, n: 20, k: 30, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, accumulate: false };
    const x = new Float64Array(800), y = new Float64Array(800);
    refBackend.matmul(x, a, b, p);
    wasmBackend.matmul(y, a, b, p);
    assert.deepEqual(y, x);
  });

  // every option at small and medium sizes; (Br, Bc) small tiles exercise many tiles per row/column
  const lens = [1, 3, 17, 33];
  const attCases: Case[] = [];
  {
    const r = rng(11);
    const masks: Case["mask"][] = ["none", "bool-bhls", "bool-b1ls", "bool-keypad", "float-1hls", "float-ls", "bool-full-rows"];
    const causals: CausalKind[] = ["none", "top-left", "bottom-right"];
    const heads: [number, number][] = [[2, 2], [4, 2], [3, 1]];
    const dims: [number, number][] = [[8, 8], [24, 8], [64, 80], [80, 24], [8, 64]];
    let i = 0;
    for (const L of lens) {
      for (const S of lens) {
        const [E, Ev] = dims[i % dims.length];
        const [H, Hkv] = heads[i % heads.length];
        attCases.push({
          B: 1 + (i % 2), H, Hkv, L, S, E, Ev,
          causal: causals[i % 3], mask: masks[i % masks.length],
          scale: i % 5 === 4 ? 0.37 : undefined,
          dropoutP: i % 4 === 3 ? 0.3 : 0, seed: 1000 + i,
        });
        i++;
        void r;
      }
    }
    // long sequences (default 64 x 64 tiles, several of them, and partial last tiles)
    attCases.push({ B: 1, H: 2, Hkv: 1, L: 257, S: 257, E: 64, Ev: 64, causal: "top-left" });
    attCases.push({ B: 1, H: 2, Hkv: 2, L: 257, S: 33, E: 24, Ev: 80, causal: "bottom-right", mask: "float-ls" });
    attCases.push({ B: 2, H: 1, Hkv: 1, L: 17, S: 257, E: 80, Ev: 8, causal: "bottom-right", dropoutP: 0.2 });
    attCases.push({ B: 1, H: 4, Hkv: 1, L: 257, S: 257, E: 8, Ev: 24, mask: "bool-b1ls", scale: 0.37 });
    attCases.push({ B: 1, H: 2, Hkv: 2, L: 100, S: 257, E: 64, Ev: 64, causal: "top-left", dropoutP: 0.1, mask: "bool-full-rows" });
    attCases.push({ B: 1, H: 2, Hkv: 1, L: 33, S: 17, E: 24, Ev: 24, scale: 0 });
    attCases.push({ B: 1, H: 2, Hkv: 1, L: 33, S: 17, E: 24, Ev: 24, causal: "top-left", scale: -0.5 });
  }

  for (const [ci, c] of attCases.entries()) {
    test(`attention: ${caseName(c)}`, async () => {
      await warmPool();
      const pr = makeProblem(c, Float32Array, ci + 1);
      const want = runBackend(refBackend, pr, Float32Array);
      const saved = wasmTuning.minParallelAttentionFlops;
      wasmTuning.minParallelAttentionFlops = 0;
      try {
        const tiles: [number, number][] = c.L > 64 || c.S > 64 ? [[64, 64], [16, 32]] : [[64, 64], [8, 8], [16, 8]];
        for (const [Br, Bc] of tiles) {
          setNumThreads(1);
          const one = withTiles(Br, Bc, () => runBackend(wasmBackend, pr, Float32Array));
          compareResults(one, want, 3e-5, 3e-4, `wasm(${Br}x${Bc}) vs ref`);
          setNumThreads(2);
          const two = withTiles(Br, Bc, () => runBackend(wasmBackend, pr, Float32Array));
          for (const key of ["out", "lse", "dq", "dk", "dv"] as const) {
            assertBitwise(two[key] as Float32Array, one[key] as Float32Array, `${key} with 2 threads vs 1 (${Br}x${Bc})`);
          }
        }
      } finally {
        wasmTuning.minParallelAttentionFlops = saved;
      }
    });
  }

  test("attention: float64 falls back to the reference exactly", () => {
    const pr = makeProblem({ B: 1, H: 2, Hkv: 1, L: 9, S: 11, E: 8, Ev: 8, causal: "top-left", dropoutP: 0.2 }, Float64Array);
    const a = runBackend(refBackend, pr, Float64Array), b = runBackend(wasmBackend, pr, Float64Array);
    for (const key of ["out", "lse", "dq", "dk", "dv"] as const) assert.deepEqual(b[key], a[key]);
  });

  test("attention: float64 lse storage with float32 data (what the op layer passes)", async () => {
    // the forward keeps the row max m and the row sum l apart and forms lse = m + log(l) in float64;
    // float32 storage gets that value rounded once, and the output does not depend on the storage
    await warmPool();
    const c: Case = { B: 2, H: 4, Hkv: 2, L: 40, S: 50, E: 24, Ev: 16, causal: "bottom-right", mask: "bool-full-rows", dropoutP: 0.1 };
    const pr = makeProblem(c, Float32Array, 3);
    const want = runBackend(refBackend, pr, Float32Array, Float64Array);
    const saved = wasmTuning.minParallelAttentionFlops;
    wasmTuning.minParallelAttentionFlops = 0;
    try {
      setNumThreads(1);
      const one = runBackend(wasmBackend, pr, Float32Array, Float64Array);
      assert.ok(one.lse instanceof Float64Array);
      compareResults(one, want, 3e-5, 3e-4, "wasm vs ref, float64 lse");
      setNumThreads(2);
      const two = runBackend(wasmBackend, pr, Float32Array, Float64Array);
      assert.deepEqual(two.lse, one.lse, "lse with 2 threads vs 1");
      for (const key of ["out", "dq", "dk", "dv"] as const) assertBitwise(two[key] as Float32Array, one[key] as Float32Array, `${key} with 2 threads vs 1`);
      const f32 = runBackend(wasmBackend, pr, Float32Array);
      assertBitwise(f32.out as Float32Array, one.out as Float32Array, "out with float32 lse storage");
      for (let i = 0; i < one.lse.length; i++) assert.equal(f32.lse[i], Math.fround(one.lse[i]), `lse[${i}]`);
    } finally {
      wasmTuning.minParallelAttentionFlops = saved;
    }
  });

  test("attention: huge logits (nearly one-hot rows): gradients as exact as float32 storage allows", () => {
    // Integer q and k with scale 0.5 make every score exact in float32, |score| up to ~1000, so most
    // rows put nearly all their weight on one key. There dS = P (dP - D) cancels (dP at the peak
    // equals D to many digits) and the gradients are tiny next to the terms that form them. With lse
    // kept in float64 and the peak's dP - D formed in float64 the errors stay below 1e-6 of the largest
    // gradient (7e-7 at worst here; a float32 dP - D at the peak gives 2.3e-6, and float32 lse and dP
    // gave 2e-6 .. 1e-5 on problems like these). The fixture sdpa_large_logits is the same case in PyTorch.
    const relMax = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
      let num = 0, den = 0;
      for (let i = 0; i < b.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
      return num / den;
    };
    const cases: [Case, number][] = [
      [{ B: 1, H: 2, Hkv: 1, L: 17, S: 33, E: 8, Ev: 4 }, 12],
      [{ B: 1, H: 2, Hkv: 1, L: 17, S: 33, E: 8, Ev: 4 }, 20],
      [{ B: 1, H: 3, Hkv: 1, L: 33, S: 17, E: 8, Ev: 4, dropoutP: 0.2 }, 15],
    ];
    for (const [ci, [c, R]] of cases.entries()) {
      const r = rng(ci + 3);
      const ints = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.floor(r() * (2 * R + 1)) - R);
      const pr = makeProblem({ ...c, scale: 0.5 }, Float32Array, ci + 1);
      pr.q = ints(pr.q.length);
      pr.k = ints(pr.k.length);
      const want = naive(pr);
      for (const [Br, Bc] of [[64, 64], [8, 8]] as const) {
        const got = withTiles(Br, Bc, () => runBackend(wasmBackend, pr, Float32Array, Float64Array));
        const what = `${caseName({ ...c, scale: 0.5 })} |q|,|k| <= ${R}, tiles ${Br}x${Bc}`;
        assert.ok(relMax(got.out, want.out) < 2e-7, `${what}: out ${relMax(got.out, want.out)}`);
        for (const key of ["dq", "dk", "dv"] as const) {
          const e = relMax(got[key], want[key]);
          assert.ok(e < 1e-6, `${what}: ${key} relative error ${e}`);
        }
      }
    }
  });

  test("attention: staging in several rounds gives the same bits as one round", () => {
    const pr = makeProblem({ B: 2, H: 4, Hkv: 2, L: 40, S: 50, E: 24, Ev: 16, causal: "bottom-right", mask: "bool-bhls", dropoutP: 0.1 }, Float32Array);
    setNumThreads(2);
    const one = runBackend(wasmBackend, pr, Float32Array);
    const saved = wasmTuning.stagingBudget;
    wasmTuning.stagingBudget = 1; // one kv group per round
    try {
      const many = runBackend(wasmBackend, pr, Float32Array);
      for (const key of ["out", "lse", "dq", "dk", "dv"] as const) assertBitwise(many[key] as Float32Array, one[key] as Float32Array, key);
    } finally {
      wasmTuning.stagingBudget = saved;
    }
  });

  test("attention: a staging round stays within wasmTuning.stagingBudget, the block interleaved rows move through counted", () => {
    // self-attention's layout: q, k, v as thirds of one [B, T, (H + 2 Hkv) E] array, out [B, T, H E];
    // their rows move through a block of 12 rows (wasmTuning.moveFloats), a buffer beside the staged heads
    const [B, H, Hkv, T, E] = [3, 4, 2, 40, 24], W = (H + 2 * Hkv) * E, groups = B * Hkv;
    const rows = (offset: number, X: number): RowStrides => ({ offset, sb: T * X, sh: E, sl: X });
    const mask: AttentionParams["mask"] = { kind: "bool", data: Uint8Array.from({ length: B * T }, (_, i) => (i % 5 === 2 ? 0 : 1)), strides: [T, 0, 0, 1] };
    const p: AttentionParams = {
      B, H, Hkv, L: T, S: T, E, Ev: E, scale: 0.3, causal: "bottom-right", mask, dropoutP: 0, dropoutSeed: 0,
      layout: { q: rows(0, W), k: rows(H * E, W), v: rows((H + Hkv) * E, W), out: rows(0, H * E) },
    };
    const r = rng(17);
    const qkv = randArray(Float32Array, B * T * W, r), dout = randArray(Float32Array, B * T * H * E, r);
    // the bytes each round asks for (rt.reset starts a round), threads' scratch left out: the budget is
    // for staged tensors, and a round's scratch does not grow with the groups it stages
    const rt = getRuntime()!;
    const { alloc, allocScratch, reset } = rt;
    let rounds: number[] = [], inScratch = false;
    rt.reset = (): void => { rounds.push(0); reset.call(rt); };
    rt.allocScratch = (floats: number): [number, number] => {
      inScratch = true;
      try { return allocScratch.call(rt, floats); } finally { inScratch = false; }
    };
    rt.alloc = (bytes: number): number => {
      if (!inScratch) rounds[rounds.length - 1] += bytes;
      return alloc.call(rt, bytes);
    };
    /** forward and backward: their results, and each pass's bytes per round */
    const run = (): { res: Float32Array[]; fwd: number[]; bwd: number[] } => {
      const out = new Float32Array(B * T * H * E), lse = new Float32Array(B * H * T), dqkv = new Float32Array(qkv.length);
      rounds = [];
      wasmBackend.attentionForward(p, qkv, qkv, qkv, out, lse);
      const fwd = rounds;
      rounds = [];
      wasmBackend.attentionBackward(p, qkv, qkv, qkv, out, dout, lse, dqkv, dqkv, dqkv);
      return { res: [out, lse, dqkv], fwd, bwd: rounds };
    };
    const saved = { ...wasmTuning };
    try {
      setNumThreads(1);
      wasmTuning.moveFloats = 12 * W;
      const one = run();
      assert.deepEqual([one.fwd.length, one.bwd.length], [1, 1], "the default budget holds every group in one round");
      // every budget from 0 to the one round's bytes, in 60 steps: wherever a round holds more than one
      // kv group (fewer rounds than groups), every round must fit the budget; results stay the same bits
      const most = Math.max(one.fwd[0], one.bwd[0]);
      let decided = 0;
      for (let i = 0; i <= 60; i++) {
        wasmTuning.stagingBudget = Math.round((most * i) / 60);
        const got = run();
        for (const [pass, bytes] of [["forward", got.fwd], ["backward", got.bwd]] as const) {
          if (bytes.length === groups) continue; // one kv group per round: at least one is always staged
          if (bytes.length > 1) decided++;
          for (const b of bytes) assert.ok(b <= wasmTuning.stagingBudget, `${pass}: a round took ${b} bytes, budget ${wasmTuning.stagingBudget} (${bytes.length} rounds)`);
        }
        got.res.forEach((x, j) => assertBitwise(x, one.res[j], `budget ${wasmTuning.stagingBudget}: output ${j}`));
      }
      assert.ok(decided >= 10, `the budget split the call into rounds of several groups only ${decided} times`);
    } finally {
      for (const name of ["alloc", "allocScratch", "reset"] as const) delete (rt as Partial<typeof rt>)[name]; // the prototype's methods again
      Object.assign(wasmTuning, saved);
    }
  });

  test("workers took part in the 2-thread attention runs", () => {
    const rt = getRuntime()!;
    if (rt.threaded) assert.ok(rt.workerTasks > 0);
  });

  test("unshared memory (a page without cross-origin isolation): single thread, same bits", () => {
    const pr = makeProblem({ B: 1, H: 4, Hkv: 2, L: 70, S: 90, E: 24, Ev: 16, causal: "top-left", mask: "float-ls", dropoutP: 0.1 }, Float32Array);
    setNumThreads(2);
    const shared = runBackend(wasmBackend, pr, Float32Array);
    const r = rng(8);
    const a = randArray(Float32Array, 70 * 50, r), b = randArray(Float32Array, 50 * 90, r);
    const mp: MatmulParams = { batch: 1, m: 70, n: 90, k: 50, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, accumulate: false };
    const mmShared = new Float32Array(70 * 90);
    wasmBackend.matmul(mmShared, a, b, mp);
    const saved = getRuntime()!;
    const rt = resetRuntime({ unshared: true });
    try {
      assert.equal(rt.threaded, false);
      assert.ok(!(rt.memory.buffer instanceof SharedArrayBuffer));
      const alone = runBackend(wasmBackend, pr, Float32Array);
      for (const key of ["out", "lse", "dq", "dk", "dv"] as const) assertBitwise(alone[key] as Float32Array, shared[key] as Float32Array, key);
      const mmAlone = new Float32Array(70 * 90);
      wasmBackend.matmul(mmAlone, a, b, mp);
      assertBitwise(mmAlone, mmShared, "matmul");
    } finally {
      void saved;
      resetRuntime();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// selection API
// ------------------------------------------------------------------------------------------------

describe("backend selection", () => {
  test("default, set, get", () => {
    assert.equal(getBackendName(), hasWasm ? "wasm" : "ref");
    setBackend("ref");
    assert.equal(getBackend().name, refBackend.name); // behind the door (door.ts)
    assert.equal(getBackendName(), "ref");
    if (hasWasm) {
      setBackend("wasm");
      assert.equal(getBackend().name, wasmBackend.name);
    }
    assert.throws(() => setBackend("gpu" as "ref"));
  });

  test("thread count", () => {
    setNumThreads(3);
    assert.equal(getNumThreads(), 3);
    assert.throws(() => setNumThreads(0));
    assert.throws(() => setNumThreads(1.5));
    setNumThreads(1);
  });
});
