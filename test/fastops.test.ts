/**
 * The fused fast paths of a transformer training step against their readable forms:
 *   layerNorm / rmsNorm        vs layerNormReference / rmsNormReference (composites of ops, autograd)
 *   crossEntropy (int targets) vs crossEntropyReference (logSoftmax + pick + reduce)
 *   linear (bias in the same op) vs add(matmul(x, wᵀ), b)
 *   gelu (tables)              vs its formulas (erf / tanh) and a composite of ops
 *   broadcast rows, embedding, AdamW's loop
 *   gelu's table loops         vs geluReadable (lookup per element), bitwise
 *   permute's nested loops     vs permuteCopy (forEachRun), bitwise
 *   the backends' float32 fast paths of gelu, layerNorm, rmsNorm (wasm: SIMD) vs the float64 definitions
 * Forward bitwise where the arithmetic is the same (float64 rows), within float32 rounding where the
 * fused op keeps float64 accumulators; backward within rounding; every fused op also passes a float64
 * gradcheck against central finite differences.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  AdamW, Tensor, add, crossEntropy, div, embedding, gelu, gradcheck, layerNorm, linear, matmul, mul, noGrad, pow, rand, randn, rmsNorm,
  sub, sum, tanh, tensor, transpose,
} from "../src/index.js";
import { unbroadcast } from "../src/ops/broadcast.js";
import { erf } from "../src/ops/erf.js";
import { geluGateExact, geluGateTanh, geluGradExact, geluGradTanh, geluReadable } from "../src/ops/gelu.js";
import { elementwiseTuning, getBackend, getNumThreads, listBackends, optimTuning, setBackend, setNumThreads, wasmRuntimeInfo } from "../src/kernels/index.js";
import { conformanceBackends, onBackend } from "./backends.js";
import { crossEntropyReference } from "../src/ops/lossReference.js";
import { crossEntropyTuning } from "../src/ops/loss.js";
import { layerNormReference, rmsNormReference } from "../src/ops/normReference.js";
import { evalPiecewise, piecewise, table32 } from "../src/ops/piecewise.js";
import { permuteCopy, permuteCopy4 } from "../src/ops/shape.js";
import { addRows, columnSums } from "../src/ops/functional.js";
import { stridesOf } from "../src/tensor/shape.js";

type Dt = "float32" | "float64";
let seed = 9000;

function leaf(shape: number[], dtype: Dt, scale = 1, shift = 0): Tensor {
  const t = randn(shape, { seed: seed++, dtype });
  for (let i = 0; i < t.size; i++) t.values[i] = t.values[i] * scale + shift;
  return t.requiresGrad_();
}

/** Fresh leaves with the same values, so two forms never share gradients. */
function copies(xs: (Tensor | null)[]): (Tensor | null)[] {
  return xs.map((x) => (x === null ? null : new Tensor(x.values.slice(), x.shape, x.dtype).requiresGrad_()));
}

interface Run { out: Tensor; grads: (Tensor | null)[] }

/** f on fresh copies of the inputs, backward with a fixed random upstream gradient. */
function run(f: (...xs: (Tensor | null)[]) => Tensor, inputs: (Tensor | null)[], gradSeed = 7): Run {
  const xs = copies(inputs);
  const out = f(...xs);
  const g = randn([...out.shape], { seed: gradSeed, dtype: out.dtype as Dt });
  out.backward(g);
  return { out, grads: xs.map((x) => (x === null ? null : x.grad)) };
}

function assertBitwise(a: Tensor, b: Tensor, what: string): void {
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  assert.equal(a.dtype, b.dtype, `${what}: dtype`);
  for (let i = 0; i < a.size; i++) {
    if (!Object.is(a.values[i], b.values[i])) assert.fail(`${what}: element ${i}: ${a.values[i]} vs ${b.values[i]} (expected the same bits)`);
  }
}

/** max |a - b| / max(1, max |b|) <= tol */
function assertClose(a: Tensor | null, b: Tensor | null, tol: number, what: string): void {
  assert.ok(a !== null && b !== null, `${what}: missing gradient`);
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  let scale = 1, worst = 0, at = -1;
  for (let i = 0; i < b.size; i++) scale = Math.max(scale, Math.abs(b.values[i]));
  for (let i = 0; i < a.size; i++) {
    const d = Math.abs(a.values[i] - b.values[i]);
    if (!(d <= worst)) { worst = d; at = i; }
  }
  assert.ok(worst / scale <= tol, `${what}: element ${at}: ${a.values[at]} vs ${b.values[at]} (error ${worst / scale} > ${tol})`);
}

function assertGradcheck(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): void {
  const r = gradcheck(f, inputs);
  assert.ok(r.ok, `${name}: input ${r.at[0]} element ${r.at[1]}: analytical ${r.analytical} vs numerical ${r.numerical}`);
}

const TOL: Record<Dt, { fwd: number; grad: number }> = { float32: { fwd: 2e-6, grad: 2e-5 }, float64: { fwd: 0, grad: 1e-12 } };

// ---------------------------------------------------------------------------------------------

describe("layerNorm / rmsNorm: fused rows vs the composite of ops", () => {
  const cases: { shape: number[]; ns: number[] }[] = [
    { shape: [1, 1], ns: [1] }, { shape: [3, 5], ns: [5] }, { shape: [2, 3, 17], ns: [17] }, { shape: [33], ns: [33] },
    { shape: [2, 257], ns: [257] }, { shape: [2, 3, 4], ns: [3, 4] }, { shape: [5, 3, 1], ns: [3, 1] },
  ];
  for (const dtype of ["float32", "float64"] as const) {
    for (const { shape, ns } of cases) {
      for (const affine of ["none", "weight", "weight+bias"] as const) {
        test(`layerNorm ${dtype} [${shape}] over [${ns}], ${affine}`, () => {
          const x = leaf(shape, dtype, 2, 0.5);
          const w = affine === "none" ? null : leaf(ns, dtype, 0.5, 1);
          const b = affine === "weight+bias" ? leaf(ns, dtype) : null;
          const fast = run((a, ww, bb) => layerNorm(a!, ns, ww, bb), [x, w, b]);
          const ref = run((a, ww, bb) => layerNormReference(a!, ns, ww, bb), [x, w, b]);
          if (dtype === "float64") assertBitwise(fast.out, ref.out, "output"); // same arithmetic, same order
          else assertClose(fast.out, ref.out, TOL.float32.fwd, "output");
          fast.grads.forEach((g, i) => inputsGrad(g, ref.grads[i], dtype, ["dx", "dweight", "dbias"][i]));
        });
        test(`rmsNorm ${dtype} [${shape}] over [${ns}], ${affine === "none" ? "no weight" : "weight"}`, () => {
          if (affine === "weight+bias") return;
          const x = leaf(shape, dtype, 2, 0.5);
          const w = affine === "none" ? null : leaf(ns, dtype, 0.5, 1);
          const fast = run((a, ww) => rmsNorm(a!, ns, ww, 1e-6), [x, w]);
          const ref = run((a, ww) => rmsNormReference(a!, ns, ww, 1e-6), [x, w]);
          if (dtype === "float64") assertBitwise(fast.out, ref.out, "output");
          else assertClose(fast.out, ref.out, TOL.float32.fwd, "output");
          fast.grads.forEach((g, i) => inputsGrad(g, ref.grads[i], dtype, ["dx", "dweight"][i]));
        });
      }
    }
  }

  test("a weight of float64 with x float32 promotes the output, gradients keep each input's dtype", () => {
    const x = leaf([3, 4], "float32");
    const w = leaf([4], "float64");
    const fast = run((a, ww) => layerNorm(a!, 4, ww), [x, w]);
    const ref = run((a, ww) => layerNormReference(a!, 4, ww), [x, w]);
    assert.equal(fast.out.dtype, "float64");
    assertClose(fast.out, ref.out, 1e-6, "output");
    assert.equal(fast.grads[0]!.dtype, "float32");
    assertClose(fast.grads[1], ref.grads[1], 1e-6, "dweight");
  });

  test("hand-worked row: x = [1, 2, 3, 4] -> mean 2.5, var 1.25, y = (x - 2.5) / sqrt(1.25 + 1e-5)", () => {
    const y = layerNorm(tensor([1, 2, 3, 4], [1, 4], { dtype: "float64" }), 4);
    const s = Math.sqrt(1.25 + 1e-5);
    assert.deepEqual([...y.values], [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]);
    const r = rmsNorm(tensor([3, 4], [1, 2], { dtype: "float64" }), 2, null, 0); // rms = sqrt(12.5)
    assert.deepEqual([...r.values], [3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)]);
  });

  test("gradcheck (float64) on odd shapes, with and without weight/bias", () => {
    assertGradcheck("layerNorm [3, 17]", (a, w, b) => layerNorm(a, 17, w, b), [leaf([3, 17], "float64"), leaf([17], "float64"), leaf([17], "float64")]);
    assertGradcheck("layerNorm [2, 3, 5] over [3, 5]", (a) => layerNorm(a, [3, 5]), [leaf([2, 3, 5], "float64")]);
    assertGradcheck("layerNorm weight only", (a, w) => layerNorm(a, 7, w), [leaf([2, 7], "float64"), leaf([7], "float64")]);
    assertGradcheck("rmsNorm [3, 17]", (a, w) => rmsNorm(a, 17, w, 1e-6), [leaf([3, 17], "float64"), leaf([17], "float64")]);
    assertGradcheck("rmsNorm [2, 3, 5] over [3, 5]", (a) => rmsNorm(a, [3, 5], null, 1e-6), [leaf([2, 3, 5], "float64")]);
  });
});

function inputsGrad(a: Tensor | null, b: Tensor | null, dtype: Dt, what: string): void {
  if (b === null) { assert.equal(a, null, `${what}: no gradient expected`); return; }
  assertClose(a, b, TOL[dtype].grad, what);
}

// ---------------------------------------------------------------------------------------------

describe("crossEntropy (int32 targets): fused rows vs logSoftmax + pick + reduce", () => {
  const targets = (n: number, C: number, ignore: number[] = []): Tensor =>
    new Tensor(Int32Array.from({ length: n }, (_, i) => (ignore.includes(i) ? -100 : (i * 7 + 3) % C)), [n], "int32");
  const shapes: [number, number][] = [[1, 1], [1, 3], [5, 7], [3, 17], [4, 257], [8, 33]];
  for (const dtype of ["float32", "float64"] as const) {
    for (const [N, C] of shapes) {
      for (const reduction of ["mean", "sum", "none"] as const) {
        for (const labelSmoothing of [0, 0.1]) {
          test(`${dtype} [${N}, ${C}] ${reduction}, labelSmoothing ${labelSmoothing}, one target ignored`, () => {
            const x = leaf([N, C], dtype, 3);
            const t = targets(N, C, N > 1 ? [1] : []);
            const opts = { reduction, labelSmoothing };
            const fast = run((a) => crossEntropy(a!, t, opts), [x]);
            const ref = run((a) => crossEntropyReference(a!, t, opts), [x]);
            if (dtype === "float64" && labelSmoothing === 0) assertBitwise(fast.out, ref.out, "loss");
            else assertClose(fast.out, ref.out, dtype === "float64" ? 1e-14 : TOL.float32.fwd, "loss");
            assertClose(fast.grads[0], ref.grads[0], TOL[dtype].grad, "dlogits");
          });
        }
      }
    }
  }

  test("crossEntropy's gradient is the same bits with its exps kept or recomputed (a large [M, C] recomputes them)", () => {
    for (const dtype of ["float32", "float64"] as const) {
      const x = leaf([5, 13], dtype, 9);
      const t = targets(5, 13, [1]);
      const grad = (): ArrayLike<number> => {
        const xs = new Tensor(x.values.slice(), x.shape, x.dtype).requiresGrad_();
        crossEntropy(xs, t, { reduction: "mean", labelSmoothing: 0.1 }).backward();
        return xs.grad!.values;
      };
      const kept = grad();
      const saved = crossEntropyTuning.keepExpsMax;
      crossEntropyTuning.keepExpsMax = 0;
      try {
        assert.deepEqual(Array.from(grad()), Array.from(kept), dtype);
      } finally {
        crossEntropyTuning.keepExpsMax = saved;
      }
    }
  });

  test("the loss is the same bits whether or not the forward keeps its exps for a backward (noGrad, a leaf without requiresGrad); the gradient is softmax - onehot to float64 rounding", () => {
    const x = leaf([6, 11], "float64", 4);
    const t = targets(6, 11, [2]);
    for (const reduction of ["mean", "none"] as const) {
      const withGrad = crossEntropy(x, t, { reduction });
      const without = noGrad(() => crossEntropy(x, t, { reduction }));
      const plain = crossEntropy(new Tensor(x.values, x.shape, x.dtype), t, { reduction });
      assertBitwise(without, withGrad, `noGrad ${reduction}`);
      assertBitwise(plain, withGrad, `no requiresGrad ${reduction}`);
    }
    const xs = new Tensor(x.values.slice(), x.shape, x.dtype).requiresGrad_();
    crossEntropy(xs, t, { reduction: "sum" }).backward();
    for (let r = 0; r < 6; r++) {
      let lse = 0;
      for (let c = 0; c < 11; c++) lse += Math.exp(x.values[r * 11 + c]);
      lse = Math.log(lse);
      for (let c = 0; c < 11; c++) {
        const want = r === 2 ? 0 : Math.exp(x.values[r * 11 + c] - lse) - (c === t.values[r] ? 1 : 0);
        const got = xs.grad!.values[r * 11 + c];
        assert.ok(Math.abs(got - want) <= 1e-15, `row ${r} class ${c}: ${got} vs ${want}`);
      }
    }
  });

  test("[N, C, d] input and 1-D [C] input take the same rows", () => {
    const x = leaf([2, 5, 3], "float64");
    const t = new Tensor(Int32Array.from([0, 4, 2, 1, -100, 3]), [2, 3], "int32");
    for (const reduction of ["mean", "none"] as const) {
      const fast = run((a) => crossEntropy(a!, t, { reduction }), [x]);
      const ref = run((a) => crossEntropyReference(a!, t, { reduction }), [x]);
      assertBitwise(fast.out, ref.out, `[N, C, d] ${reduction}`);
      assertClose(fast.grads[0], ref.grads[0], 1e-12, `[N, C, d] ${reduction} dlogits`);
    }
    const v = leaf([6], "float64");
    const one = new Tensor(Int32Array.from([2]), [], "int32");
    assertBitwise(run((a) => crossEntropy(a!, one), [v]).out, run((a) => crossEntropyReference(a!, one), [v]).out, "[C]");
  });

  test("hand-worked: logits [0, ln 3] target 1 -> loss = -log(3/4); gradient = softmax - onehot = [1/4, -1/4]", () => {
    const x = tensor([0, Math.log(3)], [1, 2], { dtype: "float64", requiresGrad: true });
    const loss = crossEntropy(x, new Tensor(Int32Array.from([1]), [1], "int32"));
    assert.ok(Math.abs(loss.item() + Math.log(0.75)) < 1e-15);
    loss.backward();
    assert.ok(Math.abs(x.grad!.values[0] - 0.25) < 1e-15 && Math.abs(x.grad!.values[1] + 0.25) < 1e-15);
  });

  test("edge cases: every target ignored -> 0 and zero gradient; a row of -Infinity -> Infinity, no gradient; huge logits stay finite", () => {
    const x = leaf([3, 4], "float64");
    const none = new Tensor(Int32Array.from([-100, -100, -100]), [3], "int32");
    const r = run((a) => crossEntropy(a!, none), [x]);
    assert.equal(r.out.item(), 0);
    assert.ok([...r.grads[0]!.values].every((g) => g === 0));
    const masked = tensor([[-Infinity, -Infinity, -Infinity], [1, 2, 3]], undefined, { dtype: "float64", requiresGrad: true });
    const t = new Tensor(Int32Array.from([0, 2]), [2], "int32");
    const rows = crossEntropy(masked, t, { reduction: "none" });
    const refRows = crossEntropyReference(masked, t, { reduction: "none" });
    assert.equal(rows.values[0], Infinity);
    assert.equal(refRows.values[0], Infinity);
    sum(mul(rows, tensor([0, 1], undefined, { dtype: "float64" }))).backward();
    assert.deepEqual([...masked.grad!.values.subarray(0, 3)], [0, 0, 0]);
    const huge = tensor([[1e4, 0, -1e4]], undefined, { dtype: "float32" });
    const l = crossEntropy(huge, new Tensor(Int32Array.from([1]), [1], "int32"));
    assert.equal(l.item(), 1e4); // logsumexp = 1e4 exactly in float64, minus logit 0
  });

  test("gradcheck (float64): ignoreIndex, label smoothing, each reduction, [N, C, d]", () => {
    const t = new Tensor(Int32Array.from([2, -100, 0, 4]), [4], "int32");
    for (const reduction of ["mean", "sum", "none"] as const) {
      assertGradcheck(`crossEntropy ${reduction}`, (a) => crossEntropy(a, t, { reduction, labelSmoothing: 0.2 }), [leaf([4, 5], "float64")]);
    }
    const t3 = new Tensor(Int32Array.from([0, 2, 1, 1]), [2, 2], "int32");
    assertGradcheck("crossEntropy [N, C, d]", (a) => crossEntropy(a, t3), [leaf([2, 3, 2], "float64")]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("linear: the bias in the same op vs add(matmul(x, wᵀ), b)", () => {
  for (const dtype of ["float32", "float64"] as const) {
    for (const xShape of [[1, 3], [5, 3], [2, 7, 3], [3]]) {
      test(`${dtype} x [${xShape}] -> 17 features, with and without bias`, () => {
        const x = leaf(xShape, dtype);
        const w = leaf([17, 3], dtype);
        const b = leaf([17], dtype);
        const fast = run((a, ww, bb) => linear(a!, ww!, bb), [x, w, b]);
        const ref = run((a, ww, bb) => add(matmul(a!, transpose(ww!)), bb!), [x, w, b]);
        assertClose(fast.out, ref.out, dtype === "float64" ? 1e-14 : 1e-6, "output");
        fast.grads.forEach((g, i) => assertClose(g, ref.grads[i], dtype === "float64" ? 1e-13 : 1e-5, ["dx", "dweight", "dbias"][i]));
        // dbias is the column sum of the upstream gradient, as the general unbroadcast adds it
        const g = randn([...fast.out.shape], { seed: 7, dtype });
        assertBitwise(fast.grads[2]!, unbroadcast(g, [17]), "dbias vs unbroadcast");
        const noBias = run((a, ww) => linear(a!, ww!), [x, w]);
        assertClose(noBias.out, run((a, ww) => matmul(a!, transpose(ww!)), [x, w]).out, dtype === "float64" ? 1e-14 : 1e-6, "no bias");
      });
    }
  }

  test("a bias of another dtype takes the composite path (float64 bias promotes a float32 product)", () => {
    const y = linear(leaf([2, 3], "float32"), leaf([4, 3], "float32"), leaf([4], "float64"));
    assert.equal(y.dtype, "float64");
  });

  test("gradcheck (float64)", () => {
    assertGradcheck("linear", (a, w, b) => linear(a, w, b), [leaf([2, 3, 5], "float64"), leaf([4, 5], "float64"), leaf([4], "float64")]);
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * Φ(x) for x <= -5 by quadrature, an independent form of the tail: with t = x - s,
 * Φ(x) = φ(x) ∫_0^∞ e^(x s - s²/2) ds, the integrand decaying at rate |x|; Simpson's rule over
 * [0, 40 / |x|] in 2000 steps is good to ~1e-9 relative, enough for a float32 check.
 */
function phiTail(x: number): number {
  const n = 2000, h = 40 / -x / n;
  const f = (s: number): number => Math.exp(x * s - 0.5 * s * s);
  let acc = f(0) + f(n * h);
  for (let i = 1; i < n; i++) acc += (i % 2 === 1 ? 4 : 2) * f(i * h);
  return (Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI)) * (acc * h) / 3;
}

describe("gelu: one loop each way, tables equal to the formulas", () => {
  const grid: number[] = [];
  for (let i = 0; i <= 4000; i++) grid.push(-12 + (24 * i) / 4000);
  grid.push(-4, 9, -4 - 1e-12, 9 - 1e-12, 0, -0, 1e-300, -1e-300, 0.75, -0.7517915, 100, -100);

  // erf's series itself is good to ~1e-15 near |x| = 2 (cancellation), so the tables are held to that
  test("exact: forward = x Φ(x), Φ from erf; backward = Φ(x) + x φ(x) (float64)", () => {
    const x = tensor(grid, [grid.length], { dtype: "float64", requiresGrad: true });
    const y = gelu(x);
    y.backward(tensor(grid.map(() => 1), [grid.length], { dtype: "float64" }));
    grid.forEach((v, i) => {
      const want = 0.5 * v * (1 + erf(v / Math.SQRT2));
      assert.ok(Math.abs(y.values[i] - want) <= 2e-15 * Math.max(1, Math.abs(v)), `gelu(${v}) = ${y.values[i]}, formula ${want}`);
      const dwant = 0.5 * (1 + erf(v / Math.SQRT2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI);
      assert.ok(Math.abs(x.grad!.values[i] - dwant) <= 2e-15, `gelu'(${v}) = ${x.grad!.values[i]}, formula ${dwant}`);
    });
    assert.equal(geluGateExact(3), 0.5 * (1 + erf(3 / Math.SQRT2)));
    assert.equal(geluGradExact(-20), geluGateExact(-20) - 20 * Math.exp(-200) / Math.sqrt(2 * Math.PI));
    // the tail: Φ(-20) ≈ 2.75e-89 by quadrature, where 1 + erf(-20 / √2) rounds to 0
    assert.ok(Math.abs(geluGateExact(-20) / phiTail(-20) - 1) < 1e-8, `Φ(-20) = ${geluGateExact(-20)}`);
  });

  test("tanh: forward and backward equal the composite 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))) of ops (float64)", () => {
    const xs = grid.filter((v) => Math.abs(v) <= 12);
    const x = tensor(xs, [xs.length], { dtype: "float64" });
    const c = Math.sqrt(2 / Math.PI);
    const fast = run((a) => gelu(a!, "tanh"), [x]);
    const ref = run((a) => mul(mul(a!, 0.5), add(tanh(mul(add(a!, mul(pow(a!, 3), 0.044715)), c)), 1)), [x]);
    assertClose(fast.out, ref.out, 1e-15, "forward");
    assertClose(fast.grads[0], ref.grads[0], 1e-14, "backward");
    xs.forEach((v) => assert.ok(Number.isFinite(geluGradTanh(v))));
  });

  test("float32 matches the float64 formula to float32 rounding; NaN and ±Infinity as PyTorch (gelu(+inf) = inf)", () => {
    const x = tensor(grid, [grid.length], { dtype: "float32" });
    const y = gelu(x);
    for (let i = 0; i < grid.length; i++) {
      const v = x.values[i];
      // below -5, 1 + erf(v / √2) loses digits (all of them below -8); the quadrature keeps them
      const want = v < -5 ? v * phiTail(v) : 0.5 * v * (1 + erf(v / Math.SQRT2));
      assert.ok(Math.abs(y.values[i] - want) <= 1.2e-7 * Math.max(1e-30, Math.abs(want)) + 1e-45, `gelu(${v})`);
    }
    const special = gelu(tensor([NaN, Infinity], [2], { dtype: "float64" }));
    assert.ok(Number.isNaN(special.values[0]));
    assert.equal(special.values[1], Infinity);
  });

  test("gradcheck (float64), inside and outside the tables' range", () => {
    const x = rand([40], { seed: 3, dtype: "float64" });
    for (let i = 0; i < x.size; i++) x.values[i] = -7 + 17 * x.values[i];
    x.requiresGrad = true;
    assertGradcheck("gelu exact", (a) => gelu(a), [x]);
    assertGradcheck("gelu tanh", (a) => gelu(a, "tanh"), [x]);
  });

  test("the loops with the table written out equal geluReadable (lookup per element) bit for bit", () => {
    // the grid crosses both ends of the tables ([-4, 9)) and every interval; NaN and ±Infinity take the formulas
    const xs = [...grid, NaN, Infinity, -Infinity, 8.999999999999998, -3.9999999999999996];
    for (const approximate of ["none", "tanh"] as const) {
      for (const dtype of ["float32", "float64"] as const) {
        for (const n of [1, 3, 17, xs.length]) {
          const x = tensor(xs.slice(xs.length - n), [n], { dtype, requiresGrad: true });
          const g = tensor(xs.slice(xs.length - n).map((_, i) => Math.cos(i)), [n], { dtype });
          const y = gelu(x, approximate);
          y.backward(g);
          const want = geluReadable(x.values, g.values, approximate);
          const what = `${approximate} ${dtype} n=${n}`;
          assertBitwise(y, tensor(want.y, [n], { dtype }), `${what} forward`);
          assertBitwise(x.grad!, tensor(want.gx, [n], { dtype }), `${what} backward`);
        }
      }
    }
  });

  test("piecewise tables reproduce a known function: sin on [0, 4) to float64 rounding", () => {
    const p = piecewise(Math.sin, 0, 4, 1 / 16);
    let worst = 0;
    for (let i = 0; i < 10000; i++) {
      const v = (4 * i) / 10000;
      worst = Math.max(worst, Math.abs(evalPiecewise(p, v) - Math.sin(v)));
    }
    assert.ok(worst < 1e-15, `max error ${worst}`);
  });
});

// ---------------------------------------------------------------------------------------------

describe("broadcast rows, embedding, AdamW", () => {
  test("b repeating along a's leading dims ([N, T, C] op [T, C], [C] op [N, C]) takes the row loop: values and gradients", () => {
    const a = leaf([4, 3, 5], "float64");
    for (const bShape of [[3, 5], [1, 5], [5], [1, 3, 5]]) {
      const b = leaf(bShape, "float64");
      const bs = b.size;
      for (const [name, op, f] of [["add", add, (u: number, v: number) => u + v], ["sub", sub, (u: number, v: number) => u - v],
        ["mul", mul, (u: number, v: number) => u * v], ["div", div, (u: number, v: number) => u / v]] as const) {
        const r = run((x, y) => op(x!, y!), [a, b]);
        const rev = run((x, y) => op(y!, x!), [a, b]);
        for (let i = 0; i < a.size; i++) {
          assert.equal(r.out.values[i], f(a.values[i], b.values[i % bs]), `${name} [4,3,5] [${bShape}] at ${i}`);
          assert.equal(rev.out.values[i], f(b.values[i % bs], a.values[i]), `${name} [${bShape}] [4,3,5] at ${i}`);
        }
        if (name === "add") {
          const g = randn([4, 3, 5], { seed: 7, dtype: "float64" });
          assertBitwise(r.grads[1]!, unbroadcast(g, bShape), `add [${bShape}] gradient vs unbroadcast`);
        }
      }
    }
    assertGradcheck("mul rows", (x, y) => mul(x, y), [leaf([2, 3, 4], "float64"), leaf([3, 4], "float64")]);
    assertGradcheck("div rows", (x, y) => div(y, x), [leaf([2, 3, 4], "float64", 1, 3), leaf([4], "float64")]);
  });

  test("embedding = one-hot rows @ weight; its gradient = one-hotᵀ @ g (repeated ids add up)", () => {
    const w = leaf([6, 4], "float64");
    const ids = new Tensor(Int32Array.from([5, 0, 5, 2, 5, 1]), [2, 3], "int32");
    const onehot = new Tensor(new Float64Array(6 * 6), [6, 6], "float64");
    ids.values.forEach((id, i) => { onehot.values[i * 6 + id] = 1; });
    const fast = run((ww) => embedding(ww!, ids), [w]);
    const ref = run((ww) => matmul(onehot, ww!).reshape([2, 3, 4]), [w]);
    assertBitwise(fast.out, ref.out, "rows");
    assertClose(fast.grads[0], ref.grads[0], 1e-15, "dweight");
  });

  test("AdamW maximize on g takes the same step as AdamW on -g; amsgrad keeps the running max", () => {
    for (const amsgrad of [false, true]) {
      const p1 = tensor([0.5, -1, 2, 0], [4], { dtype: "float32", requiresGrad: true });
      const p2 = tensor([0.5, -1, 2, 0], [4], { dtype: "float32", requiresGrad: true });
      const o1 = new AdamW([p1], { lr: 0.1, maximize: true, amsgrad });
      const o2 = new AdamW([p2], { lr: 0.1, amsgrad });
      for (const g of [[1, -2, 0.5, 3], [-4, 1, 0, 0.25]]) {
        p1.grad = tensor(g, [4]);
        p2.grad = tensor(g.map((v) => -v), [4]);
        o1.step();
        o2.step();
      }
      assertBitwise(p1, p2, `amsgrad ${amsgrad}`);
    }
  });

  test("AdamW's loop equals its readable form (each p, m, v stored, then read back) bit for bit: float32 and float64, amsgrad, lengths 1, 3, 1000", () => {
    for (const dtype of ["float32", "float64"] as const) {
      for (const amsgrad of [false, true]) {
        for (const n of [1, 3, 1000]) {
          const Arr = dtype === "float32" ? Float32Array : Float64Array;
          const init = Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + 0.2));
          const p = tensor(init, [n], { dtype, requiresGrad: true });
          const lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
          const opt = new AdamW([p], { lr, betas: [b1, b2], eps, weightDecay: wd, amsgrad });
          // the readable form, written out here: every stored value rounded by its array, then read back
          const q = Arr.from(init), m = new Arr(n), v = new Arr(n), vmax = new Arr(n);
          for (let t = 1; t <= 4; t++) {
            const g = Arr.from({ length: n }, (_, i) => Math.cos(i * 0.7 + t) * (i % 5 === 4 ? 1e-6 : 0.3));
            p.grad = new Tensor(g.slice(), [n], dtype);
            opt.step();
            const stepSize = lr / (1 - Math.pow(b1, t)), bc2Sqrt = Math.sqrt(1 - Math.pow(b2, t));
            for (let i = 0; i < n; i++) {
              q[i] *= 1 - lr * wd;
              m[i] = m[i] * b1 + (1 - b1) * g[i];
              v[i] = v[i] * b2 + (1 - b2) * g[i] * g[i];
              vmax[i] = Math.max(vmax[i], v[i]);
              q[i] += -stepSize * (m[i] / (Math.sqrt(amsgrad ? vmax[i] : v[i]) / bc2Sqrt + eps));
            }
          }
          assert.deepEqual(Array.from(p.values), Array.from(q), `${dtype} amsgrad ${amsgrad} n=${n}`);
        }
      }
    }
  });
});

describe("AdamW's float32 parameters in one kernel call per step (the wasm backend) equal the readable form bit for bit", () => {
  /** The readable form of update(), one parameter, in place: each stored value rounded by its Float32Array and read back. */
  function readableStep(q: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, vmax: Float32Array, t: number,
    o: { lr: number; b1: number; b2: number; eps: number; wd: number; amsgrad: boolean; maximize: boolean }): void {
    const stepSize = o.lr / (1 - Math.pow(o.b1, t)), bc2Sqrt = Math.sqrt(1 - Math.pow(o.b2, t));
    for (let i = 0; i < q.length; i++) {
      const gi = o.maximize ? -g[i] : g[i];
      q[i] *= 1 - o.lr * o.wd;
      m[i] = m[i] * o.b1 + (1 - o.b1) * gi;
      v[i] = v[i] * o.b2 + (1 - o.b2) * gi * gi;
      vmax[i] = Math.max(vmax[i], v[i]);
      q[i] += -stepSize * (m[i] / (Math.sqrt(o.amsgrad ? vmax[i] : v[i]) / bc2Sqrt + o.eps));
    }
  }
  const available = listBackends().includes("wasm");
  test("sizes 1, 3, 17, 4097 and 70001 (three tasks) in two param groups (one amsgrad and maximizing), 1 and 2 threads, every parameter through the kernel", { skip: !available && "no wasm backend here" }, () => {
    const saved = { ...optimTuning }, threads = getNumThreads(), backend = getBackend().name;
    let viaKernel = 0, restore = (): void => {};
    try {
      setBackend("wasm");
      // count the parameters the kernel updated (it may decline; then AdamW's own loop runs and this fails)
      const be = getBackend() as { adamw?: (items: readonly { p: Float32Array }[]) => boolean };
      const kernel = be.adamw!;
      be.adamw = (items) => {
        const done = kernel(items);
        if (done) viaKernel += items.length;
        return done;
      };
      restore = () => { be.adamw = kernel; };
      optimTuning.minElements = 0; // the small ones too
      optimTuning.minParallelElements = 0;
      for (const nt of [1, 2]) {
        setNumThreads(nt);
        const sizes = [1, 3, 17, 4097, 70001];
        const groups = [
          { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05, amsgrad: false, maximize: false },
          { lr: 0.003, b1: 0.8, b2: 0.99, eps: 1e-6, wd: 0, amsgrad: true, maximize: true },
        ];
        const params = groups.map((_, gi) => sizes.map((n, j) => tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + j + gi)), [n], { dtype: "float32", requiresGrad: true })));
        const opt = new AdamW(groups.map((o, gi) => ({ params: params[gi], lr: o.lr, betas: [o.b1, o.b2] as [number, number], eps: o.eps, weightDecay: o.wd, amsgrad: o.amsgrad, maximize: o.maximize })));
        const mine = params.map((ps) => ps.map((p) => ({ q: Float32Array.from(p.values), m: new Float32Array(p.size), v: new Float32Array(p.size), vmax: new Float32Array(p.size) })));
        for (let t = 1; t <= 3; t++) {
          params.forEach((ps, gi) => ps.forEach((p, j) => {
            // gradients over many scales, a few exact zeros
            const g = Float32Array.from({ length: p.size }, (_, i) => (i % 7 === 3 ? 0 : Math.cos(i * 0.7 + t + j) * (i % 5 === 4 ? 1e-6 : i % 11 === 2 ? 40 : 0.3)));
            p.grad = new Tensor(g, [p.size], "float32");
            const r = mine[gi][j];
            readableStep(r.q, g, r.m, r.v, r.vmax, t, groups[gi]);
          }));
          const counted = viaKernel;
          opt.step();
          assert.equal(viaKernel - counted, 2 * sizes.length, "every parameter updated by the kernel");
          params.forEach((ps, gi) => ps.forEach((p, j) => {
            const what = `threads ${nt}, group ${gi}, n=${p.size}, step ${t}`;
            assert.deepEqual(p.values, mine[gi][j].q, `${what}: p`);
            const st = opt.stateDict().state[gi * sizes.length + j];
            assert.deepEqual(st.buffers.exp_avg.values, mine[gi][j].m, `${what}: exp_avg`);
            assert.deepEqual(st.buffers.exp_avg_sq.values, mine[gi][j].v, `${what}: exp_avg_sq`);
            if (groups[gi].amsgrad) assert.deepEqual(st.buffers.max_exp_avg_sq.values, mine[gi][j].vmax, `${what}: max_exp_avg_sq`);
          }));
        }
      }
    } finally {
      restore();
      Object.assign(optimTuning, saved);
      setNumThreads(threads);
      setBackend(backend);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("permute: nested loops for rank ≤ 4 equal the run-by-run copy", () => {
  /** Every permutation of 0..n-1. */
  function perms(n: number): number[][] {
    if (n === 0) return [[]];
    return perms(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
  }

  test("every permutation of odd shapes up to rank 4, float32, float64 and int32, bitwise", () => {
    const shapes = [[5], [3, 1], [2, 3, 4], [1, 3, 17, 2], [2, 1, 3, 5], [2, 0, 3], [3, 2, 4, 33]];
    for (const shape of shapes) {
      const size = shape.reduce((a, b) => a * b, 1);
      for (const [make, dtype] of [[(k: number) => new Float32Array(k), "f32"], [(k: number) => new Float64Array(k), "f64"], [(k: number) => new Int32Array(k), "i32"]] as const) {
        const xd = make(size);
        for (let i = 0; i < size; i++) xd[i] = dtype === "i32" ? i * 7 - 50 : Math.sin(i) * 1e3;
        const inStrides = stridesOf(shape);
        for (const perm of perms(shape.length)) {
          const outShape = perm.map((p) => shape[p]);
          const readStrides = perm.map((p) => inStrides[p]);
          const fast = make(size), slow = make(size);
          permuteCopy4(fast, xd, outShape, readStrides);
          permuteCopy(slow, xd, outShape, readStrides);
          for (let i = 0; i < size; i++) {
            if (!Object.is(fast[i], slow[i])) assert.fail(`${dtype} ${JSON.stringify(shape)} perm ${perm}: element ${i}: ${fast[i]} vs ${slow[i]}`);
          }
        }
      }
    }
  });

  test("a hand-worked case: [2, 3] -> [3, 2]", () => {
    const out = new Float64Array(6);
    permuteCopy4(out, Float64Array.from([1, 2, 3, 4, 5, 6]), [3, 2], [1, 3]); // x = [[1, 2, 3], [4, 5, 6]]
    assert.deepEqual([...out], [1, 4, 2, 5, 3, 6]);
    assert.deepEqual([...transpose(tensor([1, 2, 3, 4, 5, 6], [2, 3], { dtype: "float64" })).values], [1, 4, 2, 5, 3, 6]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("add / sub / mul / div of one shape: the contiguous loops equal one correctly rounded operation per element", () => {
  // float32: a ∘ b in float64 then rounded once (Math.fround) is the float32 operation (a double holds
  // the exact sum and product of two floats; the quotient rounds correctly through it); float64: a ∘ b
  const ops = [["add", add, (x: number, y: number) => x + y], ["sub", sub, (x: number, y: number) => x - y],
    ["mul", mul, (x: number, y: number) => x * y], ["div", div, (x: number, y: number) => x / y]] as const;
  test("lengths 0, 1, 7 and 1000, float32 and float64, with 0, -0, ±Infinity and NaN among the values; gradients", () => {
    const specials = [0, -0, Infinity, -Infinity, NaN, 1e-45, 3.4e38];
    for (const dtype of ["float32", "float64"] as const) {
      for (const n of [0, 1, 7, 1000]) {
        const a = tensor(Array.from({ length: n }, (_, i) => (i % 9 === 8 ? specials[i % 7] : Math.sin(i + 1) * 50)), { dtype });
        const b = tensor(Array.from({ length: n }, (_, i) => (i % 11 === 10 ? specials[(i + 3) % 7] : Math.cos(i) * 3)), { dtype });
        for (const [name, op, f] of ops) {
          const round = dtype === "float32" ? Math.fround : (v: number) => v;
          const want = Array.from(a.values, (v, i) => round(f(v, b.values[i])));
          const got = op(a, b);
          assert.equal(got.dtype, dtype);
          assert.deepEqual(Array.from(got.values), want, `${name} ${dtype} n=${n}`);
        }
      }
    }
    const x = tensor([1, 2, 3], { requiresGrad: true }), y = tensor([4, 5, 6], { requiresGrad: true });
    sum(mul(sub(x, y), add(x, y))).backward(); // d/dx (x² - y²) = 2x, d/dy = -2y
    assert.deepEqual(Array.from(x.grad!.values), [2, 4, 6]);
    assert.deepEqual(Array.from(y.grad!.values), [-8, -10, -12]);
  });

  test("int32 and mixed dtypes keep the broadcasting loop: int32 + int32 stays int32, float32 + float64 promotes", () => {
    const i = tensor([1, 2, 3], { dtype: "int32" });
    assert.deepEqual(Array.from(add(i, i).values), [2, 4, 6]);
    assert.equal(add(i, i).dtype, "int32");
    const m = add(tensor([0.1, 0.2], { dtype: "float32" }), tensor([0.1, 0.2], { dtype: "float64" }));
    assert.equal(m.dtype, "float64");
    assert.deepEqual(Array.from(m.values), [Math.fround(0.1) + 0.1, Math.fround(0.2) + 0.2]);
  });
});

describe("linear's bias loops, unrolled by 4, equal their one-line definitions", () => {
  test("addRows and columnSums on widths 1..9 and 17 (every tail of the unrolling), float32 and float64, bitwise", () => {
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 17]) {
      for (const make of [(k: number) => new Float32Array(k), (k: number) => new Float64Array(k)]) {
        const R = 3;
        const y = make(R * n).map((_, i) => Math.sin(i + 1) * 3);
        const b = make(n).map((_, j) => Math.cos(j) / 7);
        const want = y.slice();
        for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) want[r * n + j] += b[j];
        const sums = new Float64Array(n);
        for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) sums[j] += y[r * n + j];
        assert.deepEqual(Array.from(columnSums(y, R, n)), Array.from(sums), `columnSums n=${n}`);
        addRows(y, b, R, n);
        assert.deepEqual(Array.from(y), Array.from(want), `addRows n=${n}`);
      }
    }
  });

  test("columnSums down many rows and across chunks of rows equals the row-by-row float64 sum, bitwise", () => {
    for (const R of [0, 1, 2, 5, 300]) {
      for (const n of [1, 4, 6, 13, 1001, 2049, 5000]) { // 1001: 4 rows a chunk; 2049, 5000: one
        const g = new Float32Array(R * n).map((_, i) => Math.sin(i * 0.37 + 1) * 1e3 ** Math.cos(i));
        const sums = new Float64Array(n);
        for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) sums[j] += g[r * n + j];
        assert.deepEqual(Array.from(columnSums(g, R, n)), Array.from(sums), `R=${R} n=${n}`);
      }
    }
  });

  test("a hand-worked case: [[1, 2], [3, 4]] + [10, 20] = [[11, 22], [13, 24]]; column sums [4, 6]", () => {
    const y = Float64Array.from([1, 2, 3, 4]);
    assert.deepEqual(Array.from(columnSums(y, 2, 2)), [4, 6]);
    addRows(y, Float64Array.from([10, 20]), 2, 2);
    assert.deepEqual(Array.from(y), [11, 22, 13, 24]);
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * The backends' float32 fast paths (Backend.mulPiecewise, normRows, normRowsBackward; on wasm the SIMD
 * kernels of assembly/elementwise.ts) against the float64 definitions, within float32 rounding, on
 * every backend (the ref backend runs the ops' own loops). minElements = 0 sends even a length-1 call
 * to the kernels, so the odd lengths exercise their scalar and padded tails.
 */
const F32_ULP = 2 ** -23;
const ODD = [1, 3, 17, 33, 257];

/** max over elements of |got - want| - tol(i); NaN must meet NaN. */
function assertWithin(got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i]) || Number.isNaN(got[i])) {
      assert.ok(Number.isNaN(want[i]) && Number.isNaN(got[i]), `${what}: element ${i}: ${got[i]}, expected ${want[i]}`);
      continue;
    }
    if (got[i] === want[i]) continue; // ±Infinity
    const err = Math.abs(got[i] - want[i]);
    assert.ok(err <= tol(i), `${what}: element ${i}: ${got[i]} vs ${want[i]} (error ${err} > ${tol(i)})`);
  }
}

for (const backend of conformanceBackends()) describe(`float32 fast paths of gelu, layerNorm, rmsNorm [${backend}]`, () => {
  onBackend(backend);
  let savedMin = 0;
  before(() => { savedMin = elementwiseTuning.minElements; elementwiseTuning.minElements = 0; });
  after(() => { elementwiseTuning.minElements = savedMin; });

  // a dense grid across the float32 tables' range [-16, 9) and past both ends, then the named edge cases
  const grid: number[] = [];
  for (let i = 0; i <= 6000; i++) grid.push(-20 + (32 * i) / 6000);
  const edges = [
    -4, 9, -16, -16.0625, 8.999999, -15.99999, // the tables' ends
    -5, -8.5, -10.4, -12, -13.3, -30, // x < -4: tails down to float32's underflow
    9.5, 12, 100, // x > 9
    1e30, -1e30, 3e38, -3e38, // large |x|
    0, -0, 1e-30, -1e-30, 1e-40, -1e-40, // zeros, tiny and subnormal inputs
    NaN, Infinity, -Infinity,
  ];
  const xs = Array.from(Float32Array.from([...grid, ...edges]));

  for (const approximate of ["none", "tanh"] as const) {
    const gate = approximate === "none" ? geluGateExact : geluGateTanh;
    const grad = approximate === "none" ? geluGradExact : geluGradTanh;
    // forward: x · gate(x) in float64, then float32's few ulps (3: the table's and the polynomial's
    // float32 rounding) plus 1e-41 for outputs below float32's normal range (~1e-38), where the gate
    // itself is subnormal; backward: g · gelu'(x), measured against max(|gelu'(x)|, gate(x)), the size
    // of the terms gelu' is the sum of (it crosses zero near x = -0.75)
    const fwdTol = (want: number) => 3 * F32_ULP * Math.abs(want) + 1e-41;
    const bwdTol = (v: number, g: number) => 4 * F32_ULP * Math.abs(g) * Math.max(Math.abs(grad(v)), gate(v)) + 1e-41;
    for (const n of [...ODD, xs.length]) {
      test(`gelu ${approximate}: n = ${n}, forward and backward equal the float64 formulas to float32 rounding`, () => {
        const part = xs.slice(xs.length - n); // the short ones end with the edges
        const x = tensor(part, [n], { dtype: "float32", requiresGrad: true });
        const g = tensor(part.map((_, i) => Math.cos(i) * 3), [n], { dtype: "float32" });
        const y = gelu(x, approximate);
        y.backward(g);
        const xv = x.values, gv = g.values;
        const want = Array.from(xv, (v) => v * gate(v));
        assertWithin(y.values, want, (i) => fwdTol(want[i]), `forward n=${n}`);
        const gwant = Array.from(xv, (v, i) => gv[i] * grad(v));
        assertWithin(x.grad!.values, gwant, (i) => bwdTol(xv[i], gv[i]), `backward n=${n}`);
      });
    }

    test(`gelu ${approximate}: the cubic core table [-4, 9) (four inputs in a row inside it) and the degree-7 table (a row with one outside) agree to float32 rounding`, () => {
      // quadruples all inside the core, including its ends; then each value again beside -5 or NaN, which sends its row of four
      // to the degree-7 table (the staged arrays start on a multiple of 4, so these are the kernel's vectors)
      const inside = [-4, -3.9999998, -2.5, -0.75, 0, -0, 1e-30, 0.001, 1, 3.3, 7.25, 8.999999];
      const frac = (v: number): number => v - Math.floor(v);
      const rand = Array.from({ length: 4000 }, (_, i) => -4 + 13 * frac(Math.sin(i * 12.9898) * 43758.5453)); // [-4, 9)
      const core = Array.from(Float32Array.from([...inside, ...rand].map((v) => Math.min(Math.max(v, -4), 8.999999))));
      const mixed = core.flatMap((v, i) => [v, i % 2 ? -5 : NaN, v, v]);
      for (const values of [core, mixed]) {
        const n = values.length;
        const x = tensor(values, [n], { dtype: "float32", requiresGrad: true });
        const g = tensor(values.map((_, i) => Math.cos(i) * 3), [n], { dtype: "float32" });
        const y = gelu(x, approximate);
        y.backward(g);
        const xv = x.values, gv = g.values;
        const want = Array.from(xv, (v) => v * gate(v));
        assertWithin(y.values, want, (i) => fwdTol(want[i]), `forward (${values === core ? "core" : "mixed"})`);
        const gwant = Array.from(xv, (v, i) => gv[i] * grad(v));
        assertWithin(x.grad!.values, gwant, (i) => bwdTol(xv[i], gv[i]), `backward (${values === core ? "core" : "mixed"})`);
      }
    });
  }

  test("gelu: named values as PyTorch in float32: gelu(-inf) = NaN, gelu(inf) = inf, gelu(NaN) = NaN; gelu(-30) = -0, gelu(100) = 100", () => {
    const x = tensor([-Infinity, Infinity, NaN, -30, 100, 0], [6], { dtype: "float32", requiresGrad: true });
    const y = gelu(x);
    y.backward(tensor([1, 1, 1, 1, 1, 1], [6], { dtype: "float32" }));
    assert.ok(Number.isNaN(y.values[0]));
    assert.equal(y.values[1], Infinity);
    assert.ok(Number.isNaN(y.values[2]));
    assert.ok(Object.is(y.values[3], -0), `gelu(-30) = ${y.values[3]}`);
    assert.equal(y.values[4], 100);
    assert.ok(Object.is(y.values[5], 0));
    // the derivative's formula at ±inf is inf · 0 = NaN, as the float64 loop and PyTorch give; at -30: 0, at 100: 1, at 0: 1/2
    const gx = x.grad!.values;
    assert.ok(Number.isNaN(gx[0]) && Number.isNaN(gx[1]) && Number.isNaN(gx[2]));
    assert.ok(gx[3] === 0 && gx[4] === 1, `gelu'(-30) = ${gx[3]}, gelu'(100) = ${gx[4]}`);
    assert.ok(Math.abs(gx[5] - 0.5) <= 0.5 * F32_ULP, `gelu'(0) = ${gx[5]}`);
  });

  test("the backend's mulPiecewise and normRows take float32 arrays where they exist (they ran in the tests above)", () => {
    const b = getBackend();
    if (b.mulPiecewise === undefined) return; // ref: gelu runs its own loop
    const x = Float32Array.from([0.5, -1, 2]), out = new Float32Array(3);
    const table = table32(piecewise(geluGateExact, -16, 9, 1 / 16), geluGateExact, 0, 1);
    assert.equal(b.mulPiecewise(out, x, x, table), true);
    assert.ok(Math.abs(out[0] - 0.5 * geluGateExact(0.5)) < 1e-7, `${out[0]}`);
    assert.equal(b.mulPiecewise(new Float64Array(3), Float64Array.from(x), Float64Array.from(x), table), false, "float64 is not its business");
    assert.ok(b.normRows !== undefined && b.normRowsBackward !== undefined, "the norm rows come with it");
    const mean = new Float64Array(1), std = new Float64Array(1);
    assert.equal(b.normRows({ R: 1, D: 3, eps: 0 }, out, Float32Array.from([1, 2, 3]), null, null, mean, std), true);
    assert.deepEqual([mean[0], std[0] ** 2], [2, 2 / 3]);
  });

  /** float32 data, and the same values as float64 leaves for the reference. */
  function rows(shape: number[], scale: number, shift: number): [Tensor, Tensor] {
    const t = leaf(shape, "float32", scale, shift);
    return [t, new Tensor(Float64Array.from(t.values), t.shape, "float64").requiresGrad_()];
  }

  /**
   * layerNorm / rmsNorm in float32 against the composite reference in float64 on the same values:
   * the fast path keeps float64 inside and rounds once, so each element is within an ulp of the
   * float64 value, plus 1e-9 of the tensor's scale for the reference's own float64 rounding.
   */
  function checkNorm(kind: "layerNorm" | "rmsNorm", shape: number[], ns: number[], affine: boolean, scale: number, shift: number, edit?: (x: Float32Array) => void): void {
    const [x32, x64] = rows(shape, scale, shift);
    if (edit) { edit(x32.values as Float32Array); x64.values.set(x32.values); }
    const [w32, w64] = affine ? rows(ns, 0.5, 1) : [null, null];
    const [b32, b64] = affine && kind === "layerNorm" ? rows(ns, 0.5, 0) : [null, null];
    const f = (x: Tensor, w: Tensor | null, b: Tensor | null, ref: boolean): Tensor => kind === "layerNorm"
      ? (ref ? layerNormReference : layerNorm)(x, ns, w, b, 1e-5)
      : (ref ? rmsNormReference : rmsNorm)(x, ns, w, 1e-5);
    const y32 = f(x32, w32, b32, false), y64 = f(x64, w64, b64, true);
    const g = randn(shape, { seed: 77 });
    y32.backward(g);
    y64.backward(new Tensor(Float64Array.from(g.values), g.shape, "float64"));
    const pairs: [string, Tensor | null, Tensor | null][] = [["y", y32, y64], ["dx", x32.grad, x64.grad], ["dw", w32?.grad ?? null, w64?.grad ?? null], ["db", b32?.grad ?? null, b64?.grad ?? null]];
    for (const [what, a, r] of pairs) {
      if (r === null && a === null) continue;
      assert.ok(a !== null && r !== null, `${kind} ${what}: missing`);
      let big = 0;
      for (const v of r.values) if (Number.isFinite(v)) big = Math.max(big, Math.abs(v));
      assertWithin(a.values, r.values, (i) => F32_ULP * Math.abs(r.values[i]) + 1e-9 * big, `${kind} [${shape}] ${what}`);
    }
  }

  for (const kind of ["layerNorm", "rmsNorm"] as const) {
    for (const D of ODD) {
      test(`${kind}: rows of length ${D} (5 rows), with and without affine parameters, forward and backward within float32 rounding`, () => {
        checkNorm(kind, [5, D], [D], true, 1, 0);
        checkNorm(kind, [5, D], [D], false, 2, -1);
      });
    }
    test(`${kind}: [2, 3, 5, 7] over [5, 7] (rows of 35 across two dims); a training-sized [64, 768]`, () => {
      checkNorm(kind, [2, 3, 5, 7], [5, 7], true, 1, 0);
      checkNorm(kind, [64, 768], [768], true, 1, 0);
    });
    test(`${kind}: rows far from 0 (mean 1e4, spread 1e-2), huge (1e30), tiny (1e-20), one constant row, one NaN row and one with Infinity`, () => {
      checkNorm(kind, [4, 33], [33], true, 1e-2, 1e4);
      checkNorm(kind, [4, 33], [33], true, 1e30, 0);
      checkNorm(kind, [4, 33], [33], true, 1e-20, 0);
      checkNorm(kind, [4, 33], [33], true, 1, 0, (x) => { x.fill(3, 0, 33); x[40] = NaN; x[100] = Infinity; });
    });
  }

  test("split into many tasks, on 1 and on 3 threads: the same bits (gelu both ways, layerNorm and its weight/bias sums)", async () => {
    const saved = { ...elementwiseTuning }, threads = getNumThreads();
    const once = (): number[][] => {
      const x = leaf([37, 65], "float32"), w = leaf([65], "float32"), b = leaf([65], "float32");
      const g = randn([37, 65], { seed: 5 });
      gelu(x, "tanh").backward(g);
      const y = layerNorm(x, [65], w, b);
      y.backward(g);
      return [y, x.grad!, w.grad!, b.grad!].map((t) => Array.from(t.values));
    };
    try {
      Object.assign(elementwiseTuning, { taskElements: 64, minParallelElements: 0 });
      setNumThreads(1);
      seed = 123; const one = once();
      setNumThreads(3);
      // workers start on the first call that wants them; run until one has taken tasks (a few tries at most)
      const info = (): number => (backend === "wasm" ? wasmRuntimeInfo()?.workerTasks ?? 0 : 0);
      const before = info();
      for (let i = 0; i < 40; i++) {
        seed = 123;
        assert.deepEqual(once(), one, `try ${i}`);
        if (info() > before || backend !== "wasm" || wasmRuntimeInfo()?.threaded !== true) break;
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      Object.assign(elementwiseTuning, saved);
      setNumThreads(threads);
    }
  });

  test("layerNorm hand-worked through the fast path: x = [1, 2, 3, 4] -> mean 2.5, var 1.25, y = (x - 2.5) / sqrt(1.25 + 1e-5)", () => {
    const y = layerNorm(tensor([1, 2, 3, 4], [1, 4], { dtype: "float32" }), [4]);
    const s = Math.sqrt(1.25 + 1e-5);
    assert.deepEqual(Array.from(y.values), [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s].map(Math.fround));
  });
});
