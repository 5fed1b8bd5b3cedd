/**
 * PretrainedLM: a decoder-only model laid out as Hugging Face's GPT2LMHeadModel or
 * LlamaForCausalLM (Mistral, Qwen2), built from the library's layers, so the state-dict names are the
 * checkpoint's own (GPT-2 under "transformer.", the Llama family under "model." plus "lm_head").
 *
 *   gpt2   x = wte(ids) + wpe(pos);  x += attn(ln_1(x));  x += mlp(ln_2(x));  logits = ln_f(x) wteᵀ
 *          attn: c_attn -> q, k, v (split), causal sdpa, c_proj;  mlp: c_proj(gelu_tanh(c_fc(x)))
 *          (c_attn, c_proj, c_fc are Conv1D in the file, [in, out]; the loader transposes them)
 *   llama  x = embed_tokens(ids);  x += self_attn(input_layernorm(x));  x += mlp(post_attention_layernorm(x))
 *          logits = lm_head(norm(x)) (or embed_tokensᵀ when tied)
 *          self_attn: q/k/v_proj, RoPE on q and k (rotate_half layout), GQA sdpa (sliding window per layer), o_proj
 *          mlp: down_proj(silu(gate_proj(x)) * up_proj(x))
 *
 * forward(ids, { cache }) decodes with a KV cache as GPT does: only the new tokens are passed and
 * positions continue from cache.positionOffset() (causal alignment bottom-right), so generate() works
 * on it. Any KVCache does: the model's own, a streaming one ({ window, sinkTokens }: RoPE models may
 * then run past maxSeqLen), or a PagedKVCache whose selected sequences sit at different positions
 * (each row continues from its own). Streaming and paged layers hand back the keys they hold with a
 * mask of their own (appendVisible), measured in positions, the layer's sliding window folded in.
 * forward(ids, { attentionMask }) takes padded rows as transformers does (padding.ts): each row's
 * positions count its own tokens, and padding is never attended to.
 * forward(ids, { logitsToKeep: k }) gives the last k positions' logits only (models/logitsToKeep.ts),
 * as generate() asks for its prefill.
 */
import { ShapeError, ArgumentError } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { add, gelu, mul, sigmoid } from "../ops/elementwise.js";
import { linear } from "../ops/functional.js";
import { reshape, split, transpose } from "../ops/shape.js";
import { Module } from "../nn/module.js";
import { checkSkipInit } from "../nn/init.js";
import { checkOptions } from "../tensor/validate.js";
import { ModuleList } from "../nn/container.js";
import { Embedding } from "../nn/embedding.js";
import { Linear } from "../nn/linear.js";
import { LayerNorm, RMSNorm } from "../nn/norm.js";
import { RotaryEmbedding } from "../attention/rope.js";
import { KVCache, KVCacheLayer, type PositionOffset, atPositions, cachePositions, tokenPositions } from "../attention/kvcache.js";
import { PagedKVCache } from "../attention/kvpaged.js";
import {
  type HeadColumns, scaledDotProductAttention, scaledDotProductAttentionInterleaved, scaledDotProductAttentionWithWeights,
} from "../attention/sdpa.js";
import type { AttentionMap, ForwardWithAttention } from "../models/index.js";
import { type TokenInput, tokenTensor } from "../models/tokens.js";
import { checkLogitsToKeep, keepLastPositions } from "../models/logitsToKeep.js";
import type { PretrainedArch } from "./config.js";
import { type AttentionMaskInput, type Padding, paddingOf, rotateAt } from "./padding.js";

/** q [N, T, H·hd], k and v [N, T, Hkv·hd] -> causal attention output [N, T, H·hd]. */
function attend(a: PretrainedArch, q: Tensor, k: Tensor, v: Tensor, ctx: LayerContext, window: number | null): Tensor {
  const [N, T] = q.shape;
  const enableGqa = a.numKvHeads !== a.numHeads;
  const { rotary, padding, cache, offset } = ctx;
  // No cache, or a prefill into an empty plain layer (whose keys are then just these), every row from one
  // position, nothing to show: RoPE and the fused kernels on the projections as they come ([N, T, h·hd],
  // heads interleaved), the output merged; the cache keeps its heads-first copy. Else (or when the
  // kernels decline) the heads are split, rotated and merged below.
  const freshOnly = cache === null || (cache.length === 0 && T > 1 && cache.constructor === KVCacheLayer);
  const inPlace = freshOnly && padding === null && typeof offset === "number" && ctx.weights === null && ctx.visit === null;
  if (inPlace) {
    if (rotary !== null) {
      q = rotary.forwardInterleaved(cols(q, a.numHeads, a.headDim), offset); // [N, T, H·hd], rotated
      k = rotary.forwardInterleaved(cols(k, a.numKvHeads, a.headDim), offset); // [N, T, Hkv·hd]
    }
    const y = scaledDotProductAttentionInterleaved(
      cols(q, a.numHeads, a.headDim), cols(k, a.numKvHeads, a.headDim), cols(v, a.numKvHeads, a.headDim),
      { isCausal: true, causalAlignment: "bottom-right", enableGqa, slidingWindow: window },
    ); // [N, T, H·hd]
    if (y !== null) {
      if (cache !== null) cache.push(heads(k, a.numKvHeads, a.headDim), heads(v, a.numKvHeads, a.headDim)); // [N, T, Hkv·hd] -> [N, Hkv, T, hd]
      return y;
    }
  }
  let qh = heads(q, a.numHeads, a.headDim); // [N, H, T, hd]
  let kh = heads(k, a.numKvHeads, a.headDim); // [N, Hkv, T, hd]
  let vh = heads(v, a.numKvHeads, a.headDim);
  if (rotary && !inPlace) { // (inPlace: already rotated, the kernels declined)
    [qh, kh] = [qh, kh].map((x) => (padding ? rotateAt(rotary, x, padding) : atPositions(x, offset, (xr, o) => rotary.forward(xr, o))));
  }
  let visible: Tensor | null = null; // a streaming or paged cache's own mask [N or 1, 1, T, S] (causality and the window included)
  if (ctx.cache) [kh, vh, visible] = ctx.cache.appendVisible(kh, vh, { attnMask: null, isCausal: true, slidingWindow: window }); // [N, Hkv, S, hd], S = held + T
  const opts: LayerAttentionOptions = visible
    ? { isCausal: false, causalAlignment: "bottom-right", enableGqa, slidingWindow: null, attnMask: visible }
    : {
      isCausal: true, causalAlignment: "bottom-right", enableGqa, slidingWindow: window,
      ...(ctx.padding ? { attnMask: ctx.padding.keyMask } : {}), // [N, 1, 1, S]: true = a token
    };
  ctx.visit?.(qh, kh, opts);
  let y: Tensor;
  if (ctx.weights) {
    let w: Tensor;
    [y, w] = scaledDotProductAttentionWithWeights(qh, kh, vh, opts);
    ctx.weights.push(w);
  } else {
    y = scaledDotProductAttention(qh, kh, vh, opts);
  }
  return reshape(transpose(y, 1, 2), [N, T, a.numHeads * a.headDim]); // [N, H, T, hd] -> [N, T, H·hd]
}

/** The heads of a projection as it comes: [N, T, h·hd], head i in columns i·hd.. */
function cols(x: Tensor, h: number, hd: number): HeadColumns {
  return { t: x, offset: 0, heads: h, dim: hd };
}

/** [N, T, h·hd] -> [N, h, T, hd] */
function heads(x: Tensor, h: number, hd: number): Tensor {
  const [N, T] = x.shape;
  return transpose(reshape(x, [N, T, h, hd]), 1, 2); // [N, T, h·hd] -> [N, T, h, hd] -> [N, h, T, hd]
}

interface LayerContext {
  /** when given, each layer's attention weights [N, H, T, S] are pushed here */
  weights: Tensor[] | null;
  /** when given, sees this layer's query and key and the sdpa options (see PretrainedLM.forwardVisitingAttention) */
  visit: ((query: Tensor, key: Tensor, opts: LayerAttentionOptions) => void) | null;
  /** the first new token's position: one number, or one per row (a paged cache's sequences) */
  offset: PositionOffset;
  /** per-row positions and the key padding mask, when forward was given an attentionMask */
  padding: Padding | null;
  cache: KVCacheLayer | null;
  rotary: RotaryEmbedding | null;
}

/** What the Linear and Embedding layers are built with: { skipInit } (see PretrainedLMOptions). */
interface Init { skipInit: boolean }

// ---- GPT-2 ----

class GPT2Attention extends Module {
  c_attn: Linear;
  c_proj: Linear;
  constructor(private readonly a: PretrainedArch, init: Init) {
    super();
    this.c_attn = this.registerModule("c_attn", new Linear(a.dModel, 3 * a.dModel, init));
    this.c_proj = this.registerModule("c_proj", new Linear(a.dModel, a.dModel, init));
  }
  forward(x: Tensor, ctx: LayerContext): Tensor {
    const [q, k, v] = split(this.c_attn.forward(x), this.a.dModel, -1); // [N, T, 3C] -> 3 × [N, T, C]
    return this.c_proj.forward(attend(this.a, q, k, v, ctx, null));
  }
}

class GPT2MLP extends Module {
  c_fc: Linear;
  c_proj: Linear;
  constructor(a: PretrainedArch, init: Init) {
    super();
    this.c_fc = this.registerModule("c_fc", new Linear(a.dModel, a.dFF, init));
    this.c_proj = this.registerModule("c_proj", new Linear(a.dFF, a.dModel, init));
  }
  forward(x: Tensor): Tensor {
    return this.c_proj.forward(gelu(this.c_fc.forward(x), "tanh")); // gelu_new
  }
}

class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;
  constructor(a: PretrainedArch, init: Init) {
    super();
    this.ln_1 = this.registerModule("ln_1", new LayerNorm(a.dModel, { eps: a.normEps }));
    this.attn = this.registerModule("attn", new GPT2Attention(a, init));
    this.ln_2 = this.registerModule("ln_2", new LayerNorm(a.dModel, { eps: a.normEps }));
    this.mlp = this.registerModule("mlp", new GPT2MLP(a, init));
  }
  forward(x: Tensor, ctx: LayerContext): Tensor {
    x = add(x, this.attn.forward(this.ln_1.forward(x), ctx));
    return add(x, this.mlp.forward(this.ln_2.forward(x)));
  }
}

class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  h: ModuleList<GPT2Block>;
  ln_f: LayerNorm;
  constructor(a: PretrainedArch, init: Init) {
    super();
    this.wte = this.registerModule("wte", new Embedding(a.vocabSize, a.dModel, init));
    this.wpe = this.registerModule("wpe", new Embedding(a.maxSeqLen, a.dModel, init));
    this.h = this.registerModule("h", new ModuleList(Array.from({ length: a.numLayers }, () => new GPT2Block(a, init))));
    this.ln_f = this.registerModule("ln_f", new LayerNorm(a.dModel, { eps: a.normEps }));
  }
}

// ---- Llama, Mistral, Qwen2 ----

class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  constructor(private readonly a: PretrainedArch, private readonly window: number | null, init: Init) {
    super();
    const q = a.numHeads * a.headDim;
    const kv = a.numKvHeads * a.headDim;
    this.q_proj = this.registerModule("q_proj", new Linear(a.dModel, q, { bias: a.qkvBias, ...init }));
    this.k_proj = this.registerModule("k_proj", new Linear(a.dModel, kv, { bias: a.qkvBias, ...init }));
    this.v_proj = this.registerModule("v_proj", new Linear(a.dModel, kv, { bias: a.qkvBias, ...init }));
    this.o_proj = this.registerModule("o_proj", new Linear(q, a.dModel, { bias: a.oBias, ...init }));
  }
  forward(x: Tensor, ctx: LayerContext): Tensor {
    const y = attend(this.a, this.q_proj.forward(x), this.k_proj.forward(x), this.v_proj.forward(x), ctx, this.window);
    return this.o_proj.forward(y);
  }
}

class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  constructor(a: PretrainedArch, init: Init) {
    super();
    const bias = a.mlpBias;
    this.gate_proj = this.registerModule("gate_proj", new Linear(a.dModel, a.dFF, { bias, ...init }));
    this.up_proj = this.registerModule("up_proj", new Linear(a.dModel, a.dFF, { bias, ...init }));
    this.down_proj = this.registerModule("down_proj", new Linear(a.dFF, a.dModel, { bias, ...init }));
  }
  forward(x: Tensor): Tensor {
    const g = this.gate_proj.forward(x);
    return this.down_proj.forward(mul(mul(g, sigmoid(g)), this.up_proj.forward(x))); // silu(gate) * up
  }
}

class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(a: PretrainedArch, window: number | null, init: Init) {
    super();
    this.self_attn = this.registerModule("self_attn", new LlamaAttention(a, window, init));
    this.mlp = this.registerModule("mlp", new LlamaMLP(a, init));
    this.input_layernorm = this.registerModule("input_layernorm", new RMSNorm(a.dModel, { eps: a.normEps }));
    this.post_attention_layernorm = this.registerModule("post_attention_layernorm", new RMSNorm(a.dModel, { eps: a.normEps }));
  }
  forward(x: Tensor, ctx: LayerContext): Tensor {
    x = add(x, this.self_attn.forward(this.input_layernorm.forward(x), ctx));
    return add(x, this.mlp.forward(this.post_attention_layernorm.forward(x)));
  }
}

class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: ModuleList<LlamaDecoderLayer>;
  norm: RMSNorm;
  constructor(a: PretrainedArch, init: Init) {
    super();
    this.embed_tokens = this.registerModule("embed_tokens", new Embedding(a.vocabSize, a.dModel, init));
    this.layers = this.registerModule("layers", new ModuleList(a.slidingWindows.map((w) => new LlamaDecoderLayer(a, w, init))));
    this.norm = this.registerModule("norm", new RMSNorm(a.dModel, { eps: a.normEps }));
  }
}

/**
 * How a layer attends: causal (bottom-right), GQA when Hkv < H, its sliding window or null; as sdpa
 * takes them. Over a streaming or paged cache's mask instead: isCausal false, slidingWindow null and
 * attnMask [N or 1, 1, T, S], which says it all (causality and the window, in positions).
 */
export interface LayerAttentionOptions {
  readonly isCausal: boolean;
  readonly causalAlignment: "bottom-right";
  readonly enableGqa: boolean;
  readonly slidingWindow: number | null;
  /** with forward's attentionMask: [N, 1, 1, S] bool, true = a token (padding is never attended to); or the cache's [N or 1, 1, T, S] */
  readonly attnMask?: Tensor;
}

/**
 * Called once per layer, in order, with the layer's query [N, H, T, hd] and key [N, Hkv, S, hd]
 * (after RoPE; S includes cached positions) and its sdpa options: attentionWeights(query, key,
 * { ...opts, rows, heads }) gives any of the layer's weights without forming the others.
 */
export type AttentionVisitor = (layer: number, query: Tensor, key: Tensor, opts: LayerAttentionOptions) => void;

export interface PretrainedForwardOptions {
  /** decode with this cache (only the new tokens are passed); model.newCache() */
  cache?: KVCache | null;
  /**
   * padded rows, as transformers' attention_mask: [N, S] with 1 for a token and 0 for padding, over
   * the cached positions and the new ones (S = cache.length + T). Each row's positions count its own
   * tokens (a left-padded prompt starts at 0), and padding is never attended to (see padding.ts).
   */
  attentionMask?: AttentionMaskInput | null;
  /**
   * as transformers' logits_to_keep (an integer): k > 0 gives the logits of the last k positions
   * only, [N, k, vocab], skipping the head's work on the others; 0 (the default) gives all T.
   * With left padding the last column is every row's last token, so 1 is what generation reads.
   */
  logitsToKeep?: number;
}
const FORWARD_OPTION_KEYS = ["cache", "attentionMask", "logitsToKeep"];

export interface PretrainedLMOptions {
  /**
   * true: every parameter starts as zeros instead of being drawn at random (as nn's skipInit), for
   * weights that are loaded next; fromPretrained builds its model so. Default false: the layers'
   * own seeded initialisation.
   */
  skipInit?: boolean;
}

export class PretrainedLM extends Module {
  static readonly family = "pretrained";
  readonly family = "pretrained";
  /** the architecture read from config.json (vocabSize and maxSeqLen as generate() reads them) */
  readonly config: Readonly<PretrainedArch>;
  /** GPT-2: n_positions (wpe's rows, learned positions end there); the Llama family: undefined, RoPE computes any position (CausalLM.maxPositions) */
  readonly maxPositions: number | undefined;
  /** its forward takes PackedPositions from a paged cache (CausalLM.packedPrefill) */
  readonly packedPrefill = true;
  transformer: GPT2Model | null;
  model: LlamaModel | null;
  lm_head: Linear | null;
  private readonly rotary: RotaryEmbedding | null;

  constructor(arch: PretrainedArch, opts: PretrainedLMOptions = {}) {
    super();
    checkOptions("PretrainedLM", "options", opts, ["skipInit"]);
    const init: Init = { skipInit: checkSkipInit("PretrainedLM", opts.skipInit) };
    this.config = Object.freeze({ ...arch, slidingWindows: Object.freeze([...arch.slidingWindows]) as (number | null)[] });
    const gpt2 = arch.family === "gpt2";
    this.maxPositions = gpt2 ? arch.maxSeqLen : undefined;
    this.transformer = this.registerModule("transformer", gpt2 ? new GPT2Model(arch, init) : null);
    this.model = this.registerModule("model", gpt2 ? null : new LlamaModel(arch, init));
    this.lm_head = this.registerModule("lm_head", arch.tieWordEmbeddings ? null : new Linear(arch.dModel, arch.vocabSize, { bias: false, ...init }));
    this.rotary = gpt2 ? null : new RotaryEmbedding(arch.headDim, { base: arch.ropeTheta });
  }

  /** A cache for forward(…, { cache }) and generate(). */
  newCache(): KVCache {
    return new KVCache({ initialCapacity: Math.min(64, this.config.maxSeqLen) });
  }

  /** ids [N, T] -> logits [N, T, vocab] ([N, k, vocab] with { logitsToKeep: k }). */
  forward(ids: TokenInput, opts: PretrainedForwardOptions = {}): Tensor {
    return this.run("PretrainedLM.forward", ids, opts, null, null);
  }

  /** forward(ids), handing every layer's attention query and key to visit (for head pictures and scores). */
  forwardVisitingAttention(ids: TokenInput, visit: AttentionVisitor, opts: PretrainedForwardOptions = {}): Tensor {
    if (typeof visit !== "function") throw new ArgumentError("PretrainedLM.forwardVisitingAttention: visit must be a function (layer, query, key, opts) => void");
    return this.run("PretrainedLM.forwardVisitingAttention", ids, opts, null, visit);
  }

  /** The logits and every layer's per-head attention weights [N, H, T, S] (for pictures and head scores). */
  forwardWithAttention(ids: TokenInput, opts: PretrainedForwardOptions = {}): ForwardWithAttention {
    const weights: Tensor[] = [];
    const logits = this.run("PretrainedLM.forwardWithAttention", ids, opts, weights, null);
    const prefix = this.transformer ? "transformer.h" : "model.layers";
    const name = this.transformer ? "attn" : "self_attn";
    const attention: AttentionMap[] = weights.map((w, layer) => ({ name: `${prefix}.${layer}.${name}`, kind: "self", layer, weights: w }));
    return { logits, attention };
  }

  private run(fn: string, ids: TokenInput, opts: PretrainedForwardOptions, weights: Tensor[] | null, visit: AttentionVisitor | null): Tensor {
    const a = this.config;
    checkOptions(fn, "options", opts, FORWARD_OPTION_KEYS);
    const tokens = tokenTensor(fn, "ids", ids, a.vocabSize);
    const cache = opts.cache ?? null;
    if (cache !== null && !(cache instanceof KVCache)) throw new ArgumentError(`${fn}: cache must be a KVCache (model.newCache())`);
    const [N, T] = tokens.shape;
    const keep = checkLogitsToKeep(fn, opts.logitsToKeep, T);
    const mask = opts.attentionMask ?? null;
    if (mask !== null && cache !== null && (cache.streaming !== null || cache instanceof PagedKVCache)) {
      throw new ArgumentError(`${fn}: attentionMask needs a plain cache (model.newCache()), got a ${cache.streaming ? "streaming" : "paged"} one, whose keys are not the mask's S columns`);
    }
    // with attentionMask each row's positions count its own tokens (checked here); else the cache's, one
    // per row for a paged cache's sequences (cachePositions checks them: RoPE streams past maxSeqLen, GPT-2's learned positions do not)
    const cached = mask === null || cache === null ? 0 : cache.length; // a plain cache's (one number)
    const padding = mask === null ? null : paddingOf(fn, mask, N, cached, T);
    if (padding !== null && padding.maxPosition >= a.maxSeqLen) {
      throw new ShapeError(`${fn}: a row of attentionMask reaches position ${padding.maxPosition} (its tokens counted), past the model's ${a.maxSeqLen} positions`);
    }
    const offset = padding !== null ? cached : cachePositions(fn, cache, tokens.shape, {
      maxSeqLen: a.maxSeqLen, learnedPositions: this.maxPositions !== undefined,
      limit: `the model's ${a.maxSeqLen} positions`, learnedHint: "; GPT-2's learned positions end there, so it cannot stream past them",
    });
    const ctx = (i: number): LayerContext => ({
      weights, offset, padding, cache: cache && cache.layer(i), rotary: this.rotary, visit: visit && ((q, k, o) => visit(i, q, k, o)),
    });
    let x: Tensor;
    let embed: Tensor;
    if (this.transformer) {
      const t = this.transformer;
      x = t.wte.forward(tokens);
      const pos = padding ? padding.positions : tokenPositions(offset, T); // [N or 1][T]
      x = add(x, t.wpe.forward(tokenTensor(fn, "positions", pos, a.maxSeqLen))); // [N, T, C] + [N or 1, T, C]
      let i = 0;
      for (const block of t.h) x = block.forward(x, ctx(i++));
      x = t.ln_f.forward(keepLastPositions(x, keep)); // [N, T, C] -> [N, k, C] (the norm is per position: see logitsToKeep.ts)
      embed = t.wte.weight;
    } else {
      const m = this.model as LlamaModel;
      x = m.embed_tokens.forward(tokens);
      let i = 0;
      for (const layer of m.layers) x = layer.forward(x, ctx(i++));
      x = m.norm.forward(keepLastPositions(x, keep)); // [N, T, C] -> [N, k, C]
      embed = m.embed_tokens.weight;
    }
    return this.lm_head ? this.lm_head.forward(x) : linear(x, embed); // [N, k, C] -> [N, k, vocab]
  }
}
