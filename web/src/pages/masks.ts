/**
 * Lesson 6: masked attention. A mask removes (query, key) pairs before the softmax by setting
 * their scores to −∞: the causal mask removes the future, a padding mask removes keys that are only
 * filler. The masks are drawn over the scores, then the weights show that removed pairs get exactly
 * 0 and each row still sums to 1.
 *
 * The generation view steps through decoding: at step t the new query sees only keys 0..t (a KV
 * cache), and its weights equal row t of the full causal map.
 */
import {
  type Tensor, Generator, causalMask, full, logicalAnd, logicalNot, matmul, mul, paddingMask, randn, reshape,
  scaledDotProductAttentionWithWeights, slice, sum, transpose,
} from "attend";
import { arr, maxAbsDiff, rowsOf, tokens } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { signedScale, weightScale } from "../ui/colors.js";
import { button, check, controls, seedControl, slider, toggle } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { matrixPart, op } from "../ui/parts.js";

const D = 8;
const PAD = "<pad>";

export const masksPage: Page = {
  id: "masks",
  title: "Masked attention",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let seed = state.num("seed", 11, { min: 0, int: true });
    const text = state.str("text", "the cat sat on the mat");
    let causal = state.bool("causal", true);
    let padded = state.num("pad", 2, { min: 0, max: 6, int: true });
    let step = state.num("step", 0, { min: 0, max: 30, int: true });

    root.append(
      h("h1", { tabindex: -1 }, "6. Masked attention"),
      h("p", { class: "lede" },
        "A mask says which keys a query may look at. Masked scores become −∞ before the softmax, so their weights are exactly 0 and the rest still sum to 1. ",
        "The causal mask hides the future: a language model predicting token t+1 must not peek at it. A padding mask hides the filler that makes sequences of different lengths the same length."),
      formula([
        String.raw`P=\mathrm{softmax}\!\Big(\frac{QK^{\top}}{\sqrt d}+M\Big)`,
        String.raw`M_{ls}=\begin{cases}0&\text{if query } l \text{ may see key } s\\-\infty&\text{otherwise}\end{cases}`,
        String.raw`\text{causal: } s\le l`,
      ]),
    );
    root.append(controls(
      toggle({ label: "Causal mask", checked: causal, onChange: (v) => { causal = v; update(); }, testid: "causal" }),
      slider({ label: "Padding tokens", min: 0, max: 6, value: padded, onInput: (v) => { padded = v; update(); }, testid: "padding" }),
      seedControl(seed, (v) => { seed = v; update(); }),
    ));
    const maskFig = ctx.figure({
      id: "masked", title: "Scores with the mask drawn over them, then the weights",
      caption: "In the mask, dark (1, true) means may attend, as in this library's bool masks and torch's scaled_dot_product_attention; torch's nn.MultiheadAttention masks use the opposite (true = masked out). Grey, struck-through cells are masked (−∞ before the softmax).",
      data: () => ({ tokens: words, causal, padding: padded, allowed: rowsOf(allowed), scores: rowsOf(scores), weights: rowsOf(P) }),
    });
    const genFig = ctx.figure({
      id: "generate", title: "Generate the next token, step by step",
      caption: "The newest query (bottom row) sees only what exists so far; future positions are not computed at all.",
      data: () => ({ step, tokens: words.slice(0, step + 1), weights: arr(stepRow), fullRow: arr(slice(P, 0, step, step + 1)) }),
    });
    const checks = { zero: check("masked-zero"), sums: check("row-sums"), kv: check("kv-cache") };
    root.append(maskFig.el, checks.zero.el, checks.sums.el, genFig.el, checks.kv.el);

    let words: string[] = [];
    /** A map's width: at most `w`, and no wider than the figure on a narrow screen. */
    const fitWidth = (w: number): number => Math.min(w, maskFig.body.clientWidth || w);
    let Q: Tensor, K: Tensor, V: Tensor, allowed: Tensor, scores: Tensor, P: Tensor, stepRow: Tensor;

    function update(): void {
      state.set({ seed, causal, pad: padded, step });
      const real = tokens(text, 12);
      words = [...real, ...Array.from({ length: padded }, () => PAD)];
      const L = words.length;
      step = Math.min(step, L - 1);
      const g = new Generator(seed);
      Q = randn([L, D], { generator: g, dtype: "float64" });
      K = randn([L, D], { generator: g, dtype: "float64" });
      V = randn([L, D], { generator: g, dtype: "float64" });
      // allowed[l, s] = (s <= l if causal) and key s is not padding          [L, L] bool
      const notPad = reshape(logicalNot(paddingMask([real.length], L)), [1, L]); // [1, L], true = real token
      allowed = logicalAnd(causal ? causalMask(L, L) : full([L, L], true), notPad); // broadcast [L, L] & [1, L]
      scores = mul(matmul(Q, transpose(K)), 1 / Math.sqrt(D)); // [L, L]
      [, P] = scaledDotProductAttentionWithWeights(Q, K, V, { attnMask: allowed }); // [L, L]
      const masked = Uint8Array.from(allowed.values, (a) => 1 - a);
      const opts = { maxCell: 36, maxWidth: fitWidth(420), axes: ["query", "key"] as [string, string] };
      const sMap = new HeatMap({ rows: L, cols: L, values: scores.values, scale: signedScale(scores.values), masked, rowLabels: words, colLabels: words }, { label: "masked scores", ...opts });
      const mMap = new HeatMap({ rows: L, cols: L, values: allowed.values, scale: weightScale(1), rowLabels: words, colLabels: words }, { label: "mask (1 = may attend)", ...opts, maxWidth: fitWidth(300), showValues: true, legendLabels: ["0 = masked", "1 = may attend"] });
      const pMap = new HeatMap({ rows: L, cols: L, values: P.values, scale: weightScale(1), masked, rowLabels: words, colLabels: words }, { label: "weights P", ...opts, describe: (c, v, m) => `query ${c.r} (${words[c.r]}) → key ${c.c} (${words[c.c]}): ${m ? "masked, weight exactly 0" : fmt(v)}` });
      replace(maskFig.body,
        h("div", { class: "row" }, matrixPart("mask", [L, L], mMap), op("on"), matrixPart("QKᵀ/√d", [L, L], sMap), op("softmax →"), matrixPart("P", [L, L], pMap)));

      let maskedMax = 0;
      for (let i = 0; i < P.size; i++) if (!allowed.values[i]) maskedMax = Math.max(maskedMax, Math.abs(P.values[i]));
      checks.zero.set(maskedMax === 0, `every masked weight is exactly 0 (largest = ${maskedMax})`);
      const sums = sum(P, -1).values;
      let worst = 0;
      for (const v of sums) worst = Math.max(worst, Math.abs(v - 1));
      checks.sums.set(worst < 1e-12, `every row sums to 1 (largest |Σ − 1| = ${fmt(worst, 2)})`);
      drawGeneration();
    }

    function drawGeneration(): void {
      const L = words.length;
      const t = step;
      // Only what exists at step t: the query of token t and the cached keys/values 0..t.
      const q = slice(Q, 0, t, t + 1); // [1, D]
      const kc = slice(K, 0, 0, t + 1); // [t+1, D]
      const vc = slice(V, 0, 0, t + 1);
      const padKeys = slice(reshape(logicalNot(paddingMask([words.filter((w) => w !== PAD).length], L)), [1, L]), 1, 0, t + 1); // [1, t+1]
      [, stepRow] = scaledDotProductAttentionWithWeights(q, kc, vc, { attnMask: logicalAnd(causalMask(1, t + 1, "bottom-right"), padKeys) }); // [1, t+1]
      const full = slice(P, 0, t, t + 1); // row t of the full map, [1, L]
      const values = new Float64Array(L);
      values.set(stepRow.values);
      const future = Uint8Array.from({ length: L }, (_, s) => (s > t ? 1 : 0));
      const rowMap = new HeatMap({ rows: 1, cols: L, values, scale: weightScale(1), masked: future, rowLabels: [words[t]], colLabels: words.map((w, s) => (s > t ? "·" : w)) }, { label: `step ${t}: query "${words[t]}"`, axes: ["query", "key"], maxCell: 46, maxWidth: fitWidth(560) });
      const prev = button("← Previous", () => { step = Math.max(0, step - 1); update(); }, { class: "secondary", "data-testid": "gen-prev" });
      const next = button("Generate next token →", () => { step = Math.min(L - 1, step + 1); update(); }, { "data-testid": "gen-next" });
      prev.disabled = t === 0;
      next.disabled = t === L - 1;
      const sentence = h("p", { "data-export": "text", "data-testid": "gen-sentence" }, `step ${t}: ${words.slice(0, t + 1).join(" ")} ▮`);
      replace(genFig.body, h("div", { class: "row", style: "align-items:center" }, prev, next), sentence, matrixPart(`query ${t} over keys 0..${t}`, [1, t + 1], rowMap));
      const causalRow = causal ? maxAbsDiff(stepRow, slice(full, 1, 0, t + 1)) : NaN;
      checks.kv.set(causal ? causalRow < 1e-12 : null, causal
        ? `with only keys 0..${t} (a KV cache), query ${t}'s weights equal row ${t} of the full causal map (largest difference ${fmt(causalRow, 2)})`
        : "turn the causal mask on: without it, row t of the full map also looks at the future, which generation cannot see");
    }
    update();
  },
};
