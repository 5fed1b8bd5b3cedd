/**
 * Training checkpoints, what `attend train` writes and resumes from (a model's own saveCheckpoint
 * file holds weights and config only), as bytes: browser-safe, no file system here (checkpoint.ts
 * reads and writes files; the explorer reads dropped files with the same code).
 *
 * One safetensors file: the model's tensors under "model.", the optimizer's buffers under
 * "optimizer.", and in the metadata the format, the step, the run's config (JSON: model kind and
 * sizes, task, seed, ...), the optimizer's step counts and hyperparameters, the scheduler's state.
 * Extra metadata keys are kept by the writer and ignored by the reader.
 */
import type { StateDict } from "../nn/module.js";
import { AttendError } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import type { OptimizerStateDict } from "../optim/optimizer.js";
import type { LRSchedulerState } from "../optim/schedules.js";
import { optimizerStateFromTensors, optimizerStateToTensors } from "../optim/serialize.js";
import { SafetensorsError } from "../io/safetensors.js";
import { type SafetensorsContents, deserializeSafetensors, serializeSafetensors } from "../io/tensors.js";

export const TRAINING_CHECKPOINT_FORMAT = "attend-training-checkpoint/1";

export class TrainingCheckpointError extends AttendError {}

export interface TrainingCheckpoint {
  /** training steps completed */
  step: number;
  /** everything needed to rebuild the model and data: model kind, sizes, task, seed, ... */
  config: Record<string, unknown>;
  model: StateDict;
  optimizer?: OptimizerStateDict;
  scheduler?: LRSchedulerState;
}


/** The tensors and metadata a checkpoint file holds (`extra` metadata first; the format's keys win). */
export function trainingCheckpointContents(ckpt: TrainingCheckpoint, extra: Record<string, string> = {}): SafetensorsContents {
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(ckpt.model)) tensors[`model.${k}`] = t;
  const metadata: Record<string, string> = {
    ...extra,
    format: TRAINING_CHECKPOINT_FORMAT,
    step: String(ckpt.step),
    config: JSON.stringify(ckpt.config),
  };
  if (ckpt.optimizer) {
    const o = optimizerStateToTensors(ckpt.optimizer, "optimizer.");
    Object.assign(tensors, o.tensors);
    metadata.optimizer = o.json;
  }
  if (ckpt.scheduler) metadata.scheduler = JSON.stringify(ckpt.scheduler);
  return { tensors, metadata };
}

function parseJson(name: string, what: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new TrainingCheckpointError(`${name}: the checkpoint's ${what} metadata is not valid JSON`);
  }
}

/** A checkpoint out of a safetensors file's contents; a foreign or damaged one is a TrainingCheckpointError naming `name`. */
export function trainingCheckpointFromContents(contents: SafetensorsContents, name = "checkpoint"): TrainingCheckpoint {
  const { tensors, metadata } = contents;
  if (metadata.format === "attend-checkpoint") {
    throw new TrainingCheckpointError(`${name} is a model checkpoint (saveCheckpoint: weights and config only); this needs a training checkpoint written by attend train`);
  }
  if (metadata.format !== TRAINING_CHECKPOINT_FORMAT) {
    throw new TrainingCheckpointError(`${name} is a safetensors file but not an attend training checkpoint (format ${JSON.stringify(metadata.format ?? null)}, expected ${TRAINING_CHECKPOINT_FORMAT})`);
  }
  const step = Number(metadata.step);
  if (!Number.isInteger(step) || step < 0) throw new TrainingCheckpointError(`${name}: bad step ${JSON.stringify(metadata.step)}`);
  const config = parseJson(name, "config", metadata.config);
  if (config === null || typeof config !== "object") throw new TrainingCheckpointError(`${name}: the checkpoint has no config`);
  const model: StateDict = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith("model.")) model[k.slice(6)] = t;
  const ckpt: TrainingCheckpoint = { step, config: config as Record<string, unknown>, model };
  if (metadata.optimizer !== undefined) {
    try {
      ckpt.optimizer = optimizerStateFromTensors(tensors, metadata.optimizer, "optimizer.");
    } catch (e) {
      throw new TrainingCheckpointError(`${name}: the optimizer state is damaged: ${(e as Error).message}`);
    }
  }
  const sched = parseJson(name, "scheduler", metadata.scheduler);
  if (sched !== undefined) ckpt.scheduler = sched as LRSchedulerState;
  return ckpt;
}

/** A checkpoint as the bytes of a safetensors file (what saveTrainingCheckpoint writes). */
export function serializeTrainingCheckpoint(ckpt: TrainingCheckpoint, extraMetadata: Record<string, string> = {}): Uint8Array {
  const { tensors, metadata } = trainingCheckpointContents(ckpt, extraMetadata);
  return serializeSafetensors(tensors, metadata);
}

/** Reads checkpoint bytes (a fetched or dropped file); `name` is what errors call it. */
export function deserializeTrainingCheckpoint(bytes: Uint8Array, name = "checkpoint"): TrainingCheckpoint {
  return trainingCheckpointFromContents(safetensorsOf(() => deserializeSafetensors(bytes), name), name);
}

/** Runs a safetensors read, turning a malformed file into a TrainingCheckpointError naming it. */
export function safetensorsOf(read: () => SafetensorsContents, name: string): SafetensorsContents {
  try {
    return read();
  } catch (e) {
    if (e instanceof SafetensorsError) throw new TrainingCheckpointError(`${name} is not a valid checkpoint: ${e.message}`);
    throw e;
  }
}
