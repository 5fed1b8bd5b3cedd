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
 * with ops); generation runs under noGrad().
 */
import { isGradEnabled } from "../autograd/tape.js";
import { type FloatArray, type FloatDType, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { concat } from "../ops/shape.js";
import { assertTensor } from "../ops/util.js";

export type KVCacheKind = "self" | "cross";

export interface KVCacheOptions {
  /** positions to allocate on the first append (default: what the first append needs, at least 16) */
  initialCapacity?: number;
}
export const KV_CACHE_OPTION_KEYS = optionKeys<KVCacheOptions>({ initialCapacity: true });

interface Layout {
  N: number;
  heads: number;
  E: number;
  Ev: number;
  dtype: FloatDType;
}

const BYTES: Record<FloatDType, number> = { float32: 4, float64: 8 };

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
  readonly length: number;
  readonly capacity: number;
}

export class KVCacheLayer {
  private layout: Layout | null = null;
  private keys: FloatArray | null = null;
  private values: FloatArray | null = null;
  private cap = 0;
  private len = 0;

  constructor(readonly kind: KVCacheKind, readonly name: string, private readonly initialCapacity = 16) {}

  /** Positions cached. */
  get length(): number {
    return this.len;
  }

  /** Positions the storage holds before it must grow. */
  get capacity(): number {
    return this.cap;
  }

  /** A cross layer is filled by its first call and reused afterwards. */
  get filled(): boolean {
    return this.len > 0;
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

  clear(): void {
    [this.layout, this.keys, this.values, this.cap, this.len] = [null, null, null, 0, 0];
  }

  private check(fn: string, k: Tensor, v: Tensor): Layout {
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

  /** Make room for `need` positions: allocate, or double the capacity until it fits. */
  private reserve(l: Layout, need: number): void {
    if (need <= this.cap) return;
    let cap = Math.max(this.cap, this.initialCapacity, 1);
    while (cap < need) cap *= 2;
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

  /** Positions [from, to) as contiguous tensors [N, Hkv, to - from, E] and [.., Ev]. */
  private read(from: number, to: number): [Tensor, Tensor] {
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

  private write(k: Tensor, v: Tensor): void {
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
   * Append the new tokens' keys [N, Hkv, T, E] and values [N, Hkv, T, Ev] without reading anything
   * back (read them in place with storage()). The stored values carry no gradient.
   */
  push(keys: Tensor, values: Tensor): void {
    this.store("KVCacheLayer.push", keys, values);
  }

  private store(fn: string, keys: Tensor, values: Tensor): void {
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

/**
 * One model's cache: a self-attention layer per decoder block (layer(i)) and, for encoder-decoder
 * models, a static cross-attention layer per block (cross(i)). Layers are created on first use.
 */
export class KVCache {
  private readonly selfLayers: KVCacheLayer[] = [];
  private readonly crossLayers: KVCacheLayer[] = [];
  private readonly initialCapacity: number;

  constructor(opts: KVCacheOptions = {}) {
    checkOptions("KVCache", "options", opts, KV_CACHE_OPTION_KEYS);
    const cap = opts.initialCapacity ?? 16;
    if (!Number.isInteger(cap) || cap <= 0) throw new ArgumentError(`KVCache: initialCapacity must be a positive integer, got ${String(cap)}`);
    this.initialCapacity = cap;
  }

  private get_(list: KVCacheLayer[], kind: KVCacheKind, i: number): KVCacheLayer {
    if (!Number.isInteger(i) || i < 0) throw new ArgumentError(`KVCache.${kind === "self" ? "layer" : "cross"}: index must be a non-negative integer, got ${i}`);
    while (list.length <= i) list.push(new KVCacheLayer(kind, `${kind === "self" ? "layer" : "cross"} ${list.length}`, this.initialCapacity));
    return list[i];
  }

  /** Self-attention cache of layer i (grows with every step). */
  layer(i: number): KVCacheLayer {
    return this.get_(this.selfLayers, "self", i);
  }

  /** Cross-attention cache of layer i (filled once from the encoder output). */
  cross(i: number): KVCacheLayer {
    return this.get_(this.crossLayers, "cross", i);
  }

  /** Tokens cached so far (the self-attention length of layer 0): the position of the next token. */
  get length(): number {
    return this.selfLayers.length === 0 ? 0 : this.selfLayers[0].length;
  }

  get numLayers(): number {
    return this.selfLayers.length;
  }

  /** Bytes the self-attention caches add per token, summed over layers. */
  bytesPerToken(): number {
    return this.selfLayers.reduce((s, l) => s + l.bytesPerToken(), 0);
  }

  /** Bytes of keys and values in use, self and cross layers. */
  bytes(): number {
    return [...this.selfLayers, ...this.crossLayers].reduce((s, l) => s + l.bytes(), 0);
  }

  clear(): void {
    for (const l of [...this.selfLayers, ...this.crossLayers]) l.clear();
  }
}

/** Bytes per token of a decoder's KV cache: 2 (k and v) × layers × Hkv × headDim × batch × element size. */
export function kvCacheBytesPerToken(p: { numLayers: number; numKvHeads: number; headDim: number; batch?: number; dtype?: FloatDType }): number {
  return 2 * p.numLayers * p.numKvHeads * p.headDim * (p.batch ?? 1) * BYTES[p.dtype ?? "float32"];
}
