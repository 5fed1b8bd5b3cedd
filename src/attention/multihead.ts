/**
 * Multi-head attention, torch.nn.MultiheadAttention's options, shapes and parameter names.
 * Each of H heads attends in its own E/H-dim subspace; the parameter count does not depend on H
 * (the projections are [E, E] however they are cut into heads).
 *
 * Two deliberate differences from PyTorch: a bool attnMask means true = may attend (as everywhere in
 * this library; PyTorch's module uses true = masked), and isCausal works without a mask.
 * Fully masked query rows give zero attention (output = out_proj.bias) instead of NaN.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { zeros } from "../tensor/creation.js";
import { linear } from "../ops/functional.js";
import { concat, permute, reshape, slice } from "../ops/shape.js";
import { expand } from "../ops/shape.js";
import { Module } from "../nn/module.js";
import { Linear } from "../nn/linear.js";
import { checkPositiveInt } from "../tensor/validate.js";
import { initGenerator } from "../tensor/random.js";
import { xavierNormal, xavierUniform } from "../nn/init.js";
import {
  type AttentionForwardOptions, cachedOptions, checkForwardOptions, fromBatchFirst, mergeMasks, shapeWeights, toBatchFirst,
} from "./moduleCommon.js";
import { type QKTransform, applyQKTransform, checkRotary } from "./rope.js";
import { scaledDotProductAttention, scaledDotProductAttentionWithWeights } from "./sdpa.js";

export interface MultiheadAttentionOptions {
  /** dropout on the attention weights while training */
  dropout?: number;
  bias?: boolean;
  /** append learned bias_k / bias_v as one extra key/value position */
  addBiasKv?: boolean;
  /** append an all-zero key/value position (after the heads are split) */
  addZeroAttn?: boolean;
  kdim?: number;
  vdim?: number;
  /** inputs are [N, T, C] instead of [T, N, C] */
  batchFirst?: boolean;
  /**
   * rotate q and k after projection (RoPE): a RotaryEmbedding of dim embedDim / numHeads, or any
   * (x [N, H, T, hd], positionOffset) -> same shape. Not with addBiasKv / addZeroAttn.
   */
  rotary?: QKTransform | null;
  seed?: number;
  generator?: Generator;
  dtype?: "float32" | "float64";
}

export class MultiheadAttention extends Module {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;
  readonly addZeroAttn: boolean;
  /** q, k and v projections stacked [3E, E] when kdim = vdim = E */
  in_proj_weight: Tensor | null;
  q_proj_weight: Tensor | null;
  k_proj_weight: Tensor | null;
  v_proj_weight: Tensor | null;
  in_proj_bias: Tensor | null;
  bias_k: Tensor | null;
  bias_v: Tensor | null;
  out_proj: Linear;
  /** applied to q and k after projection (see MultiheadAttentionOptions.rotary) */
  rotary: QKTransform | null;
  private readonly gen: Generator;

  constructor(embedDim: number, numHeads: number, opts: MultiheadAttentionOptions = {}) {
    super();
    const fn = "MultiheadAttention";
    checkPositiveInt(fn, "embedDim", embedDim);
    checkPositiveInt(fn, "numHeads", numHeads);
    if (embedDim % numHeads !== 0) {
      throw new ArgumentError(`${fn}: embedDim ${embedDim} must be divisible by numHeads ${numHeads} (each head gets embedDim / numHeads dims)`);
    }
    const dropout = opts.dropout ?? 0;
    if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) throw new ArgumentError(`${fn}: dropout must be in [0, 1), got ${dropout}`);
    this.embedDim = embedDim;
    this.numHeads = numHeads;
    this.headDim = embedDim / numHeads;
    this.kdim = opts.kdim === undefined ? embedDim : checkPositiveInt(fn, "kdim", opts.kdim);
    this.vdim = opts.vdim === undefined ? embedDim : checkPositiveInt(fn, "vdim", opts.vdim);
    this.dropout = dropout;
    this.batchFirst = opts.batchFirst ?? false;
    this.addZeroAttn = opts.addZeroAttn ?? false;
    const g = initGenerator(opts);
    this.gen = g;
    const dtype = opts.dtype ?? "float32";
    const E = embedDim;
    const same = this.kdim === E && this.vdim === E;
    // Registration order gives PyTorch's state-dict order.
    this.in_proj_weight = this.registerParameter("in_proj_weight", same ? xavierUniform([3 * E, E], g, dtype) : null);
    this.q_proj_weight = this.registerParameter("q_proj_weight", same ? null : xavierUniform([E, E], g, dtype));
    this.k_proj_weight = this.registerParameter("k_proj_weight", same ? null : xavierUniform([E, this.kdim], g, dtype));
    this.v_proj_weight = this.registerParameter("v_proj_weight", same ? null : xavierUniform([E, this.vdim], g, dtype));
    this.in_proj_bias = this.registerParameter("in_proj_bias", opts.bias === false ? null : zeros([3 * E], { dtype }));
    const addBiasKv = opts.addBiasKv ?? false;
    this.bias_k = this.registerParameter("bias_k", addBiasKv ? xavierNormal([1, 1, E], g, dtype) : null);
    this.bias_v = this.registerParameter("bias_v", addBiasKv ? xavierNormal([1, 1, E], g, dtype) : null);
    this.out_proj = this.registerModule("out_proj", new Linear(E, E, { bias: opts.bias !== false, generator: g, dtype }));
    if (this.out_proj.bias) this.out_proj.bias.data.fill(0);
    this.rotary = checkRotary(fn, opts.rotary ?? null, this.headDim, addBiasKv || this.addZeroAttn);
  }

  /** q [N, L, E] from the query (the first third of in_proj). */
  private projectQuery(q: Tensor): Tensor {
    const E = this.embedDim;
    const bq = this.in_proj_bias && slice(this.in_proj_bias, 0, 0, E);
    return linear(q, this.in_proj_weight ? slice(this.in_proj_weight, 0, 0, E) : this.q_proj_weight!, bq);
  }

  /** k [N, S, E] and v [N, S, E] from key and value (the second and last thirds of in_proj). */
  private projectKeyValue(k: Tensor, v: Tensor): [Tensor, Tensor] {
    const E = this.embedDim;
    const b = this.in_proj_bias;
    const bk = b && slice(b, 0, E, 2 * E);
    const bv = b && slice(b, 0, 2 * E, 3 * E);
    if (this.in_proj_weight) {
      const w = this.in_proj_weight;
      return [linear(k, slice(w, 0, E, 2 * E), bk), linear(v, slice(w, 0, 2 * E, 3 * E), bv)];
    }
    return [linear(k, this.k_proj_weight!, bk), linear(v, this.v_proj_weight!, bv)];
  }

  /**
   * query [L, N, E] ([N, L, E] with batchFirst, [L, E] unbatched), key [S, N, kdim], value
   * [S, N, vdim] -> [output like query, weights [N, L, S] (or [N, H, L, S]) | null].
   * Self-attention: forward(x, x, x). Cross-attention: forward(x, memory, memory).
   * With opts.cache, query/key/value hold only the new tokens and S counts every cached position.
   */
  forward(query: Tensor, key: Tensor, value: Tensor, opts: AttentionForwardOptions = {}): [Tensor, Tensor | null] {
    const fn = "MultiheadAttention.forward";
    checkForwardOptions(fn, opts);
    const cache = opts.cache ?? null;
    if (cache && (this.bias_k || this.addZeroAttn)) {
      throw new ArgumentError(`${fn}: a KV cache cannot be combined with addBiasKv or addZeroAttn (the extra key position would be cached at every step)`);
    }
    const inp = toBatchFirst(fn, query, key, value, this.batchFirst, { embed: this.embedDim, kdim: this.kdim, vdim: this.vdim });
    const { N, L } = inp;
    const H = this.numHeads;
    const hd = this.headDim;
    const heads = (t: Tensor): Tensor => permute(reshape(t, [N, t.shape[1], H, hd]), [0, 2, 1, 3]); // [N, T, E] -> [N, H, T, hd]
    const past = cache !== null && cache.kind === "self" ? cache.length : 0; // position of the first new token
    let qh = heads(this.projectQuery(inp.q));
    if (this.rotary) qh = applyQKTransform(this.rotary, qh, past);
    let kh: Tensor;
    let vh: Tensor;
    if (cache !== null && cache.kind === "cross" && cache.filled) {
      [kh, vh] = cache.keysValues()!; // the encoder memory's keys/values, projected once
    } else {
      let [k, v] = this.projectKeyValue(inp.k, inp.v);
      if (this.bias_k && this.bias_v) {
        k = concat([k, expand(this.bias_k, [N, 1, this.embedDim])], 1); // [N, S, E] -> [N, S+1, E]
        v = concat([v, expand(this.bias_v, [N, 1, this.embedDim])], 1);
      }
      kh = heads(k);
      vh = heads(v);
      if (this.rotary) kh = applyQKTransform(this.rotary, kh, past);
      if (this.addZeroAttn) {
        const z = zeros([N, H, 1, hd], { dtype: kh.dtype });
        kh = concat([kh, z], 2); // [N, H, S', hd] -> [N, H, S'+1, hd]
        vh = concat([vh, z], 2);
      }
      if (cache !== null) [kh, vh] = cache.append(kh, vh); // -> [N, H, cached, hd]
    }
    const extra = (this.bias_k ? 1 : 0) + (this.addZeroAttn ? 1 : 0);
    const S = kh.shape[2] - extra;
    const mask = mergeMasks(fn, cachedOptions(opts), { ...inp, S }, H, extra);
    const sdpaOpts = { attnMask: mask, dropoutP: this.training ? this.dropout : 0, generator: this.gen };
    const needWeights = opts.needWeights ?? true;
    let attn: Tensor;
    let weights: Tensor | null = null;
    if (needWeights) [attn, weights] = scaledDotProductAttentionWithWeights(qh, kh, vh, sdpaOpts);
    else attn = scaledDotProductAttention(qh, kh, vh, sdpaOpts); // [N, H, L, hd]
    const merged = reshape(permute(attn, [0, 2, 1, 3]), [N, L, this.embedDim]); // [N, H, L, hd] -> [N, L, E]
    const out = this.out_proj.forward(merged);
    return [fromBatchFirst(out, inp, this.batchFirst), weights && shapeWeights(weights, inp, opts.averageAttnWeights ?? true)];
  }
}
