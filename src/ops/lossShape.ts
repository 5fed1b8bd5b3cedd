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
