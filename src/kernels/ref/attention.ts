/**
 * The ref backend's attention is the tiled kernel in flash.ts; these names stay for the wasm backend,
 * which hands float64 and small calls to it (in any AttentionParams.layout: flash.ts's kernels come
 * wrapped in ../layout.ts's adapter).
 */
export { flashAttentionBackward as refAttentionBackward, flashAttentionForward as refAttentionForward } from "./flash.js";
