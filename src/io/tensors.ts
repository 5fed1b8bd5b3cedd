/**
 * safetensors with Tensor objects: the format PyTorch and the Hugging Face ecosystem use for
 * checkpoints. encode/decode work anywhere; saveSafetensors/loadSafetensors use the file system
 * (Node), writing atomically (temporary file, then rename).
 */
import type { RawTensor } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensorsFile.js";

export interface SafetensorsContents {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

function toTensors(m: Map<string, RawTensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, r] of m) out[k] = new Tensor(r.data, r.shape, r.dtype);
  return out;
}

export function serializeSafetensors(tensors: Record<string, Tensor> | Map<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return encodeSafetensors(tensors, metadata);
}

export function deserializeSafetensors(bytes: Uint8Array): SafetensorsContents {
  const { tensors, metadata } = decodeSafetensors(bytes);
  return { tensors: toTensors(tensors), metadata };
}

/** Write tensors (and string metadata, e.g. a model config as JSON) to `path`, atomically. */
export function saveSafetensors(path: string, tensors: Record<string, Tensor> | Map<string, Tensor>, metadata?: Record<string, string>): void {
  writeSafetensorsFile(path, tensors, metadata);
}

/** Read a safetensors file; malformed or hostile files are rejected with a SafetensorsError. */
export function loadSafetensors(path: string): SafetensorsContents {
  const { tensors, metadata } = readSafetensorsFile(path);
  return { tensors: toTensors(tensors), metadata };
}
