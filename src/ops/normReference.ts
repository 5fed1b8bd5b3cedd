/**
 * The textbook normalisations, written from ops so that autograd derives their gradients: the
 * readable definitions that the fused layerNorm / rmsNorm of norm.ts are tested against
 * (test/fastops.test.ts). Not part of the public API.
 *   layerNormReference: (x - mean) / sqrt(var + eps) * weight + bias     (biased variance)
 *   rmsNormReference:   x / sqrt(mean(x^2) + eps) * weight
 */
import type { Tensor } from "../tensor/tensor.js";
import { add, div, mul, sqrt, sub } from "./elementwise.js";
import { checkLayerNormArgs, checkRmsNormArgs } from "./normShape.js";
import { mean } from "./reduce.js";

export function layerNormReference(
  x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5,
): Tensor {
  const axes = checkLayerNormArgs("layerNormReference", x, normalizedShape, weight, bias, eps);
  const mu = mean(x, axes, true);
  const centered = sub(x, mu);
  const variance = mean(mul(centered, centered), axes, true);
  let y = div(centered, sqrt(add(variance, eps)));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

export function rmsNormReference(x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, eps?: number): Tensor {
  const { axes, eps: e } = checkRmsNormArgs("rmsNormReference", x, normalizedShape, weight, eps);
  let y = div(x, sqrt(add(mean(mul(x, x), axes, true), e)));
  if (weight) y = mul(y, weight);
  return y;
}
