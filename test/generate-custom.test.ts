/**
 * generate() over a CausalLM written by hand (not GPT, not PretrainedLM): a bigram table that ignores
 * the cache and logitsToKeep and returns every position's logits, as a user's class may. Its next
 * token is fixed by the last token alone, (t + 1) mod V, so the expected rows are worked out by hand.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Tensor } from "../src/index.js";
import { KVCache } from "../src/nnNamespace.js";
import { Module } from "../src/nn/module.js";
import { type CausalLM, generate } from "../src/models/index.js";
import type { TokenInput } from "../src/models/tokens.js";

const V = 10;

/**
 * logits [N, T, V] for ids [N, T]: position t scores token (ids[t] + 1) mod V highest (1) and every
 * other 0. It reads neither cache nor logitsToKeep; it records the shapes it was called with.
 */
class Bigram extends Module implements CausalLM {
  readonly config = { vocabSize: V, maxSeqLen: 64 };
  readonly calls: { T: number; logitsToKeep: number | undefined }[] = [];
  constructor(readonly maxPositions?: number) {
    super();
  }
  newCache(): KVCache {
    return new KVCache();
  }
  forward(idx: TokenInput, opts: { cache?: KVCache | null; logitsToKeep?: number } = {}): Tensor {
    const rows = idx as number[][];
    const [N, T] = [rows.length, rows[0].length];
    this.calls.push({ T, logitsToKeep: opts.logitsToKeep });
    const z = new Float32Array(N * T * V);
    for (let n = 0; n < N; n++) for (let t = 0; t < T; t++) z[(n * T + t) * V + ((rows[n][t] + 1) % V)] = 1;
    return new Tensor(z, [N, T, V], "float32");
  }
}

describe("generate() with a hand-written CausalLM", () => {
  test("a model that ignores logitsToKeep (all T positions' logits) continues from the last position", () => {
    const m = new Bigram();
    // prompt [3, 7]: the last token 7 gives 8, then 9, 0, 1; reading position 0 (token 3) would give 4
    assert.deepEqual(generate(m, [[3, 7]], { maxNewTokens: 4 }), [[3, 7, 8, 9, 0, 1]]);
    assert.equal(m.calls[0].T, 2, "the prefill passed the whole prompt");
    assert.equal(m.calls[0].logitsToKeep, 1, "generate asked for the last position only (and the model gave all)");
    // two rows, uncached (the whole row each step: T grows), and rows of different lengths (paged)
    assert.deepEqual(generate(m, [[3, 7], [5, 0]], { maxNewTokens: 3, useCache: false }), [[3, 7, 8, 9, 0], [5, 0, 1, 2, 3]]);
    assert.deepEqual(generate(m, [[3, 7, 2], [5]], { maxNewTokens: 2 }), [[3, 7, 2, 3, 4], [5, 6, 7]]);
  });

  test("prompts of four lengths: a model without packedPrefill gets one forward per length, never a packed row", () => {
    const prompts = [[1, 2], [3, 4, 5], [6, 7, 8, 9], [0, 1, 2, 3, 4]];
    const expected = prompts.map((p) => [...p, (p.at(-1)! + 1) % V, (p.at(-1)! + 2) % V]);
    const plain = new Bigram();
    assert.deepEqual(generate(plain, prompts, { maxNewTokens: 2 }), expected);
    // the prefill: lengths 2, 3, 4, 5 each alone (a packed row would be one call of 1 + 2 + 3 + 4 = 10 tokens), then one step
    assert.deepEqual(plain.calls.map((c) => c.T), [2, 3, 4, 5, 1]);
    // the same model declaring packedPrefill is given the packed row (its tokens but the last, back to
    // back), then every prompt's last token: the gate decides, not the prompts
    const packing = Object.assign(new Bigram(), { packedPrefill: true });
    assert.deepEqual(generate(packing, prompts, { maxNewTokens: 2 }), expected);
    assert.deepEqual(packing.calls.map((c) => c.T), [10, 1, 1]);
  });

  test("maxPositions caps a streaming generation; without it a streaming cache runs past maxSeqLen", () => {
    const prompt = [[1, 2, 3]];
    // learned positions (maxPositions 6): the window lifts no cap, the row ends at 6 tokens
    assert.deepEqual(generate(new Bigram(6), prompt, { maxNewTokens: 10, window: 4 }), [[1, 2, 3, 4, 5, 6]]);
    assert.throws(() => generate(new Bigram(6), prompt, { maxNewTokens: 10, window: 4, maxLength: 7 }), /generate: maxLength 7 exceeds the model's 6 positions/);
    assert.deepEqual(generate(new Bigram(6), [[1, 2, 3], [4]], { maxNewTokens: 10, window: 4 }), [[1, 2, 3, 4, 5, 6], [4, 5, 6, 7, 8, 9]]);
    // positions without a limit (maxPositions undefined): streaming may pass maxSeqLen (here 64)
    const long = generate(new Bigram(), prompt, { maxNewTokens: 70, window: 4 })[0];
    assert.equal(long.length, 73);
    assert.ok(long.every((t, i) => t === (i + 1) % V), "prompt 1, 2, 3, then each token the last + 1 mod V");
    // without streaming, maxSeqLen is the cap either way
    assert.equal(generate(new Bigram(), prompt, { maxNewTokens: 70 })[0].length, 64);
  });

  test("errors: logits that are not [N, T, V], a maxPositions that is not a positive integer", () => {
    class Flat extends Bigram {
      override forward(idx: TokenInput, opts: { cache?: KVCache | null; logitsToKeep?: number } = {}): Tensor {
        const z = super.forward(idx, opts); // [N, T, V] -> the last position only, [N, V]
        const [N, T] = z.shape;
        return new Tensor(Float32Array.from({ length: N * V }, (_, i) => z.values[(Math.floor(i / V) * T + T - 1) * V + (i % V)]), [N, V], "float32");
      }
    }
    assert.throws(() => generate(new Flat(), [[3, 7]], { maxNewTokens: 2 }), /generate: the model's forward returned logits \[1, 10\]; expected \[N, T, V\]/);
    for (const bad of [0, 2.5, NaN, -3]) {
      assert.throws(() => generate(new Bigram(bad), [[1]], { maxNewTokens: 2, window: 4 }), /generate: the model's maxPositions must be a positive integer or undefined \(no limit\), got/, String(bad));
    }
  });
});
