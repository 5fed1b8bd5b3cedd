/**
 * Lesson 2: attention as paint mixing. The values are paint pots (RGB colours), the weights say how
 * much of each pot is poured, the output is the mixed colour. Drag the query: its dot product with
 * each pot's key decides the pour. The temperature T goes from a uniform mix (large T) to a
 * one-pot lookup (small T); the arrows on the query are the gradients of the output's R, G and B
 * with respect to the query (from the library's autograd) and shrink to nothing as the mix becomes
 * a lookup.
 */
import { type Tensor, scaledDotProductAttentionWithWeights, tensor } from "attend";
import type { Page, PageContext } from "../page.js";
import { hexOf, rgbOf } from "../ui/colors.js";
import { controls, slider } from "../ui/controls.js";
import { h, replace, s } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { formula } from "../ui/math.js";
import { attachTip } from "../ui/tooltip.js";

const KEYS = [[1, 0], [0, 1], [-1, 0], [0, -1]];
const DEFAULT_POTS = ["#d62828", "#f6c90e", "#1d4ed8", "#f8fafc"];
const POT_NAMES = ["pot 0", "pot 1", "pot 2", "pot 3"];

interface Mix {
  weights: number[];
  out: number[];
  /** d out[c] / d q, one [dx, dy] per channel (R, G, B) */
  jacobian: number[][];
}

/** out = softmax(q·Kᵀ / T) V, and the gradient of each output channel with respect to q. */
function mix(q: [number, number], T: number, pots: string[]): Mix {
  const K = tensor(KEYS, undefined, { dtype: "float64" });
  const V = tensor(pots.map((p) => rgbOf(p).map((c) => c / 255)), undefined, { dtype: "float64" });
  const jacobian: number[][] = [];
  let weights: number[] = [];
  let out: number[] = [];
  for (let c = 0; c < 3; c++) {
    const qt: Tensor = tensor([q], undefined, { dtype: "float64", requiresGrad: true });
    const [o, w] = scaledDotProductAttentionWithWeights(qt, K, V, { scale: 1 / T }); // [1, 3], [1, 4]
    const seed = tensor([[0, 0, 0]], undefined, { dtype: "float64" });
    seed.values[c] = 1;
    o.backward(seed); // d out[c] / d q
    jacobian.push(Array.from(qt.grad!.values));
    weights = Array.from(w.values);
    out = Array.from(o.values);
  }
  return { weights, out, jacobian };
}

const SIZE = 380;
const SPAN = 1.6; // the plane shows [-SPAN, SPAN]²
const toPx = (v: number): number => SIZE / 2 + (v / SPAN) * (SIZE / 2 - 20);
const toPy = (v: number): number => SIZE / 2 - (v / SPAN) * (SIZE / 2 - 20);
const ARROW_PX_PER_UNIT = 300;
const ARROW_MAX = 160;
/** The arrows ∂R/∂q, ∂G/∂q, ∂B/∂q (dark enough to read on white). */
const ARROW_COLOURS = ["#b91c1c", "#a16207", "#1d4ed8"];
const ARROW_NAMES = ["∂R/∂q", "∂G/∂q", "∂B/∂q"];

export const mixingPage: Page = {
  id: "mixing",
  title: "Paint mixing",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let q: [number, number] = [state.num("qx", 0.6, { min: -SPAN, max: SPAN }), state.num("qy", 0.3, { min: -SPAN, max: SPAN })];
    let T = state.num("T", 1, { min: 0.01, max: 100 });
    const pots = DEFAULT_POTS.map((d, i) => {
      const v = state.str(`c${i}`, d.slice(1));
      return /^[0-9a-f]{6}$/i.test(v) ? `#${v}` : d;
    });
    let m = mix(q, T, pots);

    root.append(
      h("h1", { tabindex: -1 }, "2. Paint mixing"),
      h("p", { class: "lede" },
        "Soft attention mixes instead of picking. Each value is a pot of paint; the query's dot product with each pot's key, divided by a temperature T, ",
        "goes through a softmax to say how much of each pot is poured. Drag the query (or focus it and use the arrow keys). ",
        "At high temperature every pot pours equally; as T falls the mix turns into a lookup of the nearest pot, and the gradient arrows ",
        "(how the output colour would change if the query moved) shrink to nothing: a lookup cannot be learned by gradient descent."),
      formula([
        String.raw`w=\mathrm{softmax}\!\Big(\frac{q K^{\top}}{T}\Big)`,
        String.raw`\mathrm{colour}=\sum_i w_i\,V_i`,
        String.raw`\frac{\partial\,\mathrm{colour}}{\partial q}=\frac{1}{T}\sum_i w_i\,V_i\,(K_i-\textstyle\sum_j w_j K_j)^{\top}`,
      ]),
    );
    const potInputs = pots.map((p, i) => {
      const input = h("input", { type: "color", value: p, "aria-label": `colour of ${POT_NAMES[i]}` });
      input.addEventListener("input", () => { pots[i] = input.value; update(); });
      return h("div", { class: "control" }, h("label", {}, POT_NAMES[i]), input);
    });
    const tSlider = slider({
      label: "Temperature T", min: -2, max: 1.3, step: 0.01, value: Math.log10(T), format: (v) => fmt(10 ** v, 3),
      onInput: (v) => { T = 10 ** v; update(); }, testid: "temperature",
    });
    root.append(controls(tSlider, ...potInputs));
    const fig = ctx.figure({
      id: "mix", title: "Query, pots and the mixed colour",
      caption: "Line width and the bars show how much of each pot is poured; arrows are ∂R/∂q, ∂G/∂q, ∂B/∂q.",
      data: () => ({ query: q, temperature: T, keys: KEYS, pots: pots.map((p) => rgbOf(p).map((c) => c / 255)), weights: m.weights, output: m.out, jacobian: m.jacobian }),
    });
    const readout = h("p", { class: "note", "data-testid": "grad-norm", role: "status" });
    root.append(fig.el, readout);
    // The plane's <svg> lives as long as the page and only its contents are redrawn, so a drag keeps its
    // pointer capture and listeners while the query moves. It shrinks to fit a narrow screen.
    const svg = s("svg", {
      width: SIZE, height: SIZE, viewBox: `0 0 ${SIZE} ${SIZE}`, "data-export": "svg", "font-family": "system-ui, sans-serif", "font-size": 12,
      role: "group", "aria-label": "query plane", "data-testid": "query-plane", style: "width:100%;height:auto;touch-action:none;display:block",
    });
    const plane = h("div", { style: `flex:1 1 280px;max-width:${SIZE}px;min-width:0` }, svg);
    const side = h("div", { class: "col", style: "flex:0 1 260px;min-width:0" });
    fig.body.append(h("div", { class: "row" }, plane, side));
    let dragging: number | null = null;
    const dragTo = (ev: PointerEvent): void => {
      const r = svg.getBoundingClientRect();
      const px = ((ev.clientX - r.left) * SIZE) / r.width, py = ((ev.clientY - r.top) * SIZE) / r.height;
      moveTo(((px - SIZE / 2) / (SIZE / 2 - 20)) * SPAN, (-(py - SIZE / 2) / (SIZE / 2 - 20)) * SPAN, false);
    };
    svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      e.preventDefault(); // no text selection while dragging
      dragging = e.pointerId;
      svg.setPointerCapture(e.pointerId);
      dragTo(e);
    });
    svg.addEventListener("pointermove", (e) => { if (e.pointerId === dragging) dragTo(e); });
    const drop = (e: PointerEvent): void => { if (e.pointerId === dragging) dragging = null; };
    svg.addEventListener("pointerup", drop);
    svg.addEventListener("pointercancel", drop);

    function drawPlane(): void {
      svg.replaceChildren();
      svg.append(s("rect", { width: SIZE, height: SIZE, fill: "#ffffff", stroke: "#d1d5db" }));
      svg.append(s("line", { x1: toPx(-SPAN), x2: toPx(SPAN), y1: toPy(0), y2: toPy(0), stroke: "#e5e7eb" }));
      svg.append(s("line", { x1: toPx(0), x2: toPx(0), y1: toPy(-SPAN), y2: toPy(SPAN), stroke: "#e5e7eb" }));
      const qx = toPx(q[0]), qy = toPy(q[1]);
      KEYS.forEach((k, i) => {
        const w = m.weights[i];
        svg.append(s("line", { x1: qx, y1: qy, x2: toPx(k[0]), y2: toPy(k[1]), stroke: "#374151", "stroke-opacity": 0.25 + 0.75 * w, "stroke-width": 0.5 + 10 * w }));
      });
      KEYS.forEach((k, i) => {
        const g = s("g", { tabindex: 0 });
        g.append(s("circle", { cx: toPx(k[0]), cy: toPy(k[1]), r: 22, fill: pots[i], stroke: "#111827", "stroke-width": 1.5 }));
        g.append(s("text", { x: toPx(k[0]), y: toPy(k[1]) + 36, "text-anchor": "middle", fill: "#111827" }, `${POT_NAMES[i]}: ${fmt(m.weights[i], 3)}`));
        attachTip(g, () => `${POT_NAMES[i]}  key [${k.join(", ")}]\nq·k / T = ${fmt((q[0] * k[0] + q[1] * k[1]) / T)}\nweight ${fmt(m.weights[i])}`);
        svg.append(g);
      });
      ARROW_COLOURS.forEach((colour, c) => {
        const [gx, gy] = m.jacobian[c];
        const len = Math.hypot(gx, gy) * ARROW_PX_PER_UNIT;
        if (len < 0.5) return;
        const f = Math.min(len, ARROW_MAX) / len;
        const ex = qx + gx * ARROW_PX_PER_UNIT * f, ey = qy - gy * ARROW_PX_PER_UNIT * f;
        const ang = Math.atan2(ey - qy, ex - qx);
        svg.append(s("line", { x1: qx, y1: qy, x2: ex, y2: ey, stroke: colour, "stroke-width": 2.5, "data-arrow": ARROW_NAMES[c] }));
        svg.append(s("path", { d: `M${ex},${ey}L${ex - 9 * Math.cos(ang - 0.4)},${ey - 9 * Math.sin(ang - 0.4)}L${ex - 9 * Math.cos(ang + 0.4)},${ey - 9 * Math.sin(ang + 0.4)}Z`, fill: colour }));
      });
      const handle = s("g", { tabindex: 0, role: "slider", "aria-label": "query position (arrow keys move it)", "aria-valuetext": `q = (${fmt(q[0], 3)}, ${fmt(q[1], 3)})`, "data-testid": "query-handle", style: "cursor:grab" });
      handle.append(s("circle", { cx: qx, cy: qy, r: 11, fill: hexOf(m.out), stroke: "#111827", "stroke-width": 2.5 }));
      handle.append(s("text", { x: qx + 14, y: qy - 12, fill: "#111827", "font-weight": 700 }, "q"));
      attachTip(handle, () => `q = (${fmt(q[0], 3)}, ${fmt(q[1], 3)})`);
      handle.addEventListener("keydown", (e) => {
        const d = e.shiftKey ? 0.2 : 0.05;
        const mv: Record<string, [number, number]> = { ArrowLeft: [-d, 0], ArrowRight: [d, 0], ArrowUp: [0, d], ArrowDown: [0, -d] };
        const step = mv[e.key];
        if (!step) return;
        e.preventDefault();
        moveTo(q[0] + step[0], q[1] + step[1], true);
      });
      svg.append(handle);
    }

    function drawSide(): Element[] {
      const bar = s("svg", { width: 260, height: 40, viewBox: "0 0 260 40", "data-export": "svg", role: "img", "aria-label": "how much of each pot is poured" });
      let x = 0;
      m.weights.forEach((w, i) => {
        const r = s("rect", { x, y: 0, width: Math.max(0, 260 * w), height: 40, fill: pots[i], stroke: "#111827", "stroke-width": 0.5 });
        bar.append(r);
        x += 260 * w;
      });
      const sw = h("div", { class: "swatch", "data-export": "box", style: `background:${hexOf(m.out)};width:120px;height:120px`, tabindex: 0, "data-testid": "mixed-colour" });
      attachTip(sw, () => `mixed colour ${hexOf(m.out)}\nR ${fmt(m.out[0])}  G ${fmt(m.out[1])}  B ${fmt(m.out[2])}`);
      attachTip(bar, () => m.weights.map((w, i) => `${POT_NAMES[i]}: ${fmt(w)}`).join("\n"));
      return [
        h("span", { class: "part-title", "data-export": "text" }, "arrows on q: how the mix would change"), arrowKey(),
        h("span", { class: "part-title", "data-export": "text", style: "margin-top:10px" }, "poured (weights)"), bar,
        h("span", { class: "part-title", "data-export": "text", style: "margin-top:10px" }, "mixed colour"), sw,
        h("span", { class: "note", "data-export": "text" }, `${hexOf(m.out)} = Σ wᵢ Vᵢ`),
      ];
    }

    /** Which arrow is which colour: each is the gradient of one channel of the mixed colour. */
    function arrowKey(): SVGSVGElement {
      const key = s("svg", { width: 260, height: 22, viewBox: "0 0 260 22", "data-export": "svg", "font-family": "system-ui, sans-serif", "font-size": 12, role: "img", "aria-label": "arrow colours: red ∂R/∂q, amber ∂G/∂q, blue ∂B/∂q", "data-testid": "arrow-key" });
      ARROW_COLOURS.forEach((colour, c) => {
        const x = c * 86;
        key.append(s("line", { x1: x + 2, y1: 11, x2: x + 22, y2: 11, stroke: colour, "stroke-width": 2.5 }));
        key.append(s("path", { d: `M${x + 28},11L${x + 20},7L${x + 20},15Z`, fill: colour }));
        key.append(s("text", { x: x + 32, y: 11, "dominant-baseline": "central", fill: colour, "font-weight": 700, "data-arrow": ARROW_NAMES[c] }, ARROW_NAMES[c]));
      });
      return key;
    }

    function moveTo(x: number, y: number, focus: boolean): void {
      q = [Math.max(-SPAN, Math.min(SPAN, x)), Math.max(-SPAN, Math.min(SPAN, y))];
      update();
      if (focus) svg.querySelector<SVGGElement>("[data-testid=query-handle]")?.focus();
    }

    function update(): void {
      state.set({ qx: +q[0].toFixed(3), qy: +q[1].toFixed(3), T: +T.toPrecision(4), ...Object.fromEntries(pots.map((p, i) => [`c${i}`, p.slice(1)])) });
      m = mix(q, T, pots);
      drawPlane();
      replace(side, ...drawSide());
      const norm = Math.hypot(...m.jacobian.flat());
      readout.dataset.value = String(norm);
      readout.textContent = `‖∂colour/∂q‖ = ${fmt(norm)} at T = ${fmt(T, 3)}; largest weight ${fmt(Math.max(...m.weights), 4)}` +
        (Math.max(...m.weights) > 0.999 ? " (a lookup: the gradient has vanished)" : "");
    }
    update();
  },
};
