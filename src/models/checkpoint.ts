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
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) if (!RESERVED.includes(k)) metadata[k] = v;
  return { model: model as M, family, config, metadata };
}

/** Every parameter present with its shape, nothing extra: errors name the tensor and both shapes. */
function checkTensors(fn: string, tensors: Record<string, Tensor>, model: Model): void {
  const want = model.stateDict();
  for (const [name, t] of Object.entries(want)) {
    const got = tensors[name];
    if (got === undefined) throw new ShapeError(`${fn}: parameter ${name} ${fmtShape(t.shape)} is missing from the checkpoint`);
    if (!sameShape(got.shape, t.shape)) throw new ShapeError(`${fn}: parameter ${name} has shape ${fmtShape(got.shape)} in the checkpoint but ${fmtShape(t.shape)} in the model`);
    if (got.dtype !== "float32" && got.dtype !== "float64") throw new ArgumentError(`${fn}: parameter ${name} is ${got.dtype} in the checkpoint; expected float`);
  }
  const extra = Object.keys(tensors).filter((k) => !(k in want));
  if (extra.length > 0) throw new ShapeError(`${fn}: the checkpoint has tensors the model does not: ${extra.join(", ")}`);
}

/** Restore a checkpoint from bytes (e.g. a file dropped in a browser). */
export function deserializeCheckpoint<M extends Model>(bytes: Uint8Array, into?: M, opts: ModelOptions = {}): LoadedCheckpoint<M> {
  return restoreCheckpoint(deserializeSafetensors(bytes), into, "bytes", opts);
}
