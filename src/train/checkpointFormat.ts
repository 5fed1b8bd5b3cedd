/** What a training checkpoint holds (browser-safe: no file system here; checkpoint.ts reads and writes files). */
import type { StateDict } from "../nn/module.js";
import { AttendError } from "../tensor/errors.js";
import type { OptimizerStateDict } from "../optim/optimizer.js";
import type { LRSchedulerState } from "../optim/schedules.js";

export const TRAINING_CHECKPOINT_FORMAT = "attend-training-checkpoint/1";

export class TrainingCheckpointError extends AttendError {}

export interface TrainingCheckpoint {
  /** training steps completed */
  step: number;
  /** everything needed to rebuild the model and data: model kind, sizes, task, seed, ... */
  config: Record<string, unknown>;
  model: StateDict;
  optimizer?: OptimizerStateDict;
  scheduler?: LRSchedulerState;
}

