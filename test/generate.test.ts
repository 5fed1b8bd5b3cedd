/**
 * Generation: picking tokens (greedy, temperature, top-k, seeded), and decoding with a KV cache.
 * The key property: at every step, the logits of cached decoding (project only the new token,
 * attend over the cache) equal those of recomputing the whole sequence, max |diff| <= 1e-5 in
 * float32, for multi-head and grouped-query GPTs and the encoder-decoder's decoder.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Generator, Tensor, noGrad } from "../src/index.js";
import { KVCache, kvCacheBytesPerToken } from "../src/nnNamespace.js";
import { EncoderDecoder, GPT, generate, generateSeq2Seq, gptConfig, sampleToken } from "../src/models/index.js";

/** max |a[row] - b| over the last position's logits. */
function lastRowDiff(full: Tensor, step: Tensor): number {
  const [N, T, V] = full.shape;
  const S = step.shape[1];
  let m = 0;
  for (let n = 0; n < N; n++) {
    for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(full.values[(n * T + T - 1) * V + v] - step.values[(n * S + S - 1) * V + v]));
  }
  return m;
}

describe("sampleToken", () => {
  const logits = [0.5, 2, -1, 2, 1.5];

  test("greedy, temperature 0 and topK 1 take the first maximum", () => {
    assert.equal(sampleToken(logits, { greedy: true }), 1);
    assert.equal(sampleToken(logits, { greedy: true, temperature: 1, seed: 3 }), 1);
    assert.equal(sampleToken(logits, { temperature: 0 }), 1);
    assert.equal(sampleToken(logits, { topK: 1, seed: 5 }), 1);
  });

  test("seeded: the same seed gives the same draws", () => {
    const draw = (seed: number): number[] => {
      const g = new Generator(seed);
      return Array.from({ length: 20 }, () => sampleToken(logits, { temperature: 1 }, g));
    };
    assert.deepEqual(draw(1), draw(1));
    assert.notDeepEqual(draw(1), draw(2));
  });

  test("frequencies follow softmax(z / τ); topK keeps only the k best", () => {
    // z = log [0.5, 0.3, 0.2]: at τ = 1 the probabilities are [0.5, 0.3, 0.2]; at τ = 0.5 they are p² / Σp² = [0.658, 0.237, 0.105]
    const z = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
    for (const [tau, want] of [[1, [0.5, 0.3, 0.2]], [0.5, [0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38]]] as const) {
      const g = new Generator(7);
      const counts = [0, 0, 0];
      const n = 20000;
      for (let i = 0; i < n; i++) counts[sampleToken(z, { temperature: tau }, g)]++;
      counts.forEach((c, i) => assert.ok(Math.abs(c / n - want[i]) < 0.015, `τ = ${tau}: token ${i} drawn ${c / n}, expected ${want[i]}`));
    }
    const g = new Generator(8);
    for (let i = 0; i < 500; i++) assert.ok([1, 3, 4].includes(sampleToken(logits, { topK: 3, temperature: 1 }, g)));
  });

  test("errors", () => {
    assert.throws(() => sampleToken(logits, { temperature: -1 }), /temperature must be a finite number >= 0, got -1/);
    assert.throws(() => sampleToken(logits, { topK: 0 }), /topK must be a positive integer, got 0/);
    assert.throws(() => sampleToken([0, NaN]), /logits\[1\] is NaN/);
  });
});

describe("cached decoding equals full recomputation", () => {
  for (const preset of ["tiny", "tiny-gqa"] as const) {
    test(`GPT ${preset}: prefill, then 24 single-token steps, every step's logits within 1e-5`, () => {
      const m = new GPT(preset, { seed: 1 });
      m.eval();
      const rows = [[5, 9, 2, 33, 7], [1, 1, 60, 4, 12]];
      const cache = m.newCache();
      noGrad(() => {
        let step = m.forward(rows, { cache }); // prefill
        let worst = lastRowDiff(m.forward(rows), step);
        const g = new Generator(3);
        for (let s = 0; s < 24; s++) {
          const next = rows.map(() => g.nextInt(64));
          next.forEach((t, n) => rows[n].push(t));
          step = m.forward(next.map((t) => [t]), { cache });
          worst = Math.max(worst, lastRowDiff(m.forward(rows), step));
        }
        assert.ok(worst <= 1e-5, `max |cached - full| = ${worst}`);
        assert.equal(cache.length, 29);
      });
    });
  }

  for (const padded of [true, false]) {
    test(`EncoderDecoder decoder: cached self- and cross-attention match decode() of the whole prefix (${padded ? "padded source" : "no padding: one-token steps run decode.ts"})`, () => {
      const m = new EncoderDecoder("tiny", { seed: 2 });
      m.eval();
      noGrad(() => {
        const srcPaddingMask = padded ? new Tensor(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 1]), [2, 4], "bool") : null; // row 1's last token is padding
        const memory = m.encode([[3, 4, 5, 6], [7, 8, 9, 0]], { srcPaddingMask });
        const rows = [[1, 11], [1, 12]];
        const cache = m.newCache();
        let worst = lastRowDiff(m.decode(rows, memory, { srcPaddingMask }), m.decode(rows, memory, { srcPaddingMask, cache }));
        for (let s = 0; s < 12; s++) {
          const next = [(s * 5 + 3) % 32, (s * 7 + 1) % 32];
          next.forEach((t, n) => rows[n].push(t));
          const step = m.decode(next.map((t) => [t]), memory, { srcPaddingMask, cache });
          worst = Math.max(worst, lastRowDiff(m.decode(rows, memory, { srcPaddingMask }), step));
        }
        assert.ok(worst <= 1e-5, `max |cached - full| = ${worst}`);
        assert.equal(cache.cross(0).length, 4, "the memory's keys/values are projected once");
      });
    });
  }
});

describe("generate", () => {
  test("greedy by default (temperature 0), as attend sample: every seed gives the argmax continuation", () => {
    const m = new GPT("tiny", { seed: 4 });
    // the reference: argmax of the full forward pass, one token at a time, written out here
    const row = [1, 2, 3];
    for (let s = 0; s < 8; s++) {
      const logits = noGrad(() => m.forward([row])); // [1, T, V]
      const V = logits.shape[2];
      const last = Array.from(logits.values.subarray((row.length - 1) * V, row.length * V));
      row.push(last.indexOf(Math.max(...last)));
    }
    for (const seed of [0, 1, 2]) assert.deepEqual(generate(m, [[1, 2, 3]], { maxNewTokens: 8, seed })[0], row, `seed ${seed}`);
    assert.deepEqual(generateSeq2Seq(new EncoderDecoder("tiny", { seed: 5 }), [[3, 4]], { startToken: 1, maxNewTokens: 6, seed: 9 }),
      generateSeq2Seq(new EncoderDecoder("tiny", { seed: 5 }), [[3, 4]], { startToken: 1, maxNewTokens: 6, greedy: true }));
    // sampling is asked for with a temperature: then seeds differ
    const sampled = [0, 1, 2, 3].map((seed) => JSON.stringify(generate(m, [[1, 2, 3]], { maxNewTokens: 8, temperature: 1, seed })[0]));
    assert.ok(new Set(sampled).size > 1, "temperature 1 samples");
  });

  test("cached and uncached generation give the same tokens (greedy and seeded sampling)", () => {
    for (const preset of ["tiny", "tiny-gqa"] as const) {
      const m = new GPT(preset, { seed: 4 });
      for (const opts of [{ greedy: true }, { temperature: 0.8, topK: 10, seed: 3 }]) {
        const a = generate(m, [[1, 2, 3], [4, 5, 6]], { ...opts, maxNewTokens: 12 });
        const b = generate(m, [[1, 2, 3], [4, 5, 6]], { ...opts, maxNewTokens: 12, useCache: false });
        assert.deepEqual(a, b, `${preset} ${JSON.stringify(opts)}`);
        assert.equal(a[0].length, 15);
        assert.deepEqual(a[1].slice(0, 3), [4, 5, 6]);
      }
    }
  });

  test("a stop token ends its row (and is kept); maxLength caps the sequence; training mode is restored", () => {
    const m = new GPT("tiny", { seed: 4 });
    const free = generate(m, [[1, 2, 3]], { greedy: true, maxNewTokens: 10 })[0];
    const stop = free[5]; // the 3rd generated token
    const stopped = generate(m, [[1, 2, 3]], { greedy: true, maxNewTokens: 10, stopToken: stop })[0];
    assert.deepEqual(stopped, free.slice(0, free.indexOf(stop, 3) + 1));
    assert.equal(generate(m, [[1, 2, 3]], { greedy: true, maxNewTokens: 10, maxLength: 7 })[0].length, 7);
    assert.equal(m.training, true);
    assert.throws(() => generate(m, [[1]], { maxNewTokens: 1, maxLength: 65 }), /maxLength 65 exceeds the model's maxSeqLen 64/);
    assert.throws(() => generate(m, [[1]], { maxNewTokens: -1 }), /maxNewTokens must be a non-negative integer/);
  });

  test("rows stop independently in a batch, cached or not", () => {
    const m = new GPT("tiny", { seed: 6 });
    const rows = [[1, 2, 3], [7, 8, 9]];
    const free = generate(m, rows, { greedy: true, maxNewTokens: 8 });
    const stop = free[0][4];
    for (const useCache of [true, false]) {
      const out = generate(m, rows, { greedy: true, maxNewTokens: 8, stopToken: stop, useCache });
      for (let n = 0; n < 2; n++) {
        const at = free[n].indexOf(stop, 3);
        assert.deepEqual(out[n], at < 0 ? free[n] : free[n].slice(0, at + 1), `row ${n}, useCache ${useCache}`);
      }
    }
  });

  test("generateSeq2Seq: cached equals uncached; output starts after the start token", () => {
    const m = new EncoderDecoder("tiny", { seed: 5 });
    const a = generateSeq2Seq(m, [[3, 4, 5, 6]], { startToken: 1, maxNewTokens: 10, greedy: true });
    const b = generateSeq2Seq(m, [[3, 4, 5, 6]], { startToken: 1, maxNewTokens: 10, greedy: true, useCache: false });
    assert.deepEqual(a, b);
    assert.equal(a[0].length, 10);
  });
});

test("KV cache bytes per token: grouped-query attention caches H / Hkv times less", () => {
  const mha = new GPT("small");
  const gqa = new GPT("small-gqa");
  const bytes = (m: GPT): number => {
    const cache: KVCache = m.newCache();
    noGrad(() => m.forward([[1, 2]], { cache }));
    return cache.bytesPerToken();
  };
  // small: 4 layers × 2 (k, v) × 4 kv heads × 32 dims × 4 bytes = 4096; small-gqa: 8 query heads of 16 dims share 2 kv heads
  assert.equal(bytes(mha), 4096);
  assert.equal(bytes(gqa), 4 * 2 * 2 * 16 * 4);
  assert.equal(bytes(gqa), kvCacheBytesPerToken({ numLayers: 4, numKvHeads: 2, headDim: 16 }));
  const c = gptConfig("small-gqa"); // the same width as small (8 × 16 = 4 × 32), so the saving is exactly H / Hkv
  assert.equal(bytes(mha) / bytes(gqa), c.numHeads / c.numKvHeads);
});
