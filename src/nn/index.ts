/**
 * attend's building blocks (Module, layers, positional encodings). The attention modules are built on
 * these and live in src/attention; the public `nn` namespace that holds both is src/nnNamespace.ts.
 */
export { Module, StateDictError, type StateDict } from "./module.js";
export { ModuleList } from "./container.js";
export { Linear, type LinearOptions } from "./linear.js";
export { Embedding, type EmbeddingOptions } from "./embedding.js";
export { LayerNorm, RMSNorm, type LayerNormOptions, type RMSNormOptions } from "./norm.js";
export { Dropout, type DropoutModuleOptions } from "./dropout.js";
export { MLP, activate, ACTIVATIONS, type Activation, type MLPOptions } from "./mlp.js";
export {
  SinusoidalPositionalEncoding, LearnedPositionalEmbedding, sinusoidalTable, type SinusoidalOptions,
} from "./positional.js";
export * as init from "./init.js";
