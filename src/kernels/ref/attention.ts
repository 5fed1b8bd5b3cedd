/**
 * The ref backend's attention is the tiled kernel in flash.ts; these names stay for the wasm backend,
 * which hands float64 and small calls to it.
 */
export { flashAttentionBackward as refAttentionBackward, flashAttentionForward as refAttentionForward } from "./flash.js";
