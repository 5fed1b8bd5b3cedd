/**
 * forward(ids, { logitsToKeep: k }) (transformers' logits_to_keep): the last k positions' logits,
 * checked against the PyTorch twins' logits at those positions (test/fixtures/make_hf_fixtures.py for
 * the Hugging Face layouts, make_model_fixtures.py for GPT), bad values refused, and generation
 * (generateText alone and batched, generate() plain and paged) asking for the last position only:
 * spies on the output head (or, for GPT-2's tied head, on the final norm just before it) see one
 * position per row in the prefill, so these tests fail if the option is dropped.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Tensor, cast, fromPretrained, generate, generateText, loadSafetensors, noGrad } from "../src/index.js";
import { GPT, type GPTConfig } from "../src/models/index.js";
import { TOL, relError } from "./harness.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const HF = join(HERE, "fixtures", "hf");
const VARIANTS = ["gpt2", "llama", "llama-bf16", "qwen2", "mistral"];

interface Expected {
  ids: number[][];
  shape: number[];
  logits: number[];
  attention: number[][];
  padded?: { ids: number[][]; attention_mask: number[][]; shape: number[]; logits: number[] };
}
const expected = (name: string): Expected => JSON.parse(readFileSync(join(HF, name, "expected.json"), "utf8")) as Expected;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The twin's logits [B, T, V] (flat) at positions from..T-1 of every row, flat [B, T - from, V]. */
function lastPositions(flat: ArrayLike<number>, [B, T, V]: number[], from: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let i = (b * T + from) * V; i < (b + 1) * T * V; i++) out.push(flat[i]);
  return out;
}

/** Replaces obj[key] (a method) by a wrapper that records the shape of its first argument and of its result. */
function spy(obj: object, key: string): { inputs: number[][]; outputs: number[][] } {
  const rec = { inputs: [] as number[][], outputs: [] as number[][] };
  const o = obj as Record<string, (x: Tensor, ...rest: unknown[]) => Tensor>;
  const orig = o[key].bind(obj);
  o[key] = (x: Tensor, ...rest: unknown[]) => {
    rec.inputs.push([...x.shape]);
    const y = orig(x, ...rest);
    rec.outputs.push([...y.shape]);
    return y;
  };
  return rec;
}

describe("PretrainedLM.forward({ logitsToKeep })", () => {
  for (const name of VARIANTS) {
    test(`${name}: the last 1 and 3 positions' logits equal the twin's there; 0 and T give all`, () => {
      const e = expected(name);
      const [B, T, V] = e.shape;
      const { model } = fromPretrained(join(HF, name));
      for (const k of [1, 3]) {
        const logits = noGrad(() => model.forward(e.ids, { logitsToKeep: k }));
        assert.deepEqual(logits.shape, [B, k, V]);
        const d = maxDiff(logits.values, lastPositions(e.logits, e.shape, T - k));
        assert.ok(d < 1e-4, `${name} k=${k}: max |logits - twin| = ${d}`);
      }
      for (const k of [0, T]) {
        const logits = noGrad(() => model.forward(e.ids, { logitsToKeep: k }));
        assert.deepEqual(logits.shape, [B, T, V]);
        assert.ok(maxDiff(logits.values, e.logits) < 1e-4, `${name} k=${k}`);
      }
    });
  }

  for (const name of ["gpt2", "llama", "mistral"]) {
    test(`${name}: with left padding (attentionMask) the last column is every row's last token, as the twin's`, () => {
      const p = expected(name).padded!;
      const [B, T, V] = p.shape;
      const { model } = fromPretrained(join(HF, name));
      const logits = noGrad(() => model.forward(p.ids, { attentionMask: p.attention_mask, logitsToKeep: 1 }));
      assert.deepEqual(logits.shape, [B, 1, V]);
      assert.ok(maxDiff(logits.values, lastPositions(p.logits, p.shape, T - 1)) < 1e-4);
    });

    test(`${name}: with a cache, a prefill keeping 2 positions and then one-token steps follow the twin`, () => {
      const e = expected(name);
      const [B, T, V] = e.shape;
      const { model } = fromPretrained(join(HF, name));
      const cache = model.newCache();
      noGrad(() => {
        const first = model.forward(e.ids.map((r) => r.slice(0, 5)), { cache, logitsToKeep: 2 }); // positions 3, 4
        assert.deepEqual(first.shape, [B, 2, V]);
        const twin = e.ids.flatMap((_, b) => e.logits.slice((b * T + 3) * V, (b * T + 5) * V));
        assert.ok(maxDiff(first.values, twin) < 1e-4);
        assert.equal(cache.length, 5, "every prompt position is cached, whatever the logits kept");
        const step = model.forward(e.ids.map((r) => [r[5]]), { cache, logitsToKeep: 1 });
        assert.ok(maxDiff(step.values, e.ids.flatMap((_, b) => e.logits.slice((b * T + 5) * V, (b * T + 6) * V))) < 1e-4);
      });
    });

    test(`${name}: forwardWithAttention keeps the logits asked for and every layer's full weights`, () => {
      const e = expected(name);
      const [B, T, V] = e.shape;
      const { model } = fromPretrained(join(HF, name));
      const { logits, attention } = noGrad(() => model.forwardWithAttention(e.ids, { logitsToKeep: 1 }));
      assert.deepEqual(logits.shape, [B, 1, V]);
      assert.ok(maxDiff(logits.values, lastPositions(e.logits, e.shape, T - 1)) < 1e-4);
      attention.forEach((a, i) => assert.ok(maxDiff(a.weights.values, e.attention[i]) < 1e-5, `layer ${i}`));
      const visited: number[] = [];
      const v = noGrad(() => model.forwardVisitingAttention(e.ids, (layer) => visited.push(layer), { logitsToKeep: 2 }));
      assert.deepEqual(v.shape, [B, 2, V]);
      assert.equal(visited.length, attention.length);
    });
  }

  test("bad values are errors naming forward, logitsToKeep, the value and the range", () => {
    const e = expected("llama");
    const { model } = fromPretrained(join(HF, "llama"));
    for (const bad of [-1, 11, 1.5, Number.NaN, Infinity, "1", null, true]) {
      assert.throws(() => model.forward(e.ids, { logitsToKeep: bad as number }), (err: Error) => {
        assert.equal(err.name, "ArgumentError");
        assert.match(err.message, /^PretrainedLM\.forward: logitsToKeep must be an integer in 0\.\.10 \(0 = every position; the input has 10 tokens\), got /);
        assert.ok(err.message.endsWith(`got ${typeof bad === "string" ? `"${bad}"` : String(bad)}`), err.message);
        return true;
      });
    }
    assert.throws(() => model.forwardWithAttention(e.ids, { logitsToKeep: 11 }), /PretrainedLM\.forwardWithAttention: logitsToKeep must be an integer in 0\.\.10/);
    const cache = model.newCache();
    noGrad(() => model.forward([[1, 2, 3]], { cache }));
    assert.throws(() => model.forward([[4]], { cache, logitsToKeep: 2 }), /logitsToKeep must be an integer in 0\.\.1 .*got 2/, "the range is the tokens given, not the cached ones");
    assert.throws(() => model.forward(e.ids, { logitsToKep: 1 } as never), /unknown option "logitsToKep".*did you mean "logitsToKeep"/);
  });
});

describe("generation computes the prefill's head on the last position only", () => {
  test("generateText, one prompt (Llama: lm_head; GPT-2, tied: the final norm that feeds its head)", () => {
    for (const name of ["llama", "gpt2"]) {
      const lm = fromPretrained(join(HF, name));
      const m = lm.model;
      const head = m.lm_head ? spy(m.lm_head, "forward") : spy(m.transformer!.ln_f, "forward");
      const prompt = [3, 1, 4, 1, 5, 9, 2];
      const r = generateText(lm, prompt, { maxNewTokens: 4, stopToken: null });
      assert.equal(r.tokens.length, 4);
      assert.equal(head.inputs.length, 4, `${name}: one prefill and three one-token steps`);
      assert.deepEqual(head.inputs[0], [1, 1, m.config.dModel], `${name}: the prefill's head sees one position, not ${prompt.length}`);
      assert.ok(head.inputs.every((s) => s[1] === 1), name);
    }
  });

  test("generateText, a batch of prompts of different lengths (left padded): every row's last token, and the tokens of each alone", () => {
    const lm = fromPretrained(join(HF, "llama"));
    const head = spy(lm.model.lm_head!, "forward");
    const prompts = [[1, 7, 3], [4, 4, 39, 0, 18, 6], [9]];
    const batch = generateText(lm, prompts, { maxNewTokens: 3, stopToken: null });
    assert.deepEqual(head.inputs[0], [3, 1, lm.model.config.dModel]);
    assert.deepEqual(head.outputs[0], [3, 1, lm.model.config.vocabSize]);
    prompts.forEach((p, i) => assert.deepEqual(batch[i].tokens, generateText(lm, p, { maxNewTokens: 3, stopToken: null }).tokens));
    const full = generateText(lm, prompts, { maxNewTokens: 3, stopToken: null, useCache: false });
    assert.deepEqual(full.map((r) => r.tokens), batch.map((r) => r.tokens));
  });

  test("generate() on the library's GPT, plain and paged (rows of different lengths), cached and not", () => {
    const f = loadSafetensors(join(HERE, "fixtures", "models", "gpt_tiny.safetensors"));
    const model = new GPT(JSON.parse(f.metadata.config) as GPTConfig, { seed: 3 });
    const head = spy(model.lm_head!, "forward");
    generate(model, [[1, 2, 3, 4, 5]], { maxNewTokens: 3 });
    assert.deepEqual(head.inputs.map((s) => s[1]), [1, 1, 1]);
    head.inputs.length = 0;
    generate(model, [[1, 2, 3, 4, 5], [6, 7]], { maxNewTokens: 2 }); // paged: each row prefilled alone
    assert.deepEqual(head.inputs.slice(0, 2), [[1, 1, 32], [1, 1, 32]]);
    head.inputs.length = 0;
    const a = generate(model, [[1, 2, 3]], { maxNewTokens: 4, useCache: false });
    assert.ok(head.inputs.every((s) => s[1] === 1), "uncached steps re-run the sequence but keep one position's logits");
    assert.deepEqual(a, generate(model, [[1, 2, 3]], { maxNewTokens: 4 }));
  });
});

describe("GPT.forward({ logitsToKeep })", () => {
  for (const name of ["gpt_tiny", "gpt_tiny_gqa"]) {
    test(`${name}: the last 1 and 3 positions equal PyTorch's float64 logits there`, () => {
      const { tensors: t, metadata } = loadSafetensors(join(HERE, "fixtures", "models", `${name}.safetensors`));
      const model = new GPT(JSON.parse(metadata.config) as GPTConfig, { dtype: "float64" });
      model.eval();
      const params: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(t)) if (k.startsWith("param.")) params[k.slice(6)] = v;
      model.loadStateDict(params);
      const [B, T, V] = t.logits.shape;
      for (const k of [1, 3]) {
        const logits = noGrad(() => model.forward(t.idx, { logitsToKeep: k }));
        assert.deepEqual(logits.shape, [B, k, V]);
        const want = lastPositions(t.logits.values, [B, T, V], T - k);
        const err = relError(cast(logits, "float64"), new Tensor(Float64Array.from(want), [B, k, V], "float64"));
        assert.ok(err <= TOL.float64.out, `${name} k=${k}: relative error ${err}`);
      }
      assert.throws(() => model.forward(t.idx, { logitsToKeep: T + 1 }), new RegExp(`GPT\\.forward: logitsToKeep must be an integer in 0\\.\\.${T} .*got ${T + 1}`));
    });
  }
});
