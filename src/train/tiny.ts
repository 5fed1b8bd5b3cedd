/**
 * TinyAttentionModel: the smallest model that trains on the tasks end to end, one causal
 * self-attention block over learned token and position embeddings:
 *   x = tok[tokens] + pos[0..T-1]                 [B, T, C]
 *   x = x + MultiheadAttention(ln(x)), causal
 *   x = x + W2 relu(W1 ln(x))                     MLP, width 4C
 *   logits = head(ln(x))                          [B, T, V]
 * It lets the training loop, checkpoints and the CLI be tested without the full models; the CLI and
 * the registry call it model "block" (`attend train --model block`).
 */
import { MultiheadAttention } from "../attention/multihead.js";
import { Linear } from "../nn/linear.js";
import { Module } from "../nn/module.js";
import { normal } from "../nn/init.js";
import { embedding } from "../ops/functional.js";
import { layerNorm } from "../ops/norm.js";
import { reshape, slice } from "../ops/shape.js";
import { add, relu } from "../ops/elementwise.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Generator } from "../tensor/random.js";
import { ones, zeros } from "../tensor/creation.js";
import type { Tensor } from "../tensor/tensor.js";
import type { AttentionView, SequenceModel } from "./model.js";

export interface TinyConfig {
  vocabSize: number;
  /** model width C (default 32) */
  dModel?: number;
  /** attention heads (default 4) */
  heads?: number;
  /** longest sequence (default 64) */
  maxLength?: number;
  seed?: number;
}

export class TinyAttentionModel extends Module implements SequenceModel {
  readonly layout = "decoder" as const;
  readonly config: Required<TinyConfig>;
  tok: Tensor;
  pos: Tensor;
  ln1_weight: Tensor;
  ln1_bias: Tensor;
  ln2_weight: Tensor;
  ln2_bias: Tensor;
  lnf_weight: Tensor;
  lnf_bias: Tensor;
  attn: MultiheadAttention;
  fc1: Linear;
  fc2: Linear;
  head: Linear;

  constructor(config: TinyConfig) {
    super();
    const c = TinyAttentionModel.resolveConfig(config);
    this.config = c;
    const C = c.dModel;
    const g = new Generator(c.seed);
    this.tok = this.registerParameter("tok", normal([c.vocabSize, C], 0.02, g));
    this.pos = this.registerParameter("pos", normal([c.maxLength, C], 0.02, g));
    this.ln1_weight = this.registerParameter("ln1_weight", ones([C]));
    this.ln1_bias = this.registerParameter("ln1_bias", zeros([C]));
    this.attn = this.registerModule("attn", new MultiheadAttention(C, c.heads, { batchFirst: true, generator: g }));
    this.ln2_weight = this.registerParameter("ln2_weight", ones([C]));
    this.ln2_bias = this.registerParameter("ln2_bias", zeros([C]));
    this.fc1 = this.registerModule("fc1", new Linear(C, 4 * C, { generator: g }));
    this.fc2 = this.registerModule("fc2", new Linear(4 * C, C, { generator: g }));
    this.lnf_weight = this.registerParameter("lnf_weight", ones([C]));
    this.lnf_bias = this.registerParameter("lnf_bias", zeros([C]));
    this.head = this.registerModule("head", new Linear(C, c.vocabSize, { generator: g }));
  }

  /** The config with its defaults filled in (dModel 32, heads 4, maxLength 64, seed 0), checked. */
  static resolveConfig(config: TinyConfig): Required<TinyConfig> {
    const c = { vocabSize: config.vocabSize, dModel: config.dModel ?? 32, heads: config.heads ?? 4, maxLength: config.maxLength ?? 64, seed: config.seed ?? 0 };
    for (const k of ["vocabSize", "dModel", "heads", "maxLength"] as const) {
      if (!Number.isInteger(c[k]) || c[k] <= 0) throw new ArgumentError(`TinyAttentionModel: ${k} must be a positive integer, got ${String(c[k])}`);
    }
    return c;
  }

  /**
   * How many parameters the model of a config has, without building it (the constructor's
   * tensors, counted): tok V·C, pos L·C, three LayerNorms 6C, attention 4C² + 4C, MLP 8C² + 5C,
   * head V·C + V, with L = maxLength. A checkpoint's config is checked with it before building.
   */
  static parameterCount(config: TinyConfig): number {
    const { vocabSize: V, dModel: C, maxLength: L } = TinyAttentionModel.resolveConfig(config);
    return V * C + L * C + 6 * C + (4 * C * C + 4 * C) + (8 * C * C + 5 * C) + (V * C + V);
  }

  private embed(tokens: Tensor): Tensor {
    if (tokens.ndim !== 2 || tokens.dtype !== "int32") {
      throw new ShapeError(`TinyAttentionModel.forward: tokens must be int32 [B, T], got ${tokens.dtype} ${fmtShape(tokens.shape)}`);
    }
    const T = tokens.shape[1];
    if (T > this.config.maxLength) throw new ShapeError(`TinyAttentionModel.forward: sequence of ${T} tokens is longer than maxLength ${this.config.maxLength}`);
    return add(embedding(this.tok, tokens), slice(this.pos, 0, 0, T)); // [B, T, C] + [T, C]
  }

  private block(x: Tensor, needWeights: boolean): [Tensor, Tensor | null] {
    const C = this.config.dModel;
    const h = layerNorm(x, C, this.ln1_weight, this.ln1_bias);
    const [a, w] = this.attn.forward(h, h, h, { isCausal: true, needWeights, averageAttnWeights: false }); // [B, T, C], [B, H, T, T]
    x = add(x, a);
    const m = this.fc2.forward(this.fc1.forward(relu(layerNorm(x, C, this.ln2_weight, this.ln2_bias))));
    return [add(x, m), w];
  }

  get maxLength(): number {
    return this.config.maxLength;
  }

  toConfig(): Record<string, unknown> {
    return { ...this.config };
  }

  /** tokens [B, T] int32 -> logits [B, T, V] */
  forward(tokens: Tensor): Tensor {
    const [x] = this.block(this.embed(tokens), false);
    return this.head.forward(layerNorm(x, this.config.dModel, this.lnf_weight, this.lnf_bias));
  }

  /** tokens [1, T] -> the one layer's weights [H, T, T] */
  attentionMaps(tokens: Tensor): AttentionView[] {
    const [, w] = this.block(this.embed(tokens), true);
    return [{ name: "attn", weights: reshape(w!, w!.shape.slice(1)), rows: "tokens", cols: "tokens" }]; // [1, H, T, T] -> [H, T, T]
  }
}
