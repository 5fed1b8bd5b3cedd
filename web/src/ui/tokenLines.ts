/**
 * Attention as lines between tokens: queries along the top, keys along the bottom (or, for long
 * inputs, queries down the left and keys down the right), one line per (query, key) pair whose width
 * and opacity follow the weight. Hover or focus a query token to see
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

let measurer: CanvasRenderingContext2D | null = null;
/** Width of a label in the figure's font (13 px, semibold like the query tokens, to be safe). */
function labelWidth(text: string): number {
  measurer ??= document.createElement("canvas").getContext("2d")!;
  measurer.font = "600 13px system-ui, sans-serif";
  return measurer.measureText(text).width;
}

/**
 * Tokens in two rows (queries above keys) when every token fits its share of the width; otherwise in
 * two columns (queries left, keys right, one line each), which any number of tokens of any length fits.
 */
export function tokenLines(o: TokenLinesOptions): SVGSVGElement {
  const L = o.queries.length, S = o.keys.length;
  const pad = 24;
  const widest = (ts: readonly string[]): number => Math.max(0, ...ts.map(labelWidth));
  const fitsRows = widest(o.queries) + 8 <= (o.width - 2 * pad) / L && widest(o.keys) + 8 <= (o.width - 2 * pad) / S;
  const rowH = Math.max(L, S) > 20 ? 16 : 20, colTop = 34;
  const height = fitsRows ? 170 : colTop + Math.max(L, S) * rowH;
  const colour = o.colour ?? "#1d4ed8";
  // rows: x along the width; columns: queries right-aligned at qx, keys left-aligned at kx (about 240 px
  // of lines between them), y down the rows
  const qW = Math.max(widest(o.queries), labelWidth("queries")) + 8, kW = Math.max(widest(o.keys), labelWidth("keys")) + 8;
  const width = fitsRows ? o.width : Math.min(o.width, Math.ceil(qW + kW + 240));
  const qx = Math.min(qW, width * 0.4), kx = Math.max(width - kW, width * 0.6);
  const colY = (i: number, n: number): number => colTop + (i + (Math.max(L, S) - n) / 2 + 0.5) * rowH;
  const at = fitsRows
    ? { q: (l: number): [number, number] => [xOf(l, L), 26], k: (k: number): [number, number] => [xOf(k, S), height - 26] }
    : { q: (l: number): [number, number] => [qx, colY(l, L)], k: (k: number): [number, number] => [kx, colY(k, S)] };
  function xOf(i: number, n: number): number {
    return pad + ((i + 0.5) * (o.width - 2 * pad)) / n;
  }
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-export": "svg", "font-family": "system-ui, sans-serif", "font-size": 13, role: "group", "aria-label": `${o.label}: focus a query token to read its weights` });
  if (fitsRows) {
    svg.append(s("text", { x: 4, y: 12, "font-size": 11, fill: "#374151" }, "queries"));
    svg.append(s("text", { x: 4, y: height - 2, "font-size": 11, fill: "#374151" }, "keys"));
  } else {
    svg.append(s("text", { x: qx, y: 14, "font-size": 11, fill: "#374151", "text-anchor": "end" }, "queries"));
    svg.append(s("text", { x: kx, y: 14, "font-size": 11, fill: "#374151" }, "keys"));
  }
  const groups: SVGGElement[] = [];
  for (let l = 0; l < L; l++) {
    const g = s("g", { "data-q": l });
    const [x1, y1] = at.q(l);
    for (let k = 0; k < S; k++) {
      const w = o.weights[l * S + k];
      if (!(w > 0.002)) continue;
      const [x2, y2] = at.k(k);
      const ends = fitsRows ? { x1, y1: y1 + 8, x2, y2: y2 - 16 } : { x1: x1 + 6, y1, x2: x2 - 6, y2 };
      g.append(s("line", { ...ends, stroke: colour, "stroke-width": 0.6 + 7 * w, "stroke-opacity": Math.min(1, 0.12 + 0.88 * w), "stroke-linecap": "round" }));
    }
    groups.push(g);
    svg.append(g);
  }
  const focusRow = (row: number | null): void => {
    groups.forEach((g, i) => g.setAttribute("opacity", row === null || row === i ? "1" : "0.07"));
  };
  const middle = fitsRows ? {} : { "dominant-baseline": "central" };
  o.queries.forEach((t, l) => {
    const [x, y] = at.q(l);
    const text = s("text", { x, y, "text-anchor": fitsRows ? "middle" : "end", ...middle, fill: "#111827", "font-weight": 600, tabindex: 0, class: "token-q" }, t);
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
    const [x, y] = at.k(k);
    svg.append(s("text", { x, y, "text-anchor": fitsRows ? "middle" : "start", ...middle, fill: masked ? "#6b7280" : "#111827", "text-decoration": masked ? "line-through" : undefined, class: "token-k" }, t));
  });
  return svg;
}
