/**
 * Lesson 9's Hugging Face worker: it holds a model loaded from a picked folder (the library's
 * fromPretrainedFiles) and answers typed texts with their attention (forwardWithAttention), so the
 * page's thread only draws (it even gets every map's pixels, painted here). The library's wasm kernels run on its thread pool here, as in the
 * training worker.
 */
import { type Pretrained, fromPretrainedFiles, headScores, noGrad, setNumThreads } from "attend";
import type { FromHfWorker, HfFile, HfInfo, HfProbe, HfReplies, ToHfWorker } from "./hfProtocol.js";
import { textHeadScores } from "./hfScores.js";
import { weightScale } from "../ui/colors.js";
import { paintCells } from "../ui/pixels.js";

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToHfWorker>) => void) | null;
  postMessage(message: FromHfWorker, options?: StructuredSerializeOptions): void;
}
const scope = self as unknown as WorkerScope;

setNumThreads(navigator.hardwareConcurrency || 1);

let loaded: Pretrained | null = null;

const isJson = (name: string): boolean => name.endsWith(".json");

function load(files: HfFile[]): HfInfo {
  const byName = new Map<string, Uint8Array | string>();
  for (const f of files) byName.set(f.name, isJson(f.name) ? new TextDecoder().decode(f.bytes) : new Uint8Array(f.bytes));
  const next = fromPretrainedFiles(byName); // the library's errors (no config.json, no weights, an unsupported model_type) as they are
  loaded = next;
  const a = next.model.config;
  const archs = next.config.architectures;
  const tokJson = byName.get("tokenizer.json");
  let tokenizer: string | null = null;
  if (typeof tokJson === "string") {
    const model = (JSON.parse(tokJson) as { model?: { type?: unknown } }).model;
    tokenizer = typeof model?.type === "string" ? model.type : "tokenizer.json";
  }
  const index = byName.get("model.safetensors.index.json");
  const shards = typeof index === "string" ? [...new Set(Object.values((JSON.parse(index) as { weight_map: Record<string, string> }).weight_map))] : ["model.safetensors"];
  return {
    modelType: a.modelType, architectures: Array.isArray(archs) ? archs.map(String) : [], family: a.family,
    numLayers: a.numLayers, numHeads: a.numHeads, numKvHeads: a.numKvHeads, dModel: a.dModel, headDim: a.headDim,
    vocabSize: a.vocabSize, maxSeqLen: a.maxSeqLen, tieWordEmbeddings: a.tieWordEmbeddings, torchDtype: a.torchDtype,
    parameters: next.model.parameters().reduce((n, p) => n + p.size, 0),
    weightFiles: shards.map((name) => ({ name, bytes: files.find((f) => f.name === name)?.bytes.byteLength ?? 0 })),
    tokenizer, files: files.map((f) => f.name),
  };
}

/** Token ids typed as numbers (for a folder without tokenizer.json): "3 14 15" or "3, 14, 15". */
function typedIds(text: string, vocabSize: number): number[] {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  return parts.map((p) => {
    const id = Number(p);
    if (!/^\d+$/.test(p) || id >= vocabSize) {
      throw new Error(`this folder has no tokenizer.json, so type token ids (whole numbers from 0 to ${vocabSize - 1}, separated by spaces); "${p}" is not one`);
    }
    return id;
  });
}

/** softmax of one row of logits, in float64 */
function nextTokenProbabilities(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  const p = Float64Array.from(row, (x) => Math.exp(x - m));
  const sum = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / sum);
}

function probe(text: string, maxTokens: number): { value: HfProbe; transfer: Transferable[] } {
  if (loaded === null) throw new Error("no model yet: pick a Hugging Face model folder first");
  const { model, tokenizer } = loaded;
  const V = model.config.vocabSize;
  let ids: number[];
  let tokens: string[];
  if (tokenizer) {
    const enc = tokenizer.encode(text);
    ids = enc.ids;
    tokens = enc.tokens;
  } else {
    ids = typedIds(text, V);
    tokens = ids.map((id) => `#${id}`);
  }
  if (ids.length === 0) throw new Error("the text has no tokens: type something");
  if (ids.length > maxTokens) throw new Error(`the text is ${ids.length} tokens; this page draws at most ${maxTokens} (every layer × head map is T × T): shorten it`);
  const { logits, attention } = noGrad(() => model.forwardWithAttention([ids]));
  const T = ids.length;
  const layers = attention.map((m) => new Float32Array(m.weights.values)); // [1, H, T, T] -> its own buffer, to transfer
  const H = model.config.numHeads;
  const last = nextTokenProbabilities(logits.values.subarray((T - 1) * V, T * V)); // [1, T, V] -> the last position's [V]
  const order = Array.from({ length: V }, (_, i) => i).sort((x, y) => last[y] - last[x]).slice(0, 5);
  const next = order.map((id) => ({ id, p: last[id], token: tokenizer ? tokenizer.decode([id]) : `#${id}` }));
  // every head's map painted here (layers × heads × T² cells, millions for a real model at 128 tokens), so the page only copies them
  const images = layers.map((l) => Array.from({ length: H }, (_, hh) => paintCells(T, T, l.subarray(hh * T * T, (hh + 1) * T * T), weightScale(1)))); // [H, T, T] -> head hh's [T, T]
  return {
    value: { ids, tokens, names: attention.map((m) => m.name), numHeads: H, layers, images, scores: textHeadScores(layers, H, T), next },
    transfer: [...layers.map((l) => l.buffer), ...images.flat().map((im) => im.rgba.buffer)],
  };
}

function reply<K extends keyof HfReplies>(id: number, value: HfReplies[K], transfer: Transferable[] = []): void {
  scope.postMessage({ id, ok: true, value }, { transfer });
}

scope.onmessage = (e) => {
  const m = e.data;
  try {
    if (m.op === "load") reply<"load">(m.id, load(m.files));
    else if (m.op === "headScores") {
      if (loaded === null) throw new Error("no model yet: pick a Hugging Face model folder first");
      reply<"headScores">(m.id, headScores(loaded.model));
    } else {
      const { value, transfer } = probe(m.text, m.maxTokens);
      reply<"probe">(m.id, value, transfer);
    }
  } catch (err) {
    scope.postMessage({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
};
