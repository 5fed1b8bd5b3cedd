/**
 * saveCheckpoint / loadCheckpoint: checkpoints on the file system (Node only; see checkpoint.ts for
 * the format and the byte-level versions that run in browsers). Saving is atomic (io/files.ts).
 */
import { loadSafetensors, saveSafetensors } from "../io/files.js";
import type { ModelOptions } from "./blocks.js";
import { type LoadedCheckpoint, type Model, checkpointMetadata, restoreCheckpoint } from "./checkpoint.js";

/** Write model's parameters, config and format version (plus extra string metadata) to path. */
export function saveCheckpoint(path: string, model: Model, extraMetadata?: Record<string, string>): void {
  const meta = checkpointMetadata(model, extraMetadata);
  saveSafetensors(path, model.stateDict(), meta);
}

/**
 * Read a checkpoint: builds the model from the stored config, or (with `into`) checks that the
 * model's config and parameter shapes match and loads into it.
 */
export function loadCheckpoint<M extends Model = Model>(path: string, into?: M, opts: ModelOptions = {}): LoadedCheckpoint<M> {
  return restoreCheckpoint(loadSafetensors(path), into, JSON.stringify(path), opts);
}
