/**
 * Lesson 4: self- and cross-attention with one MultiheadAttention module (one head, so the map is
 * the module's own weights). Self-attention: queries, keys and values all come from one sequence, an
 * L × L map. Cross-attention: queries from one sequence, keys and values from a memory sequence, an
 * L × S map. Both are drawn as heat maps and as lines between tokens.
 */
import { type Tensor, MultiheadAttention, mul, sum, tensor } from "attend";
import { rowsOf, tokens, wordVector } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { weightScale } from "../ui/colors.js";
import { check, controls, seedControl, slider, textControl } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { emptyNote, matrixPart, untrainedNote } from "../ui/parts.js";
import { tokenLines } from "../ui/tokenLines.js";

const E = 16;

/** Word vectors plus sinusoidal positions, so a repeated word at two places is two different tokens. */
export function embed(words: readonly string[], seed: number, dim: number): Tensor {
  const data = new Float64Array(words.length * dim);
  words.forEach((w, p) => {
    const v = wordVector(w, dim, seed);
    for (let i = 0; i < dim; i++) {
      const angle = p / 10000 ** ((2 * Math.floor(i / 2)) / dim);
      data[p * dim + i] = v[i] + (i % 2 === 0 ? Math.sin(angle) : Math.cos(angle));
    }
  });
  return tensor(data, [words.length, dim]);
}

export const selfCrossPage: Page = {
  id: "selfcross",
  title: "Self- and cross-attention",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let seed = state.num("seed", 3, { min: 0, int: true });
    let query = state.str("q", "the cat sat on the mat");
    let memory = state.str("m", "le chat était assis sur le tapis");
    let gain = state.num("gain", 1.5, { min: 0.1, max: 4 });

    root.append(
      h("h1", { tabindex: -1 }, "4. Self- and cross-attention"),
      h("p", { class: "lede" },
        "The same attention block serves two purposes. In self-attention a sequence looks at itself: queries, keys and values are projections of one sequence, so the map is square, L × L. ",
        "In cross-attention the queries come from one sequence and the keys and values from another (an encoder's output, a memory, an image), so the map is L × S. ",
        "Type either sentence; each row of a map is one query's weights over the keys."),
      formula([
        String.raw`\text{self: }\mathrm{Attn}(XW_Q,\,XW_K,\,XW_V)\in\mathbb{R}^{L\times L}`,
        String.raw`\text{cross: }\mathrm{Attn}(XW_Q,\,MW_K,\,MW_V)\in\mathbb{R}^{L\times S}`,
      ]),
    );
    root.append(untrainedNote("The word vectors and the projections W_Q, W_K, W_V"));
    const empty = emptyNote();
    root.append(controls(
      textControl({ label: "Sequence X", value: query, onInput: (v) => { query = v; update(); }, testid: "query-text" }),
      textControl({ label: "Memory M", value: memory, onInput: (v) => { memory = v; update(); }, testid: "memory-text" }),
      seedControl(seed, (v) => { seed = v; update(); }),
      slider({ label: "Embedding gain", min: 0.1, max: 4, step: 0.1, value: gain, onInput: (v) => { gain = v; update(); }, testid: "gain" }),
    ), empty.el);
    const selfFig = ctx.figure({ id: "self", title: "Self-attention: X attends to X", data: () => ({ tokens: xs, weights: rowsOf(selfW) }) });
    const crossFig = ctx.figure({ id: "cross", title: "Cross-attention: X attends to M", data: () => ({ queries: xs, keys: ms, weights: rowsOf(crossW) }) });
    const sums = check("row-sums");
    root.append(selfFig.el, crossFig.el, sums.el);

    let xs: string[] = [];
    let ms: string[] = [];
    let selfW = tensor([[1]]);
    let crossW = tensor([[1]]);
    const mapOpts = { maxCell: 40, maxWidth: Math.min(400, selfFig.body.clientWidth || 400), maxHeight: 400 };
    const selfMap = new HeatMap({ rows: 1, cols: 1, values: [1], scale: weightScale(1) }, { label: "self-attention weights", axes: ["query", "key"], ...mapOpts });
    const crossMap = new HeatMap({ rows: 1, cols: 1, values: [1], scale: weightScale(1) }, { label: "cross-attention weights", axes: ["query", "memory key"], ...mapOpts });
    const selfLines = h("div", { class: "grow" });
    const crossLines = h("div", { class: "grow" });
    const selfPart = h("div", {});
    const crossPart = h("div", {});
    selfFig.body.append(h("div", { class: "row" }, selfPart, selfLines));
    crossFig.body.append(h("div", { class: "row" }, crossPart, crossLines));

    function update(): void {
      state.set({ seed, q: query, m: memory, gain });
      xs = tokens(query);
      ms = tokens(memory);
      empty.show([...(xs.length ? [] : ["Sequence X"]), ...(ms.length ? [] : ["Memory M"])]);
      if (xs.length === 0) xs = ["…"];
      if (ms.length === 0) ms = ["…"];
      const mha = new MultiheadAttention(E, 1, { seed, dtype: "float64" });
      const x = mul(embed(xs, seed, E), gain); // [L, E] (unbatched)
      const m = mul(embed(ms, seed + 1, E), gain); // [S, E]
      selfW = mha.forward(x, x, x)[1]!; // [L, L]
      crossW = mha.forward(x, m, m)[1]!; // [L, S]
      selfMap.update({ rows: xs.length, cols: xs.length, values: selfW.values, rowLabels: xs, colLabels: xs });
      crossMap.update({ rows: xs.length, cols: ms.length, values: crossW.values, rowLabels: xs, colLabels: ms });
      replace(selfPart, matrixPart("softmax(XW_Q (XW_K)ᵀ/√d)", [xs.length, xs.length], selfMap));
      replace(crossPart, matrixPart("softmax(XW_Q (MW_K)ᵀ/√d)", [xs.length, ms.length], crossMap));
      const width = (el: HTMLElement): number => Math.max(260, Math.min(640, el.clientWidth || 480));
      replace(selfLines, tokenLines({ queries: xs, keys: xs, weights: selfW.values, width: width(selfLines), label: "self-attention lines" }));
      replace(crossLines, tokenLines({ queries: xs, keys: ms, weights: crossW.values, width: width(crossLines), label: "cross-attention lines", colour: "#b45309" }));
      const rowSums = [...sum(selfW, -1).values, ...sum(crossW, -1).values];
      const worst = Math.max(...rowSums.map((v) => Math.abs(v - 1)));
      sums.set(worst < 1e-12, `self map ${xs.length} × ${xs.length}, cross map ${xs.length} × ${ms.length}; every row sums to 1 (largest |Σ − 1| = ${fmt(worst, 2)})`);
    }
    update();
  },
};
