/**
 * Lesson 3: scaled dot-product attention as a chain of linked matrices,
 *   Q Kᵀ -> ÷ √d -> row softmax -> · V,
 * with shape badges, row sums of P, and a switch for the √d scaling that shows softmax saturating
 * (rows turning one-hot) without it. The chain is computed step by step with the library's ops and
 * checked against scaledDotProductAttentionWithWeights.
 */
import {
  type Tensor, Generator, matmul, mul, randn, scaledDotProductAttentionWithWeights, softmax, sum, transpose,
} from "attend";
import { arr, maxAbsDiff, rowsOf } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { signedScale, weightScale } from "../ui/colors.js";
import { check, controls, seedControl, select, slider, toggle } from "../ui/controls.js";
import { h } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { type Cell, HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { matrixPart, op } from "../ui/parts.js";

const DIMS = [2, 4, 8, 16, 32, 64, 128, 256] as const;

interface Result {
  Q: Tensor; K: Tensor; V: Tensor; scores: Tensor; scaledScores: Tensor; P: Tensor; out: Tensor; rowSums: Tensor;
  libDiff: number; scale: number;
}

/** The textbook chain, one op at a time (float64, so the checks read exact). */
function compute(seed: number, L: number, S: number, d: number, Ev: number, scaled: boolean): Result {
  const g = new Generator(seed);
  const Q = randn([L, d], { generator: g, dtype: "float64" });
  const K = randn([S, d], { generator: g, dtype: "float64" });
  const V = randn([S, Ev], { generator: g, dtype: "float64" });
  const scale = scaled ? 1 / Math.sqrt(d) : 1;
  const scores = matmul(Q, transpose(K)); // [L, d] @ [d, S] -> [L, S]
  const scaledScores = mul(scores, scale);
  const P = softmax(scaledScores, -1); // each row over the S keys
  const out = matmul(P, V); // [L, S] @ [S, Ev] -> [L, Ev]
  const rowSums = sum(P, -1, true); // [L, 1]
  const [libOut, libP] = scaledDotProductAttentionWithWeights(Q, K, V, { scale });
  return { Q, K, V, scores, scaledScores, P, out, rowSums, libDiff: Math.max(maxAbsDiff(out, libOut), maxAbsDiff(P, libP)), scale };
}

/** Mean over rows of the largest weight: 1/S for a uniform mix, 1 for a one-hot lookup. */
function meanRowMax(P: Tensor): number {
  const [L, S] = P.shape;
  let total = 0;
  for (let l = 0; l < L; l++) total += Math.max(...P.values.subarray(l * S, (l + 1) * S));
  return total / L;
}

export const sdpaPage: Page = {
  id: "sdpa",
  title: "Scaled dot-product attention",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let seed = state.num("seed", 1, { min: 0, int: true });
    let L = state.num("L", 4, { min: 1, max: 12, int: true });
    let S = state.num("S", 6, { min: 1, max: 12, int: true });
    let d = state.choice("d", 16, DIMS);
    let scaled = state.bool("scaled", true);
    const Ev = 3;

    root.append(
      h("h1", { tabindex: -1 }, "3. Scaled dot-product attention"),
      h("p", { class: "lede" },
        "Every query is compared with every key by a dot product; the scores are divided by √d, turned into weights by a softmax over each row, and the weights blend the values. ",
        "Without the ÷√d the scores grow like √d, and the softmax saturates: each row becomes nearly one-hot, a hard lookup whose gradients vanish."),
      formula([
        String.raw`\mathrm{Attention}(Q,K,V)=\underbrace{\mathrm{softmax}\!\Big(\tfrac{Q K^{\top}}{\sqrt{d}}\Big)}_{P\;[L\times S]}\,V`,
        String.raw`\textstyle\sum_{s} P_{ls}=1`,
      ]),
    );
    const ctl = controls(
      seedControl(seed, (v) => { seed = v; update(); }),
      slider({ label: "Queries L", min: 1, max: 12, value: L, onInput: (v) => { L = v; update(); }, testid: "L" }),
      slider({ label: "Keys S", min: 1, max: 12, value: S, onInput: (v) => { S = v; update(); }, testid: "S" }),
      select({ label: "Head dim d", options: DIMS, value: d, onChange: (v) => { d = v; update(); }, testid: "d" }),
      toggle({ label: "Divide by √d", checked: scaled, onChange: (v) => { scaled = v; update(); }, testid: "scaled" }),
    );
    const fig = ctx.figure({
      id: "chain", title: "Q Kᵀ → ÷√d → softmax → · V",
      caption: "Hover a weight to see the query row and key column it came from.",
      data: () => ({
        seed, L, S, d, scaled, scale: r.scale, Q: rowsOf(r.Q), K: rowsOf(r.K), V: rowsOf(r.V), scores: rowsOf(r.scores),
        scaledScores: rowsOf(r.scaledScores), P: rowsOf(r.P), rowSums: arr(r.rowSums), out: rowsOf(r.out),
      }),
    });
    const checks = { sums: check("row-sums"), lib: check("matches-library"), sat: check("saturation") };
    root.append(ctl, fig.el, checks.sums.el, checks.lib.el, checks.sat.el);

    let r = compute(seed, L, S, d, Ev, scaled);
    const small = { maxCell: 30, maxHeight: 360 };
    const qMap = new HeatMap(mapData(r.Q, "query", "dim"), { label: "Q", axes: ["query", "dim"], ...small, maxWidth: 260, stretch: true, minRowHeight: 30 });
    const kMap = new HeatMap(mapData(transpose(r.K), "dim", "key"), { label: "Kᵀ", axes: ["dim", "key"], ...small, maxWidth: 260, stretch: true });
    const sMap = new HeatMap(mapData(r.scores, "q", "k"), { label: "Q·Kᵀ", axes: ["query", "key"], ...small, maxWidth: 260 });
    const ssMap = new HeatMap(mapData(r.scaledScores, "q", "k"), { label: "scores ÷ √d", axes: ["query", "key"], ...small, maxWidth: 260 });
    const onP = (c: Cell | null): void => link(c);
    const pMap = new HeatMap({ ...mapData(r.P, "q", "k"), scale: weightScale(1) }, { label: "P = softmax", axes: ["query", "key"], ...small, maxWidth: 260, onHover: onP });
    const sumMap = new HeatMap({ rows: L, cols: 1, values: r.rowSums.values, scale: weightScale(1) }, { label: "row sums Σₛ P", axes: ["query", ""], maxCell: 30, maxWidth: 44, maxHeight: 360, digits: 12, legend: false, describe: (c, v) => `row ${c.r}: Σₛ P = ${v.toPrecision(17)}` });
    const vMap = new HeatMap(mapData(r.V, "key", "dim"), { label: "V", axes: ["key", "dim"], ...small, maxWidth: 120 });
    const oMap = new HeatMap(mapData(r.out, "query", "dim"), { label: "output P·V", axes: ["query", "dim"], ...small, maxWidth: 120 });
    const sumsPart = h("div", { class: "col" }, h("span", { class: "part-title", "data-export": "text" }, "Σₛ"), sumMap.el);
    const badges = {
      q: matrixPart("Q", [L, d], qMap), k: matrixPart("Kᵀ", [d, S], kMap), s: matrixPart("Q·Kᵀ", [L, S], sMap),
      ss: matrixPart("÷ √d", [L, S], ssMap), p: matrixPart("P", [L, S], pMap), v: matrixPart("V", [S, Ev], vMap), o: matrixPart("out", [L, Ev], oMap),
    };
    fig.body.append(
      h("div", { class: "row" }, badges.q, op("·"), badges.k, op("="), badges.s, op("→"), badges.ss),
      h("div", { class: "row", style: "margin-top:14px" }, op("softmax →"), badges.p, sumsPart, op("·"), badges.v, op("="), badges.o),
    );

    function mapData(t: Tensor, rowName: string, colName: string) {
      const [rows, cols] = t.shape;
      return {
        rows, cols, values: t.values, scale: signedScale(t.values),
        rowLabels: rows <= 32 ? Array.from({ length: rows }, (_, i) => `${rowName[0]}${i}`) : undefined,
        colLabels: cols <= 16 ? Array.from({ length: cols }, (_, i) => `${colName[0]}${i}`) : undefined,
      };
    }

    function link(c: Cell | null): void {
      const none = { highlights: [] };
      if (!c) {
        for (const m of [qMap, kMap, sMap, ssMap, vMap]) m.update(none);
        return;
      }
      const colour = "#d97706";
      qMap.update({ highlights: [{ r0: c.r, r1: c.r + 1, c0: 0, c1: d, colour }] });
      kMap.update({ highlights: [{ r0: 0, r1: d, c0: c.c, c1: c.c + 1, colour }] });
      sMap.update({ highlights: [{ r0: c.r, r1: c.r + 1, c0: c.c, c1: c.c + 1, colour }] });
      ssMap.update({ highlights: [{ r0: c.r, r1: c.r + 1, c0: 0, c1: S, colour }] });
      vMap.update({ highlights: [{ r0: c.c, r1: c.c + 1, c0: 0, c1: Ev, colour }] });
    }

    function update(): void {
      state.set({ seed, L, S, d, scaled });
      r = compute(seed, L, S, d, Ev, scaled);
      qMap.update(mapData(r.Q, "query", "dim"));
      kMap.update(mapData(transpose(r.K), "dim", "key"));
      sMap.update(mapData(r.scores, "q", "k"));
      ssMap.update(mapData(r.scaledScores, "q", "k"));
      pMap.update({ ...mapData(r.P, "q", "k"), scale: weightScale(1) });
      sumMap.update({ rows: L, cols: 1, values: r.rowSums.values });
      vMap.update(mapData(r.V, "key", "dim"));
      oMap.update(mapData(r.out, "query", "dim"));
      const shapes: [HTMLElement, number[]][] = [[badges.q, [L, d]], [badges.k, [d, S]], [badges.s, [L, S]], [badges.ss, [L, S]], [badges.p, [L, S]], [badges.v, [S, Ev]], [badges.o, [L, Ev]]];
      for (const [el, sh] of shapes) el.querySelector(".badge")!.textContent = `[${sh.join(" × ")}]`;
      ssMap.el.previousElementSibling!.querySelector(".part-title")!.textContent = scaled ? "÷ √d" : "÷ 1 (no scaling)";

      let worst = 0;
      for (const v of r.rowSums.values) worst = Math.max(worst, Math.abs(v - 1));
      checks.sums.set(worst < 1e-12, `every row of P sums to 1 (largest |Σₛ P − 1| = ${fmt(worst, 2)})`);
      checks.lib.set(r.libDiff < 1e-12, `these steps match scaledDotProductAttentionWithWeights (largest difference ${fmt(r.libDiff, 2)})`);
      const withScale = meanRowMax(compute(seed, L, S, d, Ev, true).P);
      const without = meanRowMax(compute(seed, L, S, d, Ev, false).P);
      checks.sat.set(true, `mean of each row's largest weight: ${fmt(withScale, 3)} with ÷√d, ${fmt(without, 3)} without (uniform = ${fmt(1 / S, 3)}, one-hot = 1)`);
    }
    update();
  },
};
