/**
 * Absolute positional encodings, added to the token embeddings so attention (which sees a set) can
 * tell positions apart. Both take x [N, T, C] (or [T, C]) and a position offset (the number of
 * tokens already in a KV cache), and return x + P[offset .. offset + T).
 *
 *   sinusoidal ("Attention Is All You Need", section 3.5), fixed, nothing to learn:
 *     P[pos, 2i]   = sin(pos / base^(2i / C))
 *     P[pos, 2i+1] = cos(pos / base^(2i / C))            base = 10000
 *   learned (GPT-2): P = weight [maxPositions, C], an Embedding over positions, N(0, 1) at start.
 *
 * Rotary embeddings (RoPE), which rotate q and k instead of adding to x, live in attention/rope.ts.
 */
import { FLOAT_DTYPES, type FloatDType, allocate, checkDType } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { add } from "../ops/elementwise.js";
import { embedding } from "../ops/functional.js";
import { assertTensor } from "../ops/util.js";
import { EMBEDDING_OPTION_KEYS, type EmbeddingOptions } from "./embedding.js";
import { normal } from "./init.js";
import { checkOptions, checkPositiveInt, optionKeys } from "../tensor/validate.js";
import { initGenerator } from "../tensor/random.js";
import { Module } from "./module.js";

function checkOffset(fn: string, offset: number): void {
  if (!Number.isInteger(offset) || offset < 0) throw new ArgumentError(`${fn}: offset must be a non-negative integer, got ${offset}`);
}

function checkInput(fn: string, x: Tensor, C: number): number {
  assertTensor(fn, "x", x);
  if ((x.ndim !== 2 && x.ndim !== 3) || x.shape[x.ndim - 1] !== C) {
    throw new ShapeError(`${fn}: x must be [N, T, C] or [T, C] with C = ${C}, got ${fmtShape(x.shape)}`);
  }
  return x.shape[x.ndim - 2];
}

/** The sinusoidal table rows offset .. offset + T - 1 as [T, C] (computed in float64). */
export function sinusoidalTable(T: number, C: number, offset = 0, dtype: FloatDType = "float32", base = 10000): Tensor {
  const out = allocate(dtype, T * C);
  for (let t = 0; t < T; t++) {
    const pos = offset + t;
    for (let c = 0; c < C; c++) {
      const i2 = c - (c % 2); // 2i for both members of the pair
      const angle = pos / Math.pow(base, i2 / C);
      out[t * C + c] = c % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return new Tensor(out, [T, C], dtype);
}

export interface SinusoidalOptions {
  /** default 10000 */
  base?: number;
}
export const SINUSOIDAL_OPTION_KEYS = optionKeys<SinusoidalOptions>({ base: true });

export class SinusoidalPositionalEncoding extends Module {
  readonly base: number;

  constructor(readonly dModel: number, opts: SinusoidalOptions = {}) {
    super();
    checkOptions("SinusoidalPositionalEncoding", "options", opts, SINUSOIDAL_OPTION_KEYS);
    checkPositiveInt("SinusoidalPositionalEncoding", "dModel", dModel);
    this.base = opts.base ?? 10000;
    if (!(this.base > 1)) throw new ArgumentError(`SinusoidalPositionalEncoding: base must be > 1, got ${this.base}`);
  }

  /** The encodings of positions offset .. offset + T - 1: [T, C]. */
  encoding(T: number, offset = 0, dtype: FloatDType = "float32"): Tensor {
    checkOffset("SinusoidalPositionalEncoding.encoding", offset);
    return sinusoidalTable(T, this.dModel, offset, dtype, this.base);
  }

  /** x [N, T, C] or [T, C] -> x + P[offset .. offset + T) (broadcast over N). */
  forward(x: Tensor, offset = 0): Tensor {
    const fn = "SinusoidalPositionalEncoding.forward";
    const T = checkInput(fn, x, this.dModel);
    checkOffset(fn, offset);
    return add(x, sinusoidalTable(T, this.dModel, offset, x.dtype === "float64" ? "float64" : "float32", this.base));
  }
}

export class LearnedPositionalEmbedding extends Module {
  /** [maxPositions, C] */
  weight: Tensor;

  constructor(readonly maxPositions: number, readonly dModel: number, opts: EmbeddingOptions = {}) {
    super();
    const fn = "LearnedPositionalEmbedding";
    checkOptions(fn, "options", opts, EMBEDDING_OPTION_KEYS);
    checkPositiveInt(fn, "maxPositions", maxPositions);
    checkPositiveInt(fn, "dModel", dModel);
    const dtype = checkDType(fn, "dtype", opts.dtype ?? "float32", FLOAT_DTYPES);
    this.weight = this.registerParameter("weight", normal([maxPositions, dModel], 1, initGenerator(opts, fn), dtype));
  }

  /** x [N, T, C] or [T, C] -> x + weight[offset .. offset + T) (gradient flows into those rows). */
  forward(x: Tensor, offset = 0): Tensor {
    const fn = "LearnedPositionalEmbedding.forward";
    const T = checkInput(fn, x, this.dModel);
    checkOffset(fn, offset);
    if (offset + T > this.maxPositions) {
      throw new ArgumentError(
        `${fn}: positions ${offset}..${offset + T - 1} go past the ${this.maxPositions} learned positions (maxPositions); ` +
          `use a shorter sequence or a model with a larger maxSeqLen`,
      );
    }
    const positions = new Tensor(Int32Array.from({ length: T }, (_, t) => offset + t), [T], "int32");
    return add(x, embedding(this.weight, positions)); // [N, T, C] + [T, C]
  }
}
