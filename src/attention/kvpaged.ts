/**
 * The paged KV cache (vLLM's PagedAttention layout): keys and values live in fixed-size blocks of
 * blockSize positions taken from one pool, and each sequence has a block table, the list of its
 * blocks in order. A sequence of length T holds ceil(T / blockSize) blocks, so sequences of different
 * lengths share one cache without padding, and a finished sequence's blocks go back to the pool.
 *
 *   pool (one per layer)    keys [numBlocks, Hkv, blockSize, E], values [numBlocks, Hkv, blockSize, Ev]
 *   block table (shared)    tables[seq] = [b0, b1, ..]: position s of seq is in block tables[seq][s / blockSize],
 *                           slot s mod blockSize (every layer uses the same table)
 *
 * A forward over the cache runs on the selected sequences (select([ids]); by default the first
 * call's batch rows become sequences 0..N-1): batch row n of the call is sequence ids[n]. Each row
 * continues from its own position (positionOffset() gives one per row), so generate() can prefill
 * the prompts (packed, below) and then decode every unfinished sequence in one batch of one-token
 * rows. The decode step (decode.ts) reads the blocks in place; a multi-token call gathers each row's
 * keys and pads the rows in front to the longest, with a mask that hides the padding and the future.
 *
 * A packed call (selectPacked(ids, lengths)) prefills several empty sequences in one forward of one
 * batch row: their tokens back to back, lengths[k] of sequence ids[k], each from position 0
 * (positionOffset() gives PackedPositions, which atPositions applies per document). The call's keys
 * are returned as they are, with a block-diagonal causal mask: a query sees only earlier positions of
 * its own document. So prompts of different lengths prefill together without padding.
 *
 *   packed lengths 3, 2 (the mask [5, 5], x = may attend)     x . . . .
 *                                                             x x . . .
 *                                                             x x x . .
 *                                                             . . . x .
 *                                                             . . . x x
 *
 * Streaming ({ window, sinkTokens }, as KVCache's, kvwindow.ts): each sequence keeps its first
 * sinkTokens positions and its last `window`, in a ring of sinkTokens + window slots laid out in its
 * blocks (position p >= sinkTokens in ring slot sinkTokens + (p - sinkTokens) mod window), so a
 * sequence never holds more than ceil((sinkTokens + window) / blockSize) blocks however long it runs,
 * and sequences of different lengths still stream together. The decode step attends over every filled
 * slot (the held positions: order does not matter to softmax, and RoPE was applied before caching);
 * a sliding window and ALiBi read each slot's position (ringPosition), as they do the streaming KVCache's.
 *
 *   window 3, sinkTokens 1, blockSize 2, a sequence at position 5:  ring slots [0 | 4 5 3] in 2 blocks
 *   (slot 0 holds the sink, position 0; the window's positions 3, 4, 5 sit at slots 3, 1, 2)
 */
import { type FloatArray, type FloatDType, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, checkPositiveInt, describeValue, optionKeys } from "../tensor/validate.js";
import { concat, slice } from "../ops/shape.js";
import { assertTensor } from "../ops/util.js";
import { BYTES, type CallMasks, KVCacheLayer, type KVCacheKind, type KVStorage, type PackedPositions, type PositionOffset, type VisibleKeys } from "./kvlayer.js";
import { KVCache, type KVCacheOptions, checkStreaming } from "./kvcache.js";
import { type StreamingWindow, ringHeld, ringSlot } from "./kvwindow.js";

export interface PagedKVCacheOptions {
  /** positions per block (default 16, as vLLM) */
  blockSize?: number;
  /** streaming: each sequence keeps only its last `window` positions (besides its sinks), as KVCache's window */
  window?: number;
  /** streaming: each sequence also keeps its first sinkTokens positions (default 0, needs window) */
  sinkTokens?: number;
}
export const PAGED_KV_CACHE_OPTION_KEYS = optionKeys<PagedKVCacheOptions>({ blockSize: true, window: true, sinkTokens: true });

/** The options checked (naming PagedKVCache), and KVCache's share of them: the streaming window. */
function streamingOptions(opts: PagedKVCacheOptions): KVCacheOptions {
  const fn = "PagedKVCache";
  checkOptions(fn, "options", opts, PAGED_KV_CACHE_OPTION_KEYS);
  const w = checkStreaming(fn, opts);
  return w === null ? {} : { window: w.window, sinkTokens: w.sinkTokens };
}

/** A KVCache whose self layers are paged: per-sequence block tables over a shared pool of blocks. */
export class PagedKVCache extends KVCache {
  readonly blockSize: number;
  /** block ids of each sequence, in position order */
  private readonly tables: number[][] = [];
  /** block ids given back by free() */
  private readonly freeList: number[] = [];
  /** block ids handed out so far (the pools hold at least this many blocks) */
  private issued = 0;
  /** the sequences the next forward's batch rows are; null until the first call or select() */
  private active: number[] | null = null;
  /** selectPacked's token counts (one batch row holds the active sequences back to back), or null */
  private packing: number[] | null = null;

  constructor(opts: PagedKVCacheOptions = {}) {
    super(streamingOptions(opts));
    this.blockSize = checkPositiveInt("PagedKVCache", "blockSize", opts.blockSize ?? 16);
  }

  protected override makeLayer(kind: KVCacheKind, name: string): KVCacheLayer {
    return kind === "self" ? new PagedKVCacheLayer(name, this) : super.makeLayer(kind, name);
  }

  /** Make the next forward's batch rows the sequences `ids` (row n is sequence ids[n]); new ids start empty. */
  select(ids: readonly number[]): void {
    const fn = "PagedKVCache.select";
    if (!Array.isArray(ids) || ids.length === 0) throw new ArgumentError(`${fn}: ids must be a non-empty array of sequence ids, got ${describeValue(ids)}`);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0) throw new ArgumentError(`${fn}: ids[${i}] must be a non-negative integer sequence id, got ${describeValue(id)}`);
      if (ids.indexOf(id) !== i) throw new ArgumentError(`${fn}: sequence ${id} is selected twice (ids[${ids.indexOf(id)}] and ids[${i}])`);
    });
    while (this.tables.length <= Math.max(...ids)) this.tables.push([]);
    this.active = [...ids];
    this.packing = null;
  }

  /**
   * Make the next forward one batch row of packed documents: lengths[k] tokens of sequence ids[k],
   * back to back, each sequence empty and starting at position 0 (a packed prefill; see the file
   * comment). The selection stays packed until the next select() or selectPacked().
   */
  selectPacked(ids: readonly number[], lengths: readonly number[]): void {
    const fn = "PagedKVCache.selectPacked";
    if (!Array.isArray(lengths) || lengths.length !== (Array.isArray(ids) ? ids.length : -1)) {
      throw new ArgumentError(`${fn}: lengths must be an array of one token count per sequence id (${Array.isArray(ids) ? ids.length : "?"}), got ${describeValue(lengths)}`);
    }
    lengths.forEach((len, k) => {
      if (!Number.isInteger(len) || len < 1) throw new ArgumentError(`${fn}: lengths[${k}] must be a positive integer (the tokens of sequence ${ids[k]} in the row), got ${describeValue(len)}`);
    });
    ids.forEach((id) => {
      if (this.sequenceLength(id) > 0) throw new ArgumentError(`${fn}: sequence ${id} already holds ${this.sequenceLength(id)} positions; packed documents start empty (free(${id}) first, or continue it with select())`);
    });
    this.select(ids);
    this.packing = [...lengths];
  }

  /** selectPacked's token counts, one per selected sequence, or null when the batch rows are the sequences. */
  get packedLengths(): readonly number[] | null {
    return this.packing;
  }

  /** The packed selection's positions, once the sequences are checked to be still empty (held(id): positions a layer holds). */
  packedPositions(held: (id: number) => number): PackedPositions {
    const ids = this.active!;
    ids.forEach((id) => {
      if (held(id) > 0) throw new ArgumentError(`PagedKVCache: the packed selection's sequence ${id} holds ${held(id)} positions now (after its packed forward); select() the sequences to continue them`);
    });
    return { packed: [...this.packing!] };
  }

  /** The selected sequences (batch row n is sequence selected()[n]); null before the first call or select(). */
  get selection(): readonly number[] | null {
    return this.active;
  }

  /** The selected sequences; a call of N rows with none selected selects 0..N-1. */
  selected(N: number): readonly number[] {
    if (this.active === null) this.select(Array.from({ length: N }, (_, n) => n));
    return this.active!;
  }

  /** Positions seen by sequence id (the next token's position; a streaming cache holds at most sinkTokens + window of them). */
  sequenceLength(id: number): number {
    return this.numLayers === 0 ? 0 : (this.layer(0) as PagedKVCacheLayer).lengthOf(id);
  }

  /** One position per selected sequence (its length), or the packed documents; 0 before anything is selected. */
  override positionOffset(): PositionOffset {
    if (this.active === null) return 0;
    if (this.packing !== null) return this.packedPositions((id) => this.sequenceLength(id));
    return this.active.map((id) => this.sequenceLength(id));
  }

  /** Sequence id's block table: its block ids in position order. */
  blockTable(id: number): readonly number[] {
    return [...(this.tables[id] ?? [])];
  }

  /** Blocks holding positions now (every layer has this many in its pool in use). */
  get blocksInUse(): number {
    return this.issued - this.freeList.length;
  }

  /** Blocks the pools have been grown to. */
  get numBlocks(): number {
    return this.issued;
  }

  /** Give sequence id's blocks back to the pool; the sequence is empty afterwards. */
  free(id: number): void {
    const table = this.tables[id];
    if (table === undefined) return;
    this.freeList.push(...table.reverse());
    this.tables[id] = [];
    for (let i = 0; i < this.numLayers; i++) (this.layer(i) as PagedKVCacheLayer).forget(id);
  }

  /** Sequence id's block table, grown so that it covers `slots` slots (positions; a streaming ring's slots) (taking free blocks first). */
  tableFor(id: number, slots: number): readonly number[] {
    const table = this.tables[id];
    while (table.length * this.blockSize < slots) table.push(this.freeList.length > 0 ? this.freeList.pop()! : this.issued++);
    return table;
  }

  override clear(): void {
    super.clear();
    this.tables.length = 0;
    this.freeList.length = 0;
    this.issued = 0;
    this.active = null;
    this.packing = null;
  }
}

interface PoolLayout {
  heads: number;
  E: number;
  Ev: number;
  dtype: FloatDType;
}

/** One self-attention layer of a PagedKVCache: its pool of blocks, and how many positions each sequence holds. */
export class PagedKVCacheLayer extends KVCacheLayer {
  private pool: PoolLayout | null = null;
  private poolKeys: FloatArray | null = null;
  private poolValues: FloatArray | null = null;
  private poolBlocks = 0;
  /** positions seen per sequence id (all of them held, unless the owner streams) */
  private lens: number[] = [];

  constructor(name: string, private readonly owner: PagedKVCache) {
    super("self", name);
  }

  lengthOf(id: number): number {
    return this.lens[id] ?? 0;
  }

  /** free(id) of the owner: the sequence holds nothing now. */
  forget(id: number): void {
    if (id < this.lens.length) this.lens[id] = 0;
  }

  /** Positions seen by each selected sequence (batch row); empty before anything is selected. */
  private rowLengths(): number[] {
    return (this.owner.selection ?? []).map((id) => this.lengthOf(id));
  }

  /** The streaming window, or null: every position is held. */
  private get ring(): StreamingWindow | null {
    return this.owner.streaming;
  }

  override get reordersKeys(): boolean {
    return this.ring !== null;
  }

  /** Slots a sequence that has seen `seen` positions holds. */
  private heldCount(seen: number): number {
    const w = this.ring;
    return w === null ? seen : Math.min(seen, w.sinkTokens + w.window);
  }

  /** The positions held after `seen` were written, in increasing order: all, or the sinks then the window. */
  private heldPositions(seen: number): number[] {
    const w = this.ring;
    return w === null ? Array.from({ length: seen }, (_, p) => p) : ringHeld(w, seen);
  }

  /** The slot of position p in its sequence's blocks: p, or its ring slot when streaming. */
  private slotIndex(p: number): number {
    const w = this.ring;
    return w === null ? p : ringSlot(w, p);
  }

  /** The most keys a selected sequence holds (the key length S of a call before its new tokens, padded rows included). */
  override get length(): number {
    return Math.max(0, ...this.rowLengths().map((s) => this.heldCount(s)));
  }

  override get capacity(): number {
    return this.poolBlocks * this.owner.blockSize;
  }

  override get filled(): boolean {
    return this.length > 0;
  }

  /** One position per selected sequence (batch row), or the packed documents; 0 before anything is selected. */
  override positionOffset(): PositionOffset {
    if (this.owner.selection === null) return 0;
    if (this.owner.packedLengths !== null) return this.owner.packedPositions((id) => this.lengthOf(id));
    return this.rowLengths();
  }

  /** Bytes of keys and values per position of one sequence. */
  override bytesPerToken(): number {
    const l = this.pool;
    return l === null ? 0 : l.heads * (l.E + l.Ev) * BYTES[l.dtype];
  }

  /** Bytes in the blocks in use (whole blocks: a block is allocated whole). */
  override bytes(): number {
    return this.owner.blocksInUse * this.owner.blockSize * this.bytesPerToken();
  }

  override allocatedBytes(): number {
    return this.poolBlocks * this.owner.blockSize * this.bytesPerToken();
  }

  override clear(): void {
    [this.pool, this.poolKeys, this.poolValues, this.poolBlocks, this.lens] = [null, null, null, 0, []];
  }

  private checkPaged(fn: string, k: Tensor, v: Tensor): PoolLayout {
    assertTensor(fn, "keys", k);
    assertTensor(fn, "values", v);
    if (k.ndim !== 4 || v.ndim !== 4 || v.shape[0] !== k.shape[0] || v.shape[1] !== k.shape[1] || v.shape[2] !== k.shape[2]) {
      throw new ShapeError(`${fn}: keys and values must be [N, Hkv, T, E] and [N, Hkv, T, Ev], got ${fmtShape(k.shape)} and ${fmtShape(v.shape)}`);
    }
    if (k.dtype !== v.dtype || (k.dtype !== "float32" && k.dtype !== "float64")) {
      throw new ArgumentError(`${fn}: keys and values must share a float dtype, got ${k.dtype} and ${v.dtype}`);
    }
    const got: PoolLayout = { heads: k.shape[1], E: k.shape[3], Ev: v.shape[3], dtype: k.dtype };
    const l = this.pool;
    if (l !== null && (l.heads !== got.heads || l.E !== got.E || l.Ev !== got.Ev || l.dtype !== got.dtype)) {
      throw new ShapeError(`${fn}: ${this.name} holds blocks of [Hkv=${l.heads}, E=${l.E}] keys and Ev=${l.Ev} values (${l.dtype}), got keys ${fmtShape(k.shape)} (${k.dtype})`);
    }
    const rows = this.owner.selected(k.shape[0]);
    const packed = this.owner.packedLengths;
    if (packed !== null) {
      const total = packed.reduce((a, b) => a + b, 0);
      if (k.shape[0] !== 1 || k.shape[2] !== total) {
        throw new ShapeError(`${fn}: ${this.name} has packed documents of ${packed.join(" + ")} tokens (sequences ${rows.join(", ")}) but the call's keys are ${fmtShape(k.shape)}; give them as one batch row of ${total} tokens`);
      }
    } else if (rows.length !== k.shape[0]) {
      throw new ShapeError(`${fn}: ${this.name} has ${rows.length} selected sequences (${rows.join(", ")}) but the call has ${k.shape[0]} batch rows; select() one sequence per row`);
    }
    return got;
  }

  /** Grow the pools (doubling) to hold every block the owner has issued. */
  private reservePool(l: PoolLayout): void {
    const need = this.owner.numBlocks;
    if (need <= this.poolBlocks) return;
    let blocks = Math.max(this.poolBlocks, 4);
    while (blocks < need) blocks *= 2;
    const B = this.owner.blockSize;
    const grow = (old: FloatArray | null, D: number): FloatArray => {
      const buf = allocate(l.dtype, blocks * l.heads * B * D) as FloatArray;
      if (old !== null) buf.set(old);
      return buf;
    };
    this.poolKeys = grow(this.poolKeys, l.E);
    this.poolValues = grow(this.poolValues, l.Ev);
    this.poolBlocks = blocks;
  }

  /** Pool slot (block * Hkv + kh) * blockSize + j of a sequence's slot s (slotIndex of a position), head kh. */
  private slot(table: readonly number[], s: number, kh: number, Hkv: number): number {
    const B = this.owner.blockSize;
    return (table[Math.floor(s / B)] * Hkv + kh) * B + (s % B);
  }

  /** Each selected sequence's new tokens in a call of N rows: batch row `row`, tokens from .. from + count - 1 of it. */
  private segments(N: number, T: number): { id: number; row: number; from: number; count: number }[] {
    const packed = this.owner.packedLengths;
    let from = 0;
    return this.owner.selected(N).map((id, n) => {
      if (packed === null) return { id, row: n, from: 0, count: T };
      from += packed[n];
      return { id, row: 0, from: from - packed[n], count: packed[n] };
    });
  }

  protected override store(fn: string, k: Tensor, v: Tensor): void {
    const l = this.checkPaged(fn, k, v);
    this.pool = l;
    const [N, Hkv, T] = k.shape;
    const parts = this.segments(N, T);
    const tables = parts.map(({ id, count }) => this.owner.tableFor(id, this.heldCount(this.lengthOf(id) + count)));
    this.reservePool(l);
    const K = this.poolKeys!;
    const V = this.poolValues!;
    for (let n = 0; n < parts.length; n++) {
      const { id, row, from, count } = parts[n];
      const start = this.lengthOf(id);
      for (let kh = 0; kh < Hkv; kh++) {
        for (let t = 0; t < count; t++) {
          const src = (row * Hkv + kh) * T + from + t; // [N, Hkv, T, ..] row (row, kh), token from + t
          const dst = this.slot(tables[n], this.slotIndex(start + t), kh, Hkv); // a ring: later positions overwrite earlier ones in order
          K.set(k.values.subarray(src * l.E, (src + 1) * l.E), dst * l.E);
          V.set(v.values.subarray(src * l.Ev, (src + 1) * l.Ev), dst * l.Ev);
        }
      }
      this.lens[id] = start + count;
    }
  }

  override push(keys: Tensor, values: Tensor): void {
    this.store("PagedKVCacheLayer.push", keys, values);
  }

  /** The given (held) positions of sequence id, in order, as [1, Hkv, P, E] and [1, Hkv, P, Ev]. */
  private gather(id: number, positions: readonly number[]): [Tensor, Tensor] {
    const l = this.pool!;
    const table = this.owner.blockTable(id);
    const P = positions.length;
    const copy = (buf: FloatArray, D: number): Tensor => {
      const out = allocate(l.dtype, l.heads * P * D) as FloatArray;
      for (let kh = 0; kh < l.heads; kh++) {
        positions.forEach((p, i) => {
          const at = this.slot(table, this.slotIndex(p), kh, l.heads);
          out.set(buf.subarray(at * D, (at + 1) * D), (kh * P + i) * D);
        });
      }
      return new Tensor(out, [1, l.heads, P, D], l.dtype);
    };
    return [copy(this.poolKeys!, l.E), copy(this.poolValues!, l.Ev)];
  }

  /** The plain read (no mask of the cache's own): only when no mask is needed (every selected sequence at the same position, nothing streamed out). */
  override append(keys: Tensor, values: Tensor): [Tensor, Tensor] {
    const lens = this.rowLengths();
    if (this.owner.packedLengths !== null) {
      throw new ArgumentError(`PagedKVCacheLayer.append: the selection is packed documents (selectPacked), which need the mask of appendVisible() (the attention modules use it)`);
    }
    if (lens.some((x) => x !== lens[0])) {
      throw new ArgumentError(`PagedKVCacheLayer.append: the selected sequences hold different lengths (${lens.join(", ")}); their padded keys need the mask of appendVisible() (the attention modules use it)`);
    }
    const [k, v, mask] = this.appendVisible(keys, values, { attnMask: null, isCausal: true });
    if (mask !== null) {
      throw new ArgumentError(`PagedKVCacheLayer.append: positions have left the streaming window of ${this.name}, so each query needs its own keys: use appendVisible() (the attention modules do)`);
    }
    return [k, v];
  }

  /**
   * Each row's held keys then its new ones, padded with zeros in front to the longest row:
   * [N, Hkv, S, E] with S = max(held) + T, row n's keys in the last held[n] + T columns, and the
   * mask [N, 1, T, S]: query l of row n (position p = seen[n] + l) sees the column of position s iff
   * s <= p, and when streaming s < sinkTokens or s > p - window, and given masks.slidingWindow w,
   * s > p - w; padding never. Without streaming, padding in front keeps every row bottom-right aligned:
   * column distances to the queries are position distances, as relative-position options (ALiBi, a
   * sliding window) measure them. No mask when every row is at the same position and nothing has left
   * the window (then the keys are positions 0 .. p, plain causal, bottom-right). When streaming, a row
   * whose window has moved past its sinks skips positions: then the columns' positions [N, S] come
   * back too (-1 for padding), for ALiBi.
   */
  override appendVisible(keys: Tensor, values: Tensor, masks: CallMasks): VisibleKeys {
    const fn = "PagedKVCacheLayer.append";
    if (masks.attnMask !== null && masks.attnMask !== undefined) {
      throw new ArgumentError(`${fn}: ${this.name} is a paged cache, which computes its own mask; attnMask and keyPaddingMask cannot be combined with it`);
    }
    if (!masks.isCausal) throw new ArgumentError(`${fn}: ${this.name} is a paged cache, for causal self-attention; pass isCausal: true`);
    this.checkPaged(fn, keys, values);
    const w = masks.slidingWindow ?? Infinity; // the attention's own window, in positions
    const packed = this.owner.packedLengths;
    if (packed !== null) return this.appendPacked(fn, keys, values, packed, w);
    const [N, , T] = keys.shape;
    const lens = this.rowLengths(); // positions seen
    const positions = lens.map((len) => this.heldPositions(len)); // the keys held, in order
    const S = Math.max(...positions.map((p) => p.length)) + T;
    const parts: [Tensor, Tensor][] = lens.map((len, n) => {
      const fresh: [Tensor, Tensor] = N === 1 ? [keys, values] : [slice(keys, 0, n, n + 1), slice(values, 0, n, n + 1)]; // [1, Hkv, T, ..]
      const held = len > 0 ? this.gather(this.owner.selected(N)[n], positions[n]) : null;
      const pad = S - positions[n].length - T;
      const cat = (i: 0 | 1): Tensor => {
        const list = [...(held ? [held[i]] : []), fresh[i]];
        if (pad > 0) list.unshift(new Tensor(allocate(fresh[i].dtype, fresh[i].shape[1] * pad * fresh[i].shape[3]), [1, fresh[i].shape[1], pad, fresh[i].shape[3]], fresh[i].dtype));
        return list.length === 1 ? list[0] : concat(list, 2); // [1, Hkv, pad + len + T, ..]
      };
      return [cat(0), cat(1)];
    });
    this.store(fn, keys, values);
    const k = N === 1 ? parts[0][0] : concat(parts.map((p) => p[0]), 0); // [N, Hkv, S, E]
    const v = N === 1 ? parts[0][1] : concat(parts.map((p) => p[1]), 0);
    const ring = this.ring;
    const streamedOut = ring !== null && Math.max(...lens) + T - 1 - ring.window >= ring.sinkTokens; // some query no longer sees every earlier key
    if (lens.every((x) => x === lens[0]) && !streamedOut) return [k, v, null, null];
    const m = new Uint8Array(N * T * S);
    const at = new Int32Array(N * S).fill(-1); // [N, S] each column's position, -1 for padding
    let gap = false;
    for (let n = 0; n < N; n++) {
      const cols = [...positions[n], ...Array.from({ length: T }, (_, t) => lens[n] + t)]; // the position of each key column after the padding
      const pad = S - cols.length;
      cols.forEach((s, i) => {
        at[n * S + pad + i] = s;
        if (s !== cols[0] + i) gap = true; // sinks, then a window that has moved past them
      });
      for (let l = 0; l < T; l++) {
        const p = lens[n] + l;
        cols.forEach((s, i) => {
          if (this.sees(p, s, w)) m[(n * T + l) * S + pad + i] = 1;
        });
      }
    }
    return [k, v, new Tensor(m, [N, 1, T, S], "bool"), gap ? new Tensor(at, [N, S], "int32") : null]; // true = may attend
  }

  override get dtype(): FloatDType | null {
    return this.pool === null ? null : this.pool.dtype;
  }

  /**
   * Whether the query at position p sees the key at position s of its sequence: s <= p (causal), s
   * still held when streaming (s < sinkTokens or s > p - window), and inside the attention's own
   * window w (s > p - w).
   */
  private sees(p: number, s: number, w: number): boolean {
    const ring = this.ring;
    const kept = ring === null || s < ring.sinkTokens || s > p - ring.window;
    return s <= p && kept && s > p - w;
  }

  /**
   * A packed call's keys (every document's, back to back: keys [1, Hkv, T, E], T = the lengths'
   * sum), stored in their sequences and returned as given, with the mask [1, 1, T, T]: query l of a
   * document (position l of it) sees its own document's column of position s iff sees(l, s, w), and
   * no other document's (block-diagonal; see the file comment).
   */
  private appendPacked(fn: string, keys: Tensor, values: Tensor, lengths: readonly number[], w: number): VisibleKeys {
    this.store(fn, keys, values);
    const T = keys.shape[2];
    const m = new Uint8Array(T * T);
    let a = 0; // the document's first row and column
    for (const len of lengths) {
      for (let l = 0; l < len; l++) {
        for (let s = 0; s <= l; s++) if (this.sees(l, s, w)) m[(a + l) * T + a + s] = 1;
      }
      a += len;
    }
    // no positions: within a document the column distance is the token distance (ALiBi's), and the
    // mask hides every other document's columns
    return [keys, values, new Tensor(m, [1, 1, T, T], "bool"), null]; // true = may attend
  }

  /** The pool and the selected rows' block tables, for the decode step (decode.ts). */
  override storage(): KVStorage | null {
    const l = this.pool;
    const lens = this.rowLengths().map((s) => this.heldCount(s)); // slots filled: the held positions (ring slots when streaming)
    if (l === null || lens.every((x) => x === 0)) return null;
    const tables = this.owner.selected(lens.length).map((id) => Int32Array.from(this.owner.blockTable(id)));
    const ring = this.ring;
    return {
      keys: this.poolKeys!, values: this.poolValues!, N: lens.length, heads: l.heads, E: l.E, Ev: l.Ev, dtype: l.dtype,
      length: Math.max(...lens), capacity: this.owner.blockSize,
      paged: { blockSize: this.owner.blockSize, tables, lengths: Int32Array.from(lens) },
      ...(ring === null ? {} : { ring: { ...ring, seen: this.rowLengths() } }), // slot s of row n holds ringPosition(ring, seen[n], s)
    };
  }

  /** Every held key and value of the selected sequences (in position order), when they are all at the same position. */
  override keysValues(): [Tensor, Tensor] | null {
    const lens = this.rowLengths();
    if (lens.length === 0 || lens[0] === 0) return null;
    if (!lens.every((x) => x === lens[0])) throw new ArgumentError(`PagedKVCacheLayer.keysValues: the selected sequences hold different lengths (${lens.join(", ")})`);
    const held = this.heldPositions(lens[0]);
    const parts = this.owner.selected(lens.length).map((id) => this.gather(id, held));
    return [concat(parts.map((p) => p[0]), 0), concat(parts.map((p) => p[1]), 0)]; // [N, Hkv, length, ..]
  }
}
