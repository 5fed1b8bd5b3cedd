/**
 * attend: the attention mechanism of transformers in TypeScript, from a lookup table to
 * grouped-query attention, with tensors and reverse-mode autograd, exact to PyTorch.
 * This is the Node entry; browsers get browser.ts (same API, no file system).
 */
export * from "./core.js";
export { saveSafetensors, loadSafetensors } from "./io/files.js";
export { saveCheckpoint, loadCheckpoint } from "./models/checkpointFile.js";
export { trainModel, type TrainOptions, type TrainResult } from "./train/loop.js";
export { fromPretrained, type FromPretrainedOptions } from "./pretrained/node.js";
export { saveTrainingCheckpoint, loadTrainingCheckpoint } from "./train/checkpoint.js";
