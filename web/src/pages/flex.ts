/**
 * Lesson 10: flexible attention. The options of scaledDotProductAttention that change which keys a
 * query sees or how it weighs them (slidingWindow, alibiSlopes, softcap, sinks, documents, blockMask):
 * each option's effective mask over the kernel's 64 × 64 tiles (skipped, partial, full, as
 * createBlockMask classifies them), the density and the time of a real call, the weights of chosen
 * rows from the fused path (attentionWeights with rows and heads), what a sink does to a row's sum
 * (1 − e^(sink − lse)), and softcap's curve.
 */
import {
  type BlockMask, type FlexOptions, type MaskMod, type Tensor, Generator, createBlockMask, documentMask, mul, randn, reshape, scaledDotProductAttentionWithLse,
  attentionWeights, tensor, windowMask,
} from "attend";
import { arr, rowsOf } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { chartWidth, lineChart } from "../ui/chart.js";
import { weightScale } from "../ui/colors.js";
import { check, controls, seedControl, select, slider } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { type Highlight, HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { matrixPart } from "../ui/parts.js";

/** Sequence length, kernel tile, heads, head dim. */
const N = 512;
const TILE = 64;
const T = N / TILE;
const H = 2;
const E = 16;
/** rows of the weights figure */
const R = 8;

const OPTIONS = ["window", "alibi", "softcap", "sinks", "documents", "blockmask"] as const;
type Option = (typeof OPTIONS)[number];
const OPTION_NAMES: Record<Option, string> = {
  window: "slidingWindow", alibi: "alibiSlopes", softcap: "softcap", sinks: "sinks", documents: "documents", blockmask: "blockMask",
};
const ALIBI = ["default", "0.5", "0.125", "0.03125"] as const;
const PATTERNS = ["causal", "prefix", "strided"] as const;
type Pattern = (typeof PATTERNS)[number];
const PATTERN_NAMES: Record<Pattern, string> = {
  causal: "causal: k ≤ q", prefix: "prefix LM: k < 128 or k ≤ q", strided: "strided: |q − k| < 64 or k mod 128 = 0",
};

/** The maskMod of a block-mask pattern (true = may attend). */
function patternMod(p: Pattern): MaskMod {
  if (p === "causal") return (_b, _h, q, k) => k <= q;
  if (p === "prefix") return (_b, _h, q, k) => k < 128 || k <= q;
  return (_b, _h, q, k) => Math.abs(q - k) < 64 || k % 128 === 0;
}

/** Document ids [N]: `docs` documents of random lengths (from the seed), in order. */
function documentIds(docs: number, g: Generator): Int32Array {
  const cuts = new Set<number>();
  while (cuts.size < docs - 1) cuts.add(1 + g.nextInt(N - 1)); // distinct, so there are exactly `docs` documents
  const ids = new Int32Array(N);
  for (const c of cuts) for (let i = c; i < N; i++) ids[i]++;
  return ids;
}

export const flexPage: Page = {
  id: "flex",
  title: "Flexible attention",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let opt = state.choice<Option>("opt", "window", OPTIONS);
    let seed = state.num("seed", 3, { min: 0, int: true });
    let wl = state.num("wl", 127, { min: 0, max: N, int: true });
    let wr = state.num("wr", 0, { min: 0, max: N, int: true });
    let alibi = state.choice("alibi", "default", ALIBI);
    let cap = state.num("cap", 2, { min: 0.25, max: 20 });
    let sink = state.num("sink", 2, { min: -6, max: 10 });
    let docs = state.num("docs", 4, { min: 1, max: 12, int: true });
    let pattern = state.choice<Pattern>("pattern", "causal", PATTERNS);
    let row = state.num("row", 200, { min: 0, max: N - R, int: true });
    let head = state.num("head", 0, { min: 0, max: H - 1, int: true });

    root.append(
      h("h1", { tabindex: -1 }, "10. Flexible attention"),
      h("p", { class: "lede" },
        "Real models bend plain attention: a query may see only a window of nearby keys (Mistral), only its own document in a packed batch, ",
        "or any pattern a function describes; scores may be biased by distance (ALiBi) or squashed (softcapping, Gemma 2); ",
        "a learned sink may soak up attention no key should get (gpt-oss). The library takes each as an option of scaledDotProductAttention. ",
        "The fused kernels work in 64 × 64 tiles: a tile the mask hides entirely is skipped, one it allows entirely needs no mask bits, and only the partial ones read the mask."),
      formula([
        String.raw`s_{ls}=\frac{q_l\cdot k_s}{\sqrt d}-m_h\,|l-s|`,
        String.raw`s\leftarrow c\,\tanh(s/c)`,
        String.raw`P_{ls}=\frac{e^{s_{ls}}}{\sum_{s'\,\text{visible}}e^{s_{ls'}}+e^{\text{sink}_h}}`,
        String.raw`\textstyle\sum_s P_{ls}=1-e^{\text{sink}_h-\text{lse}_l}`,
      ]),
    );

    const paramBox = h("div", { class: "controls" });
    root.append(controls(
      select({ label: "Option", options: OPTIONS, value: opt, names: (v) => OPTION_NAMES[v], onChange: (v) => { opt = v; drawParams(); drawAll(); }, testid: "option" }),
      seedControl(seed, (v) => { seed = v; makeInputs(); drawAll(); }),
    ), paramBox);

    const tileFig = ctx.figure({ id: "tiles", title: `The effective mask over ${TILE} × ${TILE} tiles (N = ${N})`, data: () => tileData });
    const tileNote = h("p", { class: "note", "data-testid": "tile-note", role: "status" });
    const tileCheck = check("tiles-agree");
    root.append(tileFig.el, tileNote, tileCheck.el);

    root.append(h("h2", {}, "The weights of chosen rows, from the fused path"));
    const rowSlider = slider({ label: "First row", min: 0, max: N - R, value: row, onInput: (v) => { row = v; drawRows(); }, testid: "row" });
    root.append(controls(
      rowSlider,
      select({ label: "Head", options: Array.from({ length: H }, (_, i) => i), value: head, onChange: (v) => { head = v; drawRows(); }, testid: "head" }),
    ));
    const rowFig = ctx.figure({ id: "rows", title: `attentionWeights(q, k, { …, rows: [start, start + ${R}], heads: [h] })`, data: () => rowData });
    const sumCheck = check("row-sums");
    root.append(rowFig.el, sumCheck.el);

    root.append(h("h2", {}, "Softcapping squashes large scores"));
    const capFig = ctx.figure({ id: "softcap", title: "c · tanh(x / c) against x", data: () => capData() });
    root.append(capFig.el);

    let q: Tensor, k: Tensor, v: Tensor;
    let tileData: unknown = null;
    let rowData: unknown = null;
    let mask: Uint8Array = new Uint8Array(N * N);
    let flexOpts: FlexOptions = {};

    function makeInputs(): void {
      const g = new Generator(seed);
      q = mul(randn([H, N, E], { generator: g }), 1.5);
      k = mul(randn([H, N, E], { generator: g }), 1.5);
      v = randn([H, N, E], { generator: g });
    }

    function drawParams(): void {
      const parts: HTMLElement[] = [];
      if (opt === "window") {
        parts.push(
          slider({ label: "Left", min: 0, max: N, value: wl, onInput: (x) => { wl = x; drawAll(); }, testid: "wl" }),
          slider({ label: "Right", min: 0, max: N, value: wr, onInput: (x) => { wr = x; drawAll(); }, testid: "wr" }));
      } else if (opt === "alibi") {
        parts.push(select({ label: "Slopes", options: ALIBI, value: alibi, names: (x) => (x === "default" ? `"default" (2⁻⁴, 2⁻⁸)` : `${x} for each head`), onChange: (x) => { alibi = x; drawAll(); }, testid: "alibi" }));
      } else if (opt === "softcap") {
        parts.push(slider({ label: "Cap c", min: 0.25, max: 20, step: 0.25, value: cap, onInput: (x) => { cap = x; drawAll(); }, testid: "cap" }));
      } else if (opt === "sinks") {
        parts.push(slider({ label: "Sink logit", min: -6, max: 10, step: 0.5, value: sink, onInput: (x) => { sink = x; drawAll(); }, testid: "sink" }));
      } else if (opt === "documents") {
        parts.push(slider({ label: "Documents", min: 1, max: 12, value: docs, onInput: (x) => { docs = x; drawAll(); }, testid: "docs" }));
      } else {
        parts.push(select({ label: "maskMod", options: PATTERNS, value: pattern, names: (x) => PATTERN_NAMES[x], onChange: (x) => { pattern = x; drawAll(); }, testid: "pattern" }));
      }
      replace(paramBox, ...parts);
    }

    /** The option as the library takes it, and the bool mask [N, N] it amounts to (1 = may attend). */
    function optionAndMask(): { opts: FlexOptions; mask: Uint8Array; call: string; block?: BlockMask; ids?: number[] } {
      const all = new Uint8Array(N * N).fill(1);
      if (opt === "window") {
        return { opts: { slidingWindow: [wl, wr] }, mask: windowMask(N, N, [wl, wr]).values as Uint8Array, call: `slidingWindow: [${wl}, ${wr}]` };
      }
      if (opt === "alibi") {
        const slopes = alibi === "default" ? "default" : Array.from({ length: H }, () => Number(alibi));
        return { opts: { alibiSlopes: slopes }, mask: all, call: `alibiSlopes: ${JSON.stringify(slopes)}` };
      }
      if (opt === "softcap") return { opts: { softcap: cap }, mask: all, call: `softcap: ${cap}` };
      if (opt === "sinks") return { opts: { sinks: tensor(Array.from({ length: H }, () => sink)) }, mask: all, call: `sinks: tensor([${Array(H).fill(sink).join(", ")}])` };
      if (opt === "documents") {
        const ids = tensor(documentIds(docs, new Generator(seed + 7)), { dtype: "int32" });
        return { opts: { documents: { query: ids, key: ids } }, mask: documentMask(ids, ids).values as Uint8Array, call: `documents: { query: ids, key: ids } (${docs} documents)`, ids: arr(ids) };
      }
      const block = createBlockMask(patternMod(pattern), { batch: 1, heads: 1, L: N, S: N, blockSize: TILE });
      return { opts: { blockMask: block }, mask: block.toMask().values as Uint8Array, call: `blockMask: createBlockMask(${pattern}, { batch: 1, heads: 1, L: ${N}, S: ${N} })`, block };
    }

    function drawAll(): void {
      state.set({ opt, seed, wl, wr, alibi, cap, sink, docs, pattern, row, head });
      const made = optionAndMask();
      flexOpts = made.opts;
      mask = made.mask;
      // the tile kinds, counted here from the mask, and as the library's createBlockMask classifies them
      const block = made.block ?? createBlockMask((_b, _h, qi, ki) => mask[qi * N + ki] === 1, { batch: 1, heads: 1, L: N, S: N, blockSize: TILE });
      const kinds = new Float64Array(T * T); // 0 skipped, 1 partial, 2 full
      const highlights: Highlight[] = [];
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          let seen = 0;
          for (let a = i * TILE; a < (i + 1) * TILE; a++) for (let b = j * TILE; b < (j + 1) * TILE; b++) seen += mask[a * N + b];
          const kind = seen === 0 ? 0 : seen === TILE * TILE ? 2 : 1;
          kinds[i * T + j] = kind;
          if (kind > 0) highlights.push({ r0: i * TILE, c0: j * TILE, r1: (i + 1) * TILE, c1: (j + 1) * TILE, colour: kind === 2 ? "#1d4ed8" : "#b45309" });
        }
      }
      const mine = { empty: kinds.filter((x) => x === 0).length, partial: kinds.filter((x) => x === 1).length, full: kinds.filter((x) => x === 2).length };
      const counts = block.counts();
      const density = block.density();
      // a real call, timed (shown, not a promise): the option against the same call without it
      const tDense = performance.now();
      scaledDotProductAttentionWithLse(q, k, v, {});
      const t0 = performance.now();
      const [, lse] = scaledDotProductAttentionWithLse(q, k, v, flexOpts);
      const t1 = performance.now();
      lastLse = lse;

      const fitWidth = (w: number): number => Math.min(w, tileFig.body.clientWidth || w);
      const maskMap = new HeatMap({ rows: N, cols: N, values: mask, scale: weightScale(1), highlights }, {
        label: "effective mask (1 = may attend)", axes: ["query", "key"], fit: true, maxWidth: fitWidth(420), maxHeight: 460, showValues: false,
        legendLabels: ["0 = hidden", "1 = may attend"],
      });
      const tileNames = ["skipped", "partial (reads the mask)", "full (no mask bits)"];
      const tileMap = new HeatMap({ rows: T, cols: T, values: kinds, scale: weightScale(2) }, {
        label: "tile kinds", axes: ["query tile", "key tile"], maxCell: 26, maxWidth: fitWidth(240), showValues: false,
        legendLabels: ["0 = skipped", "2 = full"], describe: (c) => `tile (${c.r}, ${c.c}): ${tileNames[kinds[c.r * T + c.c]]}`,
      });
      replace(tileFig.body, h("div", { class: "row" },
        matrixPart("mask", [N, N], maskMap), matrixPart("tiles", [T, T], tileMap)));
      const dense = t0 - tDense;
      tileNote.dataset.density = String(density);
      tileNote.dataset.ms = String(t1 - t0);
      tileNote.textContent = `${made.call}: ${counts.partial + counts.full} of ${T * T} tiles computed (density ${fmt(density, 4)}; ${counts.full} full, ${counts.partial} partial, ${counts.empty} skipped; blue outlines full tiles, brown partial ones). `
        + `scaledDotProductAttentionWithLse on [${H}, ${N}, ${E}] took ${fmt(t1 - t0, 3)} ms here, ${fmt(dense, 3)} ms without the option (one run each, in this tab: a rough number).`;
      const agree = mine.empty === counts.empty && mine.partial === counts.partial && mine.full === counts.full;
      tileCheck.set(agree, agree
        ? `the tiles counted from the mask drawn out agree with createBlockMask(…).counts(): ${counts.full} full, ${counts.partial} partial, ${counts.empty} empty`
        : `tiles counted from the mask (${JSON.stringify(mine)}) differ from createBlockMask's counts (${JSON.stringify(counts)})`);
      tileData = { option: OPTION_NAMES[opt], call: made.call, documentIds: made.ids ?? null, N, tile: TILE, density, counts, kinds: Array.from({ length: T }, (_, i) => arr(kinds.subarray(i * T, (i + 1) * T))), ms: t1 - t0, msWithout: dense };
      drawRows();
      drawCap();
    }

    let lastLse: Tensor | null = null;

    function drawRows(): void {
      state.set({ row, head });
      const rows: [number, number] = [row, row + R];
      const w = attentionWeights(q, k, { ...flexOpts, rows, heads: [head] }); // [1, R, N]
      const sums = Array.from({ length: R }, (_, r) => { let s = 0; for (let c = 0; c < N; c++) s += w.values[r * N + c]; return s; });
      const lse = Array.from({ length: R }, (_, r) => lastLse!.values[head * N + row + r]);
      const sinkLogit = opt === "sinks" ? sink : null;
      const expected = lse.map((l) => (sinkLogit === null ? 1 : 1 - Math.exp(sinkLogit - l)));
      const hidden = new Uint8Array(R * N);
      for (let r = 0; r < R; r++) for (let c = 0; c < N; c++) hidden[r * N + c] = mask[(row + r) * N + c] ? 0 : 1;
      let peak = 0;
      for (let i = 0; i < w.size; i++) peak = Math.max(peak, w.values[i]);
      const fitWidth = (x: number): number => Math.min(x, rowFig.body.clientWidth || x);
      const map = new HeatMap({ rows: R, cols: N, values: w.values, scale: weightScale(peak || 1), masked: hidden, rowLabels: Array.from({ length: R }, (_, r) => `q${row + r}`) }, {
        label: "attention weights", axes: ["query", "key"], stretch: true, minRowHeight: 14, maxWidth: fitWidth(680), showValues: false,
        describe: (c, val, m) => `query ${row + c.r}, key ${c.c}: ${m ? "hidden, weight exactly 0" : fmt(val)}`,
      });
      const sumList = h("ul", { class: "note", "data-testid": "row-sum-list", "data-export": "text" },
        ...sums.map((s, r) => h("li", {}, `row ${row + r}: Σ = ${fmt(s, 6)}${sinkLogit === null ? "" : `, 1 − e^(sink − lse) = ${fmt(expected[r], 6)}`}`)));
      replace(rowFig.body, h("div", { class: "col", style: "width:100%" }, matrixPart("P rows", [R, N], map), sumList));
      const diff = Math.max(...sums.map((s, r) => Math.abs(s - expected[r])));
      if (sinkLogit === null) sumCheck.set(diff < 1e-4, `without a sink every row's weights sum to 1 (largest |Σ − 1| = ${fmt(diff, 2)})`);
      else sumCheck.set(diff < 1e-4 && sums.every((s) => s < 1), `with sink ${sink} each row sums to less than 1, to 1 − e^(sink − lse): the sink takes the rest (largest difference ${fmt(diff, 2)})`);
      rowData = {
        option: OPTION_NAMES[opt], seed, rows, head, sink: sinkLogit, weights: rowsOf(reshape(w, [R, N])), rowSums: sums, lse, expectedSums: expected,
        q: rowsOf(reshape(q, [H * N, E])), k: rowsOf(reshape(k, [H * N, E])), H, N, E,
      };
    }

    function capData() {
      const xs = Array.from({ length: 121 }, (_, i) => -15 + i * 0.25);
      return { cap, x: xs, capped: xs.map((x) => cap * Math.tanh(x / cap)) };
    }

    function drawCap(): void {
      const d = capData();
      replace(capFig.body, lineChart({
        width: chartWidth(capFig.body, 560), height: 280, label: "softcap curve",
        series: [
          { name: "x (no cap)", colour: "#6b7280", points: d.x.map((x) => [x, x] as const), dash: "6 4" },
          { name: `${cap} · tanh(x / ${cap})`, colour: "#b91c1c", points: d.x.map((x, i) => [x, d.capped[i]] as const) },
        ],
        x: { label: "score x", format: (x) => fmt(x, 3) },
        y: { label: "capped score", format: (x) => fmt(x, 3) },
        refs: [{ y: cap, label: `+c = ${cap}` }, { y: -cap, label: `−c` }],
      }));
    }

    drawParams();
    makeInputs();
    drawAll();
  },
};
