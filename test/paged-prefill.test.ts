/**
 * The paged cache's packed prefill (PagedKVCache.selectPacked: several prompts in one forward of one
 * row) and generate()'s batched prefill over it (prefillBatched).
 *
 * References, none of them the packed path:
 *   - each prompt's own forward without a cache (plain causal), or with a streaming window through the
 *     single-row streaming KVCache (kvwindow.ts, a ring of its own): the packed forward's logits at
 *     every position, and the steps after it;
 *   - prefillEachAlone, the readable form (each prompt alone over the paged cache): prefillBatched's
 *     last-position logits, to float32 rounding;
 *   - generate() of each prompt alone (the rectangular path over a plain KVCache): the batch's tokens;
 *   - the PyTorch twins' greedy tokens for the fixtures' prompts (lengths 1, 4, 7, which take the
 *     packed path) are checked in test/pretrained-batch-paged.test.ts.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Tensor, fromPretrained, noGrad } from "../src/index.js";
import { KVCache, PagedKVCache } from "../src/nnNamespace.js";
import { GPT, type GPTConfig, generate, gptConfig } from "../src/models/index.js";
import { type CausalLM, PACKED_PREFILL_TOKENS, prefillBatched, prefillEachAlone } from "../src/models/generate.js";

const HF = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "hf");

/** Prompt n of the given length: token ids spread over 0..V-1. */
const promptOf = (len: number, n: number, V: number): number[] => Array.from({ length: len }, (_, i) => (i * 17 + n * 5 + 3) % V);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Positions [from, from + T) of logits [1, L, V], as one array. */
const positions = (logits: Tensor, from: number, T: number): ArrayLike<number> => {
  const V = logits.shape[2];
  return logits.values.subarray(from * V, (from + T) * V);
};

/** model.forward, counted. */
function countForwards(model: CausalLM): { calls: number[][]; restore: () => void } {
  const orig = model.forward;
  const calls: number[][] = [];
  model.forward = function (this: CausalLM, ...args: Parameters<CausalLM["forward"]>) {
    const idx = args[0] as number[][];
    calls.push([idx.length, idx[0].length]);
    return orig.apply(this, args);
  } as CausalLM["forward"];
  return { calls, restore: () => (model.forward = orig) };
}

describe("PagedKVCache.selectPacked: prompts packed into one row give each prompt's own logits", () => {
  const configs: [string, GPTConfig][] = [
    ["tiny (learned positions, MHA)", gptConfig("tiny")],
    ["tiny-gqa (rope, GQA)", gptConfig("tiny-gqa")],
    ["tiny sinusoidal", gptConfig("tiny", { positional: "sinusoidal" })],
    ["tiny alibi, sliding window 3", gptConfig("tiny", { positional: "alibi", slidingWindow: 3 })],
  ];
  for (const [name, config] of configs) {
    test(`${name}: every position of the packed forward, then one-token and two-token steps, equal each row's own forward (blockSize 2, 16)`, () => {
      const m = new GPT(config, { seed: 5, dtype: "float64" });
      m.eval();
      for (const blockSize of [2, 16]) {
        const rows = [[5, 9, 2], [1, 1, 60, 4, 12, 7, 8], [3], [7, 7]];
        const cache = new PagedKVCache({ blockSize });
        let worst = 0;
        noGrad(() => {
          cache.selectPacked([0, 1, 2, 3], rows.map((r) => r.length));
          assert.deepEqual(cache.positionOffset(), { packed: [3, 7, 1, 2] });
          const packed = m.forward([rows.flat()], { cache }); // [1, 13, V]
          let at = 0;
          for (const r of rows) {
            worst = Math.max(worst, maxDiff(positions(packed, at, r.length), m.forward([r]).values)); // no cache: plain causal
            at += r.length;
          }
          assert.deepEqual([0, 1, 2, 3].map((n) => cache.sequenceLength(n)), [3, 7, 1, 2]);
          assert.equal(cache.blocksInUse, rows.reduce((s, r) => s + Math.ceil(r.length / blockSize), 0), "no padding stored");
          for (const T of [1, 2, 1]) { // the decode step over the blocks, the masked multi-token path, the decode step
            const next = rows.map((r, n) => promptOf(T, n + r.length, 64));
            next.forEach((t, n) => rows[n].push(...t));
            cache.select([3, 1, 0, 2]); // another order
            const step = m.forward([3, 1, 0, 2].map((n) => next[n]), { cache }); // [4, T, V]
            [3, 1, 0, 2].forEach((n, i) => {
              const full = m.forward([rows[n]]);
              worst = Math.max(worst, maxDiff(positions(step, i * T, T), positions(full, rows[n].length - T, T)));
            });
          }
        });
        assert.ok(worst <= 1e-10, `${name}, blockSize ${blockSize}: max |packed - alone| = ${worst}`);
      }
    });
  }

  test("streaming ({ window 3, sinkTokens 1 }): a packed prefill past the window equals each row through the single-row streaming KVCache", () => {
    const m = new GPT(gptConfig("tiny-gqa"), { seed: 2, dtype: "float64" });
    m.eval();
    const rows = [[1, 1, 60, 4, 12, 7, 8, 9], [5, 9], [3, 30, 31, 32, 33]];
    const w = { window: 3, sinkTokens: 1 };
    let worst = 0;
    noGrad(() => {
      const cache = new PagedKVCache({ blockSize: 2, ...w });
      cache.selectPacked([0, 1, 2], rows.map((r) => r.length));
      const packed = m.forward([rows.flat()], { cache });
      const alone = rows.map(() => new KVCache(w));
      let at = 0;
      rows.forEach((r, n) => {
        worst = Math.max(worst, maxDiff(positions(packed, at, r.length), m.forward([r], { cache: alone[n] }).values));
        at += r.length;
      });
      for (let s = 0; s < 6; s++) {
        cache.select([0, 1, 2]);
        const step = m.forward(rows.map((_, n) => [(s * 7 + n) % 64]), { cache });
        rows.forEach((_, n) => (worst = Math.max(worst, maxDiff(positions(step, n, 1), m.forward([[(s * 7 + n) % 64]], { cache: alone[n] }).values))));
      }
      // the test can fail: without the window the long row's last logits differ
      const plain = m.forward([rows[0]]);
      assert.ok(maxDiff(positions(packed, 7, 1), positions(plain, 7, 1)) > 1e-3, "the window changes the logits");
    });
    assert.ok(worst <= 1e-10, `max |packed streaming - alone| = ${worst}`);
  });

  test("errors: lengths, a sequence that holds positions, a call of another shape, positions after the packed forward", () => {
    const m = new GPT("tiny-gqa", { seed: 1 });
    const cache = new PagedKVCache();
    assert.throws(() => cache.selectPacked([0, 1], [3]), /PagedKVCache\.selectPacked: lengths must be an array of one token count per sequence id \(2\)/);
    assert.throws(() => cache.selectPacked([0, 1], [3, 0]), /lengths\[1\] must be a positive integer \(the tokens of sequence 1 in the row\), got 0/);
    cache.selectPacked([0, 1], [2, 3]);
    assert.throws(() => noGrad(() => m.forward([[1, 2], [3, 4]], { cache })), /GPT\.forward: the cache has packed documents of 2 \+ 3 tokens \(selectPacked\) but the call is \[2, 2\]; give them as one row of 5 tokens/);
    noGrad(() => m.forward([[1, 2, 3, 4, 5]], { cache }));
    assert.throws(() => cache.positionOffset(), /the packed selection's sequence 0 holds 2 positions now \(after its packed forward\); select\(\) the sequences to continue them/);
    assert.throws(() => cache.selectPacked([1, 2], [1, 1]), /sequence 1 already holds 3 positions; packed documents start empty/);
    cache.select([0, 1]);
    assert.deepEqual(cache.positionOffset(), [2, 3]);
  });
});

describe("prefillBatched equals prefillEachAlone (the readable form) in fewer forwards", () => {
  const m = new GPT(gptConfig("tiny", { maxSeqLen: 128 }), { seed: 4 }); // float32
  m.eval();
  const V = m.config.vocabSize;
  const cases: [string, number[], number][] = [ // name, prompt lengths, forwards expected
    ["one prompt", [9], 1],
    ["all of one length", [6, 6, 6, 6], 1],
    ["two lengths", [4, 9, 4, 9, 9], 2],
    ["8 prompts of lengths 5..60", [5, 13, 21, 29, 37, 45, 53, 60], 2],
    ["one prompt much longer than the rest", [2, 120, 3, 4, 5], 2],
    ["prompts of length 1 among others", [1, 7, 1, 3], 2],
    ["only prompts of length 1", [1, 1, 1], 1],
    [`more than PACKED_PREFILL_TOKENS (${PACKED_PREFILL_TOKENS}): two packs`, Array.from({ length: 12 }, (_, n) => 50 + n), 3],
  ];
  for (const [name, lengths, forwards] of cases) {
    test(`${name} (lengths ${lengths.join(", ")}): ${forwards} forward(s)`, () => {
      const prompts = lengths.map((len, n) => promptOf(len, n, V));
      const ids = prompts.map((_, n) => n);
      const alone = noGrad(() => prefillEachAlone(m, new PagedKVCache({ blockSize: 4 }), prompts, ids));
      const cache = new PagedKVCache({ blockSize: 4 });
      const count = countForwards(m);
      let batched: ArrayLike<number>[];
      try {
        batched = noGrad(() => prefillBatched(m, cache, prompts, ids));
      } finally {
        count.restore();
      }
      assert.equal(count.calls.length, forwards, `forwards ${JSON.stringify(count.calls)}`);
      const worst = Math.max(...alone.map((z, n) => maxDiff(z, batched[n])));
      assert.ok(worst <= 2e-5, `max |batched - alone| = ${worst}`);
      assert.deepEqual(ids.map((n) => cache.sequenceLength(n)), lengths, "each sequence holds its prompt");
      assert.equal(cache.blocksInUse, lengths.reduce((s, len) => s + Math.ceil(len / 4), 0), "and nothing else");
    });
  }

  test("a subset of rows (the others have no budget), and a streaming paged cache", () => {
    const prompts = [3, 30, 11, 1, 17].map((len, n) => promptOf(len, n, V));
    const ids = [4, 1, 2, 3];
    for (const opts of [{ blockSize: 2 }, { blockSize: 3, window: 5, sinkTokens: 2 }]) {
      const alone = noGrad(() => prefillEachAlone(m, new PagedKVCache(opts), prompts, ids));
      const cache = new PagedKVCache(opts);
      const batched = noGrad(() => prefillBatched(m, cache, prompts, ids));
      const worst = Math.max(...alone.map((z, i) => maxDiff(z, batched[i])));
      assert.ok(worst <= 2e-5, `${JSON.stringify(opts)}: max |batched - alone| = ${worst}`);
      assert.equal(cache.sequenceLength(0), 0, "row 0 is not prefilled");
    }
  });

  for (const name of ["gpt2", "mistral"]) {
    test(`the ${name} fixture (${name === "gpt2" ? "learned positions up to 32" : "its own sliding window of 3, GQA, RoPE"}): lengths 1, 4, 7, 12`, () => {
      const lm = fromPretrained(join(HF, name)).model;
      lm.eval();
      const prompts = [1, 4, 7, 12].map((len, n) => promptOf(len, n, lm.config.vocabSize));
      const ids = [0, 1, 2, 3];
      const alone = noGrad(() => prefillEachAlone(lm, new PagedKVCache({ blockSize: 2 }), prompts, ids));
      const batched = noGrad(() => prefillBatched(lm, new PagedKVCache({ blockSize: 2 }), prompts, ids));
      const worst = Math.max(...alone.map((z, n) => maxDiff(z, batched[n])));
      assert.ok(worst <= 2e-5, `max |batched - alone| = ${worst}`);
    });
  }
});

describe("generate() with a paged cache: the batched prefill gives each prompt's tokens alone", () => {
  test("8 prompts of lengths 5..60, a prompt of length 1, one much longer: greedy, blockSize 3 and 16, onToken", () => {
    const m = new GPT(gptConfig("tiny", { maxSeqLen: 128 }), { seed: 6 });
    const V = m.config.vocabSize;
    for (const lengths of [[5, 13, 21, 29, 37, 45, 53, 60], [1, 9, 4], [100, 2, 3, 1]]) {
      const prompts = lengths.map((len, n) => promptOf(len, n, V));
      const alone = prompts.map((p) => generate(m, [p], { maxNewTokens: 8 })[0]); // a plain KVCache, no paging
      for (const blockSize of [3, 16]) {
        const streamed: number[][] = prompts.map(() => []);
        const out = generate(m, prompts, { maxNewTokens: 8, paged: { blockSize }, onToken: (t, n) => streamed[n].push(t) });
        assert.deepEqual(out, alone, `lengths ${lengths.join(", ")}, blockSize ${blockSize}`);
        assert.deepEqual(streamed, out.map((r, n) => r.slice(prompts[n].length)));
      }
    }
  });

  test("streaming (window 6, sinkTokens 2): 5 prompts of different lengths, past maxSeqLen with rope", () => {
    const m = new GPT(gptConfig("tiny-gqa"), { seed: 8 }); // maxSeqLen 64
    const prompts = [2, 11, 1, 7, 20].map((len, n) => promptOf(len, n, 64));
    const opts = { maxNewTokens: 60, window: 6, sinkTokens: 2 };
    const alone = prompts.map((p) => generate(m, [p], opts)[0]); // the single-row streaming KVCache
    assert.deepEqual(generate(m, prompts, opts), alone);
  });
});
