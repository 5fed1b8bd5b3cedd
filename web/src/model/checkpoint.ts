/**
 * Training checkpoints as bytes, in the format `attend train` writes (src/train/checkpoint.ts does
 * the same with files): one safetensors file, the model's tensors under "model.", the optimizer's
 * buffers under "optimizer.", and in the metadata format, step, config (JSON), optimizer (JSON) and
 * scheduler (JSON). The page adds one key of its own, "losses" (the loss of every step trained in the
 * page), which the library's reader ignores; so a file saved here loads in `attend eval`,
 * `attend sample`, `attend attn-map` and `attend train --resume`, and a file from `attend train`
 * loads here.
 */
import {
  type TrainingCheckpoint, type Tensor, SafetensorsError, TRAINING_CHECKPOINT_FORMAT, TrainingCheckpointError,
  deserializeSafetensors, optim, serializeSafetensors,
} from "attend";

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
}

export interface ReadCheckpoint {
  checkpoint: TrainingCheckpoint;
  metadata: Record<string, string>;
  tensors: TensorInfo[];
}

export function checkpointBytes(ckpt: TrainingCheckpoint, extra: Record<string, string> = {}): Uint8Array {
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(ckpt.model)) tensors[`model.${k}`] = t;
  const metadata: Record<string, string> = { ...extra, format: TRAINING_CHECKPOINT_FORMAT, step: String(ckpt.step), config: JSON.stringify(ckpt.config) };
  if (ckpt.optimizer) {
    const o = optim.optimizerStateToTensors(ckpt.optimizer, "optimizer.");
    Object.assign(tensors, o.tensors);
    metadata.optimizer = o.json;
  }
  if (ckpt.scheduler) metadata.scheduler = JSON.stringify(ckpt.scheduler);
  return serializeSafetensors(tensors, metadata);
}

function parseJson(name: string, what: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new TrainingCheckpointError(`${name}: the checkpoint's ${what} metadata is not valid JSON`);
  }
}

/** Read checkpoint bytes; a foreign or damaged file is a TrainingCheckpointError saying which (as loadTrainingCheckpoint's). */
export function readCheckpoint(bytes: Uint8Array, name: string): ReadCheckpoint {
  let contents: ReturnType<typeof deserializeSafetensors>;
  try {
    contents = deserializeSafetensors(bytes);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new TrainingCheckpointError(`${name} is not a valid checkpoint: ${e.message}`);
    throw e;
  }
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
  const model: TrainingCheckpoint["model"] = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith("model.")) model[k.slice(6)] = t;
  const checkpoint: TrainingCheckpoint = { step, config: config as Record<string, unknown>, model };
  if (metadata.optimizer !== undefined) {
    try {
      checkpoint.optimizer = optim.optimizerStateFromTensors(tensors, metadata.optimizer, "optimizer.");
    } catch (e) {
      throw new TrainingCheckpointError(`${name}: the optimizer state is damaged: ${(e as Error).message}`);
    }
  }
  const sched = parseJson(name, "scheduler", metadata.scheduler);
  if (sched !== undefined) checkpoint.scheduler = sched as TrainingCheckpoint["scheduler"];
  const infos = Object.entries(tensors).map(([n, t]) => ({ name: n, dtype: t.dtype, shape: [...t.shape] }));
  return { checkpoint, metadata, tensors: infos };
}

/** The per-step losses a checkpoint saved by this page carries ("losses" metadata), or none. */
export function lossHistory(metadata: Record<string, string>, step: number): number[] {
  try {
    const v: unknown = JSON.parse(metadata.losses ?? "[]");
    return Array.isArray(v) && v.length <= step && v.every((x) => typeof x === "number") ? v : [];
  } catch {
    return [];
  }
}
