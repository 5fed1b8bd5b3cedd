/**
 * The one attention module core. Grouped-query attention with Hkv = H is multi-head attention, so
 * both modules are this class with their own projections (parameter names, PyTorch's extras):
 *
 *   q = Wq x                 split into H heads                 [N, L, C] -> [N, H, L, hd]
 *   k = Wk x', v = Wv x'     split into Hkv heads (a group of G = H / Hkv query heads shares one)
 *   y = sdpa(q, k, v)        causal as a flag, padding as a [N, 1, 1, S] mask: the fused kernels
 *   out = Wo merge(y)        [N, H, L, hd] -> [N, L, C]
 *
 * forward() is the PyTorch adapter around attend(), the core: the [L, N, C] / unbatched layouts, the
 * forward options and masks (moduleCommon.ts), averaged weights. MultiheadAttention (multihead.ts)
 * adds in_proj / out_proj and addBiasKv / addZeroAttn; GroupedQueryAttention (gqa.ts) has
 * q_proj / k_proj / v_proj / o_proj.
 *
 * Shape letters: N batch, L query length, S key length (all cached positions with a KV cache),
 * C = embedDim, H query heads, Hkv key/value heads, hd = C / H head dim.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import type { FloatArray } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { initGenerator } from "../tensor/random.js";
import { isGradEnabled } from "../autograd/tape.js";
import { checkPositiveInt } from "../tensor/validate.js";
import { permute, reshape } from "../ops/shape.js";
import { Module } from "../nn/module.js";
import {
  type AttentionForwardOptions, type Inputs, type SdpaMasks, checkForwardOptions, fromBatchFirst, sdpaMasks, shapeWeights, toBatchFirst,
} from "./moduleCommon.js";
import { decodeAttention } from "./decode.js";
import { atPositions } from "./kvcache.js";
import { type QKTransform, applyQKTransform, checkRotary } from "./rope.js";
import { scaledDotProductAttention, scaledDotProductAttentionWithWeights } from "./sdpa.js";

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
}

export const CORE_OPTIONS = ["dropout", "kdim", "vdim", "batchFirst", "rotary", "seed", "generator", "dtype"] as const;

/** [N, T, heads * hd] -> [N, heads, T, hd] */
function splitHeads(x: Tensor, heads: number, hd: number): Tensor {
  const [N, T] = x.shape;
  if (T === 1) return reshape(x, [N, heads, 1, hd]); // one position: the same memory order, no copy
  return permute(reshape(x, [N, T, heads, hd]), [0, 2, 1, 3]); // [N, T, heads*hd] -> [N, T, heads, hd] -> [N, heads, T, hd]
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
  protected readonly gen: Generator;
  private readonly fn: string;

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
    this.gen = initGenerator(opts);
  }

  /** [N, L, C] -> [N, L, H*hd] */
  protected abstract projectQuery(x: Tensor): Tensor;
  /** [N, S, kdim], [N, S, vdim] -> [N, S, Hkv*hd] each */
  protected abstract projectKeyValue(k: Tensor, v: Tensor): [Tensor, Tensor];
  /** [N, L, H*hd] -> [N, L, C] */
  protected abstract projectOut(y: Tensor): Tensor;
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
    const q = this.rotate(splitHeads(this.projectQuery(x.q), H, hd), past); // [N, L, C] -> [N, L, H*hd] -> [N, H, L, hd]
    let fresh: [Tensor, Tensor] | null = null; // the new keys/values; null when a filled cross cache holds the memory's
    if (!(cache?.kind === "cross" && cache.filled)) {
      const [kp, vp] = this.projectKeyValue(x.k, x.v); // [N, S, kdim], [N, S, vdim] -> [N, S, Hkv*hd]
      fresh = this.appendKeys(this.rotate(splitHeads(kp, Hkv, hd), past), splitHeads(vp, Hkv, hd)); // -> [N, Hkv, S (+ extra), hd]
    }
    const extra = this.extraKeys();
    const S = (fresh === null ? 0 : fresh[0].shape[2]) + (cache?.length ?? 0) - extra; // every key position, cached ones included
    const masks = sdpaMasks(fn, opts, x, S, H, extra);
    if (cache !== null && this.decodes(x, q, fresh, masks, opts)) {
      if (fresh !== null) cache.push(fresh[0], fresh[1]);
      const y = decodeAttention(q.values as FloatArray, cache.storage()!, H, 1 / Math.sqrt(hd), masks.isCausal ? masks.causalAlignment : null);
      return [this.projectOut(new Tensor(y, [x.N, 1, H * hd], q.dtype)), null]; // [N, H, 1, hd] is [N, 1, H*hd]
    }
    let [k, v] = fresh ?? cache!.keysValues()!; // [N, Hkv, S, hd]
    let visible: Tensor | null = null; // a windowed or paged cache's own mask [N or 1, 1, L, S] (causality included)
    if (fresh !== null && cache !== null) [k, v, visible] = cache.appendVisible(k, v, masks); // -> [N, Hkv, cached, hd]
    const o = { ...masks, ...(visible && { attnMask: visible, isCausal: false }), enableGqa: Hkv !== H, dropoutP: this.training ? this.dropout : 0, generator: this.gen };
    const [y, w] = (opts.needWeights ?? true)
      ? scaledDotProductAttentionWithWeights(q, k, v, o) // [N, H, L, hd] and the weights [N, H, L, S]: the math path
      : [scaledDotProductAttention(q, k, v, o), null]; // [N, H, L, hd]: the fused kernels
    return [this.projectOut(mergeHeads(y)), w]; // [N, H, L, hd] -> [N, L, H*hd] -> [N, L, C]
  }

  /**
   * Whether this call is a decode step for decodeAttention (decode.ts): one new query (L = 1) over a
   * cache, no mask, no dropout, no weights wanted, nothing that needs a gradient, one dtype.
   */
  private decodes(x: Inputs, q: Tensor, fresh: [Tensor, Tensor] | null, masks: SdpaMasks, opts: AttentionForwardOptions): boolean {
    if (x.L !== 1 || masks.attnMask !== null || (opts.needWeights ?? true) || (this.training && this.dropout > 0)) return false;
    const dtype = opts.cache!.storage()?.dtype ?? fresh?.[0].dtype;
    const tensors = fresh === null ? [q] : [q, fresh[0], fresh[1]];
    return tensors.every((t) => t.dtype === dtype) && !(isGradEnabled() && tensors.some((t) => t.requiresGrad));
  }

  private rotate(t: Tensor, past: number | readonly number[]): Tensor {
    const rotary = this.rotary;
    return rotary ? atPositions(t, past, (x, offset) => applyQKTransform(rotary, x, offset)) : t;
  }
}
