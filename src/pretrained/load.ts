/**
 * Load a Hugging Face model folder (config.json, model.safetensors or model.safetensors.index.json
 * plus shards, optionally tokenizer.json / tokenizer_config.json and generation_config.json) from its
 * files' contents. Works anywhere; node.ts reads a folder from disk, the browser passes dropped or
 * fetched files.
 *
 * The checkpoint must match the architecture config.json describes, tensor for tensor: a missing
 * tensor, an unexpected one, or a wrong shape is an error naming it (never a silently wrong model).
 * Recognised and skipped: GPT-2's attn.bias / attn.masked_bias buffers, Llama's rotary_emb.inv_freq,
 * and a stored lm_head.weight equal to the tied embedding; names without their "transformer." /
 * "model." prefix (a base model's save) are read as with it. GPT-2's Conv1D weights ([in, out]) are
 * transposed into Linear's [out, in]; F16 and BF16 weights become float32. A tokenizer.json with ids
 * the embedding has no row for is an error (a vocab_size larger than the tokenizer's is normal:
 * padding rows, e.g. Qwen2's).
 *
 * Memory: the model is built with zeros (no random init), and each tensor is read from its file a
 * chunk at a time, converted and (Conv1D) transposed straight into its parameter's own array, so the
 * peak is about the float32 weights plus one 4 MiB chunk (a file given as bytes is only viewed).
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { sizeOf } from "../tensor/shape.js";
import { type SafetensorsDType, type SafetensorsEntry, halfToNumber, parseSafetensorsHeader, readSafetensorsHeaderLength } from "../io/safetensors.js";
import { type HFConfig, type PretrainedArch, archFromConfig } from "./config.js";
import { PretrainedLM } from "./model.js";
import { type GenerationDefaults, generationDefaults } from "./genconfig.js";

export { Tokenizer };

export interface Pretrained {
  model: PretrainedLM;
  /** from tokenizer.json (null when the folder has none) */
  tokenizer: Tokenizer | null;
  /** config.json as written */
  config: HFConfig;
  /**
   * generation_config.json as written (null when the folder has none), frozen (edit a copy:
   * { ...p, generationConfig: { ...p.generationConfig, do_sample: true } }): its eos_token_id is
   * generateText's default stop
   */
  generationConfig: HFConfig | null;
  /**
   * generationConfig read once, at load (generationDefaults): the defaults of generateText's options
   * (do_sample, temperature, top_k, top_p, max_new_tokens, max_length, repetition_penalty) and the
   * settings it does not implement; null when the folder has no generation_config.json
   */
  generation: GenerationDefaults | null;
}

/** v with every object and array in it frozen (a JSON value). */
function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/**
 * A file read by byte ranges, so a large checkpoint is never held whole: fromPretrained (Node) gives
 * the weights so, reading each range with fs.readSync.
 */
export interface RandomAccessFile {
  /** the file's length in bytes */
  readonly byteLength: number;
  /** fills dst with the file's bytes from position on (exactly dst.length of them) */
  read(dst: Uint8Array, position: number): void;
  /** called once the loader has read all it needs */
  close?(): void;
}

/** A file's contents: bytes, text for the JSON files, or a file read by ranges. */
export type PretrainedFile = Uint8Array | ArrayBuffer | string | RandomAccessFile;
/** File name (as in the folder, e.g. "config.json") -> contents. */
export type PretrainedFiles = Record<string, PretrainedFile> | Map<string, PretrainedFile>;

const FN = "fromPretrained";

/** Reads one file of the folder by name, or null when it is absent. */
export type FileReader = (name: string) => PretrainedFile | null;

function isRandomAccess(f: PretrainedFile): f is RandomAccessFile {
  return typeof f === "object" && !(f instanceof Uint8Array) && !(f instanceof ArrayBuffer) && typeof (f as RandomAccessFile).read === "function";
}

function bytesOf(f: PretrainedFile): Uint8Array {
  if (typeof f === "string") return new TextEncoder().encode(f);
  if (isRandomAccess(f)) {
    const out = new Uint8Array(f.byteLength);
    f.read(out, 0);
    return out;
  }
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

/** Bytes of a weights file by range: a view of bytes in memory, or a read into the caller's scratch buffer. */
interface ByteSource {
  readonly length: number;
  /** the `length` bytes at `position`: a view, valid until the next call with the same scratch */
  bytes(position: number, length: number, scratch: Uint8Array): Uint8Array;
  close(): void;
}

function byteSource(f: PretrainedFile): ByteSource {
  if (isRandomAccess(f)) {
    return {
      length: f.byteLength,
      bytes: (position, length, scratch) => {
        const dst = scratch.subarray(0, length);
        f.read(dst, position);
        return dst;
      },
      close: () => f.close?.(),
    };
  }
  const all = bytesOf(f);
  return { length: all.length, bytes: (position, length) => all.subarray(position, position + length), close: () => {} };
}

/** One tensor of the checkpoint: where its bytes are (not read yet). */
interface StoredTensor {
  source: ByteSource;
  /** the data section's first byte in the file */
  dataStart: number;
  entry: SafetensorsEntry;
}

/** The header's tensors of one safetensors file (only the 8-byte length and the JSON header are read). */
function readHeader(source: ByteSource, scratch: Uint8Array): { dataStart: number; entries: SafetensorsEntry[] } {
  const prefix = source.bytes(0, Math.min(8, source.length), scratch);
  const headerLength = readSafetensorsHeaderLength(prefix, source.length);
  const dataStart = 8 + headerLength;
  const headerBytes = headerLength <= scratch.length ? source.bytes(8, headerLength, scratch) : source.bytes(8, headerLength, new Uint8Array(headerLength));
  return { dataStart, entries: parseSafetensorsHeader(headerBytes, source.length - dataStart).entries };
}

/** Every tensor of the checkpoint, by its name in the files (headers read, data not). */
function readWeights(read: FileReader, sources: ByteSource[], scratch: Uint8Array): Map<string, StoredTensor> {
  const out = new Map<string, StoredTensor>();
  const open = (f: PretrainedFile): { source: ByteSource; dataStart: number; entries: SafetensorsEntry[] } => {
    const source = byteSource(f);
    sources.push(source);
    return { source, ...readHeader(source, scratch) };
  };
  const single = read("model.safetensors");
  if (single !== null) {
    const { source, dataStart, entries } = open(single);
    for (const entry of entries) out.set(entry.name, { source, dataStart, entry });
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
    const { source, dataStart, entries } = open(f);
    for (const entry of entries) {
      const k = entry.name;
      if (weightMap[k] !== shard) throw new ArgumentError(`${FN}: tensor ${k} is in ${shard} but model.safetensors.index.json places it in ${String(weightMap[k] ?? "no shard")}`);
      if (out.has(k)) throw new ArgumentError(`${FN}: tensor ${k} is stored twice`);
      out.set(k, { source, dataStart, entry });
    }
  }
  for (const k of Object.keys(weightMap)) {
    if (!out.has(k)) throw new ArgumentError(`${FN}: tensor ${k} is listed in model.safetensors.index.json but absent from ${String(weightMap[k])}`);
  }
  return out;
}

const CONV1D = /^transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/** The checkpoint's names as the module names them; buffers the model recomputes are dropped. */
function canonical(arch: PretrainedArch, weights: Map<string, StoredTensor>): Map<string, StoredTensor> {
  const out = new Map<string, StoredTensor>();
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

/** Bytes per element of the floating-point file dtypes the loader reads; the others are refused. */
const FLOAT_ITEM: Partial<Record<SafetensorsDType, number>> = { F16: 2, BF16: 2, F32: 4, F64: 8 };

/** Bytes read per step: the loader's only buffer besides the parameters (plus one chunk of float32 values). */
const CHUNK_BYTES = 1 << 22;

/**
 * Streams a stored tensor's values, a chunk at a time, as float32: each(values, first) gets the
 * elements first .. first + values.length - 1 (row-major, as stored). F16 and BF16 widen exactly;
 * F64 rounds to float32 as storing it in a float32 parameter would.
 */
function eachChunk(t: StoredTensor, scratch: Uint8Array, floats: Float32Array, each: (values: Float32Array, first: number) => void): void {
  const { entry, source, dataStart } = t;
  const item = FLOAT_ITEM[entry.fileDType] as number;
  const n = (entry.end - entry.begin) / item;
  const perChunk = Math.floor(scratch.length / item);
  const bits = new Uint32Array(floats.buffer, floats.byteOffset, floats.length);
  for (let first = 0; first < n; first += perChunk) {
    const m = Math.min(perChunk, n - first);
    const b = source.bytes(dataStart + entry.begin + first * item, m * item, scratch);
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    switch (entry.fileDType) {
      case "BF16": // the top half of a float32
        for (let j = 0; j < m; j++) bits[j] = view.getUint16(2 * j, true) << 16;
        break;
      case "F16":
        for (let j = 0; j < m; j++) floats[j] = halfToNumber(view.getUint16(2 * j, true));
        break;
      case "F32":
        for (let j = 0; j < m; j++) floats[j] = view.getFloat32(4 * j, true);
        break;
      default: // F64
        for (let j = 0; j < m; j++) floats[j] = view.getFloat64(8 * j, true);
    }
    each(floats.subarray(0, m), first);
  }
}

/**
 * Writes a stored tensor into a parameter's own array, converting as it goes: as is, or (conv, a
 * GPT-2 Conv1D weight stored [in, out]) transposed into Linear's [out, in].
 *   readable form: param = conv ? transpose(decode(bytes), 0, 1) : decode(bytes)
 */
function readInto(t: StoredTensor, p: Tensor, conv: boolean, scratch: Uint8Array, floats: Float32Array): void {
  const dst = p.values;
  if (!conv) {
    eachChunk(t, scratch, floats, (v, first) => dst.set(v, first));
    return;
  }
  const [rows, cols] = t.entry.shape; // stored [in, out]; dst is [out, in]: dst[c * rows + r] = stored[r, c]
  eachChunk(t, scratch, floats, (v, first) => {
    let r = Math.floor(first / cols);
    let c = first - r * cols;
    for (let j = 0; j < v.length; j++) {
      dst[c * rows + r] = v[j];
      if (++c === cols) {
        c = 0;
        r++;
      }
    }
  });
}

/** Whether a stored tensor holds exactly a parameter's values (a stored lm_head against the tied embedding). */
function sameValues(t: StoredTensor, p: Tensor, scratch: Uint8Array, floats: Float32Array): boolean {
  if (sizeOf(t.entry.shape) !== p.size) return false;
  let same = true;
  eachChunk(t, scratch, floats, (v, first) => {
    for (let j = 0; j < v.length && same; j++) if (v[j] !== p.values[first + j]) same = false;
  });
  return same;
}

/** Check names, shapes and dtypes against the model, then read each tensor straight into its parameter. */
function loadInto(model: PretrainedLM, arch: PretrainedArch, weights: Map<string, StoredTensor>, scratch: Uint8Array): void {
  const given = canonical(arch, weights);
  const embedName = arch.family === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight";
  const head = given.get("lm_head.weight");
  if (arch.tieWordEmbeddings && head !== undefined) given.delete("lm_head.weight"); // checked against the embedding once it is read
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
  for (const [k, p] of params) {
    const t = given.get(k) as StoredTensor;
    const conv = arch.family === "gpt2" && CONV1D.test(k);
    const want = conv ? [p.shape[1], p.shape[0]] : p.shape;
    const shape = t.entry.shape;
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      throw new ShapeError(`${FN}: tensor ${k} has shape ${fmtShape(shape)}, expected ${fmtShape(want)}${conv ? " (Conv1D, [in, out])" : ""} for this config.json`);
    }
    if (FLOAT_ITEM[t.entry.fileDType] === undefined) throw new ArgumentError(`${FN}: tensor ${k} holds ${t.entry.fileDType}, expected floating-point weights (F16, BF16, F32 or F64)`);
  }
  const floats = new Float32Array(scratch.length / 2); // the widest chunk: BF16 or F16 bytes as float32
  for (const [k, p] of params) readInto(given.get(k) as StoredTensor, p, arch.family === "gpt2" && CONV1D.test(k), scratch, floats);
  if (head !== undefined && arch.tieWordEmbeddings) {
    if (FLOAT_ITEM[head.entry.fileDType] === undefined || !sameValues(head, params.get(embedName) as Tensor, scratch, floats)) {
      throw new ArgumentError(`${FN}: the checkpoint has its own lm_head.weight but config.json says tie_word_embeddings (the head is ${embedName}); set tie_word_embeddings to false if the head is separate`);
    }
  }
}

/** A JSON file that must hold an object (null when the folder has none). */
function jsonObjectOf(read: FileReader, name: string): HFConfig | null {
  const f = read(name);
  if (f === null) return null;
  const v = jsonOf(name, f);
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new ArgumentError(`${FN}: ${name} must hold a JSON object, got ${Array.isArray(v) ? "an array" : JSON.stringify(v)}`);
  return v as HFConfig;
}

/**
 * The (token, id) pairs tokenizer.json names: its model's vocabulary (an object token -> id for BPE,
 * WordPiece and WordLevel; a list of [piece, score] for Unigram, ids by place) and its added tokens.
 * Read from the JSON itself: the file is what the ids come from.
 */
function* tokenizerIds(json: unknown): Generator<[string, number]> {
  const t = (json ?? {}) as { model?: { vocab?: unknown }; added_tokens?: unknown };
  const vocab = t.model?.vocab;
  if (Array.isArray(vocab)) for (let i = 0; i < vocab.length; i++) yield [String((vocab[i] as unknown[])?.[0]), i];
  else if (vocab !== null && typeof vocab === "object") for (const [token, id] of Object.entries(vocab)) if (typeof id === "number") yield [token, id];
  if (Array.isArray(t.added_tokens)) for (const a of t.added_tokens as { id?: unknown; content?: unknown }[]) if (typeof a?.id === "number") yield [String(a.content), a.id];
}

/**
 * Every id of the tokenizer must have a row in the embedding (vocab_size rows): a larger id would
 * fail only when that token is met, far from its cause. Fewer ids than rows is normal (padding rows).
 */
function checkTokenizerVocab(json: unknown, arch: PretrainedArch): void {
  let maxId = -1;
  let maxToken = "";
  let over = 0;
  for (const [token, id] of tokenizerIds(json)) {
    if (id >= arch.vocabSize) over++;
    if (id > maxId) [maxId, maxToken] = [id, token];
  }
  if (maxId >= arch.vocabSize) {
    throw new ArgumentError(
      `${FN}: tokenizer.json has token ids up to ${maxId} (${JSON.stringify(maxToken)}; ${over} id(s) >= ${arch.vocabSize}), but config.json's vocab_size is ${arch.vocabSize} ` +
      `(the embedding's rows), so ids ${arch.vocabSize}..${maxId} have no embedding; expected every id below vocab_size (is tokenizer.json from another model?)`,
    );
  }
}

/** fromPretrained's work on a folder given by a reader of its files. */
export function loadPretrained(read: FileReader): Pretrained {
  const config = jsonObjectOf(read, "config.json");
  if (config === null) throw new ArgumentError(`${FN}: the folder has no config.json`);
  const arch = archFromConfig(config);
  // frozen: generation (read once, here: a bad file fails now, not at the first generateText) stays what it says
  const generationConfig = deepFreeze(jsonObjectOf(read, "generation_config.json"));
  const generation = generationDefaults(generationConfig, FN);
  // the tokenizer first: a mismatched one is reported before the weights are read
  const tok = read("tokenizer.json");
  const tokConfig = read("tokenizer_config.json");
  const tokJson = tok === null ? null : jsonOf("tokenizer.json", tok);
  if (tokJson !== null) checkTokenizerVocab(tokJson, arch);
  const tokenizer = tokJson === null ? null : new Tokenizer(tokJson as object, tokConfig === null ? {} : (jsonOf("tokenizer_config.json", tokConfig) as object));
  const model = new PretrainedLM(arch, { skipInit: true }); // zeros, each overwritten by the checkpoint
  const sources: ByteSource[] = [];
  try {
    const scratch = new Uint8Array(CHUNK_BYTES);
    loadInto(model, arch, readWeights(read, sources, scratch), scratch);
  } finally {
    for (const s of sources) s.close();
  }
  model.eval();
  return { model, tokenizer, config, generationConfig, generation };
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
