/** saveSafetensors / loadSafetensors: Tensor checkpoints on the file system (Node only). */
import type { Tensor } from "../tensor/tensor.js";
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensorsFile.js";
import { type SafetensorsContents, toTensors } from "./tensors.js";

/** Write tensors (and string metadata, e.g. a model config as JSON) to `path`, atomically. */
export function saveSafetensors(path: string, tensors: Record<string, Tensor> | Map<string, Tensor>, metadata?: Record<string, string>): void {
  writeSafetensorsFile(path, tensors, metadata);
}

/** Read a safetensors file; malformed or hostile files are rejected with a SafetensorsError. */
export function loadSafetensors(path: string): SafetensorsContents {
  const { tensors, metadata } = readSafetensorsFile(path);
  return { tensors: toTensors(tensors), metadata };
}
