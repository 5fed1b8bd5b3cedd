/**
 * Bad input: every public entry point throws an AttendError subclass whose message names the
 * function, the argument, what was seen and what was expected. Nothing fails later with undefined.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ArgumentError, AttendError, GroupedQueryAttention, MultiheadAttention, ShapeError, StateDictError, crossEntropy, embedding,
  layerNorm, lookupAttention, matmul, randn, reshape, scaledDotProductAttention, softmax, tensor, zeros, add, concat, Linear, Embedding,
  dropout,
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

describe("bad dtypes, generators, shapes and gradients", () => {
  test("an unknown dtype names the function and the dtypes there are", () => {
    throwsWith(() => tensor([1], { dtype: "float16" as never }), ArgumentError, 'tensor: dtype must be one of "float32", "float64", "bool", "int32", got "float16"');
    throwsWith(() => zeros([2], { dtype: "int64" as never }), ArgumentError, "zeros: dtype", '"int64"');
    throwsWith(() => randn([2], { dtype: "int32" }), ArgumentError, 'randn: dtype must be one of "float32", "float64", got "int32"');
    throwsWith(() => new Linear(2, 2, { dtype: "float16" as never }), ArgumentError, "Linear: dtype", '"float16"');
    throwsWith(() => zeros([2]).to("half" as never), ArgumentError, "cast: dtype", '"half"');
  });
  test("a generator that is not a Generator", () => {
    throwsWith(() => randn([2], { generator: {} as never }), ArgumentError, "randn: generator must be a Generator", "got a plain object");
    throwsWith(() => new Linear(2, 2, { generator: {} as never }), ArgumentError, "Linear: generator must be a Generator");
    throwsWith(() => new Embedding(3, 2, { generator: 7 as never }), ArgumentError, "Embedding: generator must be a Generator", "got 7");
    throwsWith(() => dropout(zeros([2]), 0.5, { generator: {} as never }), ArgumentError, "dropout: generator must be a Generator");
    throwsWith(() => scaledDotProductAttention(q, k.slice(1, 0, 6), v.slice(1, 0, 6), { enableGqa: true, generator: {} as never }), ArgumentError,
      "scaledDotProductAttention: generator must be a Generator");
  });
  test("backward with an array instead of a Tensor", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    throwsWith(() => x.mul(2).backward([1, 1] as never), ArgumentError, "Tensor.backward: grad must be a Tensor of the output's shape [2]", "got an array of length 2");
  });
  test("a shape that is not an array, and values that do not fit int32", () => {
    throwsWith(() => tensor([1, 2], 2 as never), ArgumentError, "tensor: shape must be an array of sizes like [2, 3], got 2");
    throwsWith(() => zeros("2" as never), ArgumentError, "zeros: needs a shape", 'got "2"');
    throwsWith(() => (zeros as (...a: unknown[]) => unknown)(2, 3, {}, {}), ArgumentError, "zeros: takes a shape and then one options object");
    throwsWith(() => tensor(new Uint32Array([4294967295])), ArgumentError, "tensor: data[0] = 4294967295 does not fit int32", 'pass { dtype: "float64" }');
    throwsWith(() => tensor(new BigInt64Array([2n ** 40n])), ArgumentError, "tensor: data[0] = 1099511627776 does not fit int32");
    throwsWith(() => tensor(new DataView(new ArrayBuffer(4)) as never), ArgumentError, "tensor: data is a DataView");
  });
});
