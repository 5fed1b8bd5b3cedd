/**
 * An encoder-decoder transformer in the manner of "Attention Is All You Need" (Vaswani et al.
 * 2017), with pre-norm blocks (the paper normalises after each sublayer; pre-norm trains more
 * easily and is what later models use):
 *
 *   memory = encoder(src_emb(src) + P_src)            bidirectional self-attention,
 *                                                      padded source keys masked       [N, S, C]
 *   y      = decoder(tgt_emb(tgt) + P_tgt, memory)    causal self-attention, then cross-attention
 *                                                      to memory (padded sources masked) [N, T, C]
 *   logits = lm_head(norm(y))                                                          [N, T, Vt]
 *
 * Choices, and where they differ from the paper:
 *   - positions: "sinusoidal" (the paper's fixed table, not stored), "learned" (src_pos.weight,
 *     tgt_pos.weight [maxSeqLen, C]) or "alibi" (nothing added to the embeddings: an ALiBi bias in
 *     the encoder's and the decoder's self-attention, none in cross-attention);
 *   - embeddings are separate for source and target (src_emb, tgt_emb); tieWeights makes the
 *     output head reuse tgt_emb.weight (the paper also shares the source embedding; here src and
 *     tgt vocabularies may differ);
 *   - embeddings start N(0, 1) (torch.nn.Embedding) and are not multiplied by sqrt(C): the paper's
 *     scale goes with an N(0, 1/C) initialisation, and would drown the sinusoids here.
 *
 * State-dict names: src_emb.weight, tgt_emb.weight, [src_pos.weight, tgt_pos.weight,]
 * encoder.layers.{i}.{attn_norm, self_attn, mlp_norm, mlp}.*, encoder.norm.*,
 * decoder.layers.{i}.{attn_norm, self_attn, cross_norm, cross_attn, mlp_norm, mlp}.*, decoder.norm.*,
 * lm_head.weight (unless tieWeights).
 *
 * Padding masks are bool [N, S] / [N, T] with true = padding (keyPaddingMask's convention);
 * paddingMask(lengths, S) builds one from lengths.
 */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { linear } from "../ops/functional.js";
import { assertTensor } from "../ops/util.js";
import { Module } from "../nn/module.js";
import { ModuleList } from "../nn/container.js";
import { Dropout } from "../nn/dropout.js";
import { Embedding } from "../nn/embedding.js";
import { Linear } from "../nn/linear.js";
import { LearnedPositionalEmbedding, SinusoidalPositionalEncoding } from "../nn/positional.js";
import { KVCache } from "../attention/kvcache.js";
import { type AttentionMap, MODEL_OPTION_KEYS, type ModelOptions, type Norm, TransformerBlock, makeNorm } from "./blocks.js";
import {
  type EncoderDecoderConfig, type EncoderDecoderPresetName, encoderDecoderConfig, validateEncoderDecoderConfig,
} from "./config.js";
import type { ForwardWithAttention } from "./gpt.js";
import { type TokenInput, tokenTensor } from "./tokens.js";

/** A stack of blocks with a final norm: encoder.layers.{i}, encoder.norm. */
export class TransformerStack extends Module {
  layers: ModuleList<TransformerBlock>;
  norm: Norm;

  constructor(c: EncoderDecoderConfig, numLayers: number, cross: boolean, g: Generator, dtype: "float32" | "float64") {
    super();
    const alibi = c.positional === "alibi";
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: numLayers }, () => new TransformerBlock(c, { generator: g, dtype, cross, alibi }))));
    this.norm = this.registerModule("norm", makeNorm(c.norm, c.dModel, c.normEps, c.bias, dtype));
  }
}

export interface EncodeOptions {
  /** [N, S] bool, true = padding */
  srcPaddingMask?: Tensor | null;
}
export const ENCODE_OPTION_KEYS = optionKeys<EncodeOptions>({ srcPaddingMask: true });

export interface DecodeOptions extends EncodeOptions {
  /** [N, T] bool, true = padding (with a cache: covering every cached target position) */
  tgtPaddingMask?: Tensor | null;
  /** decode incrementally: self-attention keys/values in cache.layer(i), memory's in cache.cross(i) */
  cache?: KVCache | null;
}
export const DECODE_OPTION_KEYS = optionKeys<DecodeOptions>({ srcPaddingMask: true, tgtPaddingMask: true, cache: true });

function checkPadding(fn: string, name: string, m: Tensor | null | undefined, N: number, S: number): Tensor | null {
  if (m === null || m === undefined) return null;
  assertTensor(fn, name, m);
  if (m.ndim !== 2 || m.shape[0] !== N || m.shape[1] !== S) throw new ShapeError(`${fn}: ${name} has shape ${fmtShape(m.shape)}, expected [N, S] = [${N}, ${S}]`);
  return m;
}

export class EncoderDecoder extends Module {
  static readonly family = "encoder-decoder";
  readonly family = "encoder-decoder";
  readonly config: EncoderDecoderConfig;
  src_emb: Embedding;
  tgt_emb: Embedding;
  src_pos: LearnedPositionalEmbedding | null;
  tgt_pos: LearnedPositionalEmbedding | null;
  drop: Dropout;
  encoder: TransformerStack;
  decoder: TransformerStack;
  lm_head: Linear | null;
  private readonly sinusoidal: SinusoidalPositionalEncoding | null;

  constructor(config: EncoderDecoderConfig | EncoderDecoderPresetName = "tiny", opts: ModelOptions = {}) {
    super();
    checkOptions("EncoderDecoder", "options", opts, MODEL_OPTION_KEYS);
    const c = typeof config === "string" ? encoderDecoderConfig(config) : validateEncoderDecoderConfig(config);
    this.config = Object.freeze(c);
    const g = new Generator(opts.seed ?? 0);
    const dtype = opts.dtype ?? "float32";
    const learned = c.positional === "learned";
    this.src_emb = this.registerModule("src_emb", new Embedding(c.srcVocabSize, c.dModel, { generator: g, dtype }));
    this.tgt_emb = this.registerModule("tgt_emb", new Embedding(c.tgtVocabSize, c.dModel, { generator: g, dtype }));
    this.src_pos = this.registerModule("src_pos", learned ? new LearnedPositionalEmbedding(c.maxSeqLen, c.dModel, { generator: g, dtype }) : null);
    this.tgt_pos = this.registerModule("tgt_pos", learned ? new LearnedPositionalEmbedding(c.maxSeqLen, c.dModel, { generator: g, dtype }) : null);
    this.sinusoidal = c.positional === "sinusoidal" ? new SinusoidalPositionalEncoding(c.dModel) : null;
    this.drop = this.registerModule("drop", new Dropout(c.dropout, { seed: g.nextUint32() }));
    this.encoder = this.registerModule("encoder", new TransformerStack(c, c.numEncoderLayers, false, g, dtype));
    this.decoder = this.registerModule("decoder", new TransformerStack(c, c.numDecoderLayers, true, g, dtype));
    this.lm_head = this.registerModule("lm_head", c.tieWeights ? null : new Linear(c.dModel, c.tgtVocabSize, { bias: false, generator: g, dtype }));
  }

  newCache(): KVCache {
    return new KVCache({ initialCapacity: Math.min(64, this.config.maxSeqLen) });
  }

  /** src [N, S] -> memory [N, S, C]. */
  encode(src: TokenInput, opts: EncodeOptions = {}): Tensor {
    checkOptions("EncoderDecoder.encode", "options", opts, ENCODE_OPTION_KEYS);
    return this.runEncoder("EncoderDecoder.encode", src, opts, null);
  }

  /** tgt [N, T] and memory [N, S, C] -> logits [N, T, Vt]. */
  decode(tgt: TokenInput, memory: Tensor, opts: DecodeOptions = {}): Tensor {
    checkOptions("EncoderDecoder.decode", "options", opts, DECODE_OPTION_KEYS);
    return this.runDecoder("EncoderDecoder.decode", tgt, memory, opts, null);
  }

  /** src [N, S], tgt [N, T] (teacher forcing: the target shifted right) -> logits [N, T, Vt]. */
  forward(src: TokenInput, tgt: TokenInput, opts: DecodeOptions = {}): Tensor {
    checkOptions("EncoderDecoder.forward", "options", opts, DECODE_OPTION_KEYS);
    const memory = this.runEncoder("EncoderDecoder.forward", src, opts, null);
    return this.runDecoder("EncoderDecoder.forward", tgt, memory, opts, null);
  }

  /** The logits and the weights of every attention module (encoder, decoder self, cross) [N, H, L, S]. */
  forwardWithAttention(src: TokenInput, tgt: TokenInput, opts: DecodeOptions = {}): ForwardWithAttention {
    checkOptions("EncoderDecoder.forwardWithAttention", "options", opts, DECODE_OPTION_KEYS);
    const attention: AttentionMap[] = [];
    const memory = this.runEncoder("EncoderDecoder.forwardWithAttention", src, opts, attention);
    const logits = this.runDecoder("EncoderDecoder.forwardWithAttention", tgt, memory, opts, attention);
    return { logits, attention };
  }

  private embed(fn: string, emb: Embedding, pos: LearnedPositionalEmbedding | null, tokens: Tensor, offset: number): Tensor {
    const T = tokens.shape[1];
    if (offset + T > this.config.maxSeqLen) {
      throw new ShapeError(`${fn}: positions ${offset}..${offset + T - 1} go past maxSeqLen ${this.config.maxSeqLen}`);
    }
    let x = emb.forward(tokens); // [N, T] -> [N, T, C]
    if (pos) x = pos.forward(x, offset);
    if (this.sinusoidal) x = this.sinusoidal.forward(x, offset);
    return this.drop.forward(x);
  }

  private runEncoder(fn: string, src: TokenInput, opts: EncodeOptions, maps: AttentionMap[] | null): Tensor {
    const tokens = tokenTensor(fn, "src", src, this.config.srcVocabSize); // [N, S]
    const [N, S] = tokens.shape;
    const pad = checkPadding(fn, "srcPaddingMask", opts.srcPaddingMask, N, S);
    let x = this.embed(fn, this.src_emb, this.src_pos, tokens, 0);
    let i = 0;
    for (const layer of this.encoder.layers) {
      const r = layer.forward(x, { keyPaddingMask: pad, needWeights: maps !== null });
      x = r.out;
      if (maps && r.selfWeights) maps.push({ name: `encoder.layers.${i}.self_attn`, kind: "encoder", layer: i, weights: r.selfWeights });
      i++;
    }
    return this.encoder.norm.forward(x);
  }

  private runDecoder(fn: string, tgt: TokenInput, memory: Tensor, opts: DecodeOptions, maps: AttentionMap[] | null): Tensor {
    const tokens = tokenTensor(fn, "tgt", tgt, this.config.tgtVocabSize); // [N, T]
    const [N, T] = tokens.shape;
    assertTensor(fn, "memory", memory);
    if (memory.ndim !== 3 || memory.shape[0] !== N || memory.shape[2] !== this.config.dModel) {
      throw new ShapeError(`${fn}: memory must be the encoder output [N, S, C] = [${N}, S, ${this.config.dModel}], got ${fmtShape(memory.shape)}`);
    }
    const cache = opts.cache ?? null;
    if (cache !== null && !(cache instanceof KVCache)) throw new ArgumentError(`${fn}: cache must be a KVCache (model.newCache())`);
    const offset = cache === null ? 0 : cache.length;
    const srcPad = checkPadding(fn, "srcPaddingMask", opts.srcPaddingMask, N, memory.shape[1]);
    const tgtPad = checkPadding(fn, "tgtPaddingMask", opts.tgtPaddingMask, N, offset + T);
    let y = this.embed(fn, this.tgt_emb, this.tgt_pos, tokens, offset);
    let i = 0;
    for (const layer of this.decoder.layers) {
      const r = layer.forward(y, {
        isCausal: true, keyPaddingMask: tgtPad, memory, memoryPaddingMask: srcPad,
        cache: cache && cache.layer(i), crossCache: cache && cache.cross(i), needWeights: maps !== null,
      });
      y = r.out;
      if (maps && r.selfWeights) maps.push({ name: `decoder.layers.${i}.self_attn`, kind: "self", layer: i, weights: r.selfWeights });
      if (maps && r.crossWeights) maps.push({ name: `decoder.layers.${i}.cross_attn`, kind: "cross", layer: i, weights: r.crossWeights });
      i++;
    }
    const h = this.decoder.norm.forward(y);
    return this.lm_head ? this.lm_head.forward(h) : linear(h, this.tgt_emb.weight); // [N, T, C] -> [N, T, Vt]
  }
}
