/**
 * Lesson 9: inspect a model. Load a checkpoint written by `attend train` (any model kind it writes:
 * block, gpt, encdec), or train one here on the same tasks (live loss curve) and save it in the same
 * format, for `attend eval`, `attend sample` and `attend train --resume`; then type any input and
 * browse the attention maps by layer and head. Everything is the library's: the run (makeData,
 * makeModel, AdamW, the schedule) in ../model/run.ts, checkpoints in ../model/checkpoint.ts, the
 * maps (attentionMaps, sampleTokens) in ../model/probe.ts. All of that runs in a worker
 * (../model/trainer.worker.ts, on the library's threaded kernels); this page asks it for results
 * through ../model/trainer.ts and draws them, so it never waits on a training step. Below, a
 * Hugging Face model folder picked in the page gets the same look inside (./inspectHf.ts).
 */
import { DATA_NAMES, type Evaluation, modelKinds, taskDefaults } from "attend";
import type { RunInfo, StepProbe } from "../model/protocol.js";
import { modelSizes } from "../model/run.js";
import { type Progress, Trainer } from "../model/trainer.js";
import type { Page, PageContext } from "../page.js";
import { lineChart } from "../ui/chart.js";
import { button, controls, seedControl, select, setControlDisabled, setControlValue, slider } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { formula } from "../ui/math.js";
import { mountHfSection } from "./inspectHf.js";
import { MapsView, mapsAsArrays, modelInfo } from "./inspectView.js";

const WIDTHS = [16, 32, 64] as const;
const HEADS = [1, 2, 4] as const;
const BATCHES = [8, 16, 32, 64] as const;
const KIND_NAMES: Record<string, string> = { block: "block (one attention block)", gpt: "gpt (decoder-only)", encdec: "encdec (encoder-decoder)" };
/** while training, the loss curve and the maps are redrawn at most this often */
const LOSS_EVERY_MS = 250;
const MAPS_EVERY_MS = 1000;

const article = (word: string): string => (/^[aeiou]/i.test(word) ? "an" : "a");
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export const inspectPage: Page = {
  id: "inspect",
  title: "Inspect a model",
  mount(ctx: PageContext) {
    const { root, state } = ctx;
    let task: string = state.choice("task", "reverse", DATA_NAMES);
    let kind = state.choice("model", "block", modelKinds());
    let width: number = state.choice("width", 32, WIDTHS);
    let heads: number = state.choice("heads", 2, HEADS);
    let layers = state.num("layers", 2, { min: 1, max: 4, int: true });
    let seed = state.num("seed", 0, { min: 0, int: true });
    // the learning rate and batch start at the task's own defaults, as attend train's do
    let lr = state.num("lr", taskDefaults(task).lr, { min: 1e-4, max: 0.05 });
    let batch: number = state.choice("batch", taskDefaults(task).batchSize, BATCHES);
    let target = state.num("steps", 200, { min: 10, max: 2000, int: true });
    let input: string | null = state.has("input") ? state.str("input", "") : null;
    let layer = state.num("layer", 0, { min: 0, int: true });
    let head = state.num("head", 0, { min: 0, int: true });

    /** the run on show, as the worker last described it (null until its first reply) */
    let run: RunInfo | null = null;
    /** where the model on show came from, in words */
    let origin = "";
    let loadError: string | null = null;
    let evaluation: Evaluation | null = null;
    let shown: StepProbe | null = null;
    /** the worker's training request in flight, if any; pausing once Pause was pressed */
    let training: { pausing: boolean } | null = null;
    /** counts requests that replace the run (fresh, load): a reply to an older one is not drawn */
    let generation = 0;
    /** counts requests for maps: only the latest one's reply is drawn */
    let probes = 0;
    let probing = false;
    let mapsDrawnAt = 0;
    let lossDrawnAt = 0;
    let frame = 0;
    const trainer = new Trainer(progress, (err) => {
      training = null;
      trainBtn.textContent = "Train";
      status.dataset.running = "false";
      status.dataset.error = err.message;
      status.textContent = err.message;
    });

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
    const trainBtn = button("Train", () => (training && !training.pausing ? pause() : start()), { "data-testid": "train" });
    // there is nothing to train until the worker has made (or loaded) the first model; a click before
    // then would be lost, so the button waits for it (drawStatus enables it)
    trainBtn.disabled = true;
    const status = h("span", { class: "note", "data-testid": "train-status", role: "status" });
    const fileInput = h("input", { type: "file", accept: ".safetensors,application/octet-stream", "data-testid": "load-file", "aria-label": "Load a checkpoint written by attend train" });
    fileInput.addEventListener("change", () => { const f = fileInput.files?.[0]; if (f) void loadFile(f); });
    const drop = h("div", { class: "dropzone", "data-testid": "dropzone" },
      h("label", {}, "Load a checkpoint written by attend train (.safetensors): ", fileInput), h("span", { class: "note" }, " or drop it here."));
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); const f = e.dataTransfer?.files[0]; if (f) void loadFile(f); });
    const ctl = {
      task: select({ label: "Task", options: DATA_NAMES, value: task as (typeof DATA_NAMES)[number], onChange: (v) => { task = v; input = null; taskSettings(); rebuild(); }, testid: "task" }),
      model: select({ label: "Model", options: modelKinds(), names: (k) => KIND_NAMES[k] ?? k, value: kind, onChange: (v) => { kind = v; rebuild(); }, testid: "model" }),
      width: select({ label: "Width", options: WIDTHS as readonly number[], value: width, onChange: (v) => { width = v; rebuild(); }, testid: "width" }),
      heads: select({ label: "Heads", options: HEADS as readonly number[], value: heads, onChange: (v) => { heads = v; rebuild(); }, testid: "heads" }),
      layers: slider({ label: "Layers", min: 1, max: 4, value: layers, onInput: (v) => { layers = v; rebuild(); }, testid: "layers" }),
      seed: seedControl(seed, (v) => { seed = v; rebuild(); }),
      lr: slider({ label: "Peak learning rate", min: -4, max: -1.3, step: 0.1, value: Math.log10(lr), format: (v) => fmt(10 ** v, 2), onInput: (v) => { lr = +(10 ** v).toPrecision(3); settle({ lr }); }, testid: "lr" }),
      batch: select({ label: "Batch", options: BATCHES as readonly number[], value: batch, onChange: (v) => { batch = v; settle({ batchSize: batch }); }, testid: "batch" }),
      steps: slider({ label: "Train to step", min: 10, max: 2000, step: 10, value: target, onInput: (v) => { target = v; settle({ steps: target }); }, testid: "steps" }),
    };
    root.append(
      controls(ctl.task, ctl.model, ctl.width, ctl.heads, ctl.layers, ctl.seed),
      controls(ctl.lr, ctl.batch, ctl.steps, trainBtn,
        button("Reset", rebuild, { class: "secondary", "data-testid": "reset" }),
        button("Save checkpoint", () => void downloadCheckpoint(), { class: "secondary", "data-testid": "save-checkpoint" }),
        button("Evaluate", () => evaluate(), { class: "secondary", "data-testid": "evaluate" }),
        status),
      drop,
    );
    const lossFig = ctx.figure({
      id: "loss", title: "Training loss (cross-entropy per answer token)",
      data: () => (run ? { task: run.config.task, model: run.config.model, batchSize: run.config.batchSize, lr: run.config.lr, firstStep: run.step - run.losses.length + 1, losses: run.losses } : {}),
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
    const maps = new MapsView(mapsFig.body, focusFig.body, (l, hh) => { layer = l; head = hh; save(); drawShown(); });
    root.append(lossFig.el, info,
      controls(h("div", { class: "control" }, h("label", { for: "inspect-input" }, "Input"), inputBox), prediction),
      inputError, mapsFig.el, focusFig.el);
    mountHfSection(ctx);

    function save(): void {
      state.set({ task, model: kind, width, heads, layers, seed, lr, batch, steps: target, input, layer, head });
    }

    /** A new run, as the controls say. */
    function fresh(): void {
      pause();
      const mine = ++generation;
      if (input !== null) inputBox.value = input;
      status.textContent = `making a ${kind} model…`;
      trainer.fresh({ task, model: kind, sizes: { dModel: width, heads, layers }, seed, train: { steps: target, batchSize: batch, lr } }).then((info) => {
        if (mine !== generation) return;
        run = info;
        loadError = null;
        evaluation = null;
        origin = `a new ${kind} model (seed ${seed}), untrained`;
        if (input === null) input = info.example;
        inputBox.value = input;
        setControlDisabled(ctl.layers, kind === "block");
        save();
        void drawAll();
      }, failed);
    }

    /** New training settings, for the run now and from its next step. */
    function settle(settings: { lr?: number; batchSize?: number; steps?: number }): void {
      save();
      if (run) Object.assign(run.config, settings);
      drawStatus();
      trainer.set(settings).then(({ lr: now }) => {
        if (run) run.lr = now;
        drawStatus();
      }, failed);
    }

    function start(): void {
      if (!run || training) return;
      if (run.step >= target) {
        target = run.step + 100;
        setControlValue(ctl.steps, target);
        save();
      }
      const mine = { pausing: false };
      training = mine;
      trainBtn.textContent = "Pause";
      origin = run.file ? `the checkpoint ${run.file.name} (step ${run.file.step}), trained on here` : `${article(kind)} ${kind} model trained here on ${task}`;
      drawStatus();
      trainer.train(target).then(({ step }) => {
        if (training !== mine) return;
        training = null;
        if (run) run.step = step;
        trainBtn.textContent = "Train";
        void drawAll();
      }, failed);
    }

    /** The page answers at once; the worker stops after the step in progress and then answers start()'s request. */
    function pause(): void {
      if (!training || training.pausing) return;
      training.pausing = true;
      trainBtn.textContent = "Train";
      drawStatus();
      trainer.pause().catch(failed);
    }

    /** A training step's result: kept at once, drawn at the next frame. */
    function progress(p: Progress): void {
      if (!run) return;
      run.step = p.step;
      run.losses.push(p.loss);
      run.lr = p.lr;
      evaluation = null;
      drawStatus();
      drawSoon();
    }

    /** The loss curve (and now and then the maps) at a coming frame, no more often than LOSS_EVERY_MS. */
    function drawSoon(): void {
      if (frame !== 0) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        if (performance.now() - lossDrawnAt < LOSS_EVERY_MS) {
          drawSoon();
          return;
        }
        drawLoss();
        if (!probing && performance.now() - mapsDrawnAt > MAPS_EVERY_MS) void drawMaps();
      });
    }

    /** A request the worker could not serve (the library's message) or a worker that has stopped. */
    function failed(err: unknown): void {
      status.dataset.error = messageOf(err);
      status.textContent = messageOf(err);
    }

    function drawStatus(): void {
      if (!run) return;
      trainBtn.disabled = false;
      const last = run.losses.at(-1);
      status.dataset.step = String(run.step);
      status.dataset.running = String(training !== null);
      if (run.kernels) status.dataset.threads = `${run.kernels.threads}${run.kernels.threaded ? "" : " (not threaded)"}`;
      if (last !== undefined) status.dataset.loss = String(last);
      status.textContent = `${training ? (training.pausing ? "pausing" : "training") : "stopped"}: step ${run.step} of ${target}`
        + (last !== undefined ? `, loss ${fmt(last, 3)} (at step ${run.step - run.losses.length + 1}: ${fmt(run.losses[0], 3)})` : "")
        + `, learning rate now ${fmt(run.lr, 2)}`;
    }

    function drawLoss(): void {
      if (!run) return;
      lossDrawnAt = performance.now();
      drawStatus();
      const first = run.step - run.losses.length;
      const V = run.vocabSize;
      replace(lossFig.body, run.losses.length > 1
        ? lineChart({ width: 640, height: 240, label: "training loss", legend: "top-right", series: [{ name: "loss", colour: "#1d4ed8", points: run.losses.map((l, i) => [first + i + 1, l] as const) }], x: { label: "step", format: (v) => String(v) }, y: { label: "loss", format: (v) => fmt(v, 2) } })
        : h("p", { class: "note" }, run.step > 0
          ? `This checkpoint carries no loss curve (attend train does not store one). Press Train to continue it from step ${run.step}, as attend train --resume would.`
          : `Press Train: the loss starts near ln ${V} ≈ ${fmt(Math.log(V), 3)} (a uniform guess over the ${V} tokens) and falls as the model finds the pattern.`));
    }

    function drawInfo(): void {
      if (!run) return;
      const open = [...info.querySelectorAll("details")].map((d) => d.open); // keep what the reader opened
      replace(info, ...modelInfo({
        origin, config: run.config, step: run.step, taskDescription: run.taskDescription, parameters: run.parameters, tensors: run.tensors,
        file: run.file, error: loadError, evaluation,
      }));
      info.querySelectorAll("details").forEach((d, i) => { d.open = open[i] ?? false; });
    }

    /** Ask the worker for the input's answer and maps, and draw them (unless another request has followed). */
    async function drawMaps(): Promise<void> {
      const text = input ?? "";
      const mine = ++probes;
      probing = true;
      let p: StepProbe | null = null;
      let error = "";
      try {
        p = await trainer.probe(text);
      } catch (err) {
        error = messageOf(err);
      }
      if (mine !== probes) return;
      probing = false;
      mapsDrawnAt = performance.now();
      shown = p;
      inputError.hidden = p !== null;
      inputError.textContent = error;
      if (p) inputBox.removeAttribute("aria-invalid");
      else inputBox.setAttribute("aria-invalid", "true");
      prediction.dataset.input = text;
      if (p) prediction.dataset.step = String(p.step);
      drawShown();
    }

    /** The maps of the last answer, with the selected layer and head. */
    function drawShown(): void {
      const text = prediction.dataset.input ?? "";
      if (!shown) {
        prediction.textContent = "";
        delete prediction.dataset.answer;
        maps.clear("No maps for this input: see the message above.");
        return;
      }
      const p = shown;
      prediction.dataset.answer = p.answer;
      if (run?.config.task === "names") prediction.textContent = `The model continues "${text}" as "${p.answer}" (greedy: the most likely character each time).`;
      else {
        const verdict = p.expected === null ? `(${p.expectedError})` : p.answer === p.expected ? `: right (the task's answer is "${p.expected}")` : `: wrong (the task's answer is "${p.expected}")`;
        prediction.textContent = `"${text}" → the model answers "${p.answer}"${verdict}.`;
      }
      layer = Math.min(layer, p.views.length - 1);
      head = Math.min(head, p.views[layer].weights.shape[0] - 1);
      maps.show(p, layer, head);
    }

    function mapsData(): unknown {
      const p = shown;
      return {
        origin, task: run?.config.task, model: run?.config.model, step: p?.step ?? null, input: prediction.dataset.input ?? "",
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

    function drawAll(): Promise<void> {
      drawLoss();
      drawInfo();
      return drawMaps();
    }

    /** Loss and accuracy on the validation set, as `attend eval` reports them. */
    function evaluate(): void {
      pause(); // the worker evaluates once the step in progress is done
      const mine = generation;
      trainer.evaluate().then((e) => {
        if (mine !== generation) return;
        evaluation = e;
        drawInfo();
      }, failed);
    }

    async function downloadCheckpoint(): Promise<void> {
      let saved: { bytes: Uint8Array; fileName: string };
      try {
        saved = await trainer.checkpoint();
      } catch (err) {
        failed(err);
        return;
      }
      const url = URL.createObjectURL(new Blob([saved.bytes as BlobPart], { type: "application/octet-stream" }));
      const a = h("a", { href: url, download: saved.fileName, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    }

    /** A new task brings its own learning rate and batch size (attend train's defaults for it). */
    function taskSettings(): void {
      ({ lr, batchSize: batch } = taskDefaults(task));
      setControlValue(ctl.lr, Math.log10(lr), fmt(lr, 2));
      setControlValue(ctl.batch, batch);
    }

    /** Show a run's settings in the controls (a loaded checkpoint's may be outside the usual choices). */
    function showSettings(c: RunInfo["config"], step: number): void {
      const sizes = modelSizes(c);
      ({ task, model: kind, seed, lr, batchSize: batch } = c);
      width = sizes.dModel ?? width;
      heads = sizes.heads ?? heads;
      layers = sizes.layers ?? layers;
      target = Math.max(c.steps, step);
      setControlValue(ctl.task, task);
      setControlValue(ctl.model, kind);
      setControlValue(ctl.width, width);
      setControlValue(ctl.heads, heads);
      setControlValue(ctl.layers, layers);
      setControlValue(ctl.seed, seed);
      setControlValue(ctl.lr, Math.log10(lr), fmt(lr, 2));
      setControlValue(ctl.batch, batch);
      setControlValue(ctl.steps, target);
      setControlDisabled(ctl.layers, kind === "block");
    }

    async function loadFile(file: File): Promise<void> {
      pause();
      const mine = ++generation;
      let next: RunInfo;
      try {
        next = await trainer.load(new Uint8Array(await file.arrayBuffer()), file.name);
      } catch (err) {
        if (mine !== generation) return;
        const message = messageOf(err);
        loadError = message.includes(file.name) ? message : `Could not use ${file.name}: ${message}`;
        drawInfo();
        status.dataset.loaded = "false";
        status.textContent = `could not use ${file.name}`;
        return;
      }
      if (mine !== generation) return;
      const sameTask = next.config.task === task;
      run = next;
      loadError = null;
      evaluation = null;
      origin = `the checkpoint ${file.name} (step ${run.step})`;
      showSettings(run.config, run.step);
      if (input === null || !sameTask) input = run.example;
      inputBox.value = input;
      save();
      await drawAll();
      if (mine !== generation) return;
      status.dataset.loaded = "true";
      status.textContent = `loaded ${file.name}: ${run.config.model} on ${run.config.task}, step ${run.step}`;
    }

    ctx.onDispose(() => {
      cancelAnimationFrame(frame);
      trainer.dispose();
      maps.dispose();
    });
    fresh();
  },
};
