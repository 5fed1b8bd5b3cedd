/**
 * Lesson 7: grouped-query attention. H query heads share H_kv key/value heads, G = H / H_kv query
 * heads per group. H_kv = H is multi-head attention, H_kv = 1 multi-query attention. Fewer KV heads
 * means a smaller KV cache per token. Two checks run live: GQA with H_kv = H equals
 * MultiheadAttention with the same weights, and GQA with any H_kv equals MultiheadAttention whose
 * key/value heads are the shared ones repeated G times.
 */
import { type Tensor, GroupedQueryAttention, MultiheadAttention, concat, mul, reshape, slice } from "attend";
import { maxAbsDiff, rowsOf, tokens } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { binaryTicks, chartWidth, lineChart } from "../ui/chart.js";
import { HEAD_COLOURS, weightScale } from "../ui/colors.js";
import { check, controls, seedControl, select, slider } from "../ui/controls.js";
import { h, replace, s } from "../ui/dom.js";
import { fmt, fmtBytes, fmtTokens } from "../ui/format.js";
import { HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { attachTip } from "../ui/tooltip.js";
import { untrainedNote } from "../ui/parts.js";
import { embed } from "./selfcross.js";

const H = 8;
const E = 32;
const HD = E / H;
const KV_OPTIONS = [8, 4, 2, 1] as const;
const DTYPES = { float32: 4, "float16 / bfloat16": 2, int8: 1 } as const;
type DTypeName = keyof typeof DTYPES;

/** An MHA that computes exactly what `gqa` computes: its K/V projections are gqa's, each KV head repeated G times. */
function equivalentMha(gqa: GroupedQueryAttention, seed: number): MultiheadAttention {
  const Hkv = gqa.numKvHeads, G = H / Hkv;
  const repeat = (w: Tensor): Tensor => { // [Hkv*hd, E] -> [H*hd, E], head j -> heads j*G .. j*G+G-1
    const parts: Tensor[] = [];
    for (let j = 0; j < Hkv; j++) for (let g = 0; g < G; g++) parts.push(slice(w, 0, j * HD, (j + 1) * HD));
    return concat(parts, 0);
  };
  const mha = new MultiheadAttention(E, H, { bias: false, seed, dtype: "float64" });
  mha.loadStateDict({
    in_proj_weight: concat([gqa.q_proj.weight, repeat(gqa.k_proj.weight), repeat(gqa.v_proj.weight)], 0), // [3E, E]
    "out_proj.weight": gqa.o_proj.weight,
  });
  return mha;
}

function compare(x: Tensor, gqa: GroupedQueryAttention, mha: MultiheadAttention): number {
  const [a, wa] = gqa.forward(x, x, x, { averageAttnWeights: false });
  const [b, wb] = mha.forward(x, x, x, { averageAttnWeights: false });
  return Math.max(maxAbsDiff(a, b), maxAbsDiff(wa!, wb!));
}

/** Query heads above the key/value heads they read; at most 560 px wide, narrower on a narrow screen. */
function sharingDiagram(Hkv: number, maxWidth: number): SVGSVGElement {
  const G = H / Hkv, width = Math.max(300, Math.min(560, maxWidth)), height = 150;
  const box = Math.min(36, (width - 60) / H - 4); // a query head's box
  const qx = (i: number): number => 30 + (i + 0.5) * ((width - 60) / H);
  const kx = (j: number): number => 30 + (j + 0.5) * ((width - 60) / Hkv);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-export": "svg", "font-family": "system-ui, sans-serif", "font-size": 12, role: "img", "aria-label": `${H} query heads sharing ${Hkv} key/value heads, ${G} per group` });
  svg.append(s("text", { x: 4, y: 14, fill: "#374151" }, "query heads"));
  svg.append(s("text", { x: 4, y: height - 4, fill: "#374151" }, "key/value heads (cached)"));
  for (let i = 0; i < H; i++) {
    const j = Math.floor(i / G), colour = HEAD_COLOURS[j % HEAD_COLOURS.length];
    svg.append(s("line", { x1: qx(i), y1: 44, x2: kx(j), y2: height - 46, stroke: colour, "stroke-width": 2 }));
    const g = s("g", { tabindex: 0 });
    g.append(s("rect", { x: qx(i) - box / 2, y: 22, width: box, height: 22, rx: 4, fill: "#ffffff", stroke: colour, "stroke-width": 2 }));
    g.append(s("text", { x: qx(i), y: 33, "text-anchor": "middle", "dominant-baseline": "central", fill: "#111827" }, `q${i}`));
    attachTip(g, () => `query head ${i} reads key/value head ${j} (group of ${G})`);
    svg.append(g);
  }
  for (let j = 0; j < Hkv; j++) {
    const colour = HEAD_COLOURS[j % HEAD_COLOURS.length];
    svg.append(s("rect", { x: kx(j) - 26, y: height - 46, width: 52, height: 24, rx: 4, fill: colour }));
    svg.append(s("text", { x: kx(j), y: height - 34, "text-anchor": "middle", "dominant-baseline": "central", fill: "#ffffff", "font-weight": 700 }, `k${j} v${j}`));
  }
  return svg;
}

export const gqaPage: Page = {
  id: "gqa",
  title: "Grouped-query attention",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let seed = state.num("seed", 7, { min: 0, int: true });
    let Hkv = state.choice("kv", 2, KV_OPTIONS);
    let layers = state.num("layers", 32, { min: 1, max: 128, int: true });
    let headDim = state.choice("hd", 128, [32, 64, 128, 256] as const);
    let dtype = state.choice<DTypeName>("dtype", "float16 / bfloat16", Object.keys(DTYPES) as DTypeName[]);
    const text = state.str("text", "keys and values are shared by groups of heads");

    root.append(
      h("h1", { tabindex: -1 }, "7. Grouped-query attention"),
      h("p", { class: "lede" },
        `Every query head needs keys and values, and during generation those are cached for every past token. Grouped-query attention lets G query heads share one key/value head: here H = ${H} query heads share H_kv key/value heads. `,
        "H_kv = H is ordinary multi-head attention; H_kv = 1 is multi-query attention. The cache shrinks by the factor G, and heads in one group still make different maps, because their queries differ."),
      formula([
        String.raw`\mathrm{head}_h=\mathrm{softmax}\!\Big(\frac{Q_h K_{\lfloor h/G\rfloor}^{\top}}{\sqrt{d}}\Big)V_{\lfloor h/G\rfloor}`,
        String.raw`G=\frac{H}{H_{kv}}`,
        String.raw`\text{KV bytes per token}=2\cdot n_{\text{layers}}\cdot H_{kv}\cdot d\cdot \text{bytes}`,
      ]),
    );
    root.append(untrainedNote("The word vectors and the query, key and value projections"));
    root.append(controls(
      select({ label: "Key/value heads H_kv", options: KV_OPTIONS, value: Hkv, onChange: (v) => { Hkv = v; update(); }, testid: "kv-heads" }),
      seedControl(seed, (v) => { seed = v; update(); }),
    ));
    const mapsFig = ctx.figure({ id: "groups", title: "Which key/value head each query head reads, and each head's map", data: () => ({ H, Hkv, groupOf: Array.from({ length: H }, (_, i) => Math.floor(i / (H / Hkv))), weights: mapsData }) });
    const checks = { mha: check("gqa-equals-mha"), repeat: check("gqa-equals-repeated") };
    root.append(mapsFig.el, checks.mha.el, checks.repeat.el);
    root.append(h("h2", {}, "KV-cache bytes per token"));
    root.append(controls(
      slider({ label: "Layers", min: 1, max: 128, value: layers, onInput: (v) => { layers = v; drawCache(); } }),
      select({ label: "Head dim d", options: [32, 64, 128, 256] as const, value: headDim, onChange: (v) => { headDim = v; drawCache(); } }),
      select({ label: "Cache dtype", options: Object.keys(DTYPES) as DTypeName[], value: dtype, onChange: (v) => { dtype = v; drawCache(); } }),
    ));
    const cacheFig = ctx.figure({ id: "kvcache", title: "KV cache against context length", data: () => cacheData() });
    const cacheNote = h("p", { class: "note", "data-testid": "kv-bytes", role: "status" });
    root.append(cacheFig.el, cacheNote);

    let mapsData: number[][][] = [];
    const bytesPerToken = (kv: number): number => 2 * layers * kv * headDim * DTYPES[dtype];
    function cacheData() {
      return { H, layers, headDim, dtype, bytesPerElement: DTYPES[dtype], bytesPerToken: Object.fromEntries(KV_OPTIONS.map((kv) => [kv, bytesPerToken(kv)])) };
    }

    function drawCache(): void {
      state.set({ layers, hd: headDim, dtype });
      const ns = Array.from({ length: 13 }, (_, i) => 2 ** (i + 8));
      const chart = lineChart({
        width: chartWidth(cacheFig.body, 640), height: 300, label: "KV cache bytes against context length",
        series: KV_OPTIONS.map((kv, i) => ({ name: `H_kv = ${kv}${kv === H ? " (MHA)" : kv === 1 ? " (MQA)" : ""}`, colour: HEAD_COLOURS[i], points: ns.map((n) => [n, n * bytesPerToken(kv)] as const), dash: kv === Hkv ? undefined : "5 4" })),
        x: { label: "context length (tokens)", log: true, format: fmtTokens },
        y: { label: "KV cache", log: true, format: fmtBytes, ticks: binaryTicks },
        refs: [{ y: 80e9, label: "80 GB (one H100)" }],
      });
      replace(cacheFig.body, chart);
      cacheNote.dataset.value = String(bytesPerToken(Hkv));
      cacheNote.textContent = `H_kv = ${Hkv}: ${fmtBytes(bytesPerToken(Hkv))} per token (2 · ${layers} layers · ${Hkv} heads · ${headDim} dims · ${DTYPES[dtype]} B), ${H / Hkv}× less than multi-head attention's ${fmtBytes(bytesPerToken(H))}; a 32k-token context needs ${fmtBytes(32768 * bytesPerToken(Hkv))}.`;
    }

    function update(): void {
      state.set({ seed, kv: Hkv });
      const words = tokens(text, 12);
      const L = words.length;
      const x = mul(embed(words, seed, E), 1.5); // [L, E]
      const gqa = new GroupedQueryAttention(E, H, Hkv, { seed, dtype: "float64" });
      const [, w] = gqa.forward(x, x, x, { averageAttnWeights: false }); // [H, L, L]
      const G = H / Hkv;
      mapsData = Array.from({ length: H }, (_, i) => rowsOf(reshape(slice(w!, 0, i, i + 1), [L, L])));
      const maps = Array.from({ length: H }, (_, i) => {
        const colour = HEAD_COLOURS[Math.floor(i / G) % HEAD_COLOURS.length];
        const map = new HeatMap({ rows: L, cols: L, values: slice(w!, 0, i, i + 1).values, scale: weightScale(1) }, { label: `query head ${i} (KV head ${Math.floor(i / G)})`, axes: ["query", "key"], maxCell: 14, maxWidth: 126, showValues: false });
        return h("div", { class: "col" }, h("span", { class: "part-title", "data-export": "text", style: `color:${colour}` }, `q${i} → kv${Math.floor(i / G)}`), map.el);
      });
      replace(mapsFig.body, sharingDiagram(Hkv, mapsFig.body.clientWidth || 560), h("div", { class: "row", style: "margin-top:8px" }, ...maps));

      const full = new GroupedQueryAttention(E, H, H, { seed, dtype: "float64" });
      const dFull = compare(x, full, equivalentMha(full, seed));
      checks.mha.set(dFull < 1e-12, `GroupedQueryAttention with H_kv = H = ${H} equals MultiheadAttention with the same weights (largest difference ${fmt(dFull, 2)})`);
      const dRep = compare(x, gqa, equivalentMha(gqa, seed));
      checks.repeat.set(dRep < 1e-12, `with H_kv = ${Hkv}, GQA equals MultiheadAttention whose ${Hkv} key/value head${Hkv > 1 ? "s are" : " is"} repeated ${G}× (largest difference ${fmt(dRep, 2)})`);
      drawCache();
    }
    update();
  },
};
