export { fromPretrainedFiles, loadPretrained, Tokenizer, type Pretrained, type PretrainedFile, type PretrainedFiles, type FileReader } from "./load.js";
export { PretrainedLM, type PretrainedForwardOptions } from "./model.js";
export { archFromConfig, SUPPORTED_MODEL_TYPES, type PretrainedArch, type PretrainedFamily, type HFConfig } from "./config.js";
