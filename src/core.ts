/**
 * Everything in attend that runs anywhere (Node and browsers). index.ts adds the file-system
 * functions for Node; browser.ts stands them in with clear errors.
 */
export { Tensor, tensor, isTensor, type TensorOptions, type TensorData, type NestedArray } from "./tensor/tensor.js";
export type { DType, FloatDType, TypedArray, RawTensor } from "./tensor/dtype.js";
export { AttendError, ShapeError, ArgumentError } from "./tensor/errors.js";
export { Generator, manualSeed, defaultGenerator } from "./tensor/random.js";
export { zeros, ones, full, arange, randn, rand, randint, type RandomOptions, type RandintOptions, type ShapeArgs } from "./tensor/creation.js";
export { noGrad, enableGrad, isGradEnabled } from "./autograd/tape.js";
export { backward } from "./autograd/backward.js"; // also attaches Tensor.prototype.backward
export { TENSOR_METHODS } from "./ops/methods.js"; // attaches x.add(y), x.matmul(w), ... to Tensor
export { gradcheck, type GradcheckOptions, type GradcheckResult } from "./autograd/gradcheck.js";

export {
  add, sub, mul, div, maximum, minimum, pow, neg, exp, log, sqrt, tanh, sigmoid, relu, abs, gelu,
  eq, ne, lt, le, gt, ge, logicalAnd, logicalOr, logicalNot, where, maskedFill, cast, clone,
  zerosLike, onesLike, fullLike, type GeluApproximate,
} from "./ops/elementwise.js";
export { sum, mean, max, argmax } from "./ops/reduce.js";
export { reshape, flatten, permute, transpose, squeeze, unsqueeze, expand, slice, concat, stack, split } from "./ops/shape.js";
export { matmul } from "./ops/matmul.js";
export { softmax, logSoftmax } from "./ops/softmax.js";
export { layerNorm, rmsNorm } from "./ops/norm.js";
export { linear, embedding, dropout, type DropoutOptions } from "./ops/functional.js";
export { crossEntropy, type CrossEntropyOptions } from "./ops/loss.js";

export { lookupAttention, type LookupOptions } from "./attention/lookup.js";
export {
  scaledDotProductAttention, scaledDotProductAttentionWithWeights, scaledDotProductAttentionWithLse, attentionWeights,
  type SdpaOptions, type SdpaImplementation, type AttentionWeightsOptions,
} from "./attention/sdpa.js";
export type { FlexOptions } from "./attention/flexPlan.js";
export { BlockMask, createBlockMask, type MaskMod, type BlockMaskOptions } from "./attention/blockMask.js";
export { flashAttentionSteps, type FlashStepsOptions, type FlashStepsState } from "./attention/flashSteps.js";
export {
  causalMask, paddingMask, windowMask, documentMask, alibiBias, defaultAlibiSlopes, type CausalAlignment, type SlidingWindow,
} from "./attention/masks.js";
export { MultiheadAttention, type MultiheadAttentionOptions } from "./attention/multihead.js";
export { GroupedQueryAttention, type GroupedQueryAttentionOptions } from "./attention/gqa.js";
export type { AttentionForwardOptions } from "./attention/moduleCommon.js";

export { Module, StateDictError, type StateDict } from "./nn/module.js";
export { Linear, type LinearOptions } from "./nn/linear.js";

export { serializeSafetensors, deserializeSafetensors, type SafetensorsContents } from "./io/tensors.js";
export { SafetensorsError, SAFETENSORS_MAX_TENSORS } from "./io/safetensors.js";

export * as nn from "./nnNamespace.js";
export {
  Embedding, LayerNorm, RMSNorm, Dropout, MLP, ModuleList, SinusoidalPositionalEncoding, LearnedPositionalEmbedding,
  RotaryEmbedding, applyRotary, KVCache, KVCacheLayer, kvCacheBytesPerToken, type QKTransform,
  PagedKVCache, type KVCacheOptions, type PagedKVCacheOptions,
} from "./nnNamespace.js";
export * from "./models/index.js";
export * from "./pretrained/index.js";

export {
  setBackend, getBackend, getBackendName, setNumThreads, getNumThreads, initWasm, wasmAvailable, wasmRuntimeInfo, type BackendName,
  withFrozenWeights,
  registerBackend, listBackends, findBackend, type BackendFactory, type RegisterBackendOptions,
} from "./kernels/index.js";
export type {
  Backend, MatmulParams, AttentionParams, AttentionDims, AttentionMask, CausalKind,
  AttentionWindow, AttentionDocuments, AttentionBlockMask, PositionAlignment, AttentionLayout, RowStrides,
} from "./kernels/backend.js";
export * as optim from "./optim/index.js";
export { SGD, AdamW, clipGradNorm, gradNorm, warmupCosine, inverseSqrtWarmup, constantSchedule, LRScheduler } from "./optim/index.js";
export type { Optimizer, SGDOptions, AdamWOptions, ClipOptions, Schedule, WarmupCosineOptions, InverseSqrtOptions } from "./optim/index.js";
export * as data from "./data/index.js";
export * from "./viz/index.js";
export * from "./lessons/index.js";
export type { SequenceModel, SourceContext, GenerateHook, AttentionView } from "./train/model.js";
export { GPTSequenceModel, EncoderDecoderSequenceModel, type FullModelOptions } from "./train/adapters.js";
export { TinyAttentionModel, type TinyConfig } from "./train/tiny.js";
export { evaluateModel, batchLoss, forwardBatch, type Evaluation } from "./train/evaluate.js";
export {
  TrainingCheckpointError, TRAINING_CHECKPOINT_FORMAT, type TrainingCheckpoint, serializeTrainingCheckpoint, deserializeTrainingCheckpoint,
  trainingCheckpointContents, trainingCheckpointFromContents,
} from "./train/checkpointFormat.js";
export { Progress, formatDuration, formatRate, type ProgressStream, type ProgressStats } from "./train/progress.js";
export { sampleTokens, answer, type SampleOptions } from "./train/sample.js";
export { TASK_DEFAULTS, taskDefaults, type TaskDefaults } from "./train/defaults.js";
export {
  makeData, makeModel, restoreRun, registerModelKind, modelKinds, DATA_NAMES, type RunConfig, type ModelFactory, type RestoredRun,
  checkRunConfig, checkRunState, RUN_LIMITS, type StoredRunConfig, type ModelStateCheck,
} from "./train/registry.js";
export type { DeviceBuffer } from "./tensor/storage.js";
