/** Training: the loop, checkpoints, evaluation, sampling, progress, and a one-block model (model kind "block") to test them with. */
export type { SequenceModel, SourceContext, GenerateHook, AttentionView } from "./model.js";
export { GPTSequenceModel, EncoderDecoderSequenceModel, type FullModelOptions } from "./adapters.js";
export { TinyAttentionModel, type TinyConfig } from "./tiny.js";
export { TASK_DEFAULTS, taskDefaults, type TaskDefaults } from "./defaults.js";
export { trainModel, type TrainOptions, type TrainResult } from "./loop.js";
export { evaluateModel, batchLoss, forwardBatch, type Evaluation } from "./evaluate.js";
export { saveTrainingCheckpoint, loadTrainingCheckpoint, TrainingCheckpointError, TRAINING_CHECKPOINT_FORMAT, type TrainingCheckpoint } from "./checkpoint.js";
export { Progress, formatDuration, formatRate, type ProgressStream, type ProgressStats } from "./progress.js";
export { sampleTokens, answer, type SampleOptions } from "./sample.js";
export {
  makeData, makeModel, restoreRun, registerModelKind, modelKinds, DATA_NAMES, type RunConfig, type ModelFactory, type RestoredRun,
  checkRunConfig, checkRunState, currentModelKind, RUN_LIMITS, type StoredRunConfig, type ModelStateCheck,
} from "./registry.js";
