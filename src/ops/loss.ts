/**
 * crossEntropy with torch.nn.functional.cross_entropy's layout: input [C], [N, C] or
 * [N, C, d1, ...] (classes on dim 1), target class indices (int32) of the input's shape without the
 * class dim, or class probabilities (float) of the input's shape.
 *   per element: (1 - eps) * -logp[y] + eps * mean_c(-logp[c])        (eps = labelSmoothing)
 * reduction "mean" divides by the number of targets that are not ignoreIndex; when every target is
 * ignored the loss is 0 (PyTorch gives NaN).
 */
import { allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { add, div, mul, neg } from "./elementwise.js";
import { reshape } from "./shape.js";
import { mean, sum } from "./reduce.js";
import { movedClassesLast } from "./lossShape.js";
import { logSoftmax } from "./softmax.js";
import { assertFloat, assertTensor, result } from "./util.js";

export interface CrossEntropyOptions {
  reduction?: "mean" | "sum" | "none";
  ignoreIndex?: number;
  labelSmoothing?: number;
}
export const CROSS_ENTROPY_OPTION_KEYS = optionKeys<CrossEntropyOptions>({ reduction: true, ignoreIndex: true, labelSmoothing: true });

/** Picks -(1-eps)*logp[y] - eps*mean(logp) per row of logp [M, C]; rows with target ignoreIndex give 0. */
function nllSmoothed(logp: Tensor, target: Int32Array, ignoreIndex: number, eps: number): Tensor {
  const [M, C] = logp.shape;
  const out = allocate(logp.dtype, M);
  const lp = logp.data;
  for (let r = 0; r < M; r++) {
    const y = target[r];
    if (y === ignoreIndex) continue;
    let loss = -(1 - eps) * lp[r * C + y];
    if (eps > 0) {
      let s = 0;
      for (let c = 0; c < C; c++) s += lp[r * C + c];
      loss -= (eps * s) / C;
    }
    out[r] = loss;
  }
  return result("crossEntropy", out, [M], logp.dtype, [logp], (g) => {
    const gl = allocate(g.dtype, M * C);
    for (let r = 0; r < M; r++) {
      const y = target[r];
      if (y === ignoreIndex) continue;
      const gr = g.data[r];
      if (eps > 0) for (let c = 0; c < C; c++) gl[r * C + c] = (-eps * gr) / C;
      gl[r * C + y] += -(1 - eps) * gr;
    }
    return [new Tensor(gl, [M, C], g.dtype)];
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
  const logp = logSoftmax(logits2d, -1);

  if (target.dtype === "float32" || target.dtype === "float64") {
    // class probabilities, same shape as input
    if (target.ndim !== input.ndim || target.shape.some((d, i) => d !== input.shape[i])) {
      throw new ShapeError(`${fn}: probability target ${fmtShape(target.shape)} must have the input's shape ${fmtShape(input.shape)}`);
    }
    const { logits2d: t2d } = movedClassesLast(target);
    const smoothed = eps > 0 ? add(mul(t2d, 1 - eps), eps / C) : t2d;
    const perRow = neg(sum(mul(smoothed, logp), -1)); // [M]
    const shaped = reshape(perRow, restShape);
    return reduction === "none" ? shaped : reduction === "sum" ? sum(perRow) : mean(perRow);
  }
  if (target.dtype !== "int32") throw new ArgumentError(`${fn}: target must be int32 class indices or float probabilities, got ${target.dtype}`);
  if (target.ndim !== restShape.length || target.shape.some((d, i) => d !== restShape[i])) {
    throw new ShapeError(
      `${fn}: target has shape ${fmtShape(target.shape)}, expected ${fmtShape(restShape)} for input ${fmtShape(input.shape)} (classes on dim ${input.ndim === 1 ? 0 : 1})`,
    );
  }
  let counted = 0;
  for (let i = 0; i < target.size; i++) {
    const y = target.data[i];
    if (y === ignoreIndex) continue;
    if (y < 0 || y >= C) throw new ArgumentError(`${fn}: target ${y} at position ${i} is out of range for ${C} classes (and is not ignoreIndex ${ignoreIndex})`);
    counted++;
  }
  const perRow = nllSmoothed(logp, target.data as Int32Array, ignoreIndex, eps); // [M]
  if (reduction === "none") return reshape(perRow, restShape);
  const total = sum(perRow);
  if (reduction === "sum") return total;
  return counted === 0 ? mul(total, 0) : div(total, counted);
}
