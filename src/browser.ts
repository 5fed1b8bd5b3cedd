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

export function trainModel(_model: unknown, _data: unknown, _opts: unknown): never {
  throw new AttendError("trainModel: the training loop writes checkpoints to files and runs in Node; in a browser, step an optimizer yourself (see the explorer's page 9)");
}

export function saveTrainingCheckpoint(_path: string, _ckpt: unknown): never {
  throw new AttendError("saveTrainingCheckpoint: there is no file system in a browser; use serializeSafetensors on the model's stateDict()");
}

export function loadTrainingCheckpoint(_path: string): never {
  throw new AttendError("loadTrainingCheckpoint: there is no file system in a browser; use deserializeSafetensors(bytes) and restoreRun on a dropped file");
}

export function fromPretrained(_dir: string): never {
  throw new AttendError("fromPretrained: there is no file system in a browser; use fromPretrainedFiles({ \"config.json\": text, \"model.safetensors\": bytes, … }) on fetched or dropped files");
}
