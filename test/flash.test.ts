/**
 * src/kernels/ref/flash.ts, the ref backend's tiled attention (FlashAttention-2 in plain TypeScript),
 * against the independent materialising float64 computation of attention-naive.ts: odd sizes, every
 * mask kind, causal kind, GQA ratio and dropout, with tiles from 3 × 5 to 64 × 64, for out, lse, dq,
 * dk and dv. Then the step-wise form (which tiles run, and the state m, l, O they leave), and named
 * edge cases: NaN inputs, a huge finite mask (hand-worked numbers).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ArgumentError, ShapeError, type BackendName, type Tensor, cast, flashAttentionSteps, getBackendName, randn,
  scaledDotProductAttention, setBackend, tensor,
} from "../src/index.js";
import type { AttentionParams, Backend, CausalKind } from "../src/kernels/backend.js";
import {
  type FlashTiles, flashAttentionBackward, flashAttentionForward, flashForwardSteps,
} from "../src/kernels/ref/flash.js";
import { type Case, type F, assertClose, caseName, compareResults, makeProblem, naive, runBackend } from "./attention-naive.js";
import { relError } from "./harness.js";

/** flash.ts as a backend with the given tiles, keeping lseLo from forward for backward as the op layer does. */
function flashWith(tiles: FlashTiles): Pick<Backend, "attentionForward" | "attentionBackward"> {
  let lseLo = new Float64Array(0);
  return {
    attentionForward(p, q, k, v, out, lse) {
      lseLo = new Float64Array(lse.length).fill(NaN);
      flashAttentionForward(p, q, k, v, out, lse, lseLo, tiles);
    },
    attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv) {
      flashAttentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo, tiles);
    },
  };
}

const TILES: FlashTiles[] = [{ Br: 3, Bc: 5 }, { Br: 8, Bc: 8 }, { Br: 64, Bc: 64 }];

// Every (L, S) pair of odd sizes; E, the mask kind (7), the causal kind (3), the head ratio and dropout
// cycle with it, so every mask kind meets every causal kind (7 and 3 are coprime).
const CASES: Case[] = [];
{
  const lens = [1, 3, 17, 33, 257];
  const dims: [number, number][] = [[1, 8], [8, 24], [24, 1], [8, 5]];
  const masks: Case["mask"][] = ["none", "bool-bhls", "bool-b1ls", "bool-keypad", "float-1hls", "float-ls", "bool-full-rows"];
  const causals: CausalKind[] = ["none", "top-left", "bottom-right"];
  const heads: [number, number][] = [[1, 1], [2, 2], [4, 2], [3, 1], [4, 1]];
  let i = 0;
  for (const L of lens) {
    for (const S of lens) {
      const [E, Ev] = dims[i % dims.length];
      const [H, Hkv] = L * S > 4000 ? [2, 1] : heads[i % heads.length]; // keep the 257 x 257 naive check small
      CASES.push({
        B: 1 + (i % 2), H, Hkv, L, S, E, Ev, causal: causals[i % 3], mask: masks[i % masks.length],
        scale: i % 5 === 4 ? 0.37 : undefined, dropoutP: [0, 0, 0.3][Math.floor(i / 2) % 3], seed: 500 + i,
      });
      i++;
    }
  }
  CASES.push({ B: 1, H: 2, Hkv: 1, L: 17, S: 33, E: 8, Ev: 8, causal: "top-left", dropoutP: 1 }); // drops everything
}

describe("flash.ts equals the materialising computation", () => {
  for (const [ci, c] of CASES.entries()) {
    test(caseName(c), () => {
      const pr = makeProblem(c, Float64Array, ci + 1);
      const want = naive(pr);
      for (const tiles of TILES) {
        const got = runBackend(flashWith(tiles), pr, Float64Array);
        compareResults(got, want, 1e-12, 1e-10, `tiles ${tiles.Br}x${tiles.Bc}`);
      }
    });
  }

  test("float32 storage (float64 arithmetic; lse stored as float32 or float64)", () => {
    const cases: Case[] = [
      { B: 2, H: 4, Hkv: 2, L: 33, S: 17, E: 24, Ev: 8, causal: "bottom-right", mask: "float-1hls", dropoutP: 0.2 },
      { B: 1, H: 3, Hkv: 1, L: 17, S: 33, E: 8, Ev: 24, causal: "top-left", mask: "bool-full-rows" },
    ];
    for (const c of cases) {
      const pr = makeProblem(c, Float32Array, 9);
      const want = naive(pr); // the same float32 inputs, in float64
      for (const lseCtor of [Float32Array, Float64Array]) {
        const got = runBackend(flashWith({ Br: 3, Bc: 5 }), pr, Float32Array, lseCtor);
        // out and the gradients are the float64 results rounded once to float32
        compareResults(got, want, 1e-7, 1e-6, `${caseName(c)} lse ${lseCtor.name}`);
      }
    }
  });

  test("tile sizes must be positive integers", () => {
    const pr = makeProblem({ B: 1, H: 1, Hkv: 1, L: 3, S: 3, E: 2, Ev: 2 }, Float64Array);
    const out = new Float64Array(6), lse = new Float64Array(3);
    assert.throws(() => flashAttentionForward(pr.p, pr.q, pr.k, pr.v, out, lse, undefined, { Br: 0, Bc: 8 }),
      (e: unknown) => e instanceof ArgumentError && /flashAttentionForward: tiles.Br must be a positive integer, got 0/.test(String(e)));
  });
});

// ------------------------------------------------------------------------------------------------
// the step-wise form
// ------------------------------------------------------------------------------------------------

function params(L: number, S: number, E: number, Ev: number, causal: CausalKind = "none"): AttentionParams {
  return { B: 1, H: 1, Hkv: 1, L, S, E, Ev, scale: 1 / Math.sqrt(E), causal, mask: null, dropoutP: 0, dropoutSeed: 0 };
}

describe("flashForwardSteps: the forward one tile at a time", () => {
  test("tiles wholly hidden by causality are no steps (counted by hand)", () => {
    const pr = makeProblem({ B: 1, H: 1, Hkv: 1, L: 8, S: 8, E: 2, Ev: 2 }, Float64Array);
    const run = (L: number, S: number, causal: CausalKind): ReturnType<typeof flashForwardSteps> =>
      flashForwardSteps(params(L, S, 2, 2, causal), pr.q, pr.k, pr.v, Infinity, { Br: 2, Bc: 2 });
    // 4 x 4 tiles; top-left: query tile i sees key tiles 0..i -> 1 + 2 + 3 + 4 = 10 steps
    const tl = run(8, 8, "top-left");
    assert.equal(tl.totalSteps, 10);
    assert.deepEqual(tl.steps.map((t) => [t.r0, t.c0]), [[0, 0], [2, 0], [2, 2], [4, 0], [4, 2], [4, 4], [6, 0], [6, 2], [6, 4], [6, 6]]);
    assert.equal(run(8, 8, "none").totalSteps, 16);
    // L = 4, S = 8, bottom-right: row l sees keys s <= l + 4; rows 0-1 see key tiles 0..2, rows 2-3 all 4
    assert.equal(run(4, 8, "bottom-right").totalSteps, 7);
    // L = 8, S = 4, bottom-right: rows 0-3 see nothing (no steps), rows 4-5 key tiles 0, 1 ... -> 0 + 0 + 1 + 2
    assert.equal(run(8, 4, "bottom-right").totalSteps, 3);
  });

  test("after k steps, m, l and O are the max, sum and weighted sum over the scores visited so far", () => {
    const L = 7, S = 9, E = 3, Ev = 2;
    const pr = makeProblem({ B: 1, H: 1, Hkv: 1, L, S, E, Ev }, Float64Array, 4);
    const p = params(L, S, E, Ev, "top-left");
    const total = flashForwardSteps(p, pr.q, pr.k, pr.v, Infinity, { Br: 3, Bc: 2 }).totalSteps;
    for (let k = 0; k <= total; k++) {
      const st = flashForwardSteps(p, pr.q, pr.k, pr.v, k, { Br: 3, Bc: 2 });
      assert.equal(st.steps.length, k);
      for (let l = 0; l < L; l++) {
        const seen: number[] = []; // the keys of row l in the tiles visited (top-left: those with s <= l)
        for (const t of st.steps) if (l >= t.r0 && l < t.r1) for (let s = t.c0; s < t.c1; s++) if (s <= l) seen.push(s);
        const sc = seen.map((s) => p.scale * Array.from({ length: E }, (_, e) => pr.q[l * E + e] * pr.k[s * E + e]).reduce((a, b) => a + b, 0));
        const m = Math.max(-Infinity, ...sc);
        const w = sc.map((x) => Math.exp(x - m));
        const l1 = w.reduce((a, b) => a + b, 0);
        const what = `step ${k} row ${l}`;
        assert.equal(st.m[l], m, `${what}: m`);
        assert.ok(Math.abs(st.l[l] - l1) <= 1e-14 * Math.max(1, l1), `${what}: l ${st.l[l]} vs ${l1}`);
        for (let c = 0; c < Ev; c++) {
          const O = seen.reduce((a, s, i) => a + w[i] * pr.v[s * Ev + c], 0);
          assert.ok(Math.abs(st.O[l * Ev + c] - O) <= 1e-13, `${what}: O ${st.O[l * Ev + c]} vs ${O}`);
          assert.equal(st.out[l * Ev + c], seen.length === 0 ? 0 : st.O[l * Ev + c] / st.l[l], `${what}: out`);
        }
      }
    }
  });

  test("flashAttentionSteps (tensors, for the explorer): all steps give softmax(QKᵀ · scale) V of the math path", () => {
    const q = randn([10, 4], { seed: 1, dtype: "float64" }), k = randn([10, 4], { seed: 2, dtype: "float64" });
    const v = randn([10, 3], { seed: 3, dtype: "float64" });
    for (const opts of [{ Br: 4, Bc: 4 }, { Br: 3, Bc: 7, isCausal: true }, { Br: 1, Bc: 2, scale: 0.3, isCausal: true, causalAlignment: "bottom-right" as const }]) {
      const st = flashAttentionSteps(q, k, v, opts);
      assert.equal(st.steps.length, st.totalSteps);
      const { Br: _br, Bc: _bc, ...sdpaOpts } = opts; // tile sizes are flashAttentionSteps' own options
      const want = scaledDotProductAttention(q, k, v, { ...sdpaOpts, implementation: "math" });
      assert.ok(relError(st.out, want) < 1e-14, `${JSON.stringify(opts)}: ${relError(st.out, want)}`);
    }
    const half = flashAttentionSteps(q, k, v, { Br: 4, Bc: 4, steps: 4 }); // 3 x 3 tiles: query tile 0, and tile 1 against keys 0-3
    assert.deepEqual(half.steps, [{ r0: 0, r1: 4, c0: 0, c1: 4 }, { r0: 0, r1: 4, c0: 4, c1: 8 }, { r0: 0, r1: 4, c0: 8, c1: 10 }, { r0: 4, r1: 8, c0: 0, c1: 4 }]);
    assert.deepEqual([...half.l.slice(8)], [0, 0]);
    assert.throws(() => flashAttentionSteps(randn([2, 3, 4]), randn([2, 3, 4]), randn([2, 3, 4])),
      (e: unknown) => e instanceof ShapeError && /flashAttentionSteps: steps through one head, so query must be \[L, E\]; got \[2, 3, 4\]/.test(String(e)));
    assert.throws(() => flashAttentionSteps(q, k, v, { steps: -1 }), /flashAttentionSteps: steps must be a non-negative integer/);
  });
});

// ------------------------------------------------------------------------------------------------
// named edge cases
// ------------------------------------------------------------------------------------------------

const isNaNRow = (a: ArrayLike<number>, from: number, n: number): boolean => Array.from({ length: n }, (_, i) => a[from + i]).every(Number.isNaN);

/** Runs flash.ts with tiles on a problem; NaN kept (assertClose refuses NaN, so callers check it apart). */
function runFlash(pr: ReturnType<typeof makeProblem>, tiles: FlashTiles): { out: F; lse: F; dq: F; dk: F; dv: F } {
  return runBackend(flashWith(tiles), pr, Float64Array);
}

describe("NaN in gives NaN out (as the math path and PyTorch), never a silent 0", () => {
  test("a query row of NaN: that row's out, lse and dq are NaN, and dk, dv of the keys it sees; the rest as without it", () => {
    for (const causal of ["none", "top-left"] as const) {
      const c: Case = { B: 1, H: 2, Hkv: 1, L: 7, S: 9, E: 4, Ev: 3, causal };
      const pr = makeProblem(c, Float64Array, 2);
      const row = 1 * 7 + 2; // head 1, query 2
      for (let e = 0; e < 4; e++) pr.q[row * 4 + e] = NaN;
      const clean = naive(makeProblem(c, Float64Array, 2)); // the other rows' out, lse and dq do not depend on row 2 of head 1
      for (const tiles of TILES) {
        const r = runFlash(pr, tiles);
        const what = `${causal}, tiles ${tiles.Br}x${tiles.Bc}`;
        assert.ok(isNaNRow(r.out, row * 3, 3) && Number.isNaN(r.lse[row]) && isNaNRow(r.dq, row * 4, 4), `${what}: the NaN row`);
        for (let l = 0; l < 14; l++) {
          if (l === row) continue;
          assertClose(r.out.subarray(l * 3, l * 3 + 3), clean.out.subarray(l * 3, l * 3 + 3), 1e-12, 1e-10, `${what}: out row ${l}`);
          assertClose(r.dq.subarray(l * 4, l * 4 + 4), clean.dq.subarray(l * 4, l * 4 + 4), 1e-12, 1e-10, `${what}: dq row ${l}`);
        }
        for (let s = 0; s < 9; s++) {
          const seen = causal === "none" || s <= 2;
          assert.equal(isNaNRow(r.dk, s * 4, 4), seen, `${what}: dk[${s}] NaN iff query 2 sees key ${s}`);
          assert.equal(isNaNRow(r.dv, s * 3, 3), seen, `${what}: dv[${s}] NaN iff query 2 sees key ${s}`);
          if (!seen) assert.ok(Array.from(r.dk.subarray(s * 4, s * 4 + 4)).every(Number.isFinite), `${what}: dk[${s}] finite`);
        }
      }
    }
  });

  test("a NaN in a float mask row makes that row NaN (one NaN, or the whole row)", () => {
    const c: Case = { B: 1, H: 1, Hkv: 1, L: 5, S: 11, E: 4, Ev: 3, mask: "float-ls" };
    const pr = makeProblem(c, Float64Array, 3);
    pr.p.mask!.data[3 * 11 + 7] = NaN; // (l = 3, s = 7)
    pr.p.mask!.data.fill(NaN, 1 * 11, 2 * 11); // row l = 1: no score is ordered, so no max is ever found
    for (const tiles of TILES) {
      const r = runFlash(pr, tiles);
      for (const l of [1, 3]) {
        assert.ok(isNaNRow(r.out, l * 3, 3) && Number.isNaN(r.lse[l]) && isNaNRow(r.dq, l * 4, 4), `row ${l}, tiles ${tiles.Br}x${tiles.Bc}`);
      }
      for (const l of [0, 2, 4]) assert.ok(Array.from(r.out.subarray(l * 3, l * 3 + 3)).every(Number.isFinite), `row ${l} finite`);
    }
  });

  test("through scaledDotProductAttention on the ref backend: the fused path's NaNs sit where the math path's do", () => {
    const saved: BackendName = getBackendName();
    setBackend("ref");
    try {
      const q0 = randn([2, 5, 4], { seed: 1, dtype: "float64" });
      q0.values[1 * 20 + 2 * 4 + 1] = NaN; // head 1, query 2: one NaN element
      const maskNaN = randn([5, 6], { seed: 5, dtype: "float64" });
      maskNaN.values[4 * 6 + 3] = NaN; // query 4's row of the mask
      for (const attnMask of [undefined, maskNaN]) {
        const run = (implementation: "fused" | "math"): Tensor[] => {
          const q = q0.detach(), k = randn([2, 6, 4], { seed: 2, dtype: "float64" }), v = randn([2, 6, 3], { seed: 3, dtype: "float64" });
          for (const x of [q, k, v]) x.requiresGrad = true;
          const out = scaledDotProductAttention(q, k, v, { attnMask, implementation });
          out.backward(randn([2, 5, 3], { seed: 4, dtype: "float64" }));
          return [out, q.grad!, k.grad!, v.grad!];
        };
        const fused = run("fused"), math = run("math");
        ["out", "dq", "dk", "dv"].forEach((name, i) => {
          const a = fused[i].values, b = math[i].values;
          for (let j = 0; j < b.length; j++) {
            assert.equal(Number.isNaN(a[j]), Number.isNaN(b[j]), `${name}[${j}] (${attnMask ? "NaN in mask" : "NaN in query"}): ${a[j]} vs ${b[j]}`);
            if (!Number.isNaN(b[j])) assert.ok(Math.abs(a[j] - b[j]) <= 1e-12, `${name}[${j}]: ${a[j]} vs ${b[j]}`);
          }
        });
      }
    } finally {
      setBackend(saved);
    }
  });
});

describe("a float mask of huge finite values: backward keeps log(l) apart from m", () => {
  // q = [[1]], k = [[1], [2]], v = [[1], [3]], mask [[M, M]] with M = -1e30: scores 1 + M and 2 + M both
  // round to M, so P = [1/2, 1/2], out = 2. With dO = 1: dV = Pᵀ dO = [0.5, 0.5]; dP = v = [1, 3],
  // D = dO · out = 2, dS = P ∘ (dP − D) = [-0.5, 0.5]; dq = dS · k = 0.5, dk = dS q = [-0.5, 0.5].
  // (lse = M + log 2 rounds to M; P = exp(S − lse) = [1, 1] gave dv = [1, 1] and dq = 1.)
  const HUGE = [-1e30, -3.4028234663852886e38]; // the second is float32's lowest finite value

  test("the kernel, hand-worked", () => {
    for (const M of HUGE) {
      for (const ctor of [Float64Array, Float32Array]) {
        const p: AttentionParams = {
          B: 1, H: 1, Hkv: 1, L: 1, S: 2, E: 1, Ev: 1, scale: 1, causal: "none",
          mask: { kind: "float", data: ctor.from([M, M]), strides: [0, 0, 2, 1] }, dropoutP: 0, dropoutSeed: 0,
        };
        const pr = { p, q: ctor.from([1]), k: ctor.from([1, 2]), v: ctor.from([1, 3]), dout: ctor.from([1]) };
        for (const tiles of [{ Br: 1, Bc: 1 }, { Br: 64, Bc: 64 }]) {
          const r = runBackend(flashWith(tiles), pr, ctor);
          const what = `M = ${M}, ${ctor.name}, tiles ${tiles.Br}x${tiles.Bc}`;
          assert.deepEqual([...r.out, ...r.dq, ...r.dk, ...r.dv], [2, 0.5, -0.5, 0.5, 0.5, 0.5], what);
        }
      }
    }
  });

  test("scaledDotProductAttention on the ref backend (fused) gives the math path's gradients", () => {
    const saved: BackendName = getBackendName();
    setBackend("ref");
    try {
      for (const M of HUGE) {
        for (const dtype of ["float64", "float32"] as const) {
          const grads = (implementation: "fused" | "math"): number[] => {
            const q = cast(tensor([[1]]), dtype), k = cast(tensor([[1], [2]]), dtype), v = cast(tensor([[1], [3]]), dtype);
            for (const x of [q, k, v]) x.requiresGrad = true;
            const out = scaledDotProductAttention(q, k, v, { attnMask: cast(tensor([[M, M]]), dtype), implementation });
            out.backward(cast(tensor([[1]]), dtype));
            return [...out.values, ...q.grad!.values, ...k.grad!.values, ...v.grad!.values];
          };
          assert.deepEqual(grads("fused"), [2, 0.5, -0.5, 0.5, 0.5, 0.5], `fused, M = ${M}, ${dtype}`);
          assert.deepEqual(grads("math"), [2, 0.5, -0.5, 0.5, 0.5, 0.5], `math, M = ${M}, ${dtype}`);
        }
      }
    } finally {
      setBackend(saved);
    }
  });
});
