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
import { Generator, applyRepetitionPenalty, eosTokenIds, fromPretrained, fromPretrainedFiles, generateText, generationDefaults, sampleToken } from "../src/index.js";

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

describe("generation_config.json's sampling and length defaults (transformers' rules)", () => {
  const files = folderFiles(join(HF, "llama"));
  const withGen = (gen: object) => {
    const f = new Map(files);
    f.set("generation_config.json", JSON.stringify(gen));
    return fromPretrainedFiles(f);
  };
  const plain = fromPretrainedFiles(files); // no generation_config.json: greedy, 50 tokens
  const prompt = expected("llama").ids[0];
  const free = { stopToken: null } as const;
  const greedy = generateText(plain, prompt, { ...free, maxNewTokens: 10 }).tokens;

  test("the greedy reference: its first token is the twin's argmax", () => {
    const e = expected("llama");
    const [, T, V] = e.shape;
    assert.equal(greedy[0], argmax(e.logits.slice((T - 1) * V, T * V)));
  });

  test("do_sample false (or absent): greedy, its temperature, top_k and top_p ignored", () => {
    for (const gen of [{ do_sample: false, temperature: 1.3, top_k: 9, top_p: 0.9 }, { temperature: 1.3, top_k: 9 }]) {
      const r = generateText(withGen(gen), prompt, { ...free, maxNewTokens: 10, seed: 5 });
      assert.deepEqual(r.tokens, greedy, JSON.stringify(gen));
      assert.deepEqual(r.unsupported, []);
    }
  });

  test("do_sample true: the file's temperature, top_k, top_p, as if passed; in a batch too", () => {
    const opts = { temperature: 1.3, topK: 9, topP: 0.9 };
    const p = withGen({ do_sample: true, temperature: 1.3, top_k: 9, top_p: 0.9 });
    for (const seed of [5, 6]) {
      const viaFile = generateText(p, prompt, { ...free, maxNewTokens: 10, seed });
      const explicit = generateText(plain, prompt, { ...free, maxNewTokens: 10, seed, ...opts });
      assert.deepEqual(viaFile.tokens, explicit.tokens);
      assert.notDeepEqual(viaFile.tokens, greedy, "sampled, not greedy");
    }
    const prompts = [prompt, [4, 4, 39, 0, 18, 6], [9]];
    assert.deepEqual(generateText(p, prompts, { ...free, maxNewTokens: 6, seed: 3 }).map((r) => r.tokens), generateText(plain, prompts, { ...free, maxNewTokens: 6, seed: 3, ...opts }).map((r) => r.tokens));
    // absent keys: GenerationConfig's defaults (temperature 1, top_k 50, top_p 1)
    assert.deepEqual(generateText(withGen({ do_sample: true }), prompt, { ...free, maxNewTokens: 10, seed: 5 }).tokens, generateText(plain, prompt, { ...free, maxNewTokens: 10, seed: 5, temperature: 1, topK: 50, topP: 1 }).tokens);
    const file = { do_sample: true };
    assert.deepEqual(generationDefaults(file), { file, doSample: true, temperature: 1, topK: 50, topP: 1, maxNewTokens: null, maxLength: null, repetitionPenalty: null, unsupported: [] });
    assert.equal(generationDefaults({ do_sample: true, top_k: 0 })!.topK, null); // 0 or null: no top-k
    assert.equal(generationDefaults({ do_sample: true, top_k: null })!.topK, null);
    assert.equal(generationDefaults(null), null);
  });

  test("options passed win over the file: greedy or temperature 0, temperature, top-k, maxNewTokens", () => {
    const p = withGen({ do_sample: true, temperature: 1.3, top_k: 9, top_p: 0.9, max_new_tokens: 4 });
    assert.equal(generateText(p, prompt, free).tokens.length, 4);
    assert.deepEqual(generateText(p, prompt, { ...free, maxNewTokens: 10, temperature: 0 }).tokens, greedy);
    assert.deepEqual(generateText(p, prompt, { ...free, maxNewTokens: 10, greedy: true }).tokens, greedy);
    const own = generateText(p, prompt, { ...free, maxNewTokens: 10, temperature: 0.7, topK: 20, seed: 2 });
    assert.deepEqual(own.tokens, generateText(plain, prompt, { ...free, maxNewTokens: 10, temperature: 0.7, topK: 20, topP: 0.9, seed: 2 }).tokens);
    // sampling asked for by the caller when the file says greedy: the file's sampling values are not used
    const asked = generateText(withGen({ do_sample: false, top_k: 1 }), prompt, { ...free, maxNewTokens: 10, temperature: 1.3, seed: 5 });
    assert.deepEqual(asked.tokens, generateText(plain, prompt, { ...free, maxNewTokens: 10, temperature: 1.3, seed: 5 }).tokens);
    assert.notDeepEqual(asked.tokens, greedy);
  });

  test("max_new_tokens; max_length counts the prompt (each row its own); max_new_tokens wins over it", () => {
    assert.equal(generateText(withGen({ max_new_tokens: 3 }), prompt, free).tokens.length, 3);
    const L = prompt.length + 4;
    assert.deepEqual(generateText(withGen({ max_length: L }), prompt, free).tokens, greedy.slice(0, 4));
    const rows = generateText(withGen({ max_length: L }), [prompt, [9]], free);
    assert.deepEqual(rows.map((r) => r.tokens.length), [4, L - 1]);
    assert.deepEqual(rows[1].tokens, generateText(plain, [9], { ...free, maxNewTokens: L - 1 }).tokens);
    assert.equal(generateText(withGen({ max_length: L, max_new_tokens: 2 }), prompt, free).tokens.length, 2);
    assert.equal(generateText(withGen({ max_length: L }), prompt, { ...free, maxNewTokens: 6 }).tokens.length, 6);
    assert.equal(generateText(withGen({ max_length: L }), prompt, { ...free, window: 16 }).tokens.length, 4);
    assert.throws(() => generateText(withGen({ max_length: prompt.length }), [[9], prompt], free), new RegExp(`generateText: prompt 1 has ${prompt.length} tokens, but generation_config\\.json max_length is ${prompt.length} \\(prompt \\+ new tokens, as transformers counts them\\), which leaves no room for new tokens; pass maxNewTokens`));
  });

  test("bad values are load errors naming the file, the key, the value and what is expected", () => {
    const cases: [object, RegExp][] = [
      [{ do_sample: "yes" }, /fromPretrained: generation_config\.json do_sample = "yes"; expected true or false/],
      [{ temperature: -1 }, /generation_config\.json temperature = -1; expected a number >= 0/],
      [{ do_sample: true, temperature: 0 }, /generation_config\.json temperature = 0; expected a number > 0 with do_sample true/],
      [{ top_k: 2.5 }, /generation_config\.json top_k = 2\.5; expected an integer >= 0 \(0 or null: no top-k\)/],
      [{ top_p: 1.5 }, /generation_config\.json top_p = 1\.5; expected a number in \(0, 1\]/],
      [{ top_p: "0.9" }, /generation_config\.json top_p = "0\.9"; expected a number in \(0, 1\]/],
      [{ max_new_tokens: 0 }, /generation_config\.json max_new_tokens = 0; expected a positive integer/],
      [{ max_length: "20" }, /generation_config\.json max_length = "20"; expected a positive integer \(prompt \+ new tokens at most\)/],
    ];
    for (const [gen, re] of cases) assert.throws(() => withGen(gen), re, JSON.stringify(gen));
    // a hand-made model's file is checked by generateText, naming itself
    assert.throws(() => generateText({ ...plain, generationConfig: { top_k: -2 } }, prompt, free), /generateText: generation_config\.json top_k = -2/);
  });

  test("generation_config.json is read once, at load: generateText and attend generate use that reading while the file is the same", () => {
    const p = withGen({ do_sample: false, max_new_tokens: 3 });
    assert.deepEqual(p.generation, generationDefaults(p.generationConfig));
    assert.equal(p.generation!.file, p.generationConfig);
    assert.equal(generateText(p, prompt, free).tokens.length, 3);
    // the reading is what generateText uses (not the file read again) ...
    assert.equal(generateText({ ...p, generation: { ...p.generation!, maxNewTokens: 5 } }, prompt, free).tokens.length, 5);
    // ... unless generationConfig is another file than the one it was read from: then that file is read
    assert.equal(generateText({ ...p, generationConfig: { max_new_tokens: 2 } }, prompt, free).tokens.length, 2);
    assert.equal(generateText({ ...p, generationConfig: null }, prompt, free).tokens.length, Math.min(50, p.model.config.maxSeqLen - prompt.length)); // no file: 50
    // the file is frozen, so the reading cannot go stale: an edit in place is an error, not ignored
    assert.throws(() => { (p.generationConfig as Record<string, unknown>).max_new_tokens = 9; }, TypeError);
    assert.equal(plain.generation, null);
  });

  test("settings generateText does not implement are listed, never dropped in silence", () => {
    const gen = { num_beams: 4, min_new_tokens: 3, typical_p: 0.9, no_repeat_ngram_size: 0, length_penalty: 1, suppress_tokens: [], bad_words_ids: null };
    const p = withGen(gen);
    assert.deepEqual(generationDefaults(p.generationConfig)!.unsupported, [
      { key: "num_beams", value: 4, samplingOnly: false }, { key: "min_new_tokens", value: 3, samplingOnly: false }, { key: "typical_p", value: 0.9, samplingOnly: true },
    ]);
    const r = generateText(p, prompt, { ...free, maxNewTokens: 10 });
    assert.deepEqual(r.tokens, greedy); // still greedy decoding, without beams or a minimum length ...
    assert.deepEqual(r.unsupported, ["num_beams = 4", "min_new_tokens = 3"]); // ... and saying so (typical_p acts only when sampling)
    assert.deepEqual(generateText(p, [prompt, [9]], { ...free, maxNewTokens: 2, temperature: 1 }).map((x) => x.unsupported), [0, 1].map(() => ["num_beams = 4", "min_new_tokens = 3", "typical_p = 0.9"]));
  });
});

describe("repetitionPenalty (transformers' repetition_penalty)", () => {
  interface Penalised { penalty: number; prompts: number[][]; greedy: number[][] }
  const penalised = (name: string): Penalised => (JSON.parse(readFileSync(join(HF, name, "expected.json"), "utf8")) as { repetition_penalty: Penalised }).repetition_penalty;
  const free = { stopToken: null } as const;

  test("applyRepetitionPenalty, worked by hand: positive logits divided, negative multiplied, each token once", () => {
    // logits [2, -2, 1, 0, -0.5], tokens 0, 1, 1, 3 at r = 2: 2/2, -2*2, untouched, 0/2, untouched
    assert.deepEqual(Array.from(applyRepetitionPenalty([2, -2, 1, 0, -0.5], [0, 1, 1, 3], 2)), [1, -4, 1, 0, -0.5]);
    // in the logits' precision, as torch computes it: float32 logits give 1/3 rounded to float32;
    // float64 logits stay float64, the entries not penalised included
    assert.equal(applyRepetitionPenalty(Float32Array.of(1), [0], 3)[0], Math.fround(1 / 3));
    assert.deepEqual(Array.from(applyRepetitionPenalty(Float64Array.of(1, 0.1), [0], 3)), [1 / 3, 0.1]);
    assert.deepEqual(Array.from(applyRepetitionPenalty([2, -2], new Set([1]), 2)), [2, -4]); // a Set of ids does too
    assert.throws(() => applyRepetitionPenalty([1, 2], [2], 1.2), /applyRepetitionPenalty: token ids must be integers in 0\.\.1, got 2/);
    assert.throws(() => applyRepetitionPenalty([1, 2], [0], 0), /applyRepetitionPenalty: repetitionPenalty must be a finite number > 0/);
  });

  for (const name of ["llama", "mistral", "gpt2"]) {
    test(`${name}: greedy tokens with the penalty equal the PyTorch twin's, alone and as one padded batch, cached or not`, () => {
      const e = penalised(name);
      const p = fromPretrained(join(HF, name));
      for (const useCache of [true, false]) {
        const alone = e.prompts.map((pr) => generateText(p, pr, { ...free, useCache, maxNewTokens: 8, repetitionPenalty: e.penalty }).tokens);
        assert.deepEqual(alone, e.greedy, `${name} alone, useCache ${useCache}`);
        const batch = generateText(p, e.prompts, { ...free, useCache, maxNewTokens: 8, repetitionPenalty: e.penalty }).map((r) => r.tokens);
        assert.deepEqual(batch, e.greedy, `${name} batch, useCache ${useCache}`);
      }
    });
  }

  test("the penalty changes the output (these references are not plain greedy), and 1 is off", () => {
    const e = penalised("llama");
    const p = fromPretrained(join(HF, "llama"));
    const plain = e.prompts.map((pr) => generateText(p, pr, { ...free, maxNewTokens: 8 }).tokens);
    assert.notDeepEqual(plain, e.greedy);
    assert.deepEqual(e.prompts.map((pr) => generateText(p, pr, { ...free, maxNewTokens: 8, repetitionPenalty: 1 }).tokens), plain);
  });

  test("generation_config.json's repetition_penalty is the default, greedy too; an option passed wins; bad values are errors", () => {
    const e = penalised("llama");
    const files = folderFiles(join(HF, "llama"));
    const f = new Map(files);
    f.set("generation_config.json", JSON.stringify({ do_sample: false, repetition_penalty: e.penalty }));
    const p = fromPretrainedFiles(f);
    const r = generateText(p, e.prompts[2], { ...free, maxNewTokens: 8 });
    assert.deepEqual(r.tokens, e.greedy[2]);
    assert.deepEqual(r.unsupported, []);
    const off = generateText(p, e.prompts[2], { ...free, maxNewTokens: 8, repetitionPenalty: 1 });
    assert.deepEqual(off.tokens, generateText(fromPretrainedFiles(files), e.prompts[2], { ...free, maxNewTokens: 8 }).tokens);
    const bad = new Map(files);
    bad.set("generation_config.json", JSON.stringify({ repetition_penalty: 0 }));
    assert.throws(() => fromPretrainedFiles(bad), /generation_config\.json repetition_penalty = 0; expected a number > 0/);
    assert.throws(() => generateText(p, [1], { maxNewTokens: 1, repetitionPenalty: -1 }), /generateText: repetitionPenalty must be a finite number > 0 .*got -1/);
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
