/**
 * Small calls on the wasm backend: the one-row product kernel (rows past the last full tile of 4, all
 * rows of a matrix-vector product) against the 4x8 tile, bitwise, and against a float64 triple loop;
 * frozen weights (src/kernels/frozen.ts): packed once and reused inside a scope, bitwise the same as
 * packing per call, never reused for arrays that are not frozen nor after the scope. No timing.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { MatmulParams } from "../src/kernels/backend.js";
import { withFrozenWeights } from "../src/kernels/dispatch.js";
import { refBackend, setNumThreads, wasmAvailable, wasmBackend, wasmTuning } from "../src/kernels/index.js";
import { getRuntime } from "../src/kernels/wasm/runtime.js";
import { tensor } from "../src/tensor/tensor.js";
import { GPT, generate } from "../src/models/index.js";
import { rng } from "./kernel-inputs.js";

function randF32(n: number, r: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = r() * 2 - 1;
  return x;
}

function assertBitwise(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: differs at ${i}: ${a[i]} vs ${b[i]}`);
}

/** out = op(a) op(b) (+ out) in float64, the definition. */
function naiveMatmul(a: Float32Array, b: Float32Array, init: Float32Array, p: MatmulParams): Float64Array {
  const { m, n, k, transA, transB, accumulate } = p;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = accumulate ? init[i * n + j] : 0;
      for (let q = 0; q < k; q++) s += (transA ? a[q * m + i] : a[i * k + q]) * (transB ? b[j * k + q] : b[q * n + j]);
      out[i * n + j] = s;
    }
  }
  return out;
}

/** a as [m][k] (or [k][m] with transA) from its logical rows. */
function layoutA(rows: Float32Array[], k: number, transA: boolean): Float32Array {
  const m = rows.length, a = new Float32Array(m * k);
  for (let i = 0; i < m; i++) for (let q = 0; q < k; q++) a[transA ? q * m + i : i * k + q] = rows[i][q];
  return a;
}

/** Runs fn with wasmTuning fields set, restoring them afterwards. */
function withTuning<T>(set: Partial<typeof wasmTuning>, fn: () => T): T {
  const saved = { ...wasmTuning };
  Object.assign(wasmTuning, set);
  try {
    return fn();
  } finally {
    Object.assign(wasmTuning, saved);
  }
}

const mm = (m: number, n: number, k: number, transA = false, transB = true, accumulate = false): MatmulParams => ({
  batch: 1, m, n, k, aBatchStride: 0, bBatchStride: 0, transA, transB, accumulate,
});

describe("wasm small calls", { skip: !wasmAvailable() && "WebAssembly SIMD unavailable" }, () => {
  test("rows past the last full tile of 4 are bitwise the rows the 4x8 tile computes, and match float64", () => {
    withTuning({ minMatmulFlops: 0 }, () => {
      setNumThreads(1);
      let seed = 1;
      // n: one panel, 32-column groups plus a leftover panel, two column blocks; k: one and two k blocks
      for (const m of [1, 2, 3, 5, 7]) for (const n of [8, 40, 300]) for (const k of [1, 17, 300]) {
        for (const [transA, transB, acc] of [[false, true, false], [false, false, true], [true, true, true], [true, false, false]]) {
          const r = rng(seed++);
          const big = (m & ~3) + 4; // every row of the big product is in a full tile
          const rows = Array.from({ length: big }, () => randF32(k, r));
          const b = randF32(n * k, r);
          const initBig = randF32(big * n, r);
          const what = `m=${m} n=${n} k=${k} transA=${transA} transB=${transB} acc=${acc}`;
          const small = initBig.slice(0, m * n);
          const p = mm(m, n, k, transA, transB, acc);
          const a = layoutA(rows.slice(0, m), k, transA);
          wasmBackend.matmul(small, a, b, p);
          const full = initBig.slice();
          wasmBackend.matmul(full, layoutA(rows, k, transA), b, mm(big, n, k, transA, transB, acc));
          assertBitwise(small, full.subarray(0, m * n), `${what}: one-row kernel vs 4x8 tile`);
          const want = naiveMatmul(a, b, initBig, p);
          for (let i = 0; i < m * n; i++) {
            assert.ok(Math.abs(small[i] - want[i]) <= 1e-5 * Math.sqrt(k) * (1 + Math.abs(want[i])), `${what}: [${i}] ${small[i]} vs ${want[i]}`);
          }
        }
      }
    });
  });

  test("frozen weights: packed once, bitwise the per-call result, and dropped when the scope ends", () => {
    const rt = getRuntime()!;
    const r = rng(7);
    const [n, k] = [96, 64]; // both products below are over wasmTuning.minMatmulFlops (smaller ones go to the reference)
    const w = tensor(Array.from({ length: n }, () => Array.from(randF32(k, r))));
    const W = w.values as Float32Array;
    const x = randF32(3 * k, r);
    const want = new Float32Array(3 * n);
    wasmBackend.matmul(want, x, W, mm(3, n, k)); // outside a scope: staged and packed per call
    const ref = new Float32Array(3 * n);
    refBackend.matmul(ref, x, W, mm(3, n, k));
    const lower = W.subarray(n / 2 * k); // rows n/2.. of w: a view, as attention modules cut in_proj
    const wantLower = new Float32Array(3 * n / 2);
    wasmBackend.matmul(wantLower, x, lower, mm(3, n / 2, k));
    assert.equal(rt.residentBytes, 0);
    withFrozenWeights([w], () => {
      for (let rep = 0; rep < 3; rep++) {
        const got = new Float32Array(3 * n);
        wasmBackend.matmul(got, x, W, mm(3, n, k));
        assertBitwise(got, want, `frozen call ${rep}`);
        const gotLower = new Float32Array(3 * n / 2);
        wasmBackend.matmul(gotLower, x, lower, mm(3, n / 2, k)); // a view of a frozen tensor is frozen too
        assertBitwise(gotLower, wantLower, `frozen view, call ${rep}`);
      }
      // two packs kept: the whole matrix and its lower half
      assert.equal(rt.residentBytes, 4 * k * (n + n / 2));
      for (let i = 0; i < 3 * n; i++) assert.ok(Math.abs(want[i] - ref[i]) <= 1e-5 * (1 + Math.abs(ref[i])), `vs ref at ${i}`);
    });
    assert.equal(rt.residentBytes, 0, "the scope's end frees the kept packs");
    // after the scope, a write to the weights is seen
    W[0] += 1;
    const after = new Float32Array(3 * n);
    wasmBackend.matmul(after, x, W, mm(3, n, k));
    assert.notEqual(after[0], want[0]);
    W[0] -= 1;
  });

  test("frozen weights: arrays not named are prepared per call, even inside a scope", () => {
    const r = rng(8);
    const [n, k] = [64, 32];
    const frozenW = tensor(Array.from(randF32(n * k, r))); // frozen, but not the operand below
    const b = randF32(n * k, r);
    const x = randF32(k, r);
    withFrozenWeights([frozenW], () => {
      const first = new Float32Array(n);
      wasmBackend.matmul(first, x, b, mm(1, n, k));
      b.fill(0.5); // an activation rewritten between steps (as an arena reuses its arrays)
      const second = new Float32Array(n), want = new Float32Array(n);
      wasmBackend.matmul(second, x, b, mm(1, n, k));
      refBackend.matmul(want, x, b, mm(1, n, k));
      for (let j = 0; j < n; j++) assert.ok(Math.abs(second[j] - want[j]) <= 1e-5 * (1 + Math.abs(want[j])), `column ${j}: ${second[j]} vs ${want[j]}`);
      assert.equal(getRuntime()!.residentBytes, 0, "nothing kept for an array that is not frozen");
    });
  });

  test("frozen weights: an exception ends the scope and frees what was kept; nothing is kept past the budget", () => {
    const r = rng(9);
    const w = tensor(Array.from(randF32(128 * 128, r)));
    const x = randF32(128, r);
    const out = new Float32Array(128);
    let kept = 0;
    assert.throws(() => withFrozenWeights([w], () => {
      wasmBackend.matmul(out, x, w.values as Float32Array, mm(1, 128, 128));
      kept = getRuntime()!.residentBytes;
      throw new Error("boom");
    }), /boom/);
    assert.equal(kept, 4 * 128 * 128, "the pack was kept inside the scope");
    assert.equal(getRuntime()!.residentBytes, 0);
    const want = new Float32Array(128);
    wasmBackend.matmul(want, x, w.values as Float32Array, mm(1, 128, 128));
    withTuning({ residentBudget: 0 }, () => withFrozenWeights([w], () => {
      const got = new Float32Array(128);
      wasmBackend.matmul(got, x, w.values as Float32Array, mm(1, 128, 128));
      assertBitwise(got, want, "over budget: staged per call");
      assert.equal(getRuntime()!.residentBytes, 0);
    }));
  });

  test("generate keeps the weights packed while decoding, and frees them after", () => {
    const model = new GPT("tiny", { seed: 3 });
    const prompt = [[1, 2, 3]];
    const cached = generate(model, prompt, { maxNewTokens: 12, greedy: true, useCache: true });
    const uncached = generate(model, prompt, { maxNewTokens: 12, greedy: true, useCache: false });
    assert.deepEqual(cached, uncached);
    assert.equal(getRuntime()!.residentBytes, 0);
  });
});
