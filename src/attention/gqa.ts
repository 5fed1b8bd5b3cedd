/**
 * Grouped-query attention: H query heads share Hkv key/value heads in groups of G = H / Hkv, which
 * shrinks the key/value projections (and a KV cache) by G. Hkv = H is multi-head attention;
 * Hkv = 1 is multi-query attention. Parameters as in Llama-style models: q_proj [E, E],
 * k_proj [Hkv*hd, kdim], v_proj [Hkv*hd, vdim], o_proj [E, E], hd = E / H, no biases by default.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { permute, reshape } from "../ops/shape.js";
import { Module } from "../nn/module.js";
import { Linear } from "../nn/linear.js";
import { checkPositiveInt } from "../tensor/validate.js";
import { initGenerator } from "../tensor/random.js";
import {
  type AttentionForwardOptions, cachedOptions, checkForwardOptions, fromBatchFirst, mergeMasks, shapeWeights, toBatchFirst,
} from "./moduleCommon.js";
import { type QKTransform, applyQKTransform, checkRotary } from "./rope.js";
import { scaledDotProductAttention, scaledDotProductAttentionWithWeights } from "./sdpa.js";

export interface GroupedQueryAttentionOptions {
  bias?: boolean;
  dropout?: number;
  kdim?: number;
  vdim?: number;
  batchFirst?: boolean;
  /** rotate q and k after projection (RoPE): a RotaryEmbedding of dim embedDim / numQueryHeads, or a function */
  rotary?: QKTransform | null;
  seed?: number;
  generator?: Generator;
  dtype?: "float32" | "float64";
}

export class GroupedQueryAttention extends Module {
  readonly embedDim: number;
  readonly numQueryHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  /** applied to q and k after projection */
  rotary: QKTransform | null;
  private readonly gen: Generator;

  constructor(embedDim: number, numQueryHeads: number, numKvHeads: number, opts: GroupedQueryAttentionOptions = {}) {
    super();
    const fn = "GroupedQueryAttention";
    checkPositiveInt(fn, "embedDim", embedDim);
    checkPositiveInt(fn, "numQueryHeads", numQueryHeads);
    checkPositiveInt(fn, "numKvHeads", numKvHeads);
    if (embedDim % numQueryHeads !== 0) {
      throw new ArgumentError(`${fn}: embedDim ${embedDim} must be divisible by numQueryHeads ${numQueryHeads}`);
    }
    if (numQueryHeads % numKvHeads !== 0) {
      throw new ArgumentError(`${fn}: numQueryHeads ${numQueryHeads} must be a multiple of numKvHeads ${numKvHeads} (each key/value head serves a group of query heads)`);
    }
    const dropout = opts.dropout ?? 0;
    if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) throw new ArgumentError(`${fn}: dropout must be in [0, 1), got ${dropout}`);
    this.embedDim = embedDim;
    this.numQueryHeads = numQueryHeads;
    this.numKvHeads = numKvHeads;
    this.headDim = embedDim / numQueryHeads;
    this.kdim = opts.kdim === undefined ? embedDim : checkPositiveInt(fn, "kdim", opts.kdim);
    this.vdim = opts.vdim === undefined ? embedDim : checkPositiveInt(fn, "vdim", opts.vdim);
    this.dropout = dropout;
    this.batchFirst = opts.batchFirst ?? false;
    const g = initGenerator(opts);
    this.gen = g;
    const lin = { bias: opts.bias ?? false, generator: g, dtype: opts.dtype };
    const kv = numKvHeads * this.headDim;
    this.q_proj = this.registerModule("q_proj", new Linear(embedDim, embedDim, lin));
    this.k_proj = this.registerModule("k_proj", new Linear(this.kdim, kv, lin));
    this.v_proj = this.registerModule("v_proj", new Linear(this.vdim, kv, lin));
    this.o_proj = this.registerModule("o_proj", new Linear(embedDim, embedDim, lin));
    this.rotary = checkRotary(fn, opts.rotary ?? null, this.headDim, false);
  }

  /**
   * Same signature and return value as MultiheadAttention.forward. With opts.cache only the Hkv
   * key/value heads are cached: [N, Hkv, T, hd].
   */
  forward(query: Tensor, key: Tensor, value: Tensor, opts: AttentionForwardOptions = {}): [Tensor, Tensor | null] {
    const fn = "GroupedQueryAttention.forward";
    checkForwardOptions(fn, opts);
    const cache = opts.cache ?? null;
    const inp = toBatchFirst(fn, query, key, value, this.batchFirst, { embed: this.embedDim, kdim: this.kdim, vdim: this.vdim });
    const { N, L, S } = inp;
    const [H, Hkv, hd] = [this.numQueryHeads, this.numKvHeads, this.headDim];
    const past = cache !== null && cache.kind === "self" ? cache.length : 0; // position of the first new token
    let q = permute(reshape(this.q_proj.forward(inp.q), [N, L, H, hd]), [0, 2, 1, 3]); // [N, L, E] -> [N, H, L, hd]
    if (this.rotary) q = applyQKTransform(this.rotary, q, past);
    let k: Tensor;
    let v: Tensor;
    if (cache !== null && cache.kind === "cross" && cache.filled) {
      [k, v] = cache.keysValues()!; // projected once from the encoder memory
    } else {
      k = permute(reshape(this.k_proj.forward(inp.k), [N, S, Hkv, hd]), [0, 2, 1, 3]); // [N, S, Hkv*hd] -> [N, Hkv, S, hd]
      v = permute(reshape(this.v_proj.forward(inp.v), [N, S, Hkv, hd]), [0, 2, 1, 3]);
      if (this.rotary) k = applyQKTransform(this.rotary, k, past);
      if (cache !== null) [k, v] = cache.append(k, v); // -> [N, Hkv, cached, hd]
    }
    const mask = mergeMasks(fn, cachedOptions(opts), { ...inp, S: k.shape[2] }, H, 0);
    const sdpaOpts = { attnMask: mask, enableGqa: true, dropoutP: this.training ? this.dropout : 0, generator: this.gen };
    let attn: Tensor;
    let weights: Tensor | null = null;
    if (opts.needWeights ?? true) [attn, weights] = scaledDotProductAttentionWithWeights(q, k, v, sdpaOpts);
    else attn = scaledDotProductAttention(q, k, v, sdpaOpts); // [N, H, L, hd]
    const merged = reshape(permute(attn, [0, 2, 1, 3]), [N, L, this.embedDim]); // [N, H, L, hd] -> [N, L, E]
    const out = this.o_proj.forward(merged);
    return [fromBatchFirst(out, inp, this.batchFirst), weights && shapeWeights(weights, inp, opts.averageAttnWeights ?? true)];
  }
}
