/**
 * Lesson 9's pictures and tables: the grid of attention maps (one row per attention module, one
 * panel per head), the enlarged map with its lines between tokens, and the description of the run
 * or checkpoint on show. Pure drawing: the numbers come from model/probe.ts and model/run.ts.
 */
import type { AttentionView, Evaluation, Tensor } from "attend";
import type { Probe } from "../model/probe.js";
import { type ModelSizes, type PageRunConfig, modelSizes } from "../model/run.js";
import type { TensorInfo } from "../model/checkpoint.js";
import { rowsOf } from "../lib.js";
import { HEAD_COLOURS, weightScale } from "../ui/colors.js";
import { type Child, h } from "../ui/dom.js";
import { HeatMap } from "../ui/heatmap.js";
import { tokenLines } from "../ui/tokenLines.js";

/** One head of a view's weights [H, R, C] as a [R, C] tensor. */
function headOf(w: Tensor, head: number): Tensor {
  const [, R, C] = w.shape;
  return w.slice(0, head, head + 1).reshape([R, C]); // [1, R, C] -> [R, C]
}

/** The weights of every module and head as plain numbers: maps[module][head][row][col]. */
export function mapsAsArrays(p: Probe): number[][][][] {
  return p.views.map((v) => Array.from({ length: v.weights.shape[0] }, (_, hh) => rowsOf(headOf(v.weights, hh))));
}

const axisLabels = (p: Probe, v: AttentionView): { rows: string[]; cols: string[] } => ({ rows: p.labels[v.rows], cols: p.labels[v.cols] });

/** "2 heads · 3 tokens × 5 source tokens", for the row headings */
function shapeNote(v: AttentionView): string {
  const [H, R, C] = v.weights.shape;
  const side = (s: "tokens" | "source"): string => (s === "source" ? "source tokens" : "tokens");
  return `${H} head${H === 1 ? "" : "s"} · ${R} ${side(v.rows)} × ${C} ${side(v.cols)}`;
}

interface GridMap { map: HeatMap; note: HTMLElement }

/**
 * The grid of small maps (one row per attention module, one panel per head; the selected one is
 * outlined; click or Enter picks one) and the selected map, large, and as lines from queries to keys.
 *
 * While a model trains, the page shows new maps every second or so: show() redraws the maps it
 * already has in place (the same canvases, new numbers, labels and sizes) and builds new ones only
 * when the model's modules or heads differ, so a redraw makes no new elements for the layout, the
 * compositor and the garbage collector to deal with.
 */
export class MapsView {
  /** the grid on show, for modules and heads named by `key` */
  private grid: { key: string; rows: GridMap[][] } | null = null;
  /** the enlarged map on show, for the module and head named by `key` */
  private big: { key: string; map: HeatMap; title: HTMLElement; lines: Element } | null = null;

  constructor(private readonly gridBody: HTMLElement, private readonly focusBody: HTMLElement, private readonly pick: (layer: number, head: number) => void) {}

  show(p: Probe, layer: number, head: number): void {
    const gridKey = p.views.map((v) => `${v.name}/${v.weights.shape[0]}`).join(",");
    if (this.grid?.key !== gridKey || !this.gridBody.contains(this.grid.rows[0]?.[0]?.map.el ?? null)) this.buildGrid(p, gridKey);
    p.views.forEach((v, l) => {
      const { rows, cols } = axisLabels(p, v);
      const [H, R, C] = v.weights.shape;
      for (let hh = 0; hh < H; hh++) {
        const highlights = l === layer && hh === head ? [{ r0: 0, r1: R, c0: 0, c1: C, colour: "#d97706" }] : [];
        this.grid!.rows[l][hh].map.update({ rows: R, cols: C, values: headOf(v.weights, hh).values, rowLabels: rows, colLabels: cols, highlights });
      }
      this.grid!.rows[l][0].note.textContent = shapeNote(v);
    });
    this.showFocus(p, layer, head);
  }

  /** Nothing to show: `message` in the grid's place. */
  clear(message: string): void {
    this.dispose();
    this.gridBody.replaceChildren(h("p", { class: "note" }, message));
    this.focusBody.replaceChildren();
  }

  dispose(): void {
    for (const row of this.grid?.rows ?? []) for (const { map } of row) map.dispose();
    this.big?.map.dispose();
    this.grid = null;
    this.big = null;
  }

  private buildGrid(p: Probe, key: string): void {
    for (const row of this.grid?.rows ?? []) for (const { map } of row) map.dispose();
    const rows: GridMap[][] = [];
    const els = p.views.map((v, l) => {
      const note = h("span", { class: "note", "data-export": "text" }, shapeNote(v));
      const [H, R, C] = v.weights.shape;
      const maps = Array.from({ length: H }, (_, hh) => {
        const { rows: rl, cols: cl } = axisLabels(p, v);
        const map = new HeatMap({ rows: R, cols: C, values: headOf(v.weights, hh).values, scale: weightScale(1), rowLabels: rl, colLabels: cl },
          { label: `${v.name} head ${hh}`, axes: ["query", "key"], maxCell: 20, maxWidth: 300, showValues: false });
        map.el.dataset.testid = `map-${l}-${hh}`;
        map.el.addEventListener("click", () => this.pick(l, hh));
        map.el.addEventListener("keydown", (e) => { if (e.key === "Enter") this.pick(l, hh); });
        return map;
      });
      rows.push(maps.map((map) => ({ map, note })));
      return h("div", { class: "row", style: "align-items:center", "data-testid": `map-row-${l}` },
        h("div", { class: "col", style: "width:12em" }, h("span", { class: "part-title", "data-export": "text" }, `${l}: ${v.name}`), note),
        ...maps.map((map, hh) => h("div", { class: "col" }, h("span", { class: "part-title", "data-export": "text", style: `color:${HEAD_COLOURS[hh % HEAD_COLOURS.length]}` }, `head ${hh}`), map.el)));
    });
    this.gridBody.replaceChildren(...els);
    this.grid = { key, rows };
  }

  private showFocus(p: Probe, layer: number, head: number): void {
    const v = p.views[layer];
    const { rows, cols } = axisLabels(p, v);
    const [, R, C] = v.weights.shape;
    const w = headOf(v.weights, head).values;
    const key = `${layer}/${head}/${v.name}`;
    const lines = tokenLines({ queries: rows, keys: cols, weights: w, width: Math.min(760, Math.max(420, 32 * Math.max(R, C))), label: `${v.name} head ${head} as lines`, colour: HEAD_COLOURS[head % HEAD_COLOURS.length] });
    if (this.big?.key === key && this.big.title.isConnected) {
      this.big.map.update({ rows: R, cols: C, values: w, rowLabels: rows, colLabels: cols });
      this.big.lines.replaceWith(lines);
      this.big.lines = lines;
      return;
    }
    this.big?.map.dispose();
    const map = new HeatMap({ rows: R, cols: C, values: w, scale: weightScale(1), rowLabels: rows, colLabels: cols }, { label: `${v.name} head ${head}`, axes: ["query", "key"], maxCell: 32, maxWidth: 420 });
    const title = h("p", { class: "part-title", "data-export": "text" }, `${v.name}, head ${head}`);
    this.focusBody.replaceChildren(title, h("div", { class: "row" }, map.el, lines));
    this.big = { key, map, title, lines };
  }
}

export interface InfoOptions {
  origin: string;
  config: PageRunConfig;
  step: number;
  taskDescription: string;
  parameters: number;
  tensors: TensorInfo[];
  /** the file the run came from, if any */
  file: { name: string; format: string } | null;
  error: string | null;
  /** the validation set's loss and accuracy, once evaluated */
  evaluation: Evaluation | null;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const row = (name: string, ...value: Child[]): HTMLElement => h("tr", {}, h("th", { scope: "row", style: "text-align:left" }, name), h("td", { style: "text-align:left" }, ...value));

/** What is on show: where it came from, its task, model, sizes and training settings, and its tensors. */
export function modelInfo(o: InfoOptions): Child[] {
  const c = o.config;
  const s: Partial<ModelSizes> = modelSizes(c);
  return [
    h("h2", {}, "The model on show"),
    o.error ? h("p", { class: "error", role: "alert", "data-testid": "load-error" }, o.error, " (the model below is unchanged)") : null,
    h("table", { class: "numbers", "data-testid": "model-summary" }, h("tbody", {},
      row("source", o.origin),
      o.file ? row("file", `${o.file.name} (format ${o.file.format})`) : null,
      row("task", `${c.task}: ${o.taskDescription}`),
      row("model", `${c.model}: width ${s.dModel ?? "?"}, ${s.heads ?? "?"} heads, ${s.layers ?? "?"} layer${s.layers === 1 ? "" : "s"}, ${o.parameters.toLocaleString("en")} parameters`),
      row("step", String(o.step)),
      row("training", `${c.steps} steps of ${c.batchSize} examples, peak learning rate ${c.lr}, seed ${c.seed}`),
      o.evaluation ? row("validation", h("span", { "data-testid": "evaluation", "data-loss": o.evaluation.loss, "data-token-accuracy": o.evaluation.tokenAccuracy },
        `loss ${o.evaluation.loss.toFixed(4)}, token accuracy ${pct(o.evaluation.tokenAccuracy)}, sequence accuracy ${pct(o.evaluation.sequenceAccuracy)} on ${o.evaluation.examples} examples`)) : null)),
    h("details", {}, h("summary", {}, "The run's config (JSON, as stored in the checkpoint)"), h("pre", { "data-testid": "run-config" }, JSON.stringify(c, null, 1))),
    h("details", {}, h("summary", {}, `Tensors (${o.tensors.length})`),
      h("table", { class: "numbers" }, h("thead", {}, h("tr", {}, h("th", {}, "tensor"), h("th", {}, "dtype"), h("th", {}, "shape"))),
        h("tbody", {}, ...o.tensors.map((t) => h("tr", {}, h("td", { style: "text-align:left" }, t.name), h("td", {}, t.dtype), h("td", {}, `[${t.shape.join(", ")}]`)))))),
  ];
}
