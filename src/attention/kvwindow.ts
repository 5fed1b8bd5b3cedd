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
 */
import { ArgumentError } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { concat } from "../ops/shape.js";
import { assertTensor } from "../ops/util.js";
import { type CallMasks, KVCacheLayer } from "./kvlayer.js";

/** Streaming settings of a windowed cache (see the file comment). */
export interface StreamingWindow {
  readonly window: number;
  readonly sinkTokens: number;
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

  override get reordersKeys(): boolean {
    return true;
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
    const w = masks.slidingWindow ?? Infinity; // the attention's own window, in positions
    const mask = p0 + T - 1 - window < sinkTokens ? null : boolMask(T, positions.length, (l, i) => {
      const s = positions[i];
      return s <= p0 + l && (s < sinkTokens || s > p0 + l - window) && s > p0 + l - w;
    }); // [1, 1, T, held + T]
    if (before === null) return [keys, values, mask];
    return [concat([before[0], keys], 2), concat([before[1], values], 2), mask]; // [N, Hkv, held + T, E]
  }
}
