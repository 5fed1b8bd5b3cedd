/**
 * Load a Hugging Face model folder (config.json, model.safetensors or model.safetensors.index.json
 * plus shards, optionally tokenizer.json / tokenizer_config.json) from its files' contents. Works
 * anywhere; node.ts reads a folder from disk, the browser passes dropped or fetched files.
 *
 * The checkpoint must match the architecture config.json describes, tensor for tensor: a missing
 * tensor, an unexpected one, or a wrong shape is an error naming it (never a silently wrong model).
 * Recognised and skipped: GPT-2's attn.bias / attn.masked_bias buffers, Llama's rotary_emb.inv_freq,
 * and a stored lm_head.weight equal to the tied embedding; names without their "transformer." /
 * "model." prefix (a base model's save) are read as with it. GPT-2's Conv1D weights ([in, out]) are
 * transposed into Linear's [out, in]; F16 and BF16 weights become float32.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { transpose } from "../ops/shape.js";
import { deserializeSafetensors } from "../io/tensors.js";
import { type HFConfig, type PretrainedArch, archFromConfig } from "./config.js";
import { PretrainedLM } from "./model.js";

export { Tokenizer };

export interface Pretrained {
  model: PretrainedLM;
  /** from tokenizer.json (null when the folder has none) */
  tokenizer: Tokenizer | null;
  /** config.json as written */
  config: HFConfig;
}

/** A file's contents: bytes, or text for the JSON files. */
export type PretrainedFile = Uint8Array | ArrayBuffer | string;
/** File name (as in the folder, e.g. "config.json") -> contents. */
export type PretrainedFiles = Record<string, PretrainedFile> | Map<string, PretrainedFile>;

const FN = "fromPretrained";

/** Reads one file of the folder by name, or null when it is absent. */
export type FileReader = (name: string) => PretrainedFile | null;

function bytesOf(f: PretrainedFile): Uint8Array {
  if (typeof f === "string") return new TextEncoder().encode(f);
  return f instanceof Uint8Array ? f : new Uint8Array(f);
}

function jsonOf(name: string, f: PretrainedFile): unknown {
  const text = typeof f === "string" ? f : new TextDecoder().decode(bytesOf(f));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ArgumentError(`${FN}: ${name} is not valid JSON (${(e as Error).message})`);
  }
}

/** Every tensor of the checkpoint, by its name in the files. */
function readWeights(read: FileReader): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const single = read("model.safetensors");
  if (single !== null) {
    for (const [k, t] of Object.entries(deserializeSafetensors(bytesOf(single)).tensors)) out.set(k, t);
    return out;
  }
  const indexFile = read("model.safetensors.index.json");
  if (indexFile === null) throw new ArgumentError(`${FN}: the folder has neither model.safetensors nor model.safetensors.index.json`);
  const index = jsonOf("model.safetensors.index.json", indexFile) as { weight_map?: unknown };
  const map = index?.weight_map;
  if (map === null || typeof map !== "object" || Array.isArray(map)) throw new ArgumentError(`${FN}: model.safetensors.index.json has no weight_map object`);
  const weightMap = map as Record<string, unknown>;
  const shards = [...new Set(Object.values(weightMap))];
  for (const shard of shards) {
    if (typeof shard !== "string") throw new ArgumentError(`${FN}: model.safetensors.index.json weight_map values must be file names, got ${JSON.stringify(shard)}`);
    if (shard.includes("/") || shard.includes("\\") || shard.startsWith(".")) throw new ArgumentError(`${FN}: model.safetensors.index.json names shard ${JSON.stringify(shard)}; shards must be plain file names in the folder`);
  }
  for (const shard of shards as string[]) {
    const f = read(shard);
    if (f === null) throw new ArgumentError(`${FN}: shard ${shard} (named in model.safetensors.index.json) is missing`);
    for (const [k, t] of Object.entries(deserializeSafetensors(bytesOf(f)).tensors)) {
      if (weightMap[k] !== shard) throw new ArgumentError(`${FN}: tensor ${k} is in ${shard} but model.safetensors.index.json places it in ${String(weightMap[k] ?? "no shard")}`);
      if (out.has(k)) throw new ArgumentError(`${FN}: tensor ${k} is stored twice`);
      out.set(k, t);
    }
  }
  for (const k of Object.keys(weightMap)) {
    if (!out.has(k)) throw new ArgumentError(`${FN}: tensor ${k} is listed in model.safetensors.index.json but absent from ${String(weightMap[k])}`);
  }
  return out;
}

const CONV1D = /^transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/** The checkpoint's names as the module names them; buffers the model recomputes are dropped. */
function canonical(arch: PretrainedArch, weights: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of weights) {
    let k = name;
    if (arch.family === "gpt2") {
      if (k !== "lm_head.weight" && !k.startsWith("transformer.")) k = `transformer.${k}`;
      if (/^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/.test(k)) continue; // the causal-mask buffers
    } else {
      if (/^(embed_tokens|layers|norm|rotary_emb)\./.test(k)) k = `model.${k}`; // saved from the base model (LlamaModel)
      if (/^model\.(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$/.test(k)) continue; // RoPE frequencies, recomputed from rope_theta
    }
    if (out.has(k)) throw new ArgumentError(`${FN}: tensor ${k} is stored twice (as ${name} and with or without its prefix)`);
    out.set(k, t);
  }
  return out;
}

function sameValues(a: Tensor, b: Tensor): boolean {
  if (a.size !== b.size) return false;
  for (let i = 0; i < a.size; i++) if (a.values[i] !== b.values[i]) return false;
  return true;
}

/** Check names and shapes against the model and load (Conv1D transposed). */
function loadInto(model: PretrainedLM, arch: PretrainedArch, weights: Map<string, Tensor>): void {
  const given = canonical(arch, weights);
  const embedName = arch.family === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight";
  const head = given.get("lm_head.weight");
  if (arch.tieWordEmbeddings && head !== undefined) {
    const embed = given.get(embedName);
    if (embed === undefined || !sameValues(head, embed)) {
      throw new ArgumentError(`${FN}: the checkpoint has its own lm_head.weight but config.json says tie_word_embeddings (the head is ${embedName}); set tie_word_embeddings to false if the head is separate`);
    }
    given.delete("lm_head.weight");
  }
  const params = model.namedParameters();
  const missing = [...params.keys()].filter((k) => !given.has(k));
  if (missing.length > 0) {
    const hint = missing.includes("lm_head.weight") ? " (config.json says tie_word_embeddings is false)" : "";
    throw new ArgumentError(`${FN}: the checkpoint is missing ${missing.length} tensor(s) the ${arch.modelType} config needs: ${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ", …" : ""}${hint}`);
  }
  const extra = [...given.keys()].filter((k) => !params.has(k));
  if (extra.length > 0) {
    throw new ArgumentError(`${FN}: the checkpoint has ${extra.length} tensor(s) a ${arch.modelType} model with this config.json does not have: ${extra.slice(0, 8).join(", ")}${extra.length > 8 ? ", …" : ""}`);
  }
  const state = new Map<string, Tensor>();
  for (const [k, p] of params) {
    const t = given.get(k) as Tensor;
    const conv = arch.family === "gpt2" && CONV1D.test(k);
    const want = conv ? [p.shape[1], p.shape[0]] : p.shape;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new ShapeError(`${FN}: tensor ${k} has shape ${fmtShape(t.shape)}, expected ${fmtShape(want)}${conv ? " (Conv1D, [in, out])" : ""} for this config.json`);
    }
    if (t.dtype !== "float32" && t.dtype !== "float64") throw new ArgumentError(`${FN}: tensor ${k} holds ${t.dtype}, expected floating-point weights`);
    state.set(k, conv ? transpose(t, 0, 1) : t);
  }
  model.loadStateDict(state);
}

/** fromPretrained's work on a folder given by a reader of its files. */
export function loadPretrained(read: FileReader): Pretrained {
  const configFile = read("config.json");
  if (configFile === null) throw new ArgumentError(`${FN}: the folder has no config.json`);
  const config = jsonOf("config.json", configFile) as HFConfig;
  const arch = archFromConfig(config);
  const model = new PretrainedLM(arch);
  loadInto(model, arch, readWeights(read));
  model.eval();
  const tok = read("tokenizer.json");
  const tokConfig = read("tokenizer_config.json");
  const tokenizer = tok === null ? null : new Tokenizer(jsonOf("tokenizer.json", tok) as object, tokConfig === null ? {} : (jsonOf("tokenizer_config.json", tokConfig) as object));
  return { model, tokenizer, config };
}

/**
 * Load a Hugging Face model from its files' contents (name -> bytes or text), e.g. files dropped
 * into a page: { model, tokenizer, config }; model.forward(ids) gives logits [N, T, vocab].
 */
export function fromPretrainedFiles(files: PretrainedFiles): Pretrained {
  if (files === null || typeof files !== "object") throw new ArgumentError(`fromPretrainedFiles: files must map file names to contents, got ${files === null ? "null" : typeof files}`);
  const get = (name: string): PretrainedFile | null => {
    const f = files instanceof Map ? files.get(name) : Object.hasOwn(files, name) ? files[name] : undefined;
    return f === undefined ? null : f;
  };
  return loadPretrained(get);
}
