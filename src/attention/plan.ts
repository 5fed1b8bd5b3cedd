/**
 * The validated description of one attention call, shared by the textbook path (sdpa.ts), which
 * makes it, and the fused path (fused.ts), which runs it. It lives below both so neither imports
 * the other for it.
 */
import type { AttentionDims } from "../kernels/backend.js";
import type { FloatDType } from "../tensor/dtype.js";
import type { Tensor } from "../tensor/tensor.js";
import type { FlexPlan } from "./flexPlan.js";
import type { CausalAlignment } from "./masks.js";

/** Everything scaledDotProductAttention works out from its arguments, validated once. */
export interface SdpaPlan extends FlexPlan, Omit<AttentionDims, "B"> {
  dtype: FloatDType;
  /** batch dims N.. (broadcast over query, key and value; the kernels see their product as B) */
  batch: number[];
  /** whether the inputs have a head dim (rank >= 3) */
  hasHeads: boolean;
  gqa: boolean;
  scale: number;
  causal: CausalAlignment | null;
  /** where query row l sits among the keys, for causality, windows and ALiBi (causalAlignment; top-left by default) */
  alignment: CausalAlignment;
  mask: Tensor | null;
  dropoutP: number;
  /** [N.., H, L, S] */
  scoreShape: number[];
}

/**
 * Some heads of a projection as it comes, heads interleaved: columns [offset, offset + heads · D) of
 * t [N, T, X], head h in columns offset + h·D .. offset + (h + 1)·D. The modules' q, k and v before
 * they are split into heads (for self-attention without gradient, the three thirds of one [N, T, 3C]).
 */
export interface HeadColumns {
  t: Tensor;
  offset: number;
  heads: number;
  /** D: E for q and k, Ev for v */
  dim: number;
}
