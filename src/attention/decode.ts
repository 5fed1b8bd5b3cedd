/**
 * Attention for one decode step (L = 1) over a KV cache, read in place. Each (batch row n, query
 * head h) has one query q [E]; it reads key/value head kh = floor(h / G) (G = H / Hkv) of the cache:
 *
 *   scores[s] = (q · K[n, kh, s]) · scale          s = 0 .. limit (every cached key, or fewer if causal top-left)
 *   P         = softmax(scores)                    stable: exp(score - max), sums in float64
 *   out       = Σ_s P[s] V[n, kh, s]               [Ev]
 *
 * The cached keys are read as segments of consecutive slots: one per (n, kh) in the contiguous layout
 * (position s at slot row * capacity + s), one per block in the paged layout (kvpaged.ts: position s
 * of row n in block tables[n][s / blockSize]), where each row also has its own length. A windowed
 * cache (kvcache.ts) is contiguous: its filled slots are exactly the visible positions.
 *
 * This is scaledDotProductAttention (sdpa.ts) for L = 1 without a mask or dropout, written as a plain
 * loop: for one query the fused kernels' staging (rows padded to 8, a job for the threads) costs more
 * than the arithmetic, and the cache's storage is read where it lies instead of being copied out
 * (kvcache.ts, KVStorage). test/decode.test.ts proves it equal to the textbook path.
 *
 * Shape letters as in sdpa.ts: N batch, H query heads, Hkv key/value heads, S cached positions,
 * E head dim, Ev value dim.
 */
import { type FloatArray, allocate } from "../tensor/dtype.js";
import { causalLimit } from "../kernels/causal.js";
import type { KVStorage } from "./kvcache.js";
import type { CausalAlignment } from "./masks.js";

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

/** Segments of consecutive slots holding row (n, kh)'s visible positions: slot starts and counts; returns how many. */
function segmentsOf(kv: KVStorage, n: number, kh: number, visible: number, starts: Int32Array, counts: Int32Array): number {
  const p = kv.paged;
  if (p === undefined) {
    starts[0] = (n * kv.heads + kh) * kv.capacity; // row (n, kh) starts at slot row * capacity
    counts[0] = visible;
    return 1;
  }
  const B = p.blockSize;
  const table = p.tables[n];
  let k = 0;
  for (let s = 0; s < visible; s += B, k++) {
    starts[k] = (table[s / B] * kv.heads + kh) * B; // block table[s / B], head kh
    counts[k] = Math.min(B, visible - s);
  }
  return k;
}

/**
 * q [N, H, 1, E] (flat) against the cached keys/values -> out [N, H, 1, Ev] (flat, the cache's dtype).
 * `causal`: the alignment when the step is causal (null: every cached key is visible).
 */
export function decodeAttention(q: FloatArray, kv: KVStorage, H: number, scale: number, causal: CausalAlignment | null): FloatArray {
  const { N, heads: Hkv, E, Ev } = kv;
  const G = H / Hkv;
  const out = allocate(kv.dtype, N * H * Ev) as FloatArray;
  const { q: qh, scores } = buffers(kv.length, E);
  const blocks = kv.paged === undefined ? 1 : Math.ceil(kv.length / kv.paged.blockSize);
  const starts = new Int32Array(blocks);
  const counts = new Int32Array(blocks);
  const K = kv.keys;
  const V = kv.values;
  for (let n = 0; n < N; n++) {
    const S = kv.paged === undefined ? kv.length : kv.paged.lengths[n]; // this row's cached positions
    const visible = S === 0 ? 0 : causal === null ? S : causalLimit(causal, 0, 1, S) + 1; // keys 0..visible-1
    for (let h = 0; h < H; h++) {
      const segs = segmentsOf(kv, n, Math.floor(h / G), visible, starts, counts);
      for (let e = 0; e < E; e++) qh[e] = q[(n * H + h) * E + e];
      // scores = q · K[s] · scale, and their max (NaN once any score is NaN, as softmax gives)
      let max = -Infinity;
      for (let g = 0, s = 0; g < segs; g++) {
        for (let c = 0, ko = starts[g] * E; c < counts[g]; c++, s++, ko += E) {
          let d0 = 0, d1 = 0, d2 = 0, d3 = 0;
          let e = 0;
          for (; e + 3 < E; e += 4) {
            d0 += qh[e] * K[ko + e];
            d1 += qh[e + 1] * K[ko + e + 1];
            d2 += qh[e + 2] * K[ko + e + 2];
            d3 += qh[e + 3] * K[ko + e + 3];
          }
          for (; e < E; e++) d0 += qh[e] * K[ko + e];
          const sc = (d0 + d1 + d2 + d3) * scale;
          scores[s] = sc;
          if (sc > max || sc !== sc) max = sc;
        }
      }
      const o = (n * H + h) * Ev;
      if (max === -Infinity) continue; // every score -inf (or no key): a zero row, as the other paths give
      // P[s] = exp(score - max), then out = Σ P[s] V[s] / Σ P[s], four output dims at a time (sums in float64)
      let total = 0;
      for (let s = 0; s < visible; s++) total += scores[s] = Math.exp(scores[s] - max);
      let e = 0;
      for (; e + 3 < Ev; e += 4) {
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (let g = 0, s = 0; g < segs; g++) {
          for (let c = 0, vo = starts[g] * Ev + e; c < counts[g]; c++, s++, vo += Ev) {
            const p = scores[s];
            a0 += p * V[vo];
            a1 += p * V[vo + 1];
            a2 += p * V[vo + 2];
            a3 += p * V[vo + 3];
          }
        }
        out[o + e] = a0 / total;
        out[o + e + 1] = a1 / total;
        out[o + e + 2] = a2 / total;
        out[o + e + 3] = a3 / total;
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
