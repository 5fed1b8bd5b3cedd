/**
 * Attention for one decode step (L = 1) over a KV cache, read in place. Each (batch row n, query
 * head h) has one query q [E]; it reads key/value head kh = floor(h / G) (G = H / Hkv) of the cache:
 *
 *   scores[s] = (q · K[n, kh, s]) · scale          s = first .. last (every cached key, or fewer: causal, window)
 *   P         = softmax(scores)                    stable: exp(score - max), sums in float64
 *   out       = Σ_s P[s] V[n, kh, s]               [Ev]
 *
 * The flexible options of sdpa (flexPlan.ts) are each a rule for this one query row, at position
 * l' = positionShift(alignment, 1, S) among the keys (causal.ts, the one position rule):
 *
 *   slidingWindow   first..last = visibleKeys(...) (causal.ts): keys l' - left .. l' + right only
 *   alibi           scores[s] -= slope_h · |l' - s|
 *   softcap         scores[s] = softcap · tanh(scores[s] / softcap)          (after ALiBi)
 *   sinks           one more softmax column, logit sink_h and value zero: Σ P[s] < 1
 *
 * The cached keys are read as segments of consecutive slots: one per (n, kh) in the contiguous layout
 * (position s at slot row * capacity + s), one per block in the paged layout (kvpaged.ts: position s
 * of row n in block tables[n][s / blockSize]), where each row also has its own length. A streaming
 * cache's ring (kvwindow.ts, KVStorage.ring) holds exactly the positions the streaming mask shows, but
 * not in position order: its slot s holds position ringPosition(ring, seen, s). With a sliding window
 * or ALiBi the step then measures from the key's position instead of its slot, the query being the
 * newest position, seen - 1 (bottom-right):
 *
 *   ring            d = seen - 1 - ringPosition(ring, seen, s); slot s hidden unless -right <= d <= left;
 *                   ALiBi: scores[s] -= slope_h · d        (every filled slot is scored, hidden ones then -inf)
 *
 * This is scaledDotProductAttention (sdpa.ts) for L = 1 without a mask (but with the flexible options
 * above) or dropout, written as a plain
 * loop: for one query the fused kernels' staging (rows padded to 8, a job for the threads) costs more
 * than the arithmetic, and the cache's storage is read where it lies instead of being copied out
 * (kvcache.ts, KVStorage). test/decode.test.ts proves it equal to the textbook path.
 *
 * Shape letters as in sdpa.ts: N batch, H query heads, Hkv key/value heads, S cached positions,
 * E head dim, Ev value dim.
 */
import { type FloatArray, allocate } from "../tensor/dtype.js";
import type { AttentionWindow, PositionAlignment } from "../kernels/backend.js";
import { positionShift, visibleKeys } from "../kernels/causal.js";
import type { KVStorage } from "./kvcache.js";
import { ringPosition } from "./kvwindow.js";
import type { CausalAlignment } from "./masks.js";

/** The flexible options of one decode step (see the file comment); null fields are off. */
export interface DecodeFlex {
  /** where the query sits among the keys (windows and ALiBi measure from there) */
  alignment: PositionAlignment;
  window: AttentionWindow | null;
  /** [H] */
  alibiSlopes: ArrayLike<number> | null;
  softcap: number | null;
  /** [H] sink logits */
  sinks: ArrayLike<number> | null;
}

const NO_FLEX: DecodeFlex = { alignment: "bottom-right", window: null, alibiSlopes: null, softcap: null, sinks: null };

/** Per-call rows, reused across calls (grown geometrically): one query in float64, its scores. */
interface Scratch {
  q: Float64Array;
  scores: Float64Array;
}
let scratch: Scratch = { q: new Float64Array(64), scores: new Float64Array(256) };

function buffers(S: number, E: number): Scratch {
  const b = scratch;
  if (b.scores.length < S || b.q.length < E) {
    const grow = (a: Float64Array, n: number): Float64Array => (a.length < n ? new Float64Array(Math.max(n, 2 * a.length)) : a);
    scratch = { q: grow(b.q, E), scores: grow(b.scores, S) };
  }
  return scratch;
}

/** Segments of consecutive slots holding row (n, kh)'s positions first..end-1: slot starts and counts; returns how many. */
function segmentsOf(kv: KVStorage, n: number, kh: number, first: number, end: number, starts: Int32Array, counts: Int32Array): number {
  const p = kv.paged;
  if (p === undefined) {
    starts[0] = (n * kv.heads + kh) * kv.capacity + first; // row (n, kh) starts at slot row * capacity
    counts[0] = end - first;
    return 1;
  }
  const B = p.blockSize;
  const table = p.tables[n];
  let k = 0;
  for (let s = first; s < end; k++) {
    const b = Math.floor(s / B), off = s - b * B; // position s is slot off of block table[b]
    const c = Math.min(B - off, end - s);
    starts[k] = (table[b] * kv.heads + kh) * B + off; // block table[b], head kh
    counts[k] = c;
    s += c;
  }
  return k;
}

/** Per-call segment lists, reused across calls (grown as a paged row needs more blocks). */
let segStarts = new Int32Array(16);
let segCounts = new Int32Array(16);

/**
 * q [N, H, 1, E] (flat) against the cached keys/values -> out [N, H, 1, Ev] (flat, the cache's dtype).
 * `causal`: the alignment when the step is causal (null: every cached key is visible); `flex`: the
 * flexible options (see the file comment; default none). `into`: write the result there (an array
 * of the cache's dtype holding at least N * H * Ev values, every one of them overwritten) instead of
 * a new array; the decode step of models/blocks.ts reuses one from step to step.
 */
export function decodeAttention(
  q: FloatArray, kv: KVStorage, H: number, scale: number, causal: CausalAlignment | null, flex: DecodeFlex = NO_FLEX, into?: FloatArray,
): FloatArray {
  const { N, heads: Hkv, E, Ev } = kv;
  const G = H / Hkv;
  const out = into ?? (allocate(kv.dtype, N * H * Ev) as FloatArray);
  const { q: qh, scores } = buffers(kv.length, E);
  const blocks = kv.paged === undefined ? 1 : Math.ceil(kv.length / kv.paged.blockSize) + 1; // + 1: a window may start mid-block
  if (segStarts.length < blocks) {
    segStarts = new Int32Array(2 * blocks);
    segCounts = new Int32Array(2 * blocks);
  }
  const starts = segStarts, counts = segCounts;
  const K = kv.keys;
  const V = kv.values;
  const { alignment, window, alibiSlopes, softcap, sinks } = flex;
  const ring = window !== null || alibiSlopes !== null ? kv.ring : undefined; // slots are not positions: measure from each slot's position
  for (let n = 0; n < N; n++) {
    const S = kv.paged === undefined ? kv.length : kv.paged.lengths[n]; // this row's cached positions (filled slots)
    const seen = ring === undefined ? 0 : ring.seen[n]; // a ring: the query is position seen - 1, and every filled slot is at or before it
    const [first, last] = ring !== undefined ? [0, S - 1] : visibleKeys(causal ?? "none", alignment, window, 0, 1, S); // keys first..last
    const at = ring !== undefined ? seen - 1 : positionShift(alignment, 1, S); // l', where the window and ALiBi measure from
    const visible = Math.max(0, last + 1 - first);
    for (let h = 0; h < H; h++) {
      const segs = segmentsOf(kv, n, Math.floor(h / G), first, first + visible, starts, counts);
      const slope = alibiSlopes === null ? 0 : alibiSlopes[h];
      for (let e = 0; e < E; e++) qh[e] = q[(n * H + h) * E + e];
      // scores = q · K[s] · scale
      let max = -Infinity;
      for (let g = 0, s = 0; g < segs; g++) {
        const count = counts[g];
        let c = 0, ko = starts[g] * E;
        // eight keys at a time, then four: each q[e] is read once for all of them (their dot products
        // in d0..d7; each still sums e = 0..E-1 in order, so the blocking does not change a bit)
        for (; c + 7 < count; c += 8, s += 8, ko += 8 * E) {
          let d0 = 0, d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0, d6 = 0, d7 = 0;
          for (let e = 0, k1 = ko + E, k2 = ko + 2 * E, k3 = ko + 3 * E, k4 = ko + 4 * E, k5 = ko + 5 * E, k6 = ko + 6 * E, k7 = ko + 7 * E; e < E; e++) {
            const qe = qh[e];
            d0 += qe * K[ko + e];
            d1 += qe * K[k1 + e];
            d2 += qe * K[k2 + e];
            d3 += qe * K[k3 + e];
            d4 += qe * K[k4 + e];
            d5 += qe * K[k5 + e];
            d6 += qe * K[k6 + e];
            d7 += qe * K[k7 + e];
          }
          scores[s] = d0 * scale;
          scores[s + 1] = d1 * scale;
          scores[s + 2] = d2 * scale;
          scores[s + 3] = d3 * scale;
          scores[s + 4] = d4 * scale;
          scores[s + 5] = d5 * scale;
          scores[s + 6] = d6 * scale;
          scores[s + 7] = d7 * scale;
        }
        for (; c + 3 < count; c += 4, s += 4, ko += 4 * E) {
          let d0 = 0, d1 = 0, d2 = 0, d3 = 0;
          for (let e = 0, k1 = ko + E, k2 = ko + 2 * E, k3 = ko + 3 * E; e < E; e++) {
            const qe = qh[e];
            d0 += qe * K[ko + e];
            d1 += qe * K[k1 + e];
            d2 += qe * K[k2 + e];
            d3 += qe * K[k3 + e];
          }
          scores[s] = d0 * scale;
          scores[s + 1] = d1 * scale;
          scores[s + 2] = d2 * scale;
          scores[s + 3] = d3 * scale;
        }
        for (; c < count; c++, s++, ko += E) {
          let d0 = 0;
          for (let e = 0; e < E; e++) d0 += qh[e] * K[ko + e];
          scores[s] = d0 * scale;
        }
      }
      // the options' per-key rules, then the max (NaN once any score is NaN, as softmax gives)
      for (let s = 0; s < visible; s++) {
        let sc = scores[s];
        const d = at - (ring === undefined ? first + s : ringPosition(ring, seen, s)); // l' minus the key's position
        if (ring !== undefined && window !== null && (d > window.left || -d > window.right)) {
          sc = -Infinity; // a ring slot outside the window, in positions
        } else {
          if (slope !== 0) sc -= slope * Math.abs(d); // ALiBi
          if (softcap !== null) sc = softcap * Math.tanh(sc / softcap);
        }
        scores[s] = sc;
        if (sc > max || sc !== sc) max = sc;
      }
      const sink = sinks === null ? -Infinity : sinks[h];
      if (sink > max || sink !== sink) max = sink; // the sink's column takes part in the max and the sum
      const o = (n * H + h) * Ev;
      if (max === -Infinity) { // every score -inf (or no key): a zero row, as the other paths give
        out.fill(0, o, o + Ev);
        continue;
      }
      // P[s] = exp(score - max), then out = Σ P[s] V[s] / Σ P[s], eight output dims at a time (sums in float64)
      let total = sinks === null ? 0 : Math.exp(sink - max); // the sink's value is zero: it adds only to the sum
      for (let s = 0; s < visible; s++) total += scores[s] = Math.exp(scores[s] - max);
      let e = 0;
      for (; e + 7 < Ev; e += 8) {
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
        for (let g = 0, s = 0; g < segs; g++) {
          const end = s + counts[g];
          for (let vo = starts[g] * Ev + e; s < end; s++, vo += Ev) {
            const p = scores[s];
            a0 += p * V[vo];
            a1 += p * V[vo + 1];
            a2 += p * V[vo + 2];
            a3 += p * V[vo + 3];
            a4 += p * V[vo + 4];
            a5 += p * V[vo + 5];
            a6 += p * V[vo + 6];
            a7 += p * V[vo + 7];
          }
        }
        out[o + e] = a0 / total;
        out[o + e + 1] = a1 / total;
        out[o + e + 2] = a2 / total;
        out[o + e + 3] = a3 / total;
        out[o + e + 4] = a4 / total;
        out[o + e + 5] = a5 / total;
        out[o + e + 6] = a6 / total;
        out[o + e + 7] = a7 / total;
      }
      for (; e < Ev; e++) {
        let a = 0;
        for (let g = 0, s = 0; g < segs; g++) {
          for (let c = 0, vo = starts[g] * Ev + e; c < counts[g]; c++, s++, vo += Ev) a += scores[s] * V[vo];
        }
        out[o + e] = a / total;
      }
    }
  }
  return out;
}
