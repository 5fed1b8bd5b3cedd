import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { permute, reshape } from "./shape.js";

/** [C] -> [1, C]; [N, C] as is; [N, C, d1..] -> [N*d1*.., C] (classes last). */
export function movedClassesLast(x: Tensor): { logits2d: Tensor; restShape: number[] } {
  if (x.ndim === 1) return { logits2d: reshape(x, [1, x.shape[0]]), restShape: [] };
  if (x.ndim === 2) return { logits2d: x, restShape: [x.shape[0]] };
  const perm = [0, ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 2), 1];
  const moved = permute(x, perm); // [N, C, d..] -> [N, d.., C]
  const restShape = [x.shape[0], ...x.shape.slice(2)];
  return { logits2d: reshape(moved, [-1, x.shape[1]]), restShape };
}

/**
 * Check int32 class targets against the input (shape = the input's without the class dim, each in
 * [0, C) or ignoreIndex) and count the ones that are not ignored (the divisor of "mean").
 */
export function countClassTargets(fn: string, input: Tensor, target: Tensor, restShape: readonly number[], C: number, ignoreIndex: number): number {
  if (target.dtype !== "int32") throw new ArgumentError(`${fn}: target must be int32 class indices or float probabilities, got ${target.dtype}`);
  if (target.ndim !== restShape.length || target.shape.some((d, i) => d !== restShape[i])) {
    throw new ShapeError(
      `${fn}: target has shape ${fmtShape(target.shape)}, expected ${fmtShape(restShape)} for input ${fmtShape(input.shape)} (classes on dim ${input.ndim === 1 ? 0 : 1})`,
    );
  }
  let counted = 0;
  for (let i = 0; i < target.size; i++) {
    const y = target.values[i];
    if (y === ignoreIndex) continue;
    if (y < 0 || y >= C) throw new ArgumentError(`${fn}: target ${y} at position ${i} is out of range for ${C} classes (and is not ignoreIndex ${ignoreIndex})`);
    counted++;
  }
  return counted;
}
