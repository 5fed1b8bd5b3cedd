/**
 * Formulas, typeset by KaTeX at build time: web/typeset.ts (a Vite plugin) runs
 * katex.renderToString on the TeX of every formula() call in the pages and has each page module
 * hand the HTML to typeset() when it loads; formula() only puts that HTML into the page. Opening
 * a lesson runs no KaTeX, and no raw TeX is ever shown. KaTeX's CSS and fonts are bundled;
 * nothing is fetched from outside.
 */
import "katex/dist/katex.min.css";
import { h } from "./dom.js";

/** KaTeX's HTML for each formula, by display mode and TeX. */
const typesetHtml = new Map<string, string>();
const key = (tex: string, display: boolean): string => `${display ? "display" : "inline"} ${tex}`;

/** Called by the code web/typeset.ts adds to each module that calls formula(): [tex, display, html] for each of its formulas. */
export function typeset(formulas: readonly (readonly [string, boolean, string])[]): void {
  for (const [tex, display, html] of formulas) typesetHtml.set(key(tex, display), html);
}

/**
 * A formula. Given several parts (the pieces a formula would separate with \qquad), each is typeset
 * on its own and the parts wrap onto new lines on a narrow screen instead of scrolling out of sight.
 * The TeX must be written out in the call (a string or String.raw`…`), so that it is typeset at build time.
 */
export function formula(tex: string | readonly string[], display = true): HTMLElement {
  if (typeof tex !== "string") {
    return h("div", { class: "formula formula-parts" }, ...tex.map((part) => formula(part, true)).map((el) => {
      el.className = "formula-part";
      return el;
    }));
  }
  const html = typesetHtml.get(key(tex, display));
  if (html === undefined) {
    throw new Error(`formula: ${JSON.stringify(tex)} (${display ? "display" : "inline"}) was not typeset at build time; web/typeset.ts typesets the formula() calls of the modules under web/src whose TeX is written out in the call`);
  }
  const el = h(display ? "div" : "span", { class: display ? "formula" : "formula-inline" });
  el.innerHTML = html;
  return el;
}
