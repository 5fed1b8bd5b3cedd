/**
 * A streaming KV cache ({ window, sinkTokens }) with attention that measures distances: the module's
 * slidingWindow and ALiBi. The cache keeps the keys of the sinks and the last `window` positions in a
 * ring, out of order, so a window or ALiBi measured over the held columns would be wrong; they must
 * measure token positions.
 *
 * The reference is attention written out here, float64 loops over the module's own weights, over the
 * whole sequence, no cache, with each query's visible keys given as a rule over token positions t
 * (query) and s (key):
 *
 *   streaming        s <= t and (s < sinkTokens or s > t - window)
 *   sliding window   s > t - w                                        (the model's, Mistral's)
 *   ALiBi            score -= slope_h · (t - s), slopes 2^-2, 2^-4, 2^-6, 2^-8 for H = 4 (the paper's)
 *
 * With window >= w (a rolling buffer as large as the model's window; sinks then add nothing the model
 * would see) the rule is the model's own, so the streamed outputs also equal the module's uncached forward: exact, not an
 * approximation. Every case streams 40 tokens through a cache of a few positions (the ring wraps many
 * times) in chunks longer than the window and in one-token steps, both through the decode step (one
 * token, no weights: decode.ts over the ring) and the math path (needWeights: true).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Tensor, concat, noGrad, randn, scaledDotProductAttention, slice } from "../src/index.js";
import { GroupedQueryAttention, KVCache, MultiheadAttention, PagedKVCache } from "../src/nnNamespace.js";
import { decodeAttention } from "../src/attention/decode.js";
import { ringHeld, ringPosition, ringSlot } from "../src/attention/kvwindow.js";
import { alibiBiasAt } from "../src/attention/masks.js";
import type { KVCacheLayer } from "../src/attention/kvcache.js";
import { GPT, generate, gptConfig } from "../src/models/index.js";
import { assertClose } from "./harness.js";

type Visible = (t: number, s: number) => boolean;

/** What query t sees: the streaming cache's rule and the model's sliding window w (Infinity: none). */
function visibleRule(window: number, sinks: number, w: number): Visible {
  return (t, s) => s <= t && (s < sinks || s > t - window) && s > t - w;
}

/** The paper's ALiBi slopes for 4 heads, by hand: 2^(-8/4 · (h + 1)). */
const SLOPES4 = [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8];

/**
 * Grouped-query attention written out (no library ops): x [N, T, C] (float64) through the module's
 * q/k/v/o projections (no biases), query t attending to the keys visible(t, s), ALiBi slopes or none.
 */
function reference(m: GroupedQueryAttention, x: Tensor, visible: Visible, slopes: readonly number[] | null): Float64Array {
  const [N, T, C] = x.shape;
  const H = m.numHeads, Hkv = m.numKvHeads, hd = m.headDim, G = H / Hkv;
  const X = x.values, Wq = m.q_proj.weight.values, Wk = m.k_proj.weight.values, Wv = m.v_proj.weight.values, Wo = m.o_proj.weight.values;
  const proj = (W: ArrayLike<number>, rows: number): Float64Array => { // [N, T, C] x [rows, C]ᵀ -> [N, T, rows]
    const out = new Float64Array(N * T * rows);
    for (let i = 0; i < N * T; i++) for (let r = 0; r < rows; r++) {
      let a = 0;
      for (let c = 0; c < C; c++) a += X[i * C + c] * W[r * C + c];
      out[i * rows + r] = a;
    }
    return out;
  };
  const q = proj(Wq, H * hd), k = proj(Wk, Hkv * hd), v = proj(Wv, Hkv * hd);
  const y = new Float64Array(N * T * H * hd);
  for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) {
    const kh = Math.floor(h / G);
    const scores: number[] = [];
    const keys: number[] = [];
    for (let s = 0; s <= t; s++) {
      if (!visible(t, s)) continue;
      let dot = 0;
      for (let d = 0; d < hd; d++) dot += q[(n * T + t) * H * hd + h * hd + d] * k[(n * T + s) * Hkv * hd + kh * hd + d];
      scores.push(dot / Math.sqrt(hd) - (slopes ? slopes[h] * (t - s) : 0));
      keys.push(s);
    }
    const max = Math.max(...scores);
    const p = scores.map((sc) => Math.exp(sc - max));
    const sum = p.reduce((a, b) => a + b, 0);
    for (let d = 0; d < hd; d++) {
      let a = 0;
      keys.forEach((s, i) => (a += (p[i] / sum) * v[(n * T + s) * Hkv * hd + kh * hd + d]));
      y[(n * T + t) * H * hd + h * hd + d] = a;
    }
  }
  const out = new Float64Array(N * T * C); // y [N, T, H*hd] x Woᵀ
  for (let i = 0; i < N * T; i++) for (let c = 0; c < C; c++) {
    let a = 0;
    for (let j = 0; j < H * hd; j++) a += y[i * H * hd + j] * Wo[c * H * hd + j];
    out[i * C + c] = a;
  }
  return out;
}

/** max |a - b| over positions [from, from + T) of a [N, Ta, C] (flat) and all of b [N, T, C]. */
function diffRows(a: ArrayLike<number>, Ta: number, from: number, b: Tensor): number {
  const [N, T, C] = b.shape;
  let worst = 0;
  for (let n = 0; n < N; n++) for (let i = 0; i < T * C; i++) worst = Math.max(worst, Math.abs(a[(n * Ta + from) * C + i] - b.values[(n * T) * C + i]));
  return worst;
}

/** 9 (a prefill longer than the window), 10 one-token steps, 6 (a chunk longer than the window), 8 steps, 2, 5 steps: 40 tokens. */
const CHUNKS = [9, ...Array(10).fill(1), 6, ...Array(8).fill(1), 2, ...Array(5).fill(1)] as number[];

/** Feed x [N, 40, C] through the module chunk by chunk over `layer`; returns the worst |output - want| over every chunk. */
function streamWorst(m: GroupedQueryAttention | MultiheadAttention, x: Tensor, layer: KVCacheLayer, needWeights: boolean, want: ArrayLike<number>): number {
  const T = x.shape[1];
  let start = 0, worst = 0;
  noGrad(() => {
    for (const len of CHUNKS) {
      const chunk = slice(x, 1, start, start + len); // [N, len, C]
      const [y] = m.forward(chunk, chunk, chunk, { cache: layer, isCausal: true, needWeights });
      worst = Math.max(worst, diffRows(want, T, start, y));
      start += len;
    }
  });
  assert.equal(start, T);
  return worst;
}

interface Case {
  name: string;
  window: number;
  sinks: number;
  /** the module's slidingWindow (Infinity: none) */
  w: number;
  alibi: boolean;
  /** whether the cache holds everything the model sees (window >= w): then it equals the uncached forward */
  exact: boolean;
}

const CASES: Case[] = [
  { name: "window exactly equal: cache window 4 = slidingWindow 4, no sinks", window: 4, sinks: 0, w: 4, alibi: false, exact: true },
  { name: "cache window 7 > slidingWindow 4, no sinks", window: 7, sinks: 0, w: 4, alibi: false, exact: true },
  { name: "cache window 3 < slidingWindow 6: each query sees min(3, 6) keys", window: 3, sinks: 0, w: 6, alibi: false, exact: false },
  { name: "sinks 2 + cache window 4 >= slidingWindow 3: the model's window hides the sinks, so this too equals the model", window: 4, sinks: 2, w: 3, alibi: false, exact: true },
  { name: "sinks 2 + cache window 4, slidingWindow 9 (sinks, then a gap, then the last 4)", window: 4, sinks: 2, w: 9, alibi: false, exact: false },
  { name: "ALiBi, rolling cache window 5, no sinks", window: 5, sinks: 0, w: Infinity, alibi: true, exact: false },
  { name: "ALiBi + sinks 2 + cache window 5 (the sinks at their token distance)", window: 5, sinks: 2, w: Infinity, alibi: true, exact: false },
  { name: "ALiBi + slidingWindow 4 = cache window 4, no sinks", window: 4, sinks: 0, w: 4, alibi: true, exact: true },
  { name: "ALiBi + slidingWindow 9 + sinks 1 + cache window 6", window: 6, sinks: 1, w: 9, alibi: true, exact: false },
];

describe("streaming cache with slidingWindow / ALiBi: GQA module (H 4, Hkv 2), batch 2, float64, against attention written out", () => {
  for (const c of CASES) {
    test(c.name, () => {
      const opts = { dtype: "float64" as const, seed: 11, batchFirst: true, slidingWindow: c.w === Infinity ? null : c.w, alibi: c.alibi };
      const m = new GroupedQueryAttention(16, 4, 2, opts);
      const x = randn([2, 40, 16], { seed: 12, dtype: "float64" });
      const want = reference(m, x, visibleRule(c.window, c.sinks, c.w), c.alibi ? SLOPES4 : null);
      for (const needWeights of [false, true]) {
        const cache = new KVCache({ window: c.window, sinkTokens: c.sinks });
        const worst = streamWorst(m, x, cache.layer(0), needWeights, want);
        assert.ok(worst <= 1e-12, `${needWeights ? "math path" : "decode step / fused"}: max |streamed - reference| = ${worst}`);
        assert.equal(cache.layer(0).length, c.window + c.sinks, "memory: sinkTokens + window positions held");
      }
      // the model's own uncached forward: equal when the cache holds everything the model sees, else not
      const [full] = noGrad(() => m.forward(x, x, x, { isCausal: true, needWeights: false }));
      const off = diffRows(want, 40, 0, full);
      if (c.exact) assert.ok(off <= 1e-12, `uncached forward vs reference: ${off}`);
      else assert.ok(off > 1e-4, `the cache drops keys the model would see, so the uncached forward differs (${off}): the test can fail`);
    });
  }

  test("multi-head attention (MultiheadAttention), ALiBi + slidingWindow 5 + sinks 1 + cache window 3, batch 3: equals its uncached forward with the streaming mask", () => {
    const m = new MultiheadAttention(12, 4, { dtype: "float64", seed: 5, batchFirst: true, alibi: true, slidingWindow: 5 });
    const x = randn([3, 40, 12], { seed: 6, dtype: "float64" });
    const rule = visibleRule(3, 1, Infinity); // the module's own window and ALiBi apply on top, at true positions (no cache)
    const mask = new Uint8Array(40 * 40).map((_, i) => (rule(Math.floor(i / 40), i % 40) ? 1 : 0));
    const [full] = noGrad(() => m.forward(x, x, x, { attnMask: new Tensor(mask, [40, 40], "bool"), needWeights: true }));
    for (const needWeights of [false, true]) {
      const worst = streamWorst(m, x, new KVCache({ window: 3, sinkTokens: 1 }).layer(0), needWeights, full.values);
      assert.ok(worst <= 1e-12, `needWeights ${needWeights}: ${worst}`);
    }
  });

  test("float32: cache window = slidingWindow streams within float32 rounding of the uncached forward", () => {
    const m = new GroupedQueryAttention(16, 4, 2, { seed: 2, batchFirst: true, slidingWindow: 4, alibi: true });
    const x = randn([2, 40, 16], { seed: 4 });
    const [full] = noGrad(() => m.forward(x, x, x, { isCausal: true, needWeights: false }));
    for (const needWeights of [false, true]) {
      const worst = streamWorst(m, x, new KVCache({ window: 4 }).layer(0), needWeights, full.values);
      assert.ok(worst <= 2e-6, `needWeights ${needWeights}: ${worst}`);
    }
  });

  test("ALiBi with a softcap cannot stream once the window has moved past the sinks: a clear error; without sinks it streams", () => {
    const m = new GroupedQueryAttention(16, 4, 2, { dtype: "float64", seed: 1, batchFirst: true, alibi: true, softcap: 5 });
    const x = randn([1, 12, 16], { seed: 2, dtype: "float64" });
    const cache = new KVCache({ window: 3, sinkTokens: 1 });
    noGrad(() => m.forward(slice(x, 1, 0, 6), slice(x, 1, 0, 6), slice(x, 1, 0, 6), { cache: cache.layer(0), isCausal: true, needWeights: false }));
    const two = slice(x, 1, 6, 8);
    assert.throws(
      () => noGrad(() => m.forward(two, two, two, { cache: cache.layer(0), isCausal: true, needWeights: false })),
      /GroupedQueryAttention\.forward: alibi with softcap 5 cannot stream through a KV cache whose window has moved past its sinkTokens .*float mask, which comes after the softcap.*use sinkTokens: 0/,
    );
    // sinkTokens 0: the held keys are consecutive positions, ALiBi stays symbolic (before the softcap)
    const [full] = noGrad(() => m.forward(x, x, x, { isCausal: true, needWeights: true }));
    const rolling = new KVCache({ window: 12 }).layer(0);
    let start = 0, worst = 0;
    noGrad(() => {
      for (const len of [5, 1, 1, 4, 1]) {
        const c = slice(x, 1, start, start + len);
        worst = Math.max(worst, diffRows(full.values, 12, start, m.forward(c, c, c, { cache: rolling, isCausal: true, needWeights: len > 1 })[0]));
        start += len;
      }
    });
    assert.ok(worst <= 1e-12, `${worst}`);
  });
});

describe("streaming paged cache with slidingWindow / ALiBi: rows of different lengths, each against its own written-out reference", () => {
  const cases = [
    { name: "slidingWindow 4 = cache window 4, blockSize 3", window: 4, sinks: 0, w: 4, alibi: false, blockSize: 3 },
    { name: "ALiBi + slidingWindow 6 + sinks 2 + cache window 3, blockSize 2", window: 3, sinks: 2, w: 6, alibi: true, blockSize: 2 },
    { name: "ALiBi + sinks 1 + cache window 4, blockSize 1", window: 4, sinks: 1, w: Infinity, alibi: true, blockSize: 1 },
    { name: "not streaming: ALiBi + slidingWindow 3, blockSize 2 (the padded rows' mask carries the window)", window: Infinity, sinks: 0, w: 3, alibi: true, blockSize: 2 },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const m = new GroupedQueryAttention(16, 4, 2, { dtype: "float64", seed: 21, batchFirst: true, slidingWindow: c.w === Infinity ? null : c.w, alibi: c.alibi });
      const lens = [3, 11, 1]; // prompt lengths
      const steps = 14;
      const total = lens.map((l) => l + steps + 2); // 13 one-token steps and one 3-token chunk
      const xs = total.map((T, n) => randn([1, T, 16], { seed: 30 + n, dtype: "float64" }));
      const want = xs.map((x) => reference(m, x, visibleRule(c.window, c.sinks, c.w), c.alibi ? SLOPES4 : null));
      for (const needWeights of [false, true]) {
        const cache = new PagedKVCache({ blockSize: c.blockSize, ...(c.window === Infinity ? {} : { window: c.window, sinkTokens: c.sinks }) });
        const layer = cache.layer(0);
        const at = [...lens];
        let worst = 0;
        noGrad(() => {
          lens.forEach((L, n) => {
            cache.select([n]);
            const p = slice(xs[n], 1, 0, L);
            worst = Math.max(worst, diffRows(want[n], total[n], 0, m.forward(p, p, p, { cache: layer, isCausal: true, needWeights })[0]));
          });
          for (let s = 0; s < steps; s++) {
            const ids = s === 4 ? [2, 0] : [0, 1, 2]; // a step with a row left out, in another order
            const T = s === 9 ? 3 : 1; // one 3-token chunk: padded rows with their own masks and positions
            if (ids.some((n) => at[n] + T > total[n])) continue;
            const chunk = concat(ids.map((n) => slice(xs[n], 1, at[n], at[n] + T)), 0); // [rows, T, C]
            cache.select(ids);
            const [y] = m.forward(chunk, chunk, chunk, { cache: layer, isCausal: true, needWeights });
            ids.forEach((n, i) => {
              worst = Math.max(worst, diffRows(want[n], total[n], at[n], slice(y, 0, i, i + 1)));
              at[n] += T;
            });
          }
        });
        assert.ok(worst <= 1e-12, `needWeights ${needWeights}: max |streamed paged - reference| = ${worst}`);
        const ring = Math.ceil(Math.min(c.window + c.sinks, Math.max(...total)) / c.blockSize);
        [0, 1, 2].forEach((n) => assert.ok(cache.blockTable(n).length <= ring, `row ${n} holds at most ${ring} blocks`));
      }
    });
  }
});

describe("GPT with a sliding window (Mistral's rolling buffer) or ALiBi streams exactly", () => {
  test("tiny-gqa with slidingWindow 4, KVCache({ window: 4 }): every chunk's logits equal the uncached forward (float64); generate gives the same tokens as a plain cache, paged too", () => {
    const m = new GPT(gptConfig("tiny-gqa", { slidingWindow: 4 }), { seed: 3, dtype: "float64" });
    m.eval();
    const cache = new KVCache({ window: 4 });
    const row: number[] = [];
    let worst = 0;
    noGrad(() => {
      for (const T of CHUNKS) {
        const fresh = Array.from({ length: T }, (_, i) => ((row.length + i) * 17 + 5) % 64);
        const start = row.length;
        row.push(...fresh);
        const step = m.forward([fresh], { cache }); // [1, T, V]
        const full = m.forward([row]); // [1, start + T, V]
        worst = Math.max(worst, diffRows(full.values, row.length, start, step));
      }
    });
    assert.ok(worst <= 1e-10, `max |streamed - uncached| = ${worst}`);
    assert.equal(cache.layer(0).length, 4, "4 positions held per layer");
    const prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]];
    const plain = prompts.map((p) => generate(m, [p], { maxNewTokens: 30 })[0]);
    assert.deepEqual(prompts.map((p) => generate(m, [p], { maxNewTokens: 30, window: 4 })[0]), plain, "streaming");
    assert.deepEqual(generate(m, prompts, { maxNewTokens: 30, window: 4, paged: { blockSize: 3 } }), plain, "paged streaming, rows of different lengths");
    // the streamed run can run past maxSeqLen (64) with rope, holding 4 positions
    assert.equal(generate(m, [[1, 2, 3]], { maxNewTokens: 80, window: 4 })[0].length, 83);
  });
});

describe("the ring and the decode step over it, read directly", () => {
  test("ringSlot / ringPosition / ringHeld: window 3, sinkTokens 1, after positions 0..5 the slots hold [0 | 4 5 3]", () => {
    const w = { window: 3, sinkTokens: 1 };
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((p) => ringSlot(w, p)), [0, 1, 2, 3, 1, 2]);
    assert.deepEqual([0, 1, 2, 3].map((s) => ringPosition(w, 6, s)), [0, 4, 5, 3]);
    assert.deepEqual(ringHeld(w, 6), [0, 3, 4, 5]);
    assert.deepEqual([0, 1, 2].map((s) => ringPosition(w, 3, s)), [0, 1, 2], "before the ring wraps, slot s holds position s");
    for (let seen = 1; seen < 30; seen++) { // the inverse, on every held position
      for (const p of ringHeld(w, seen)) assert.equal(ringPosition(w, seen, ringSlot(w, p)), p, `seen ${seen}, position ${p}`);
    }
  });

  test("decodeAttention over a wrapped ring (window, ALiBi, GQA, batch 2) equals sdpa's math path over the held keys in position order", () => {
    const [N, H, Hkv, E, Ev] = [2, 4, 2, 5, 3];
    for (const [window, sinks, w] of [[4, 0, 4], [5, 2, 3], [5, 2, 9], [3, 1, 2]]) {
      const cache = new KVCache({ window, sinkTokens: sinks });
      const layer = cache.layer(0);
      const seen = 23; // the ring has wrapped several times
      const k = randn([N, Hkv, seen, E], { seed: window * 10 + sinks, dtype: "float64" });
      const v = randn([N, Hkv, seen, Ev], { seed: window * 10 + sinks + 1, dtype: "float64" });
      for (let p = 0; p < seen; p++) layer.push(slice(k, 2, p, p + 1), slice(v, 2, p, p + 1));
      const q = randn([N, H, 1, E], { seed: 99, dtype: "float64" });
      const got = new Tensor(decodeAttention(q.values as Float64Array, layer.storage()!, H, 0.5, "bottom-right", {
        alignment: "bottom-right", window: { left: w - 1, right: 0 }, alibiSlopes: SLOPES4, softcap: null, sinks: null,
      }), [N, H, 1, Ev], "float64");
      // the reference: the held positions in order, the window as a mask and ALiBi at token distances, by alibiBiasAt
      const held = ringHeld({ window, sinkTokens: sinks }, seen).filter((s) => s > seen - 1 - w);
      const kh = concat(held.map((s) => slice(k, 2, s, s + 1)), 2), vh = concat(held.map((s) => slice(v, 2, s, s + 1)), 2);
      const bias = alibiBiasAt(SLOPES4, new Tensor(Int32Array.of(seen - 1), [1, 1], "int32"), new Tensor(Int32Array.from(held), [1, held.length], "int32"));
      const want = scaledDotProductAttention(q, kh, vh, { implementation: "math", enableGqa: true, scale: 0.5, attnMask: bias });
      assertClose(got, want, 1e-12, `window ${window}, sinks ${sinks}, slidingWindow ${w}`);
    }
  });

  test("alibiBiasAt: a hand-worked row, and bad positions are refused", () => {
    // query at 10, keys at 0, 8, 10: distances 10, 2, 0
    const b = alibiBiasAt([0.5], new Tensor(Int32Array.of(10), [1, 1], "int32"), new Tensor(Int32Array.of(0, 8, 10), [1, 3], "int32"));
    assert.deepEqual(b.shape, [1, 1, 1, 3]);
    assert.deepEqual(Array.from(b.values), [-5, -1, -0]);
    assert.throws(() => alibiBiasAt([0.5], new Tensor(Float32Array.of(1), [1, 1]), new Tensor(Int32Array.of(1), [1, 1], "int32")), /alibiBiasAt: queryPositions must be an int32 Tensor \[R, L\] of token positions, got float32 \[1, 1\]/);
    assert.throws(() => alibiBiasAt([0.5], new Tensor(Int32Array.of(1, 2), [2, 1], "int32"), new Tensor(Int32Array.of(1), [1, 1], "int32")), /must have the same rows R/);
  });
});
