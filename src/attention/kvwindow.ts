/**
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
 *
 * Options that measure distances between positions (a sliding window, ALiBi) measure token
 * distances, as the full forward does: the layer folds the attention's window into its mask in
 * positions, appendVisible() hands back each key column's position when the columns skip positions
 * (the sinks, then the window), and the decode step reads each ring slot's position (ringPosition).
 * With sinkTokens 0 and window >= the model's sliding window w the cache holds everything the model
 * can see (Mistral's rolling buffer): the logits equal the uncached forward. With window < w, query t
 * sees min(window, w) keys, as the full forward with sliding window min(window, w) (an approximation
 * of the model, as streaming any model whose window is larger than the cache's is).
 */
import { ArgumentError } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { concat } from "../ops/shape.js";
import { assertTensor } from "../ops/util.js";
import { type CallMasks, KVCacheLayer, type KVStorage, type VisibleKeys } from "./kvlayer.js";

/** Streaming settings of a windowed cache (see the file comment). */
export interface StreamingWindow {
  readonly window: number;
  readonly sinkTokens: number;
}

/**
 * The ring, defined once (this layer, the paged one and the decode step read it): slots
 * 0 .. sinkTokens - 1 hold the sink positions, and position p >= sinkTokens lives in slot
 * sinkTokens + (p - sinkTokens) mod window.
 *
 *   window 3, sinkTokens 1, after positions 0..5:   slots [0 | 4 5 3]
 */
export function ringSlot(w: StreamingWindow, p: number): number {
  return p < w.sinkTokens ? p : w.sinkTokens + ((p - w.sinkTokens) % w.window);
}

/** The positions held after `seen` positions were written, in increasing order: the sinks, then the last window. */
export function ringHeld(w: StreamingWindow, seen: number): number[] {
  const out: number[] = [];
  for (let p = 0; p < Math.min(w.sinkTokens, seen); p++) out.push(p);
  for (let p = Math.max(w.sinkTokens, seen - w.window); p < seen; p++) out.push(p);
  return out;
}

/**
 * The position held in a filled `slot` after `seen` positions were written (the inverse of ringSlot
 * over the held positions): a sink's slot holds its own position; a window slot the latest position
 * p < seen with ringSlot(p) = slot. (In the example above, slot 1 holds 4.)
 */
export function ringPosition(w: StreamingWindow, seen: number, slot: number): number {
  if (slot < w.sinkTokens) return slot;
  const last = seen - 1; // the newest position, in slot sinkTokens + (last - sinkTokens) mod window
  const back = ((last - w.sinkTokens) % w.window - (slot - w.sinkTokens) + w.window) % w.window; // positions since `slot` was written
  return last - back;
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
 * slot: softmax does not care about the order of its keys, and RoPE was applied before caching (a
 * sliding window or ALiBi reads each slot's position from storage().ring).
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

  override get reordersKeys(): boolean {
    return true;
  }

  override clear(): void {
    super.clear();
    this.seen = 0;
  }

  /** The slot that position p is stored in. */
  private slotOf(p: number): number {
    return ringSlot(this.streaming, p);
  }

  /** The positions held, in increasing order: the sinks, then the window. */
  private heldPositions(): number[] {
    return ringHeld(this.streaming, this.seen);
  }

  /** The ring's slots as the decode step reads them: slot s of every row holds ringPosition(streaming, seen, s). */
  override storage(): KVStorage | null {
    const st = super.storage();
    return st === null ? null : { ...st, ring: { ...this.streaming, seen: new Array<number>(st.N).fill(this.seen) } };
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

  /**
   * The plain read (for callers that attend with bottom-right causality and no mask of the cache's
   * own): append, then return the positions held afterwards, in order. That is exact for one new
   * token (it sees every held key) and while nothing has left the window; a longer chunk past the
   * window needs the mask of appendVisible(), so it is refused.
   */
  override append(keys: Tensor, values: Tensor): [Tensor, Tensor] {
    const fn = "WindowKVCacheLayer.append";
    assertTensor(fn, "keys", keys);
    const T = keys.shape[2];
    if (T > 1 && this.seen + T > this.streaming.sinkTokens + this.streaming.window) {
      throw new ArgumentError(
        `${fn}: ${T} tokens at positions ${this.seen}..${this.seen + T - 1} go past the window of ${this.name} (sinkTokens ${this.streaming.sinkTokens} + window ${this.streaming.window}); ` +
          `each query then needs its own keys: use appendVisible() (the attention modules do), or feed one token at a time`,
      );
    }
    const [k, v, mask] = this.appendVisible(keys, values, { attnMask: null, isCausal: true });
    if (mask === null) return [k, v]; // nothing left the window: held + new is what causality shows
    return this.read(0, this.len); // one token: the held positions are exactly the ones it sees
  }

  /**
   * The keys held before this call (in position order) and the new ones, with the window's mask:
   * query l (position p0 + l) sees key position s iff s <= p0 + l and (s < sinkTokens or
   * s > p0 + l - window), and, given masks.slidingWindow w, s > p0 + l - w. No mask while nothing has
   * left the window yet (plain causal: the keys are positions 0 .. p0 + T - 1, and the caller applies w).
   * The columns' positions [1, S] when they skip some (the sinks, then a window that has moved on).
   */
  override appendVisible(keys: Tensor, values: Tensor, masks: CallMasks): VisibleKeys {
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
    const w = masks.slidingWindow ?? Infinity; // the attention's own window, in positions
    const mask = p0 + T - 1 - window < sinkTokens ? null : boolMask(T, positions.length, (l, i) => {
      const s = positions[i];
      return s <= p0 + l && (s < sinkTokens || s > p0 + l - window) && s > p0 + l - w;
    }); // [1, 1, T, held + T]
    const gap = positions.some((s, i) => s !== positions[0] + i); // sinks, then a window that has moved past them
    const at = gap ? new Tensor(Int32Array.from(positions), [1, positions.length], "int32") : null; // [1, held + T]
    if (before === null) return [keys, values, mask, at];
    return [concat([before[0], keys], 2), concat([before[1], values], 2), mask, at]; // [N, Hkv, held + T, E]
  }
}
