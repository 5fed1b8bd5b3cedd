/**
 * Lesson 1: the lookup table. Keys, values and a query you can edit; the key equal to the query
 * picks one value. "Train" runs optimizer steps on a target output: the picked value moves toward
 * the target, while the gradients on the query and the keys are exactly 0 (the library's autograd
 * says so: a lookup is a step function of q and K), so a lookup table cannot learn what to look up.
 */
import { type Tensor, lookupAttention, mean, noGrad, pow, sub, tensor } from "attend";
import { rowsOf } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { chartWidth, lineChart } from "../ui/chart.js";
import { signedScale, textOn } from "../ui/colors.js";
import { button, check, controls, matrixEditor, slider } from "../ui/controls.js";
import { h, replace, s } from "../ui/dom.js";
import { fmt, fmtFixed, typographic } from "../ui/format.js";
import { HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { matrixPart } from "../ui/parts.js";
import { attachTip } from "../ui/tooltip.js";

const DEF = {
  q: [[1, 1]],
  K: [[1, 0], [0, 1], [1, 1], [0, 0]],
  V: [[0.8, -0.4, 0.1], [-0.6, 0.9, 0.3], [0.2, 0.5, -0.7], [-0.3, -0.2, 0.6]],
  target: [[1, 0, -1]],
};

interface Step {
  out: number[];
  chosen: number;
  loss: number;
  gq: Tensor;
  gK: Tensor;
  gV: Tensor;
}

/** One forward and backward pass: out = lookup(q, K, V), loss = mean((out - target)^2). */
function forwardBackward(q: Tensor, K: Tensor, V: Tensor, target: Tensor): Step {
  for (const t of [q, K, V]) t.grad = null;
  const out = lookupAttention(q, K, V, { match: "exact" }); // [1, E] [S, E] [S, Ev] -> [1, Ev]
  const loss = mean(pow(sub(out, target), 2));
  loss.backward();
  const chosen = matchOf(Array.from(q.values), rowsOf(K));
  return { out: Array.from(out.values), chosen, loss: loss.item(), gq: q.grad!, gK: K.grad!, gV: V.grad! };
}

/** The index of the first key equal to the query (what lookupAttention picks), or -1. */
function matchOf(q: number[], K: number[][]): number {
  return K.findIndex((k) => k.every((v, e) => v === q[e]));
}

/** How an entry is shown, in the editors and in the figure alike: "0.991", "-0.4" (the figure with a "−"). */
const entry = (v: number): string => fmtFixed(v, 3);

/**
 * The table as a picture: query → keys (= / ≠) → values → output. Side by side when `maxWidth` allows,
 * else stacked (the query above the keys, the output under the values) so a phone shows every number.
 */
function drawTable(q: number[], K: number[][], V: number[][], chosen: number, out: number[], maxWidth: number): SVGSVGElement {
  const rowH = 38, cw = 48, cellH = rowH - 8, mid = cellH / 2;
  const E = q.length, Ev = V[0].length, S = K.length;
  const narrow = 190 + E * cw + 90 + Ev * cw + 90 + Ev * cw + 20 > maxWidth;
  const kx = narrow ? 40 : 190;
  const vx = kx + E * cw + (narrow ? 36 : 90);
  const top = narrow ? 26 + rowH + 28 : 34; // y of the first key row
  const qx = narrow ? kx : 10, qy = narrow ? 26 : top + ((S - 1) * rowH) / 2;
  const ox = narrow ? vx : vx + Ev * cw + 90, oy = narrow ? top + S * rowH + 28 : qy;
  const width = narrow ? vx + Ev * cw + 20 : ox + Ev * cw + 20;
  const height = narrow ? oy + rowH : top + S * rowH + 20;
  const scale = signedScale(V.flat().concat(out));
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-export": "svg", "font-family": "system-ui, sans-serif", "font-size": 13, role: "group", "aria-label": "lookup table" });
  const label = (x: number, y: number, text: string): void => void svg.append(s("text", { x, y, "font-weight": 700, fill: "#111827" }, text));
  label(qx, narrow ? qy - 8 : 18, "query q");
  label(kx, top - 16, "keys K");
  label(vx, top - 16, "values V");
  label(ox, narrow ? oy - 8 : 18, chosen >= 0 ? `output = V[${chosen}]` : "output = 0 (no match)");
  const cellRow = (x: number, y: number, vals: number[], colour: ((v: number) => string) | null, dim: boolean, name: string): SVGGElement => {
    const g = s("g", { "data-matrix": name });
    vals.forEach((v, j) => {
      const fill = colour ? colour(v) : "#ffffff";
      g.append(s("rect", { x: x + j * cw, y, width: cw - 2, height: cellH, rx: 4, fill, stroke: "#6b7280" }));
      g.append(s("text", { x: x + j * cw + (cw - 2) / 2, y: y + mid, "text-anchor": "middle", "dominant-baseline": "central", "font-size": 12, fill: colour ? textOn(fill) : dim ? "#6b7280" : "#111827" }, typographic(entry(v))));
    });
    return g;
  };
  const amber = "#b45309";
  const qg = cellRow(qx, qy, q, null, false, "q");
  qg.setAttribute("tabindex", "0");
  attachTip(qg, () => `query q = [${q.map((v) => fmt(v)).join(", ")}]`);
  svg.append(qg);
  K.forEach((k, i) => {
    const y = top + i * rowH;
    const hit = i === chosen;
    const g = s("g", { tabindex: 0, "data-row": i, "data-hit": hit ? "1" : "0" });
    const link = { fill: "none", stroke: hit ? amber : "#d1d5db", "stroke-width": hit ? 3 : 1 };
    g.append(narrow
      ? s("path", { d: `M${qx - 4},${qy + mid}H${kx - 30}V${y + mid}H${kx - 22}`, ...link })
      : s("line", { x1: qx + E * cw, y1: qy + mid, x2: kx - 4, y2: y + mid, ...link }));
    g.append(s("text", { x: kx - (narrow ? 8 : 14), y: y + mid, "text-anchor": "end", "dominant-baseline": "central", fill: hit ? "#92400e" : "#6b7280", "font-weight": 700 }, hit ? "=" : "≠"));
    g.append(cellRow(kx, y, k, null, !hit, "K"));
    g.append(s("line", { x1: kx + E * cw, y1: y + mid, x2: vx - 4, y2: y + mid, stroke: hit ? amber : "#e5e7eb", "stroke-width": hit ? 3 : 1 }));
    g.append(cellRow(vx, y, V[i], scale, false, "V"));
    if (hit) {
      g.append(s("rect", { x: kx - 4, y: y - 4, width: E * cw + 6, height: rowH, rx: 6, fill: "none", stroke: amber, "stroke-width": 2.5 }));
      g.append(s("rect", { x: vx - 4, y: y - 4, width: Ev * cw + 6, height: rowH, rx: 6, fill: "none", stroke: amber, "stroke-width": 2.5 }));
      const vEnd = vx + Ev * cw + 4;
      g.append(narrow
        ? s("path", { d: `M${vEnd},${y + mid}H${vEnd + 10}V${oy + mid}H${vEnd - 2}`, fill: "none", stroke: amber, "stroke-width": 3 })
        : s("line", { x1: vEnd, y1: y + mid, x2: ox - 6, y2: qy + mid, stroke: amber, "stroke-width": 3 }));
    }
    attachTip(g, () => `key ${i} = [${k.map((v) => fmt(v)).join(", ")}] ${hit ? "matches" : "does not match"} the query\nvalue ${i} = [${V[i].map((v) => fmt(v)).join(", ")}]`);
    svg.append(g);
  });
  const og = cellRow(ox, oy, out, scale, false, "output");
  og.setAttribute("tabindex", "0");
  og.setAttribute("data-testid", "lookup-output");
  attachTip(og, () => `output = [${out.map((v) => fmt(v)).join(", ")}]`);
  svg.append(og);
  return svg;
}

export const lookupPage: Page = {
  id: "lookup",
  title: "Lookup table",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let q = state.matrix("q", DEF.q);
    let K = state.matrix("K", DEF.K);
    let V = state.matrix("V", DEF.V);
    let target = state.matrix("target", DEF.target);
    let lr = state.num("lr", 0.3, { min: 0.01, max: 1 });
    let steps = state.num("steps", 20, { min: 1, max: 200, int: true });
    let losses: number[] = [];
    let grads: Step | null = null;
    let timer = 0;

    root.append(
      h("h1", { tabindex: -1 }, "1. Lookup table"),
      h("p", { class: "lede" },
        "A dictionary is the simplest attention: compare the query with every key, and return the value of the key that matches exactly. ",
        "Edit the query or a key and watch which value lights up. Then train: the optimizer can move the chosen value toward a target, ",
        "but the gradients on the query and the keys are exactly zero, because nudging them a little never changes which key matches."),
      formula([
        String.raw`\mathrm{out}=V_{i^*},\quad i^*=\text{the } i \text{ with } K_i=q`,
        String.raw`\frac{\partial\,\mathrm{out}}{\partial q}=\frac{\partial\,\mathrm{out}}{\partial K}=0`,
        String.raw`\frac{\partial\,\mathrm{out}}{\partial V_{i^*}}=I`,
      ]),
    );
    const editors = h("div", { class: "row" });
    const trainBtn = button("Train", () => train(), { "data-testid": "train" });
    const resetBtn = button("Reset values", () => { V = DEF.V.map((r) => [...r]); losses = []; update(); }, { class: "secondary", "data-testid": "reset" });
    const status = h("span", { class: "note", "data-testid": "train-status", role: "status" }, "");
    root.append(
      controls(editors),
      controls(
        slider({ label: "Learning rate", min: 0.01, max: 1, step: 0.01, value: lr, onInput: (v) => { lr = v; state.set({ lr }); } }),
        slider({ label: "Steps", min: 1, max: 200, value: steps, onInput: (v) => { steps = v; state.set({ steps }); } }),
        trainBtn, resetBtn, status,
      ),
    );
    const tableFig = ctx.figure({
      id: "table", title: "Query → matching key → its value",
      data: () => ({ q, K, V, target, chosen: matchOf(q[0], K), output: grads?.out ?? null }),
    });
    const gradFig = ctx.figure({
      id: "grads", title: "Gradients of the loss (library autograd)",
      caption: "loss = mean((out − target)²); q and K get exactly 0, only the chosen value row gets a gradient.",
      data: () => ({ loss: losses, grad_q: grads && rowsOf(grads.gq), grad_K: grads && rowsOf(grads.gK), grad_V: grads && rowsOf(grads.gV) }),
    });
    const checkZero = check("zero-grads");
    root.append(tableFig.el, gradFig.el, checkZero.el);

    const gMaps = {
      q: new HeatMap({ rows: 1, cols: 2, values: [0, 0], scale: signedScale([], 1) }, { label: "∇q", axes: ["", "dim"], maxCell: 40, maxWidth: 120, digits: 17 }),
      K: new HeatMap({ rows: 4, cols: 2, values: new Array(8).fill(0), scale: signedScale([], 1) }, { label: "∇K", axes: ["key", "dim"], maxCell: 40, maxWidth: 120, digits: 17 }),
      V: new HeatMap({ rows: 4, cols: 3, values: new Array(12).fill(0), scale: signedScale([], 1) }, { label: "∇V", axes: ["value", "dim"], maxCell: 40, maxWidth: 160, digits: 17 }),
    };
    const lossBox = h("div", { class: "grow" });
    gradFig.body.append(h("div", { class: "row" },
      matrixPart("∇q", [1, 2], gMaps.q), matrixPart("∇K", [4, 2], gMaps.K), matrixPart("∇V", [4, 3], gMaps.V), lossBox));

    function drawEditors(): void {
      replace(editors,
        matrixEditor({ label: "query q", value: q, rowNames: ["q"], format: entry, onChange: (m) => { q = m; update(); }, testid: "edit-q" }),
        matrixEditor({ label: "keys K", value: K, rowNames: K.map((_, i) => `K${i}`), format: entry, onChange: (m) => { K = m; update(); }, testid: "edit-K" }),
        matrixEditor({ label: "values V", value: V, rowNames: V.map((_, i) => `V${i}`), step: 0.1, format: entry, onChange: (m) => { V = m; losses = []; update(); }, testid: "edit-V" }),
        matrixEditor({ label: "target", value: target, rowNames: ["t"], step: 0.1, format: entry, onChange: (m) => { target = m; update(); }, testid: "edit-target" }));
    }

    /** Leaves for autograd, float64 so "exactly 0" is not a rounding artefact. */
    function leaves(): [Tensor, Tensor, Tensor, Tensor] {
      return [
        tensor(q, undefined, { dtype: "float64", requiresGrad: true }),
        tensor(K, undefined, { dtype: "float64", requiresGrad: true }),
        tensor(V, undefined, { dtype: "float64", requiresGrad: true }),
        tensor(target, undefined, { dtype: "float64" }),
      ];
    }

    function showGrads(st: Step): void {
      grads = st;
      const bound = Math.max(1e-9, ...Array.from(st.gV.values, Math.abs));
      gMaps.q.update({ values: st.gq.values, scale: signedScale([], bound) });
      gMaps.K.update({ values: st.gK.values, scale: signedScale([], bound) });
      gMaps.V.update({ values: st.gV.values, scale: signedScale([], bound) });
      const maxQK = Math.max(...Array.from(st.gq.values, Math.abs), ...Array.from(st.gK.values, Math.abs));
      const exact = [...st.gq.values, ...st.gK.values].every((g) => g === 0);
      checkZero.set(exact, `every entry of ∇q and ∇K is exactly 0 (largest |g| = ${maxQK}); |∇V| is largest on row ${st.chosen >= 0 ? st.chosen : "–"} (${fmt(bound)})`);
      replace(lossBox, losses.length > 1
        ? lineChart({ width: chartWidth(lossBox, 360), height: 190, label: "loss per step", series: [{ name: "loss", colour: "#1d4ed8", points: losses.map((l, i) => [i, l] as const) }], x: { label: "step", format: (v) => String(v) }, y: { label: "loss", format: (v) => fmt(v, 2) } })
        : h("p", { class: "note" }, "Press Train to see the loss fall."));
    }

    function update(): void {
      state.set({ q, K, V, target });
      drawEditors();
      const [tq, tK, tV, tt] = leaves();
      const st = forwardBackward(tq, tK, tV, tt);
      replace(tableFig.body, drawTable(q[0], K, V, st.chosen, st.out, tableFig.body.clientWidth || Infinity));
      showGrads(st);
    }

    /** SGD on q, K and V together: only V can move. Animated a step at a time. */
    function train(): void {
      clearInterval(timer);
      const [tq, tK, tV, tt] = leaves();
      let done = 0;
      trainBtn.disabled = true;
      status.textContent = "training…";
      timer = window.setInterval(() => {
        const st = forwardBackward(tq, tK, tV, tt);
        losses.push(st.loss);
        noGrad(() => {
          for (const p of [tq, tK, tV]) for (let i = 0; i < p.size; i++) p.values[i] -= lr * p.grad!.values[i];
        });
        q = rowsOf(tq);
        K = rowsOf(tK);
        V = rowsOf(tV);
        replace(tableFig.body, drawTable(q[0], K, V, st.chosen, st.out, tableFig.body.clientWidth || Infinity));
        showGrads(st);
        if (++done >= steps) {
          clearInterval(timer);
          trainBtn.disabled = false;
          status.textContent = `done: ${done} steps, loss ${fmt(st.loss)}; q and K unchanged`;
          update();
        }
      }, 40);
    }
    ctx.onDispose(() => clearInterval(timer));
    update();
  },
};
