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
  type TrainingCheckpoint, deserializeSafetensors, serializeTrainingCheckpoint, trainingCheckpointFromContents, SafetensorsError,
  TrainingCheckpointError,
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
  return serializeTrainingCheckpoint(ckpt, extra);
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
  const checkpoint = trainingCheckpointFromContents(contents, name);
  const infos = Object.entries(contents.tensors).map(([n, t]) => ({ name: n, dtype: t.dtype, shape: [...t.shape] }));
  return { checkpoint, metadata: contents.metadata, tensors: infos };
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
