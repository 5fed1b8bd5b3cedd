/**
 * The one attention module core. Grouped-query attention with Hkv = H is multi-head attention, so
 * both modules are this class with their own projections (parameter names, PyTorch's extras):
 *
 *   q = Wq x                 split into H heads                 [N, L, C] -> [N, H, L, hd]
 *   k = Wk x', v = Wv x'     split into Hkv heads (a group of G = H / Hkv query heads shares one)
 *   y = sdpa(q, k, v)        causal as a flag, padding as a [N, 1, 1, S] mask: the fused kernels
 *   out = Wo merge(y)        [N, H, L, hd] -> [N, L, C]
 *
 * Where the fused kernels take the call (no weights wanted; no cache, or a prefill into an empty plain
 * KVCache) they read q, k, v as the projections lay them out, heads interleaved, and write the merged
 * output, so the split and merge are not made; a RotaryEmbedding rotates q and k in that layout first
 * (rope.forwardInterleaved), and a cache takes its heads-first copy of the new keys and values.
 *
 * forward() is the PyTorch adapter around attend(), the core: the [L, N, C] / unbatched layouts, the
 * forward options and masks (moduleCommon.ts), averaged weights. MultiheadAttention (multihead.ts)
 * adds in_proj / out_proj and addBiasKv / addZeroAttn; GroupedQueryAttention (gqa.ts) has
 * q_proj / k_proj / v_proj / o_proj.
 *
 * The flexible options of sdpa (flexPlan.ts) a module can carry, each handed to sdpa as the symbolic
 * option on every path (fused, weights, KV cache), never as a mask:
 *   slidingWindow   query l' sees keys l' - left .. l' + right (a number w: [w - 1, 0], Mistral)
 *   alibi           -slope_h |l' - s| added to the scores, the paper's slopes for H heads (not stored)
 *   softcap         scores -> softcap · tanh(scores / softcap) (Gemma 2)
 *   sinks           a learnable logit per query head, the Parameter `sinks` [H] (init 0; gpt-oss)
 *
 * Shape letters: N batch, L query length, S key length (all cached positions with a KV cache),
 * C = embedDim, H query heads, Hkv key/value heads, hd = C / H head dim.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import type { FloatArray, FloatDType } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { initGenerator } from "../tensor/random.js";
import { isGradEnabled } from "../autograd/tape.js";
import { checkPositiveInt } from "../tensor/validate.js";
import { zeros } from "../tensor/creation.js";
import { cast, logicalNot, maskedFill } from "../ops/elementwise.js";
import { permute, reshape, slice } from "../ops/shape.js";
import { Module } from "../nn/module.js";
import {
  type AttentionForwardOptions, type Inputs, type SdpaMasks, checkForwardOptions, fromBatchFirst, sdpaMasks, shapeWeights, toBatchFirst,
} from "./moduleCommon.js";
import { type DecodeFlex, decodeAttention } from "./decode.js";
import { KVCacheLayer, type PositionOffset, atPositions, isPacked } from "./kvcache.js";
import { PagedKVCacheLayer } from "./kvpaged.js";
import { type CausalAlignment, alibiBiasAt, checkWindow, defaultAlibiSlopes } from "./masks.js";
import { type QKTransform, RotaryEmbedding, applyQKTransform, checkRotary } from "./rope.js";
import {
  type HeadColumns, type SdpaOptions, scaledDotProductAttention, scaledDotProductAttentionInterleaved, scaledDotProductAttentionWithWeights,
} from "./sdpa.js";

/** The options both modules take. */
export interface AttentionCoreOptions {
  dropout?: number;
  kdim?: number;
  vdim?: number;
  /** inputs are [N, T, C] instead of [T, N, C] */
  batchFirst?: boolean;
  /** rotate q and k after projection (RoPE): a RotaryEmbedding of dim embedDim / heads, or any (x [N, H, T, hd], positionOffset) -> same shape */
  rotary?: QKTransform | null;
  seed?: number;
  generator?: Generator;
  dtype?: "float32" | "float64";
  /** query l' sees keys l' - left .. l' + right; a number w is [w - 1, 0] (w keys up to its own) */
  slidingWindow?: number | readonly [number, number] | null;
  /** ALiBi: add -slope_h · |l' - s| to the scores, with the paper's geometric slopes for the H query heads */
  alibi?: boolean;
  /** scores become softcap · tanh(scores / softcap) (after scaling and ALiBi) */
  softcap?: number | null;
  /** a learnable sink logit per query head (the Parameter `sinks` [H], initialised to 0) */
  sinks?: boolean;
}

export const CORE_OPTIONS = [
  "dropout", "kdim", "vdim", "batchFirst", "rotary", "seed", "generator", "dtype", "slidingWindow", "alibi", "softcap", "sinks",
] as const;

/** The flexible sdpa options a module passes on every call (see the file comment). */
interface ModuleFlex {
  slidingWindow: readonly [number, number] | null;
  alibiSlopes: readonly number[] | null;
  softcap: number | null;
}

function checkFlex(fn: string, opts: AttentionCoreOptions, H: number, extraKeys: boolean): ModuleFlex {
  for (const k of ["alibi", "sinks"] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== "boolean") throw new ArgumentError(`${fn}: ${k} must be a boolean, got ${typeof opts[k]}`);
  }
  const w = opts.slidingWindow;
  const slidingWindow = w === undefined || w === null ? null : checkWindow(fn, w);
  let softcap: number | null = null;
  if (opts.softcap !== undefined && opts.softcap !== null) {
    if (typeof opts.softcap !== "number" || !(opts.softcap > 0) || !Number.isFinite(opts.softcap)) {
      throw new ArgumentError(`${fn}: softcap must be a positive finite number (scores become softcap · tanh(scores / softcap)), got ${String(opts.softcap)}`);
    }
    softcap = opts.softcap;
  }
  const alibi = opts.alibi === true;
  if (extraKeys && (slidingWindow !== null || alibi)) {
    throw new ArgumentError(
      `${fn}: ${slidingWindow !== null ? "slidingWindow" : "alibi"} cannot be combined with addBiasKv or addZeroAttn (the appended key has no position to measure a window or a distance from)`,
    );
  }
  return { slidingWindow, alibiSlopes: alibi ? defaultAlibiSlopes(H) : null, softcap };
}

/** [N, T, heads * hd] -> [N, heads, T, hd] */
function splitHeads(x: Tensor, heads: number, hd: number): Tensor {
  const [N, T] = x.shape;
  if (T === 1) return reshape(x, [N, heads, 1, hd]); // one position: the same memory order, no copy
  return permute(reshape(x, [N, T, heads, hd]), [0, 2, 1, 3]); // [N, T, heads*hd] -> [N, T, heads, hd] -> [N, heads, T, hd]
}

/** The heads of a whole projection [N, T, heads * hd]. */
function whole(t: Tensor, heads: number, hd: number): HeadColumns {
  return { t, offset: 0, heads, dim: hd };
}

/** The projection's heads as their own tensor [N, heads, T, hd] (the readable path's split). */
function headsOf(c: HeadColumns): Tensor {
  const [N, T, X] = c.t.shape;
  const width = c.heads * c.dim;
  let t = c.t;
  if (width !== X) {
    t = N * T === 1 && !(isGradEnabled() && t.requiresGrad)
      ? new Tensor(t.values.subarray(c.offset, c.offset + width), [N, T, width], t.dtype) // one row: its columns are a view
      : slice(t, 2, c.offset, c.offset + width); // [N, T, X] -> [N, T, heads*hd]
  }
  return splitHeads(t, c.heads, c.dim);
}

/** [N, H, L, hd] -> [N, L, H * hd] */
function mergeHeads(y: Tensor): Tensor {
  const [N, H, L, hd] = y.shape;
  if (L === 1) return reshape(y, [N, 1, H * hd]); // one position: the same memory order, no copy
  return reshape(permute(y, [0, 2, 1, 3]), [N, L, H * hd]); // [N, H, L, hd] -> [N, L, H, hd] -> [N, L, H*hd]
}

export abstract class AttentionCore extends Module {
  readonly embedDim: number;
  /** query heads H */
  readonly numHeads: number;
  /** key/value heads Hkv (= numHeads for multi-head attention) */
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;
  /** applied to q and k after projection */
  rotary: QKTransform | null;
  /** [left, right], or null: every key (within causality and the masks) */
  readonly slidingWindow: readonly [number, number] | null;
  /** the ALiBi slopes of the H heads, or null */
  readonly alibiSlopes: readonly number[] | null;
  readonly softcap: number | null;
  /** [H] learnable sink logits (opts.sinks), registered by the subclass once its projections are */
  sinks: Tensor | null = null;
  protected readonly gen: Generator;
  private readonly fn: string;
  private readonly wantSinks: boolean;

  /**
   * Validates what both modules share. `names` are the caller's names for H and Hkv (for errors);
   * `extraKeys`: the subclass appends key positions (addBiasKv / addZeroAttn), which RoPE cannot place.
   */
  protected constructor(
    fn: string, embedDim: number, heads: { H: number; Hkv: number; names: [string, string] }, opts: AttentionCoreOptions, extraKeys = false,
  ) {
    super();
    const [hName, kvName] = heads.names;
    checkPositiveInt(fn, "embedDim", embedDim);
    checkPositiveInt(fn, hName, heads.H);
    checkPositiveInt(fn, kvName, heads.Hkv);
    if (embedDim % heads.H !== 0) {
      throw new ArgumentError(`${fn}: embedDim ${embedDim} must be divisible by ${hName} ${heads.H} (each head gets embedDim / ${hName} dims)`);
    }
    if (heads.H % heads.Hkv !== 0) {
      throw new ArgumentError(`${fn}: ${hName} ${heads.H} must be a multiple of ${kvName} ${heads.Hkv} (each key/value head serves a group of query heads)`);
    }
    const dropout = opts.dropout ?? 0;
    if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) throw new ArgumentError(`${fn}: dropout must be in [0, 1), got ${dropout}`);
    this.fn = fn;
    this.embedDim = embedDim;
    this.numHeads = heads.H;
    this.numKvHeads = heads.Hkv;
    this.headDim = embedDim / heads.H;
    this.kdim = opts.kdim === undefined ? embedDim : checkPositiveInt(fn, "kdim", opts.kdim);
    this.vdim = opts.vdim === undefined ? embedDim : checkPositiveInt(fn, "vdim", opts.vdim);
    this.dropout = dropout;
    this.batchFirst = opts.batchFirst ?? false;
    this.rotary = checkRotary(fn, opts.rotary ?? null, this.headDim, extraKeys);
    const flex = checkFlex(fn, opts, heads.H, extraKeys);
    this.slidingWindow = flex.slidingWindow;
    this.alibiSlopes = flex.alibiSlopes;
    this.softcap = flex.softcap;
    this.wantSinks = opts.sinks === true;
    this.gen = initGenerator(opts);
  }

  /** Registers `sinks` [H] (zeros) when opts.sinks; each subclass calls it after registering its projections. */
  protected registerSinks(dtype: "float32" | "float64"): void {
    this.sinks = this.registerParameter("sinks", this.wantSinks ? zeros([this.numHeads], { dtype }) : null);
  }

  /** Whether an option that measures distances between positions is on (slidingWindow, ALiBi). */
  private measuresDistance(): boolean {
    return this.slidingWindow !== null || this.alibiSlopes !== null;
  }

  /** [N, L, C] -> [N, L, H*hd] */
  protected abstract projectQuery(x: Tensor): Tensor;
  /** [N, S, kdim], [N, S, vdim] -> [N, S, Hkv*hd] each */
  protected abstract projectKeyValue(k: Tensor, v: Tensor): [Tensor, Tensor];
  /** [N, L, H*hd] -> [N, L, C] */
  protected abstract projectOut(y: Tensor): Tensor;
  /**
   * Self-attention's projections at once where the subclass can do better than projectQuery and
   * projectKeyValue apart (the same values): x [N, L, C] -> [N, L, (H + 2 Hkv) * hd], q, k and v side
   * by side in that order; null: apart.
   */
  protected projectSelf(_x: Tensor): Tensor | null {
    return null;
  }
  /** Key/value positions the subclass appends after the S given ones (always attendable). */
  protected extraKeys(): number {
    return 0;
  }
  /** Appends them: [N, Hkv, S, hd] -> [N, Hkv, S + extraKeys(), hd]. */
  protected appendKeys(k: Tensor, v: Tensor): [Tensor, Tensor] {
    return [k, v];
  }

  /**
   * query [L, N, C] ([N, L, C] with batchFirst, [L, C] unbatched), key [S, N, kdim], value
   * [S, N, vdim] -> [output like query, weights [N, L, S] (or [N, H, L, S]) | null].
   * Self-attention: forward(x, x, x). Cross-attention: forward(x, memory, memory).
   * With opts.cache, query/key/value hold only the new tokens and S counts every cached position.
   */
  forward(query: Tensor, key: Tensor, value: Tensor, opts: AttentionForwardOptions = {}): [Tensor, Tensor | null] {
    const fn = `${this.fn}.forward`;
    checkForwardOptions(fn, opts);
    if (opts.cache && this.extraKeys() > 0) {
      throw new ArgumentError(`${fn}: a KV cache cannot be combined with addBiasKv or addZeroAttn (the extra key position would be cached at every step)`);
    }
    const x = toBatchFirst(fn, query, key, value, this.batchFirst, { embed: this.embedDim, kdim: this.kdim, vdim: this.vdim });
    const [out, weights] = this.attend(fn, x, opts); // [N, L, C], [N, H, L, S]
    return [fromBatchFirst(out, x, this.batchFirst), weights && shapeWeights(weights, x, opts.averageAttnWeights ?? true)];
  }

  /** The core, batch-first: project, split heads, sdpa, merge heads, project out. */
  protected attend(fn: string, x: Inputs, opts: AttentionForwardOptions): [Tensor, Tensor | null] {
    const [H, Hkv, hd] = [this.numHeads, this.numKvHeads, this.headDim];
    const cache = opts.cache ?? null;
    const past = cache?.kind === "self" ? cache.positionOffset() : 0; // position of the first new token (one per row for a paged cache)
    const needKV = !(cache?.kind === "cross" && cache.filled);
    // the projections, heads still interleaved: q [N, L, H*hd], k and v [N, S, Hkv*hd] (kv null when a
    // filled cross cache holds the memory's); self-attention maybe as one product [N, L, (H + 2 Hkv)*hd]
    const qkv = needKV && x.q === x.k && x.k === x.v ? this.projectSelf(x.q) : null;
    let qc: HeadColumns;
    let kv: [HeadColumns, HeadColumns] | null = null;
    if (qkv !== null) {
      qc = whole(qkv, H, hd);
      kv = [{ t: qkv, offset: H * hd, heads: Hkv, dim: hd }, { t: qkv, offset: (H + Hkv) * hd, heads: Hkv, dim: hd }];
    } else {
      qc = whole(this.projectQuery(x.q), H, hd); // [N, L, C] -> [N, L, H*hd]
      if (needKV) {
        const [kp, vp] = this.projectKeyValue(x.k, x.v); // [N, S, kdim], [N, S, vdim] -> [N, S, Hkv*hd]
        kv = [whole(kp, Hkv, hd), whole(vp, Hkv, hd)];
      }
    }
    const extra = this.extraKeys();
    // what the new queries attend over is just the new keys: no cache, or a prefill into an empty plain
    // layer (appendVisible would hand back the new keys and no mask; a windowed or paged layer has its own)
    const freshOnly = cache === null || (cache.length === 0 && x.L > 1 && cache.constructor === KVCacheLayer);
    // RoPE as a RotaryEmbedding can apply it to the heads where the projections put them (rotate() takes a
    // transform function, and the rows of a paged cache at their own positions, after the split)
    const rope = this.rotary instanceof RotaryEmbedding && typeof past === "number" ? this.rotary : null;
    let rotated = false; // whether qc and kv[0] hold q and k rotated
    if (kv !== null && freshOnly && extra === 0 && (this.rotary === null || rope !== null) && !(opts.needWeights ?? true)) {
      if (rope !== null) {
        qc = whole(rope.forwardInterleaved(qc, past as number), H, hd); // [N, L, H*hd] -> rotated, the same layout
        kv = [whole(rope.forwardInterleaved(kv[0], past as number), Hkv, hd), kv[1]]; // [N, S, Hkv*hd] -> rotated
        rotated = true;
      }
      // The fused kernels read the heads where the projections put them and write the merged output:
      // the same bits as the split / sdpa / merge below, without its four copies (none when they decline)
      const masks = sdpaMasks(fn, opts, x, x.S, H, 0);
      const y = scaledDotProductAttentionInterleaved(qc, kv[0], kv[1], this.sdpaOptions(masks, null)); // [N, L, H*hd]
      if (y !== null) {
        if (cache !== null) cache.push(headsOf(kv[0]), headsOf(kv[1])); // the cache keeps heads first: [N, S, Hkv*hd] -> [N, Hkv, S, hd]
        return [this.projectOut(y), null];
      }
    }
    const rotateHeads = (t: Tensor): Tensor => (rotated ? t : this.rotate(t, past)); // [N, heads, T, hd]: RoPE unless done above
    const q = rotateHeads(headsOf(qc)); // [N, L, H*hd] -> [N, H, L, hd]
    let fresh: [Tensor, Tensor] | null = null; // the new keys/values
    if (kv !== null) fresh = this.appendKeys(rotateHeads(headsOf(kv[0])), headsOf(kv[1])); // -> [N, Hkv, S (+ extra), hd]
    const S = (fresh === null ? 0 : fresh[0].shape[2]) + (cache?.length ?? 0) - extra; // every key position, cached ones included
    const masks = sdpaMasks(fn, opts, x, S, H, extra);
    if (cache !== null && this.decodes(x, q, fresh, masks, opts)) {
      if (fresh !== null) cache.push(fresh[0], fresh[1]);
      const y = this.decodeCached(q.values as FloatArray, cache, masks.isCausal, masks.causalAlignment);
      return [this.projectOut(new Tensor(y, [x.N, 1, H * hd], q.dtype)), null]; // [N, H, 1, hd] is [N, 1, H*hd]
    }
    let [k, v] = fresh ?? cache!.keysValues()!; // [N, Hkv, S, hd]
    let visible: Tensor | null = null; // a windowed or paged cache's own mask [N or 1, 1, L, S] (causality and the window included)
    let alibiBias: Tensor | null = null; // ALiBi at the keys' token positions, when the cache's columns skip some
    if (fresh !== null && cache !== null) {
      let positions: Tensor | null; // [N or 1, S] each key column's token position, when they are not consecutive
      const w = this.slidingWindow; // causal (as a streaming or paged cache must be): only the left side hides keys
      [k, v, visible, positions] = cache.appendVisible(k, v, { ...masks, slidingWindow: w && w[0] + 1 }); // -> [N, Hkv, cached, hd]
      if (positions !== null && this.alibiSlopes !== null && !isPacked(past)) alibiBias = this.alibiAt(fn, past, positions, x.L, q.dtype as FloatDType);
    }
    const o = this.sdpaOptions(masks, visible, alibiBias);
    const [y, w] = (opts.needWeights ?? true)
      ? scaledDotProductAttentionWithWeights(q, k, v, o) // [N, H, L, hd] and the weights [N, H, L, S] (a sink's row sums to < 1): the math path
      : [scaledDotProductAttention(q, k, v, o), null]; // [N, H, L, hd]: the fused kernels
    return [this.projectOut(mergeHeads(y)), w]; // [N, H, L, hd] -> [N, L, H*hd] -> [N, L, C]
  }

  /**
   * One query position per row against every key `cache` holds, by decode.ts: q [N, H, 1, hd] (flat,
   * rotated) -> [N, H, 1, hd] (flat; written into `into` when given), with this module's sliding
   * window, ALiBi, softcap and sinks. The decode call of the module's cached step (attend) and of
   * TransformerBlock.decodeInPlace, which take it when decodes() / decodesInPlace() allow.
   */
  decodeCached(q: FloatArray, cache: KVCacheLayer, isCausal: boolean, alignment: CausalAlignment, into?: FloatArray): FloatArray {
    const w = this.slidingWindow;
    const flex: DecodeFlex = {
      alignment, window: w && { left: w[0], right: w[1] }, alibiSlopes: this.alibiSlopes, softcap: this.softcap,
      sinks: this.sinks && (this.sinks.values as FloatArray),
    };
    return decodeAttention(q, cache.storage()!, this.numHeads, 1 / Math.sqrt(this.headDim), isCausal ? alignment : null, flex, into);
  }

  /**
   * scaledDotProductAttention's options for this module's call. `visible`: a cache's own mask, which
   * replaces causality and the sliding window (the cache measured it in token positions); `alibi`:
   * the ALiBi bias at the keys' token positions (alibiAt), which replaces the slopes and joins the mask.
   */
  private sdpaOptions(masks: SdpaMasks, visible: Tensor | null, alibi: Tensor | null = null): SdpaOptions {
    const attnMask = alibi !== null && visible !== null ? maskedFill(alibi, logicalNot(visible), -Infinity) : visible; // [N or 1, H, L, S]: -inf where hidden
    return {
      ...masks, ...(attnMask && { attnMask, isCausal: false }), enableGqa: this.numKvHeads !== this.numHeads,
      dropoutP: this.training ? this.dropout : 0, generator: this.gen,
      slidingWindow: visible === null ? this.slidingWindow : null, alibiSlopes: alibi === null ? this.alibiSlopes : null, softcap: this.softcap, sinks: this.sinks,
    };
  }

  /**
   * ALiBi at token positions, for a streaming cache whose key columns skip positions (the sinks, then
   * the last window): [R, H, L, S] of -slope_h · |p_l - p_s|, with p_l = past + l the query's position
   * (past per row for a paged cache) and p_s = positions[r, s] the key's (-1, padding: left to the mask).
   * It is added to the scores after the softcap (a float mask), which equals ALiBi (added before it)
   * only without one: a softcap is refused here with the reason.
   */
  private alibiAt(fn: string, past: number | readonly number[], positions: Tensor, L: number, dtype: FloatDType): Tensor {
    if (this.softcap !== null) {
      throw new ArgumentError(
        `${fn}: alibi with softcap ${this.softcap} cannot stream through a KV cache whose window has moved past its sinkTokens (the keys skip positions, so ALiBi is added at their token positions as a float mask, which comes after the softcap, not before it); use sinkTokens: 0 (a rolling window) or a plain KVCache`,
      );
    }
    const [R, S] = positions.shape;
    const start = (r: number): number => (typeof past === "number" ? past : past[r]);
    const queries = Int32Array.from({ length: R * L }, (_, i) => start(Math.floor(i / L)) + (i % L)); // [R, L]
    return cast(alibiBiasAt(this.alibiSlopes!, new Tensor(queries, [R, L], "int32"), positions), dtype); // [R, H, L, S]
  }

  /**
   * Whether this call is a decode step for decodeAttention (decode.ts): one new query (L = 1) over a
   * cache, no mask, no dropout, no weights wanted, nothing that needs a gradient, one dtype. The
   * flexible options go along (decode.ts applies each per key; over a streaming cache's ring at each
   * slot's token position), except that slidingWindow and ALiBi take the slow path where its own
   * keys place the query differently (a paged or streaming cache with top-left alignment).
   */
  private decodes(x: Inputs, q: Tensor, fresh: [Tensor, Tensor] | null, masks: SdpaMasks, opts: AttentionForwardOptions): boolean {
    if (x.L !== 1 || masks.attnMask !== null || (opts.needWeights ?? true) || (this.training && this.dropout > 0)) return false;
    const cache = opts.cache!;
    if (this.measuresDistance() && masks.causalAlignment !== "bottom-right" && (cache.reordersKeys || cache instanceof PagedKVCacheLayer)) return false;
    const dtype = cache.dtype ?? fresh?.[0].dtype; // storage() is built once, by decodeCached
    const tensors = fresh === null ? [q] : [q, fresh[0], fresh[1]];
    if (this.sinks !== null && isGradEnabled() && this.sinks.requiresGrad) return false;
    return tensors.every((t) => t.dtype === dtype) && !(isGradEnabled() && tensors.some((t) => t.requiresGrad));
  }

  private rotate(t: Tensor, past: PositionOffset): Tensor {
    const rotary = this.rotary;
    return rotary ? atPositions(t, past, (x, offset) => applyQKTransform(rotary, x, offset)) : t;
  }
}
