/**
 * The pre-norm transformer block (GPT-2 and most models since): each sublayer reads a normalised
 * copy of the residual stream and adds its result back,
 *
 *   x = x + dropout(selfAttn(norm(x)))
 *   x = x + dropout(crossAttn(norm(x), memory))        decoder blocks of an encoder-decoder only
 *   x = x + dropout(mlp(norm(x)))
 *
 * so the stream x itself is never normalised (the model adds one final norm). Parameter names:
 * attn_norm, self_attn, [cross_norm, cross_attn,] mlp_norm, mlp. The attention is MultiheadAttention
 * when numKvHeads = numHeads (in_proj_weight, out_proj) and GroupedQueryAttention otherwise
 * (q_proj, k_proj, v_proj, o_proj), always batch-first [N, T, C].
 *
 * The config's attention options reach the modules as theirs: softcap and sinks in every attention,
 * slidingWindow and ALiBi (positional "alibi") in the self-attention only (a target position and a
 * source position are not on one line, so cross-attention has neither).
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { optionKeys } from "../tensor/validate.js";
import { add } from "../ops/elementwise.js";
import { Module } from "../nn/module.js";
import { Dropout } from "../nn/dropout.js";
import { LayerNorm, RMSNorm } from "../nn/norm.js";
import { MLP } from "../nn/mlp.js";
import { MultiheadAttention } from "../attention/multihead.js";
import { GroupedQueryAttention } from "../attention/gqa.js";
import type { KVCacheLayer } from "../attention/kvcache.js";
import type { QKTransform } from "../attention/rope.js";
import type { BlockConfig, NormKind } from "./config.js";

export type Attention = MultiheadAttention | GroupedQueryAttention;
export type Norm = LayerNorm | RMSNorm;

export interface ModelOptions {
  /** seeds the initialisation and the dropout masks (default 0) */
  seed?: number;
  dtype?: "float32" | "float64";
}
export const MODEL_OPTION_KEYS = optionKeys<ModelOptions>({ seed: true, dtype: true });

/** Construction details a block takes besides its config. */
export interface BlockBuild {
  generator: Generator;
  dtype: "float32" | "float64";
  /** whether this block has cross-attention (a decoder block of an encoder-decoder) */
  cross?: boolean;
  /** RoPE (or another q/k transform) for the self-attention */
  rotary?: QKTransform | null;
  /** ALiBi in the self-attention (positional "alibi") */
  alibi?: boolean;
}

export function makeNorm(kind: NormKind, dModel: number, eps: number, bias: boolean, dtype: "float32" | "float64"): Norm {
  return kind === "rmsnorm" ? new RMSNorm(dModel, { eps, dtype }) : new LayerNorm(dModel, { eps, bias, dtype });
}

/**
 * numKvHeads < numHeads -> GroupedQueryAttention, else MultiheadAttention; batch-first. `self`: the
 * block's self-attention, which also gets the window and ALiBi.
 */
export function makeAttention(c: BlockConfig, b: BlockBuild, rotary: QKTransform | null, self = true): Attention {
  const common = {
    dropout: c.dropout, bias: c.bias, batchFirst: true, rotary, generator: b.generator, dtype: b.dtype,
    softcap: c.softcap ?? null, sinks: c.sinks ?? false,
    ...(self ? { slidingWindow: c.slidingWindow ?? null, alibi: b.alibi ?? false } : {}),
  };
  return c.numKvHeads < c.numHeads
    ? new GroupedQueryAttention(c.dModel, c.numHeads, c.numKvHeads, common)
    : new MultiheadAttention(c.dModel, c.numHeads, common);
}

export interface BlockForwardOptions {
  /** causal self-attention (decoders) */
  isCausal?: boolean;
  /** [N, S] bool, true = padding key, for the self-attention */
  keyPaddingMask?: Tensor | null;
  /** [N, Sm, C] encoder output, for the cross-attention */
  memory?: Tensor | null;
  /** [N, Sm] bool, true = padding, for the cross-attention */
  memoryPaddingMask?: Tensor | null;
  /** this block's self-attention cache */
  cache?: KVCacheLayer | null;
  /** this block's cross-attention cache (static) */
  crossCache?: KVCacheLayer | null;
  /** return per-head attention weights [N, H, L, S] */
  needWeights?: boolean;
}

export interface BlockOutput {
  /** [N, L, C] */
  out: Tensor;
  /** [N, H, L, S] when needWeights */
  selfWeights: Tensor | null;
  crossWeights: Tensor | null;
}

export class TransformerBlock extends Module {
  attn_norm: Norm;
  self_attn: Attention;
  cross_norm: Norm | null;
  cross_attn: Attention | null;
  mlp_norm: Norm;
  mlp: MLP;
  drop: Dropout;

  constructor(readonly config: BlockConfig, b: BlockBuild) {
    super();
    const c = config;
    const g = b.generator;
    const norm = (): Norm => makeNorm(c.norm, c.dModel, c.normEps, c.bias, b.dtype);
    this.attn_norm = this.registerModule("attn_norm", norm());
    this.self_attn = this.registerModule("self_attn", makeAttention(c, b, b.rotary ?? null));
    this.cross_norm = this.registerModule("cross_norm", b.cross ? norm() : null);
    this.cross_attn = this.registerModule("cross_attn", b.cross ? makeAttention(c, b, null, false) : null);
    this.mlp_norm = this.registerModule("mlp_norm", norm());
    this.mlp = this.registerModule("mlp", new MLP(c.dModel, c.dFF, { activation: c.activation, bias: c.bias, generator: g, dtype: b.dtype }));
    this.drop = this.registerModule("drop", new Dropout(c.dropout, { seed: g.nextUint32() }));
  }

  /** x [N, L, C] -> [N, L, C] (and the attention weights when asked). */
  forward(x: Tensor, opts: BlockForwardOptions = {}): BlockOutput {
    const needWeights = opts.needWeights ?? false;
    const attnOpts = { needWeights, averageAttnWeights: false };
    const h = this.attn_norm.forward(x);
    const [a, selfWeights] = this.self_attn.forward(h, h, h, {
      ...attnOpts, isCausal: opts.isCausal ?? false, keyPaddingMask: opts.keyPaddingMask ?? null, cache: opts.cache ?? null,
    });
    x = add(x, this.drop.forward(a));
    let crossWeights: Tensor | null = null;
    if (this.cross_attn && this.cross_norm) {
      if (!opts.memory) throw new ArgumentError("TransformerBlock.forward: this block has cross-attention and needs opts.memory (the encoder output [N, S, C])");
      const hc = this.cross_norm.forward(x);
      const [c, w] = this.cross_attn.forward(hc, opts.memory, opts.memory, {
        ...attnOpts, keyPaddingMask: opts.memoryPaddingMask ?? null, cache: opts.crossCache ?? null,
      });
      crossWeights = w;
      x = add(x, this.drop.forward(c));
    }
    x = add(x, this.drop.forward(this.mlp.forward(this.mlp_norm.forward(x))));
    return { out: x, selfWeights, crossWeights };
  }
}

/** One attention map for pictures: which module, and its per-head weights. */
export interface AttentionMap {
  /** the attention module's name in the state dict, e.g. "blocks.0.self_attn" */
  name: string;
  /** "self": causal decoder self-attention; "encoder": encoder self-attention; "cross": decoder -> encoder */
  kind: "self" | "encoder" | "cross";
  layer: number;
  /** [N, H, L, S]: query position l's weights over key positions s, per head */
  weights: Tensor;
}
