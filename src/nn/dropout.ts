/**
 * Dropout as a module: zeroes each element with probability p and scales the survivors by 1/(1-p),
 * only while training (module.train()); in eval() it is the identity. The mask comes from the
 * module's own seeded Generator, so a run is reproducible.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { dropout } from "../ops/functional.js";
import { initGenerator } from "../tensor/random.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { Module } from "./module.js";

export interface DropoutModuleOptions {
  seed?: number;
  generator?: Generator;
}
export const DROPOUT_MODULE_OPTION_KEYS = optionKeys<DropoutModuleOptions>({ seed: true, generator: true });

export class Dropout extends Module {
  readonly p: number;
  private readonly gen: Generator;

  constructor(p = 0.5, opts: DropoutModuleOptions = {}) {
    super();
    checkOptions("Dropout", "options", opts, DROPOUT_MODULE_OPTION_KEYS);
    if (typeof p !== "number" || !(p >= 0 && p < 1)) throw new ArgumentError(`Dropout: p must be in [0, 1), got ${String(p)}`);
    this.p = p;
    this.gen = initGenerator(opts, "Dropout");
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return dropout(x, this.p, { training: true, generator: this.gen });
  }
}
