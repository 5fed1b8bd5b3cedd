/**
 * Lesson 9, second part: a Hugging Face model folder (config.json, model.safetensors or its shards,
 * tokenizer.json) picked in the page. The files are read here (File.arrayBuffer: nothing leaves the
 * machine) and handed to a worker (../model/hf.worker.ts), which loads them with the library's
 * fromPretrainedFiles and runs forwardWithAttention on the typed text. The page draws what it
 * answers: the head view (as bertviz's), the model view (every layer × head), the enlarged map and
 * the per-head score table.
 */
import type { HeadScores } from "attend";
import { HfModel } from "../model/hfClient.js";
import type { HfFile, HfInfo, HfProbe } from "../model/hfProtocol.js";
import type { PageContext } from "../page.js";
import { button, controls, select, setControlValue, textControl } from "../ui/controls.js";
import { h, replace } from "../ui/dom.js";
import { fmt } from "../ui/format.js";
import { headColour, headView } from "../ui/headView.js";
import { enlargedMap, headWeights, hfInfo, hfMapsAsArrays, modelView, scoreTable } from "./inspectHfView.js";

/** The longest text drawn: every layer × head map is T × T, and the head view draws up to H·T² lines. */
export const HF_MAX_TOKENS = 128;
const DEFAULT_TEXT = "The cat sat on the mat because the cat was tired";
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
/** The files a model folder needs; anything else (pytorch_model.bin, README.md, onnx/) is not read. */
const WANTED = /\.(json|safetensors)$/;

/** Files picked or dropped: those at the folder's top level that the loader reads, and the names of the rest. */
export function chooseFiles(files: readonly File[]): { wanted: File[]; ignored: string[] } {
  const wanted: File[] = [];
  const ignored: string[] = [];
  for (const f of files) {
    const path = f.webkitRelativePath || f.name;
    const topLevel = path.split("/").length <= 2; // "folder/config.json", or a plain pick's "config.json"
    if (topLevel && WANTED.test(f.name)) wanted.push(f);
    else ignored.push(path);
  }
  return { wanted, ignored };
}

/** Every file of a dropped folder (its top level is enough) or the dropped files themselves. */
async function droppedFiles(dt: DataTransfer): Promise<File[]> {
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  const dir = entries.length === 1 && entries[0].isDirectory ? (entries[0] as FileSystemDirectoryEntry) : null;
  if (!dir) return [...dt.files];
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    all.push(...batch);
  }
  return Promise.all(all.filter((e) => e.isFile).map((e) => new Promise<File>((resolve, reject) => (e as FileSystemFileEntry).file(resolve, reject))));
}

export function mountHfSection(ctx: PageContext): void {
  const { root, state } = ctx;
  let text = state.str("hftext", DEFAULT_TEXT);
  let layer = state.num("hflayer", 0, { min: 0, int: true });
  let selected: [number, number] = [state.num("hfl", 0, { min: 0, int: true }), state.num("hfh", 0, { min: 0, int: true })];
  let shownHeads: boolean[] = [];
  let worker: HfModel | null = null;
  let info: HfInfo | null = null;
  let ignored: string[] = [];
  let shown: HfProbe | null = null;
  /** the library's headScores of the model on show (null until the worker has them) */
  let library: HeadScores | null = null;
  /** picks started; the status's data-picks counts those answered (loaded or refused) */
  let loads = 0;
  let probes = 0;

  const folderInput = h("input", { type: "file", webkitdirectory: true, multiple: true, "data-testid": "hf-folder", "aria-label": "Pick a Hugging Face model folder" });
  const filesInput = h("input", { type: "file", multiple: true, accept: ".json,.safetensors", "data-testid": "hf-files", "aria-label": "Pick a Hugging Face model's files" });
  folderInput.addEventListener("change", () => void pick([...(folderInput.files ?? [])]));
  filesInput.addEventListener("change", () => void pick([...(filesInput.files ?? [])]));
  const drop = h("div", { class: "dropzone", "data-testid": "hf-dropzone" },
    h("div", { class: "control" }, h("label", {}, "A model folder: ", folderInput)),
    h("div", { class: "control" }, h("label", {}, "or its files (config.json, model.safetensors, tokenizer.json): ", filesInput)),
    h("span", { class: "note" }, "or drop the folder here. The files are read in this tab; nothing is uploaded."));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer) void droppedFiles(e.dataTransfer).then(pick, (err) => showError(`Could not read the dropped folder: ${messageOf(err)}`));
  });
  const status = h("p", { class: "note", role: "status", "data-testid": "hf-status" }, "No model folder picked yet.");
  const loadError = h("p", { class: "error", role: "alert", "data-testid": "hf-load-error", hidden: true });
  const infoEl = h("section", { "data-testid": "hf-info", "aria-live": "polite" });
  const textCtl = textControl({ label: "Text", value: text, onInput: (v) => { text = v; save(); void probe(); }, testid: "hf-text", size: 40 });
  const textError = h("p", { class: "error", role: "alert", "data-testid": "hf-text-error", hidden: true });
  const nextEl = h("p", { "data-testid": "hf-next", role: "status" });
  const layerCtl = select({ label: "Layer", options: [0], value: 0, onChange: (v) => { layer = v; save(); drawHeads(); }, testid: "hf-layer" });
  const headToggles = h("div", { class: "control hf-heads", role: "group", "aria-label": "Heads shown in the head view" });
  const headsFig = ctx.figure({
    id: "hf-heads", title: "Head view: queries (left) to keys (right), one colour per head",
    caption: "Line opacity is the attention weight. Hover or focus a token to see only its lines.", data: () => headsData(),
  });
  const modelFig = ctx.figure({ id: "hf-model", title: "Model view: every layer (rows) × head (columns)", caption: "Queries down, keys across. Click a map (or focus it and press Enter) to enlarge it.", data: () => modelData() });
  const mapFig = ctx.figure({ id: "hf-map", title: "Selected map", data: () => mapData() });
  const scoresFig = ctx.figure({ id: "hf-scores", title: "Per-head scores on this text", data: () => (shown ? { text: shown.scores, library } : null) });
  const shownOnLoad = h("div", { hidden: true, "data-testid": "hf-views" },
    controls(textCtl, nextEl), textError,
    controls(layerCtl, headToggles, button("All heads", () => { shownHeads = shownHeads.map(() => true); drawToggles(); drawHeads(); }, { class: "secondary", "data-testid": "hf-all-heads" })),
    headsFig.el, modelFig.el, mapFig.el, scoresFig.el);
  root.append(
    h("h2", {}, "A Hugging Face model"),
    h("p", {},
      "Real checkpoints work too. Pick a model folder as the Hugging Face hub ships it (", h("code", {}, "config.json"), ", ",
      h("code", {}, "model.safetensors"), " or its shards with ", h("code", {}, "model.safetensors.index.json"), ", and ", h("code", {}, "tokenizer.json"),
      "): GPT-2, or the Llama family (Llama, Mistral, Qwen2, SmolLM, TinyLlama). The library's ", h("code", {}, "fromPretrainedFiles"),
      " loads it in a worker and ", h("code", {}, "forwardWithAttention"), " gives every layer's weights for the text you type: the head view draws one layer's heads as lines between the tokens, the model view every layer and head at once, and the table scores each head (with the library's ", h("code", {}, "headScores"), ")."),
    drop, status, loadError, infoEl, shownOnLoad);

  function save(): void {
    state.set({ hftext: text, hflayer: layer, hfl: selected[0], hfh: selected[1] });
  }

  function showError(message: string): void {
    loadError.hidden = false;
    loadError.textContent = message;
    answered(false);
  }

  function answered(ok: boolean): void {
    status.dataset.loaded = String(ok);
    status.dataset.picks = String(Number(status.dataset.picks ?? 0) + 1);
  }

  async function pick(files: File[]): Promise<void> {
    const mine = ++loads;
    const chosen = chooseFiles(files);
    if (chosen.wanted.length === 0) {
      showError(`None of the ${files.length} file${files.length === 1 ? "" : "s"} picked is a .json or .safetensors file at the folder's top level: pick the folder that holds config.json, model.safetensors and tokenizer.json.`);
      status.textContent = "no model loaded";
      return;
    }
    status.textContent = `reading ${chosen.wanted.length} files…`;
    let next: HfInfo;
    try {
      const payload: HfFile[] = await Promise.all(chosen.wanted.map(async (f) => ({ name: f.name, bytes: await f.arrayBuffer() })));
      if (mine !== loads) return;
      status.textContent = `loading ${payload.map((f) => f.name).join(", ")}…`;
      worker ??= new HfModel();
      next = await worker.load(payload);
    } catch (err) {
      if (mine !== loads) return;
      showError(`Could not load the folder: ${messageOf(err)}${info ? " (the model below is unchanged)" : ""}`);
      status.textContent = info ? `still showing ${info.modelType}` : "no model loaded";
      return;
    }
    if (mine !== loads) return;
    info = next;
    library = null;
    ignored = chosen.ignored;
    loadError.hidden = true;
    // token ids for a folder without a tokenizer, words for one with
    const typedIds = /^[\d\s,]*$/.test(text);
    if (!info.tokenizer && !typedIds) text = Array.from({ length: Math.min(10, info.vocabSize) }, (_, i) => i).join(" ");
    if (info.tokenizer && typedIds) text = DEFAULT_TEXT;
    setControlValue(textCtl, text);
    shownHeads = Array.from({ length: info.numHeads }, () => true);
    layer = Math.min(layer, info.numLayers - 1);
    selected = [Math.min(selected[0], info.numLayers - 1), Math.min(selected[1], info.numHeads - 1)];
    const layerSelect = layerCtl.querySelector("select")!;
    replace(layerSelect, ...Array.from({ length: info.numLayers }, (_, l) => h("option", { value: String(l), selected: l === layer }, String(l))));
    drawToggles();
    replace(infoEl, ...hfInfo(info, ignored));
    shownOnLoad.hidden = false;
    save();
    await probe();
    if (mine !== loads) return;
    worker.headScores().then((scores) => {
      if (mine !== loads) return;
      library = scores;
      drawScores();
    }, (err) => {
      if (mine !== loads) return;
      loadError.hidden = false;
      loadError.textContent = `The induction scores could not be computed: ${messageOf(err)}`;
    });
    status.textContent = `loaded ${info.modelType}: ${info.numLayers} layers × ${info.numHeads} heads, ${info.parameters.toLocaleString("en")} parameters`;
    answered(true);
  }

  /** Ask the worker for the text's attention and draw it (unless another request has followed). */
  async function probe(): Promise<void> {
    if (!worker || !info) return;
    const mine = ++probes;
    let p: HfProbe | null = null;
    let error = "";
    try {
      p = await worker.probe(text, HF_MAX_TOKENS);
    } catch (err) {
      error = messageOf(err);
    }
    if (mine !== probes) return;
    shown = p;
    textError.hidden = p !== null;
    textError.textContent = error;
    const input = textCtl.querySelector("input")!;
    if (p) input.removeAttribute("aria-invalid");
    else input.setAttribute("aria-invalid", "true");
    nextEl.dataset.text = text;
    nextEl.textContent = p ? `${p.ids.length} tokens. Next token, most likely: ${p.next.slice(0, 3).map((n) => `"${n.token}" ${fmt(n.p, 2)}`).join(", ")}` : "";
    drawAll();
  }

  function drawToggles(): void {
    const H = shownHeads.length;
    replace(headToggles, h("span", { class: "note" }, "Heads:"), ...shownHeads.map((on, hh) => {
      const id = `hf-head-toggle-${hh}`;
      const box = h("input", { type: "checkbox", id, checked: on, "data-testid": `hf-head-${hh}` });
      box.addEventListener("change", () => { shownHeads[hh] = box.checked; drawHeads(); });
      return h("span", { class: "hf-toggle" }, box, h("label", { for: id }, h("span", { class: "hf-swatch", style: `background:${headColour(hh, H)}` }), String(hh)));
    }));
  }

  /** The width a picture may take: its figure's body, or the phone's screen. */
  const widthOf = (fig: { body: HTMLElement }): number => Math.max(200, fig.body.clientWidth || Math.min(960, window.innerWidth - 48));

  function drawHeads(): void {
    if (!shown) {
      replace(headsFig.body, h("p", { class: "note" }, "No attention for this text: see the message above."));
      return;
    }
    const p = shown;
    const heads = Array.from({ length: p.numHeads }, (_, hh) => headWeights(p, layer, hh));
    replace(headsFig.body, headView({ tokens: p.tokens, heads, shown: shownHeads, maxWidth: widthOf(headsFig), label: `layer ${layer} head view` }));
  }

  function drawAll(): void {
    drawHeads();
    if (!shown) {
      replace(modelFig.body);
      replace(mapFig.body);
      replace(scoresFig.body);
      return;
    }
    const p = shown;
    replace(modelFig.body, modelView(p, widthOf(modelFig), selected, (l, hh) => { selected = [l, hh]; save(); drawAll(); }));
    replace(mapFig.body, ...enlargedMap(p, selected[0], selected[1], widthOf(mapFig)));
    drawScores();
  }

  function drawScores(): void {
    if (shown) replace(scoresFig.body, ...scoreTable(shown.scores, shown.ids.length, library));
    scoresFig.body.dataset.library = String(library !== null);
  }

  function headsData(): unknown {
    const p = shown;
    if (!p) return { layer, heads: [], tokens: [], weights: [] };
    const maps = hfMapsAsArrays(p);
    return { text, layer, tokens: p.tokens, ids: p.ids, shownHeads: shownHeads.flatMap((on, hh) => (on ? [hh] : [])), weights: maps[layer] };
  }

  function modelData(): unknown {
    const p = shown;
    return { model: info?.modelType ?? null, text, tokens: p?.tokens ?? [], ids: p?.ids ?? [], names: p?.names ?? [], maps: p ? hfMapsAsArrays(p) : [] };
  }

  function mapData(): unknown {
    const p = shown;
    if (!p) return { layer: selected[0], head: selected[1], weights: null };
    return { layer: selected[0], head: selected[1], tokens: p.tokens, weights: hfMapsAsArrays(p)[selected[0]][selected[1]] };
  }

  ctx.onDispose(() => worker?.dispose());
}
