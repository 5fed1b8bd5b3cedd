/**
 * Normalisations over the trailing `normalizedShape` dims, each one op with a hand-written backward:
 *   layerNorm: (x - mean) / sqrt(var + eps) * weight + bias     (biased variance, as PyTorch)
 *   rmsNorm:   x / sqrt(mean(x^2) + eps) * weight
 * Rows are the D = prod(normalizedShape) trailing elements; each row's statistics are accumulated
 * in float64 and the output is written in one pass. The textbook forms, built from ops so that
 * autograd derives their gradients, are layerNormReference / rmsNormReference in normReference.ts;
 * test/fastops.test.ts proves the two equal (bitwise in float64, where the arithmetic is the same).
 * float32 rows go to the backend's normRows / normRowsBackward where it has them (the wasm backend:
 * the same sums and formulas in SIMD, float64 inside, assembly/elementwise.ts); the loops here stay the
 * readable form and what the `ref` backend runs.
 */
import { kernelNormRows, kernelNormRowsBackward } from "../kernels/dispatch.js";
import { type FloatArray, type TypedArray, allocate, allocateOverwritten, promote } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { checkLayerNormArgs, checkRmsNormArgs } from "./normShape.js";
import { result } from "./util.js";

/**
 * Σ x[o + i] for i < D, run by run along the last dim (length `run`), each run summed on its own and
 * then added: the order in which sum() over the trailing axes adds, so float64 rows agree bitwise
 * with the reference. rowSumSq: Σ (x[o + i] - shift)² in the same order.
 */
function rowSum(x: ArrayLike<number>, o: number, D: number, run: number): number {
  let acc = 0;
  for (let r = o; r < o + D; r += run) {
    let s = 0;
    for (let j = r; j < r + run; j++) s += x[j];
    acc += s;
  }
  return acc;
}

function rowSumSq(x: ArrayLike<number>, o: number, D: number, run: number, shift: number): number {
  let acc = 0;
  for (let r = o; r < o + D; r += run) {
    let s = 0;
    for (let j = r; j < r + run; j++) { const c = x[j] - shift; s += c * c; }
    acc += s;
  }
  return acc;
}

/** A float64 accumulator as a gradient of `like`'s shape and dtype. */
function gradLike(acc: Float64Array, like: Tensor): Tensor {
  const out = allocate(like.dtype, acc.length);
  out.set(acc);
  return new Tensor(out, like.shape, like.dtype);
}

interface Rows { R: number; D: number; run: number }

function rowsOf(x: Tensor, axes: number[]): Rows {
  let D = 1;
  for (const a of axes) D *= x.shape[a];
  return { R: D === 0 ? 0 : x.size / D, D, run: x.shape[x.ndim - 1] };
}

/**
 * layerNorm's backward over R rows of D: gx (when not null), and the weight/bias column sums added
 * into accW / accB (when not null). A top-level function rather than a loop inside the backward
 * closure: V8 optimised the closure's loops late in a training run (every element's sums boxed into
 * heap numbers for the first steps; a sampling heap profile of bench/profileStep.ts showed it).
 */
function layerNormBackwardRows(
  gd: ArrayLike<number>, xd: ArrayLike<number>, wd: ArrayLike<number> | null, mean: Float64Array, std: Float64Array,
  R: number, D: number, gx: TypedArray | null, accW: Float64Array | null, accB: Float64Array | null,
): void {
  for (let r = 0, o = 0; r < R; r++, o += D) {
    const mu = mean[r], inv = 1 / std[r];
    // one pass for the row sums and the weight/bias columns, one more for dx
    let sumGw = 0, sumGwXhat = 0;
    for (let j = 0; j < D; j++) {
      const gj = gd[o + j];
      const xhat = (xd[o + j] - mu) * inv;
      const gw = wd === null ? gj : gj * wd[j];
      sumGw += gw;
      sumGwXhat += gw * xhat;
      if (accW !== null) accW[j] += gj * xhat;
      if (accB !== null) accB[j] += gj;
    }
    if (gx === null) continue;
    const m1 = sumGw / D, m2 = sumGwXhat / D;
    for (let j = 0; j < D; j++) {
      const gw = wd === null ? gd[o + j] : gd[o + j] * wd[j];
      gx[o + j] = (gw - m1 - (xd[o + j] - mu) * inv * m2) * inv;
    }
  }
}

export function layerNorm(
  x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5,
): Tensor {
  const fn = "layerNorm";
  const axes = checkLayerNormArgs(fn, x, normalizedShape, weight, bias, eps);
  const w = weight ?? null;
  const b = bias ?? null;
  const { R, D, run } = rowsOf(x, axes);
  const dtype = promote(promote(x.dtype, w ? w.dtype : x.dtype), b ? b.dtype : x.dtype);
  const out = allocateOverwritten(dtype, x.size); // the kernel or the loop writes every element
  const xd = x.values;
  const wd = w && w.values;
  const bd = b && b.values;
  const mean = new Float64Array(R);
  const std = new Float64Array(R);
  if (!kernelNormRows({ R, D, eps }, out as FloatArray, xd as FloatArray, wd as FloatArray | null, bd as FloatArray | null, mean, std)) {
    for (let r = 0, o = 0; r < R; r++, o += D) {
      const mu = rowSum(xd, o, D, run) / D;
      const s = Math.sqrt(rowSumSq(xd, o, D, run, mu) / D + eps);
      mean[r] = mu;
      std[r] = s;
      for (let j = 0; j < D; j++) {
        let y = (xd[o + j] - mu) / s;
        if (wd !== null) y *= wd[j];
        if (bd !== null) y += bd[j];
        out[o + j] = y;
      }
    }
  }
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  return result(fn, out, x.shape, dtype, inputs, (g) => {
    const gd = g.values;
    // x̂ = (x - mean) / σ, y = x̂ w + b:
    // dx = (1/σ)(g·w − mean(g·w) − x̂·mean(g·w·x̂)),  dw = Σ_rows g·x̂,  db = Σ_rows g
    const gx = x.requiresGrad ? allocateOverwritten(x.dtype, x.size) : null; // every element written
    const accW = w !== null && w.requiresGrad ? new Float64Array(D) : null;
    const accB = b !== null && b.requiresGrad ? new Float64Array(D) : null;
    if (!kernelNormRowsBackward({ R, D, eps }, gd as FloatArray, xd as FloatArray, wd as FloatArray | null, mean, std, gx as FloatArray | null, accW, accB)) {
      layerNormBackwardRows(gd, xd, wd, mean, std, R, D, gx, accW, accB);
    }
    const grads = [gx && new Tensor(gx, x.shape, x.dtype)];
    if (w !== null) grads.push(accW && gradLike(accW, w));
    if (b !== null) grads.push(accB && gradLike(accB, b));
    return grads;
  });
}

/** rmsNorm's backward over R rows of D, top-level for the reason layerNormBackwardRows is. */
function rmsNormBackwardRows(
  gd: ArrayLike<number>, xd: ArrayLike<number>, wd: ArrayLike<number> | null, rms: Float64Array,
  R: number, D: number, gx: TypedArray | null, accW: Float64Array | null,
): void {
  for (let r = 0, o = 0; r < R; r++, o += D) {
    const inv = 1 / rms[r];
    let sumGwXhat = 0;
    for (let j = 0; j < D; j++) {
      const gj = gd[o + j];
      const xhat = xd[o + j] * inv;
      sumGwXhat += (wd === null ? gj : gj * wd[j]) * xhat;
      if (accW !== null) accW[j] += gj * xhat;
    }
    if (gx === null) continue;
    const m2 = sumGwXhat / D;
    for (let j = 0; j < D; j++) {
      const gw = wd === null ? gd[o + j] : gd[o + j] * wd[j];
      gx[o + j] = (gw - xd[o + j] * inv * m2) * inv;
    }
  }
}

/** eps defaults to the dtype's machine epsilon, as torch.nn.RMSNorm with eps=None. */
export function rmsNorm(x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, eps?: number): Tensor {
  const fn = "rmsNorm";
  const { axes, eps: e } = checkRmsNormArgs(fn, x, normalizedShape, weight, eps);
  const w = weight ?? null;
  const { R, D, run } = rowsOf(x, axes);
  const dtype = promote(x.dtype, w ? w.dtype : x.dtype);
  const out = allocateOverwritten(dtype, x.size); // the kernel or the loop writes every element
  const xd = x.values;
  const wd = w && w.values;
  const rms = new Float64Array(R);
  if (!kernelNormRows({ R, D, eps: e }, out as FloatArray, xd as FloatArray, wd as FloatArray | null, null, null, rms)) {
    for (let r = 0, o = 0; r < R; r++, o += D) {
      const s = Math.sqrt(rowSumSq(xd, o, D, run, 0) / D + e);
      rms[r] = s;
      for (let j = 0; j < D; j++) out[o + j] = wd === null ? xd[o + j] / s : (xd[o + j] / s) * wd[j];
    }
  }
  return result(fn, out, x.shape, dtype, w ? [x, w] : [x], (g) => {
    const gd = g.values;
    // x̂ = x / σ, y = x̂ w:  dx = (1/σ)(g·w − x̂·mean(g·w·x̂)),  dw = Σ_rows g·x̂
    const gx = x.requiresGrad ? allocateOverwritten(x.dtype, x.size) : null; // every element written
    const accW = w !== null && w.requiresGrad ? new Float64Array(D) : null;
    if (!kernelNormRowsBackward({ R, D, eps: e }, gd as FloatArray, xd as FloatArray, wd as FloatArray | null, null, rms, gx as FloatArray | null, accW, null)) {
      rmsNormBackwardRows(gd, xd, wd, rms, R, D, gx, accW);
    }
    const grads = [gx && new Tensor(gx, x.shape, x.dtype)];
    if (w !== null) grads.push(accW && gradLike(accW, w));
    return grads;
  });
}
