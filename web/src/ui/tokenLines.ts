/**
 * Attention as lines between tokens: queries along the top, keys along the bottom, one line per
 * (query, key) pair whose width and opacity follow the weight. Hover or focus a query token to see
 * only its lines and read its weights.
 */
import { s } from "./dom.js";
import { fmt } from "./format.js";
import { attachTip } from "./tooltip.js";

export interface TokenLinesOptions {
  queries: readonly string[];
  keys: readonly string[];
  /** row-major [queries × keys] */
  weights: ArrayLike<number>;
  width: number;
  label: string;
  colour?: string;
  /** key positions that are masked out (drawn struck through) */
  maskedKeys?: ReadonlySet<number>;
}

export function tokenLines(o: TokenLinesOptions): SVGSVGElement {
  const L = o.queries.length, S = o.keys.length;
  const height = 170, pad = 24, topY = 26, botY = height - 26;
  const colour = o.colour ?? "#1d4ed8";
  const xOf = (i: number, n: number): number => pad + ((i + 0.5) * (o.width - 2 * pad)) / n;
  const svg = s("svg", { width: o.width, height, viewBox: `0 0 ${o.width} ${height}`, "data-export": "svg", "font-family": "system-ui, sans-serif", "font-size": 13, role: "group", "aria-label": `${o.label}: focus a query token to read its weights` });
  svg.append(s("text", { x: 4, y: 12, "font-size": 11, fill: "#374151" }, "queries"));
  svg.append(s("text", { x: 4, y: height - 2, "font-size": 11, fill: "#374151" }, "keys"));
  const groups: SVGGElement[] = [];
  for (let l = 0; l < L; l++) {
    const g = s("g", { "data-q": l });
    for (let k = 0; k < S; k++) {
      const w = o.weights[l * S + k];
      if (!(w > 0.002)) continue;
      g.append(s("line", { x1: xOf(l, L), y1: topY + 8, x2: xOf(k, S), y2: botY - 16, stroke: colour, "stroke-width": 0.6 + 7 * w, "stroke-opacity": Math.min(1, 0.12 + 0.88 * w), "stroke-linecap": "round" }));
    }
    groups.push(g);
    svg.append(g);
  }
  const focusRow = (row: number | null): void => {
    groups.forEach((g, i) => g.setAttribute("opacity", row === null || row === i ? "1" : "0.07"));
  };
  o.queries.forEach((t, l) => {
    const text = s("text", { x: xOf(l, L), y: topY, "text-anchor": "middle", fill: "#111827", "font-weight": 600, tabindex: 0 }, t);
    text.addEventListener("pointerenter", () => focusRow(l));
    text.addEventListener("pointerleave", () => focusRow(null));
    text.addEventListener("focus", () => focusRow(l));
    text.addEventListener("blur", () => focusRow(null));
    attachTip(text, () => {
      const row = Array.from({ length: S }, (_, k) => [k, o.weights[l * S + k]] as const).sort((a, b) => b[1] - a[1]);
      return `query ${l} "${t}" attends to\n${row.slice(0, 6).map(([k, w]) => `  ${k} "${o.keys[k]}": ${fmt(w, 3)}`).join("\n")}`;
    });
    svg.append(text);
  });
  o.keys.forEach((t, k) => {
    const masked = o.maskedKeys?.has(k);
    svg.append(s("text", { x: xOf(k, S), y: botY, "text-anchor": "middle", fill: masked ? "#6b7280" : "#111827", "text-decoration": masked ? "line-through" : undefined }, t));
  });
  return svg;
}
