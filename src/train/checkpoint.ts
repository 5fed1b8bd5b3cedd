/**
 * Training checkpoints as files (the format: checkpointFormat.ts). Writing is atomic (a temporary
 * file renamed over the target), so an interrupted save leaves the previous checkpoint intact.
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { loadSafetensors, saveSafetensors } from "../io/files.js";
import {
  TRAINING_CHECKPOINT_FORMAT, TrainingCheckpointError, type TrainingCheckpoint, safetensorsOf, trainingCheckpointContents,
  trainingCheckpointFromContents,
} from "./checkpointFormat.js";

export { TRAINING_CHECKPOINT_FORMAT, TrainingCheckpointError, type TrainingCheckpoint };

export function saveTrainingCheckpoint(path: string, ckpt: TrainingCheckpoint): void {
  const { tensors, metadata } = trainingCheckpointContents(ckpt);
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  saveSafetensors(path, tensors, metadata);
}

/** Read a checkpoint; a missing, unreadable or foreign file is a TrainingCheckpointError saying which. */
export function loadTrainingCheckpoint(path: string): TrainingCheckpoint {
  if (!existsSync(path)) throw new TrainingCheckpointError(`no checkpoint at ${path}`);
  if (!statSync(path).isFile()) throw new TrainingCheckpointError(`${path} is not a file; expected a checkpoint written by attend train`);
  const contents = safetensorsOf(() => {
    try {
      return loadSafetensors(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (typeof code === "string") throw new TrainingCheckpointError(`cannot read checkpoint ${path}: ${code}`);
      throw e;
    }
  }, path);
  return trainingCheckpointFromContents(contents, path);
}
