import type { Backend } from "../backend.js";
import { refAttentionBackward, refAttentionForward } from "./attention.js";
import { refMatmul } from "./matmul.js";

/** The reference backend: readable loops, float32 and float64, single-threaded. */
export const refBackend: Backend = {
  name: "ref",
  matmul: refMatmul,
  attentionForward: refAttentionForward,
  attentionBackward: refAttentionBackward,
};

export { refAttentionBackward, refAttentionForward, refMatmul };
