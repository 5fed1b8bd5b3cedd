/**
 * Models built from attend's modules: configs and presets, the pre-norm block, a GPT-style decoder,
 * an "Attention Is All You Need" encoder-decoder, generation with a KV cache, and checkpoints as
 * bytes. (saveCheckpoint / loadCheckpoint, which need the file system, are in checkpointFile.ts.)
 */
export {
  GPT_PRESETS, ENCODER_DECODER_PRESETS, gptConfig, encoderDecoderConfig, validateGPTConfig, validateEncoderDecoderConfig,
  configDifferences,
  type BlockConfig, type GPTConfig, type EncoderDecoderConfig, type GPTPresetName, type EncoderDecoderPresetName,
  type PositionalKind, type NormKind,
} from "./config.js";
export {
  TransformerBlock, makeAttention, makeNorm,
  type Attention, type Norm, type AttentionMap, type BlockForwardOptions, type BlockOutput, type ModelOptions,
} from "./blocks.js";
export { GPT, type GPTForwardOptions, type ForwardWithAttention } from "./gpt.js";
export { EncoderDecoder, TransformerStack, type EncodeOptions, type DecodeOptions } from "./encoderDecoder.js";
export { tokenTensor, type TokenInput } from "./tokens.js";
export {
  generate, generateSeq2Seq, sampleToken, applyRepetitionPenalty, type SamplingOptions, type GenerateOptions, type Seq2SeqGenerateOptions, type CausalLM,
} from "./generate.js";
export {
  CHECKPOINT_FORMAT, CHECKPOINT_VERSION, createModel, checkpointMetadata, serializeCheckpoint, deserializeCheckpoint,
  restoreCheckpoint, type Model, type ModelFamily, type ModelConfig, type LoadedCheckpoint,
} from "./checkpoint.js";
