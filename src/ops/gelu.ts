/**
 * GELU as PyTorch, gelu(x) = x · s(x) with the gate
 *   "none" (exact)  s(x) = Φ(x) = (1 + erf(x / √2)) / 2
 *   "tanh"          s(x) = (1 + tanh u) / 2,  u = √(2/π) (x + 0.044715 x³)
 * The gates and the derivatives are written out below as the definitions. A transformer's MLP runs
 * GELU on [tokens, 4C] every step, so forward and backward are one loop each over the flat data and
 * read the gate / the derivative from tables of polynomials built from those definitions on first
 * use (piecewise.ts: no erf, exp or tanh per element; equal to the formulas to float64 rounding,
 * checked in test/fastops.test.ts). Outside the tables' range, [-4, 9), the formulas themselves run:
 * past 9 the gates and derivatives are 1 to float64, below -4 they are tiny and the formulas keep
 * their relative accuracy.
 * float32 data goes to the backend's mulPiecewise where it has one (the wasm backend: the same lookup
 * in float32 SIMD, assembly/elementwise.ts) with float32 tables of the same definitions over
 * [-16, 9): below -16 the gates and derivatives are 0 in float32 (Φ(-16) ≈ 6e-58), past 9 they are 1,
 * and inside, a polynomial per 1/16 is exact to float32 even where the gate is tiny. The float64 loop
 * below stays the readable form and what the `ref` backend runs; test/fastops.test.ts holds the
 * float32 path to float32 rounding of the formulas.
 */
import type { PiecewiseTable32 } from "../kernels/backend.js";
import { kernelMulPiecewise } from "../kernels/dispatch.js";
import { type DType, allocateOverwritten, isFloatDType } from "../tensor/dtype.js";
import { ArgumentError } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { erf, erfc } from "./erf.js";
import { type Piecewise, evalPiecewise, mulPiecewiseBy, mulPiecewiseSelf, piecewise, table32 } from "./piecewise.js";
import { assertTensor, result } from "./util.js";

export type GeluApproximate = "none" | "tanh";

const SQRT_2_OVER_PI = 0.7978845608028654;
const INV_SQRT_2 = 0.7071067811865476;
const INV_SQRT_2PI = 0.3989422804014327;

/**
 * Φ(x) = (1 + erf(x / √2)) / 2, written erfc(|x| / √2) / 2 for x < 0: the same function, and where
 * erf(x / √2) is within rounding of -1 (x below about -8) it keeps Φ's relative accuracy, which
 * 1 + erf loses entirely.
 */
export function geluGateExact(x: number): number {
  return x < 0 ? 0.5 * erfc(-x * INV_SQRT_2) : 0.5 * (1 + erf(x * INV_SQRT_2));
}

/**
 * (1 + tanh u) / 2,  u = √(2/π) (x + 0.044715 x³), written 1 / (1 + e^(-2u)): the same function,
 * and where tanh u is within rounding of -1 (x below about -5.6) it keeps the relative accuracy that
 * 1 + tanh u loses.
 */
export function geluGateTanh(x: number): number {
  return 1 / (1 + Math.exp(-2 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

/** d/dx [x Φ(x)] = Φ(x) + x φ(x),  φ(x) = exp(-x²/2) / √(2π) */
export function geluGradExact(x: number): number {
  return geluGateExact(x) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/**
 * d/dx = (1 + tanh u) / 2 + x (1 - tanh² u) u' / 2,  u' = √(2/π) (1 + 3 · 0.044715 x²), written with
 * s = (1 + tanh u) / 2 = 1 / (1 + e^(-2u)) and 1 - s = 1 / (1 + e^(2u)) as s + 2 x s (1 - s) u'
 * ((1 - tanh² u) / 2 = 2 s (1 - s)), relatively accurate in both tails.
 */
export function geluGradTanh(x: number): number {
  const u2 = 2 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
  const s = 1 / (1 + Math.exp(-u2)), sc = 1 / (1 + Math.exp(u2));
  return s + 2 * x * s * sc * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
}

interface Form {
  gate: (x: number) => number;
  grad: (x: number) => number;
  gateTable: Piecewise;
  gradTable: Piecewise;
  /** the float32 kernels' tables, built on first use */
  gate32?: PiecewiseTable32;
  grad32?: PiecewiseTable32;
}
const forms: Partial<Record<GeluApproximate, Form>> = {};

/** The tables of one form, built on first use (a few thousand evaluations of the formulas). */
function form(approximate: GeluApproximate): Form {
  let f = forms[approximate];
  if (f === undefined) {
    const gate = approximate === "none" ? geluGateExact : geluGateTanh;
    const grad = approximate === "none" ? geluGradExact : geluGradTanh;
    f = { gate, grad, gateTable: piecewise(gate, -4, 9, 1 / 16), gradTable: piecewise(grad, -4, 9, 1 / 16) };
    forms[approximate] = f;
  }
  return f;
}

/**
 * The float32 tables of a form: [-16, 9), 0 below, 1 from 9 on (see the top of this file), each with
 * a cubic core on [-4, 9) in intervals of 1/64 (13 KB; within 1e-8 of the formulas relatively, well
 * under float32's 6e-8), which the wasm kernel reads when four activations in a row all lie there.
 */
function tables32(f: Form): { gate32: PiecewiseTable32; grad32: PiecewiseTable32 } {
  f.gate32 ??= table32(piecewise(f.gate, -16, 9, 1 / 16), f.gate, 0, 1, piecewise(f.gate, -4, 9, 1 / 64, 3));
  f.grad32 ??= table32(piecewise(f.grad, -16, 9, 1 / 16), f.grad, 0, 1, piecewise(f.grad, -4, 9, 1 / 64, 3));
  return { gate32: f.gate32, grad32: f.grad32 };
}

/** out = by · f(x) on the backend's float32 kernel when it takes these arrays; false: run the loop. */
function onKernel(out: ArrayLike<number>, by: ArrayLike<number>, x: ArrayLike<number>, f: () => PiecewiseTable32): boolean {
  return out instanceof Float32Array && by instanceof Float32Array && x instanceof Float32Array &&
    kernelMulPiecewise(out, by, x, f());
}

/**
 * f(x) from the table inside its range, from the formula outside. gelu() runs, per element,
 * out[i] = x[i] · lookup(gateTable, gate, x[i]) and gx[i] = g[i] · lookup(gradTable, grad, x[i]) through
 * mulPiecewiseSelf / mulPiecewiseBy (piecewise.ts: the lookup written out inside the loop);
 * geluReadable below is the per-element form, proven bitwise equal in test/fastops.test.ts.
 */
function lookup(table: Piecewise, formula: (x: number) => number, x: number): number {
  return x >= table.lo && x < table.hi ? evalPiecewise(table, x) : formula(x);
}

export function gelu(x: Tensor, approximate: GeluApproximate = "none"): Tensor {
  const fn = "gelu";
  if (approximate !== "none" && approximate !== "tanh") {
    throw new ArgumentError(`${fn}: approximate must be "none" or "tanh", got ${JSON.stringify(approximate)}`);
  }
  assertTensor(fn, "x", x);
  const fm = form(approximate);
  const { gate, grad, gateTable, gradTable } = fm;
  const dtype: DType = isFloatDType(x.dtype) ? x.dtype : "float32";
  const n = x.size;
  const out = allocateOverwritten(dtype, n); // both loops write every element
  const xd = x.values;
  // out[i] = x[i] · lookup(gateTable, gate, x[i])
  if (!onKernel(out, xd, xd, () => tables32(fm).gate32)) mulPiecewiseSelf(out, xd, gateTable, gate);
  // dx = g · gelu'(x), the derivative in float64 and one rounding per element
  return result(fn, out, x.shape, dtype, [x], (g) => {
    const gx = allocateOverwritten(g.dtype, n);
    const gd = g.values;
    // gx[i] = g[i] · lookup(gradTable, grad, x[i])
    if (!onKernel(gx, gd, xd, () => tables32(fm).grad32)) mulPiecewiseBy(gx, gd, xd, gradTable, grad);
    return [new Tensor(gx, x.shape, g.dtype)];
  });
}

/**
 * gelu()'s forward values and its backward's g · gelu'(x), element by element through lookup(): the
 * readable form of gelu()'s two loops, for the test that proves them equal (no autograd).
 */
export function geluReadable(x: ArrayLike<number>, g: ArrayLike<number>, approximate: GeluApproximate = "none"): { y: number[]; gx: number[] } {
  const { gate, grad, gateTable, gradTable } = form(approximate);
  const y: number[] = [], gx: number[] = [];
  for (let i = 0; i < x.length; i++) {
    y.push(x[i] * lookup(gateTable, gate, x[i]));
    gx.push(g[i] * lookup(gradTable, grad, x[i]));
  }
  return { y, gx };
}
