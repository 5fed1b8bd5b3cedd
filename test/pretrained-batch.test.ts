/**
 * Prompts of different lengths as one padded batch (issue 13): left padding, per-row positions and a
 * key padding mask ([N, 1, 1, S]) in PretrainedLM.forward's attentionMask, for the prefill and every
 * cached decoding step.
 *
 * References: the PyTorch twins run the same padded batch with transformers' semantics
 * (test/fixtures/make_hf_fixtures.py: attention_mask -> position_ids = cumsum - 1, the 4-D mask with
 * key padding), and each prompt run alone (no padding, no mask: the path the unpadded fixtures check).
 * GPT-2 has learned positions, llama is GQA (4 query heads on 2 kv heads) with RoPE, mistral adds a
 * sliding window of 3.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KVCache, PagedKVCache, type Tensor, fromPretrained, fromPretrainedFiles, generateText, noGrad, tensor } from "../src/index.js";
import { folderFiles, wordTokenizer } from "./hf-helpers.js";

const HF = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "hf");

interface Padded {
  prompts: number[][];
  ids: number[][];
  attention_mask: number[][];
  shape: [number, number, number];
  logits: number[];
  greedy: number[][];
}
const padded = (name: string): Padded => (JSON.parse(readFileSync(join(HF, name, "expected.json"), "utf8")) as { padded: Padded }).padded;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Row n, position t of logits [N, T, V]. */
const at = (logits: Tensor, n: number, t: number): Float32Array | Float64Array => {
  const [, T, V] = logits.shape;
  return (logits.values as Float32Array).subarray((n * T + t) * V, (n * T + t + 1) * V);
};

/** The left-padded batch of prompts and its mask (pad id 3: any id, it is never attended to). */
function leftPad(prompts: number[][]): { ids: number[][]; mask: number[][] } {
  const T = Math.max(...prompts.map((p) => p.length));
  return {
    ids: prompts.map((p) => [...new Array<number>(T - p.length).fill(3), ...p]),
    mask: prompts.map((p) => [...new Array<number>(T - p.length).fill(0), ...new Array<number>(p.length).fill(1)]),
  };
}

const PROMPTS = [[9], [4, 4, 39, 0], [1, 7, 3, 22, 9, 30, 5]]; // lengths 1, 4, 7 (the fixtures' prompts)

describe("a padded batch against the PyTorch twin (transformers' attention_mask semantics)", () => {
  for (const name of ["gpt2", "llama", "mistral"]) {
    test(`${name}: the logits at each row's tokens, and 6 greedy tokens per row`, () => {
      const e = padded(name);
      assert.deepEqual(e.prompts, PROMPTS);
      const p = fromPretrained(join(HF, name));
      const logits = noGrad(() => p.model.forward(e.ids, { attentionMask: e.attention_mask }));
      assert.deepEqual(logits.shape, e.shape);
      const [, T, V] = e.shape;
      e.prompts.forEach((q, b) => {
        for (let t = T - q.length; t < T; t++) {
          const d = maxDiff(at(logits, b, t), e.logits.slice((b * T + t) * V, (b * T + t + 1) * V));
          assert.ok(d < 1e-4, `${name} row ${b} position ${t}: max |logits - twin| = ${d}`); // the unpadded fixtures' tolerance
        }
      });
      const batch = generateText(p, e.prompts, { maxNewTokens: 6, stopToken: null });
      assert.deepEqual(batch.map((r) => r.tokens), e.greedy);
    });
  }
});

describe("a padded batch equals each prompt alone", () => {
  for (const name of ["gpt2", "llama", "mistral"]) {
    test(`${name}: logits (and RoPE's queries) at every real position, prefill and each cached step (one row stopping early), within 1e-5`, () => {
      const { model } = fromPretrained(join(HF, name));
      const steps = 6;
      // each prompt alone: prefill, then its own greedy tokens one at a time through the cache
      // (the queries after RoPE too: scores depend only on relative positions, so shifted positions would show in q alone)
      const alone = PROMPTS.map((q) => {
        const tokens = generateText({ model, tokenizer: null, config: {} }, q, { maxNewTokens: steps, stopToken: null }).tokens;
        const cache = model.newCache();
        const queries: Tensor[] = [];
        const logits = [noGrad(() => model.forwardVisitingAttention([q], (_l, query) => void queries.push(query), { cache }))];
        for (const t of tokens) logits.push(noGrad(() => model.forward([[t]], { cache })));
        return { tokens, logits, queries };
      });
      const { ids, mask } = leftPad(PROMPTS);
      const T = ids[0].length;
      const cache = model.newCache();
      const masks: number[][] = []; // each layer's attnMask shape, in call order
      const queries: Tensor[] = [];
      const visit = (_layer: number, query: Tensor, _k: Tensor, o: { attnMask?: Tensor }): void => {
        masks.push([...(o.attnMask?.shape ?? [])]);
        if (masks.length <= model.config.numLayers) queries.push(query); // the prefill's, [N, H, T, hd]
      };
      const prefill = noGrad(() => model.forwardVisitingAttention(ids, visit, { cache, attentionMask: mask }));
      PROMPTS.forEach((q, n) => {
        for (let t = 0; t < q.length; t++) {
          const d = maxDiff(at(prefill, n, T - q.length + t), at(alone[n].logits[0], 0, t));
          assert.ok(d < 1e-5, `${name} prefill row ${n} token ${t}: ${d}`);
        }
        queries.forEach((qb, layer) => {
          const qa = alone[n].queries[layer]; // [1, H, len, hd]
          const [, H, len, hd] = qa.shape;
          for (let h = 0; h < H; h++) {
            const rowsB = qb.values.subarray(((n * H + h) * T + T - len) * hd, ((n * H + h) * T + T) * hd);
            const d = maxDiff(rowsB, qa.values.subarray(h * len * hd, (h + 1) * len * hd));
            assert.ok(d < 1e-5, `${name} prefill row ${n} layer ${layer} head ${h}: |q batch - q alone| = ${d}`);
          }
        });
      });
      const stopAfter = [2, steps, steps]; // row 0 stops after 2 tokens and is fed padding from then on
      for (let s = 0; s < steps; s++) {
        const going = PROMPTS.map((_, n) => s < stopAfter[n]);
        const next = PROMPTS.map((_, n) => (going[n] ? [alone[n].tokens[s]] : [3]));
        mask.forEach((m, n) => m.push(going[n] ? 1 : 0));
        const out = noGrad(() => model.forwardVisitingAttention(next, visit, { cache, attentionMask: mask })); // [3, 1, V]
        PROMPTS.forEach((_, n) => {
          if (!going[n]) return;
          const d = maxDiff(at(out, n, 0), at(alone[n].logits[s + 1], 0, 0));
          assert.ok(d < 1e-5, `${name} step ${s} row ${n}: ${d}`);
        });
      }
      // the mask each layer's sdpa got: [N, 1, 1, S], broadcast over heads and queries, never [N, H, L, S]
      const layers = model.config.numLayers;
      assert.equal(masks.length, layers * (steps + 1));
      masks.forEach((shape, i) => assert.deepEqual(shape, [3, 1, 1, T + Math.floor(i / layers)]));
    });
  }

  test("generateText: greedy and sampled (seed; top-k, top-p), cached and not, a row stopping at EOS while the others go on", () => {
    const p = fromPretrained(join(HF, "llama"));
    for (const opts of [{}, { temperature: 1.2, topK: 20, topP: 0.9, seed: 4 }, { useCache: false }]) {
      const free = PROMPTS.map((q) => generateText(p, q, { ...opts, maxNewTokens: 8, stopToken: null }));
      assert.deepEqual(generateText(p, PROMPTS, { ...opts, maxNewTokens: 8, stopToken: null }), free, JSON.stringify(opts));
      const eos = free[1].tokens[2]; // row 1 stops at its third token (or before, if it appears earlier)
      const stopped = generateText(p, PROMPTS, { ...opts, maxNewTokens: 8, stopToken: eos });
      assert.deepEqual(stopped, PROMPTS.map((q) => generateText(p, q, { ...opts, maxNewTokens: 8, stopToken: eos })));
      assert.equal(stopped[1].finish, "stop");
      assert.ok(stopped[1].tokens.length <= 3 && stopped.some((r) => r.tokens.length === 8), "one row stopped, another went on");
    }
  });

  test("a row's budget ends at the model's last position for its own length; padding takes no positions", () => {
    const p = fromPretrained(join(HF, "gpt2")); // 32 learned positions
    const long = Array.from({ length: 30 }, (_, i) => (i * 7) % 40);
    const [a, b] = generateText(p, [long, [5]], { maxNewTokens: 5, stopToken: null });
    assert.deepEqual(a, generateText(p, long, { maxNewTokens: 5, stopToken: null }));
    assert.equal(a.tokens.length, 2); // positions 30 and 31
    assert.deepEqual(b, generateText(p, [5], { maxNewTokens: 5, stopToken: null }));
    // a row of 32 tokens behind 3 padding: S = 35 > 32, but its positions are 0..31
    const full = Array.from({ length: 32 }, (_, i) => (i * 5) % 40);
    const { ids, mask } = leftPad([full, full.slice(0, 29)]);
    const logits = noGrad(() => p.model.forward(ids, { attentionMask: mask }));
    assert.ok(maxDiff(at(logits, 0, 31), at(noGrad(() => p.model.forward([full])), 0, 31)) < 1e-5);
    assert.ok(maxDiff(at(logits, 1, 31), at(noGrad(() => p.model.forward([full.slice(0, 29)])), 0, 28)) < 1e-5);
    mask[0].unshift(1);
    ids[0].unshift(0);
    mask[1].unshift(0);
    ids[1].unshift(0);
    assert.throws(() => p.model.forward(ids, { attentionMask: mask }), /PretrainedLM.forward: a row of attentionMask reaches position 32 \(its tokens counted\), past the model's 32 positions/);
  });
});

describe("streaming a batch", () => {
  test("onToken(token, row): each step's tokens in row order, the rows still going; onText pieces join to each row's text", () => {
    const files = folderFiles(join(HF, "gpt2"));
    files.set("tokenizer.json", wordTokenizer());
    const p = fromPretrainedFiles(files);
    const prompts = ["the", "the cat sat on", "a dog ran to the big red"];
    const free = generateText(p, prompts, { maxNewTokens: 5, stopToken: null });
    const stop = free[0].tokens[1]; // row 0 (at least) stops by its second token
    const calls: [number, number][] = [];
    const pieces: string[][] = [[], [], []];
    const r = generateText(p, prompts, { maxNewTokens: 5, stopToken: stop, onToken: (t, row) => calls.push([t, row]), onText: (s, row) => pieces[row].push(s) });
    const expected: [number, number][] = [];
    for (let s = 0; s < 5; s++) r.forEach((x, row) => s < x.tokens.length && expected.push([x.tokens[s], row]));
    assert.deepEqual(calls, expected);
    assert.ok(r[0].tokens.length <= 2 && r.some((x) => x.tokens.length === 5));
    r.forEach((x, row) => {
      assert.equal(pieces[row].join(""), x.text);
      assert.deepEqual(x, generateText(p, prompts[row], { maxNewTokens: 5, stopToken: stop }));
    });
  });
});

describe("attentionMask errors", () => {
  const { model } = fromPretrained(join(HF, "llama"));
  test("a wrong shape, a value other than 0 or 1, an unknown option", () => {
    const ids = [[1, 2, 3], [4, 5, 6]];
    assert.throws(() => model.forward(ids, { attentionMask: [[1, 1, 1]] }), /PretrainedLM.forward: attentionMask has 1 rows of lengths 3, expected \[N, S\] = \[2, 3\] \(N rows; S = 0 cached \+ 3 new positions\)/);
    const cache = model.newCache();
    noGrad(() => model.forward(ids, { cache }));
    assert.throws(() => model.forward([[1], [2]], { cache, attentionMask: [[1], [1]] }), /attentionMask has 2 rows of lengths 1, 1, expected \[N, S\] = \[2, 4\] \(N rows; S = 3 cached \+ 1 new positions\)/);
    assert.throws(() => model.forward(ids, { attentionMask: [[1, 2, 1], [1, 1, 1]] }), /PretrainedLM.forward: attentionMask\[0\]\[1\] = 2; expected 1 \(a token\) or 0 \(padding\)/);
    assert.throws(() => model.forward(ids, { attentionMask: [[1, NaN, 1], [1, 1, 1]] }), /attentionMask\[0\]\[1\] = NaN/);
    assert.throws(() => model.forward(ids, { attentionMask: "all" as never }), /PretrainedLM.forward: attentionMask must be a Tensor \[N, S\] or rows of 0 and 1 \(or booleans\), got string/);
    assert.throws(() => model.forward(ids, { mask: [[1]] } as never), /PretrainedLM.forward: unknown option "mask"/);
    const streaming = new KVCache({ window: 4 });
    assert.throws(() => model.forward(ids, { cache: streaming, attentionMask: [[1, 1, 1], [1, 1, 1]] }), /PretrainedLM.forward: attentionMask needs a plain cache \(model.newCache\(\)\), got a streaming one/);
    assert.throws(() => model.forward(ids, { cache: new PagedKVCache(), attentionMask: [[1, 1, 1], [1, 1, 1]] }), /got a paged one/);
  });
  test("the mask as a bool or int32 Tensor, or rows of booleans, is the same mask", () => {
    const ids = [[1, 2, 3], [4, 5, 6]];
    const rows = [[0, 1, 1], [1, 1, 1]];
    const want = noGrad(() => model.forward(ids, { attentionMask: rows })).values;
    for (const m of [tensor(rows, { dtype: "bool" }), tensor(rows, { dtype: "int32" }), rows.map((r) => r.map((v) => v === 1))]) {
      assert.deepEqual(noGrad(() => model.forward(ids, { attentionMask: m })).values, want);
    }
    assert.throws(() => model.forward(ids, { attentionMask: tensor([[0, 1, 1]], { dtype: "bool" }) }), /PretrainedLM.forward: attentionMask has shape \[1, 3\], expected \[N, S\] = \[2, 3\]/);
    assert.throws(() => model.forward(ids, { attentionMask: [["1", 1, 1], [1, 1, 1]] as never }), /attentionMask\[0\]\[0\] = 1; expected 1 \(a token\) or 0 \(padding\)/);
  });
  test("generateText's batch names itself in option errors", () => {
    const p = fromPretrained(join(HF, "llama"));
    assert.throws(() => generateText(p, PROMPTS, { temperature: -1 }), /generateText: temperature must be a finite number >= 0, got -1/);
    assert.throws(() => generateText(p, PROMPTS, { topK: 0, temperature: 1 }), /generateText: topK must be a positive integer, got 0/);
    assert.throws(() => generateText(p, PROMPTS, { stopToken: -3 }), /generateText: stopToken must be a non-negative integer token id/);
    assert.throws(() => generateText(p, PROMPTS, { maxNewTokens: 1.5 }), /generateText: maxNewTokens must be a non-negative integer, got 1.5/);
  });
  test("a row that is all padding gives finite logits (its queries see nothing: output 0, never NaN)", () => {
    const logits = noGrad(() => model.forward([[1, 2, 3], [4, 5, 6]], { attentionMask: [[1, 1, 1], [0, 0, 0]] }));
    assert.ok(Array.from(logits.values).every(Number.isFinite));
  });
});
