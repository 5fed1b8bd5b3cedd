/**
 * A smooth function as a table of polynomials, built once from its definition: [lo, hi) is cut into
 * intervals of one width, and on each the function is replaced by its degree-7 Chebyshev
 * interpolant, stored as monomial coefficients in t = (x - mid) / (width / 2) ∈ [-1, 1]. Evaluating
 * is an index and one polynomial (Estrin's scheme: three levels of multiply-add instead of Horner's
 * seven in a chain): no division, no exp, no loop that tests for convergence, which is what the
 * elementwise loops over every activation of a transformer step want (GELU's gate and derivative).
 * With intervals of width 1/16 the interpolant is as exact as a float64 definition of a function as
 * smooth as these.
 */
import type { PiecewiseTable32 } from "../kernels/backend.js";
import type { TypedArray } from "../tensor/dtype.js";

export interface Piecewise {
  readonly lo: number;
  readonly hi: number;
  readonly width: number;
  readonly intervals: number;
  /** 1 / width and 2 / width (exact for the power-of-two widths used) */
  readonly perWidth: number;
  readonly toT: number;
  /** the polynomials' degree: 7 for every table evaluated here (evalPiecewise, the loops below) */
  readonly degree: number;
  /** degree + 1 coefficients per interval, lowest power first */
  readonly coef: Float64Array;
}

const DEG = 7;

/**
 * The table of f on [lo, hi) in intervals of `width`, polynomials of `degree` (7 unless asked: the
 * float32 kernels also take a cubic table on narrower intervals, PiecewiseTable32.core).
 */
export function piecewise(f: (x: number) => number, lo: number, hi: number, width: number, degree = DEG): Piecewise {
  const intervals = Math.round((hi - lo) / width);
  if (!(intervals >= 1)) throw new Error(`internal: piecewise needs hi > lo, got [${lo}, ${hi})`);
  const n = degree + 1;
  const coef = new Float64Array(intervals * n);
  const nodes = Array.from({ length: n }, (_, i) => Math.cos((Math.PI * (i + 0.5)) / n)); // zeros of T_n
  for (let k = 0; k < intervals; k++) {
    const mid = lo + (k + 0.5) * width;
    const f0 = f(mid); // interpolate f - f(mid), so the sums below add small numbers
    const fv = nodes.map((t) => f(mid + (width / 2) * t) - f0);
    // Chebyshev coefficients c_j = (2/n) Σ_i f(t_i) T_j(t_i), halved for j = 0; T_j kept as monomials
    // (T_0 = 1, T_1 = t, T_{j+1} = 2t T_j - T_{j-1}) and summed into the interval's polynomial.
    const mono = new Float64Array(n);
    let prev = new Float64Array(n);
    let cur = new Float64Array(n);
    prev[0] = 1;
    cur[1] = 1;
    for (let j = 0; j < n; j++) {
      const Tj = j === 0 ? prev : cur;
      let c = 0;
      for (let i = 0; i < n; i++) c += fv[i] * Math.cos((j * Math.PI * (i + 0.5)) / n);
      c *= (j === 0 ? 1 : 2) / n;
      for (let i = 0; i < n; i++) mono[i] += c * Tj[i];
      if (j >= 1) {
        const next = new Float64Array(n);
        for (let i = 0; i < n; i++) next[i] = (i > 0 ? 2 * cur[i - 1] : 0) - prev[i];
        prev = cur;
        cur = next;
      }
    }
    mono[0] += f0;
    coef.set(mono, k * n);
  }
  return { lo, hi, width, intervals, perWidth: 1 / width, toT: 2 / width, degree, coef };
}

/** The table's value at x; x must lie in [p.lo, p.hi) (callers handle the outside). */
export function evalPiecewise(p: Piecewise, x: number): number {
  const c = p.coef;
  const k = Math.min(Math.floor((x - p.lo) * p.perWidth), p.intervals - 1);
  const t = (x - p.lo - (k + 0.5) * p.width) * p.toT;
  const o = k * (DEG + 1);
  // Σ c_j t^j, j ≤ 7, as ((c0 + c1 t) + (c2 + c3 t) t²) + ((c4 + c5 t) + (c6 + c7 t) t²) t⁴
  const t2 = t * t;
  const q0 = (c[o] + c[o + 1] * t) + (c[o + 2] + c[o + 3] * t) * t2;
  const q1 = (c[o + 4] + c[o + 5] * t) + (c[o + 6] + c[o + 7] * t) * t2;
  return q0 + q1 * (t2 * t2);
}

/**
 * The two elementwise loops an activation runs, each with evalPiecewise written out inside it (the
 * table's fields in locals; the same arithmetic in the same order, so the same bits) and `outside`
 * for x outside [lo, hi) (NaN included):
 *   mulPiecewiseSelf:  out[i] = x[i] · f(x[i])      (GELU forward: x · gate(x))
 *   mulPiecewiseBy:    out[i] = g[i] · f(x[i])      (GELU backward: g · gelu'(x))
 * Readable form, per element: `by * (x >= p.lo && x < p.hi ? evalPiecewise(p, x) : outside(x))`;
 * test/fastops.test.ts proves them bitwise equal. Top-level functions, not loops inside closures,
 * so V8 optimises them on the first steps of a training run (no heap number per element).
 */
export function mulPiecewiseSelf(out: TypedArray, x: ArrayLike<number>, p: Piecewise, outside: (x: number) => number): void {
  mulPiecewiseBy(out, x, x, p, outside); // x · f(x): the same loop with by = x
}

export function mulPiecewiseBy(out: TypedArray, by: ArrayLike<number>, x: ArrayLike<number>, p: Piecewise, outside: (x: number) => number): void {
  const c = p.coef, lo = p.lo, hi = p.hi, width = p.width, perWidth = p.perWidth, toT = p.toT, last = p.intervals - 1;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const v = x[i];
    let f: number;
    if (v >= lo && v < hi) {
      const k = Math.min(Math.floor((v - lo) * perWidth), last);
      const t = (v - lo - (k + 0.5) * width) * toT;
      const o = k * (DEG + 1);
      const t2 = t * t;
      const q0 = (c[o] + c[o + 1] * t) + (c[o + 2] + c[o + 3] * t) * t2;
      const q1 = (c[o + 4] + c[o + 5] * t) + (c[o + 6] + c[o + 7] * t) * t2;
      f = q0 + q1 * (t2 * t2);
    } else {
      f = outside(v);
    }
    out[i] = by[i] * f;
  }
}

/**
 * A table as the float32 kernels take it (kernels/backend.ts PiecewiseTable32): the coefficients
 * rounded to float32, f's limits below lo and from hi on, and f(±Infinity) from its definition;
 * `core`, when given, a cubic table of the same f on a part of [lo, hi) (see PiecewiseTable32.core).
 */
export function table32(p: Piecewise, f: (x: number) => number, below: number, above: number, core?: Piecewise): PiecewiseTable32 {
  if (p.degree !== DEG) throw new Error(`internal: table32 takes a degree-${DEG} table, got degree ${p.degree}`);
  if (core !== undefined && (core.degree !== 3 || core.lo < p.lo || core.hi > p.hi)) {
    throw new Error(`internal: table32's core must be a cubic table inside [${p.lo}, ${p.hi}), got degree ${core.degree} on [${core.lo}, ${core.hi})`);
  }
  return {
    lo: p.lo, hi: p.hi, width: p.width, intervals: p.intervals, coef: Float32Array.from(p.coef),
    below, above, negInf: f(-Infinity), posInf: f(Infinity),
    ...(core === undefined ? {} : { core: { lo: core.lo, hi: core.hi, width: core.width, intervals: core.intervals, coef: Float32Array.from(core.coef) } }),
  };
}
