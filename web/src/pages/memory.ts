/**
 * Lesson 8: memory. The attention matrix has N² entries per head, so its bytes grow with the square
 * of the context; a real N × N map is drawn (up to 1024 × 1024, computed by the library in a worker,
 * ../model/memoryMap.worker.ts, so the page never waits for it). Tiled attention with an online softmax never holds that matrix: the library's FlashAttention
 * kernel (src/kernels/ref/flash.ts, through flashAttentionSteps) is stepped here tile by tile, and its
 * result is checked against the materialised computation.
 */
import { Generator, Tensor, flashAttentionSteps, matmul, mul, randn, scaledDotProductAttention, transpose } from "attend";
import type { MapReply, MapRequest } from "../model/memoryMap.worker.js";
import { arr, maxAbsDiff, rowsOf } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { binaryTicks, chartWidth, lineChart } from "../ui/chart.js";
import { signedScale, weightScale } from "../ui/colors.js";
import { button, check, controls, seedControl, select, slider } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt, fmtBytes, fmtTokens } from "../ui/format.js";
import { HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { matrixPart, op } from "../ui/parts.js";

const MAP_SIZES = [64, 128, 256, 512, 1024] as const;
const TILE_N = 10;
const TILE_D = 4;
const TILE_EV = 3;
const FLASH_TILE = 128;

export const memoryPage: Page = {
  id: "memory",
  title: "Memory",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let seed = state.num("seed", 2, { min: 0, int: true });
    let logN = state.num("logN", 13, { min: 6, max: 20, int: true });
    let heads = state.num("heads", 32, { min: 1, max: 128, int: true });
    let bytes = state.choice("bytes", 2, [4, 2] as const);
    let mapN = state.choice("map", 256, MAP_SIZES);
    let Br = state.num("br", 4, { min: 1, max: TILE_N, int: true });
    let Bc = state.num("bc", 4, { min: 1, max: TILE_N, int: true });
    let step = state.num("step", 0, { min: 0, max: TILE_N * TILE_N, int: true });

    root.append(
      h("h1", { tabindex: -1 }, "8. Memory"),
      h("p", { class: "lede" },
        "Attention compares every query with every key: N tokens make an N × N matrix per head. Double the context and that matrix takes four times the memory. ",
        "Tiled attention (FlashAttention) never builds it: it walks over tiles of keys, keeping for each query only a running maximum, a running sum and a partial output, ",
        "and rescales them whenever a larger score turns up. The result is the same numbers."),
      formula([
        String.raw`\text{bytes}(P)=B\cdot H\cdot N^2\cdot b`,
        String.raw`m'=\max(m,\max_j s_j)`,
        String.raw`\ell'=e^{m-m'}\ell+\sum_j e^{s_j-m'}`,
        String.raw`O'=e^{m-m'}O+\sum_j e^{s_j-m'}V_j`,
        String.raw`\mathrm{out}=O/\ell`,
      ]),
    );
    root.append(controls(
      slider({ label: "Context N", min: 6, max: 20, value: logN, format: (v) => (2 ** v).toLocaleString("en"), onInput: (v) => { logN = v; drawChart(); }, testid: "logN" }),
      slider({ label: "Heads", min: 1, max: 128, value: heads, onInput: (v) => { heads = v; drawChart(); } }),
      select({ label: "Bytes per number", options: [4, 2] as const, value: bytes, names: (v) => (v === 4 ? "4 (float32)" : "2 (float16)"), onChange: (v) => { bytes = v; drawChart(); } }),
    ));
    const chartFig = ctx.figure({ id: "bytes", title: "Bytes of the attention matrix against N (log scales)", data: () => chartData() });
    const bytesNote = h("p", { class: "note", "data-testid": "bytes-note", role: "status" });
    root.append(chartFig.el, bytesNote);

    root.append(h("h2", {}, "A real N × N map, in this tab"));
    root.append(controls(
      select({ label: "N", options: MAP_SIZES, value: mapN, onChange: (v) => { mapN = v; drawMap(); }, testid: "map-size" }),
      seedControl(seed, (v) => { seed = v; drawMap(); drawTiles(); }),
    ));
    const mapFig = ctx.figure({ id: "map", title: "softmax(QKᵀ/√d), one canvas pixel per weight", data: () => {
      const N = mapP?.shape[0] ?? 0; // the map on show (a newer one may be on its way)
      return { N, seed: mapSeed, weights: mapP && N <= 256 ? rowsOf(mapP) : `omitted: ${N}² numbers; export at N ≤ 256` };
    } });
    const mapNote = h("p", { class: "note", "data-testid": "map-note", role: "status" });
    root.append(mapFig.el, mapNote);
    const mapBox = h("div", { class: "grow", style: "max-width:620px" });
    mapFig.body.append(mapBox);
    const bigMap = new HeatMap({ rows: 1, cols: 1, values: [0], scale: weightScale(1) }, { label: "attention weights", axes: ["query", "key"], fit: true, maxWidth: 600, maxHeight: 600, showValues: false });
    mapBox.append(bigMap.el);

    root.append(h("h2", {}, "Tiled attention, one tile at a time"));
    const stepOut = h("output", { class: "value", "data-testid": "tile-step" });
    root.append(controls(
      slider({ label: "Query tile Br", min: 1, max: TILE_N, value: Br, onInput: (v) => { Br = v; step = 0; drawTiles(); } }),
      slider({ label: "Key tile Bc", min: 1, max: TILE_N, value: Bc, onInput: (v) => { Bc = v; step = 0; drawTiles(); } }),
      button("Step", () => { step++; drawTiles(); }, { "data-testid": "tile-next" }),
      button("Run to the end", () => { step = TILE_N * TILE_N; drawTiles(); }, { "data-testid": "tile-run" }),
      button("Reset", () => { step = 0; drawTiles(); }, { class: "secondary" }),
      stepOut,
    ));
    const tileFig = ctx.figure({ id: "tiles", title: "Online softmax over key tiles", data: () => tileData });
    const tileCheck = check("tiled-equals-materialised");
    root.append(tileFig.el, tileCheck.el);

    /** the map on show and its seed */
    let mapP: Tensor | null = null;
    let mapSeed = seed;
    let tileData: unknown = null;
    const materialised = (N: number): number => heads * N * N * bytes;
    const tiledWorkingSet = (N: number): number => heads * (2 * N + FLASH_TILE * FLASH_TILE) * bytes;
    function chartData() {
      const ns = Array.from({ length: 15 }, (_, i) => 2 ** (i + 6));
      return { heads, bytesPerNumber: bytes, batch: 1, N: ns, materialised: ns.map(materialised), tiled: ns.map(tiledWorkingSet), tile: FLASH_TILE };
    }

    function drawChart(): void {
      state.set({ logN, heads, bytes });
      const d = chartData();
      const N = 2 ** logN;
      replace(chartFig.body, lineChart({
        width: chartWidth(chartFig.body, 680), height: 320, label: "attention matrix bytes against N",
        series: [
          { name: "materialised N × N", colour: "#b91c1c", points: d.N.map((n, i) => [n, d.materialised[i]] as const) },
          { name: `tiled: one ${FLASH_TILE}² tile + 2N row stats`, colour: "#1d4ed8", points: d.N.map((n, i) => [n, d.tiled[i]] as const), dash: "6 4" },
        ],
        x: { label: "context length N", log: true, format: fmtTokens },
        y: { label: "bytes (batch 1)", log: true, format: fmtBytes, ticks: binaryTicks },
        refs: [{ y: 80e9, label: "80 GB (one H100)" }],
        marker: { x: N, label: `N = ${N.toLocaleString("en")}` },
      }));
      bytesNote.dataset.value = String(materialised(N));
      bytesNote.textContent = `N = ${N.toLocaleString("en")}: the attention matrix takes ${heads} × ${N.toLocaleString("en")}² × ${bytes} B = ${fmtBytes(materialised(N))} per layer; the tiled computation needs ${fmtBytes(tiledWorkingSet(N))} beyond Q, K, V and the output.`;
    }

    const mapWorker = new Worker(new URL("../model/memoryMap.worker.ts", import.meta.url), { type: "module", name: "attend-memory-map" });
    /** counts map requests: only the latest one's reply is drawn */
    let mapRequests = 0;
    mapWorker.onmessage = (e: MessageEvent<MapReply>) => {
      const r = e.data;
      if (r.id !== mapRequests) return;
      if (!r.ok) {
        mapNote.textContent = `Could not compute the map: ${r.error}`;
        return;
      }
      const { N, weights } = r;
      mapP = new Tensor(weights, [N, N]);
      mapSeed = r.seed;
      const t1 = performance.now();
      const peak = r.peak; // the mean of the rows' largest weights: the band is visible at every N
      bigMap.update({ rows: N, cols: N, values: weights, scale: weightScale(peak), image: r.image }); // painted in the worker
      const t2 = performance.now();
      mapNote.dataset.drawMs = String(t2 - t1);
      mapNote.dataset.n = String(N);
      mapNote.textContent = `${N} × ${N} = ${(N * N).toLocaleString("en")} weights (${fmtBytes(N * N * 4)} in float32): computed in ${fmt(r.computeMs, 3)} ms (in a worker), drawn in ${fmt(t2 - t1, 3)} ms. The colour scale tops out at ${fmt(peak, 2)}, the mean of the rows' largest weights. Hover or use the arrow keys to read a weight.`;
    };
    mapWorker.onerror = (e) => {
      e.preventDefault();
      mapNote.textContent = `The map's worker stopped: ${e.message || "it could not start"}`;
    };
    ctx.onDispose(() => mapWorker.terminate());

    /** Ask the worker for the map of the chosen size and seed; its reply draws it. */
    function drawMap(): void {
      state.set({ map: mapN, seed });
      const request: MapRequest = { id: ++mapRequests, N: mapN, seed };
      mapWorker.postMessage(request);
    }

    function drawTiles(): void {
      const g = new Generator(seed + 1000);
      const Q = randn([TILE_N, TILE_D], { generator: g, dtype: "float64" });
      const K = randn([TILE_N, TILE_D], { generator: g, dtype: "float64" });
      const V = randn([TILE_N, TILE_EV], { generator: g, dtype: "float64" });
      // the library's FlashAttention forward, stopped after `step` tiles: query tiles outer, key tiles inner
      const st = flashAttentionSteps(Q, K, V, { Br, Bc, steps: step });
      const total = st.totalSteps;
      step = st.steps.length;
      state.set({ br: Br, bc: Bc, step });
      const scores = mul(matmul(Q, transpose(K)), 1 / Math.sqrt(TILE_D));
      const reference = scaledDotProductAttention(Q, K, V, { implementation: "math" }); // materialised: softmax(QKᵀ/√d) V
      const out = st.out;
      const unseen = new Uint8Array(TILE_N * TILE_N).fill(1);
      for (const t of st.steps) for (let r = t.r0; r < t.r1; r++) for (let c = t.c0; c < t.c1; c++) unseen[r * TILE_N + c] = 0;
      const notStarted = Uint8Array.from(st.l, (v) => (v === 0 ? 1 : 0));
      const notStartedOut = Uint8Array.from({ length: TILE_N * TILE_EV }, (_, i) => notStarted[Math.floor(i / TILE_EV)]);
      const last = st.steps.at(-1);
      const cur = last ? [{ ...last, colour: "#d97706" }] : [];
      const labels = (p: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${p}${i}`);
      const o = { maxCell: 30, showValues: false };
      const sMap = new HeatMap({ rows: TILE_N, cols: TILE_N, values: scores.values, scale: signedScale(scores.values), masked: unseen, highlights: cur, rowLabels: labels("q", TILE_N), colLabels: labels("k", TILE_N) }, { label: "scores seen so far", axes: ["query", "key"], ...o, maxWidth: 330 });
      const mMap = new HeatMap({ rows: TILE_N, cols: 1, values: st.m.map((v) => (Number.isFinite(v) ? v : 0)), scale: signedScale(scores.values), masked: notStarted }, { label: "running max m", axes: ["query", ""], ...o, maxWidth: 30, legend: false, describe: (c) => `row ${c.r}: m = ${fmt(st.m[c.r])}` });
      const lMap = new HeatMap({ rows: TILE_N, cols: 1, values: st.l, scale: weightScale(Math.max(1, ...st.l)), masked: notStarted }, { label: "running sum ℓ", axes: ["query", ""], ...o, maxWidth: 30, legend: false, describe: (c) => `row ${c.r}: ℓ = ${fmt(st.l[c.r])}` });
      const oMap = new HeatMap({ rows: TILE_N, cols: TILE_EV, values: out.values, scale: signedScale(reference.values), masked: notStartedOut }, { label: "O / ℓ so far", axes: ["query", "dim"], ...o, maxWidth: 90 });
      const refMap = new HeatMap({ rows: TILE_N, cols: TILE_EV, values: reference.values, scale: signedScale(reference.values) }, { label: "materialised softmax(QKᵀ/√d)V", axes: ["query", "dim"], ...o, maxWidth: 90 });
      replace(tileFig.body, h("div", { class: "row" },
        matrixPart("S tiles", [TILE_N, TILE_N], sMap), matrixPart("m", [TILE_N], mMap), matrixPart("ℓ", [TILE_N], lMap),
        matrixPart("O / ℓ", [TILE_N, TILE_EV], oMap), op("vs"), matrixPart("reference", [TILE_N, TILE_EV], refMap)));
      stepOut.textContent = `step ${step} of ${total}`;
      const diff = maxAbsDiff(out, reference);
      tileData = { Br, Bc, step, totalSteps: total, m: arr(st.m).map((v) => (Number.isFinite(v) ? v : null)), l: arr(st.l), output: rowsOf(out), reference: rowsOf(reference), maxAbsDiff: diff };
      if (step === total) tileCheck.set(diff < 1e-12, `after all ${total} tiles, O / ℓ equals the materialised result (largest difference ${fmt(diff, 2)}), without ever holding the ${TILE_N} × ${TILE_N} weights`);
      else tileCheck.set(null, `${step} of ${total} tiles done; run to the end to compare with the materialised result`);
    }

    drawChart();
    drawMap();
    drawTiles();
  },
};
