/**
 * crossEntropy with torch.nn.functional.cross_entropy's layout: input [C], [N, C] or
 * [N, C, d1, ...] (classes on dim 1), target class indices (int32) of the input's shape without the
 * class dim, or class probabilities (float) of the input's shape.
 *   per element: (1 - eps) * -logp[y] + eps * mean_c(-logp[c])        (eps = labelSmoothing)
 * reduction "mean" divides by the number of targets that are not ignoreIndex; when every target is
 * ignored the loss is 0 (PyTorch gives NaN).
 */
import { type TypedArray, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { add, div, mul, neg } from "./elementwise.js";
import { reshape } from "./shape.js";
import { mean, sum } from "./reduce.js";
import { countClassTargets, movedClassesLast } from "./lossShape.js";
import { logSoftmax } from "./softmax.js";
import { assertFloat, assertTensor, result } from "./util.js";
import { needsGrad } from "../autograd/tape.js";

export interface CrossEntropyOptions {
  reduction?: "mean" | "sum" | "none";
  ignoreIndex?: number;
  labelSmoothing?: number;
}
export const CROSS_ENTROPY_OPTION_KEYS = optionKeys<CrossEntropyOptions>({ reduction: true, ignoreIndex: true, labelSmoothing: true });

/**
 * crossEntropy's backward over M rows of C logits: gx = scale · softmax(x) - ε·scale/C, minus
 * (1 - ε)·scale at the target (rows with the ignored target or an empty softmax stay 0); scale is
 * g[r] for reduction "none", else scale0. softmax(x)_c = exp(x_c - lse) is read as e_c / s from the
 * forward's e_c = exp(x_c - m) and s = Σ_c e_c (lse = m + log s): the same number to float64 rounding
 * (e_c / s rounds once, exp(x_c - lse) a little more, from x_c - lse), and no second exp per logit,
 * which was half of this op's time in a training step (bench/profileStep.ts). A top-level function
 * rather than a loop inside the backward closure: V8 optimised the closure's loop late in a training
 * run (heap numbers per element for the first steps; a sampling heap profile showed it).
 */
function crossEntropyBackwardRows(
  gx: TypedArray, gd: ArrayLike<number>, xd: ArrayLike<number>, kept: ForBackward, target: ArrayLike<number>, lse: Float64Array,
  M: number, C: number, ignoreIndex: number, eps: number, perRowScale: boolean, scale0: number,
): void {
  const { e, maxs, sums } = kept;
  for (let r = 0, o = 0; r < M; r++, o += C) {
    const y = target[r];
    const l = lse[r];
    if (y === ignoreIndex || l === -Infinity) continue;
    const scale = perRowScale ? gd[r] : scale0;
    const off = (eps * scale) / C;
    const s = sums[r];
    if (e.length > 0) {
      for (let c = o; c < o + C; c++) gx[c] = scale * (e[c] / s) - off;
    } else { // the same exp(x_c - m) as the forward's, recomputed: the same bits as the kept ones
      const m = maxs[r];
      for (let c = o; c < o + C; c++) gx[c] = scale * (Math.exp(xd[c] - m) / s) - off;
    }
    gx[o + y] -= (1 - eps) * scale;
  }
}

/**
 * What the forward keeps for the backward (only when one will run): each row's max and sum of
 * exp(x_c - m), and each exp itself when [M, C] is at most crossEntropyTuning.keepExpsMax (above that, the float64
 * copy would cost more memory than recomputing the exps costs time: 8 bytes a logit, 400 MB for
 * 1024 rows of GPT-2's vocabulary).
 */
interface ForBackward { e: Float64Array; maxs: Float64Array; sums: Float64Array }
/** exported for tests: 0 makes every backward recompute its exps */
export const crossEntropyTuning = { keepExpsMax: 1 << 22 };

/** Σ_c exp(x_c - m) over one row's C logits from offset o, in order. */
function sumExp(xd: ArrayLike<number>, m: number, o: number, C: number): number {
  let s = 0;
  for (let c = o; c < o + C; c++) s += Math.exp(xd[c] - m);
  return s;
}

/** sumExp, each exp(x_c - m) also stored in e[c] for the backward (the same sum, so the same bits). */
function sumExpKept(xd: ArrayLike<number>, m: number, e: Float64Array, o: number, C: number): number {
  let s = 0;
  for (let c = o; c < o + C; c++) { const v = Math.exp(xd[c] - m); e[c] = v; s += v; }
  return s;
}

/**
 * The loss over logits [M, C] with int32 targets, fused into one op: per row, in float64,
 *   lse = m + log Σ_c exp(x_c - m)                        (m = the row's max)
 *   loss = -(1 - eps)(x[y] - lse) - eps · Σ_c (x_c - lse) / C
 * then reduced ("none": [M], "sum", "mean" over the `counted` rows that are not ignoreIndex) in the
 * same pass. Rows with target ignoreIndex give 0; a row of all -Infinity gives Infinity and no
 * gradient (as logSoftmax's fully masked rows). Backward, per row:
 *   dx = scale · (softmax(x) - (1 - eps) onehot(y) - eps / C)     scale = g_r, g, or g / counted
 * The backward reads softmax as e_c / s from the exps e_c = exp(x_c - m) and sums s of the forward
 * (kept, or recomputed for a large [M, C]: see ForBackward).
 */
function crossEntropyRows(logits: Tensor, target: Int32Array, ignoreIndex: number, eps: number, reduction: "mean" | "sum" | "none", counted: number): Tensor {
  const [M, C] = logits.shape;
  const xd = logits.values;
  const lse = new Float64Array(M);
  // for the backward: each logit's exp(x_c - m) and each row's sum of them (only when it will run)
  const keep = needsGrad([logits]);
  const kept: ForBackward = {
    e: new Float64Array(keep && M * C <= crossEntropyTuning.keepExpsMax ? M * C : 0), maxs: new Float64Array(keep ? M : 0), sums: new Float64Array(keep ? M : 0),
  };
  const { e, maxs, sums } = kept;
  const perRow = reduction === "none" ? allocate(logits.dtype, M) : null;
  let total = 0;
  for (let r = 0, o = 0; r < M; r++, o += C) {
    const y = target[r];
    if (y === ignoreIndex) continue;
    let m = -Infinity;
    for (let c = o; c < o + C; c++) { const v = xd[c]; if (v > m || v !== v) m = v; }
    let loss: number;
    if (m === -Infinity) {
      lse[r] = -Infinity;
      loss = Infinity;
    } else {
      const s = e.length > 0 ? sumExpKept(xd, m, e, o, C) : sumExp(xd, m, o, C);
      if (keep) [sums[r], maxs[r]] = [s, m];
      const l = m + Math.log(s);
      lse[r] = l;
      loss = -(1 - eps) * (xd[o + y] - l);
      if (eps > 0) {
        let sl = 0;
        for (let c = o; c < o + C; c++) sl += xd[c] - l;
        loss -= (eps * sl) / C;
      }
    }
    if (perRow !== null) perRow[r] = loss;
    else total += loss;
  }
  const data = perRow ?? allocate(logits.dtype, 1);
  if (perRow === null) data[0] = reduction === "sum" ? total : counted === 0 ? 0 : total / counted;
  return result("crossEntropy", data, perRow ? [M] : [], logits.dtype, [logits], (g) => {
    const gd = g.values;
    const gx = allocate(g.dtype, M * C);
    const scale0 = reduction === "mean" ? (counted === 0 ? 0 : gd[0] / counted) : gd[0];
    crossEntropyBackwardRows(gx, gd, xd, kept, target, lse, M, C, ignoreIndex, eps, reduction === "none", scale0);
    return [new Tensor(gx, [M, C], g.dtype)];
  });
}

export function crossEntropy(input: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const fn = "crossEntropy";
  checkOptions(fn, "options", opts, CROSS_ENTROPY_OPTION_KEYS);
  assertTensor(fn, "input", input);
  assertTensor(fn, "target", target);
  assertFloat(fn, "input", input);
  const reduction = opts.reduction ?? "mean";
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const eps = opts.labelSmoothing ?? 0;
  if (!["mean", "sum", "none"].includes(reduction)) {
    throw new ArgumentError(`${fn}: reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`);
  }
  if (typeof eps !== "number" || !(eps >= 0 && eps <= 1)) throw new ArgumentError(`${fn}: labelSmoothing must be in [0, 1], got ${eps}`);
  if (input.ndim === 0) throw new ShapeError(`${fn}: input needs a class dim, got a 0-d tensor`);
  const C = input.ndim === 1 ? input.shape[0] : input.shape[1];
  const { logits2d, restShape } = movedClassesLast(input); // [N, C, d..] -> [N*d.., C]
  if (target.dtype === "float32" || target.dtype === "float64") {
    // class probabilities, same shape as input
    if (target.ndim !== input.ndim || target.shape.some((d, i) => d !== input.shape[i])) {
      throw new ShapeError(`${fn}: probability target ${fmtShape(target.shape)} must have the input's shape ${fmtShape(input.shape)}`);
    }
    const { logits2d: t2d } = movedClassesLast(target);
    const smoothed = eps > 0 ? add(mul(t2d, 1 - eps), eps / C) : t2d;
    const perRow = neg(sum(mul(smoothed, logSoftmax(logits2d, -1)), -1)); // [M]
    const shaped = reshape(perRow, restShape);
    return reduction === "none" ? shaped : reduction === "sum" ? sum(perRow) : mean(perRow);
  }
  const counted = countClassTargets(fn, input, target, restShape, C, ignoreIndex);
  const loss = crossEntropyRows(logits2d, target.values as Int32Array, ignoreIndex, eps, reduction, counted); // [M] or []
  return reduction === "none" ? reshape(loss, restShape) : loss;
}
