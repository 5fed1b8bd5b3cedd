/**
 * The KV cache of a model: one layer cache per attention layer (kvlayer.ts: the plain, growing
 * one), streaming layers for { window, sinkTokens } (kvwindow.ts), and the paged cache beside it
 * (kvpaged.ts). Also the position helpers the modules use: where the next token sits, one offset per
 * batch row when sequences differ in length.
 */
import { type FloatDType } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { checkOptions, describeValue, optionKeys } from "../tensor/validate.js";
import { concat, slice } from "../ops/shape.js";
import { BYTES, KVCacheLayer, type KVCacheKind, type PositionOffset, isPacked } from "./kvlayer.js";
import { type StreamingWindow, WindowKVCacheLayer } from "./kvwindow.js";

export { KVCacheLayer, type KVCacheKind, type KVStorage, type CallMasks, type PackedPositions, type PositionOffset, isPacked } from "./kvlayer.js";
export { WindowKVCacheLayer, type StreamingWindow } from "./kvwindow.js";

export interface KVCacheOptions {
  /** positions to allocate on the first append (default: what the first append needs, at least 16) */
  initialCapacity?: number;
  /** streaming: keep only the last `window` positions (besides the sinks); memory stops growing at sinkTokens + window */
  window?: number;
  /** streaming: also keep the first sinkTokens positions forever (StreamingLLM's attention sinks; default 0, needs window) */
  sinkTokens?: number;
}
export const KV_CACHE_OPTION_KEYS = optionKeys<KVCacheOptions>({ initialCapacity: true, window: true, sinkTokens: true });

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
    const w = this.streaming;
    if (kind === "self" && w !== null) return new WindowKVCacheLayer(name, w, Math.min(this.initialCapacity, w.sinkTokens + w.window));
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
    if (isPacked(p)) throw new ArgumentError(`KVCache.length: the selection is packed documents (selectPacked), each from position 0; read positionOffset()`);
    if (p.every((x) => x === p[0])) return p[0] ?? 0;
    throw new ArgumentError(`KVCache.length: the sequences have different lengths (${p.join(", ")}); read positionOffset()`);
  }

  /** The next token's position: a number, or one per selected sequence (PagedKVCache), or packed documents (PagedKVCache.selectPacked). */
  positionOffset(): PositionOffset {
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
export function checkStreaming(fn: string, opts: KVCacheOptions): StreamingWindow | null {
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
 * the same), else one call per batch row (a paged cache's sequences differ in length), or for packed
 * documents (x [1, .., T, D], T = the documents' tokens on the second-to-last axis, as every caller's
 * [N, T, C] and [N, H, T, hd] have it) one call per document's slice of T, each at position 0.
 */
export function atPositions(x: Tensor, offset: PositionOffset, f: (x: Tensor, offset: number) => Tensor): Tensor {
  if (typeof offset === "number") return f(x, offset);
  if (isPacked(offset)) {
    const axis = x.ndim - 2;
    const total = offset.packed.reduce((a, b) => a + b, 0);
    if (x.shape[0] !== 1 || x.shape[axis] !== total) {
      throw new ShapeError(`atPositions: packed documents of ${offset.packed.join(" + ")} tokens need x [1, .., ${total}, D], got ${fmtShape(x.shape)}`);
    }
    if (offset.packed.length === 1) return f(x, 0);
    let from = 0;
    const parts = offset.packed.map((len) => f(slice(x, axis, from, (from += len)), 0)); // [1, .., len, D] per document
    return concat(parts, axis); // -> [1, .., T, D]
  }
  if (offset.length !== x.shape[0]) {
    throw new ShapeError(`atPositions: ${offset.length} positions (one per selected sequence of a paged cache) for ${x.shape[0]} batch rows (x ${fmtShape(x.shape)}); select() one sequence per row`);
  }
  if (offset.every((o) => o === offset[0])) return f(x, offset[0]);
  return concat(offset.map((o, n) => f(slice(x, 0, n, n + 1), o)), 0); // [1, ..] per row -> [N, ..]
}

/**
 * The position of every new token of a call of T tokens per row, [N][T] (one row, [1][T], when the
 * offset is a number): offset .. offset + T - 1 per row, or each packed document's 0 .. length - 1.
 */
export function tokenPositions(offset: PositionOffset, T: number): number[][] {
  const from = (o: number, n: number): number[] => Array.from({ length: n }, (_, i) => o + i);
  if (typeof offset === "number") return [from(offset, T)];
  if (isPacked(offset)) return [offset.packed.flatMap((len) => from(0, len))];
  return offset.map((o) => from(o, T));
}

/** One past the furthest position a call of T new tokens per row reaches (packed: the longest document). */
export function positionsEnd(offset: PositionOffset, T: number): number {
  if (typeof offset === "number") return offset + T;
  if (isPacked(offset)) return Math.max(0, ...offset.packed);
  return Math.max(0, ...offset) + T;
}

/**
 * The next token's positions for a model forward of tokens [N, T] over `cache`, checked against what the
 * model has positions for: maxSeqLen, except that a windowed cache may stream past it when the
 * positions are computed (rotary, sinusoidal), never with learned ones (no embedding exists there).
 * The one check of a forward's positions (GPT.run, PretrainedLM.run); model.limit names maxSeqLen in
 * the error (default "maxSeqLen <n>") and model.learnedHint says why a streaming cache stops there.
 */
export function cachePositions(
  fn: string, cache: KVCache | null, [N, T]: readonly number[],
  model: { maxSeqLen: number; learnedPositions: boolean; limit?: string; learnedHint?: string },
): PositionOffset {
  const offset = cache === null ? 0 : cache.positionOffset();
  if (isPacked(offset)) {
    const total = offset.packed.reduce((a, b) => a + b, 0);
    if (N !== 1 || T !== total) throw new ShapeError(`${fn}: the cache has packed documents of ${offset.packed.join(" + ")} tokens (selectPacked) but the call is [${N}, ${T}]; give them as one row of ${total} tokens`);
  } else if (typeof offset !== "number" && offset.length !== N) {
    throw new ShapeError(`${fn}: the cache has ${offset.length} selected sequences but the call has ${N} batch rows; select() one sequence per row`);
  }
  const end = positionsEnd(offset, T);
  if (end <= model.maxSeqLen) return offset;
  if (cache?.streaming && !model.learnedPositions) return offset;
  const streamHint = cache?.streaming
    ? model.learnedHint ?? `; learned positions end there, so streaming past maxSeqLen needs a model with rotary (positional: "rope") or sinusoidal positions`
    : "";
  const limit = model.limit ?? `maxSeqLen ${model.maxSeqLen}`;
  if (isPacked(offset)) throw new ShapeError(`${fn}: a packed document of ${end} tokens (documents of ${offset.packed.join(" + ")} tokens, each from position 0) goes past ${limit}${streamHint}`);
  const first = end - T;
  throw new ShapeError(`${fn}: positions ${first}..${first + T - 1} go past ${limit} (${first} cached + ${T} new tokens)${streamHint}`);
}

/** Bytes per token of a decoder's KV cache: 2 (k and v) × layers × Hkv × headDim × batch × element size. */
export function kvCacheBytesPerToken(p: { numLayers: number; numKvHeads: number; headDim: number; batch?: number; dtype?: FloatDType }): number {
  return 2 * p.numLayers * p.numKvHeads * p.headDim * (p.batch ?? 1) * BYTES[p.dtype ?? "float32"];
}
