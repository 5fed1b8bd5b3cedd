/**
 * The head view (after bertviz's): a layer's tokens twice, queries in the left column and keys in
 * the right, and a line from each query to each key it attends to, its opacity the weight; one
 * colour per head, the shown heads drawn over each other. Hover or focus a token to see only its
 * lines (a query's outgoing, a key's incoming) and read their weights.
 *
 * Each line carries its head, query, key and weight (data-head, data-q, data-k, data-w), so what is
 * drawn can be read back; weights under MIN_WEIGHT are not drawn (they would be invisible).
 */
import { HEAD_COLOURS } from "./colors.js";
import { s } from "./dom.js";
import { fmt } from "./format.js";
import { attachTip } from "./tooltip.js";

/** Lines lighter than this are left out (opacity under 1%). */
export const MIN_WEIGHT = 0.01;
const ROW_H = 20;
const TOP = 30;
const MAX_LABEL = 16;

/** A colour per head: the usual eight for up to eight heads, else hues spaced around the wheel (dark enough for white). */
export function headColour(head: number, heads: number): string {
  if (heads <= HEAD_COLOURS.length) return HEAD_COLOURS[head];
  return `hsl(${Math.round((360 * head) / heads)}, 75%, 38%)`;
}

export interface HeadViewOptions {
  tokens: readonly string[];
  /** per head of the layer: its weights [T, T], row-major (query, key) */
  heads: readonly ArrayLike<number>[];
  /** which heads to draw */
  shown: readonly boolean[];
  /** the widest the picture may be (CSS px) */
  maxWidth: number;
  label: string;
}

let measurer: CanvasRenderingContext2D | null = null;
function labelWidth(text: string): number {
  measurer ??= document.createElement("canvas").getContext("2d")!;
  measurer.font = "600 13px system-ui, sans-serif";
  return measurer.measureText(text).width;
}

/** A token as a label: at most MAX_LABEL characters (the tooltip has the whole token). */
export function tokenLabel(token: string): string {
  const t = token.length > MAX_LABEL ? `${token.slice(0, MAX_LABEL - 1)}…` : token;
  return t === "" ? "∅" : t;
}

export function headView(o: HeadViewOptions): SVGSVGElement {
  const T = o.tokens.length;
  const H = o.heads.length;
  const labels = o.tokens.map(tokenLabel);
  const side = Math.max(labelWidth("queries"), ...labels.map(labelWidth)) + 10;
  const gap = Math.max(60, Math.min(220, o.maxWidth - 2 * side));
  const width = Math.ceil(2 * side + gap);
  const height = TOP + T * ROW_H + 6;
  const qx = side, kx = side + gap;
  const y = (i: number): number => TOP + (i + 0.5) * ROW_H;
  const svg = s("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, "data-export": "svg", "data-testid": "hf-head-view", "data-min-weight": MIN_WEIGHT,
    "font-family": "system-ui, sans-serif", "font-size": 13, role: "group", "aria-label": `${o.label}: focus a token to read its weights`,
  });
  svg.append(
    s("text", { x: qx, y: 14, "font-size": 11, fill: "#374151", "text-anchor": "end" }, "queries"),
    s("text", { x: kx, y: 14, "font-size": 11, fill: "#374151" }, "keys"),
  );
  const lines = s("g", {});
  const all: SVGLineElement[] = [];
  for (let h = 0; h < H; h++) {
    if (!o.shown[h]) continue;
    const w = o.heads[h];
    const colour = headColour(h, H);
    for (let q = 0; q < T; q++) {
      for (let k = 0; k < T; k++) {
        const v = w[q * T + k];
        if (!(v >= MIN_WEIGHT)) continue;
        const line = s("line", {
          x1: qx + 5, y1: y(q), x2: kx - 5, y2: y(k), stroke: colour, "stroke-width": 2, "stroke-opacity": v.toFixed(3), "stroke-linecap": "round",
          "data-head": h, "data-q": q, "data-k": k, "data-w": v,
        });
        all.push(line);
        lines.append(line);
      }
    }
  }
  svg.append(lines);
  /** only the lines of one query (or into one key), or all of them */
  const focus = (end: "q" | "k" | null, i: number): void => {
    for (const line of all) line.setAttribute("visibility", end === null || line.dataset[end] === String(i) ? "visible" : "hidden");
  };
  const weightsText = (end: "q" | "k", i: number): string => {
    const out: string[] = [];
    for (let h = 0; h < H; h++) {
      if (!o.shown[h]) continue;
      const row = Array.from({ length: T }, (_, j) => [j, end === "q" ? o.heads[h][i * T + j] : o.heads[h][j * T + i]] as const)
        .filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, 3);
      out.push(`  head ${h}: ${row.map(([j, v]) => `${j} "${o.tokens[j]}" ${fmt(v, 3)}`).join(", ")}`);
    }
    return out.join("\n");
  };
  const token = (end: "q" | "k", i: number): SVGTextElement => {
    const text = s("text", {
      x: end === "q" ? qx : kx, y: y(i), "text-anchor": end === "q" ? "end" : "start", "dominant-baseline": "central",
      fill: "#111827", "font-weight": end === "q" ? 600 : 400, tabindex: 0, class: end === "q" ? "token-q" : "token-k", "data-i": i,
    }, labels[i]);
    text.addEventListener("pointerenter", () => focus(end, i));
    text.addEventListener("pointerleave", () => focus(null, 0));
    text.addEventListener("focus", () => focus(end, i));
    text.addEventListener("blur", () => focus(null, 0));
    attachTip(text, () => end === "q"
      ? `query ${i} "${o.tokens[i]}" attends to (top 3 per head)\n${weightsText("q", i)}`
      : `key ${i} "${o.tokens[i]}" is attended by (top 3 per head)\n${weightsText("k", i)}`);
    return text;
  };
  for (let i = 0; i < T; i++) svg.append(token("q", i), token("k", i));
  return svg;
}
