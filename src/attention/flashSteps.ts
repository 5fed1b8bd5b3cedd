/**
 * FlashAttention one tile at a time, for pictures (the explorer's lesson 8 steps through it): the
 * first `steps` tile steps of the ref kernel's forward (src/kernels/ref/flash.ts, the code the ref
 * backend runs) on one head, and the state they leave. Per query row: the running max m, the running
 * sum l of exp(score − m), the unnormalised output O, and O / l so far; after the last step O / l is
 * softmax(Q Kᵀ · scale) V.
 */
import type { AttentionParams } from "../kernels/backend.js";
import { FLASH_BC, FLASH_BR, flashForwardSteps } from "../kernels/ref/flash.js";
import type { FloatArray } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { cast } from "../ops/elementwise.js";
import type { CausalAlignment } from "./masks.js";
import { planSdpa } from "./sdpa.js";

export interface FlashStepsOptions {
  /** query rows per tile (default FLASH_BR = 64) */
  Br?: number;
  /** keys per tile (default FLASH_BC = 64) */
  Bc?: number;
  /** how many tile steps to run (default: all of them) */
  steps?: number;
  /** multiplies QKᵀ; default 1/sqrt(E) */
  scale?: number;
  isCausal?: boolean;
  causalAlignment?: CausalAlignment;
}

export interface FlashStepsState {
  /** running max per query row [L] (−∞ before the row's first tile) */
  m: Float64Array;
  /** running sum of exp(score − m) per query row [L] (0 before the row's first tile) */
  l: Float64Array;
  /** unnormalised output [L, Ev] */
  O: Float64Array;
  /** O / l so far [L, Ev] (0 for rows not started), float64 */
  out: Tensor;
  /** the tiles computed, in order: query rows [r0, r1) against keys [c0, c1) */
  steps: { r0: number; r1: number; c0: number; c1: number }[];
  /** the steps of the whole forward: query tiles outer, key tiles inner, tiles hidden by causality skipped */
  totalSteps: number;
}

/** query [L, E], key [S, E], value [S, Ev]: the state after the first `opts.steps` tile steps. */
export function flashAttentionSteps(query: Tensor, key: Tensor, value: Tensor, opts: FlashStepsOptions = {}): FlashStepsState {
  const fn = "flashAttentionSteps";
  const plan = planSdpa(fn, query, key, value, { scale: opts.scale, isCausal: opts.isCausal, causalAlignment: opts.causalAlignment });
  for (const [name, t, letters] of [["query", query, "[L, E]"], ["key", key, "[S, E]"], ["value", value, "[S, Ev]"]] as const) {
    if (t.ndim !== 2) throw new ShapeError(`${fn}: steps through one head, so ${name} must be ${letters}; got ${fmtShape(t.shape)}`);
  }
  const steps = opts.steps ?? Infinity;
  if (steps !== Infinity && !(Number.isInteger(steps) && steps >= 0)) {
    throw new ArgumentError(`${fn}: steps must be a non-negative integer (or Infinity for all), got ${String(steps)}`);
  }
  const { L, S, E, Ev } = plan;
  const p: AttentionParams = {
    B: 1, H: 1, Hkv: 1, L, S, E, Ev, scale: plan.scale, causal: plan.causal ?? "none", mask: null, dropoutP: 0, dropoutSeed: 0,
  };
  const data = (t: Tensor): FloatArray => (t.dtype === plan.dtype ? t : cast(t, plan.dtype)).values as FloatArray;
  const tiles = { Br: opts.Br ?? FLASH_BR, Bc: opts.Bc ?? FLASH_BC };
  const st = flashForwardSteps(p, data(query), data(key), data(value), steps, tiles);
  return {
    m: st.m, l: st.l, O: st.O, out: new Tensor(st.out, [L, Ev], "float64"),
    steps: st.steps.map(({ r0, r1, c0, c1 }) => ({ r0, r1, c0, c1 })), totalSteps: st.totalSteps,
  };
}
