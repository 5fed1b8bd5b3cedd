export { fromPretrainedFiles, loadPretrained, Tokenizer, type Pretrained, type PretrainedFile, type PretrainedFiles, type FileReader, type RandomAccessFile } from "./load.js";
export { PretrainedLM, type PretrainedLMOptions, type PretrainedForwardOptions, type AttentionVisitor, type LayerAttentionOptions } from "./model.js";
export type { AttentionMaskInput } from "./padding.js";
export { archFromConfig, SUPPORTED_MODEL_TYPES, type PretrainedArch, type PretrainedFamily, type HFConfig } from "./config.js";
export { attentionMaps, layerAttentionMaps, headScores, type AttentionMapsOptions, type LayerAttentionMapsOptions, type HeadScoresOptions, type HeadScores } from "./heads.js";
export { generateText, eosTokenIds, bosTokenId, type GenerateTextOptions, type TextGeneration, type TextModel } from "./text.js";
export { generationDefaults, type GenerationDefaults, type UnsupportedSetting } from "./genconfig.js";
