/**
 * Lesson 9: inspect a model. Load a checkpoint written by `attend train` (any model kind it writes:
 * tiny, gpt, encdec), or train one here on the same tasks (live loss curve) and save it in the same
 * format, for `attend eval`, `attend sample` and `attend train --resume`; then type any input and
 * browse the attention maps by layer and head. Everything is the library's: the run (makeData,
 * makeModel, AdamW, the schedule) in ../model/run.ts, checkpoints in ../model/checkpoint.ts, the
 * maps (attentionMaps, sampleTokens) in ../model/probe.ts.
 */
import { DATA_NAMES, type Evaluation, data, evaluateModel, modelKinds } from "attend";
import { type ReadCheckpoint, checkpointBytes, lossHistory, readCheckpoint } from "../model/checkpoint.js";
import { type Probe, probe } from "../model/probe.js";
import { Run, modelSizes } from "../model/run.js";
import type { Page, PageContext } from "../page.js";
import { lineChart } from "../ui/chart.js";
import { button, controls, seedControl, select, setControlDisabled, setControlValue, slider } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { formula } from "../ui/math.js";
import { focusView, mapGrid, mapsAsArrays, modelInfo } from "./inspectView.js";

const WIDTHS = [16, 32, 64] as const;
const HEADS = [1, 2, 4] as const;
const BATCHES = [8, 16, 32, 64] as const;
const KIND_NAMES: Record<string, string> = { tiny: "tiny (one attention block)", gpt: "gpt (decoder-only)", encdec: "encdec (encoder-decoder)" };
/** training runs this long between two paints */
const CHUNK_MS = 30;

/** An input the run's task accepts: its first validation example (names: a name's first two letters). */
function exampleInput(run: Run): string {
  const e = run.data.validation[0];
  if (e === undefined) return "";
  return run.config.task === "names" ? run.data.vocab.decode(e.target).slice(0, 2) : run.data.vocab.decode(e.source);
}

const article = (word: string): string => (/^[aeiou]/i.test(word) ? "an" : "a");

function taskDescription(run: Run): string {
  if (run.config.task === "names") return "first names, one character at a time (the input is the start of a name)";
  return data.makeTask(run.config.task, run.config.taskOptions ?? {}).description;
}

export const inspectPage: Page = {
  id: "inspect",
  title: "Inspect a model",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let task: string = state.choice("task", "reverse", DATA_NAMES);
    let kind = state.choice("model", "tiny", modelKinds());
    let width: number = state.choice("width", 32, WIDTHS);
    let heads: number = state.choice("heads", 2, HEADS);
    let layers = state.num("layers", 2, { min: 1, max: 4, int: true });
    let seed = state.num("seed", 0, { min: 0, int: true });
    let lr = state.num("lr", 0.003, { min: 1e-4, max: 0.05 });
    let batch: number = state.choice("batch", 32, BATCHES);
    let target = state.num("steps", 200, { min: 10, max: 2000, int: true });
    let input: string | null = state.has("input") ? state.str("input", "") : null;
    let layer = state.num("layer", 0, { min: 0, int: true });
    let head = state.num("head", 0, { min: 0, int: true });

    let run: Run;
    /** where the model on show came from, in words */
    let origin = "";
    let loaded: (ReadCheckpoint & { name: string }) | null = null;
    let loadError: string | null = null;
    let evaluation: Evaluation | null = null;
    let shown: Probe | null = null;
    let running = false;
    let timer = 0;

    root.append(
      h("h1", { tabindex: -1 }, "9. Inspect a model"),
      h("p", { class: "lede" },
        "Attention maps are most telling in a trained model. Load a checkpoint written by ", h("code", {}, "attend train"),
        ", or train a model here, in this tab, on a task whose solution is an attention pattern: reversing a string needs each answer position to look at its mirror image in the input; ",
        "recall needs the query key to find its pair. Then type any input: the model answers it, and the maps show where every query looked, layer by layer and head by head. ",
        "A model trained here is saved in the same format, so ", h("code", {}, "attend eval"), ", ", h("code", {}, "attend sample"), " and ", h("code", {}, "attend train --resume"), " read it."),
      formula(String.raw`\mathcal{L}=-\frac{1}{N}\sum_{\text{answer tokens}}\log \mathrm{softmax}(\mathrm{logits})_{y},\qquad A^{(\ell,h)}=\mathrm{softmax}\!\Big(\frac{Q^{(\ell,h)}K^{(\ell,h)\top}}{\sqrt{d}}\Big)`),
    );

    const rebuild = (): void => fresh();
    const trainBtn = button("Train", () => (running ? pause() : start()), { "data-testid": "train" });
    const status = h("span", { class: "note", "data-testid": "train-status", role: "status" });
    const fileInput = h("input", { type: "file", accept: ".safetensors,application/octet-stream", "data-testid": "load-file", "aria-label": "Load a checkpoint written by attend train" });
    fileInput.addEventListener("change", () => { const f = fileInput.files?.[0]; if (f) void loadFile(f); });
    const drop = h("div", { class: "dropzone", "data-testid": "dropzone" },
      h("label", {}, "Load a checkpoint written by attend train (.safetensors): ", fileInput), h("span", { class: "note" }, " or drop it here."));
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); const f = e.dataTransfer?.files[0]; if (f) void loadFile(f); });
    const ctl = {
      task: select({ label: "Task", options: DATA_NAMES, value: task as (typeof DATA_NAMES)[number], onChange: (v) => { task = v; input = null; rebuild(); }, testid: "task" }),
      model: select({ label: "Model", options: modelKinds(), names: (k) => KIND_NAMES[k] ?? k, value: kind, onChange: (v) => { kind = v; rebuild(); }, testid: "model" }),
      width: select({ label: "Width", options: WIDTHS as readonly number[], value: width, onChange: (v) => { width = v; rebuild(); }, testid: "width" }),
      heads: select({ label: "Heads", options: HEADS as readonly number[], value: heads, onChange: (v) => { heads = v; rebuild(); }, testid: "heads" }),
      layers: slider({ label: "Layers", min: 1, max: 4, value: layers, onInput: (v) => { layers = v; rebuild(); }, testid: "layers" }),
      seed: seedControl(seed, (v) => { seed = v; rebuild(); }),
      lr: slider({ label: "Peak learning rate", min: -4, max: -1.3, step: 0.1, value: Math.log10(lr), format: (v) => fmt(10 ** v, 2), onInput: (v) => { lr = +(10 ** v).toPrecision(3); run.setLr(lr); save(); drawStatus(); }, testid: "lr" }),
      batch: select({ label: "Batch", options: BATCHES as readonly number[], value: batch, onChange: (v) => { batch = v; run.setBatchSize(batch); save(); }, testid: "batch" }),
      steps: slider({ label: "Train to step", min: 10, max: 2000, step: 10, value: target, onInput: (v) => { target = v; run.setSteps(target); save(); drawStatus(); }, testid: "steps" }),
    };
    root.append(
      controls(ctl.task, ctl.model, ctl.width, ctl.heads, ctl.layers, ctl.seed),
      controls(ctl.lr, ctl.batch, ctl.steps, trainBtn,
        button("Reset", rebuild, { class: "secondary", "data-testid": "reset" }),
        button("Save checkpoint", () => downloadCheckpoint(), { class: "secondary", "data-testid": "save-checkpoint" }),
        button("Evaluate", () => evaluate(), { class: "secondary", "data-testid": "evaluate" }),
        status),
      drop,
    );
    const lossFig = ctx.figure({
      id: "loss", title: "Training loss (cross-entropy per answer token)",
      data: () => ({ task: run.config.task, model: run.config.model, batchSize: run.config.batchSize, lr: run.config.lr, firstStep: run.step - run.losses.length + 1, losses: run.losses }),
    });
    const info = h("section", { "data-testid": "checkpoint-info", "aria-live": "polite" });
    const inputBox = h("input", { type: "text", size: 24, id: "inspect-input", "aria-describedby": "inspect-input-error", "data-testid": "input", spellcheck: false, autocomplete: "off" });
    inputBox.addEventListener("input", () => { input = inputBox.value; save(); drawMaps(); });
    const inputError = h("p", { class: "error", role: "alert", id: "inspect-input-error", "data-testid": "input-error", hidden: true });
    const prediction = h("p", { "data-testid": "prediction", role: "status" });
    const mapsFig = ctx.figure({
      id: "maps", title: "Attention maps by layer (rows) and head (columns)",
      caption: "Queries down, keys across. Click a map (or focus it and press Enter) to enlarge it.", data: () => mapsData(),
    });
    const focusFig = ctx.figure({ id: "focus", title: "Selected map", data: () => focusData() });
    root.append(lossFig.el, info,
      controls(h("div", { class: "control" }, h("label", { for: "inspect-input" }, "Input"), inputBox), prediction),
      inputError, mapsFig.el, focusFig.el);

    function save(): void {
      state.set({ task, model: kind, width, heads, layers, seed, lr, batch, steps: target, input, layer, head });
    }

    function fresh(): void {
      stop();
      run = Run.fresh({ task, model: kind, sizes: { dModel: width, heads, layers }, seed, train: { steps: target, batchSize: batch, lr } });
      loaded = null;
      loadError = null;
      evaluation = null;
      origin = `a new ${kind} model (seed ${seed}), untrained`;
      if (input === null) input = exampleInput(run);
      inputBox.value = input;
      setControlDisabled(ctl.layers, kind === "tiny");
      save();
      drawAll();
    }

    function start(): void {
      if (run.step >= target) {
        target = run.step + 100;
        run.setSteps(target);
        setControlValue(ctl.steps, target);
        save();
      }
      running = true;
      trainBtn.textContent = "Pause";
      origin = loaded ? `the checkpoint ${loaded.name} (step ${loaded.checkpoint.step}), trained on here` : `${article(kind)} ${kind} model trained here on ${task}`;
      const loop = (): void => {
        if (!running) return;
        const t0 = performance.now();
        do run.trainStep(); while (performance.now() - t0 < CHUNK_MS && run.step < target);
        evaluation = null;
        drawLoss();
        if (run.step >= target) pause();
        else {
          if (run.step % 20 < 2) drawMaps();
          timer = window.setTimeout(loop, 0);
        }
      };
      loop();
    }

    function stop(): void {
      running = false;
      clearTimeout(timer);
      trainBtn.textContent = "Train";
    }

    function pause(): void {
      stop();
      drawAll();
    }

    function drawStatus(): void {
      const last = run.losses.at(-1);
      status.dataset.step = String(run.step);
      status.dataset.running = String(running);
      if (last !== undefined) status.dataset.loss = String(last);
      status.textContent = `${running ? "training" : "stopped"}: step ${run.step} of ${target}`
        + (last !== undefined ? `, loss ${fmt(last, 3)} (at step ${run.step - run.losses.length + 1}: ${fmt(run.losses[0], 3)})` : "")
        + `, learning rate now ${fmt(run.lr, 2)}`;
    }

    function drawLoss(): void {
      drawStatus();
      const first = run.step - run.losses.length;
      const V = run.data.vocab.size;
      replace(lossFig.body, run.losses.length > 1
        ? lineChart({ width: 640, height: 240, label: "training loss", legend: "top-right", series: [{ name: "loss", colour: "#1d4ed8", points: run.losses.map((l, i) => [first + i + 1, l] as const) }], x: { label: "step", format: (v) => String(v) }, y: { label: "loss", format: (v) => fmt(v, 2) } })
        : h("p", { class: "note" }, run.step > 0
          ? `This checkpoint carries no loss curve (attend train does not store one). Press Train to continue it from step ${run.step}, as attend train --resume would.`
          : `Press Train: the loss starts near ln ${V} ≈ ${fmt(Math.log(V), 3)} (a uniform guess over the ${V} tokens) and falls as the model finds the pattern.`));
    }

    function drawInfo(): void {
      const tensors = loaded?.tensors ?? Object.entries(run.model.stateDict()).map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }));
      const open = [...info.querySelectorAll("details")].map((d) => d.open); // keep what the reader opened
      replace(info, ...modelInfo({
        origin, config: run.config, step: run.step, taskDescription: taskDescription(run),
        parameters: run.model.parameters().reduce((n, p) => n + p.size, 0), tensors,
        file: loaded ? { name: loaded.name, format: loaded.metadata.format } : null, error: loadError, evaluation,
      }));
      info.querySelectorAll("details").forEach((d, i) => { d.open = open[i] ?? false; });
    }

    function drawMaps(): void {
      const text = input ?? "";
      try {
        shown = probe(run, text);
        inputError.hidden = true;
        inputError.textContent = "";
        inputBox.removeAttribute("aria-invalid");
      } catch (err) {
        shown = null;
        inputError.hidden = false;
        inputError.textContent = `${(err as Error).message}`;
        inputBox.setAttribute("aria-invalid", "true");
      }
      prediction.dataset.input = text;
      if (!shown) {
        prediction.textContent = "";
        delete prediction.dataset.answer;
        replace(mapsFig.body, h("p", { class: "note" }, "No maps for this input: see the message above."));
        replace(focusFig.body);
        return;
      }
      const p = shown;
      prediction.dataset.answer = p.answer;
      if (run.config.task === "names") prediction.textContent = `The model continues "${text}" as "${p.answer}" (greedy: the most likely character each time).`;
      else {
        const verdict = p.expected === null ? `(${p.expectedError})` : p.answer === p.expected ? `: right (the task's answer is "${p.expected}")` : `: wrong (the task's answer is "${p.expected}")`;
        prediction.textContent = `"${text}" → the model answers "${p.answer}"${verdict}.`;
      }
      layer = Math.min(layer, p.views.length - 1);
      head = Math.min(head, p.views[layer].weights.shape[0] - 1);
      replace(mapsFig.body, ...mapGrid(p, layer, head, (l, hh) => { layer = l; head = hh; save(); drawMaps(); }));
      replace(focusFig.body, ...focusView(p, layer, head));
    }

    function mapsData(): unknown {
      const p = shown;
      return {
        origin, task: run.config.task, model: run.config.model, step: run.step, input: input ?? "",
        answer: p?.answer ?? null, expected: p?.expected ?? null,
        tokens: p?.labels.tokens ?? [], source: p?.labels.source ?? [],
        names: p?.views.map((v) => v.name) ?? [], axes: p?.views.map((v) => ({ rows: v.rows, cols: v.cols })) ?? [],
        maps: p ? mapsAsArrays(p) : [],
      };
    }

    function focusData(): unknown {
      const v = shown?.views[layer];
      if (!shown || !v) return { layer, head, weights: null };
      return { layer, head, name: v.name, rows: shown.labels[v.rows], cols: shown.labels[v.cols], weights: mapsAsArrays(shown)[layer][head] };
    }

    function drawAll(): void {
      drawLoss();
      drawInfo();
      drawMaps();
    }

    /** Loss and accuracy on the validation set, as `attend eval` reports them. */
    function evaluate(): void {
      if (running) pause();
      evaluation = evaluateModel(run.model, run.data.validation, run.data.vocab);
      drawInfo();
    }

    function downloadCheckpoint(): void {
      const bytes = checkpointBytes(run.checkpoint(), { losses: JSON.stringify(run.losses.map((l) => +l.toPrecision(6))) });
      const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: "application/octet-stream" }));
      const a = h("a", { href: url, download: `attend-${run.config.model}-${run.config.task}-step${run.step}.safetensors`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    }

    /** Show a run's settings in the controls (a loaded checkpoint's may be outside the usual choices). */
    function showSettings(): void {
      const c = run.config;
      const sizes = modelSizes(c);
      ({ task, model: kind, seed, lr, batchSize: batch } = c);
      width = sizes.dModel ?? width;
      heads = sizes.heads ?? heads;
      layers = sizes.layers ?? layers;
      target = Math.max(c.steps, run.step);
      setControlValue(ctl.task, task);
      setControlValue(ctl.model, kind);
      setControlValue(ctl.width, width);
      setControlValue(ctl.heads, heads);
      setControlValue(ctl.layers, layers);
      setControlValue(ctl.seed, seed);
      setControlValue(ctl.lr, Math.log10(lr), fmt(lr, 2));
      setControlValue(ctl.batch, batch);
      setControlValue(ctl.steps, target);
      setControlDisabled(ctl.layers, kind === "tiny");
    }

    async function loadFile(file: File): Promise<void> {
      stop();
      let read: ReadCheckpoint;
      let next: Run;
      try {
        read = readCheckpoint(new Uint8Array(await file.arrayBuffer()), file.name);
        next = Run.restore(read.checkpoint, file.name, lossHistory(read.metadata, read.checkpoint.step));
      } catch (err) {
        const message = (err as Error).message;
        loadError = message.includes(file.name) ? message : `Could not use ${file.name}: ${message}`;
        drawInfo();
        status.dataset.loaded = "false";
        status.textContent = `could not use ${file.name}`;
        return;
      }
      const sameTask = next.config.task === task;
      run = next;
      loaded = { ...read, name: file.name };
      loadError = null;
      evaluation = null;
      origin = `the checkpoint ${file.name} (step ${run.step})`;
      showSettings();
      if (input === null || !sameTask) input = exampleInput(run);
      inputBox.value = input;
      save();
      drawAll();
      status.dataset.loaded = "true";
      status.textContent = `loaded ${file.name}: ${run.config.model} on ${run.config.task}, step ${run.step}`;
    }

    ctx.onDispose(stop);
    fresh();
  },
};
