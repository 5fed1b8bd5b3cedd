/**
 * attend for browsers: the whole API except the file system. saveSafetensors / loadSafetensors throw
 * a clear error; use serializeSafetensors / deserializeSafetensors on bytes instead.
 */
import { AttendError } from "./tensor/errors.js";
import type { SafetensorsContents } from "./io/tensors.js";
import type { Tensor } from "./tensor/tensor.js";

export * from "./core.js";

export function saveSafetensors(_path: string, _tensors: Record<string, Tensor> | Map<string, Tensor>, _metadata?: Record<string, string>): void {
  throw new AttendError("saveSafetensors: there is no file system in a browser; use serializeSafetensors(tensors) to get the bytes");
}

export function loadSafetensors(_path: string): SafetensorsContents {
  throw new AttendError("loadSafetensors: there is no file system in a browser; use deserializeSafetensors(bytes) on a fetched or dropped file");
}

export function saveCheckpoint(_path: string, _model: unknown, _extra?: Record<string, string>): void {
  throw new AttendError("saveCheckpoint: there is no file system in a browser; use serializeCheckpoint(model) to get the bytes");
}

export function loadCheckpoint(_path: string): never {
  throw new AttendError("loadCheckpoint: there is no file system in a browser; use deserializeCheckpoint(bytes) on a fetched or dropped file");
}
