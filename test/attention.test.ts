/**
 * Attention semantics beyond the fixtures: hand-worked numbers, the lookup table's zero gradients,
 * invariants (parameter count vs heads, GQA with Hkv = H is MHA, enableGqa = repeat_interleave),
 * dropout reproducibility, layouts and train/eval.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ArgumentError, GroupedQueryAttention, MultiheadAttention, type Tensor, causalMask, concat, lookupAttention, paddingMask, randn,
  scaledDotProductAttention, scaledDotProductAttentionWithWeights, slice, sum, tensor, transpose, reshape, mul, noGrad,
  attentionWeights,
} from "../src/index.js";
import { causalLimit } from "../src/kernels/causal.js";
import { relError } from "./harness.js";

const f64 = { dtype: "float64" as const };

describe("lookup table", () => {
  test("exact match returns the first matching value row; no match gives zeros", () => {
    const key = tensor([[1, 0], [0, 1], [0, 1]]);
    const value = tensor([[10, 11], [20, 21], [30, 31]]);
    const query = tensor([[0, 1], [1, 0], [5, 5]]);
    assert.deepEqual(lookupAttention(query, key, value).arraySync(), [[20, 21], [10, 11], [0, 0]]);
  });
  test("nearest picks the largest dot product", () => {
    const key = tensor([[1, 0], [0, 1]]);
    const value = tensor([[1], [2]]);
    assert.deepEqual(lookupAttention(tensor([[0.2, 0.9]]), key, value, { match: "nearest" }).arraySync(), [[2]]);
  });
  test("gradients: selected value rows only; query and key exactly zero", () => {
    const q = tensor([[0, 1], [0, 1]], undefined, { requiresGrad: true });
    const k = tensor([[1, 0], [0, 1], [1, 1]], undefined, { requiresGrad: true });
    const v = tensor([[1, 2], [3, 4], [5, 6]], undefined, { requiresGrad: true });
    sum(lookupAttention(q, k, v)).backward();
    assert.deepEqual(v.grad!.arraySync(), [[0, 0], [2, 2], [0, 0]]); // row 1 picked twice
    assert.ok(q.grad!.values.every((x) => x === 0));
    assert.ok(k.grad!.values.every((x) => x === 0));
  });
});

describe("scaled dot-product attention", () => {
  test("hand-worked: q·k = 1, 0 scaled by 1/sqrt(2)", () => {
    // scores [1/sqrt2, 0] -> p0 = e^(1/sqrt2) / (e^(1/sqrt2) + 1); out = p0 v0 + (1 - p0) v1
    const p0 = Math.exp(Math.SQRT1_2) / (Math.exp(Math.SQRT1_2) + 1);
    const out = scaledDotProductAttention(tensor([[1, 0]], undefined, f64), tensor([[1, 0], [0, 1]], undefined, f64), tensor([[1, 2], [3, 4]], undefined, f64));
    const want = [p0 * 1 + (1 - p0) * 3, p0 * 2 + (1 - p0) * 4];
    out.values.forEach((x, i) => assert.ok(Math.abs(x - want[i]) < 1e-14));
  });
  test("temperature: a huge scale turns attention into the lookup table", () => {
    const k = randn([5, 4], { seed: 1 });
    const v = randn([5, 3], { seed: 2 });
    const q = randn([3, 4], { seed: 3 });
    const soft = scaledDotProductAttention(q, k, v, { scale: 1e4 });
    const hard = lookupAttention(q, k, v, { match: "nearest" });
    assert.ok(relError(soft, hard) < 1e-5);
  });
  test("weights rows sum to 1, masked entries are 0", () => {
    const m = causalMask(3, 3);
    const [, w] = scaledDotProductAttentionWithWeights(randn([2, 3, 4], { seed: 1 }), randn([2, 3, 4], { seed: 2 }), randn([2, 3, 4], { seed: 3 }), { attnMask: m });
    const rows = sum(w, -1).values;
    assert.ok(rows.every((s) => Math.abs(s - 1) < 1e-6));
    assert.equal((w.arraySync() as number[][][])[0][0][1], 0);
  });
  test("causal alignments drawn", () => {
    assert.deepEqual(causalMask(2, 4, "top-left").arraySync(), [[true, false, false, false], [true, true, false, false]]);
    assert.deepEqual(causalMask(2, 4, "bottom-right").arraySync(), [[true, true, true, false], [true, true, true, true]]);
    assert.deepEqual(causalMask(3, 2, "bottom-right").arraySync(), [[false, false], [true, false], [true, true]]);
    // the one rule every backend uses: the last key row l sees (negative: none)
    assert.deepEqual([0, 1, 2].map((l) => causalLimit("bottom-right", l, 3, 2)), [-1, 0, 1]);
    assert.deepEqual([0, 1].map((l) => causalLimit("top-left", l, 2, 4)), [0, 1]);
    assert.deepEqual([0, 1].map((l) => causalLimit("none", l, 2, 4)), [3, 3]);
  });
  test("isCausal equals the explicit bool mask", () => {
    const [q, k, v] = [randn([2, 3, 5, 4], { seed: 1 }), randn([2, 3, 7, 4], { seed: 2 }), randn([2, 3, 7, 2], { seed: 3 })];
    for (const a of ["top-left", "bottom-right"] as const) {
      const x = scaledDotProductAttention(q, k, v, { isCausal: true, causalAlignment: a });
      const y = scaledDotProductAttention(q, k, v, { attnMask: causalMask(5, 7, a) });
      assert.equal(relError(x, y), 0);
    }
  });
  test("enableGqa equals repeating each key/value head G times (repeat_interleave)", () => {
    const q = randn([2, 6, 3, 4], { seed: 1 });
    const k = randn([2, 2, 5, 4], { seed: 2 });
    const v = randn([2, 2, 5, 3], { seed: 3 });
    const rep = (t: Tensor): Tensor => concat([0, 0, 0, 1, 1, 1].map((h) => slice(t, 1, h, h + 1)), 1); // [2, 2, S, E] -> [2, 6, S, E]
    const x = scaledDotProductAttention(q, k, v, { enableGqa: true });
    const y = scaledDotProductAttention(q, rep(k), rep(v));
    assert.ok(relError(x, y) < 1e-6);
  });
  test("unbatched equals batched with leading ones", () => {
    const [q, k, v] = [randn([3, 4], { seed: 1 }), randn([5, 4], { seed: 2 }), randn([5, 2], { seed: 3 })];
    const a = scaledDotProductAttention(q, k, v);
    const b = scaledDotProductAttention(reshape(q, [1, 1, 3, 4]), reshape(k, [1, 1, 5, 4]), reshape(v, [1, 1, 5, 2]));
    assert.equal(relError(reshape(b, [3, 2]), a), 0);
  });
  test("dropout: same seed same mask, the fraction dropped is p, kept weights scaled by 1/(1-p)", () => {
    const S = 64;
    const q = randn([1, 2, 64, 8], { seed: 1 });
    const k = randn([1, 2, S, 8], { seed: 2 });
    const eye = tensor(Float32Array.from({ length: S * S }, (_, i) => (i % (S + 1) === 0 ? 1 : 0)), [S, S]);
    const v = reshape(eye, [1, 1, S, S]).expand([1, 2, S, S]);
    const a = scaledDotProductAttention(q, k, v, { dropoutP: 0.25, dropoutSeed: 5 }); // = dropout(P) since V = I
    const b = scaledDotProductAttention(q, k, v, { dropoutP: 0.25, dropoutSeed: 5 });
    const c = scaledDotProductAttention(q, k, v, { dropoutP: 0.25, dropoutSeed: 6 });
    assert.equal(relError(a, b), 0);
    assert.ok(relError(a, c) > 0);
    const zeros = a.values.filter((x) => x === 0).length / a.size;
    assert.ok(Math.abs(zeros - 0.25) < 0.02, `dropped fraction ${zeros}`);
    const p = attentionWeights(q, k);
    let maxDiff = 0;
    a.values.forEach((x, i) => { if (x !== 0) maxDiff = Math.max(maxDiff, Math.abs(x - p.values[i] / 0.75)); });
    assert.ok(maxDiff < 1e-6);
  });
});

describe("MultiheadAttention and GroupedQueryAttention", () => {
  test("the parameter count does not depend on the number of heads", () => {
    const counts = [1, 2, 4, 8, 16].map((h) => new MultiheadAttention(16, h).numParameters());
    assert.deepEqual(counts, Array(5).fill(4 * 16 * 16 + 4 * 16)); // in_proj 3E*E + 3E, out_proj E*E + E
  });
  test("GQA shrinks only the key/value projections: E*E*2 + 2*E*(Hkv*E/H)", () => {
    for (const hkv of [8, 4, 2, 1]) assert.equal(new GroupedQueryAttention(16, 8, hkv).numParameters(), 2 * 256 + 2 * 16 * hkv * 2);
  });
  test("PyTorch parameter names", () => {
    assert.deepEqual([...new MultiheadAttention(8, 2).namedParameters().keys()], ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]);
    assert.deepEqual([...new MultiheadAttention(8, 2, { kdim: 3, vdim: 5, addBiasKv: true }).namedParameters().keys()],
      ["q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v", "out_proj.weight", "out_proj.bias"]);
    assert.deepEqual([...new GroupedQueryAttention(8, 4, 2).namedParameters().keys()], ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"]);
  });
  test("self- and cross-attention shapes, both layouts", () => {
    const mha = new MultiheadAttention(8, 2, { batchFirst: true });
    const x = randn([3, 5, 8], { seed: 1 }); // [N, L, E]
    const memory = randn([3, 7, 8], { seed: 2 }); // [N, S, E]
    const [self, ws] = mha.forward(x, x, x);
    const [cross, wc] = mha.forward(x, memory, memory, { averageAttnWeights: false });
    assert.deepEqual([self.shape, ws!.shape, cross.shape, wc!.shape], [[3, 5, 8], [3, 5, 5], [3, 5, 8], [3, 2, 5, 7]]);
    const seqFirst = new MultiheadAttention(8, 2); // same seed -> same weights
    const [out] = seqFirst.forward(transpose(x, 0, 1), transpose(memory, 0, 1), transpose(memory, 0, 1));
    assert.ok(relError(transpose(out, 0, 1), cross) < 1e-6);
  });
  test("isCausal works without a mask and equals an explicit one; padding masks drop keys", () => {
    const mha = new MultiheadAttention(8, 2, { seed: 5 });
    const x = randn([4, 2, 8], { seed: 1 });
    const [a] = mha.forward(x, x, x, { isCausal: true });
    const [b] = mha.forward(x, x, x, { attnMask: causalMask(4, 4) });
    assert.equal(relError(a, b), 0);
    const [, w] = mha.forward(x, x, x, { keyPaddingMask: paddingMask([4, 2], 4) });
    const wArr = w!.arraySync() as number[][][];
    assert.ok(wArr[1].every((row) => row[2] === 0 && row[3] === 0));
  });
  test("GQA with numKvHeads == numQueryHeads is multi-head attention", () => {
    const E = 12;
    const mha = new MultiheadAttention(E, 3, { seed: 1 });
    const gqa = new GroupedQueryAttention(E, 3, 3, { bias: true });
    const w = mha.in_proj_weight!;
    const b = mha.in_proj_bias!;
    gqa.loadStateDict({
      "q_proj.weight": slice(w, 0, 0, E), "k_proj.weight": slice(w, 0, E, 2 * E), "v_proj.weight": slice(w, 0, 2 * E),
      "q_proj.bias": slice(b, 0, 0, E), "k_proj.bias": slice(b, 0, E, 2 * E), "v_proj.bias": slice(b, 0, 2 * E),
      "o_proj.weight": mha.out_proj.weight, "o_proj.bias": mha.out_proj.bias!,
    });
    const x = randn([5, 2, E], { seed: 2 });
    assert.ok(relError(gqa.forward(x, x, x, { isCausal: true })[0], mha.forward(x, x, x, { isCausal: true })[0]) < 1e-6);
  });
  test("needWeights: false gives the same output (fused path vs materialised, float32 rounding) and null weights", () => {
    const gqa = new GroupedQueryAttention(8, 4, 1, { batchFirst: true });
    const x = randn([2, 3, 8], { seed: 1 });
    const [a, w] = gqa.forward(x, x, x, { needWeights: false });
    assert.equal(w, null);
    assert.ok(relError(a, gqa.forward(x, x, x)[0]) < 1e-6);
  });
  test("dropout acts only in training mode", () => {
    const mha = new MultiheadAttention(8, 2, { dropout: 0.5 });
    const x = randn([3, 1, 8], { seed: 1 });
    const t1 = mha.forward(x, x, x)[0];
    const t2 = mha.forward(x, x, x)[0];
    assert.ok(relError(t1, t2) > 0);
    mha.eval();
    assert.equal(relError(mha.forward(x, x, x)[0], mha.forward(x, x, x)[0]), 0);
  });
  test("unknown option keys are refused with the closest valid name (constructor and forward)", () => {
    const named = (name: string) => (e: unknown): boolean => e instanceof ArgumentError && e.message.includes(`did you mean "${name}"`);
    assert.throws(() => new MultiheadAttention(8, 2, { batch_first: true } as never), named("batchFirst"));
    assert.throws(() => new MultiheadAttention(8, 2, { add_bias_kv: true } as never), named("addBiasKv"));
    assert.throws(() => new GroupedQueryAttention(8, 4, 2, { batch_first: true } as never), named("batchFirst"));
    assert.throws(() => new GroupedQueryAttention(8, 4, 2, { addBiasKv: true } as never), /unknown option "addBiasKv"/, "GQA has no addBiasKv");
    const x = randn([3, 1, 8], { seed: 1 });
    const mha = new MultiheadAttention(8, 2);
    assert.throws(() => mha.forward(x, x, x, { isCasual: true } as never), named("isCausal"));
    assert.throws(() => new GroupedQueryAttention(8, 4, 2).forward(x, x, x, { need_weights: false } as never), named("needWeights"));
    assert.throws(() => mha.forward(x, x, x, { key_padding_mask: null } as never), named("keyPaddingMask"));
  });
  test("gradients reach every parameter", () => {
    const mha = new MultiheadAttention(8, 2, { addBiasKv: true });
    const x = randn([3, 2, 8], { seed: 1 });
    sum(mul(mha.forward(x, x, x)[0], 1)).backward();
    for (const [name, p] of mha.namedParameters()) assert.ok(p.grad && p.grad.values.some((g) => g !== 0), name);
    noGrad(() => mha.zeroGrad());
    assert.ok(mha.parameters().every((p) => p.grad === null));
  });
});
