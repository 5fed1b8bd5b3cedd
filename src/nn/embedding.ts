/**
 * Embedding: a lookup table of learned vectors, one row per token id (torch.nn.Embedding).
 *   weight [V, C], indices [..] (int32) -> [.., C]; initialised N(0, 1) as PyTorch does.
 */
import { FLOAT_DTYPES, checkDType } from "../tensor/dtype.js";
import type { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { embedding } from "../ops/functional.js";
import { normal } from "./init.js";
import { checkOptions, checkPositiveInt, optionKeys } from "../tensor/validate.js";
import { initGenerator } from "../tensor/random.js";
import { Module } from "./module.js";

export interface EmbeddingOptions {
  seed?: number;
  generator?: Generator;
  dtype?: "float32" | "float64";
}
export const EMBEDDING_OPTION_KEYS = optionKeys<EmbeddingOptions>({ seed: true, generator: true, dtype: true });

export class Embedding extends Module {
  weight: Tensor;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: EmbeddingOptions = {}) {
    super();
    checkOptions("Embedding", "options", opts, EMBEDDING_OPTION_KEYS);
    checkPositiveInt("Embedding", "numEmbeddings", numEmbeddings);
    checkPositiveInt("Embedding", "embeddingDim", embeddingDim);
    const g = initGenerator(opts, "Embedding");
    const dtype = checkDType("Embedding", "dtype", opts.dtype ?? "float32", FLOAT_DTYPES);
    this.weight = this.registerParameter("weight", normal([numEmbeddings, embeddingDim], 1, g, dtype));
  }

  /** indices [..] int32 (or a plain array of ids) -> [.., C] */
  forward(indices: Tensor | readonly number[]): Tensor {
    return embedding(this.weight, indices);
  }
}
