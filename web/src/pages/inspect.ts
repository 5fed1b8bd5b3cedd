/**
 * Lesson 9: inspect a model. Train a tiny transformer in this tab on a small task (live loss
 * curve), or load a safetensors checkpoint, and browse its attention maps by layer and head for any
 * input. The model itself lives in ../model (the page talks to it through train steps, inspect() and
 * the checkpoint functions), so it can be replaced by the library's models later.
 */
import { Generator } from "attend";
import { Adam } from "../model/optim.js";
import { loadCheckpoint, saveCheckpoint, type LoadedCheckpoint } from "../model/checkpoint.js";
import { TASKS, VOCAB, parseDigits, sampleBatch, taskById } from "../model/tasks.js";
import { type TinyConfig, TinyTransformer } from "../model/tiny.js";
import { rowsOf } from "../lib.js";
import type { Page, PageContext } from "../page.js";
import { lineChart } from "../ui/chart.js";
import { HEAD_COLOURS, weightScale } from "../ui/colors.js";
import { button, controls, seedControl, select, setControlValue, slider } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { HeatMap } from "../ui/heatmap.js";
import { formula } from "../ui/math.js";
import { tokenLines } from "../ui/tokenLines.js";

const SEQ = 8;

/** The loss curve a checkpoint carries in its metadata (our own checkpoints do), or none. */
function lossHistory(text: string | undefined): number[] {
  try {
    const v: unknown = JSON.parse(text ?? "[]");
    return Array.isArray(v) && v.every((x) => typeof x === "number") ? v : [];
  } catch {
    return [];
  }
}
const BATCH = 16;

export const inspectPage: Page = {
  id: "inspect",
  title: "Inspect a model",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let taskId = state.choice("task", "reverse", TASKS.map((t) => t.id));
    let layers = state.num("layers", 1, { min: 1, max: 3, int: true });
    let heads = state.choice("heads", 2, [1, 2, 4] as const);
    let width = state.choice("width", 16, [16, 32] as const);
    let seed = state.num("seed", 1, { min: 0, int: true });
    let lr = state.num("lr", 0.01, { min: 0.0005, max: 0.05 });
    let target = state.num("steps", 200, { min: 10, max: 2000, int: true });
    let input = state.str("input", "31415926");
    let layer = state.num("layer", 0, { min: 0, max: 2, int: true });
    let head = state.num("head", 0, { min: 0, max: 3, int: true });

    let model: TinyTransformer;
    let opt: Adam;
    let batches: Generator;
    let losses: number[] = [];
    let source = "";
    let loaded: LoadedCheckpoint | null = null;
    let running = false;
    let timer = 0;

    root.append(
      h("h1", { tabindex: -1 }, "9. Inspect a model"),
      h("p", { class: "lede" },
        "Attention maps are most telling in a trained model. Train a tiny transformer here, in this tab, on a task whose solution is an attention pattern: ",
        "reversing digits needs each position to look at its mirror image; copying the previous token needs a look one step back. ",
        "Or load a safetensors checkpoint. Then type any input and browse the maps by layer and head."),
      formula(String.raw`\mathcal{L}=-\frac{1}{BL}\sum_{b,l}\log \mathrm{softmax}(\mathrm{logits}_{b,l})_{y_{b,l}},\qquad A^{(\ell,h)}=\mathrm{softmax}\!\Big(\frac{Q^{(\ell,h)}K^{(\ell,h)\top}}{\sqrt{d}}\Big)`),
    );
    const rebuild = (): void => { stop(); fresh(); };
    const trainBtn = button("Train", () => (running ? stop() : start()), { "data-testid": "train" });
    const status = h("span", { class: "note", "data-testid": "train-status", role: "status" });
    const fileInput = h("input", { type: "file", accept: ".safetensors,application/octet-stream", "data-testid": "load-file", "aria-label": "Load a safetensors checkpoint" });
    fileInput.addEventListener("change", () => { const f = fileInput.files?.[0]; if (f) void loadFile(f); });
    const drop = h("div", { class: "dropzone", "data-testid": "dropzone" }, h("label", {}, "Load a checkpoint (.safetensors): ", fileInput), h("span", { class: "note" }, " or drop it here."));
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); const f = e.dataTransfer?.files[0]; if (f) void loadFile(f); });
    const modelControls = {
      task: select({ label: "Task", options: TASKS.map((t) => t.id), names: (id) => taskById(id).name, value: taskId, onChange: (v) => { taskId = v; rebuild(); }, testid: "task" }),
      layers: slider({ label: "Layers", min: 1, max: 3, value: layers, onInput: (v) => { layers = v; rebuild(); } }),
      heads: select({ label: "Heads", options: [1, 2, 4] as const, value: heads, onChange: (v) => { heads = v; rebuild(); } }),
      width: select({ label: "Width", options: [16, 32] as const, value: width, onChange: (v) => { width = v; rebuild(); } }),
    };
    root.append(
      controls(...Object.values(modelControls), seedControl(seed, (v) => { seed = v; rebuild(); })),
      controls(
        slider({ label: "Learning rate", min: -3.3, max: -1.3, step: 0.1, value: Math.log10(lr), format: (v) => fmt(10 ** v, 2), onInput: (v) => { lr = 10 ** v; if (opt) opt.lr = lr; save(); } }),
        slider({ label: "Train to step", min: 10, max: 2000, step: 10, value: target, onInput: (v) => { target = v; save(); }, testid: "steps" }),
        trainBtn,
        button("Reset", rebuild, { class: "secondary", "data-testid": "reset" }),
        button("Save checkpoint", () => downloadCheckpoint(), { class: "secondary", "data-testid": "save-checkpoint" }),
        status,
      ),
      drop,
    );
    const lossFig = ctx.figure({ id: "loss", title: "Training loss (cross-entropy per token)", data: () => ({ task: taskId, batch: BATCH, lr, losses }) });
    const inputBox = h("input", { type: "text", value: input, size: 14, "aria-label": "input digits", "data-testid": "input" });
    inputBox.addEventListener("change", () => { input = inputBox.value; save(); drawMaps(); });
    const io = h("p", { "data-testid": "prediction", class: "note" });
    const mapsFig = ctx.figure({ id: "maps", title: "Attention maps by layer (rows) and head (columns)", caption: "Click a map (or focus it and press Enter) to enlarge it.", data: () => mapsData });
    const focusFig = ctx.figure({ id: "focus", title: "Selected map", data: () => ({ layer, head, tokens: digits(), weights: mapsData.maps[layer]?.[head] ?? null }) });
    const ckptInfo = h("div", { "data-testid": "checkpoint-info" });
    root.append(lossFig.el, controls(h("div", { class: "control" }, h("label", {}, "Input"), inputBox), io), mapsFig.el, focusFig.el, ckptInfo);

    let mapsData: { source: string; input: number[]; predictions: number[]; maps: number[][][][] } = { source: "", input: [], predictions: [], maps: [] };
    const digits = (): number[] => parseDigits(input, model?.config.maxLen ?? SEQ);

    function save(): void {
      state.set({ task: taskId, layers, heads, width, seed, lr: +lr.toPrecision(3), steps: target, input, layer, head });
    }

    function config(): TinyConfig {
      return { vocab: VOCAB.length, maxLen: SEQ, width, heads, layers, causal: taskById(taskId).causal };
    }

    function fresh(): void {
      model = new TinyTransformer(config(), seed);
      opt = new Adam(model.parameters(), lr);
      batches = new Generator(seed + 1);
      losses = [];
      loaded = null;
      source = `a new ${layers}-layer, ${heads}-head model (seed ${seed}), untrained`;
      save();
      drawAll();
    }

    function trainStep(): void {
      const { x, y } = sampleBatch(taskById(taskId), BATCH, model.config.maxLen, batches);
      opt.zeroGrad();
      const { loss } = model.loss(x, y, BATCH);
      loss.backward();
      opt.step();
      losses.push(loss.item());
    }

    function start(): void {
      if (losses.length >= target) target = losses.length + 100;
      running = true;
      model.train();
      trainBtn.textContent = "Pause";
      const loop = (): void => {
        if (!running) return;
        const t0 = performance.now();
        while (performance.now() - t0 < 40 && losses.length < target) trainStep();
        source = `the model trained here on "${taskById(taskId).name}"`;
        drawLoss();
        if (losses.length % 20 < 3 || losses.length >= target) drawMaps();
        if (losses.length >= target) stop();
        else timer = window.setTimeout(loop, 0);
      };
      loop();
    }

    function stop(): void {
      running = false;
      clearTimeout(timer);
      trainBtn.textContent = "Train";
      drawStatus();
    }

    function drawStatus(): void {
      const last = losses[losses.length - 1];
      status.dataset.step = String(losses.length);
      status.dataset.running = String(running);
      if (last !== undefined) status.dataset.loss = String(last);
      status.textContent = `${running ? "training" : "stopped"}: step ${losses.length} of ${target}${last !== undefined ? `, loss ${fmt(last, 3)} (first ${fmt(losses[0], 3)})` : ""}`;
    }

    function drawLoss(): void {
      drawStatus();
      replace(lossFig.body, losses.length > 1
        ? lineChart({ width: 640, height: 240, label: "training loss", legend: "top-right", series: [{ name: "loss", colour: "#1d4ed8", points: losses.map((l, i) => [i + 1, l] as const) }], x: { label: "step", format: (v) => String(v) }, y: { label: "loss", format: (v) => fmt(v, 2) } })
        : h("p", { class: "note" }, "Press Train: the loss starts near ln 10 ≈ 2.3 (a uniform guess over ten digits) and falls as the model finds the pattern."));
    }

    function drawMaps(): void {
      const x = digits();
      const was = model.training;
      model.eval();
      const { maps, predictions } = model.inspect(x);
      if (was) model.train();
      const c = model.config;
      layer = Math.min(layer, c.layers - 1);
      head = Math.min(head, c.heads - 1);
      const labels = x.map(String);
      mapsData = { source, input: x, predictions, maps: maps.map((m) => Array.from({ length: c.heads }, (_, i) => rowsOf(m.slice(0, i, i + 1).reshape(x.length, x.length)))) };
      const want = taskById(taskId).target(x);
      io.textContent = `input ${x.join(" ")} → model ${predictions.join(" ")} (task answer ${want.join(" ")}; ${predictions.filter((p, i) => p === want[i]).length}/${x.length} right). Source: ${source}.`;
      const grid = maps.map((m, l) => h("div", { class: "row", style: "align-items:center" },
        h("span", { class: "part-title", "data-export": "text", style: "width:5em" }, `layer ${l}`),
        ...Array.from({ length: c.heads }, (_, hh) => {
          const w = m.slice(0, hh, hh + 1);
          const map = new HeatMap({ rows: x.length, cols: x.length, values: w.data, scale: weightScale(1), rowLabels: labels, colLabels: labels, highlights: l === layer && hh === head ? [{ r0: 0, r1: x.length, c0: 0, c1: x.length, colour: "#d97706" }] : [] }, { label: `layer ${l} head ${hh}`, axes: ["query", "key"], maxCell: 16, maxWidth: 160, showValues: false });
          map.el.dataset.testid = `map-${l}-${hh}`;
          const pick = (): void => { layer = l; head = hh; save(); drawMaps(); };
          map.el.addEventListener("click", pick);
          map.el.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
          return h("div", { class: "col" }, h("span", { class: "part-title", "data-export": "text", style: `color:${HEAD_COLOURS[hh]}` }, `head ${hh}`), map.el);
        })));
      replace(mapsFig.body, ...grid);
      const sel = maps[layer].slice(0, head, head + 1);
      const big = new HeatMap({ rows: x.length, cols: x.length, values: sel.data, scale: weightScale(1), rowLabels: labels, colLabels: labels }, { label: `layer ${layer} head ${head}`, axes: ["query", "key"], maxCell: 40, maxWidth: 360 });
      const lines = tokenLines({ queries: labels, keys: labels, weights: sel.data, width: 420, label: `layer ${layer} head ${head} as lines`, colour: HEAD_COLOURS[head] });
      replace(focusFig.body, h("p", { class: "part-title", "data-export": "text" }, `layer ${layer}, head ${head}`), h("div", { class: "row" }, big.el, lines));
    }

    function drawCheckpoint(): void {
      if (!loaded) {
        replace(ckptInfo);
        return;
      }
      replace(ckptInfo, h("h2", {}, "Checkpoint contents"),
        loaded.model ? h("p", { class: "check" }, "✓ loaded: the maps above are this checkpoint's") : h("p", { class: "error", role: "alert" }, loaded.reason),
        h("p", { class: "note" }, `metadata: ${JSON.stringify(loaded.metadata)}`),
        h("table", { class: "numbers" }, h("thead", {}, h("tr", {}, h("th", {}, "tensor"), h("th", {}, "dtype"), h("th", {}, "shape"))),
          h("tbody", {}, ...loaded.tensors.map((t) => h("tr", {}, h("td", { style: "text-align:left" }, t.name), h("td", {}, t.dtype), h("td", {}, `[${t.shape.join(", ")}]`))))));
    }

    function drawAll(): void {
      drawLoss();
      drawMaps();
      drawCheckpoint();
    }

    function downloadCheckpoint(): void {
      const bytes = saveCheckpoint(model, {
        task: taskId, step: String(losses.length), heads: String(model.config.heads), causal: String(model.config.causal),
        losses: JSON.stringify(losses.map((l) => +l.toPrecision(6))),
      });
      const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: "application/octet-stream" }));
      const a = h("a", { href: url, download: `attend-tiny-${taskId}-step${losses.length}.safetensors`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    }

    async function loadFile(file: File): Promise<void> {
      stop();
      try {
        loaded = loadCheckpoint(new Uint8Array(await file.arrayBuffer()));
      } catch (err) {
        loaded = { tensors: [], metadata: {}, model: null, reason: `Could not read ${file.name}: ${(err as Error).message}` };
      }
      if (loaded.model) {
        model = loaded.model;
        opt = new Adam(model.parameters(), lr);
        const t = loaded.metadata.task;
        if (t && TASKS.some((k) => k.id === t)) taskId = t;
        source = `the checkpoint ${file.name}${loaded.metadata.step ? ` (step ${loaded.metadata.step})` : ""}`;
        losses = lossHistory(loaded.metadata.losses);
        ({ layers, heads, width } = model.config as { layers: number; heads: 1 | 2 | 4; width: 16 | 32 });
        setControlValue(modelControls.task, taskId);
        setControlValue(modelControls.layers, layers);
        setControlValue(modelControls.heads, heads);
        setControlValue(modelControls.width, width);
        save();
      }
      status.textContent = loaded.model ? `loaded ${file.name}` : `could not use ${file.name}`;
      status.dataset.loaded = String(Boolean(loaded.model));
      drawLoss();
      drawMaps();
      drawCheckpoint();
      status.textContent = loaded.model ? `loaded ${file.name}` : `could not use ${file.name}`;
    }

    ctx.onDispose(stop);
    fresh();
  },
};
