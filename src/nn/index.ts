/**
 * attend's modules in one namespace (`import { nn } from "attend"`): the Module base, layers,
 * positional encodings, the attention modules and their KV cache.
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
export {
  RotaryEmbedding, applyRotary, rotaryReference, rotaryFrequencies, type RotaryOptions, type QKTransform,
} from "../attention/rope.js";
export { MultiheadAttention, type MultiheadAttentionOptions } from "../attention/multihead.js";
export { GroupedQueryAttention, type GroupedQueryAttentionOptions } from "../attention/gqa.js";
export type { AttentionForwardOptions } from "../attention/moduleCommon.js";
export { KVCache, KVCacheLayer, kvCacheBytesPerToken, type KVCacheKind, type KVCacheOptions } from "../attention/kvcache.js";
