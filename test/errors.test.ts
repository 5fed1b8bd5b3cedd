/**
 * Bad input: every public entry point throws an AttendError subclass whose message names the
 * function, the argument, what was seen and what was expected. Nothing fails later with undefined.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ArgumentError, AttendError, GroupedQueryAttention, MultiheadAttention, ShapeError, StateDictError, crossEntropy, embedding,
  layerNorm, lookupAttention, matmul, randn, reshape, scaledDotProductAttention, softmax, tensor, zeros, add, concat,
  type Tensor,
} from "../src/index.js";

function throwsWith(fn: () => unknown, cls: typeof AttendError, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.ok(e instanceof AttendError);
    for (const p of parts) {
      if (typeof p === "string") assert.ok((e as Error).message.includes(p), `message "${(e as Error).message}" lacks "${p}"`);
      else assert.match((e as Error).message, p);
    }
    return true;
  });
}

const q = randn([2, 6, 3, 8], { seed: 1 });
const k = randn([2, 4, 5, 8], { seed: 2 });
const v = randn([2, 4, 5, 8], { seed: 3 });

describe("scaledDotProductAttention rejects", () => {
  test("GQA head counts that do not divide", () => {
    throwsWith(() => scaledDotProductAttention(q, k, v, { enableGqa: true }), ShapeError,
      "scaledDotProductAttention: query has 6 heads and key has 4; with enableGqa the query heads must be a multiple of the key heads");
  });
  test("different head counts without enableGqa", () => {
    throwsWith(() => scaledDotProductAttention(randn([1, 4, 3, 8]), randn([1, 2, 5, 8]), randn([1, 2, 5, 8])), ShapeError, "pass enableGqa");
  });
  test("mismatched head dim and key/value lengths", () => {
    throwsWith(() => scaledDotProductAttention(randn([3, 8]), randn([5, 7]), randn([5, 2])), ShapeError, "E = 8", "has 7");
    throwsWith(() => scaledDotProductAttention(randn([3, 8]), randn([5, 8]), randn([4, 2])), ShapeError, "S = 5", "value has 4");
  });
  test("wrong rank and non-tensors", () => {
    throwsWith(() => scaledDotProductAttention(randn([8]), randn([5, 8]), randn([5, 2])), ShapeError, "query must be at least 2-D", "[8]");
    throwsWith(() => scaledDotProductAttention([[1]] as unknown as Tensor, randn([5, 8]), randn([5, 2])), ArgumentError, "query must be a Tensor", "an array");
  });
  test("masks of the wrong dtype or shape", () => {
    const [a, b, c] = [randn([2, 3, 4]), randn([2, 5, 4]), randn([2, 5, 4])];
    throwsWith(() => scaledDotProductAttention(a, b, c, { attnMask: zeros([3, 5], { dtype: "int32" }) }), ArgumentError, "attnMask must be bool", "int32");
    throwsWith(() => scaledDotProductAttention(a, b, c, { attnMask: zeros([3, 4], { dtype: "bool" }) }), ShapeError, "attnMask of shape [3, 4]", "[2, 3, 5]");
  });
  test("dropoutP outside [0, 1), NaN scale, bad alignment", () => {
    const [a, b, c] = [randn([3, 4]), randn([5, 4]), randn([5, 4])];
    for (const p of [1, -0.1, NaN]) throwsWith(() => scaledDotProductAttention(a, b, c, { dropoutP: p }), ArgumentError, "dropoutP must be in [0, 1)", String(p));
    throwsWith(() => scaledDotProductAttention(a, b, c, { scale: NaN }), ArgumentError, "scale must be a finite number", "NaN");
    throwsWith(() => scaledDotProductAttention(a, b, c, { isCausal: true, causalAlignment: "left" as never }), ArgumentError, "causalAlignment", '"left"');
    throwsWith(() => scaledDotProductAttention(a, b, c, { enableGqa: true }), ShapeError, "enableGqa needs a head dim");
  });
});

describe("lookupAttention rejects", () => {
  test("mismatched features and a bad match", () => {
    throwsWith(() => lookupAttention(randn([2, 3]), randn([4, 2]), randn([4, 1])), ShapeError, "lookupAttention", "3 features", "2");
    throwsWith(() => lookupAttention(randn([2, 3]), randn([4, 3]), randn([4, 1]), { match: "fuzzy" as never }), ArgumentError, 'match must be "exact" or "nearest"');
  });
});

describe("modules reject", () => {
  test("embedDim not divisible by numHeads, bad counts", () => {
    throwsWith(() => new MultiheadAttention(10, 3), ArgumentError, "MultiheadAttention: embedDim 10 must be divisible by numHeads 3");
    throwsWith(() => new MultiheadAttention(8, 0), ArgumentError, "numHeads must be a positive integer, got 0");
    throwsWith(() => new GroupedQueryAttention(12, 6, 4), ArgumentError, "numQueryHeads 6 must be a multiple of numKvHeads 4");
    throwsWith(() => new MultiheadAttention(8, 2, { dropout: 1 }), ArgumentError, "dropout must be in [0, 1)");
  });
  test("inputs of the wrong width, rank or batch", () => {
    const m = new MultiheadAttention(8, 2);
    throwsWith(() => m.forward(randn([3, 2, 6]), randn([3, 2, 8]), randn([3, 2, 8])), ShapeError, "MultiheadAttention.forward: query has 6 features", "expected 8");
    throwsWith(() => m.forward(randn([3, 2, 8]), randn([3, 8]), randn([3, 8])), ShapeError, "query is 3-D but key is 2-D");
    throwsWith(() => m.forward(randn([3, 2, 8]), randn([4, 3, 8]), randn([4, 3, 8])), ShapeError, "batch sizes differ");
  });
  test("masks of the wrong shape", () => {
    const m = new MultiheadAttention(8, 2);
    const x = randn([3, 2, 8]);
    throwsWith(() => m.forward(x, x, x, { keyPaddingMask: zeros([3, 2], { dtype: "bool" }) }), ShapeError, "keyPaddingMask has shape [3, 2]", "[N, S] = [2, 3]");
    throwsWith(() => m.forward(x, x, x, { attnMask: zeros([3, 4], { dtype: "bool" }) }), ShapeError, "attnMask has shape [3, 4]", "[L, S] = [3, 3]");
    throwsWith(() => m.forward(x, x, x, { attnMask: zeros([3, 3], { dtype: "int32" }) }), ArgumentError, "attnMask must be bool or float");
  });
  test("loadStateDict with a missing, extra or wrongly shaped entry changes nothing", () => {
    const m = new MultiheadAttention(4, 2);
    const before = m.in_proj_weight!.dataSync();
    const good = m.stateDict();
    const { in_proj_bias: _dropped, ...missing } = good;
    throwsWith(() => m.loadStateDict(missing), StateDictError, "missing in_proj_bias");
    throwsWith(() => m.loadStateDict({ ...good, extra: zeros([1]) }), StateDictError, "unexpected extra");
    throwsWith(() => m.loadStateDict({ ...good, in_proj_weight: zeros([12, 5]), in_proj_bias: zeros([12]) }), ShapeError,
      "entry in_proj_weight has shape [12, 5]", "[12, 4]");
    assert.deepEqual(m.in_proj_weight!.dataSync(), before);
  });
});

describe("tensor ops reject", () => {
  test("ragged arrays and shape mismatches", () => {
    throwsWith(() => tensor([[1, 2], [3]]), ShapeError, "ragged nested array at data[1]");
    throwsWith(() => tensor([1, 2, 3], [2, 2]), ShapeError, "3 elements", "[2, 2]");
    throwsWith(() => reshape(zeros([2, 3]), [4, 2]), ShapeError, "cannot reshape [2, 3]");
    throwsWith(() => add(zeros([2, 3]), zeros([4])), ShapeError, "do not broadcast");
    throwsWith(() => matmul(zeros([2, 3]), zeros([4, 2])), ShapeError, "inner dims differ");
    throwsWith(() => concat([zeros([2, 3]), zeros([3, 3])], 1), ShapeError, "tensors[1] has shape [3, 3]");
    throwsWith(() => softmax(zeros([2]), 3), ArgumentError, "axis 3 is out of range");
    throwsWith(() => layerNorm(zeros([2, 3]), [4]), ShapeError, "normalizedShape [4]");
  });
  test("indices and targets out of range", () => {
    throwsWith(() => embedding(zeros([3, 2]), [0, 3]), ArgumentError, "index 3 at position 1 is out of range for 3 embeddings");
    throwsWith(() => crossEntropy(zeros([2, 3]), tensor([0, 5], undefined, { dtype: "int32" })), ArgumentError, "target 5 at position 1");
    throwsWith(() => crossEntropy(zeros([2, 3]), tensor([0, 1, 2], undefined, { dtype: "int32" })), ShapeError, "expected [2]");
  });
});
