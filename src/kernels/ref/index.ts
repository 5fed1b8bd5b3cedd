import type { Backend } from "../backend.js";
import { flashAttentionBackward, flashAttentionForward } from "./flash.js";
import { refMatmul } from "./matmul.js";

/** The reference backend: readable loops (attention: the tiled kernel of flash.ts), float32 and float64, single-threaded. */
export const refBackend: Backend = {
  name: "ref",
  attentionLayout: true, // flash.ts's kernels come wrapped in ../layout.ts's adapter (heads-first copies)
  matmul: refMatmul,
  attentionForward: flashAttentionForward,
  attentionBackward: flashAttentionBackward,
};

export { flashAttentionBackward, flashAttentionForward, refMatmul };
