/**
 * A small SVG line chart (linear or log axes, d3-scale ticks) with hover and keyboard read-out of
 * the nearest point: the memory curves of lesson 8 and the loss curve of lesson 9.
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
  /** where the series names go (default top-left, clear of rising curves) */
  legend?: "top-left" | "top-right";
}

const M = { left: 84, right: 16, top: 12, bottom: 40 };

type AnyScale = ((v: number) => number) & { ticks(n?: number): number[]; invert(v: number): number; domain(): number[] };

function makeScale(axis: Axis, values: number[], range: [number, number]): AnyScale {
  let [lo, hi] = axis.domain ?? [Math.min(...values), Math.max(...values)];
  if (!(hi > lo)) hi = lo + (axis.log ? lo || 1 : 1);
  return (axis.log ? scaleLog().domain([lo, hi]) : scaleLinear().domain([lo, hi]).nice()).range(range) as unknown as AnyScale;
}

export function lineChart(o: ChartOptions): SVGSVGElement {
  const { width, height } = o;
  const xs = o.series.flatMap((se) => se.points.map((p) => p[0]));
  const ys = o.series.flatMap((se) => se.points.map((p) => p[1])).concat((o.refs ?? []).map((r) => r.y)).filter((v) => !o.y.log || v > 0);
  const x = makeScale(o.x, xs.length ? xs : [0, 1], [M.left, width - M.right]);
  const y = makeScale(o.y, ys.length ? ys : [0, 1], [height - M.bottom, M.top]);
  const svg = s("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, "data-export": "svg", tabindex: 0, role: "img",
    "aria-label": `${o.label}. Arrow keys read the points.`, "font-family": "system-ui, sans-serif", "font-size": 11, class: "chart",
  });
  const grid = s("g", {});
  const xTicks = o.x.ticks ? o.x.ticks(...(x.domain() as [number, number])) : o.x.log ? x.ticks().filter((t) => Number.isInteger(Math.log2(t)) && Math.log2(t) % 2 === 0) : x.ticks(6);
  for (const t of xTicks) {
    grid.append(s("line", { x1: x(t), x2: x(t), y1: M.top, y2: height - M.bottom, stroke: "#e5e7eb" }));
    grid.append(s("text", { x: x(t), y: height - M.bottom + 14, "text-anchor": "middle", fill: "#374151" }, o.x.format(t)));
  }
  const yTicks = o.y.ticks ? o.y.ticks(...(y.domain() as [number, number])) : o.y.log ? y.ticks().filter((t) => Number.isInteger(Math.log10(t))) : y.ticks(5);
  const yStep = Math.ceil(yTicks.length / 8);
  yTicks.forEach((t, i) => {
    if (i % yStep !== 0) return;
    grid.append(s("line", { x1: M.left, x2: width - M.right, y1: y(t), y2: y(t), stroke: "#e5e7eb" }));
    grid.append(s("text", { x: M.left - 6, y: y(t), "text-anchor": "end", "dominant-baseline": "central", fill: "#374151" }, o.y.format(t)));
  });
  svg.append(grid);
  svg.append(s("text", { x: (M.left + width - M.right) / 2, y: height - 6, "text-anchor": "middle", fill: "#111827", "font-size": 12 }, o.x.label));
  svg.append(s("text", { transform: `translate(14,${(M.top + height - M.bottom) / 2}) rotate(-90)`, "text-anchor": "middle", fill: "#111827", "font-size": 12 }, o.y.label));
  svg.append(s("rect", { x: M.left, y: M.top, width: width - M.left - M.right, height: height - M.top - M.bottom, fill: "none", stroke: "#9ca3af" }));
  for (const r of o.refs ?? []) {
    svg.append(s("line", { x1: M.left, x2: width - M.right, y1: y(r.y), y2: y(r.y), stroke: "#6b7280", "stroke-dasharray": "2 3" }));
    svg.append(s("text", { x: width - M.right - 4, y: y(r.y) - 4, "text-anchor": "end", fill: "#374151" }, r.label));
  }
  o.series.forEach((se, i) => {
    const pts = se.points.filter((p) => !o.y.log || p[1] > 0);
    if (pts.length === 0) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg.append(s("path", { d, fill: "none", stroke: se.colour, "stroke-width": 2, "stroke-dasharray": se.dash }));
    const right = o.legend === "top-right";
    svg.append(s("text", { x: right ? width - M.right - 6 : M.left + 6, y: M.top + 14 + i * 14, "text-anchor": right ? "end" : "start", fill: se.colour, "font-weight": 600 }, se.name));
  });
  if (o.marker) {
    const mx = x(o.marker.x);
    svg.append(s("line", { x1: mx, x2: mx, y1: M.top, y2: height - M.bottom, stroke: "#b45309", "stroke-width": 1.5 }));
    svg.append(s("text", { x: mx + 4, y: height - M.bottom - 6, fill: "#92400e" }, o.marker.label));
  }
  const cursor = s("line", { y1: M.top, y2: height - M.bottom, stroke: "#111827", visibility: "hidden" });
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
