/** Optimizers, gradient clipping and learning-rate schedules (torch.optim's behaviour). */
export {
  Optimizer, type ParamsInput, type ParamGroupInput, type ParamGroup, type ParamState, type OptimizerStateDict, type HyperValue,
} from "./optimizer.js";
export { SGD, type SGDOptions } from "./sgd.js";
export { AdamW, type AdamWOptions } from "./adamw.js";
export { clipGradNorm, gradNorm, type ClipOptions } from "./clip.js";
export {
  warmupCosine, inverseSqrtWarmup, constantSchedule, LRScheduler,
  type Schedule, type WarmupCosineOptions, type InverseSqrtOptions, type LRSchedulerState,
} from "./schedules.js";
export { optimizerStateToTensors, optimizerStateFromTensors } from "./serialize.js";
