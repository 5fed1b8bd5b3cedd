/**
 * Text generation with Hugging Face-layout models: greedy tokens equal the PyTorch twin's argmax,
 * cached generation equals recomputation, a batch of prompts of different lengths equals each alone,
 * the end-of-sequence token stops a row (generation_config.json's, else config.json's), streamed text
 * joins to the result, and top-p keeps the nucleus worked out by hand.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { WORDS, folderFiles, wordTokenizer } from "./hf-helpers.js";
import { Generator, eosTokenIds, fromPretrained, fromPretrainedFiles, generateText, sampleToken } from "../src/index.js";

const HF = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "hf");

interface Expected {
  ids: number[][];
  shape: number[];
  logits: number[];
}
const expected = (name: string): Expected => JSON.parse(readFileSync(join(HF, name, "expected.json"), "utf8")) as Expected;

function withTokenizer(name: string) {
  const files = new Map<string, Uint8Array | string>();
  for (const f of readdirSync(join(HF, name))) {
    if (f !== "expected.json") files.set(f, f.endsWith(".json") ? readFileSync(join(HF, name, f), "utf8") : new Uint8Array(readFileSync(join(HF, name, f))));
  }
  files.set("tokenizer.json", wordTokenizer());
  return fromPretrainedFiles(files);
}

const argmax = (xs: number[]): number => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

describe("generateText", () => {
  for (const name of ["gpt2", "llama", "qwen2", "mistral"]) {
    test(`${name}: the greedy next token after every prefix is the twin's argmax`, () => {
      const e = expected(name);
      const p = fromPretrained(join(HF, name));
      const [, T, V] = e.shape;
      e.ids.forEach((row, b) => {
        for (let t = 1; t <= T; t++) {
          const r = generateText(p, row.slice(0, t), { maxNewTokens: 1, stopToken: null });
          const twin = argmax(e.logits.slice((b * T + t - 1) * V, (b * T + t) * V));
          assert.deepEqual(r.tokens, [twin], `${name} row ${b} prefix ${t}`);
        }
      });
    });
  }

  test("with the cache equals recomputing every step, greedy and sampled (temperature, top-k, top-p, seed)", () => {
    for (const name of ["llama", "mistral", "gpt2"]) {
      const p = fromPretrained(join(HF, name));
      for (const opts of [{}, { temperature: 1.3, topK: 20, topP: 0.9, seed: 5 }]) {
        const cached = generateText(p, [1, 7, 3], { ...opts, maxNewTokens: 12, stopToken: null });
        const full = generateText(p, [1, 7, 3], { ...opts, maxNewTokens: 12, stopToken: null, useCache: false });
        assert.equal(cached.tokens.length, 12);
        assert.deepEqual(cached.tokens, full.tokens, `${name} ${JSON.stringify(opts)}`);
      }
    }
  });

  test("prompts of different lengths in one call give what each gives alone", () => {
    const p = fromPretrained(join(HF, "qwen2"));
    const prompts = [[1, 7, 3], [4, 4, 39, 0, 18, 6], [9]];
    for (const opts of [{}, { temperature: 1, seed: 9 }]) {
      const batch = generateText(p, prompts, { ...opts, maxNewTokens: 8, stopToken: null });
      assert.equal(batch.length, 3);
      prompts.forEach((q, i) => assert.deepEqual(batch[i], generateText(p, q, { ...opts, maxNewTokens: 8, stopToken: null })));
    }
  });

  test("the end-of-sequence token stops a row (kept, finish 'stop'); config.json's eos_token_id is the default", () => {
    const p = fromPretrained(join(HF, "llama"));
    const free = generateText(p, [1, 7, 3], { maxNewTokens: 10, stopToken: null });
    assert.equal(free.finish, "length");
    const eos = free.tokens[3];
    const k = free.tokens.indexOf(eos); // its first appearance
    const stopped = generateText(p, [1, 7, 3], { maxNewTokens: 10, stopToken: eos });
    assert.deepEqual(stopped.tokens, free.tokens.slice(0, k + 1));
    assert.equal(stopped.finish, "stop");
    const viaConfig = generateText({ ...p, config: { ...p.config, eos_token_id: [39, eos] } }, [1, 7, 3], { maxNewTokens: 10 });
    assert.deepEqual(viaConfig.tokens, stopped.tokens);
    // in a batch, a row that stops does not stop the others
    const [a, b] = generateText({ ...p, config: { ...p.config, eos_token_id: eos } }, [[1, 7, 3], [4, 4, 39]], { maxNewTokens: 10 });
    assert.deepEqual(a, stopped);
    assert.deepEqual(b, generateText(p, [4, 4, 39], { maxNewTokens: 10, stopToken: eos }));
  });

  test("generation_config.json: its eos_token_id (a number or a list) is the default stop, before config.json's", () => {
    const files = folderFiles(join(HF, "llama")); // config.json has no eos_token_id: transformers' default 2 for llama
    const plain = fromPretrainedFiles(files);
    assert.equal(plain.generationConfig, null);
    const free = generateText(plain, [1, 7, 3], { maxNewTokens: 10, stopToken: null });
    assert.ok(!free.tokens.includes(2) && !free.tokens.includes(39), "the stops below come from generation_config.json, not the default");
    assert.deepEqual(generateText(plain, [1, 7, 3], { maxNewTokens: 10 }), free);
    const eos = free.tokens[3];
    const k = free.tokens.indexOf(eos);
    const withGen = (gen: object, config?: object) => {
      const f = new Map(files);
      f.set("generation_config.json", JSON.stringify(gen));
      if (config) f.set("config.json", JSON.stringify({ ...JSON.parse(files.get("config.json") as string), ...config }));
      return fromPretrainedFiles(f);
    };
    for (const eosIds of [eos, [39, eos]]) {
      const p = withGen({ bos_token_id: 1, eos_token_id: eosIds, do_sample: false }, { eos_token_id: 38 });
      assert.deepEqual(p.generationConfig, { bos_token_id: 1, eos_token_id: eosIds, do_sample: false });
      const r = generateText(p, [1, 7, 3], { maxNewTokens: 10 });
      assert.deepEqual(r.tokens, free.tokens.slice(0, k + 1), JSON.stringify(eosIds));
      assert.equal(r.finish, "stop");
    }
    // no eos_token_id in generation_config.json: config.json's
    assert.deepEqual(generateText(withGen({ bos_token_id: 1 }, { eos_token_id: eos }), [1, 7, 3], { maxNewTokens: 10 }).tokens, free.tokens.slice(0, k + 1));
    assert.deepEqual(eosTokenIds({ model_type: "llama", eos_token_id: 2 }, { eos_token_id: [5, 6] }), [5, 6]);
    assert.deepEqual(eosTokenIds({ model_type: "llama", eos_token_id: 2 }, { bos_token_id: 1 }), [2]);
    assert.throws(() => withGen({ eos_token_id: "</s>" }), /fromPretrained: generation_config\.json eos_token_id must be a token id \(a non-negative integer\) or a list of them, got "<\/s>"/);
    assert.throws(() => withGen({ bos_token_id: [1] }), /fromPretrained: generation_config\.json bos_token_id must be a token id \(a non-negative integer\), got \[1\]/);
    assert.throws(() => withGen([1, 2]), /fromPretrained: generation_config\.json must hold a JSON object, got an array/);
  });

  test("an empty text prompt starts from bos_token_id (generation_config.json's, else config.json's), as transformers' generate() without inputs", () => {
    const files = folderFiles(join(HF, "gpt2"));
    files.set("tokenizer.json", wordTokenizer());
    const none = fromPretrainedFiles(files);
    assert.throws(() => generateText(none, "", { maxNewTokens: 3 }), /generateText: prompt 0 is "", which encodes to no tokens, and neither generation_config\.json nor config\.json has a bos_token_id to start from/);
    files.set("generation_config.json", JSON.stringify({ bos_token_id: 2 }));
    const p = fromPretrainedFiles(files);
    const r = generateText(p, "", { maxNewTokens: 3, stopToken: null });
    assert.deepEqual(r.promptIds, [2]);
    assert.deepEqual(r.tokens, generateText(p, [2], { maxNewTokens: 3, stopToken: null }).tokens);
    assert.deepEqual(generateText({ ...none, config: { ...none.config, bos_token_id: 5 } }, "", { maxNewTokens: 1 }).promptIds, [5]);
  });

  test("eosTokenIds: a number or a list from config.json, else transformers' default for the model type", () => {
    assert.deepEqual(eosTokenIds({ model_type: "llama", eos_token_id: [128001, 128009] }), [128001, 128009]);
    assert.deepEqual(eosTokenIds({ model_type: "qwen2", eos_token_id: 151643 }), [151643]);
    assert.deepEqual(eosTokenIds({ model_type: "gpt2" }), [50256]);
    assert.deepEqual(eosTokenIds({ model_type: "llama" }), [2]);
    assert.deepEqual(eosTokenIds({ model_type: "qwen2" }), []);
  });

  test("text in, text out, streamed: the pieces join to the text, which reads on from the prompt", () => {
    const p = withTokenizer("gpt2");
    const pieces: string[] = [];
    const tokens: number[] = [];
    const r = generateText(p, "the cat sat on", { maxNewTokens: 6, stopToken: null, onText: (s) => pieces.push(s), onToken: (t) => tokens.push(t) });
    assert.deepEqual(r.promptIds, [1, 3, 5, 6]);
    assert.deepEqual(tokens, r.tokens);
    assert.equal(pieces.join(""), r.text);
    assert.equal(r.text, r.tokens.map((t) => ` ${WORDS[t]}`).join("")); // each word after a space, the first one too
    assert.equal(pieces.length, 6);
    assert.throws(() => generateText(fromPretrained(join(HF, "gpt2")), "the cat", {}), /generateText: prompt 0 is text but the folder has no tokenizer.json/);
    assert.throws(() => generateText(p, "the cat", { maxLength: 3 } as never), /unknown option "maxLength"/);
  });
});

describe("sampleToken: top-p (nucleus)", () => {
  // probabilities 0.5, 0.3, 0.2 (largest first: cumulative 0.5, 0.8, 1.0)
  const logits = [Math.log(0.2), Math.log(0.5), Math.log(0.3)];
  const draw = (topP: number, n: number): number[] => {
    const g = new Generator(7);
    const counts = [0, 0, 0];
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: 1, topP }, g)]++;
    return counts;
  };
  test("p = 0.5 keeps only the most likely token (its 0.5 reaches p)", () => {
    assert.deepEqual(draw(0.5, 300), [0, 300, 0]);
  });
  test("p = 0.75 keeps the two most likely, in the ratio 0.5 : 0.3", () => {
    const c = draw(0.75, 4000);
    assert.equal(c[0], 0);
    assert.ok(Math.abs(c[1] / 4000 - 0.625) < 0.03, `share of the first: ${c[1] / 4000}`);
  });
  test("p = 1 keeps all; a p outside (0, 1] is refused", () => {
    assert.ok(draw(1, 1000)[0] > 100);
    assert.throws(() => sampleToken(logits, { temperature: 1, topP: 0 }), /sampleToken: topP must be a number in \(0, 1\], got 0/);
    assert.throws(() => sampleToken(logits, { temperature: 1, topP: 1.5 }), /topP must be a number in \(0, 1\]/);
  });
});
