/**
 * Lesson 5: multi-head attention. The E-wide projections are cut into H heads of E/H dims; each
 * head attends on its own (one small map per head), the head outputs are concatenated back to E
 * columns and mixed by W_O. The parameter count, 4E² + 4E, does not depend on H: the head count
 * decides how the same projections are cut, not how big they are.
 *
 * The heads are computed here step by step from the module's own parameters (public API), and the
 * result is checked against MultiheadAttention.forward.
 */
import {
  type Tensor, MultiheadAttention, linear, mul, permute, reshape, scaledDotProductAttentionWithWeights, slice,
} from "attend";
import { maxAbsDiff, rowsOf, tokens } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { HEAD_COLOURS, signedScale, weightScale } from "../ui/colors.js";
import { check, controls, seedControl, select, textControl } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { emptyNote, matrixPart, op, untrainedNote } from "../ui/parts.js";
import { embed } from "./selfcross.js";

const E = 24;
const HEADS = [1, 2, 3, 4, 6, 8] as const;

interface Heads {
  weights: Tensor; // [H, L, L]
  headOut: Tensor; // [H, L, hd]
  concat: Tensor; // [L, E]
  out: Tensor; // [L, E]
  wo: Tensor; // [E, E]
  diff: number;
  params: number;
}

function computeHeads(words: string[], H: number, seed: number): Heads {
  const mha = new MultiheadAttention(E, H, { seed, dtype: "float64" });
  const x = mul(embed(words, seed, E), 3); // [L, E]
  const L = words.length, hd = E / H;
  const W = mha.in_proj_weight!, b = mha.in_proj_bias!;
  const proj = (i: number): Tensor => linear(x, slice(W, 0, i * E, (i + 1) * E), slice(b, 0, i * E, (i + 1) * E)); // [L, E]
  const heads = (t: Tensor): Tensor => permute(reshape(t, [L, H, hd]), [1, 0, 2]); // [L, E] -> [H, L, hd]
  const [headOut, weights] = scaledDotProductAttentionWithWeights(heads(proj(0)), heads(proj(1)), heads(proj(2))); // [H, L, hd], [H, L, L]
  const concat = reshape(permute(headOut, [1, 0, 2]), [L, E]); // [H, L, hd] -> [L, H, hd] -> [L, E]
  const out = mha.out_proj.forward(concat); // concat · W_Oᵀ + b_O
  const [modOut, modW] = mha.forward(x, x, x, { averageAttnWeights: false }); // [L, E], [H, L, L]
  return {
    weights, headOut, concat, out, wo: mha.out_proj.weight,
    diff: Math.max(maxAbsDiff(out, modOut), maxAbsDiff(weights, modW!)), params: mha.numParameters(),
  };
}

export const multiheadPage: Page = {
  id: "multihead",
  title: "Multi-head attention",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let seed = state.num("seed", 5, { min: 0, int: true });
    let H = state.choice("heads", 4, HEADS);
    let text = state.str("text", "the animal did not cross the street because it was tired");

    root.append(
      h("h1", { tabindex: -1 }, "5. Multi-head attention"),
      h("p", { class: "lede" },
        `Instead of one attention over all E = ${E} dimensions, multi-head attention cuts the query, key and value projections into H heads of E/H dimensions each. `,
        "Every head makes its own map, so different heads can look for different things. The heads' outputs are concatenated back into E columns and mixed by the output projection W_O. ",
        "Change the head count: the maps change, the parameter count does not."),
      formula([
        String.raw`\mathrm{head}_h=\mathrm{softmax}\!\Big(\frac{Q_h K_h^{\top}}{\sqrt{E/H}}\Big)V_h`,
        String.raw`\mathrm{MHA}(X)=\big[\mathrm{head}_1\,\|\,\cdots\,\|\,\mathrm{head}_H\big]\,W_O^{\top}+b_O`,
        String.raw`\#\theta = 4E^2+4E`,
      ]),
    );
    root.append(untrainedNote("The word vectors and the projections W_Q, W_K, W_V, W_O"));
    const empty = emptyNote();
    root.append(controls(
      select({ label: "Heads H", options: HEADS, value: H, onChange: (v) => { H = v; update(); }, testid: "heads" }),
      textControl({ label: "Sentence", value: text, size: 44, onInput: (v) => { text = v; update(); }, testid: "text" }),
      seedControl(seed, (v) => { seed = v; update(); }),
    ), empty.el);
    const counter = h("p", { class: "counter check", "data-testid": "param-count", role: "status" });
    const mapsFig = ctx.figure({ id: "heads", title: "One map per head", data: () => ({ H, tokens: words, weights: Array.from({ length: H }, (_, i) => rowsOf(slice(r.weights, 0, i, i + 1).reshape(words.length, words.length))) }) });
    const concatFig = ctx.figure({
      id: "concat", title: "Concatenate the heads, then W_O",
      caption: "Each head fills E/H columns of the concatenation (coloured boxes; the heads are coloured on the concatenation's scale); W_O mixes them all.",
      data: () => ({ H, concat: rowsOf(r.concat), W_O: rowsOf(r.wo), output: rowsOf(r.out) }),
    });
    const matches = check("matches-module");
    root.append(counter, mapsFig.el, concatFig.el, matches.el);

    let words: string[] = [];
    let r: Heads;
    function update(): void {
      state.set({ seed, heads: H, text });
      words = tokens(text, 16);
      empty.show(words.length ? [] : ["The sentence"]);
      if (words.length === 0) words = ["…"];
      r = computeHeads(words, H, seed);
      const L = words.length, hd = E / H;
      counter.dataset.value = String(r.params);
      counter.textContent = `Parameters: ${r.params.toLocaleString("en")} = 4·${E}² + 4·${E} (W_Q, W_K, W_V, W_O and their biases), with H = ${H} heads of ${hd} dims.`;

      const maps = Array.from({ length: H }, (_, i) => {
        const w = slice(r.weights, 0, i, i + 1);
        let top = 0;
        for (const v of w.values) top = Math.max(top, v);
        const map = new HeatMap({ rows: L, cols: L, values: w.values, scale: weightScale(top), rowLabels: words, colLabels: words }, { label: `head ${i + 1} weights`, axes: ["query", "key"], maxCell: 22, maxWidth: H <= 2 ? 360 : 250, showValues: false });
        return h("div", { class: "col" },
          h("span", { class: "part-title", "data-export": "text", style: `color:${HEAD_COLOURS[i % HEAD_COLOURS.length]}` }, `head ${i + 1}`), map.el);
      });
      replace(mapsFig.body, h("div", { class: "row" }, ...maps));

      const small = { maxCell: 14, maxHeight: 240, showValues: false };
      const headParts = Array.from({ length: H }, (_, i) => {
        const t = slice(r.headOut, 0, i, i + 1);
        const map = new HeatMap({ rows: L, cols: hd, values: t.values, scale: signedScale(r.concat.values) }, { label: `head ${i + 1} output`, axes: ["token", "dim"], ...small, maxWidth: 14 * hd, legend: false }); // coloured as the concatenation, whose legend they share
        return matrixPart(`h${i + 1}`, [L, hd], map);
      });
      const colours = Array.from({ length: H }, (_, i) => ({ r0: 0, r1: L, c0: i * hd, c1: (i + 1) * hd, colour: HEAD_COLOURS[i % HEAD_COLOURS.length] }));
      const concatMap = new HeatMap({ rows: L, cols: E, values: r.concat.values, scale: signedScale(r.concat.values), highlights: colours }, { label: "concatenated heads", axes: ["token", "dim"], ...small, maxCell: 9, maxWidth: 9 * E });
      const woMap = new HeatMap({ rows: E, cols: E, values: r.wo.values, scale: signedScale(r.wo.values) }, { label: "W_O", axes: ["out dim", "in dim"], ...small, maxWidth: 7 * E, maxCell: 7 });
      const outMap = new HeatMap({ rows: L, cols: E, values: r.out.values, scale: signedScale(r.out.values) }, { label: "output", axes: ["token", "dim"], ...small, maxCell: 9, maxWidth: 9 * E });
      replace(concatFig.body,
        h("div", { class: "row" }, ...headParts.flatMap((p, i) => (i ? [op("‖"), p] : [p]))),
        h("div", { class: "row", style: "margin-top:12px" }, op("concat →"), matrixPart("[h1 ‖ … ‖ hH]", [L, E], concatMap), op("· W_Oᵀ"), matrixPart("W_O", [E, E], woMap), op("="), matrixPart("output", [L, E], outMap)));
      matches.set(r.diff < 1e-12, `these steps equal MultiheadAttention.forward (largest difference ${fmt(r.diff, 2)})`);
    }
    update();
  },
};
