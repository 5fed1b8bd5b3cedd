/** Formulas, typeset by KaTeX (bundled with its fonts; nothing is fetched from outside). */
import katex from "katex";
import "katex/dist/katex.min.css";
import { h } from "./dom.js";

export function formula(tex: string, display = true): HTMLElement {
  const el = h(display ? "div" : "span", { class: display ? "formula" : "formula-inline" });
  katex.render(tex, el, { displayMode: display, throwOnError: true, output: "htmlAndMathml" });
  return el;
}
