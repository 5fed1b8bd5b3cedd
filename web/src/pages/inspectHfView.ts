/**
 * Lesson 9's pictures for a Hugging Face model: the model view (every layer × head as a thumbnail),
 * the enlarged map, the per-head score table and the description of what was loaded. Pure drawing:
 * the numbers come from the worker (../model/hf.worker.ts).
 */
import type { HeadScores } from "attend";
import type { HfInfo, HfProbe } from "../model/hfProtocol.js";
import type { TextHeadScores } from "../model/hfScores.js";
import { textOn, weightScale } from "../ui/colors.js";
import { type Child, h } from "../ui/dom.js";
import { fmt, fmtBytes } from "../ui/format.js";
import { HeatMap } from "../ui/heatmap.js";
import { headColour, tokenLabel } from "../ui/headView.js";

/** One head's weights [T, T] of a layer's [H, T, T]. */
export function headWeights(p: HfProbe, layer: number, head: number): Float32Array {
  const T = p.ids.length;
  return p.layers[layer].subarray(head * T * T, (head + 1) * T * T);
}

/** maps[layer][head][query][key] as plain numbers (for JSON export). */
export function hfMapsAsArrays(p: HfProbe): number[][][][] {
  const T = p.ids.length;
  return p.layers.map((_, l) => Array.from({ length: p.numHeads }, (_, hh) => {
    const w = headWeights(p, l, hh);
    return Array.from({ length: T }, (_, q) => Array.from(w.subarray(q * T, (q + 1) * T)));
  }));
}

/** The model view: a grid of every layer (rows) × head (columns), sized to `width`; click or Enter enlarges one. */
export function modelView(p: HfProbe, width: number, selected: [number, number], pick: (layer: number, head: number) => void): HTMLElement {
  const L = p.layers.length, H = p.numHeads, T = p.ids.length;
  const gap = 4, rowHead = 28;
  const thumb = Math.max(18, Math.min(96, Math.floor((width - rowHead - gap * H) / H)));
  const grid = h("div", { class: "hf-grid", "data-testid": "hf-model-grid", style: `grid-template-columns:${rowHead}px repeat(${H}, ${thumb}px);gap:${gap}px` });
  grid.append(h("span", {}));
  for (let hh = 0; hh < H; hh++) grid.append(h("span", { class: "part-title hf-head-label", "data-export": "text", style: `border-bottom:3px solid ${headColour(hh, H)}` }, `h${hh}`));
  for (let l = 0; l < L; l++) {
    grid.append(h("span", { class: "part-title hf-layer-label", "data-export": "text" }, `L${l}`));
    for (let hh = 0; hh < H; hh++) {
      const isSelected = l === selected[0] && hh === selected[1];
      const map = new HeatMap({
        rows: T, cols: T, values: headWeights(p, l, hh), scale: weightScale(1), image: p.images[l][hh], // painted in the worker
        highlights: isSelected ? [{ r0: 0, r1: T, c0: 0, c1: T, colour: "#d97706" }] : [],
      }, { label: `layer ${l} head ${hh}`, axes: ["query", "key"], maxCell: 40, maxWidth: thumb, maxHeight: thumb, showValues: false, legend: false });
      map.el.dataset.testid = `hf-thumb-${l}-${hh}`;
      map.el.dataset.layer = String(l);
      map.el.dataset.head = String(hh);
      if (isSelected) map.el.dataset.selected = "true";
      map.el.addEventListener("click", () => pick(l, hh));
      map.el.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(l, hh); });
      grid.append(map.el);
    }
  }
  return grid;
}

/** The selected map, large, with the tokens along its sides. */
export function enlargedMap(p: HfProbe, layer: number, head: number, width: number): Child[] {
  const labels = p.tokens.map(tokenLabel);
  const T = p.ids.length;
  const map = new HeatMap({ rows: T, cols: T, values: headWeights(p, layer, head), scale: weightScale(1), image: p.images[layer][head], rowLabels: labels, colLabels: labels },
    { label: `${p.names[layer]} head ${head}`, axes: ["query", "key"], maxCell: 34, maxWidth: Math.min(520, width) });
  map.el.dataset.testid = "hf-enlarged";
  return [h("p", { class: "part-title", "data-export": "text" }, `layer ${layer} (${p.names[layer]}), head ${head}`), map.el];
}

const SCORES = [
  { key: "previousToken", name: "prev. token", hint: "mean weight on the token before" },
  { key: "entropy", name: "entropy", hint: "mean −Σ w ln w of a row: 0 = one key" },
  { key: "firstToken", name: "first token", hint: "mean weight on position 0 (a sink)" },
] as const;

/**
 * The per-head scores: one row per layer and head, each score coloured by its value; the text's
 * scores, and the induction score from the library's headScores (null while it is computed).
 */
export function scoreTable(s: TextHeadScores, T: number, library: HeadScores | null): Child[] {
  const maxEntropy = Math.log(Math.max(2, T));
  const cell = (v: number | null, max: number, testid: string): HTMLElement => {
    if (v === null) return h("td", { "data-testid": testid, "data-export": "box" }, "–");
    const bg = weightScale(max)(v);
    return h("td", { "data-testid": testid, "data-value": v, "data-export": "box", style: `background:${bg};color:${textOn(bg)}` }, fmt(v, 3));
  };
  const rows: HTMLElement[] = [];
  for (let l = 0; l < s.numLayers; l++) {
    for (let hh = 0; hh < s.numHeads; hh++) {
      rows.push(h("tr", { "data-layer": l, "data-head": hh },
        h("th", { scope: "row", "data-export": "box" }, h("span", { class: "hf-swatch", style: `background:${headColour(hh, s.numHeads)}` }), `${l}.${hh}`),
        ...SCORES.map((c) => cell(s[c.key][l][hh], c.key === "entropy" ? maxEntropy : 1, `hf-score-${c.key}-${l}-${hh}`)),
        library ? cell(library.induction[l][hh], 1, `hf-score-induction-${l}-${hh}`) : h("td", { class: "note", "data-export": "box" }, "…")));
    }
  }
  return [
    h("div", { class: "hf-table-scroll" },
      h("table", { class: "numbers", "data-testid": "hf-scores" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col", title: "layer.head", "data-export": "box" }, "head"),
          ...SCORES.map((c) => h("th", { scope: "col", title: c.hint, "data-export": "box" }, c.name)), h("th", { scope: "col", title: "on a repeated random sequence (the library's headScores)", "data-export": "box" }, "induction*"))),
        h("tbody", {}, ...rows))),
    h("p", { class: "note" }, T < 2
      ? "One token: no row to average over (row 0 can only see itself)."
      : `Over the ${T - 1} rows after the first of the typed text (row 0 can only see itself). Previous token and first token are mean weights (0 to 1); entropy, in nats, is at most ln ${T} ≈ ${fmt(maxEntropy, 3)} (a uniform row). Rows are layer.head. *Induction needs a repeated sequence, so it is the library's headScores on ${library ? `${library.tokens.length} random sequences of ${library.tokens[0].length} tokens, each read twice` : "random sequences read twice (computing…)"}: the mean weight from a token of the second copy on the token after its first occurrence.`),
  ];
}

const row = (name: string, ...value: Child[]): HTMLElement => h("tr", {}, h("th", { scope: "row", style: "text-align:left" }, name), h("td", { style: "text-align:left" }, ...value));

/** What was loaded: the architecture, its size, the files read and the tokenizer. */
export function hfInfo(i: HfInfo, ignored: string[]): Child[] {
  const weightBytes = i.weightFiles.reduce((n, f) => n + f.bytes, 0);
  const gqa = i.numKvHeads !== i.numHeads ? `, ${i.numKvHeads} key/value heads (grouped-query)` : "";
  return [
    h("table", { class: "numbers", "data-testid": "hf-summary" }, h("tbody", {},
      row("model", `${i.modelType}${i.architectures.length ? ` (${i.architectures.join(", ")})` : ""}`),
      row("shape", `${i.numLayers} layers, ${i.numHeads} heads of ${i.headDim}${gqa}, width ${i.dModel}, vocabulary ${i.vocabSize.toLocaleString("en")}, ${i.maxSeqLen.toLocaleString("en")} positions`),
      row("size", h("span", { "data-testid": "hf-size", "data-parameters": i.parameters },
        `${i.parameters.toLocaleString("en")} parameters: ${fmtBytes(4 * i.parameters)} as float32 in this tab`)),
      row("weights", `${i.weightFiles.map((f) => `${f.name} (${fmtBytes(f.bytes)})`).join(", ")}; config.json says ${i.torchDtype ?? "no dtype"}, computed in float32 (${fmtBytes(weightBytes)} read)${i.tieWordEmbeddings ? "; the output head is the token embedding (tied)" : ""}`),
      row("tokenizer", i.tokenizer ? `tokenizer.json (${i.tokenizer})` : h("span", { "data-testid": "hf-no-tokenizer" }, "none: the folder has no tokenizer.json, so type token ids (numbers separated by spaces)")),
      row("files", i.files.join(", "), ignored.length ? h("span", { class: "note" }, ` (not read: ${ignored.slice(0, 6).join(", ")}${ignored.length > 6 ? ", …" : ""})`) : null))),
  ];
}
