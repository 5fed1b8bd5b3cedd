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
 */
import { type DType, allocate, isFloatDType } from "../tensor/dtype.js";
import { ArgumentError } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { erf } from "./erf.js";
import { type Piecewise, evalPiecewise, mulPiecewiseBy, mulPiecewiseSelf, piecewise } from "./piecewise.js";
import { assertTensor, result } from "./util.js";

export type GeluApproximate = "none" | "tanh";

const SQRT_2_OVER_PI = 0.7978845608028654;
const INV_SQRT_2 = 0.7071067811865476;
const INV_SQRT_2PI = 0.3989422804014327;

/** Φ(x) = (1 + erf(x / √2)) / 2 */
export function geluGateExact(x: number): number {
  return 0.5 * (1 + erf(x * INV_SQRT_2));
}

/** (1 + tanh u) / 2,  u = √(2/π) (x + 0.044715 x³) */
export function geluGateTanh(x: number): number {
  return 0.5 * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

/** d/dx [x Φ(x)] = Φ(x) + x φ(x),  φ(x) = exp(-x²/2) / √(2π) */
export function geluGradExact(x: number): number {
  return geluGateExact(x) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/** d/dx = (1 + tanh u) / 2 + x (1 - tanh² u) u' / 2,  u' = √(2/π) (1 + 3 · 0.044715 x²) */
export function geluGradTanh(x: number): number {
  const t = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
}

interface Form { gate: (x: number) => number; grad: (x: number) => number; gateTable: Piecewise; gradTable: Piecewise }
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
  const { gate, grad, gateTable, gradTable } = form(approximate);
  const dtype: DType = isFloatDType(x.dtype) ? x.dtype : "float32";
  const n = x.size;
  const out = allocate(dtype, n);
  const xd = x.values;
  mulPiecewiseSelf(out, xd, gateTable, gate); // out[i] = x[i] · lookup(gateTable, gate, x[i])
  // dx = g · gelu'(x), the derivative in float64 and one rounding per element
  return result(fn, out, x.shape, dtype, [x], (g) => {
    const gx = allocate(g.dtype, n);
    const gd = g.values;
    mulPiecewiseBy(gx, gd, xd, gradTable, grad); // gx[i] = g[i] · lookup(gradTable, grad, x[i])
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
