/**
 * safetensors with Tensor objects: the format PyTorch and the Hugging Face ecosystem use for
 * checkpoints. These work anywhere; io/files.ts adds saveSafetensors/loadSafetensors for Node.
 */
import type { RawTensor } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.js";

export interface SafetensorsContents {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/** The tensors as a record without a prototype, so any name (even "__proto__") is an ordinary key. */
export function toTensors(m: Map<string, RawTensor>): Record<string, Tensor> {
  const out = Object.create(null) as Record<string, Tensor>;
  for (const [k, r] of m) out[k] = new Tensor(r.values, r.shape, r.dtype);
  return out;
}

export function serializeSafetensors(tensors: Record<string, Tensor> | Map<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return encodeSafetensors(tensors, metadata);
}

export function deserializeSafetensors(bytes: Uint8Array): SafetensorsContents {
  const { tensors, metadata } = decodeSafetensors(bytes);
  return { tensors: toTensors(tensors), metadata };
}
