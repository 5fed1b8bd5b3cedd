/** Tensor creation, dtypes, views, broadcasting and the autograd tape's semantics. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Generator, Tensor, add, arange, argmax, full, manualSeed, matmul, mul, noGrad, ones, rand, randint, randn, reshape, sum,
  tensor, zeros, enableGrad, isGradEnabled, split, concat, slice, max, softmax, logSoftmax, gelu, crossEntropy,
} from "../src/index.js";

describe("creation", () => {
  test("nested arrays infer the shape; numbers default to float32", () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, "float32");
    assert.deepEqual(t.arraySync(), [[1, 2, 3], [4, 5, 6]]);
    assert.ok(t.dataSync() instanceof Float32Array);
  });
  test("flat data with a shape, dtypes, booleans", () => {
    assert.deepEqual(tensor([1, 2, 3, 4], [2, 2], { dtype: "float64" }).arraySync(), [[1, 2], [3, 4]]);
    assert.equal(tensor(new Float64Array(6), [2, 3]).dtype, "float64");
    const b = tensor([[true, false]]);
    assert.equal(b.dtype, "bool");
    assert.ok(b.values instanceof Uint8Array);
    assert.deepEqual(b.arraySync(), [[true, false]]);
    assert.equal(tensor(3.5).item(), 3.5);
    assert.deepEqual(tensor(3.5).shape, []);
  });
  test("dataSync is a copy; tensor() copies its input", () => {
    const src = new Float32Array([1, 2]);
    const t = tensor(src);
    src[0] = 9;
    assert.equal(t.values[0], 1);
    const d = t.dataSync();
    d[1] = 7;
    assert.equal(t.values[1], 2);
  });
  test("zeros, ones, full, arange", () => {
    assert.deepEqual(zeros([2]).arraySync(), [0, 0]);
    assert.deepEqual(ones([1, 2], { dtype: "float64" }).arraySync(), [[1, 1]]);
    assert.deepEqual(full([2], 7).arraySync(), [7, 7]);
    assert.deepEqual(arange(4).arraySync(), [0, 1, 2, 3]);
    assert.deepEqual(arange(1, 2, 0.25).arraySync(), [1, 1.25, 1.5, 1.75]);
    assert.equal(arange(3, undefined, 1, { dtype: "int32" }).dtype, "int32");
  });
  test("sizes as separate numbers, as in PyTorch: zeros(2, 3) is zeros([2, 3])", () => {
    assert.deepEqual(zeros(2, 3).shape, [2, 3]);
    assert.deepEqual(ones(2, { dtype: "float64" }).arraySync(), [1, 1]);
    assert.equal(ones(2, 1, { dtype: "int32" }).dtype, "int32");
    assert.deepEqual(randn(2, 3, { seed: 5 }).dataSync(), randn([2, 3], { seed: 5 }).dataSync());
    assert.deepEqual(rand(4, { seed: 6 }).dataSync(), rand([4], { seed: 6 }).dataSync());
    assert.deepEqual(zeros([]).shape, []); // a 0-d tensor takes an empty array; zeros() is an error, as torch.zeros()
    assert.throws(() => (zeros as (...a: unknown[]) => unknown)(), /zeros: needs a shape, as an array zeros\(\[2, 3\]\) or as sizes zeros\(2, 3\), got nothing/);
  });
  test("typed arrays keep their values: only Uint8Array means bool", () => {
    // each of these became bool [1, 1] (or [true, true]) before
    const cases: [ArrayLike<number | bigint>, number[]][] = [
      [new Int8Array([-1, 2]), [-1, 2]],
      [new Int16Array([-300, 7]), [-300, 7]],
      [new Uint16Array([65535, 0]), [65535, 0]],
      [new Uint8ClampedArray([255, 3]), [255, 3]],
      [new Uint32Array([4000000, 1]), [4000000, 1]],
      [new BigInt64Array([-5n, 2n ** 31n - 1n]), [-5, 2147483647]],
      [new BigUint64Array([9n, 0n]), [9, 0]],
    ];
    for (const [src, want] of cases) {
      const t = tensor(src as Int8Array);
      assert.equal(t.dtype, "int32", src.constructor.name);
      assert.deepEqual(t.arraySync(), want, src.constructor.name);
    }
    assert.equal(tensor(new Uint8Array([0, 2])).dtype, "bool");
    assert.deepEqual(tensor(new Uint8Array([0, 2])).arraySync(), [false, true]);
    assert.deepEqual(tensor(new Uint32Array([4294967295]), { dtype: "float64" }).arraySync(), [4294967295]);
    assert.deepEqual(tensor(new Int8Array([-1, 2]), [2, 1], { dtype: "float32" }).arraySync(), [[-1], [2]]);
  });
  test("options may come second when there is no shape: tensor([1, 2], { dtype })", () => {
    const t = tensor([1, 2], { dtype: "float64", requiresGrad: true });
    assert.equal(t.dtype, "float64");
    assert.ok(t.requiresGrad);
    assert.deepEqual(t.shape, [2]);
  });
});

describe("seeded random numbers", () => {
  test("xoshiro128** seeded by splitmix32 matches an independent implementation", () => {
    // first outputs computed by a separate Python implementation of the same two algorithms
    const g = new Generator(42);
    assert.deepEqual([g.nextUint32(), g.nextUint32(), g.nextUint32(), g.nextUint32()], [2837322924, 544945897, 479756282, 3500138142]);
    const h = new Generator(0);
    assert.deepEqual([h.nextUint32(), h.nextUint32()], [3809008728, 1133695204]);
  });
  test("same seed -> same numbers; generators advance", () => {
    assert.deepEqual(randn([5], { seed: 3 }).arraySync(), randn([5], { seed: 3 }).arraySync());
    const g = new Generator(3);
    const a = randn([5], { generator: g }).arraySync();
    const b = randn([5], { generator: g }).arraySync();
    assert.notDeepEqual(a, b);
    manualSeed(9);
    const c = rand([4]).arraySync();
    manualSeed(9);
    assert.deepEqual(rand([4]).arraySync(), c);
  });
  test("randn has mean ~0 and variance ~1; rand is in [0, 1); randint in range", () => {
    const x = randn([20000], { seed: 1, dtype: "float64" });
    const m = sum(x).item() / x.size;
    const v = sum(mul(x, x)).item() / x.size - m * m;
    assert.ok(Math.abs(m) < 0.03 && Math.abs(v - 1) < 0.05, `mean ${m} var ${v}`);
    const u = rand([1000], { seed: 2 });
    assert.ok(u.values.every((e) => e >= 0 && e < 1));
    const k = randint(2, 5, [1000], { seed: 4 });
    assert.ok(k.values.every((e) => e >= 2 && e < 5));
    assert.equal(k.dtype, "int32");
  });
});

describe("ops: hand-worked values", () => {
  test("broadcast add [2,1] + [3]", () => {
    assert.deepEqual(add(tensor([[1], [2]]), tensor([10, 20, 30])).arraySync(), [[11, 21, 31], [12, 22, 32]]);
  });
  test("matmul [2,2]@[2,1]", () => {
    assert.deepEqual(matmul(tensor([[1, 2], [3, 4]]), tensor([[5], [6]])).arraySync(), [[17], [39]]);
  });
  test("softmax of [0.5, 0] is [0.622, 0.378]; large logits do not overflow", () => {
    const p = softmax(tensor([0.5, 0], undefined, { dtype: "float64" })).values;
    assert.ok(Math.abs(p[0] - 0.6224593312018546) < 1e-12 && Math.abs(p[1] - 0.3775406687981454) < 1e-12);
    const big = softmax(tensor([1000, 1000, -1000])).arraySync();
    assert.deepEqual(big, [0.5, 0.5, 0]);
    assert.ok(logSoftmax(tensor([1000, 0])).values.every(Number.isFinite));
  });
  test("softmax of an all -Infinity row is zeros (not NaN)", () => {
    assert.deepEqual(softmax(tensor([-Infinity, -Infinity])).arraySync(), [0, 0]);
  });
  test("NaN propagates through softmax and max", () => {
    assert.ok(softmax(tensor([1, NaN])).values.every(Number.isNaN));
    assert.ok(Number.isNaN(max(tensor([1, NaN, 3])).item()));
  });
  test("gelu(1) = Phi(1) = 0.8413447460685429 (erf accuracy)", () => {
    assert.ok(Math.abs(gelu(tensor([1], undefined, { dtype: "float64" })).item() - 0.8413447460685429) < 1e-15);
    assert.ok(Math.abs(gelu(tensor([-3], undefined, { dtype: "float64" })).item() - -3 * 0.0013498980316301) < 1e-15);
  });
  test("crossEntropy with every target ignored is 0 (not NaN)", () => {
    const l = crossEntropy(tensor([[1, 2]]), tensor([-100], undefined, { dtype: "int32" }));
    assert.equal(l.item(), 0);
  });
  test("split, concat, slice, argmax", () => {
    const x = arange(6).reshape(2, 3);
    const [a, b] = split(x, 2, 1);
    assert.deepEqual(a.shape, [2, 2]);
    assert.deepEqual(b.arraySync(), [[2], [5]]);
    assert.deepEqual(concat([b, a], 1).arraySync(), [[2, 0, 1], [5, 3, 4]]);
    assert.deepEqual(slice(x, 1, -2).arraySync(), [[1, 2], [4, 5]]);
    assert.deepEqual(argmax(tensor([[1, 3, 3], [2, 0, 1]]), 1).arraySync(), [1, 0]);
  });
  test("reshape shares storage; other views copy", () => {
    const x = arange(4);
    assert.equal(reshape(x, [2, 2]).values, x.values);
  });
});

describe("autograd", () => {
  test("leaf gradients accumulate across backward calls", () => {
    const x = tensor([1, 2, 3], undefined, { requiresGrad: true });
    sum(mul(x, x)).backward();
    sum(mul(x, x)).backward();
    assert.deepEqual(x.grad!.arraySync(), [4, 8, 12]);
  });
  test("a tensor used twice gets the sum of both paths", () => {
    const x = tensor([3], undefined, { requiresGrad: true, dtype: "float64" });
    const y = add(mul(x, x), mul(x, 2)); // y = x^2 + 2x, dy/dx = 2x + 2 = 8
    y.backward();
    assert.equal(x.grad!.item(), 8);
  });
  test("noGrad records nothing; enableGrad re-enables", () => {
    const x = tensor([1], undefined, { requiresGrad: true });
    const y = noGrad(() => mul(x, 2));
    assert.equal(y.requiresGrad, false);
    assert.equal(isGradEnabled(), true);
    noGrad(() => assert.equal(enableGrad(() => mul(x, 2)).requiresGrad, true));
  });
  test("backward needs a one-element output or an explicit gradient", () => {
    const x = tensor([1, 2], undefined, { requiresGrad: true });
    assert.throws(() => mul(x, 2).backward(), /one-element output/);
    mul(x, 2).backward(tensor([1, 1]));
    assert.deepEqual(x.grad!.arraySync(), [2, 2]);
    assert.throws(() => tensor([1]).backward(), /does not require a gradient/);
  });
  test("detach cuts the graph; only float tensors can require grad", () => {
    const x = tensor([1], undefined, { requiresGrad: true });
    assert.equal(mul(x, 2).detach().requiresGrad, false);
    assert.throws(() => tensor([1], undefined, { dtype: "int32", requiresGrad: true }), /only float32\/float64/);
  });
  test("a deep chain does not overflow the stack", () => {
    const x = tensor([1], undefined, { requiresGrad: true, dtype: "float64" });
    let y: Tensor = x;
    for (let i = 0; i < 20000; i++) y = add(y, 1e-4);
    y.backward();
    assert.equal(x.grad!.item(), 1);
  });
});
