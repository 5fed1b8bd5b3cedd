/**
 * The public `nn` namespace (import { nn } from "attend"), as torch.nn: the building blocks of
 * src/nn plus the attention modules, rotary positions and the KV cache of src/attention.
 * It is assembled here, at the entry layer, because src/nn sits below src/attention (attention
 * modules are Modules built from Linear) and so cannot re-export it.
 */
export * from "./nn/index.js";
export {
  RotaryEmbedding, applyRotary, rotaryReference, rotaryFrequencies, type RotaryOptions, type QKTransform,
} from "./attention/rope.js";
export { MultiheadAttention, type MultiheadAttentionOptions } from "./attention/multihead.js";
export { GroupedQueryAttention, type GroupedQueryAttentionOptions } from "./attention/gqa.js";
export type { AttentionForwardOptions } from "./attention/moduleCommon.js";
export {
  KVCache, KVCacheLayer, WindowKVCacheLayer, kvCacheBytesPerToken, type KVCacheKind, type KVCacheOptions, type StreamingWindow,
  type PackedPositions, type PositionOffset,
} from "./attention/kvcache.js";
export { PagedKVCache, PagedKVCacheLayer, type PagedKVCacheOptions } from "./attention/kvpaged.js";
