/**
 * Form controls built on native inputs (so the keyboard, focus rings and screen readers work without
 * extra code): sliders, toggles, selects, buttons, the seed box, a small number-matrix editor, and
 * "check" lines that state a property the maths promises and whether it holds.
 */
import { h } from "./dom.js";

let uid = 0;
const nextId = (p: string): string => `${p}-${++uid}`;

export interface SliderOptions {
  label: string;
  min: number;
  max: number;
  step?: number;
  value: number;
  /** shown next to the slider; defaults to the value */
  format?: (v: number) => string;
  onInput: (v: number) => void;
  testid?: string;
}

export function slider(o: SliderOptions): HTMLElement {
  const id = nextId("slider");
  const out = h("output", { for: id, class: "value" }, (o.format ?? String)(o.value));
  const input = h("input", {
    id, type: "range", min: o.min, max: o.max, step: o.step ?? 1, value: o.value, "data-testid": o.testid,
  });
  input.addEventListener("input", () => {
    const v = Number(input.value);
    out.textContent = (o.format ?? String)(v);
    o.onInput(v);
  });
  return h("div", { class: "control" }, h("label", { for: id }, o.label), input, out);
}

export function toggle(o: { label: string; checked: boolean; onChange: (v: boolean) => void; testid?: string }): HTMLElement {
  const id = nextId("toggle");
  const input = h("input", { id, type: "checkbox", checked: o.checked, "data-testid": o.testid });
  input.addEventListener("change", () => o.onChange(input.checked));
  return h("div", { class: "control toggle" }, input, h("label", { for: id }, o.label));
}

export function select<T extends string | number>(o: {
  label: string; options: readonly T[]; value: T; onChange: (v: T) => void; names?: (v: T) => string; testid?: string;
}): HTMLElement {
  const id = nextId("select");
  const sel = h("select", { id, "data-testid": o.testid },
    ...o.options.map((v) => h("option", { value: String(v), selected: v === o.value }, o.names ? o.names(v) : String(v))));
  // an option added later by setControlValue is not in o.options: read it as the options' type
  const parse = (text: string): T => (o.options.find((v) => String(v) === text) ?? (typeof o.value === "number" ? Number(text) : text)) as T;
  sel.addEventListener("change", () => o.onChange(parse(sel.value)));
  return h("div", { class: "control" }, h("label", { for: id }, o.label), sel);
}

/**
 * A text box whose value is reported while the user types, once typing pauses for `delayMs` (and at
 * once on Enter or when the box loses focus), so the picture follows the text without redrawing on
 * every key.
 */
export function textControl(o: {
  label: string; value: string; onInput: (v: string) => void; testid?: string; size?: number; delayMs?: number;
}): HTMLElement {
  const id = nextId("text");
  const input = h("input", { id, type: "text", value: o.value, size: o.size ?? 36, "data-testid": o.testid });
  let timer = 0;
  let reported = o.value;
  const report = (): void => {
    clearTimeout(timer);
    if (input.value === reported) return;
    reported = input.value;
    o.onInput(input.value);
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = window.setTimeout(report, o.delayMs ?? 150);
  });
  input.addEventListener("change", report);
  return h("div", { class: "control" }, h("label", { for: id }, o.label), input);
}

export function button(label: string, onClick: () => void, attrs: Record<string, string> = {}): HTMLButtonElement {
  return h("button", { type: "button", ...attrs, onclick: () => onClick() }, label);
}

/** The visible seed behind every random input: edit it, or draw a new one. */
export function seedControl(seed: number, onChange: (seed: number) => void): HTMLElement {
  const id = nextId("seed");
  const input = h("input", { id, type: "number", min: 0, max: 2147483647, step: 1, value: seed, class: "seed", "data-testid": "seed" });
  input.addEventListener("change", () => {
    const v = Math.max(0, Math.floor(Number(input.value)) || 0);
    input.value = String(v);
    onChange(v);
  });
  const roll = button("New seed", () => {
    const v = Math.floor(Math.random() * 100000);
    input.value = String(v);
    onChange(v);
  }, { "data-testid": "new-seed" });
  return h("div", { class: "control" }, h("label", { for: id }, "Seed"), input, roll);
}

/**
 * A grid of number inputs, one per matrix entry; calls onChange with the whole matrix. `format` sets
 * how an entry is shown (the matrix keeps its exact values until one is edited).
 */
export function matrixEditor(o: {
  label: string; value: number[][]; rowNames: string[]; colNames?: string[]; step?: number;
  format?: (v: number) => string; onChange: (m: number[][]) => void; testid?: string;
}): HTMLElement {
  const m = o.value.map((r) => [...r]);
  const cols = m[0]?.length ?? 0;
  const head = h("tr", {}, h("th", { scope: "col" }, ""), ...(o.colNames ?? Array.from({ length: cols }, (_, j) => `${j}`)).map((c) => h("th", { scope: "col" }, c)));
  const body = m.map((row, i) => h("tr", {},
    h("th", { scope: "row" }, o.rowNames[i]),
    ...row.map((v, j) => {
      const input = h("input", {
        type: "number", step: o.step ?? 1, value: o.format ? o.format(v) : v, "aria-label": `${o.label} ${o.rowNames[i]}, column ${j}`,
        "data-testid": o.testid ? `${o.testid}-${i}-${j}` : undefined,
      });
      input.addEventListener("change", () => {
        const x = Number(input.value);
        if (!Number.isFinite(x)) return;
        m[i][j] = x;
        o.onChange(m.map((r) => [...r]));
      });
      return h("td", {}, input);
    })));
  return h("table", { class: "matrix-editor", "data-testid": o.testid },
    h("caption", {}, o.label), h("thead", {}, head), h("tbody", {}, ...body));
}

/**
 * "✓ rows of P sum to 1 (max |sum − 1| = 1e-7)" — a property of the maths, checked live. `ok = null`
 * means not decided yet (a computation still under way): no mark, only the text.
 */
export function check(testid: string): { el: HTMLElement; set: (ok: boolean | null, text: string) => void } {
  const mark = h("span", { class: "mark", "aria-hidden": "true" });
  const text = h("span", { class: "text" });
  const el = h("p", { class: "check", "data-testid": testid, role: "status" }, mark, text);
  return {
    el,
    set(ok, t) {
      el.dataset.ok = ok === null ? "pending" : String(ok);
      el.classList.toggle("fail", ok === false);
      el.classList.toggle("pending", ok === null);
      mark.textContent = ok === null ? "" : ok ? "✓" : "✗";
      text.textContent = t;
    },
  };
}

/** A row of controls. */
export function controls(...children: HTMLElement[]): HTMLElement {
  return h("div", { class: "controls" }, ...children);
}

/**
 * Show a new value in a slider or select made above (without firing its handler); `shown` is the
 * slider's read-out when it is not the value itself. A select missing the value gets it as an option.
 */
export function setControlValue(control: HTMLElement, value: string | number, shown = String(value)): void {
  const input = control.querySelector<HTMLInputElement | HTMLSelectElement>("input, select");
  if (input instanceof HTMLSelectElement && ![...input.options].some((o) => o.value === String(value))) {
    input.append(h("option", { value: String(value) }, String(value)));
  }
  if (input) input.value = String(value);
  const out = control.querySelector("output");
  if (out) out.textContent = shown;
}

/** Grey out a control (its input stays in the tab order of the page only when enabled). */
export function setControlDisabled(control: HTMLElement, disabled: boolean): void {
  const input = control.querySelector<HTMLInputElement | HTMLSelectElement>("input, select");
  if (input) input.disabled = disabled;
}
