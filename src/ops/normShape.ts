/** What layerNorm / rmsNorm and their references check and share: the normalised axes, weight/bias shapes, eps. */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
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

/** rmsNorm's default eps: the dtype's machine epsilon, as torch.nn.RMSNorm with eps=None. */
function rmsNormEps(x: Tensor, eps: number | undefined): number {
  return eps ?? (x.dtype === "float64" ? 2.220446049250313e-16 : 1.1920928955078125e-7);
}

/** layerNorm's arguments checked; returns the normalised axes. */
export function checkLayerNormArgs(
  fn: string, x: Tensor, normalizedShape: number | readonly number[], weight: Tensor | null | undefined, bias: Tensor | null | undefined, eps: number,
): number[] {
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  const axes = trailingAxes(fn, x, normalizedShape);
  checkAffine(fn, "weight", weight, x, axes);
  checkAffine(fn, "bias", bias, x, axes);
  checkEps(fn, eps);
  return axes;
}

/** rmsNorm's arguments checked; returns the normalised axes and the eps in force. */
export function checkRmsNormArgs(
  fn: string, x: Tensor, normalizedShape: number | readonly number[], weight: Tensor | null | undefined, eps: number | undefined,
): { axes: number[]; eps: number } {
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  const axes = trailingAxes(fn, x, normalizedShape);
  checkAffine(fn, "weight", weight, x, axes);
  const e = rmsNormEps(x, eps);
  checkEps(fn, e);
  return { axes, eps: e };
}
