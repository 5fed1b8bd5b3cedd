/**
 * Inside the heads of Hugging Face-layout models: attentionMaps (fused path, chosen rows and heads)
 * against the PyTorch twin's softmax weights; headScores against scores derived here from the full
 * math-path weights, and on a hand-built GPT-2 whose weights are known in closed form.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PretrainedLM, archFromConfig, attentionMaps, fromPretrained, headScores, layerAttentionMaps, noGrad } from "../src/index.js";

const HF = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "hf");

interface Expected {
  ids: number[][];
  /** each layer's attention weights [B, H, T, T], flattened */
  attention: number[][];
}
const expected = (name: string): Expected => JSON.parse(readFileSync(join(HF, name, "expected.json"), "utf8")) as Expected;

describe("attentionMaps: one layer's chosen heads and rows through the fused path", () => {
  for (const name of ["gpt2", "llama", "mistral"]) {
    test(`${name}: equal the twin's softmax weights (heads [3, 1], rows 2..7, both prompts)`, () => {
      const e = expected(name);
      const { model } = fromPretrained(join(HF, name));
      const [B, H, T] = [2, 4, 10];
      const heads = [3, 1];
      for (let layer = 0; layer < 2; layer++) {
        const w = attentionMaps(model, e.ids, { layer, heads, rows: [2, 7] });
        assert.deepEqual(w.shape, [B, 2, 5, T]);
        const twin = e.attention[layer]; // [B, H, T, T]
        let worst = 0;
        for (let b = 0; b < B; b++) {
          heads.forEach((h, hi) => {
            for (let r = 0; r < 5; r++) {
              for (let s = 0; s < T; s++) {
                const got = w.values[((b * 2 + hi) * 5 + r) * T + s];
                worst = Math.max(worst, Math.abs(got - twin[((b * H + h) * T + r + 2) * T + s]));
              }
            }
          });
        }
        assert.ok(worst < 1e-5, `${name} layer ${layer}: max difference ${worst}`);
      }
    });
  }

  test("every head and row by default; layerAttentionMaps gives several layers from one pass", () => {
    const e = expected("llama");
    const { model } = fromPretrained(join(HF, "llama"));
    const one = attentionMaps(model, e.ids[0], { layer: 1 });
    assert.deepEqual(one.shape, [1, 4, 10, 10]);
    const [l1, l0] = layerAttentionMaps(model, [e.ids[0]], { layers: [1, 0] });
    assert.deepEqual([...l1.values], [...one.values]);
    assert.deepEqual([...l0.values], [...attentionMaps(model, e.ids[0], { layer: 0 }).values]);
  });

  test("a layer or head out of range is named", () => {
    const { model } = fromPretrained(join(HF, "gpt2"));
    assert.throws(() => attentionMaps(model, [1, 2, 3], { layer: 2 }), /attentionMaps: layer must be an integer from 0 to 1 .* got 2/);
    assert.throws(() => attentionMaps(model, [1, 2, 3], { layer: 0, heads: [4] }), /heads must be an array of query head indices in \[0, 3\]/);
    assert.throws(() => attentionMaps(model, [1, 2, 3], { layer: 0, head: 1 } as never), /unknown option "head"/);
  });
});

/** The four scores from full weights [B, H, 2T, 2T] of the sequences r ++ r, written out from their definitions. */
function referenceScores(weights: Float32Array | Float64Array, B: number, H: number, T: number) {
  const L = 2 * T;
  const w = (b: number, h: number, l: number, s: number): number => weights[((b * H + h) * L + l) * L + s];
  const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
  const per = (f: (b: number, h: number) => number[]): number[] => Array.from({ length: H }, (_, h) => mean(Array.from({ length: B }, (_, b) => f(b, h)).flat()));
  const rows = (from: number): number[] => Array.from({ length: L - from }, (_, i) => from + i);
  return {
    previousToken: per((b, h) => rows(1).map((l) => w(b, h, l, l - 1))),
    induction: per((b, h) => rows(T).map((l) => w(b, h, l, l - T + 1))),
    entropy: per((b, h) => rows(1).map((l) => -rows(0).slice(0, l + 1).reduce((a, s) => a + (w(b, h, l, s) > 0 ? w(b, h, l, s) * Math.log(w(b, h, l, s)) : 0), 0))),
    firstToken: per((b, h) => rows(1).map((l) => w(b, h, l, 0))),
  };
}

function close(got: number[][], want: number[][], tol: number, what: string): void {
  got.forEach((row, l) => row.forEach((v, h) => assert.ok(Math.abs(v - want[l][h]) < tol, `${what}[${l}][${h}]: ${v} vs ${want[l][h]}`)));
}

describe("headScores", () => {
  for (const name of ["gpt2", "qwen2", "mistral"]) {
    test(`${name}: equal the scores derived from the full (math path) weights of r ++ r`, () => {
      const { model } = fromPretrained(join(HF, name));
      const s = headScores(model, { length: 7, batch: 3, seed: 11 });
      assert.equal(s.tokens.length, 3);
      assert.equal(s.tokens[0].length, 7);
      const ids = s.tokens.map((r) => [...r, ...r]);
      const { attention } = noGrad(() => model.forwardWithAttention(ids));
      for (let layer = 0; layer < 2; layer++) {
        const ref = referenceScores(attention[layer].weights.values as Float32Array, 3, 4, 7);
        for (const k of ["previousToken", "induction", "entropy", "firstToken"] as const) close([s[k][layer]], [ref[k]], 1e-6, `${name} ${k} layer ${layer}`);
      }
      if (name === "mistral") {
        // a window of 3 keys: nothing reaches T - 1 = 6 positions back
        assert.deepEqual(s.induction, [[0, 0, 0, 0], [0, 0, 0, 0]]);
      }
    });
  }

  test("the same seed gives the same sequences and scores; given tokens are used as they are", () => {
    const { model } = fromPretrained(join(HF, "llama"));
    const a = headScores(model, { length: 5, batch: 2, seed: 3 });
    assert.deepEqual(headScores(model, { length: 5, batch: 2, seed: 3 }), a);
    assert.notDeepEqual(headScores(model, { length: 5, batch: 2, seed: 4 }).tokens, a.tokens);
    assert.deepEqual(headScores(model, { tokens: a.tokens }), a);
    assert.throws(() => headScores(model, { length: 33 }), /headScores: length must be an integer from 1 to 32/);
  });

  /**
   * One GPT-2 layer, one head, C = 16, token embeddings 0 and position p embedded as e_p. ln_1 gives
   * x_p = (e_p - 1/C) / σ with σ² = (1/C)(1 - 1/C) + eps; the key is x_p, the query λ·(x_p shifted
   * down one place). Then q_l · k_s = (λ / σ²)·[s = l - 1] + (the same for every key of row l), so
   * with a = λ / (σ² √C): row l puts e^a / (e^a + l) on l - 1 and 1 / (e^a + l) on each other key.
   */
  function previousTokenModel(a: number): PretrainedLM {
    const C = 16;
    const m = new PretrainedLM(archFromConfig({ model_type: "gpt2", vocab_size: 5, n_positions: C, n_embd: C, n_layer: 1, n_head: 1 }));
    const p = m.namedParameters();
    for (const t of p.values()) t.values.fill(0);
    p.get("transformer.h.0.ln_1.weight")!.values.fill(1);
    const wpe = p.get("transformer.wpe.weight")!.values; // [C, C]
    for (let i = 0; i < C; i++) wpe[i * C + i] = 1;
    const variance = (1 / C) * (1 - 1 / C) + 1e-5;
    const lambda = a * variance * Math.sqrt(C);
    const w = p.get("transformer.h.0.attn.c_attn.weight")!.values; // [3C, C] (Linear: [out, in]): q rows, k rows, v rows
    for (let j = 0; j + 1 < C; j++) w[j * C + j + 1] = lambda; // q_j = λ x_{j+1}
    for (let j = 0; j < C; j++) w[(C + j) * C + j] = 1; // k = x
    return m;
  }

  for (const a of [0, 3]) {
    test(`a hand-built head with known weights (e^a/(e^a + l) on the previous token, a = ${a}; a = 0 is uniform)`, () => {
      const T = 4;
      const s = headScores(previousTokenModel(a), { length: T, batch: 2, seed: 1 });
      const E = Math.exp(a);
      const rows = (from: number): number[] => Array.from({ length: 2 * T - from }, (_, i) => from + i);
      const mean = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / xs.length;
      const entropy = (l: number): number => -((E / (E + l)) * Math.log(E / (E + l)) + l * (1 / (E + l)) * Math.log(1 / (E + l)));
      const want = {
        previousToken: mean(rows(1).map((l) => E / (E + l))),
        induction: mean(rows(T).map((l) => 1 / (E + l))), // key l - 3 is not the previous one
        entropy: mean(rows(1).map(entropy)),
        firstToken: mean(rows(1).map((l) => (l === 1 ? E / (E + 1) : 1 / (E + l)))),
      };
      for (const k of ["previousToken", "induction", "entropy", "firstToken"] as const) {
        assert.ok(Math.abs(s[k][0][0] - want[k]) < 1e-5, `${k}: ${s[k][0][0]} vs ${want[k]}`);
      }
      if (a === 0) assert.ok(Math.abs(want.entropy - mean(rows(1).map((l) => Math.log(l + 1)))) < 1e-12); // uniform: ln(l + 1)
    });
  }
});
