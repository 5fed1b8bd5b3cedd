/** Building blocks of the lessons: a titled matrix with a shape badge, operator signs, shared notes. */
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

/**
 * Said on every lesson whose maps come from random projections, so nobody reads meaning into them
 * (a sentence about a tired animal invites it): `what` names the random parts.
 */
export function untrainedNote(what: string): HTMLElement {
  return h("p", { class: "callout", "data-testid": "untrained-note" },
    h("strong", {}, "Random, untrained weights. "),
    `${what} are drawn at random from the seed, not learned, so these maps show how attention computes, not what the words mean: `,
    "any pattern that looks meaningful is chance. ",
    h("a", { href: "#/inspect" }, "Lesson 9"), " trains a model in the page and shows the maps it learns.");
}

/** Says that an empty sentence is shown as one placeholder token; hidden while the sentence has words. */
export function emptyNote(testid = "empty-note"): { el: HTMLElement; show: (empty: readonly string[]) => void } {
  const el = h("p", { class: "note", "data-testid": testid, role: "status", hidden: true });
  return {
    el,
    show(empty) {
      el.hidden = empty.length === 0;
      el.textContent = empty.length ? `${empty.join(" and ")} ${empty.length > 1 ? "are" : "is"} empty, so ${empty.length > 1 ? "each" : "it"} stands as one placeholder token "…". Type a word to see real tokens.` : "";
    },
  };
}
