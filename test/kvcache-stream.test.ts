/**
 * The streaming KV cache (KVCache({ window, sinkTokens }), StreamingLLM) and the paged one
 * (PagedKVCache: blocks and block tables).
 *
 * The reference is a full forward over every token through the math path (needWeights: true) with
 * an explicit bool mask built here, independently of the caches:
 *   streaming   query t sees key s iff s <= t and (s < sinkTokens or s > t - window)
 *   paged       each row alone, causal (query t sees s <= t)
 *   paged with { window, sinkTokens }   each row alone, with the streaming mask
 * Every step's logits of cached decoding (the decode fast path for one-token steps, the masked
 * general path for prefills and multi-token chunks) must equal it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Tensor, noGrad, randn, scaledDotProductAttention, slice } from "../src/index.js";
import { KVCache, PagedKVCache } from "../src/nnNamespace.js";
import { decodeAttention } from "../src/attention/decode.js";
import { assertClose } from "./harness.js";
import { GPT, generate, gptConfig } from "../src/models/index.js";
import type { AttentionForwardOptions } from "../src/attention/moduleCommon.js";

type Visible = (t: number, s: number) => boolean;
const streamingMask = (window: number, sinks: number): Visible => (t, s) => s <= t && (s < sinks || s > t - window);
const causal: Visible = (t, s) => s <= t;

/** Run f with every block's self-attention given the explicit [T, T] mask `visible` on the math path. */
function withExplicitMask<R>(m: GPT, visible: Visible, f: () => R): R {
  const saved = [...m.blocks].map((b) => b.self_attn.forward);
  for (const b of m.blocks) {
    const attn = b.self_attn;
    const orig = attn.forward;
    attn.forward = (q: Tensor, k: Tensor, v: Tensor, opts: AttentionForwardOptions = {}) => {
      const T = q.shape[1]; // batch-first [N, T, C]
      const mask = new Uint8Array(T * T);
      for (let t = 0; t < T; t++) for (let s = 0; s < T; s++) mask[t * T + s] = visible(t, s) ? 1 : 0;
      return orig.call(attn, q, k, v, { ...opts, isCausal: false, attnMask: new Tensor(mask, [T, T], "bool"), needWeights: true });
    };
  }
  try {
    return f();
  } finally {
    [...m.blocks].forEach((b, i) => (b.self_attn.forward = saved[i]));
  }
}

/** max |a - b| between rows [fromA, fromA + T) of a [1, Ta, V] and rows [fromB, ..) of b [1, Tb, V]. */
function rowsDiff(a: Tensor, fromA: number, b: Tensor, fromB: number, T: number): number {
  const V = a.shape[2];
  let m = 0;
  for (let i = 0; i < T * V; i++) m = Math.max(m, Math.abs(a.values[fromA * V + i] - b.values[fromB * V + i]));
  return m;
}

const tokenAt = (i: number): number => (i * 17 + 5) % 64;

/**
 * max |step's batch row i, its T positions - the same positions of `row` recomputed in full|: row is
 * the sequence so far (its last T tokens the ones step computed), recomputed on the math path with
 * the explicit mask `visible` as one [1, len] forward.
 */
function againstFull(m: GPT, visible: Visible, row: number[], step: Tensor, i: number, T: number): number {
  const full = withExplicitMask(m, visible, () => m.forward([row])); // [1, len, V]
  const V = full.shape[2];
  const mine = new Tensor(step.values.subarray(i * T * V, (i + 1) * T * V), [1, T, V], step.dtype); // batch row i: [1, T, V]
  return rowsDiff(full, row.length - T, mine, 0, T);
}

describe("streaming cache { window, sinkTokens }: logits equal the masked full recomputation", () => {
  const cases = [
    { name: "tiny-gqa (rope, GQA)", config: gptConfig("tiny-gqa"), window: 5, sinks: 2 },
    { name: "tiny with rope (MHA)", config: gptConfig("tiny", { positional: "rope" }), window: 7, sinks: 0 },
    { name: "tiny (learned positions, within maxSeqLen)", config: gptConfig("tiny"), window: 1, sinks: 3 },
    { name: "tiny sinusoidal", config: gptConfig("tiny", { positional: "sinusoidal" }), window: 4, sinks: 4 },
  ];
  for (const dtype of ["float64", "float32"] as const) {
    for (const c of cases) {
      test(`${c.name}, window ${c.window}, sinkTokens ${c.sinks} (${dtype}): a 9-token prefill, one-token steps, a 3-token chunk, 40 tokens`, () => {
        const tol = dtype === "float64" ? 1e-10 : 2e-5;
        const m = new GPT(c.config, { seed: 3, dtype });
        m.eval();
        const cache = new KVCache({ window: c.window, sinkTokens: c.sinks });
        const row: number[] = [];
        const chunks = [9, ...Array.from({ length: 20 }, () => 1), 3, ...Array.from({ length: 8 }, () => 1)]; // 40 tokens
        let worst = 0;
        noGrad(() => {
          for (const T of chunks) {
            const start = row.length;
            const fresh = Array.from({ length: T }, (_, i) => tokenAt(start + i));
            row.push(...fresh);
            const step = m.forward([fresh], { cache }); // [1, T, V]
            const full = withExplicitMask(m, streamingMask(c.window, c.sinks), () => m.forward([row])); // [1, start + T, V]
            worst = Math.max(worst, rowsDiff(full, start, step, 0, T));
          }
        });
        assert.ok(worst <= tol, `max |streamed - masked full| = ${worst}`);
        assert.equal(cache.length, 40, "the next position");
        assert.equal(cache.layer(0).length, Math.min(40, c.window + c.sinks), "positions held");
        // the plain causal recomputation differs once tokens have left the window: the test can fail
        const plain = noGrad(() => m.forward([row]));
        const last = noGrad(() => withExplicitMask(m, streamingMask(c.window, c.sinks), () => m.forward([row])));
        assert.ok(rowsDiff(plain, 39, last, 39, 1) > 1e-3, "the window changes the logits");
      });
    }
  }

  test("past maxSeqLen (rope): 100 streamed tokens on a maxSeqLen-64 model equal the masked recomputation on a copy with room for them", () => {
    const m = new GPT(gptConfig("tiny-gqa"), { seed: 8, dtype: "float64" }); // maxSeqLen 64
    const ref = new GPT(gptConfig("tiny-gqa", { maxSeqLen: 128 }), { seed: 9, dtype: "float64" });
    ref.loadStateDict(m.stateDict()); // rotary positions: the same weights, only the limit differs
    m.eval();
    ref.eval();
    const cache = new KVCache({ window: 6, sinkTokens: 2 });
    const row = [1, 2, 3];
    let worst = 0;
    noGrad(() => {
      let step = m.forward([row], { cache });
      for (let i = 3; i <= 100; i++) {
        if (i >= 60) worst = Math.max(worst, rowsDiff(withExplicitMask(ref, streamingMask(6, 2), () => ref.forward([row])), i - 1, step, 0, 1));
        if (i === 100) break;
        row.push(tokenAt(i));
        step = m.forward([[tokenAt(i)]], { cache });
      }
    });
    assert.ok(worst <= 1e-10, `max |streamed - masked full| = ${worst}`);
    assert.equal(cache.length, 100);
  });

  test("memory is flat once sinkTokens + window positions are held, past maxSeqLen with rotary positions", () => {
    const m = new GPT(gptConfig("tiny-gqa"), { seed: 1 }); // maxSeqLen 64
    m.eval();
    const cache = new KVCache({ window: 16, sinkTokens: 4 });
    const used: number[] = [];
    const allocated: number[] = [];
    noGrad(() => {
      m.forward([[1, 2, 3]], { cache });
      for (let i = 3; i < 300; i++) {
        m.forward([[tokenAt(i)]], { cache });
        used.push(cache.bytes());
        allocated.push(cache.allocatedBytes());
      }
    });
    const perToken = cache.bytesPerToken(); // 2 layers × (k + v) × 2 kv heads × 8 dims × 4 bytes = 256
    assert.equal(perToken, 2 * 2 * 2 * 8 * 4);
    assert.equal(cache.length, 300);
    // after token 20 (index 16: 4 prompt... 3 + 17 = 20 tokens) every reading is 20 positions' worth
    for (let i = 17; i < used.length; i++) {
      assert.equal(used[i], 20 * perToken, `bytes in use after ${i + 4} tokens`);
      assert.equal(allocated[i], 20 * perToken, `bytes allocated after ${i + 4} tokens`);
    }
    assert.ok(used[5] < 20 * perToken, "it grows before it is full");
  });

  test("generate({ window, sinkTokens }) streams past maxSeqLen with rope; learned positions stop there; errors", () => {
    const rope = new GPT(gptConfig("tiny-gqa"), { seed: 2 });
    const out = generate(rope, [[1, 2, 3]], { maxNewTokens: 100, window: 8, sinkTokens: 2 })[0];
    assert.equal(out.length, 103);
    // the same tokens as streaming by hand (forward with a windowed cache, argmax each step)
    const cache = new KVCache({ window: 8, sinkTokens: 2 });
    const row = [1, 2, 3];
    noGrad(() => {
      let logits = rope.forward([row], { cache });
      for (let s = 0; s < 100; s++) {
        const V = logits.shape[2];
        const last = Array.from(logits.values.subarray(logits.values.length - V));
        row.push(last.indexOf(Math.max(...last)));
        if (s < 99) logits = rope.forward([[row[row.length - 1]]], { cache });
      }
    });
    assert.deepEqual(out, row);
    const learned = new GPT("tiny", { seed: 2 });
    assert.equal(generate(learned, [[1, 2, 3]], { maxNewTokens: 100, window: 8, sinkTokens: 2 })[0].length, 64, "capped at maxSeqLen 64");
    const full = new KVCache({ window: 8 });
    noGrad(() => learned.forward([Array.from({ length: 64 }, (_, i) => tokenAt(i))], { cache: full }));
    assert.throws(() => noGrad(() => learned.forward([[1]], { cache: full })), /positions 64\.\.64 go past maxSeqLen 64 .*learned positions end there.*positional: "rope"/);
    assert.throws(() => generate(rope, [[1]], { maxNewTokens: 3, window: 4, useCache: false }), /window and sinkTokens configure the KV cache; they cannot be combined with useCache: false/);
    assert.throws(() => generate(rope, [[1]], { maxNewTokens: 3, sinkTokens: 4 }), /sinkTokens needs a window/);
  });

  test("bad options are refused with clear messages", () => {
    assert.throws(() => new KVCache({ window: 0 }), /KVCache: window must be a positive integer \(positions kept besides the sinks\), got 0/);
    assert.throws(() => new KVCache({ window: 2.5 }), /window must be a positive integer.*got 2\.5/);
    assert.throws(() => new KVCache({ window: "8" as unknown as number }), /window must be a positive integer.*got "8"/);
    assert.throws(() => new KVCache({ window: 8, sinkTokens: -1 }), /KVCache: sinkTokens must be a non-negative integer \(the first positions kept forever\), got -1/);
    assert.throws(() => new KVCache({ window: 8, sinkTokens: 1.5 }), /sinkTokens must be a non-negative integer.*got 1\.5/);
    assert.throws(() => new KVCache({ sinkTokens: 4 }), /KVCache: sinkTokens needs a window/);
    assert.throws(() => new KVCache({ windw: 8 } as never), /unknown option "windw" in options; did you mean "window"\?/);
    assert.throws(() => new PagedKVCache({ blockSize: 0 }), /PagedKVCache: blockSize must be a positive integer, got 0/);
    assert.throws(() => new PagedKVCache({ block_size: 4 } as never), /did you mean "blockSize"\?/);
    assert.throws(() => new PagedKVCache().select([1, 1]), /sequence 1 is selected twice/);
    assert.throws(() => new PagedKVCache().select([-1]), /ids\[0\] must be a non-negative integer sequence id, got -1/);
  });

  test("a windowed cache takes no attnMask / keyPaddingMask and must be causal", () => {
    const m = new GPT(gptConfig("tiny-gqa"), { seed: 1 });
    const cache = new KVCache({ window: 4 });
    const attn = [...m.blocks][0].self_attn;
    const x = new Tensor(new Float32Array(1 * 2 * 32), [1, 2, 32]);
    const pad = new Tensor(new Uint8Array(2), [1, 2], "bool");
    assert.throws(() => noGrad(() => attn.forward(x, x, x, { cache: cache.layer(0), isCausal: true, keyPaddingMask: pad, needWeights: false })), /windowed cache, which computes its own mask/);
    assert.throws(() => noGrad(() => attn.forward(x, x, x, { cache: cache.layer(1), needWeights: false })), /windowed cache, for causal self-attention; pass isCausal: true/);
  });

  test("a model whose attention measures distances (slidingWindow, ALiBi, both) streams: the masked full recomputation, at token distances (kvcache-window.test.ts has the edge cases)", () => {
    for (const extra of [{ slidingWindow: 3 }, { positional: "alibi" as const }, { positional: "alibi" as const, slidingWindow: 6 }]) {
      const m = new GPT(gptConfig("tiny", { ...extra, numLayers: 1 }), { seed: 2, dtype: "float64" });
      m.eval();
      for (const paged of [false, true]) {
        const cache = paged ? new PagedKVCache({ blockSize: 2, window: 4, sinkTokens: 1 }) : new KVCache({ window: 4, sinkTokens: 1 });
        const row: number[] = [];
        let worst = 0;
        noGrad(() => {
          for (const T of [6, 1, 1, 1, 5, 1, 1, 1, 1]) {
            const start = row.length;
            row.push(...Array.from({ length: T }, (_, i) => tokenAt(start + i)));
            const step = m.forward([row.slice(start)], { cache });
            const full = withExplicitMask(m, streamingMask(4, 1), () => m.forward([row])); // the module's window and ALiBi at true positions
            worst = Math.max(worst, rowsDiff(full, start, step, 0, T));
          }
        });
        assert.ok(worst <= 1e-10, `${JSON.stringify(extra)}${paged ? ", paged" : ""}: max |streamed - masked full| = ${worst}`);
      }
      assert.equal(generate(m, [[1, 2, 3]], { maxNewTokens: 4, window: 4, sinkTokens: 1 })[0].length, 7);
    }
    const m = new GPT(gptConfig("tiny", { positional: "rope", softcap: 5, sinks: true, numLayers: 1 }), { seed: 2 });
    assert.equal(generate(m, [[1, 2, 3]], { maxNewTokens: 4, window: 4, sinkTokens: 1 })[0].length, 7);
  });
});

describe("a streaming paged cache: rows of different lengths, each in its own ring of blocks", () => {
  const cases = [
    { name: "tiny-gqa (rope, GQA)", config: gptConfig("tiny-gqa"), window: 5, sinks: 2, blockSize: 2 },
    { name: "tiny with rope (MHA)", config: gptConfig("tiny", { positional: "rope" }), window: 4, sinks: 0, blockSize: 3 },
    { name: "tiny (learned positions, within maxSeqLen)", config: gptConfig("tiny"), window: 1, sinks: 3, blockSize: 1 },
  ];
  for (const c of cases) {
    test(`${c.name}, window ${c.window}, sinkTokens ${c.sinks}, blockSize ${c.blockSize}: every row's logits equal its own masked full recomputation`, () => {
      const m = new GPT(c.config, { seed: 5, dtype: "float64" });
      m.eval();
      const rows = [[5, 9, 2], [1, 1, 60, 4, 12, 7, 8, 30, 31, 33], [3]];
      const cache = new PagedKVCache({ blockSize: c.blockSize, window: c.window, sinkTokens: c.sinks });
      let worst = 0;
      const check = (n: number, step: Tensor, i: number, T: number): void => {
        worst = Math.max(worst, againstFull(m, streamingMask(c.window, c.sinks), rows[n], step, i, T));
      };
      noGrad(() => {
        rows.forEach((r, n) => {
          cache.select([n]);
          check(n, m.forward([r], { cache }), 0, r.length); // a prefill past the window: the masked path
        });
        for (let s = 0; s < 14; s++) {
          const ids = s === 4 ? [2, 0] : [0, 1, 2]; // a step with a row left out, in another order
          const T = s === 9 ? 3 : 1; // one 3-token chunk per row: the masked path; else the decode step over the rings
          const next = ids.map((n) => Array.from({ length: T }, (_, t) => tokenAt(s * 7 + n * 3 + t)));
          ids.forEach((n, i) => rows[n].push(...next[i]));
          cache.select(ids);
          const step = m.forward(next, { cache });
          ids.forEach((n, i) => check(n, step, i, T));
        }
      });
      assert.ok(worst <= 1e-10, `max |streamed paged - masked full| = ${worst}`);
      assert.deepEqual([0, 1, 2].map((n) => cache.sequenceLength(n)), rows.map((r) => r.length), "each row's next position");
      const ring = Math.ceil((c.window + c.sinks) / c.blockSize);
      [0, 1, 2].forEach((n) => assert.ok(cache.blockTable(n).length <= ring, `row ${n} holds ${cache.blockTable(n).length} blocks, at most ${ring}`));
      // the test can fail: the plain causal recomputation differs once tokens have left the window
      const plain = noGrad(() => m.forward([rows[1]]));
      const masked = noGrad(() => withExplicitMask(m, streamingMask(c.window, c.sinks), () => m.forward([rows[1]])));
      assert.ok(rowsDiff(plain, rows[1].length - 1, masked, rows[1].length - 1, 1) > 1e-3, "the window changes the logits");
    });
  }

  test("generate() with rows of different lengths and a window streams each row as it would alone (greedy; past maxSeqLen with rope)", () => {
    const m = new GPT(gptConfig("tiny-gqa"), { seed: 7 }); // maxSeqLen 64
    const prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]];
    const opts = { maxNewTokens: 70, window: 6, sinkTokens: 2 };
    const alone = prompts.map((p) => generate(m, [p], opts)[0]); // the single-row streaming KVCache
    assert.deepEqual(generate(m, prompts, opts), alone);
    assert.deepEqual(generate(m, prompts, { ...opts, paged: { blockSize: 3 } }), alone, "blockSize 3");
    assert.ok(alone.every((r, n) => r.length === prompts[n].length + 70), "past maxSeqLen 64");
    const learned = new GPT(gptConfig("tiny"), { seed: 7 });
    assert.deepEqual(generate(learned, prompts, opts).map((r) => r.length), [64, 64, 64], "learned positions: capped at maxSeqLen");
    assert.throws(() => new PagedKVCache({ window: 0 }), /PagedKVCache: window must be a positive integer/);
    assert.throws(() => new PagedKVCache({ sinkTokens: 2 }), /PagedKVCache: sinkTokens needs a window/);
    assert.throws(() => generate(m, prompts, { ...opts, paged: { window: 3 } as never }), /generate: unknown option "window" in paged/);
  });
});

describe("the layers read directly", () => {
  test("decodeAttention over paged blocks equals the textbook path per row: lengths 1, 3, 17, 33, blockSize 1, 4, 16, grouped heads", () => {
    let seed = 100;
    for (const B of [1, 4, 16]) {
      for (const [H, Hkv] of [[3, 3], [4, 2], [4, 1]]) {
        const lens = [17, 1, 33, 3];
        const [E, Ev] = [5, 7];
        const cache = new PagedKVCache({ blockSize: B });
        const layer = cache.layer(0);
        const k = lens.map((S) => randn([1, Hkv, S, E], { seed: seed++, dtype: "float64" }));
        const v = lens.map((S) => randn([1, Hkv, S, Ev], { seed: seed++, dtype: "float64" }));
        // fill in two pushes per sequence, interleaved, so that the sequences' blocks are not in order
        for (const half of [0, 1]) {
          lens.forEach((S, n) => {
            const [a, b] = half === 0 ? [0, S >> 1] : [S >> 1, S];
            if (a === b) return;
            cache.select([n]);
            layer.push(slice(k[n], 2, a, b), slice(v[n], 2, a, b));
          });
        }
        cache.select([0, 1, 2, 3]);
        const q = randn([4, H, 1, E], { seed: seed++, dtype: "float64" });
        const got = new Tensor(decodeAttention(q.values as Float64Array, layer.storage()!, H, 0.4, null), [4, H, 1, Ev], "float64");
        lens.forEach((S, n) => {
          const want = scaledDotProductAttention(slice(q, 0, n, n + 1), k[n], v[n], { implementation: "math", enableGqa: true, scale: 0.4 });
          assertClose(slice(got, 0, n, n + 1), want, 1e-12, `blockSize ${B}, H ${H}, Hkv ${Hkv}, row ${n} (length ${S})`);
        });
      }
    }
  });

  test("WindowKVCacheLayer.append (the plain read): one token sees exactly the held positions; a chunk past the window is refused", () => {
    const cache = new KVCache({ window: 3, sinkTokens: 1 });
    const layer = cache.layer(0);
    const at = (p: number): Tensor => new Tensor(Float64Array.from([p, 0]), [1, 1, 1, 2]); // the key of position p is [p, 0]
    const held = (k: Tensor): number[] => Array.from({ length: k.shape[2] }, (_, s) => k.values[s * 2]);
    let k = layer.append(at(0), at(0))[0];
    for (let p = 1; p < 4; p++) k = layer.append(at(p), at(p))[0];
    assert.deepEqual(held(k), [0, 1, 2, 3]);
    k = layer.append(at(4), at(4))[0]; // position 4 sees the sink 0 and 2, 3, 4
    assert.deepEqual(held(k), [0, 2, 3, 4]);
    k = layer.append(at(5), at(5))[0];
    assert.deepEqual(held(k), [0, 3, 4, 5]);
    assert.equal(layer.length, 4);
    assert.equal(layer.positionOffset(), 6);
    const two = new Tensor(Float64Array.from([6, 0, 7, 0]), [1, 1, 2, 2]);
    assert.throws(() => layer.append(two, two), /2 tokens at positions 6\.\.7 go past the window of layer 0 \(sinkTokens 1 \+ window 3\).*use appendVisible\(\)/);
  });
});

describe("paged cache: prompts of different lengths decode together, each row as if alone", () => {
  for (const [name, config] of [["tiny (learned, MHA)", gptConfig("tiny")], ["tiny-gqa (rope, GQA)", gptConfig("tiny-gqa")]] as const) {
    test(`${name}: prefill each row alone, then batched one-token steps and a 2-token step; every row's logits equal its own causal recomputation`, () => {
      const m = new GPT(config, { seed: 5, dtype: "float64" });
      m.eval();
      const rows = [[5, 9, 2], [1, 1, 60, 4, 12, 7, 8], [3]];
      const cache = new PagedKVCache({ blockSize: 2 });
      let worst = 0;
      const check = (n: number, step: Tensor, i: number, T: number): void => {
        worst = Math.max(worst, againstFull(m, causal, rows[n], step, i, T));
      };
      noGrad(() => {
        rows.forEach((r, n) => {
          cache.select([n]);
          check(n, m.forward([r], { cache }), 0, r.length);
        });
        assert.deepEqual([0, 1, 2].map((n) => cache.sequenceLength(n)), [3, 7, 1]);
        for (let s = 0; s < 9; s++) {
          const ids = s === 4 ? [2, 0] : [0, 1, 2]; // a step with some rows left out, in another order
          const next = ids.map((n) => tokenAt(s * 3 + n));
          ids.forEach((n, i) => rows[n].push(next[i]));
          cache.select(ids);
          const step = m.forward(next.map((t) => [t]), { cache }); // one token per row: the decode fast path over blocks
          ids.forEach((n, i) => check(n, step, i, 1));
        }
        // two tokens per row at once, rows of different lengths: the padded, masked general path
        const two = [0, 1, 2].map((n) => [tokenAt(40 + n), tokenAt(50 + n)]);
        two.forEach((t, n) => rows[n].push(...t));
        cache.select([0, 1, 2]);
        const step = m.forward(two, { cache });
        [0, 1, 2].forEach((n) => check(n, step, n, 2));
      });
      assert.ok(worst <= 1e-10, `max |paged - alone| = ${worst}`);
      // block tables: row n of length len holds ceil(len / 2) blocks; free() gives them back for reuse
      const lens = [0, 1, 2].map((n) => cache.sequenceLength(n));
      assert.deepEqual(lens, rows.map((r) => r.length));
      assert.equal(cache.blocksInUse, lens.reduce((a, l) => a + Math.ceil(l / 2), 0));
      const freed = cache.blockTable(1);
      cache.free(1);
      assert.equal(cache.sequenceLength(1), 0);
      assert.equal(cache.blocksInUse, lens[0] / 2 + Math.ceil(lens[2] / 2) + (lens[0] % 2 ? 0.5 : 0));
      cache.select([3]);
      noGrad(() => m.forward([[1, 2, 3]], { cache }));
      assert.ok(cache.blockTable(3).every((b) => freed.includes(b)), "a new sequence takes the freed blocks");
    });
  }

  test("generate with prompts of different lengths equals generating each prompt alone (greedy, stop tokens)", () => {
    for (const preset of ["tiny", "tiny-gqa"] as const) {
      const m = new GPT(preset, { seed: 7 });
      const prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11], [12, 13]];
      const alone = prompts.map((p) => generate(m, [p], { maxNewTokens: 10 })[0]);
      assert.deepEqual(generate(m, prompts, { maxNewTokens: 10 }), alone, preset);
      assert.deepEqual(generate(m, prompts, { maxNewTokens: 10, paged: { blockSize: 3 } }), alone, `${preset}, blockSize 3`);
      const stop = alone[1][9];
      const stopped = generate(m, prompts, { maxNewTokens: 10, stopToken: stop });
      stopped.forEach((r, n) => {
        const at = alone[n].indexOf(stop, prompts[n].length);
        assert.deepEqual(r, at < 0 ? alone[n] : alone[n].slice(0, at + 1), `${preset} row ${n} with a stop token`);
      });
      // onToken streams each row's new tokens in order, as the returned rows hold them
      const streamed: number[][] = prompts.map(() => []);
      const out = generate(m, prompts, { maxNewTokens: 10, onToken: (t, n) => streamed[n].push(t) });
      assert.deepEqual(streamed, out.map((r, n) => r.slice(prompts[n].length)), `${preset}: onToken with a paged cache`);
      // equal lengths with paged: the same tokens as the rectangular path
      assert.deepEqual(generate(m, [[1, 2], [3, 4]], { maxNewTokens: 6, paged: {} }), generate(m, [[1, 2], [3, 4]], { maxNewTokens: 6 }));
      // maxLength caps each row
      assert.deepEqual(generate(m, prompts, { maxNewTokens: 10, maxLength: 8 }).map((r) => r.length), [8, 8, 8, 8]);
    }
    const m = new GPT("tiny-gqa", { seed: 7 });
    assert.throws(() => generate(m, [[1], [2, 3]], { maxNewTokens: 2, useCache: false }), /needs useCache: true/);
    assert.throws(() => generate(m, [[1], [2, 3]], { maxNewTokens: 2, paged: { blocksize: 4 } as never }), /unknown option "blocksize" in paged; did you mean "blockSize"\?/);
  });

  test("a forward whose batch does not match the selected sequences is refused", () => {
    const m = new GPT("tiny-gqa", { seed: 1 });
    const cache = new PagedKVCache();
    cache.select([0, 1]);
    assert.throws(() => noGrad(() => m.forward([[1, 2, 3]], { cache })), /GPT.forward: the cache has 2 selected sequences but the call has 1 batch rows; select\(\) one sequence per row/);
  });
});
