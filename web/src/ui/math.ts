/** Formulas, typeset by KaTeX (bundled with its fonts; nothing is fetched from outside). */
import katex from "katex";
import "katex/dist/katex.min.css";
import { h } from "./dom.js";

/**
 * A formula. Given several parts (the pieces a formula would separate with \qquad), each is typeset
 * on its own and the parts wrap onto new lines on a narrow screen instead of scrolling out of sight.
 */
export function formula(tex: string | readonly string[], display = true): HTMLElement {
  if (typeof tex !== "string") {
    return h("div", { class: "formula formula-parts" }, ...tex.map((part) => formula(part, true)).map((el) => {
      el.className = "formula-part";
      return el;
    }));
  }
  const el = h(display ? "div" : "span", { class: display ? "formula" : "formula-inline" });
  katex.render(tex, el, { displayMode: display, throwOnError: true, output: "htmlAndMathml" });
  return el;
}
