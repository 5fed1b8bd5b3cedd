/**
 * Embedding: a lookup table of learned vectors, one row per token id (torch.nn.Embedding).
 *   weight [V, C], indices [..] (int32) -> [.., C]; initialised N(0, 1) as PyTorch does.
 */
import { FLOAT_DTYPES, checkDType } from "../tensor/dtype.js";
import type { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { embedding } from "../ops/functional.js";
import { checkSkipInit, normal, zerosOf } from "./init.js";
import { checkOptions, checkPositiveInt, optionKeys } from "../tensor/validate.js";
import { initGenerator } from "../tensor/random.js";
import { Module } from "./module.js";

export interface EmbeddingOptions {
  seed?: number;
  generator?: Generator;
  dtype?: "float32" | "float64";
  /** true: the table starts as zeros, nothing is drawn (for loading a checkpoint over it); default false */
  skipInit?: boolean;
}
export const EMBEDDING_OPTION_KEYS = optionKeys<EmbeddingOptions>({ seed: true, generator: true, dtype: true, skipInit: true });

export class Embedding extends Module {
  weight: Tensor;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: EmbeddingOptions = {}) {
    super();
    checkOptions("Embedding", "options", opts, EMBEDDING_OPTION_KEYS);
    checkPositiveInt("Embedding", "numEmbeddings", numEmbeddings);
    checkPositiveInt("Embedding", "embeddingDim", embeddingDim);
    const dtype = checkDType("Embedding", "dtype", opts.dtype ?? "float32", FLOAT_DTYPES);
    const shape = [numEmbeddings, embeddingDim];
    this.weight = this.registerParameter("weight", checkSkipInit("Embedding", opts.skipInit) ? zerosOf(shape, dtype) : normal(shape, 1, initGenerator(opts, "Embedding"), dtype));
  }

  /** indices [..] int32 (or a plain array of ids) -> [.., C] */
  forward(indices: Tensor | readonly number[]): Tensor {
    return embedding(this.weight, indices);
  }
}
