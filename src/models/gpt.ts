/**
 * A decoder-only language model in the manner of GPT-2 (and, with the "-gqa" presets, Llama):
 *
 *   x      = tok_emb(idx) (+ pos_emb(positions) when learned/sinusoidal)     [N, T] -> [N, T, C]
 *            (RoPE and ALiBi add nothing here: they act inside each attention)
 *   x      = dropout(x)
 *   x      = blocks[i](x), causal self-attention (RoPE rotates q, k inside)  [N, T, C]
 *   logits = lm_head(norm(x))                                               [N, T, V]
 *
 * State-dict names: tok_emb.weight [V, C], pos_emb.weight [maxSeqLen, C] (learned positions only),
 * blocks.{i}.{attn_norm, self_attn, mlp_norm, mlp}.*, norm.*, lm_head.weight [V, C] (absent when
 * tieWeights: the head is then tok_emb.weight), blocks.{i}.self_attn.sinks [H] (config.sinks).
 * Sinusoidal tables, RoPE angles and ALiBi slopes are computed, not stored. Every module keeps PyTorch's default initialisation.
 *
 * Decoding with a KV cache: forward(newTokens, { cache }) projects only the new tokens, appends
 * their keys/values to cache.layer(i) and attends over everything cached (causal, bottom-right);
 * positions continue from cache.positionOffset(). A windowed cache (new KVCache({ window, sinkTokens }))
 * streams past maxSeqLen with rotary or sinusoidal positions; a PagedKVCache continues each row
 * from its own position. A sliding window, ALiBi, softcap and sinks live in the attention modules
 * and apply the same way with a cache (window and ALiBi distances are measured from each new query's
 * position, bottom-right, over every cached key; so those two need a plain or paged cache, not a
 * streaming one).
 */
import { ArgumentError } from "../tensor/errors.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { linear } from "../ops/functional.js";
import { Module } from "../nn/module.js";
import { ModuleList } from "../nn/container.js";
import { Dropout } from "../nn/dropout.js";
import { Embedding } from "../nn/embedding.js";
import { Linear } from "../nn/linear.js";
import { LearnedPositionalEmbedding, SinusoidalPositionalEncoding } from "../nn/positional.js";
import { RotaryEmbedding } from "../attention/rope.js";
import { KVCache, atPositions, cachePositions } from "../attention/kvcache.js";
import {
  type AttentionMap, DecodeBuffers, MODEL_OPTION_KEYS, type ModelOptions, type Norm, TransformerBlock, decodesInPlace, makeNorm,
} from "./blocks.js";
import { type GPTConfig, type GPTPresetName, gptConfig, validateGPTConfig } from "./config.js";
import { type TokenInput, tokenTensor } from "./tokens.js";
import { checkLogitsToKeep, keepLastPositions } from "./logitsToKeep.js";

export interface GPTForwardOptions {
  /** decode with this cache (only the new tokens are passed) */
  cache?: KVCache | null;
  /** [N, T] bool, true = padding token (only needed for left padding; causality hides right padding) */
  keyPaddingMask?: Tensor | null;
  /** k > 0: the logits of the last k positions only, [N, k, V] (transformers' logits_to_keep; generate() asks for 1); 0 (default): all */
  logitsToKeep?: number;
}
export const GPT_FORWARD_OPTION_KEYS = optionKeys<GPTForwardOptions>({ cache: true, keyPaddingMask: true, logitsToKeep: true });

export interface ForwardWithAttention {
  /** [N, T, V] */
  logits: Tensor;
  /** one entry per attention module, in order */
  attention: AttentionMap[];
}

export class GPT extends Module {
  static readonly family = "gpt";
  readonly family = "gpt";
  readonly config: GPTConfig;
  tok_emb: Embedding;
  pos_emb: LearnedPositionalEmbedding | null;
  drop: Dropout;
  blocks: ModuleList<TransformerBlock>;
  norm: Norm;
  lm_head: Linear | null;
  /**
   * the most positions forward can compute: maxSeqLen with learned positions (pos_emb has that many
   * rows), else undefined (rotary, sinusoidal, ALiBi, none: a streaming cache may run past maxSeqLen);
   * generate() reads it (CausalLM.maxPositions)
   */
  readonly maxPositions: number | undefined;
  /** its forward takes PackedPositions from a paged cache (CausalLM.packedPrefill) */
  readonly packedPrefill = true;
  /** the q/k rotation shared by every block (positional = "rope") */
  readonly rotary: RotaryEmbedding | null;
  private readonly sinusoidal: SinusoidalPositionalEncoding | null;
  /** a one-token decode step's arrays (blocksInPlace), kept for the next step */
  private decodeBuffers: DecodeBuffers | null = null;

  /** new GPT("tiny"), new GPT(gptConfig("small", { vocabSize: 65 }), { seed: 1 }) */
  constructor(config: GPTConfig | GPTPresetName = "tiny", opts: ModelOptions = {}) {
    super();
    checkOptions("GPT", "options", opts, MODEL_OPTION_KEYS);
    const c = typeof config === "string" ? gptConfig(config) : validateGPTConfig(config);
    this.config = Object.freeze(c);
    this.maxPositions = c.positional === "learned" ? c.maxSeqLen : undefined;
    const g = new Generator(opts.seed ?? 0);
    const dtype = opts.dtype ?? "float32";
    this.tok_emb = this.registerModule("tok_emb", new Embedding(c.vocabSize, c.dModel, { generator: g, dtype }));
    this.pos_emb = this.registerModule("pos_emb", c.positional === "learned" ? new LearnedPositionalEmbedding(c.maxSeqLen, c.dModel, { generator: g, dtype }) : null);
    this.sinusoidal = c.positional === "sinusoidal" ? new SinusoidalPositionalEncoding(c.dModel) : null;
    this.rotary = c.positional === "rope" ? new RotaryEmbedding(c.dModel / c.numHeads, { base: c.ropeBase }) : null;
    this.drop = this.registerModule("drop", new Dropout(c.dropout, { seed: g.nextUint32() }));
    const alibi = c.positional === "alibi";
    const blocks = Array.from({ length: c.numLayers }, () => new TransformerBlock(c, { generator: g, dtype, rotary: this.rotary, alibi }));
    this.blocks = this.registerModule("blocks", new ModuleList(blocks));
    this.norm = this.registerModule("norm", makeNorm(c.norm, c.dModel, c.normEps, c.bias, dtype));
    this.lm_head = this.registerModule("lm_head", c.tieWeights ? null : new Linear(c.dModel, c.vocabSize, { bias: false, generator: g, dtype }));
  }

  /** A cache for forward(…, { cache }) and generate(). */
  newCache(): KVCache {
    return new KVCache({ initialCapacity: Math.min(64, this.config.maxSeqLen) });
  }

  /** idx [N, T] token ids -> logits [N, T, V] ([N, k, V] with { logitsToKeep: k }). */
  forward(idx: TokenInput, opts: GPTForwardOptions = {}): Tensor {
    return this.run("GPT.forward", idx, opts, false).logits;
  }

  /** The logits and every layer's per-head attention weights [N, H, L, S] (for pictures). */
  forwardWithAttention(idx: TokenInput, opts: GPTForwardOptions = {}): ForwardWithAttention {
    return this.run("GPT.forwardWithAttention", idx, opts, true);
  }

  private run(fn: string, idx: TokenInput, opts: GPTForwardOptions, needWeights: boolean): ForwardWithAttention {
    const c = this.config;
    checkOptions(fn, "options", opts, GPT_FORWARD_OPTION_KEYS);
    const tokens = tokenTensor(fn, "idx", idx, c.vocabSize); // [N, T]
    const cache = opts.cache ?? null;
    if (cache !== null && !(cache instanceof KVCache)) throw new ArgumentError(`${fn}: cache must be a KVCache (model.newCache())`);
    const T = tokens.shape[1];
    const keep = checkLogitsToKeep(fn, opts.logitsToKeep, T);
    // position of the first token given (one per row for a paged cache); a windowed cache may stream past maxSeqLen unless positions are learned
    const offset = cachePositions(fn, cache, tokens.shape, { maxSeqLen: c.maxSeqLen, learnedPositions: this.maxPositions !== undefined });
    let x = this.tok_emb.forward(tokens); // [N, T] -> [N, T, C]
    const { pos_emb, sinusoidal } = this;
    if (pos_emb) x = atPositions(x, offset, (xr, o) => pos_emb.forward(xr, o));
    if (sinusoidal) x = atPositions(x, offset, (xr, o) => sinusoidal.forward(xr, o));
    x = this.drop.forward(x);
    const attention: AttentionMap[] = [];
    if (cache !== null && T === 1 && !needWeights && (opts.keyPaddingMask ?? null) === null && x.dtype === "float32" && this.decodesInPlace(cache)) {
      x = this.blocksInPlace(x, cache);
    } else {
      x = this.blocksForward(x, cache, opts.keyPaddingMask ?? null, needWeights, attention);
    }
    const h = this.norm.forward(keepLastPositions(x, keep)); // [N, T, C] -> [N, k, C] (the norm is per position: see logitsToKeep.ts)
    const logits = this.lm_head ? this.lm_head.forward(h) : linear(h, this.tok_emb.weight); // [N, k, C] -> [N, k, V]
    return { logits, attention };
  }

  /** x [N, T, C] through every block (block.forward), collecting the attention weights when asked. */
  private blocksForward(x: Tensor, cache: KVCache | null, keyPaddingMask: Tensor | null, needWeights: boolean, attention: AttentionMap[]): Tensor {
    let i = 0;
    for (const block of this.blocks) {
      const r = block.forward(x, { isCausal: true, keyPaddingMask, cache: cache && cache.layer(i), needWeights });
      x = r.out;
      if (r.selfWeights) attention.push({ name: `blocks.${i}.self_attn`, kind: "self", layer: i, weights: r.selfWeights });
      i++;
    }
    return x;
  }

  /** Whether every block can take this one-token step in place (decodesInPlace in blocks.ts). */
  private decodesInPlace(cache: KVCache): boolean {
    let i = 0;
    for (const block of this.blocks) if (!decodesInPlace(block, cache.layer(i++))) return false;
    return true;
  }

  /**
   * A one-token step through every block, in place (TransformerBlock.decodeInPlace: the same values
   * as blocksForward, without the op layer's per-call costs): x [N, 1, C] -> [N, 1, C], in a copy of
   * x that the next step reuses (nothing returned from run() points into it: the norm makes a new tensor).
   */
  private blocksInPlace(x: Tensor, cache: KVCache): Tensor {
    const [N, , C] = x.shape;
    let buf = this.decodeBuffers;
    const c = this.config;
    if (buf === null || buf.N !== N) buf = this.decodeBuffers = new DecodeBuffers(N, C, c.numKvHeads * (C / c.numHeads), c.dFF);
    buf.x.set(x.values);
    let i = 0;
    for (const block of this.blocks) block.decodeInPlace(buf.x, N, cache.layer(i++), buf);
    return new Tensor(buf.x, [N, 1, C], "float32");
  }
}
