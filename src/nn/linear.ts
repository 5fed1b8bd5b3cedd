import { type Generator, initGenerator } from "../tensor/random.js";
import { checkOptions, checkPositiveInt, optionKeys } from "../tensor/validate.js";
import { FLOAT_DTYPES, checkDType } from "../tensor/dtype.js";
import type { Tensor } from "../tensor/tensor.js";
import { linear } from "../ops/functional.js";
import { checkSkipInit, linearWeight, uniform, zerosOf } from "./init.js";
import { Module } from "./module.js";

export interface LinearOptions {
  bias?: boolean;
  /** seeds the initialisation (a Generator may be passed instead) */
  seed?: number;
  generator?: Generator;
  dtype?: "float32" | "float64";
  /** true: weight and bias start as zeros, nothing is drawn (for loading a checkpoint over them); default false */
  skipInit?: boolean;
}
export const LINEAR_OPTION_KEYS = optionKeys<LinearOptions>({ bias: true, seed: true, generator: true, dtype: true, skipInit: true });

/** y = x Wᵀ + b, weight [out, in], bias [out]; initialised as torch.nn.Linear. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    checkOptions("Linear", "options", opts, LINEAR_OPTION_KEYS);
    checkPositiveInt("Linear", "inFeatures", inFeatures);
    checkPositiveInt("Linear", "outFeatures", outFeatures);
    const dtype = checkDType("Linear", "dtype", opts.dtype ?? "float32", FLOAT_DTYPES);
    if (checkSkipInit("Linear", opts.skipInit)) {
      this.weight = this.registerParameter("weight", zerosOf([outFeatures, inFeatures], dtype));
      this.bias = this.registerParameter("bias", opts.bias === false ? null : zerosOf([outFeatures], dtype));
      return;
    }
    const g = initGenerator(opts, "Linear");
    this.weight = this.registerParameter("weight", linearWeight([outFeatures, inFeatures], g, dtype));
    const bound = 1 / Math.sqrt(inFeatures);
    this.bias = this.registerParameter("bias", opts.bias === false ? null : uniform([outFeatures], -bound, bound, g, dtype));
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
