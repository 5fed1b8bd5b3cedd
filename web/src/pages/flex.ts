/**
 * Lesson 10: flexible attention. The options of scaledDotProductAttention that change which keys a
 * query sees or how it weighs them (slidingWindow, alibiSlopes, softcap, sinks, documents, blockMask):
 * each option's effective mask over the kernel's 64 × 64 tiles (skipped, partial, full, as
 * createBlockMask classifies them), the density and the time of a real call, the weights of chosen
 * rows from the fused path (attentionWeights with rows and heads), what a sink does to a row's sum
 * (1 − e^(sink − lse)), and softcap's curve. The library computes all of it in a worker
 * (../model/flexMaps.worker.ts, over ../model/flexMaps.ts), which also paints the 512 × 512 mask's
 * pixels: this page only draws, so it never freezes.
 */
import { Tensor, reshape } from "attend";
import {
  ALIBI, type Alibi, type FlexReply, type FlexRequest, type FlexSettings, E, H, N, OPTIONS, type Option, PATTERNS, type Pattern, R, T, TILE, maskScale,
} from "../model/flexProtocol.js";
import { rowsOf } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { chartWidthIn, lineChart } from "../ui/chart.js";
import { weightScale } from "../ui/colors.js";
import { check, controls, seedControl, select, slider } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { type Highlight, HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { matrixPart } from "../ui/parts.js";

const OPTION_NAMES: Record<Option, string> = {
  window: "slidingWindow", alibi: "alibiSlopes", softcap: "softcap", sinks: "sinks", documents: "documents", blockmask: "blockMask",
};
const PATTERN_NAMES: Record<Pattern, string> = {
  causal: "causal: k ≤ q", prefix: "prefix LM: k < 128 or k ≤ q", strided: "strided: |q − k| < 64 or k mod 128 = 0",
};
/** the figures' bodies' widths (CSS px), read once per reply */
interface Widths {
  tiles: number;
  rows: number;
  cap: number;
}
/** a reply the page has drawn */
type Drawn = Extract<FlexReply, { ok: true }>;

export const flexPage: Page = {
  id: "flex",
  title: "Flexible attention",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    const s: FlexSettings = {
      opt: state.choice<Option>("opt", "window", OPTIONS),
      seed: state.num("seed", 3, { min: 0, int: true }),
      wl: state.num("wl", 127, { min: 0, max: N, int: true }),
      wr: state.num("wr", 0, { min: 0, max: N, int: true }),
      alibi: state.choice<Alibi>("alibi", "default", ALIBI),
      cap: state.num("cap", 2, { min: 0.25, max: 20 }),
      sink: state.num("sink", 2, { min: -6, max: 10 }),
      docs: state.num("docs", 4, { min: 1, max: 12, int: true }),
      pattern: state.choice<Pattern>("pattern", "causal", PATTERNS),
      row: state.num("row", 200, { min: 0, max: N - R, int: true }),
      head: state.num("head", 0, { min: 0, max: H - 1, int: true }),
    };
    /** Change settings, write them to the URL and ask the worker for the numbers. */
    const set = (patch: Partial<FlexSettings>): void => {
      Object.assign(s, patch);
      request();
    };

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
      select({ label: "Option", options: OPTIONS, value: s.opt, names: (v) => OPTION_NAMES[v], onChange: (v) => { s.opt = v; drawParams(); request(); }, testid: "option" }),
      seedControl(s.seed, (v) => set({ seed: v })),
    ), paramBox);

    const tileFig = ctx.figure({ id: "tiles", title: `The effective mask over ${TILE} × ${TILE} tiles (N = ${N})`, data: () => tileData() });
    /** data-state: "pending" while a request is out, "ready" once its reply is drawn, "error" */
    const tileNote = h("p", { class: "note", "data-testid": "tile-note", role: "status" }, "Computing in a worker…");
    const tileCheck = check("tiles-agree");
    root.append(tileFig.el, tileNote, tileCheck.el);

    root.append(h("h2", {}, "The weights of chosen rows, from the fused path"));
    root.append(controls(
      slider({ label: "First row", min: 0, max: N - R, value: s.row, onInput: (v) => set({ row: v }), testid: "row" }),
      select({ label: "Head", options: Array.from({ length: H }, (_, i) => i), value: s.head, onChange: (v) => set({ head: v }), testid: "head" }),
    ));
    const rowFig = ctx.figure({ id: "rows", title: `attentionWeights(q, k, { …, rows: [start, start + ${R}], heads: [h] })`, data: () => rowData() });
    const sumCheck = check("row-sums");
    root.append(rowFig.el, sumCheck.el);

    root.append(h("h2", {}, "Softcapping squashes large scores"));
    const capFig = ctx.figure({ id: "softcap", title: "c · tanh(x / c) against x", data: () => capData(shown?.settings.cap ?? s.cap) });
    root.append(capFig.el);

    /** the reply on show (a newer one may be on its way) */
    let shown: Drawn | null = null;
    /** the heat maps, made at the first reply and redrawn in place after it (main.ts disposes of them when the page is left) */
    let maskMap: HeatMap | null = null;
    let kindsMap: HeatMap | null = null;
    let rowMap: HeatMap | null = null;
    const sumList = h("ul", { class: "note", "data-testid": "row-sum-list", "data-export": "text" });

    function drawParams(): void {
      const parts: HTMLElement[] = [];
      if (s.opt === "window") {
        parts.push(
          slider({ label: "Left", min: 0, max: N, value: s.wl, onInput: (x) => set({ wl: x }), testid: "wl" }),
          slider({ label: "Right", min: 0, max: N, value: s.wr, onInput: (x) => set({ wr: x }), testid: "wr" }));
      } else if (s.opt === "alibi") {
        parts.push(select({ label: "Slopes", options: ALIBI, value: s.alibi, names: (x) => (x === "default" ? `"default" (2⁻⁴, 2⁻⁸)` : `${x} for each head`), onChange: (x) => set({ alibi: x }), testid: "alibi" }));
      } else if (s.opt === "softcap") {
        parts.push(slider({ label: "Cap c", min: 0.25, max: 20, step: 0.25, value: s.cap, onInput: (x) => set({ cap: x }), testid: "cap" }));
      } else if (s.opt === "sinks") {
        parts.push(slider({ label: "Sink logit", min: -6, max: 10, step: 0.5, value: s.sink, onInput: (x) => set({ sink: x }), testid: "sink" }));
      } else if (s.opt === "documents") {
        parts.push(slider({ label: "Documents", min: 1, max: 12, value: s.docs, onInput: (x) => set({ docs: x }), testid: "docs" }));
      } else {
        parts.push(select({ label: "maskMod", options: PATTERNS, value: s.pattern, names: (x) => PATTERN_NAMES[x], onChange: (x) => set({ pattern: x }), testid: "pattern" }));
      }
      replace(paramBox, ...parts);
    }

    const worker = new Worker(new URL("../model/flexMaps.worker.ts", import.meta.url), { type: "module", name: "attend-flex" });
    /** counts requests: only the latest one's reply is drawn */
    let requests = 0;
    worker.onmessage = (e: MessageEvent<FlexReply>) => {
      const r = e.data;
      if (r.id !== requests) return;
      if (!r.ok) {
        tileNote.dataset.state = "error";
        tileNote.textContent = `Could not compute the lesson's numbers: ${r.error}`;
        return;
      }
      // every width the drawing needs, read before it changes the page (a read after a change lays the page out again)
      const widths: Widths = { tiles: tileFig.body.clientWidth, rows: rowFig.body.clientWidth, cap: capFig.body.clientWidth };
      if (shown?.tiles.key !== r.tiles.key) drawTiles(r, widths);
      if (shown?.settings.cap !== r.settings.cap) drawCap(r.settings.cap, widths); // only for a new cap: the chart is rebuilt from scratch
      drawRows(r, widths);
      shown = r;
      tileNote.dataset.state = "ready";
    };
    worker.onerror = (e) => {
      e.preventDefault();
      tileNote.dataset.state = "error";
      tileNote.textContent = `The lesson's worker stopped: ${e.message || "it could not start"}`;
    };
    ctx.onDispose(() => worker.terminate());

    /** Ask the worker for the numbers of the current settings; its reply draws them. */
    function request(): void {
      state.set({ ...s });
      tileNote.dataset.state = "pending";
      const message: FlexRequest = { id: ++requests, ...s };
      worker.postMessage(message);
    }

    function drawTiles(r: Drawn, widths: Widths): void {
      const t = r.tiles;
      const highlights: Highlight[] = [];
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          const kind = t.kinds[i * T + j];
          if (kind > 0) highlights.push({ r0: i * TILE, c0: j * TILE, r1: (i + 1) * TILE, c1: (j + 1) * TILE, colour: kind === 2 ? "#1d4ed8" : "#b45309" });
        }
      }
      // painted in the worker (a quarter of a million cells): here only copied onto the canvas
      const maskData = { rows: N, cols: N, values: t.mask, scale: maskScale(), image: t.maskImage, highlights };
      const kindsData = { rows: T, cols: T, values: t.kinds, scale: weightScale(2) };
      if (maskMap && kindsMap) {
        maskMap.update(maskData);
        kindsMap.update(kindsData);
      } else {
        const fitWidth = (w: number): number => Math.min(w, widths.tiles || w);
        maskMap = new HeatMap(maskData, {
          label: "effective mask (1 = may attend)", axes: ["query", "key"], fit: true, maxWidth: fitWidth(420), maxHeight: 460, showValues: false,
          legendLabels: ["0 = hidden", "1 = may attend"],
        });
        const tileNames = ["skipped", "partial (reads the mask)", "full (no mask bits)"];
        kindsMap = new HeatMap(kindsData, {
          label: "tile kinds", axes: ["query tile", "key tile"], maxCell: 26, maxWidth: fitWidth(240), showValues: false,
          legendLabels: ["0 = skipped", "2 = full"], describe: (c, kind) => `tile (${c.r}, ${c.c}): ${tileNames[kind]}`,
        });
        replace(tileFig.body, h("div", { class: "row" },
          matrixPart("mask", [N, N], maskMap), matrixPart("tiles", [T, T], kindsMap)));
      }
      const { counts, mine } = t;
      tileNote.dataset.density = String(t.density);
      tileNote.dataset.ms = String(t.ms);
      tileNote.textContent = `${t.call}: ${counts.partial + counts.full} of ${T * T} tiles computed (density ${fmt(t.density, 4)}; ${counts.full} full, ${counts.partial} partial, ${counts.empty} skipped; blue outlines full tiles, brown partial ones). `
        + `scaledDotProductAttentionWithLse on [${H}, ${N}, ${E}] took ${fmt(t.ms, 3)} ms in this tab's worker, ${fmt(t.msWithout, 3)} ms without the option (one run each: a rough number).`;
      const agree = mine.empty === counts.empty && mine.partial === counts.partial && mine.full === counts.full;
      tileCheck.set(agree, agree
        ? `the tiles counted from the mask drawn out agree with createBlockMask(…).counts(): ${counts.full} full, ${counts.partial} partial, ${counts.empty} empty`
        : `tiles counted from the mask (${JSON.stringify(mine)}) differ from createBlockMask's counts (${JSON.stringify(counts)})`);
    }

    function tileData(): unknown {
      if (!shown) return null;
      const { tiles: t, settings } = shown;
      return {
        option: OPTION_NAMES[settings.opt], call: t.call, documentIds: t.documentIds, N, tile: TILE, density: t.density, counts: t.counts,
        kinds: Array.from({ length: T }, (_, i) => t.kinds.slice(i * T, (i + 1) * T)), ms: t.ms, msWithout: t.msWithout,
      };
    }

    function drawRows(r: Drawn, widths: Widths): void {
      const { settings: { row, head, sink }, rows: { weights, sums, expected }, tiles: { mask } } = r;
      const sinkLogit = r.settings.opt === "sinks" ? sink : null;
      const hidden = new Uint8Array(R * N);
      for (let i = 0; i < R; i++) for (let c = 0; c < N; c++) hidden[i * N + c] = mask[(row + i) * N + c] ? 0 : 1;
      let peak = 0;
      for (let i = 0; i < weights.length; i++) peak = Math.max(peak, weights[i]);
      const rowsData = { rows: R, cols: N, values: weights, scale: weightScale(peak || 1), masked: hidden, rowLabels: Array.from({ length: R }, (_, i) => `q${row + i}`) };
      if (rowMap) rowMap.update(rowsData);
      else {
        const fitWidth = (x: number): number => Math.min(x, widths.rows || x);
        rowMap = new HeatMap(rowsData, {
          label: "attention weights", axes: ["query", "key"], stretch: true, minRowHeight: 14, maxWidth: fitWidth(680), showValues: false,
          describe: (c, val, m) => `query ${shown ? shown.settings.row + c.r : c.r}, key ${c.c}: ${m ? "hidden, weight exactly 0" : fmt(val)}`,
        });
        replace(rowFig.body, h("div", { class: "col", style: "width:100%" }, matrixPart("P rows", [R, N], rowMap), sumList));
      }
      replace(sumList, ...sums.map((t, i) => h("li", {}, `row ${row + i}: Σ = ${fmt(t, 6)}${sinkLogit === null ? "" : `, 1 − e^(sink − lse) = ${fmt(expected[i], 6)}`}`)));
      const diff = Math.max(...sums.map((t, i) => Math.abs(t - expected[i])));
      if (sinkLogit === null) sumCheck.set(diff < 1e-4, `without a sink every row's weights sum to 1 (largest |Σ − 1| = ${fmt(diff, 2)})`);
      else sumCheck.set(diff < 1e-4 && sums.every((t) => t < 1), `with sink ${sinkLogit} each row sums to less than 1, to 1 − e^(sink − lse): the sink takes the rest (largest difference ${fmt(diff, 2)})`);
    }

    function rowData(): unknown {
      if (!shown) return null;
      const { settings, rows, q, k } = shown;
      return {
        option: OPTION_NAMES[settings.opt], seed: settings.seed, rows: [settings.row, settings.row + R], head: settings.head, sink: settings.opt === "sinks" ? settings.sink : null,
        weights: rowsOf(new Tensor(rows.weights, [R, N])), rowSums: rows.sums, lse: rows.lse, expectedSums: rows.expected,
        q: rowsOf(reshape(new Tensor(q, [H, N, E]), [H * N, E])), k: rowsOf(reshape(new Tensor(k, [H, N, E]), [H * N, E])), H, N, E, // [H, N, E] -> [H·N, E]
      };
    }

    function capData(cap: number) {
      const xs = Array.from({ length: 121 }, (_, i) => -15 + i * 0.25);
      return { cap, x: xs, capped: xs.map((x) => cap * Math.tanh(x / cap)) };
    }

    function drawCap(cap: number, widths: Widths): void {
      const d = capData(cap);
      replace(capFig.body, lineChart({
        width: chartWidthIn(widths.cap, 560), height: 280, label: "softcap curve",
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
    request();
  },
};
