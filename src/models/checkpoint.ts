/**
 * Checkpoints: a model's state dict as safetensors, with metadata that lets the file rebuild the
 * model and be checked against one:
 *
 *   "format": "attend-checkpoint"    "format_version": "1"
 *   "model":  "gpt" | "encoder-decoder"
 *   "config": the model's config as JSON
 *   ... any extra string metadata (a step count, a tokenizer, notes)
 *
 * Tensors are named as model.stateDict() names them and stored in the model's dtype, so PyTorch
 * (or the safetensors library) reads them directly. These functions work on bytes and run anywhere;
 * checkpointFile.ts adds saveCheckpoint / loadCheckpoint for Node.
 */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { sameShape } from "../tensor/shape.js";
import { type SafetensorsContents, deserializeSafetensors, serializeSafetensors } from "../io/tensors.js";
import type { ModelOptions } from "./blocks.js";
import {
  type EncoderDecoderConfig, type GPTConfig, configDifferences, validateEncoderDecoderConfig, validateGPTConfig,
} from "./config.js";
import { EncoderDecoder } from "./encoderDecoder.js";
import { GPT } from "./gpt.js";

export const CHECKPOINT_FORMAT = "attend-checkpoint";
export const CHECKPOINT_VERSION = 1;
const RESERVED = ["format", "format_version", "model", "config"];
/** How the training checkpoints of src/train (TRAINING_CHECKPOINT_FORMAT, a layer above) begin their "format". */
const TRAINING_FORMAT_PREFIX = "attend-training-checkpoint/";

export type Model = GPT | EncoderDecoder;
export type ModelFamily = Model["family"];
export type ModelConfig = GPTConfig | EncoderDecoderConfig;

export interface LoadedCheckpoint<M extends Model = Model> {
  model: M;
  family: ModelFamily;
  config: ModelConfig;
  /** the extra metadata given when saving (the reserved keys removed) */
  metadata: Record<string, string>;
}

/** Build a fresh model of a family from its config (as stored in a checkpoint). */
export function createModel(family: ModelFamily, config: unknown, opts: ModelOptions = {}): Model {
  switch (family) {
    case "gpt": return new GPT(validateGPTConfig(config), opts);
    case "encoder-decoder": return new EncoderDecoder(validateEncoderDecoderConfig(config), opts);
    default: throw new ArgumentError(`createModel: unknown model family ${JSON.stringify(family)} (expected "gpt" or "encoder-decoder")`);
  }
}

function checkModel(fn: string, model: unknown): asserts model is Model {
  if (!(model instanceof GPT) && !(model instanceof EncoderDecoder)) {
    throw new ArgumentError(`${fn}: model must be a GPT or an EncoderDecoder, got ${model === null ? "null" : (model as object)?.constructor?.name ?? typeof model}`);
  }
}

/** The checkpoint metadata of a model, with extra string entries. */
export function checkpointMetadata(model: Model, extra: Record<string, string> = {}): Record<string, string> {
  const fn = "saveCheckpoint";
  checkModel(fn, model);
  for (const [k, v] of Object.entries(extra)) {
    if (RESERVED.includes(k)) throw new ArgumentError(`${fn}: extraMetadata key ${JSON.stringify(k)} is reserved (reserved: ${RESERVED.join(", ")})`);
    if (typeof v !== "string") throw new ArgumentError(`${fn}: extraMetadata values must be strings (JSON.stringify others), got ${typeof v} for ${JSON.stringify(k)}`);
  }
  return {
    ...extra,
    format: CHECKPOINT_FORMAT,
    format_version: String(CHECKPOINT_VERSION),
    model: model.family,
    config: JSON.stringify(model.config),
  };
}

/** A model as checkpoint bytes (safetensors). */
export function serializeCheckpoint(model: Model, extraMetadata?: Record<string, string>): Uint8Array {
  const meta = checkpointMetadata(model, extraMetadata);
  return serializeSafetensors(model.stateDict(), meta);
}

/**
 * Restore a checkpoint read from a file or bytes. Without `into`, a model is built from the stored
 * config; with `into`, its family and config must match the stored ones field by field, and every
 * tensor's name and shape must match its state dict. Nothing is changed unless all of it fits.
 */
export function restoreCheckpoint<M extends Model>(contents: SafetensorsContents, into?: M, source = "checkpoint", opts: ModelOptions = {}): LoadedCheckpoint<M> {
  const fn = `loadCheckpoint(${source})`;
  const meta = contents.metadata;
  if (typeof meta.format === "string" && meta.format.startsWith(TRAINING_FORMAT_PREFIX)) {
    throw new ArgumentError(
      `${fn}: this is a training checkpoint (written by attend train: metadata "format" is ${JSON.stringify(meta.format)}), not a model checkpoint; ` +
        `read it with loadTrainingCheckpoint(path) (deserializeTrainingCheckpoint(bytes) for bytes) and rebuild its model and data with restoreRun(ckpt)`,
    );
  }
  if (meta.format !== CHECKPOINT_FORMAT) {
    throw new ArgumentError(`${fn}: not an attend checkpoint (metadata "format" is ${JSON.stringify(meta.format)}, expected ${JSON.stringify(CHECKPOINT_FORMAT)}); for plain tensors use loadSafetensors`);
  }
  const version = Number(meta.format_version);
  if (!Number.isInteger(version) || version < 1 || version > CHECKPOINT_VERSION) {
    throw new ArgumentError(`${fn}: format_version ${JSON.stringify(meta.format_version)} is not one this library reads (1..${CHECKPOINT_VERSION}); a newer attend wrote it`);
  }
  const family = meta.model as ModelFamily;
  if (family !== "gpt" && family !== "encoder-decoder") throw new ArgumentError(`${fn}: unknown model family ${JSON.stringify(meta.model)}`);
  let stored: unknown;
  try {
    stored = JSON.parse(meta.config);
  } catch (err) {
    throw new ArgumentError(`${fn}: the "config" metadata is not valid JSON (${(err as Error).message})`);
  }
  const config = family === "gpt" ? validateGPTConfig(stored) : validateEncoderDecoderConfig(stored);
  if (into === undefined) checkConfigAgainstTensors(fn, family, config, contents.tensors);
  let model: Model;
  if (into !== undefined) {
    checkModel(fn, into);
    if (into.family !== family) throw new ArgumentError(`${fn}: the checkpoint holds a ${family} model but the model given is a ${into.family}`);
    const diff = configDifferences(config, into.config);
    if (diff.length > 0) {
      const what = diff.map((d) => `${d.field} is ${JSON.stringify(d.a)} in the checkpoint but ${JSON.stringify(d.b)} in the model`).join("; ");
      throw new ArgumentError(`${fn}: the checkpoint's config does not match the model's: ${what}`);
    }
    model = into;
  } else {
    model = createModel(family, config, opts);
  }
  checkTensors(fn, contents.tensors, model);
  model.loadStateDict(contents.tensors);
  const metadata = Object.fromEntries(Object.entries(meta).filter(([k]) => !RESERVED.includes(k))); // fromEntries: a key "__proto__" stays a key
  return { model: model as M, family, config, metadata };
}

/**
 * Before a model is built from a stored config: the config must agree with the tensors beside it,
 * so that a damaged or hostile file cannot make us allocate a model it does not hold (a 376-byte
 * file claiming 200000 layers). Checked, without allocating: the vocabulary sizes and dModel
 * against the embeddings' shapes, maxSeqLen against a learned position table, dFF against the
 * first MLP, the number of layers against the layers present, and the whole model's size (an
 * upper bound, see parameterBound) against the values the file holds. `label` is how the errors
 * name the config (e.g. `config`). checkTensors later compares every tensor exactly.
 */
export function checkConfigAgainstTensors(fn: string, family: ModelFamily, config: ModelConfig, tensors: Record<string, Tensor>, label = "config"): void {
  const c = config as unknown as Record<string, number>;
  const key = (field: string): string => `${label} ${field} is ${JSON.stringify(c[field])}`;
  /** the tensor's shape, which must be 2-D */
  const matrix = (name: string, why: string): readonly number[] => {
    const t = Object.hasOwn(tensors, name) ? tensors[name] : undefined;
    if (t === undefined) throw new ArgumentError(`${fn}: the checkpoint has no ${name} (${why}); expected one for a ${family} ${label}`);
    if (t.shape.length !== 2) throw new ArgumentError(`${fn}: ${name} has shape ${fmtShape(t.shape)}; expected a matrix (${why})`);
    return t.shape;
  };
  /** config[field] must equal a dimension of a tensor */
  const agree = (field: string, name: string, dim: 0 | 1, why: string): void => {
    const shape = matrix(name, why);
    if (c[field] !== shape[dim]) {
      throw new ArgumentError(`${fn}: ${key(field)} but ${name} has shape ${fmtShape(shape)}; expected ${field} ${shape[dim]} (${why})`);
    }
  };
  /**
   * config[field] layers `prefix`0 .. must all be present; and when the layers present are numbered
   * 0 to K - 1, there must be K of them (other extra tensors are named by checkTensors later).
   */
  const layers = (field: string, prefix: string): void => {
    const present = layerIndices(tensors, prefix);
    const n = c[field];
    let gapless = 0;
    while (present.has(gapless)) gapless++;
    const missing = gapless < n;
    if (missing || (present.size === gapless && gapless !== n)) {
      const sorted = [...present].sort((a, b) => a - b);
      const held = present.size === 0 ? "no layers" : `${present.size} layer${present.size === 1 ? "" : "s"} (${sorted.slice(0, 3).map((i) => `${prefix}${i}`).join(", ")}${present.size > 3 ? ", ..." : ""})`;
      const numbered = present.size === gapless ? "" : ` (the layers numbered from 0 without a gap)`;
      throw new ArgumentError(`${fn}: ${key(field)} but the checkpoint holds ${held}; expected ${field} ${gapless}${numbered}`);
    }
  };
  if (family === "gpt") {
    const g = config as GPTConfig;
    agree("vocabSize", "tok_emb.weight", 0, "the token embedding is [vocabSize, dModel]");
    agree("dModel", "tok_emb.weight", 1, "the token embedding is [vocabSize, dModel]");
    if (g.positional === "learned") agree("maxSeqLen", "pos_emb.weight", 0, "learned positions are [maxSeqLen, dModel]");
    layers("numLayers", "blocks.");
    agree("dFF", "blocks.0.mlp.fc1.weight", 0, "the MLP's first layer is [dFF, dModel]");
  } else {
    const e = config as EncoderDecoderConfig;
    agree("srcVocabSize", "src_emb.weight", 0, "the source embedding is [srcVocabSize, dModel]");
    agree("dModel", "src_emb.weight", 1, "the source embedding is [srcVocabSize, dModel]");
    agree("tgtVocabSize", "tgt_emb.weight", 0, "the target embedding is [tgtVocabSize, dModel]");
    if (e.positional === "learned") agree("maxSeqLen", "src_pos.weight", 0, "learned positions are [maxSeqLen, dModel]");
    layers("numEncoderLayers", "encoder.layers.");
    layers("numDecoderLayers", "decoder.layers.");
    agree("dFF", "encoder.layers.0.mlp.fc1.weight", 0, "the MLP's first layer is [dFF, dModel]");
  }
  let held = 0;
  for (const t of Object.values(tensors)) held += t.size;
  const bound = parameterBound(family, config);
  if (bound > 2 * held) {
    throw new ArgumentError(
      `${fn}: the ${label} describes a model of up to ${bound} parameters but the checkpoint holds ${held} values; ` +
        `expected a ${label} that matches its tensors (numHeads, numKvHeads, bias?)`,
    );
  }
}

/** The layer numbers i of tensors named `${prefix}${i}.…`. */
function layerIndices(tensors: Record<string, Tensor>, prefix: string): Set<number> {
  const out = new Set<number>();
  for (const name of Object.keys(tensors)) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(0|[1-9]\d{0,8})\./.exec(name.slice(prefix.length));
    if (m !== null) out.add(Number(m[1]));
  }
  return out;
}

/**
 * An upper bound on the number of parameters of a config's model, computed without building it: at
 * least the true count and at most twice it (every attention counted as multi-head with biases,
 * 4C² + 4C, which grouped-query attention without biases halves at most, plus H sink logits with
 * config.sinks; each norm as 2C; each MLP as 2CF + F + C). test/models.test.ts checks both sides on
 * every preset and variant, test/flex-modules.test.ts with sinks.
 */
export function parameterBound(family: ModelFamily, config: ModelConfig): number {
  const c = config;
  const C = c.dModel, F = c.dFF;
  const attention = 4 * C * C + 4 * C + (c.sinks ? c.numHeads : 0);
  const block = (cross: boolean): number => (cross ? 2 : 1) * attention + (cross ? 3 : 2) * 2 * C + 2 * C * F + F + C;
  if (family === "gpt") {
    const g = c as GPTConfig;
    const embeddings = g.vocabSize * C * (g.tieWeights ? 1 : 2) + (g.positional === "learned" ? g.maxSeqLen * C : 0);
    return embeddings + g.numLayers * block(false) + 2 * C;
  }
  const e = c as EncoderDecoderConfig;
  const embeddings = (e.srcVocabSize + e.tgtVocabSize * (e.tieWeights ? 1 : 2) + (e.positional === "learned" ? 2 * e.maxSeqLen : 0)) * C;
  return embeddings + e.numEncoderLayers * block(false) + e.numDecoderLayers * block(true) + 4 * C;
}

/** Every parameter present with its shape, nothing extra: errors name the tensor and both shapes. */
function checkTensors(fn: string, tensors: Record<string, Tensor>, model: Model): void {
  const want = model.stateDict();
  for (const [name, t] of Object.entries(want)) {
    const got = Object.hasOwn(tensors, name) ? tensors[name] : undefined;
    if (got === undefined) throw new ShapeError(`${fn}: parameter ${name} ${fmtShape(t.shape)} is missing from the checkpoint`);
    if (!sameShape(got.shape, t.shape)) throw new ShapeError(`${fn}: parameter ${name} has shape ${fmtShape(got.shape)} in the checkpoint but ${fmtShape(t.shape)} in the model`);
    if (got.dtype !== "float32" && got.dtype !== "float64") throw new ArgumentError(`${fn}: parameter ${name} is ${got.dtype} in the checkpoint; expected float`);
  }
  const extra = Object.keys(tensors).filter((k) => !Object.hasOwn(want, k));
  if (extra.length > 0) throw new ShapeError(`${fn}: the checkpoint has tensors the model does not: ${extra.join(", ")}`);
}

/** Restore a checkpoint from bytes (e.g. a file dropped in a browser). */
export function deserializeCheckpoint<M extends Model>(bytes: Uint8Array, into?: M, opts: ModelOptions = {}): LoadedCheckpoint<M> {
  return restoreCheckpoint(deserializeSafetensors(bytes), into, "bytes", opts);
}
