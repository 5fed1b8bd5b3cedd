/**
 * The KV cache: in autoregressive decoding every step adds one query, but the keys and values of the
 * earlier tokens do not change, so each attention layer keeps them and the model projects only the
 * new tokens. Step t then costs O(t) instead of re-running the whole prefix (O(t²) over a sequence).
 *
 * A KVCacheLayer holds one attention layer's keys [N, Hkv, T, E] and values [N, Hkv, T, Ev]. Storage
 * is preallocated as [N, Hkv, capacity, E] and doubles when full, so appends are amortised O(1) per
 * element; append() returns the keys/values of all T cached positions as fresh contiguous tensors.
 * The one-token decode step (decode.ts) instead pushes its keys/values with push() and reads them in
 * place through storage(): position s of row r = n * Hkv + h starts at (r * capacity + s) * E, so a
 * step copies only its own keys/values, never the whole cache.
 * Grouped-query attention caches only its Hkv key/value heads: H / Hkv times fewer bytes than
 * multi-head attention.
 *
 * Two kinds of layer:
 *   "self"   grows: each call appends the new tokens' keys/values (decoder self-attention);
 *   "cross"  static: filled once (the encoder memory's keys/values), then reused as is.
 *
 * The cache stores values, not graph: positions already cached are constants for autograd. When
 * gradients are being recorded the new tokens' keys/values keep theirs (the result is concatenated
 * with ops); generation runs under noGrad(). Subclasses: WindowKVCacheLayer (kvwindow.ts, streaming)
 * and PagedKVCacheLayer (kvpaged.ts).
 */
import { isGradEnabled } from "../autograd/tape.js";
import { type FloatArray, type FloatDType, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { concat } from "../ops/shape.js";
import { assertTensor } from "../ops/util.js";

export type KVCacheKind = "self" | "cross";

/**
 * Packed documents: one batch row that holds several sequences' new tokens back to back, each
 * starting at position 0 (a paged cache's packed prefill, PagedKVCache.selectPacked). Document k has
 * lengths[k] tokens, so the row's positions are 0 .. lengths[0] - 1, then 0 .. lengths[1] - 1, ...
 */
export interface PackedPositions {
  readonly packed: readonly number[];
}

/**
 * The position of a call's first new token: one number for every row, one per batch row (a paged
 * cache's sequences), or packed documents in one row (PackedPositions). atPositions (kvcache.ts)
 * applies position-dependent work under any of the three.
 */
export type PositionOffset = number | readonly number[] | PackedPositions;

/** Whether offset describes packed documents. */
export function isPacked(offset: PositionOffset): offset is PackedPositions {
  return typeof offset === "object" && !Array.isArray(offset);
}

/** What a cache layer needs to know of the attention call's masks (moduleCommon's SdpaMasks). */
export interface CallMasks {
  readonly attnMask: unknown;
  readonly isCausal: boolean;
  /**
   * the attention's own sliding window w in positions (query p sees keys p - w + 1 .. p), or absent.
   * A layer that returns a mask of its own folds it in, measured in token positions (a streaming or
   * paged layer's key columns need not be consecutive positions); with no mask returned, the keys are
   * positions 0 .. p in order and the caller applies the window itself.
   */
  readonly slidingWindow?: number | null;
}

/**
 * What appendVisible() hands back for T new queries: the keys [N, Hkv, S, E] and values [N, Hkv, S, Ev]
 * they attend over; the mask [N or 1, 1, T, S] (bool, true = may attend; causality and
 * CallMasks.slidingWindow included, in token positions), or null when the call's own masks
 * (causal, bottom-right) already say it; and the token position of each key column, [N or 1, S]
 * int32 (-1: padding), when the columns skip positions (a streaming layer's sinks, then the last
 * window), so that ALiBi can measure token distances; null when each row's columns are consecutive
 * positions ending at its last new token (column distances are then token distances).
 */
export type VisibleKeys = [keys: Tensor, values: Tensor, mask: Tensor | null, positions: Tensor | null];

export interface Layout {
  N: number;
  heads: number;
  E: number;
  Ev: number;
  dtype: FloatDType;
}

export const BYTES: Record<FloatDType, number> = { float32: 4, float64: 8 };

/**
 * A layer's storage, read in place: keys [N, Hkv, capacity, E] and values [N, Hkv, capacity, Ev], of
 * which positions [0, length) are filled. Valid until the next push or append (growing reallocates).
 */
export interface KVStorage {
  readonly keys: FloatArray;
  readonly values: FloatArray;
  readonly N: number;
  /** Hkv */
  readonly heads: number;
  readonly E: number;
  readonly Ev: number;
  readonly dtype: FloatDType;
  /** positions held (the longest row's, for a paged layout) */
  readonly length: number;
  readonly capacity: number;
  /**
   * The paged layout (kvpaged.ts), or absent: keys are then [numBlocks, Hkv, blockSize, E] (values
   * likewise), and batch row n's position s lives in block tables[n][floor(s / blockSize)] at slot
   * s mod blockSize; row n holds lengths[n] positions.
   */
  readonly paged?: { readonly blockSize: number; readonly tables: readonly Int32Array[]; readonly lengths: Int32Array };
  /**
   * A streaming layer's ring (kvwindow.ts), or absent (slot s holds position s): row n has seen
   * seen[n] positions, and its filled slot s holds position ringPosition(ring, seen[n], s), so the
   * slots are not in position order and skip positions once the window has moved past the sinks.
   */
  readonly ring?: { readonly window: number; readonly sinkTokens: number; readonly seen: readonly number[] };
}

export class KVCacheLayer {
  protected layout: Layout | null = null;
  protected keys: FloatArray | null = null;
  protected values: FloatArray | null = null;
  protected cap = 0;
  protected len = 0;
  /** the storage never grows past this many positions (a windowed layer's ring) */
  protected maxCapacity = Infinity;

  constructor(readonly kind: KVCacheKind, readonly name: string, protected readonly initialCapacity = 16) {}

  /**
   * Whether the keys it holds skip positions (a streaming window: the sinks, then the last `window`
   * positions), so that distances between key columns are not token distances: a sliding window or
   * ALiBi measured over its columns would be wrong. Such a layer measures them in positions instead:
   * the window in its mask and the columns' positions from appendVisible(), each slot's position in
   * storage().ring. False here.
   */
  get reordersKeys(): boolean {
    return false;
  }

  /** Positions held (the key length S a new query attends over, before its own keys). */
  get length(): number {
    return this.len;
  }

  /** The keys' and values' dtype, null before the first append: what a decode step checks, without building storage(). */
  get dtype(): FloatDType | null {
    return this.layout === null ? null : this.layout.dtype;
  }

  /** Positions the storage holds before it must grow. */
  get capacity(): number {
    return this.cap;
  }

  /** A cross layer is filled by its first call and reused afterwards. */
  get filled(): boolean {
    return this.len > 0;
  }

  /**
   * The position of the next token (RoPE and position embeddings continue from it): a number, or one
   * per batch row for a paged layer whose sequences differ in length. Equals length here; a windowed
   * layer holds fewer positions than it has seen; a paged layer's packed call gives PackedPositions.
   */
  positionOffset(): PositionOffset {
    return this.len;
  }

  /** Bytes of keys and values per cached position (all batch rows and heads). */
  bytesPerToken(): number {
    const l = this.layout;
    return l === null ? 0 : l.N * l.heads * (l.E + l.Ev) * BYTES[l.dtype];
  }

  /** Bytes in use (length × bytesPerToken); the allocation is capacity × bytesPerToken. */
  bytes(): number {
    return this.len * this.bytesPerToken();
  }

  /** Bytes allocated (capacity × bytesPerToken). */
  allocatedBytes(): number {
    return this.cap * this.bytesPerToken();
  }

  clear(): void {
    [this.layout, this.keys, this.values, this.cap, this.len] = [null, null, null, 0, 0];
  }

  protected check(fn: string, k: Tensor, v: Tensor): Layout {
    assertTensor(fn, "keys", k);
    assertTensor(fn, "values", v);
    if (k.ndim !== 4 || v.ndim !== 4) {
      throw new ShapeError(`${fn}: keys and values must be [N, Hkv, T, E] and [N, Hkv, T, Ev], got ${fmtShape(k.shape)} and ${fmtShape(v.shape)}`);
    }
    if (k.dtype !== v.dtype || (k.dtype !== "float32" && k.dtype !== "float64")) {
      throw new ArgumentError(`${fn}: keys and values must share a float dtype, got ${k.dtype} and ${v.dtype}`);
    }
    const [N, heads, T, E] = k.shape;
    if (v.shape[0] !== N || v.shape[1] !== heads || v.shape[2] !== T) {
      throw new ShapeError(`${fn}: keys ${fmtShape(k.shape)} and values ${fmtShape(v.shape)} must agree on N, Hkv and T`);
    }
    const got: Layout = { N, heads, E, Ev: v.shape[3], dtype: k.dtype };
    const l = this.layout;
    if (l !== null && (l.N !== got.N || l.heads !== got.heads || l.E !== got.E || l.Ev !== got.Ev || l.dtype !== got.dtype)) {
      throw new ShapeError(
        `${fn}: ${this.name} holds keys [N=${l.N}, Hkv=${l.heads}, T, E=${l.E}] and values [.., Ev=${l.Ev}] (${l.dtype}), ` +
          `but got keys ${fmtShape(k.shape)} and values ${fmtShape(v.shape)} (${k.dtype}); use a fresh cache for a new batch or model`,
      );
    }
    return got;
  }

  /** Make room for `need` positions (at most maxCapacity): allocate, or double the capacity until it fits. */
  protected reserve(l: Layout, need: number): void {
    need = Math.min(need, this.maxCapacity);
    if (need <= this.cap) return;
    let cap = Math.max(this.cap, this.initialCapacity, 1);
    while (cap < need) cap *= 2;
    cap = Math.min(cap, this.maxCapacity);
    const rows = l.N * l.heads;
    const grow = (old: FloatArray | null, D: number): FloatArray => {
      const buf = allocate(l.dtype, rows * cap * D) as FloatArray;
      if (old !== null) for (let r = 0; r < rows; r++) buf.set(old.subarray(r * this.cap * D, (r * this.cap + this.len) * D), r * cap * D);
      return buf;
    };
    this.keys = grow(this.keys, l.E);
    this.values = grow(this.values, l.Ev);
    this.cap = cap;
  }

  /** The given slots, in order, as contiguous tensors [N, Hkv, slots.length, E] and [.., Ev]. */
  protected readSlots(slots: readonly number[]): [Tensor, Tensor] {
    const l = this.layout!;
    const T = slots.length;
    const rows = l.N * l.heads;
    const copy = (buf: FloatArray, D: number): Tensor => {
      const out = allocate(l.dtype, rows * T * D) as FloatArray;
      for (let r = 0; r < rows; r++) {
        for (let t = 0; t < T; t++) out.set(buf.subarray((r * this.cap + slots[t]) * D, (r * this.cap + slots[t] + 1) * D), (r * T + t) * D);
      }
      return new Tensor(out, [l.N, l.heads, T, D], l.dtype);
    };
    return [copy(this.keys!, l.E), copy(this.values!, l.Ev)];
  }

  /** Positions [from, to) as contiguous tensors [N, Hkv, to - from, E] and [.., Ev]. */
  protected read(from: number, to: number): [Tensor, Tensor] {
    const l = this.layout!;
    const T = to - from;
    const rows = l.N * l.heads;
    const copy = (buf: FloatArray, D: number): Tensor => {
      const out = allocate(l.dtype, rows * T * D) as FloatArray;
      for (let r = 0; r < rows; r++) out.set(buf.subarray((r * this.cap + from) * D, (r * this.cap + to) * D), r * T * D);
      return new Tensor(out, [l.N, l.heads, T, D], l.dtype);
    };
    return [copy(this.keys!, l.E), copy(this.values!, l.Ev)];
  }

  /** Write the new tokens' keys/values at slots len, len + 1, .. (a windowed layer picks other slots). */
  protected write(k: Tensor, v: Tensor): void {
    const l = this.layout!;
    const T = k.shape[2];
    const rows = l.N * l.heads;
    for (let r = 0; r < rows; r++) {
      this.keys!.set(k.values.subarray(r * T * l.E, (r + 1) * T * l.E), (r * this.cap + this.len) * l.E); // [N, Hkv, T, E] row r
      this.values!.set(v.values.subarray(r * T * l.Ev, (r + 1) * T * l.Ev), (r * this.cap + this.len) * l.Ev);
    }
    this.len += T;
  }

  /**
   * Append the new tokens' keys [N, Hkv, T, E] and values [N, Hkv, T, Ev]; returns the keys and
   * values of every cached position, [N, Hkv, length, E] and [N, Hkv, length, Ev].
   */
  append(keys: Tensor, values: Tensor): [Tensor, Tensor] {
    const fn = `KVCacheLayer.append`;
    const past = this.len;
    const needGrad = isGradEnabled() && (keys.requiresGrad || values.requiresGrad);
    const before = needGrad && past > 0 ? this.read(0, past) : null;
    this.store(fn, keys, values);
    if (needGrad) {
      if (before === null) return [keys, values];
      return [concat([before[0], keys], 2), concat([before[1], values], 2)]; // [N, Hkv, past + T, E]
    }
    return this.read(0, this.len);
  }

  /**
   * The attention module's read for T new tokens (attentionCore.ts): append their keys/values and
   * return the keys [N, Hkv, S, E] and values [N, Hkv, S, Ev] the new queries attend over, with the
   * mask that says which of them each query may see and, where the columns skip positions, each
   * column's position (VisibleKeys). Here: every cached position in order, no mask of its own (as append).
   */
  appendVisible(keys: Tensor, values: Tensor, _masks: CallMasks): VisibleKeys {
    return [...this.append(keys, values), null, null];
  }

  /**
   * Append the new tokens' keys [N, Hkv, T, E] and values [N, Hkv, T, Ev] without reading anything
   * back (read them in place with storage()). The stored values carry no gradient.
   */
  push(keys: Tensor, values: Tensor): void {
    this.store("KVCacheLayer.push", keys, values);
  }

  protected store(fn: string, keys: Tensor, values: Tensor): void {
    if (this.kind === "cross" && this.filled) {
      throw new ArgumentError(`${fn}: ${this.name} is a cross-attention (static) layer that is already filled; read it with keysValues()`);
    }
    const l = this.check(fn, keys, values);
    this.layout = l;
    this.reserve(l, this.len + keys.shape[2]);
    this.write(keys, values);
  }

  /** The storage itself, for stride-aware readers (see KVStorage); null when empty. */
  storage(): KVStorage | null {
    const l = this.layout;
    if (l === null || this.len === 0) return null;
    return { keys: this.keys!, values: this.values!, ...l, length: this.len, capacity: this.cap };
  }

  /** Every cached key and value, [N, Hkv, length, E] and [N, Hkv, length, Ev] (null when empty). */
  keysValues(): [Tensor, Tensor] | null {
    return this.len === 0 ? null : this.read(0, this.len);
  }
}
