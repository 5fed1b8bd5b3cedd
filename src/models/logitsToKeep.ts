/**
 * logitsToKeep: a forward computes the head's logits for the last k positions only (transformers'
 * `logits_to_keep` as an integer). Generation reads only the last position's logits, yet a prefill
 * that runs the head on every position pays for all of them: for GPT-2 small and a 512-token prompt
 * that is a [512, 768]×[768, 50257] matmul (39.5 GFLOP, about a third of the prefill) and a 103 MB
 * logits array. So generate() passes logitsToKeep: 1, as transformers' generate() does.
 *
 *   k = 0 (the default)   every position: logits [N, T, V]
 *   0 < k <= T            the last k positions: logits [N, k, V], row j is position T - k + j
 *
 * The models slice the hidden state [N, T, C] before the final norm: the norm (LayerNorm, RMSNorm)
 * works on each position alone, so norm-then-slice (transformers' order) and slice-then-norm give
 * the same numbers, and this order skips the norm's work on the positions that are dropped.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { describeValue } from "../tensor/validate.js";
import { slice } from "../ops/shape.js";

/** The number of positions to keep (0: all), checked against the T tokens given: an integer in 0..T. */
export function checkLogitsToKeep(fn: string, value: unknown, T: number): number {
  if (value === undefined) return 0;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > T) {
    throw new ArgumentError(`${fn}: logitsToKeep must be an integer in 0..${T} (0 = every position; the input has ${T} tokens), got ${describeValue(value)}`);
  }
  return value;
}

/** x [N, T, C] -> its last k positions [N, k, C] (k = 0 or T: x itself). */
export function keepLastPositions(x: Tensor, k: number): Tensor {
  const T = x.shape[1];
  return k === 0 || k === T ? x : slice(x, 1, T - k); // [N, T, C] -> [N, k, C]
}
