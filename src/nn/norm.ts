/**
 * Normalisation layers over the trailing dims (torch.nn.LayerNorm, torch.nn.RMSNorm), thin wrappers
 * over ops/norm.ts that own the affine parameters:
 *   LayerNorm: (x - mean) / sqrt(var + eps) * weight + bias       weight = 1, bias = 0 at start
 *   RMSNorm:   x / sqrt(mean(x^2) + eps) * weight                 weight = 1 at start
 */
import { FLOAT_DTYPES, checkDType } from "../tensor/dtype.js";
import { ArgumentError } from "../tensor/errors.js";
import { ones, zeros } from "../tensor/creation.js";
import type { Tensor } from "../tensor/tensor.js";
import { layerNorm, rmsNorm } from "../ops/norm.js";
import { checkOptions, checkPositiveInt, optionKeys } from "../tensor/validate.js";
import { Module } from "./module.js";

function normalizedDims(fn: string, shape: number | readonly number[]): number[] {
  const dims = typeof shape === "number" ? [shape] : [...shape];
  if (dims.length === 0) throw new ArgumentError(`${fn}: normalizedShape must name at least one dim, got []`);
  dims.forEach((d, i) => checkPositiveInt(fn, `normalizedShape[${i}]`, d));
  return dims;
}

export interface LayerNormOptions {
  /** added to the variance (default 1e-5, as PyTorch) */
  eps?: number;
  /** learn weight (and bias); default true */
  elementwiseAffine?: boolean;
  /** learn a bias (default true; only with elementwiseAffine) */
  bias?: boolean;
  dtype?: "float32" | "float64";
}
export const LAYER_NORM_OPTION_KEYS = optionKeys<LayerNormOptions>({ eps: true, elementwiseAffine: true, bias: true, dtype: true });

export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(normalizedShape: number | readonly number[], opts: LayerNormOptions = {}) {
    super();
    checkOptions("LayerNorm", "options", opts, LAYER_NORM_OPTION_KEYS);
    this.normalizedShape = normalizedDims("LayerNorm", normalizedShape);
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    const dtype = checkDType("LayerNorm", "dtype", opts.dtype ?? "float32", FLOAT_DTYPES);
    this.weight = this.registerParameter("weight", affine ? ones(this.normalizedShape, { dtype }) : null);
    this.bias = this.registerParameter("bias", affine && opts.bias !== false ? zeros(this.normalizedShape, { dtype }) : null);
  }

  /** x [.., *normalizedShape] -> same shape */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export interface RMSNormOptions {
  /** added to mean(x^2); default: the dtype's machine epsilon, as torch.nn.RMSNorm(eps=None) */
  eps?: number;
  elementwiseAffine?: boolean;
  dtype?: "float32" | "float64";
}
export const RMS_NORM_OPTION_KEYS = optionKeys<RMSNormOptions>({ eps: true, elementwiseAffine: true, dtype: true });

export class RMSNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number | undefined;
  weight: Tensor | null;

  constructor(normalizedShape: number | readonly number[], opts: RMSNormOptions = {}) {
    super();
    checkOptions("RMSNorm", "options", opts, RMS_NORM_OPTION_KEYS);
    this.normalizedShape = normalizedDims("RMSNorm", normalizedShape);
    this.eps = opts.eps;
    const affine = opts.elementwiseAffine ?? true;
    const dtype = checkDType("RMSNorm", "dtype", opts.dtype ?? "float32", FLOAT_DTYPES);
    this.weight = this.registerParameter("weight", affine ? ones(this.normalizedShape, { dtype }) : null);
  }

  /** x [.., *normalizedShape] -> same shape */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.normalizedShape, this.weight, this.eps);
  }
}
