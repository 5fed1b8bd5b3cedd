/**
 * A small SVG line chart (linear or log axes, d3-scale ticks) with hover and keyboard read-out of
 * the nearest point: the memory curves of lessons 7 and 8 and the loss curves of lessons 1 and 9.
 * Text keeps its size: draw the chart at its container's width (chartWidth) rather than scaling it.
 */
import { scaleLinear, scaleLog } from "d3-scale";
import { s } from "./dom.js";
import { hideTip, showTip } from "./tooltip.js";

export interface Series {
  name: string;
  colour: string;
  points: readonly (readonly [number, number])[];
  dash?: string;
}

export interface Axis {
  label: string;
  log?: boolean;
  domain?: [number, number];
  format: (v: number) => string;
  /** tick positions for a domain (default: d3's ticks) */
  ticks?: (lo: number, hi: number) => number[];
}

/**
 * Ticks at powers of 2 for a log axis, at most `maxCount` of them: every power, or every 2nd, 3rd, 4th,
 * 5th or 10th (aligned, so 2^10 = 1k and 2^20 = 1M are ticks when in range).
 */
export function log2Ticks(lo: number, hi: number, maxCount = 8): number[] {
  const e0 = Math.ceil(Math.log2(lo) - 1e-9), e1 = Math.floor(Math.log2(hi) + 1e-9);
  for (const step of [1, 2, 3, 4, 5, 10, 20]) {
    const ticks: number[] = [];
    for (let e = Math.ceil(e0 / step) * step; e <= e1; e += step) ticks.push(2 ** e);
    if (ticks.length <= Math.max(2, maxCount)) return ticks;
  }
  return [2 ** e0, 2 ** e1];
}

/** Ticks at powers of 2 that are whole binary units or steps of 32 of them (1 KiB, 32 KiB, 1 MiB, ...). */
export function binaryTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = 0; e <= 70; e += 5) if (2 ** e >= lo && 2 ** e <= hi) ticks.push(2 ** e);
  return ticks.length > 8 ? ticks.filter((t) => Math.log2(t) % 10 === 0) : ticks;
}

export interface ChartOptions {
  width: number;
  height: number;
  series: readonly Series[];
  x: Axis;
  y: Axis;
  /** a vertical marker, e.g. the N picked by a slider */
  marker?: { x: number; label: string };
  /** horizontal reference lines, e.g. a GPU's memory */
  refs?: readonly { y: number; label: string }[];
  label: string;
  /**
   * where the series names go: "below" the plot (the default for several series; nothing drawn can
   * cross them) or in a top corner of the plot (for a short name over a curve clear of that corner);
   * a single series gets none unless asked, as the y axis names it
   */
  legend?: "below" | "top-left" | "top-right";
}

const M = { left: 84, right: 16, top: 12, bottom: 40 };

type AnyScale = ((v: number) => number) & { ticks(n?: number): number[]; invert(v: number): number; domain(): number[] };

function makeScale(axis: Axis, values: number[], range: [number, number]): AnyScale {
  let [lo, hi] = axis.domain ?? [Math.min(...values), Math.max(...values)];
  if (!(hi > lo)) hi = lo + (axis.log ? lo || 1 : 1);
  return (axis.log ? scaleLog().domain([lo, hi]) : scaleLinear().domain([lo, hi]).nice()).range(range) as unknown as AnyScale;
}

/** The width for a chart in `container`: the container's width, at most `max` (and at least 260). */
export function chartWidth(container: HTMLElement, max: number): number {
  return chartWidthIn(container.clientWidth, max);
}

/** chartWidth for a container's width read earlier (read widths before changing the page: a read after a change lays it out again). */
export function chartWidthIn(containerWidth: number, max: number): number {
  const w = containerWidth;
  return w > 0 ? Math.max(260, Math.min(max, Math.floor(w))) : max;
}

const LEGEND_ROW = 16;
/** Rough width of chart text (system-ui at 11 px, semibold): enough to lay out the legend and labels. */
const textWidth = (t: string): number => t.length * 6.6;

/** Series names laid out in rows under the plot: [x, row] for each name. */
function legendRows(names: readonly string[], x0: number, x1: number): { at: [number, number][]; rows: number } {
  const at: [number, number][] = [];
  let x = x0, row = 0;
  for (const name of names) {
    const w = 22 + textWidth(name);
    if (x > x0 && x + w > x1) { x = x0; row++; }
    at.push([x, row]);
    x += w + 14;
  }
  return { at, rows: names.length ? row + 1 : 0 };
}

export function lineChart(o: ChartOptions): SVGSVGElement {
  const { width } = o;
  // one series needs no legend below the plot: the y axis names it
  const legend = o.legend ?? (o.series.length > 1 ? "below" : "none");
  const below = legend === "below" ? legendRows(o.series.map((se) => se.name), M.left, width - M.right) : { at: [], rows: 0 };
  const height = o.height + (below.rows ? below.rows * LEGEND_ROW + 4 : 0);
  const plotBottom = o.height - M.bottom;
  const xs = o.series.flatMap((se) => se.points.map((p) => p[0]));
  const ys = o.series.flatMap((se) => se.points.map((p) => p[1])).concat((o.refs ?? []).map((r) => r.y)).filter((v) => !o.y.log || v > 0);
  const x = makeScale(o.x, xs.length ? xs : [0, 1], [M.left, width - M.right]);
  const y = makeScale(o.y, ys.length ? ys : [0, 1], [plotBottom, M.top]);
  const svg = s("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, "data-export": "svg", tabindex: 0, role: "img",
    "aria-label": `${o.label}. Arrow keys read the points.`, "font-family": "system-ui, sans-serif", "font-size": 11, class: "chart",
  });
  const halo = { stroke: "#ffffff", "stroke-width": 3, "paint-order": "stroke", "stroke-linejoin": "round" };
  const grid = s("g", {});
  const maxXTicks = Math.max(2, Math.floor((width - M.left - M.right) / 52));
  const xTicks = o.x.ticks ? o.x.ticks(...(x.domain() as [number, number])) : o.x.log ? log2Ticks(...(x.domain() as [number, number]), maxXTicks) : x.ticks(Math.min(6, maxXTicks));
  for (const t of xTicks) {
    grid.append(s("line", { x1: x(t), x2: x(t), y1: M.top, y2: plotBottom, stroke: "#e5e7eb" }));
    grid.append(s("text", { x: x(t), y: plotBottom + 14, "text-anchor": "middle", fill: "#374151", class: "tick-x" }, o.x.format(t)));
  }
  const yTicks = o.y.ticks ? o.y.ticks(...(y.domain() as [number, number])) : o.y.log ? y.ticks().filter((t) => Number.isInteger(Math.log10(t))) : y.ticks(5);
  const yStep = Math.ceil(yTicks.length / Math.max(2, Math.min(8, Math.floor((plotBottom - M.top) / 22))));
  yTicks.forEach((t, i) => {
    if (i % yStep !== 0) return;
    grid.append(s("line", { x1: M.left, x2: width - M.right, y1: y(t), y2: y(t), stroke: "#e5e7eb" }));
    grid.append(s("text", { x: M.left - 6, y: y(t), "text-anchor": "end", "dominant-baseline": "central", fill: "#374151", class: "tick-y" }, o.y.format(t)));
  });
  svg.append(grid);
  svg.append(s("text", { x: (M.left + width - M.right) / 2, y: o.height - 6, "text-anchor": "middle", fill: "#111827", "font-size": 12 }, o.x.label));
  svg.append(s("text", { transform: `translate(14,${(M.top + plotBottom) / 2}) rotate(-90)`, "text-anchor": "middle", fill: "#111827", "font-size": 12 }, o.y.label));
  svg.append(s("rect", { x: M.left, y: M.top, width: width - M.left - M.right, height: plotBottom - M.top, fill: "none", stroke: "#9ca3af" }));
  for (const r of o.refs ?? []) {
    svg.append(s("line", { x1: M.left, x2: width - M.right, y1: y(r.y), y2: y(r.y), stroke: "#6b7280", "stroke-dasharray": "2 3", class: "ref-line" }));
    svg.append(s("text", { x: width - M.right - 4, y: y(r.y) - 4, "text-anchor": "end", fill: "#374151", class: "ref-label", ...halo }, r.label));
  }
  o.series.forEach((se) => {
    const pts = se.points.filter((p) => !o.y.log || p[1] > 0);
    if (pts.length === 0) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg.append(s("path", { d, fill: "none", stroke: se.colour, "stroke-width": 2, "stroke-dasharray": se.dash }));
  });
  o.series.forEach((se, i) => {
    if (legend === "below") {
      const [lx, row] = below.at[i];
      const ly = o.height + 6 + row * LEGEND_ROW;
      svg.append(s("line", { x1: lx, x2: lx + 18, y1: ly, y2: ly, stroke: se.colour, "stroke-width": 2, "stroke-dasharray": se.dash }));
      svg.append(s("text", { x: lx + 22, y: ly, "dominant-baseline": "central", fill: se.colour, "font-weight": 600, class: "legend" }, se.name));
    } else if (legend !== "none") {
      const right = legend === "top-right";
      svg.append(s("text", { x: right ? width - M.right - 6 : M.left + 6, y: M.top + 14 + i * 14, "text-anchor": right ? "end" : "start", fill: se.colour, "font-weight": 600, class: "legend", ...halo }, se.name));
    }
  });
  if (o.marker) {
    const mx = x(o.marker.x);
    // the label sits on the side of the line with room for it, so a marker at the right edge is not cut off
    const left = mx + 4 + textWidth(o.marker.label) > width - M.right;
    svg.append(s("line", { x1: mx, x2: mx, y1: M.top, y2: plotBottom, stroke: "#b45309", "stroke-width": 1.5 }));
    svg.append(s("text", { x: left ? mx - 4 : mx + 4, y: plotBottom - 6, "text-anchor": left ? "end" : "start", fill: "#92400e", class: "marker-label", ...halo }, o.marker.label));
  }
  const cursor = s("line", { y1: M.top, y2: plotBottom, stroke: "#111827", visibility: "hidden" });
  svg.append(cursor);

  // Read-out: the points nearest an x position, one per series.
  const allX = [...new Set(xs)].sort((a, b) => a - b);
  let idx = allX.length - 1;
  const readout = (xv: number): string => {
    const lines = o.series.map((se) => {
      let best = se.points[0];
      for (const p of se.points) if (Math.abs(x(p[0]) - x(xv)) < Math.abs(x(best[0]) - x(xv))) best = p;
      return best ? `${se.name}: ${o.y.format(best[1])}` : "";
    });
    return `${o.x.label} = ${o.x.format(xv)}\n${lines.join("\n")}`;
  };
  const showAt = (i: number, cx?: number, cy?: number): void => {
    if (allX.length === 0) return;
    idx = Math.max(0, Math.min(allX.length - 1, i));
    const px = x(allX[idx]);
    cursor.setAttribute("x1", String(px));
    cursor.setAttribute("x2", String(px));
    cursor.setAttribute("visibility", "visible");
    const r = svg.getBoundingClientRect();
    showTip(readout(allX[idx]), cx ?? r.left + px, cy ?? r.top + M.top);
  };
  svg.addEventListener("pointermove", (e) => {
    const r = svg.getBoundingClientRect();
    const xv = x.invert(((e.clientX - r.left) * width) / r.width);
    let best = 0;
    allX.forEach((v, i) => { if (Math.abs(x(v) - x(xv)) < Math.abs(x(allX[best]) - x(xv))) best = i; });
    showAt(best, e.clientX, e.clientY);
  });
  const hide = (): void => { cursor.setAttribute("visibility", "hidden"); hideTip(); };
  svg.addEventListener("pointerleave", hide);
  svg.addEventListener("blur", hide);
  svg.addEventListener("focus", () => showAt(idx));
  svg.addEventListener("keydown", (e) => {
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (step === 0) return;
    e.preventDefault();
    showAt(idx + step);
  });
  return svg;
}
