/**
 * Attention heat maps, the part both renderers share: the weights brought to [H, L, S], the labels,
 * and where everything goes (in pixels). One panel per head, laid out in a grid, query tokens down
 * the left (rows, L), key tokens along the top (columns, S), a colour bar on the right.
 */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { GLYPH_HEIGHT, textWidth } from "./font.js";

export type HeatmapInput = Tensor | number[][] | number[][][];

export interface HeatmapOptions {
  /** one label per query row (L); default 0..L-1 */
  rowLabels?: readonly string[];
  /** one label per key column (S); default 0..S-1 */
  colLabels?: readonly string[];
  /** above all panels */
  title?: string;
  /** one per head; default "head 0", "head 1", ... (none for a single [L, S] map) */
  headLabels?: readonly string[];
  /** side of a cell in pixels (default 24) */
  cellSize?: number;
  /** the values mapped to the ends of the colour scale (default 0 and 1, as for attention weights) */
  vmin?: number;
  vmax?: number;
  /** panels per row (default: all heads in one row, at most 4) */
  columns?: number;
  /** pixel size of the bitmap font in the PNG (default 2); the SVG uses the matching font size */
  fontScale?: number;
}

export interface Maps {
  H: number;
  L: number;
  S: number;
  /** [H, L, S] row-major */
  data: Float64Array;
}

export interface PanelBox {
  head: number;
  title: string;
  /** top-left of the grid of cells */
  gridX: number;
  gridY: number;
  /** where the head title's text starts (top-left) */
  titleX: number;
  titleY: number;
}

export interface Layout {
  maps: Maps;
  rowLabels: string[];
  colLabels: string[];
  title: string | null;
  cell: number;
  font: number;
  /** line height of the bitmap font at this scale */
  lineHeight: number;
  vmin: number;
  vmax: number;
  width: number;
  height: number;
  panels: PanelBox[];
  rowLabelWidth: number;
  /** column labels are turned 90° when one is wider than a cell */
  colLabelsVertical: boolean;
  colLabelHeight: number;
  colorbar: { x: number; y: number; width: number; height: number };
}

const MARGIN = 10;
const GAP = 4;

/** Weights as [H, L, S]: a tensor [L, S], [H, L, S] or [1, H, L, S], or nested arrays. */
export function toMaps(fn: string, weights: HeatmapInput): Maps {
  if (weights instanceof Tensor) {
    let shape = [...weights.shape];
    if (shape.length === 4 && shape[0] === 1) shape = shape.slice(1);
    if (shape.length === 2) shape = [1, ...shape];
    if (shape.length !== 3 || weights.dtype === "bool") {
      throw new ShapeError(`${fn}: weights must be a float tensor [L, S], [H, L, S] or [1, H, L, S], got ${weights.dtype} ${fmtShape(weights.shape)} (pick one batch element first)`);
    }
    const [H, L, S] = shape;
    if (H * L * S === 0) throw new ShapeError(`${fn}: weights ${fmtShape(weights.shape)} are empty`);
    return { H, L, S, data: Float64Array.from(weights.values) };
  }
  if (!Array.isArray(weights) || weights.length === 0) throw new ArgumentError(`${fn}: weights must be a Tensor or non-empty nested arrays`);
  const heads = (Array.isArray(weights[0]) && Array.isArray((weights[0] as unknown[])[0]) ? weights : [weights]) as number[][][];
  const H = heads.length;
  const L = heads[0].length;
  const S = heads[0][0]?.length ?? 0;
  if (L === 0 || S === 0) throw new ShapeError(`${fn}: weights are empty`);
  const data = new Float64Array(H * L * S);
  heads.forEach((m, h) => {
    if (m.length !== L) throw new ShapeError(`${fn}: head ${h} has ${m.length} rows, head 0 has ${L}`);
    m.forEach((row, l) => {
      if (!Array.isArray(row) || row.length !== S) throw new ShapeError(`${fn}: head ${h} row ${l} has ${Array.isArray(row) ? row.length : "no"} columns, expected ${S}`);
      row.forEach((v, s) => (data[(h * L + l) * S + s] = Number(v)));
    });
  });
  return { H, L, S, data };
}

function labels(fn: string, name: string, given: readonly string[] | undefined, n: number): string[] {
  if (given === undefined) return Array.from({ length: n }, (_, i) => String(i));
  if (!Array.isArray(given) || given.length !== n) {
    throw new ArgumentError(`${fn}: ${name} has ${Array.isArray(given) ? given.length : "no"} labels but the weights have ${n} ${name === "rowLabels" ? "rows (L)" : "columns (S)"}`);
  }
  return given.map(String);
}

function positive(fn: string, name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new ArgumentError(`${fn}: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

export function layoutHeatmap(fn: string, weights: HeatmapInput, opts: HeatmapOptions = {}): Layout {
  const maps = toMaps(fn, weights);
  const { H, L, S } = maps;
  const cell = positive(fn, "cellSize", opts.cellSize ?? 24);
  const font = positive(fn, "fontScale", opts.fontScale ?? 2);
  const vmin = opts.vmin ?? 0;
  const vmax = opts.vmax ?? 1;
  if (!Number.isFinite(vmin) || !Number.isFinite(vmax) || !(vmax > vmin)) throw new ArgumentError(`${fn}: needs finite vmin < vmax, got ${vmin} and ${vmax}`);
  const rowLabels = labels(fn, "rowLabels", opts.rowLabels, L);
  const colLabels = labels(fn, "colLabels", opts.colLabels, S);
  const headTitles = opts.headLabels !== undefined
    ? labels(fn, "headLabels", opts.headLabels, H)
    : Array.from({ length: H }, (_, h) => (H === 1 && !(weights instanceof Tensor && weights.ndim >= 3) ? "" : `head ${h}`));
  const columns = Math.min(H, positive(fn, "columns", opts.columns ?? Math.min(H, 4)));
  const lineHeight = GLYPH_HEIGHT * font;
  const rowLabelWidth = Math.max(...rowLabels.map((s) => textWidth(s, font)));
  const widestCol = Math.max(...colLabels.map((s) => textWidth(s, font)));
  const colLabelsVertical = widestCol > cell - 2;
  const colLabelHeight = colLabelsVertical ? widestCol : lineHeight;
  const hasHeadTitles = headTitles.some((t) => t.length > 0);
  const panelW = Math.max(rowLabelWidth + GAP + S * cell, ...headTitles.map((t) => rowLabelWidth + GAP + textWidth(t, font)));
  const panelH = (hasHeadTitles ? lineHeight + GAP : 0) + colLabelHeight + GAP + L * cell;
  const title = opts.title ?? null;
  const top = MARGIN + (title ? lineHeight + 2 * GAP : 0);
  const panels: PanelBox[] = [];
  for (let h = 0; h < H; h++) {
    const px = MARGIN + (h % columns) * (panelW + 2 * MARGIN);
    const py = top + Math.floor(h / columns) * (panelH + MARGIN);
    const gridX = px + rowLabelWidth + GAP;
    const gridY = py + panelH - L * cell;
    panels.push({ head: h, title: headTitles[h], gridX, gridY, titleX: gridX, titleY: py });
  }
  const rows = Math.ceil(H / columns);
  const panelsRight = MARGIN + columns * panelW + (columns - 1) * 2 * MARGIN;
  const barW = Math.max(8, Math.round(cell / 2));
  const gridTop = panels[0].gridY;
  const colorbar = { x: panelsRight + 2 * MARGIN, y: gridTop, width: barW, height: Math.max(L * cell, 4 * lineHeight) };
  const barLabelW = Math.max(textWidth(fmtValue(vmin), font), textWidth(fmtValue(vmax), font));
  const width = Math.max(colorbar.x + barW + GAP + barLabelW + MARGIN, title ? 2 * MARGIN + textWidth(title, font) : 0);
  const height = Math.max(top + rows * panelH + (rows - 1) * MARGIN, colorbar.y + colorbar.height) + MARGIN;
  return {
    maps, rowLabels, colLabels, title, cell, font, lineHeight, vmin, vmax, width, height, panels,
    rowLabelWidth, colLabelsVertical, colLabelHeight, colorbar,
  };
}

/** Position of a weight on the colour scale, in [0, 1]. */
export function unit(layout: Layout, v: number): number {
  return (v - layout.vmin) / (layout.vmax - layout.vmin);
}

export function fmtValue(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const s = v.toPrecision(3);
  return s.includes("e") ? s : String(Number(s));
}

/** The pixel rectangle of cell (h, l, s). */
export function cellRect(layout: Layout, h: number, l: number, s: number): { x: number; y: number; size: number } {
  const p = layout.panels[h];
  return { x: p.gridX + s * layout.cell, y: p.gridY + l * layout.cell, size: layout.cell };
}
