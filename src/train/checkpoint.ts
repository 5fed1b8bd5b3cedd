/**
 * Training checkpoints, what `attend train` writes and resumes from (a model's own saveCheckpoint
 * file holds weights and config only). One safetensors file: the model's tensors under "model.", the
 * optimizer's buffers under "optimizer.", and in the metadata the step, the run's config (JSON: model
 * kind and sizes, task, seed, ...), the optimizer's step counts and hyperparameters, the scheduler's
 * state.
 * Writing is atomic (a temporary file renamed over the target), so an interrupted save leaves the
 * previous checkpoint intact.
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { loadSafetensors, saveSafetensors } from "../io/files.js";
import { SafetensorsError } from "../io/safetensors.js";
import type { Tensor } from "../tensor/tensor.js";
import type { StateDict } from "../nn/module.js";
import type { LRSchedulerState } from "../optim/schedules.js";
import { TRAINING_CHECKPOINT_FORMAT, TrainingCheckpointError, type TrainingCheckpoint } from "./checkpointFormat.js";
import { optimizerStateFromTensors, optimizerStateToTensors } from "../optim/serialize.js";

export { TRAINING_CHECKPOINT_FORMAT, TrainingCheckpointError, type TrainingCheckpoint };

export function saveTrainingCheckpoint(path: string, ckpt: TrainingCheckpoint): void {
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(ckpt.model)) tensors[`model.${k}`] = t;
  const metadata: Record<string, string> = {
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
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  saveSafetensors(path, tensors, metadata);
}

function parseJson(path: string, what: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new TrainingCheckpointError(`${path}: the checkpoint's ${what} metadata is not valid JSON`);
  }
}

/** Read a checkpoint; a missing, unreadable or foreign file is a TrainingCheckpointError saying which. */
export function loadTrainingCheckpoint(path: string): TrainingCheckpoint {
  if (!existsSync(path)) throw new TrainingCheckpointError(`no checkpoint at ${path}`);
  if (!statSync(path).isFile()) throw new TrainingCheckpointError(`${path} is not a file; expected a checkpoint written by attend train`);
  let contents: ReturnType<typeof loadSafetensors>;
  try {
    contents = loadSafetensors(path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new TrainingCheckpointError(`${path} is not a valid checkpoint: ${e.message}`);
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined) throw new TrainingCheckpointError(`cannot read checkpoint ${path}: ${code}`);
    throw e;
  }
  const { tensors, metadata } = contents;
  if (metadata.format === "attend-checkpoint") {
    throw new TrainingCheckpointError(`${path} is a model checkpoint (saveCheckpoint: weights and config only); this needs a training checkpoint written by attend train`);
  }
  if (metadata.format !== TRAINING_CHECKPOINT_FORMAT) {
    throw new TrainingCheckpointError(`${path} is a safetensors file but not an attend training checkpoint (format ${JSON.stringify(metadata.format ?? null)}, expected ${TRAINING_CHECKPOINT_FORMAT})`);
  }
  const step = Number(metadata.step);
  if (!Number.isInteger(step) || step < 0) throw new TrainingCheckpointError(`${path}: bad step ${JSON.stringify(metadata.step)}`);
  const config = parseJson(path, "config", metadata.config);
  if (config === null || typeof config !== "object") throw new TrainingCheckpointError(`${path}: the checkpoint has no config`);
  const model: StateDict = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith("model.")) model[k.slice(6)] = t;
  const ckpt: TrainingCheckpoint = { step, config: config as Record<string, unknown>, model };
  if (metadata.optimizer !== undefined) {
    try {
      ckpt.optimizer = optimizerStateFromTensors(tensors, metadata.optimizer, "optimizer.");
    } catch (e) {
      throw new TrainingCheckpointError(`${path}: the optimizer state is damaged: ${(e as Error).message}`);
    }
  }
  const sched = parseJson(path, "scheduler", metadata.scheduler);
  if (sched !== undefined) ckpt.scheduler = sched as LRSchedulerState;
  return ckpt;
}
