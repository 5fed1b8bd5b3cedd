/**
 * Every differentiable op's backward against float64 central finite differences (gradcheck), on
 * random inputs with the shapes that exercise broadcasting, odd sizes and masking.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Generator, GroupedQueryAttention, MultiheadAttention, type Tensor, abs, add, cast, clone, concat, crossEntropy, div, dropout,
  embedding, exp, expand, flatten, gelu, gradcheck, layerNorm, linear, log, logSoftmax, lookupAttention, matmul, max, maximum,
  maskedFill, mean, minimum, mul, neg, permute, pow, randn, relu, reshape, rmsNorm, scaledDotProductAttention, sigmoid, slice,
  softmax, split, sqrt, squeeze, stack, sub, sum, tanh, tensor, transpose, unsqueeze, where, rand,
} from "../src/index.js";
import { result } from "../src/ops/util.js";

let seed = 100;
/** A float64 leaf of random normals (or uniforms in [lo, hi)). */
function r(shape: number[], lo?: number, hi?: number): Tensor {
  seed++;
  if (lo === undefined) return randn(shape, { seed, dtype: "float64", requiresGrad: true });
  const u = rand(shape, { seed, dtype: "float64" });
  const t = add(mul(u, hi! - lo), lo).detach();
  t.requiresGrad = true;
  return t;
}

function check(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): void {
  test(name, () => {
    const res = gradcheck(f, inputs);
    assert.ok(res.ok, `${name}: input ${res.at[0]} element ${res.at[1]}: analytical ${res.analytical} vs numerical ${res.numerical}`);
  });
}

describe("gradcheck: elementwise", () => {
  check("add broadcast [3,1,4]+[2,4]", add, [r([3, 1, 4]), r([2, 4])]);
  check("sub broadcast", sub, [r([2, 3]), r([3])]);
  check("mul broadcast", mul, [r([2, 1, 3]), r([4, 1])]);
  check("div broadcast", div, [r([2, 3]), r([2, 1], 0.5, 2)]);
  check("scalar operands", (a) => div(sub(mul(a, 3), 1), 2), [r([5])]);
  check("maximum", maximum, [r([3, 4]), r([4])]);
  check("minimum", minimum, [r([3, 4]), r([3, 1])]);
  check("pow 3", (a) => pow(a, 3), [r([6])]);
  check("pow -0.5", (a) => pow(a, -0.5), [r([6], 0.5, 2)]);
  check("neg", neg, [r([4])]);
  check("exp", exp, [r([2, 3])]);
  check("log", log, [r([2, 3], 0.2, 3)]);
  check("sqrt", sqrt, [r([2, 3], 0.2, 3)]);
  check("tanh", tanh, [r([7])]);
  check("sigmoid", sigmoid, [r([7])]);
  check("relu (away from 0)", relu, [r([7], 0.1, 1)]);
  check("relu negative side", relu, [r([3], -1, -0.1)]);
  check("abs (away from 0)", abs, [r([5], 0.1, 2)]);
  check("gelu exact", (a) => gelu(a), [r([9], -4, 4)]);
  check("gelu tanh", (a) => gelu(a, "tanh"), [r([9], -4, 4)]);
  const cond = tensor([[true, false, true], [false, false, true]]);
  check("where broadcast", (a, b) => where(cond, a, b), [r([2, 3]), r([3])]);
  check("maskedFill", (a) => maskedFill(a, cond, -2), [r([2, 3])]);
  check("clone and cast", (a) => cast(clone(a), "float64"), [r([3])]);
});

describe("gradcheck: reductions and shapes", () => {
  check("sum all", (a) => sum(a), [r([2, 3])]);
  check("sum axes keepdim", (a) => sum(a, [0, 2], true), [r([2, 3, 4])]);
  check("mean axis", (a) => mean(a, -1), [r([3, 5])]);
  check("max axis (distinct values)", (a) => max(a, 1), [r([3, 4])]);
  check("max all", (a) => max(a), [r([3, 4])]);
  check("reshape -1", (a) => reshape(a, [-1, 2]), [r([3, 4])]);
  check("flatten", (a) => flatten(a, 1), [r([2, 3, 2])]);
  check("permute", (a) => permute(a, [2, 0, 1]), [r([2, 3, 4])]);
  check("transpose", (a) => transpose(a, 0, 2), [r([2, 3, 4])]);
  check("squeeze/unsqueeze", (a) => unsqueeze(squeeze(a, 1), 0), [r([3, 1, 2])]);
  check("expand", (a) => expand(a, [4, 3, 2]), [r([3, 1])]);
  check("slice negative", (a) => slice(a, 1, 1, -1), [r([2, 5])]);
  check("concat", (a, b) => concat([a, b, a], 1), [r([2, 1]), r([2, 3])]);
  check("stack", (a, b) => stack([a, b], 1), [r([2, 3]), r([2, 3])]);
  check("split", (a) => { const [p, q] = split(a, [1, 3], 1); return mul(sum(p), q); }, [r([2, 4])]);
});

describe("gradcheck: matmul and network ops", () => {
  check("matmul 2-D", matmul, [r([3, 4]), r([4, 2])]);
  check("matmul broadcast batch [2,1,3,4]@[5,4,2]", matmul, [r([2, 1, 3, 4]), r([5, 4, 2])]);
  check("matmul partial broadcast [2,3,1,2,3]@[2,1,4,3,2]", matmul, [r([2, 3, 1, 2, 3]), r([2, 1, 4, 3, 2])]);
  check("matmul vector @ matrix", matmul, [r([4]), r([2, 4, 3])]);
  check("matmul matrix @ vector", matmul, [r([2, 3, 4]), r([4])]);
  check("matmul vector @ vector", matmul, [r([4]), r([4])]);
  check("softmax axis 1", (a) => softmax(a, 1), [r([2, 3, 4])]);
  check("logSoftmax", (a) => logSoftmax(a, -1), [r([3, 5])]);
  check("layerNorm", (a, w, b) => layerNorm(a, [4], w, b), [r([3, 4]), r([4]), r([4])]);
  check("layerNorm 2 dims", (a) => layerNorm(a, [2, 3]), [r([2, 2, 3])]);
  check("rmsNorm", (a, w) => rmsNorm(a, 4, w, 1e-6), [r([3, 4]), r([4])]);
  check("linear", (a, w, b) => linear(a, w, b), [r([2, 3, 4]), r([5, 4]), r([5])]);
  const idx = tensor([[0, 2, 2], [1, 0, 3]], undefined, { dtype: "int32" });
  check("embedding (repeated index)", (w) => embedding(w, idx), [r([4, 3])]);
  check("dropout (seeded mask)", (a) => dropout(a, 0.4, { generator: new Generator(7) }), [r([20])]);
  const target = tensor([1, 0, 3, -100], undefined, { dtype: "int32" });
  check("crossEntropy ignoreIndex", (a) => crossEntropy(a, target), [r([4, 4])]);
  check("crossEntropy labelSmoothing sum", (a) => crossEntropy(a, target, { labelSmoothing: 0.2, reduction: "sum" }), [r([4, 4])]);
  const t3 = tensor([[0, 2], [1, 1]], undefined, { dtype: "int32" });
  check("crossEntropy [N, C, d]", (a) => crossEntropy(a, t3, { reduction: "none" }), [r([2, 3, 2])]);
  const probs = softmax(randn([3, 4], { seed: 5, dtype: "float64" }));
  check("crossEntropy probability targets", (a) => crossEntropy(a, probs), [r([3, 4])]);
});

describe("gradcheck: attention", () => {
  check("lookupAttention nearest (value only)", (q, k, v) => lookupAttention(q, k, v, { match: "nearest" }), [r([2, 3, 4]), r([2, 5, 4]), r([2, 5, 3])]);
  check("sdpa plain", (q, k, v) => scaledDotProductAttention(q, k, v), [r([2, 3, 4]), r([2, 5, 4]), r([2, 5, 3])]);
  check("sdpa causal bottom-right L>S (masked rows)", (q, k, v) => scaledDotProductAttention(q, k, v, { isCausal: true, causalAlignment: "bottom-right" }), [r([1, 5, 3]), r([1, 3, 3]), r([1, 3, 2])]);
  const m = tensor([[true, false, true, true], [false, false, false, false], [true, true, false, true]]);
  check("sdpa bool mask with a fully masked row", (q, k, v) => scaledDotProductAttention(q, k, v, { attnMask: m }), [r([2, 3, 4]), r([2, 4, 4]), r([2, 4, 2])]);
  check("sdpa float mask + causal + scale", (q, k, v, f) => scaledDotProductAttention(q, k, v, { attnMask: f, isCausal: true, scale: 0.3 }), [r([2, 3, 2]), r([2, 3, 2]), r([2, 3, 2]), r([3, 3])]);
  check("sdpa GQA 6/2", (q, k, v) => scaledDotProductAttention(q, k, v, { enableGqa: true }), [r([1, 6, 2, 3]), r([1, 2, 3, 3]), r([1, 2, 3, 2])]);
  check("sdpa dropout (fixed seed)", (q, k, v) => scaledDotProductAttention(q, k, v, { dropoutP: 0.3, dropoutSeed: 11 }), [r([2, 4, 3]), r([2, 5, 3]), r([2, 5, 2])]);
  const mha = new MultiheadAttention(6, 3, { addBiasKv: true, addZeroAttn: true, dtype: "float64", seed: 3 });
  check("MultiheadAttention inputs and parameters", (x) => mha.forward(x, x, x, { isCausal: true })[0], [r([4, 2, 6]), ...mha.parameters()]);
  const gqa = new GroupedQueryAttention(8, 4, 2, { bias: true, dtype: "float64", seed: 4, batchFirst: true });
  check("GroupedQueryAttention inputs and parameters", (x, mem) => gqa.forward(x, mem, mem)[0], [r([2, 3, 8]), r([2, 5, 8]), ...gqa.parameters()]);
});

describe("gradcheck itself", () => {
  test("catches a wrong backward", () => {
    // identity whose backward claims d/dx = 2: gradcheck must notice
    const wrong = (x: Tensor): Tensor => result("wrong", x.values.slice(), x.shape, x.dtype, [x], (g) => [mul(g, 2)]);
    const res = gradcheck(wrong, [r([3])]);
    assert.equal(res.ok, false);
    assert.ok(Math.abs(res.analytical - 2 * res.numerical) < 1e-6);
  });
});
