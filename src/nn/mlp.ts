/**
 * The transformer's position-wise feed-forward network: the same two-layer MLP applied to every
 * position on its own.
 *   fc1: [.., C] -> [.., F]     activation (GELU by default; ReLU as in "Attention Is All You Need")
 *   fc2: [.., F] -> [.., C]
 * Parameter names fc1.weight [F, C], fc1.bias [F], fc2.weight [C, F], fc2.bias [C].
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { gelu, relu } from "../ops/elementwise.js";
import { Linear } from "./linear.js";
import { checkOptions, checkPositiveInt, optionKeys } from "../tensor/validate.js";
import { initGenerator } from "../tensor/random.js";
import { Module } from "./module.js";

export type Activation = "gelu" | "gelu-tanh" | "relu";
export const ACTIVATIONS: readonly Activation[] = ["gelu", "gelu-tanh", "relu"];

export interface MLPOptions {
  /** default "gelu" (exact, erf) */
  activation?: Activation;
  bias?: boolean;
  seed?: number;
  generator?: Generator;
  dtype?: "float32" | "float64";
}
export const MLP_OPTION_KEYS = optionKeys<MLPOptions>({ activation: true, bias: true, seed: true, generator: true, dtype: true });

export function activate(x: Tensor, activation: Activation): Tensor {
  switch (activation) {
    case "gelu": return gelu(x, "none");
    case "gelu-tanh": return gelu(x, "tanh");
    case "relu": return relu(x);
  }
}

export class MLP extends Module {
  readonly activation: Activation;
  fc1: Linear;
  fc2: Linear;

  constructor(readonly dModel: number, readonly dHidden: number, opts: MLPOptions = {}) {
    super();
    checkOptions("MLP", "options", opts, MLP_OPTION_KEYS);
    checkPositiveInt("MLP", "dModel", dModel);
    checkPositiveInt("MLP", "dHidden", dHidden);
    const activation = opts.activation ?? "gelu";
    if (!ACTIVATIONS.includes(activation)) {
      throw new ArgumentError(`MLP: activation must be one of ${ACTIVATIONS.map((a) => JSON.stringify(a)).join(", ")}, got ${JSON.stringify(activation)}`);
    }
    this.activation = activation;
    const g = initGenerator(opts, "MLP");
    const lin = { bias: opts.bias ?? true, generator: g, dtype: opts.dtype };
    this.fc1 = this.registerModule("fc1", new Linear(dModel, dHidden, lin));
    this.fc2 = this.registerModule("fc2", new Linear(dHidden, dModel, lin));
  }

  /** x [.., C] -> [.., C] */
  forward(x: Tensor): Tensor {
    const h = activate(this.fc1.forward(x), this.activation); // [.., C] -> [.., F]
    return this.fc2.forward(h); // [.., F] -> [.., C]
  }
}
