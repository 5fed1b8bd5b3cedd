/**
 * Normalisations over the trailing `normalizedShape` dims, written from ops so autograd derives their
 * gradients (the readable version; a fused kernel can replace them later, proven equal).
 *   layerNorm: (x - mean) / sqrt(var + eps) * weight + bias     (biased variance, as PyTorch)
 *   rmsNorm:   x / sqrt(mean(x^2) + eps) * weight
 */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { add, div, mul, sqrt, sub } from "./elementwise.js";
import { mean } from "./reduce.js";
import { assertFloat, assertTensor } from "./util.js";

function trailingAxes(fn: string, x: Tensor, normalizedShape: number | readonly number[]): number[] {
  const ns = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
  const tail = x.shape.slice(x.ndim - ns.length);
  if (ns.length === 0 || ns.length > x.ndim || ns.some((d, i) => d !== tail[i])) {
    throw new ShapeError(`${fn}: normalizedShape ${fmtShape(ns)} must match the last dims of x ${fmtShape(x.shape)}`);
  }
  return ns.map((_, i) => x.ndim - ns.length + i);
}

function checkAffine(fn: string, name: string, p: Tensor | null | undefined, x: Tensor, axes: number[]): void {
  if (p === null || p === undefined) return;
  assertTensor(fn, name, p);
  const want = axes.map((a) => x.shape[a]);
  if (p.ndim !== want.length || p.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(`${fn}: ${name} has shape ${fmtShape(p.shape)}, expected normalizedShape ${fmtShape(want)}`);
  }
}

function checkEps(fn: string, eps: number): void {
  if (typeof eps !== "number" || !(eps >= 0)) throw new ArgumentError(`${fn}: eps must be a non-negative number, got ${eps}`);
}

export function layerNorm(
  x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5,
): Tensor {
  const fn = "layerNorm";
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  const axes = trailingAxes(fn, x, normalizedShape);
  checkAffine(fn, "weight", weight, x, axes);
  checkAffine(fn, "bias", bias, x, axes);
  checkEps(fn, eps);
  const mu = mean(x, axes, true);
  const centered = sub(x, mu);
  const variance = mean(mul(centered, centered), axes, true);
  let y = div(centered, sqrt(add(variance, eps)));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

/** eps defaults to the dtype's machine epsilon, as torch.nn.RMSNorm with eps=None. */
export function rmsNorm(x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, eps?: number): Tensor {
  const fn = "rmsNorm";
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  const axes = trailingAxes(fn, x, normalizedShape);
  checkAffine(fn, "weight", weight, x, axes);
  const e = eps ?? (x.dtype === "float64" ? 2.220446049250313e-16 : 1.1920928955078125e-7);
  checkEps(fn, e);
  let y = div(x, sqrt(add(mean(mul(x, x), axes, true), e)));
  if (weight) y = mul(y, weight);
  return y;
}
