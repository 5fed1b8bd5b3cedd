/** Building blocks of the figures: a titled matrix with a shape badge, and operator signs. */
import { h } from "./dom.js";
import { fmtShape } from "./format.js";
import type { HeatMap } from "./heatmap.js";

/** A heat map under its name and shape badge: "Q  [4 × 8]". */
export function matrixPart(title: string, shape: readonly number[], map: HeatMap, extra?: HTMLElement): HTMLElement {
  return h("div", { class: "col" },
    h("div", { class: "row", style: "gap:6px;align-items:center" },
      h("span", { class: "part-title", "data-export": "text" }, title),
      h("span", { class: "badge", "data-export": "box", "data-testid": `shape-${title}` }, `[${fmtShape(shape)}]`)),
    map.el, extra);
}

/** An operator or arrow between parts. */
export function op(text: string, label?: string): HTMLElement {
  return h("div", { class: "op", "data-export": "text", "aria-label": label ?? undefined }, text);
}
