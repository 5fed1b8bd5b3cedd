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
 *
 * Streaming (StreamingLLM, Xiao et al. 2023): new KVCache({ window, sinkTokens }) keeps, per self
 * layer, the first sinkTokens positions (the "attention sinks") and the last `window` positions, in a
 * ring buffer of sinkTokens + window slots, so memory stops growing after that many tokens however
 * long the stream. Query position t then sees the keys
 *
 *   visible(t) = {0 .. sinkTokens - 1}  ∪  {t - window + 1 .. t}          (and never s > t)
 *
 * which is exactly what a full forward over all tokens with that mask computes (test/kvcache-stream).
 * Keys are cached after RoPE, at their original positions: a model can stream past its maxSeqLen
 * only with positions it can compute (rotary or sinusoidal); learned positions end at maxSeqLen
 * (GPT refuses with a clear error). (StreamingLLM itself re-numbers positions inside the cache; this
 * cache keeps the original ones, so its logits equal the masked full recomputation.)
 * A windowed or paged layer (kvpaged.ts) computes its own mask, so the attention module takes no
 * attnMask / keyPaddingMask with it and must be causal.
 */
import { isGradEnabled } from "../autograd/tape.js";
import { type FloatArray, type FloatDType, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, describeValue, optionKeys } from "../tensor/validate.js";
import { concat, slice } from "../ops/shape.js";
import { assertTensor } from "../ops/util.js";

export type KVCacheKind = "self" | "cross";

export interface KVCacheOptions {
  /** positions to allocate on the first append (default: what the first append needs, at least 16) */
  initialCapacity?: number;
  /** streaming: keep only the last `window` positions (besides the sinks); memory stops growing at sinkTokens + window */
  window?: number;
  /** streaming: also keep the first sinkTokens positions forever (StreamingLLM's attention sinks; default 0, needs window) */
  sinkTokens?: number;
}
export const KV_CACHE_OPTION_KEYS = optionKeys<KVCacheOptions>({ initialCapacity: true, window: true, sinkTokens: true });

/** What a cache layer needs to know of the attention call's masks (moduleCommon's SdpaMasks). */
export interface CallMasks {
  readonly attnMask: unknown;
  readonly isCausal: boolean;
}

/** Streaming settings of a windowed cache (see the file comment). */
export interface StreamingWindow {
  readonly window: number;
  readonly sinkTokens: number;
}

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
  /** positions held (the longest row's, for a paged layout) */
  readonly length: number;
  readonly capacity: number;
  /**
   * The paged layout (kvpaged.ts), or absent: keys are then [numBlocks, Hkv, blockSize, E] (values
   * likewise), and batch row n's position s lives in block tables[n][floor(s / blockSize)] at slot
   * s mod blockSize; row n holds lengths[n] positions.
   */
  readonly paged?: { readonly blockSize: number; readonly tables: readonly Int32Array[]; readonly lengths: Int32Array };
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

  /** Positions held (the key length S a new query attends over, before its own keys). */
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

  /**
   * The position of the next token (RoPE and position embeddings continue from it): a number, or one
   * per batch row for a paged layer whose sequences differ in length. Equals length here; a windowed
   * layer holds fewer positions than it has seen.
   */
  positionOffset(): number | readonly number[] {
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
   * mask that says which of them each query may see ([N or 1, 1, T, S] bool, true = may attend;
   * causality included), or null when the call's own masks (causal, bottom-right) already say it.
   * Here: every cached position, no mask of its own (as append).
   */
  appendVisible(keys: Tensor, values: Tensor, _masks: CallMasks): [Tensor, Tensor, Tensor | null] {
    return [...this.append(keys, values), null];
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

/** A [1, 1, L, S] bool mask (true = may attend) from a predicate over (query l, key column s). */
function boolMask(L: number, S: number, allowed: (l: number, s: number) => boolean): Tensor {
  const m = new Uint8Array(L * S);
  for (let l = 0; l < L; l++) for (let s = 0; s < S; s++) m[l * S + s] = allowed(l, s) ? 1 : 0;
  return new Tensor(m, [1, 1, L, S], "bool");
}

/**
 * A streaming self-attention layer (see the file comment): slots 0 .. sinkTokens - 1 hold the sink
 * positions, and position p >= sinkTokens lives in slot sinkTokens + (p - sinkTokens) mod window, so
 * the storage never holds more than sinkTokens + window positions. After a push of position t the
 * held positions are exactly visible(t), so the decode step (decode.ts) attends over every filled
 * slot: softmax does not care about the order of its keys, and RoPE was applied before caching.
 */
export class WindowKVCacheLayer extends KVCacheLayer {
  /** positions seen (the next token's position) */
  private seen = 0;

  constructor(name: string, readonly streaming: StreamingWindow, initialCapacity = 16) {
    super("self", name, initialCapacity);
    this.maxCapacity = streaming.sinkTokens + streaming.window;
  }

  override positionOffset(): number {
    return this.seen;
  }

  override clear(): void {
    super.clear();
    this.seen = 0;
  }

  /** The slot that position p is stored in. */
  private slotOf(p: number): number {
    const { window, sinkTokens } = this.streaming;
    return p < sinkTokens ? p : sinkTokens + ((p - sinkTokens) % window);
  }

  /** The positions held, in increasing order: the sinks, then the window. */
  private heldPositions(): number[] {
    const { window, sinkTokens } = this.streaming;
    const out: number[] = [];
    for (let p = 0; p < Math.min(sinkTokens, this.seen); p++) out.push(p);
    for (let p = Math.max(sinkTokens, this.seen - window); p < this.seen; p++) out.push(p);
    return out;
  }

  protected override write(k: Tensor, v: Tensor): void {
    const l = this.layout!;
    const T = k.shape[2];
    const rows = l.N * l.heads;
    const first = Math.max(0, T - this.maxCapacity); // earlier new positions would be overwritten in this same call, except sinks
    for (let t = 0; t < T; t++) {
      const p = this.seen + t;
      if (t < first && p >= this.streaming.sinkTokens) continue;
      const slot = this.slotOf(p);
      for (let r = 0; r < rows; r++) {
        this.keys!.set(k.values.subarray((r * T + t) * l.E, (r * T + t + 1) * l.E), (r * this.cap + slot) * l.E); // [N, Hkv, T, E] row r, token t
        this.values!.set(v.values.subarray((r * T + t) * l.Ev, (r * T + t + 1) * l.Ev), (r * this.cap + slot) * l.Ev);
      }
    }
    this.seen += T;
    this.len = Math.min(this.seen, this.maxCapacity);
  }

  protected override read(from: number, to: number): [Tensor, Tensor] {
    if (from !== 0 || to !== this.len) throw new Error("WindowKVCacheLayer.read: internal error, only whole reads");
    return this.readSlots(this.heldPositions().map((p) => this.slotOf(p)));
  }

  override append(keys: Tensor, values: Tensor): [Tensor, Tensor] {
    const [k, v] = this.appendVisible(keys, values, { attnMask: null, isCausal: true });
    return [k, v];
  }

  /**
   * The keys held before this call (in position order) and the new ones, with the window's mask:
   * query l (position p0 + l) sees key position s iff s <= p0 + l and (s < sinkTokens or
   * s > p0 + l - window). No mask while nothing has left the window yet (plain causal).
   */
  override appendVisible(keys: Tensor, values: Tensor, masks: CallMasks): [Tensor, Tensor, Tensor | null] {
    const fn = "WindowKVCacheLayer.append";
    if (masks.attnMask !== null && masks.attnMask !== undefined) {
      throw new ArgumentError(`${fn}: ${this.name} is a windowed cache, which computes its own mask; attnMask and keyPaddingMask cannot be combined with it`);
    }
    if (!masks.isCausal) throw new ArgumentError(`${fn}: ${this.name} is a windowed cache, for causal self-attention; pass isCausal: true`);
    assertTensor(fn, "keys", keys);
    const { window, sinkTokens } = this.streaming;
    const p0 = this.seen;
    const T = keys.shape[2];
    const held = this.heldPositions();
    const before = held.length > 0 ? this.readSlots(held.map((p) => this.slotOf(p))) : null;
    this.store(fn, keys, values);
    const positions = [...held, ...Array.from({ length: T }, (_, t) => p0 + t)];
    const mask = p0 + T - 1 - window < sinkTokens ? null : boolMask(T, positions.length, (l, i) => {
      const s = positions[i];
      return s <= p0 + l && (s < sinkTokens || s > p0 + l - window);
    }); // [1, 1, T, held + T]
    if (before === null) return [keys, values, mask];
    return [concat([before[0], keys], 2), concat([before[1], values], 2), mask]; // [N, Hkv, held + T, E]
  }
}

/**
 * One model's cache: a self-attention layer per decoder block (layer(i)) and, for encoder-decoder
 * models, a static cross-attention layer per block (cross(i)). Layers are created on first use.
 * With { window, sinkTokens } the self layers stream (WindowKVCacheLayer); cross layers never do.
 */
export class KVCache {
  private readonly selfLayers: KVCacheLayer[] = [];
  private readonly crossLayers: KVCacheLayer[] = [];
  protected readonly initialCapacity: number;
  /** the streaming window, or null: every position is kept */
  readonly streaming: StreamingWindow | null;

  constructor(opts: KVCacheOptions = {}) {
    const fn = "KVCache";
    checkOptions(fn, "options", opts, KV_CACHE_OPTION_KEYS);
    const cap = opts.initialCapacity ?? 16;
    if (!Number.isInteger(cap) || cap <= 0) throw new ArgumentError(`KVCache: initialCapacity must be a positive integer, got ${String(cap)}`);
    this.initialCapacity = cap;
    this.streaming = checkStreaming(fn, opts);
  }

  /** The layer object for self/cross layer `index` (subclasses make other kinds). */
  protected makeLayer(kind: KVCacheKind, name: string): KVCacheLayer {
    if (kind === "self" && this.streaming !== null) return new WindowKVCacheLayer(name, this.streaming, Math.min(this.initialCapacity, this.streaming.sinkTokens + this.streaming.window));
    return new KVCacheLayer(kind, name, this.initialCapacity);
  }

  private get_(list: KVCacheLayer[], kind: KVCacheKind, i: number): KVCacheLayer {
    if (!Number.isInteger(i) || i < 0) throw new ArgumentError(`KVCache.${kind === "self" ? "layer" : "cross"}: index must be a non-negative integer, got ${i}`);
    while (list.length <= i) list.push(this.makeLayer(kind, `${kind === "self" ? "layer" : "cross"} ${list.length}`));
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

  /**
   * The position of the next token (tokens seen so far by layer 0). A windowed cache holds fewer;
   * a paged cache whose sequences differ in length has one per sequence (positionOffset()).
   */
  get length(): number {
    const p = this.positionOffset();
    if (typeof p === "number") return p;
    if (p.every((x) => x === p[0])) return p[0] ?? 0;
    throw new ArgumentError(`KVCache.length: the sequences have different lengths (${p.join(", ")}); read positionOffset()`);
  }

  /** The next token's position: a number, or one per selected sequence (PagedKVCache). */
  positionOffset(): number | readonly number[] {
    return this.selfLayers.length === 0 ? 0 : this.selfLayers[0].positionOffset();
  }

  get numLayers(): number {
    return this.selfLayers.length;
  }

  /** Bytes the self-attention caches add per token, summed over layers. */
  bytesPerToken(): number {
    return this.selfLayers.reduce((s, l) => s + l.bytesPerToken(), 0);
  }

  /** Bytes of keys and values in use, self and cross layers (flat once a windowed cache is full). */
  bytes(): number {
    return [...this.selfLayers, ...this.crossLayers].reduce((s, l) => s + l.bytes(), 0);
  }

  /** Bytes allocated for keys and values, self and cross layers (what the process holds). */
  allocatedBytes(): number {
    return [...this.selfLayers, ...this.crossLayers].reduce((s, l) => s + l.allocatedBytes(), 0);
  }

  clear(): void {
    for (const l of [...this.selfLayers, ...this.crossLayers]) l.clear();
  }
}

/** { window, sinkTokens } checked: window a positive integer, sinkTokens a non-negative integer (only with window). */
function checkStreaming(fn: string, opts: KVCacheOptions): StreamingWindow | null {
  const { window, sinkTokens } = opts;
  if (window === undefined) {
    if (sinkTokens !== undefined) throw new ArgumentError(`${fn}: sinkTokens needs a window (e.g. { window: 256, sinkTokens: 4 }); without a window every position is kept`);
    return null;
  }
  if (typeof window !== "number" || !Number.isInteger(window) || window < 1) {
    throw new ArgumentError(`${fn}: window must be a positive integer (positions kept besides the sinks), got ${describeValue(window)}`);
  }
  const sinks = sinkTokens ?? 0;
  if (typeof sinks !== "number" || !Number.isInteger(sinks) || sinks < 0) {
    throw new ArgumentError(`${fn}: sinkTokens must be a non-negative integer (the first positions kept forever), got ${describeValue(sinkTokens)}`);
  }
  return Object.freeze({ window, sinkTokens: sinks });
}

/**
 * Apply f to x [N, ..] at a position offset: one call when the offset is a number (or every row has
 * the same), else one call per batch row (a paged cache's sequences differ in length).
 */
export function atPositions(x: Tensor, offset: number | readonly number[], f: (x: Tensor, offset: number) => Tensor): Tensor {
  if (typeof offset === "number") return f(x, offset);
  if (offset.length !== x.shape[0]) {
    throw new ShapeError(`atPositions: ${offset.length} positions (one per selected sequence of a paged cache) for ${x.shape[0]} batch rows (x ${fmtShape(x.shape)}); select() one sequence per row`);
  }
  if (offset.every((o) => o === offset[0])) return f(x, offset[0]);
  return concat(offset.map((o, n) => f(slice(x, 0, n, n + 1), o)), 0); // [1, ..] per row -> [N, ..]
}

/**
 * The next token's positions for a model forward of tokens [N, T] over `cache`, checked against what the
 * model has positions for: maxSeqLen, except that a windowed cache may stream past it when the
 * positions are computed (rotary, sinusoidal), never with learned ones (no embedding exists there).
 */
export function cachePositions(
  fn: string, cache: KVCache | null, [N, T]: readonly number[], model: { maxSeqLen: number; learnedPositions: boolean },
): number | readonly number[] {
  const offset = cache === null ? 0 : cache.positionOffset();
  if (typeof offset !== "number" && offset.length !== N) {
    throw new ShapeError(`${fn}: the cache has ${offset.length} selected sequences but the call has ${N} batch rows; select() one sequence per row`);
  }
  const first = typeof offset === "number" ? offset : Math.max(0, ...offset);
  if (first + T <= model.maxSeqLen) return offset;
  if (cache?.streaming && !model.learnedPositions) return offset;
  const streamHint = cache?.streaming
    ? `; learned positions end there, so streaming past maxSeqLen needs a model with rotary (positional: "rope") or sinusoidal positions`
    : "";
  throw new ShapeError(`${fn}: positions ${first}..${first + T - 1} go past maxSeqLen ${model.maxSeqLen} (${first} cached + ${T} new tokens)${streamHint}`);
}

/** Bytes per token of a decoder's KV cache: 2 (k and v) × layers × Hkv × headDim × batch × element size. */
export function kvCacheBytesPerToken(p: { numLayers: number; numKvHeads: number; headDim: number; batch?: number; dtype?: FloatDType }): number {
  return 2 * p.numLayers * p.numKvHeads * p.headDim * (p.batch ?? 1) * BYTES[p.dtype ?? "float32"];
}
