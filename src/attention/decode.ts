/**
 * Attention for one decode step (L = 1) over a KV cache, read in place. Each (batch row n, query
 * head h) has one query q [E]; it reads key/value head kh = floor(h / G) (G = H / Hkv) of the cache:
 *
 *   scores[s] = (q · K[n, kh, s]) · scale          s = 0 .. limit (every cached key, or fewer if causal top-left)
 *   P         = softmax(scores)                    stable: exp(score - max), sums in float64
 *   out       = Σ_s P[s] V[n, kh, s]               [Ev]
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

/** Scores of one query, reused across calls (grown geometrically). */
let scratch = new Float64Array(256);

function scoreBuffer(S: number): Float64Array {
  if (scratch.length < S) scratch = new Float64Array(Math.max(S, 2 * scratch.length));
  return scratch;
}

/**
 * q [N, H, 1, E] (flat) against the cached keys/values -> out [N, H, 1, Ev] (flat, q's dtype).
 * `causal`: the alignment when the step is causal (null: every cached key is visible).
 */
export function decodeAttention(q: FloatArray, kv: KVStorage, H: number, scale: number, causal: CausalAlignment | null): FloatArray {
  const { N, heads: Hkv, E, Ev, length: S, capacity } = kv;
  const G = H / Hkv;
  const last = causal === null ? S - 1 : causalLimit(causal, 0, 1, S); // keys 0..last are visible
  const out = allocate(kv.dtype, N * H * Ev) as FloatArray;
  const scores = scoreBuffer(S);
  const K = kv.keys;
  const V = kv.values;
  for (let n = 0; n < N; n++) {
    for (let h = 0; h < H; h++) {
      const row = n * Hkv + Math.floor(h / G); // (n, kh) in the cache
      const qo = (n * H + h) * E;
      const o = (n * H + h) * Ev;
      // scores and their max (NaN if any score is NaN, as softmax gives)
      let max = -Infinity;
      for (let s = 0; s <= last; s++) {
        const ko = (row * capacity + s) * E;
        let d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        let e = 0;
        for (; e + 3 < E; e += 4) {
          d0 += q[qo + e] * K[ko + e];
          d1 += q[qo + e + 1] * K[ko + e + 1];
          d2 += q[qo + e + 2] * K[ko + e + 2];
          d3 += q[qo + e + 3] * K[ko + e + 3];
        }
        for (; e < E; e++) d0 += q[qo + e] * K[ko + e];
        const sc = (d0 + d1 + d2 + d3) * scale;
        scores[s] = sc;
        max = Math.max(max, sc);
      }
      if (max === -Infinity) continue; // every score -inf: a zero row, as the other paths give
      // P V in float64 sums, normalised once at the end
      let total = 0;
      const acc = accumulator(Ev);
      for (let s = 0; s <= last; s++) {
        const p = Math.exp(scores[s] - max);
        total += p;
        const vo = (row * capacity + s) * Ev;
        for (let e = 0; e < Ev; e++) acc[e] += p * V[vo + e];
      }
      for (let e = 0; e < Ev; e++) out[o + e] = acc[e] / total;
    }
  }
  return out;
}

/** A zeroed float64 row of Ev sums, reused across calls. */
let sums = new Float64Array(64);

function accumulator(Ev: number): Float64Array {
  if (sums.length < Ev) sums = new Float64Array(Math.max(Ev, 2 * sums.length));
  sums.fill(0, 0, Ev);
  return sums;
}
