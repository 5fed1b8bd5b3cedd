/**
 * crossEntropy for int32 class targets written from ops: logSoftmax, then the target's log-probability
 * picked per row (nllSmoothed), then the reduction. The readable definition that crossEntropy's
 * fused rows (loss.ts) are tested against in test/fastops.test.ts. Not part of the public API.
 *   per row: -(1 - eps) · logp[y] - eps · mean_c(logp[c])        (eps = labelSmoothing)
 */
import { allocate } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { div, mul } from "./elementwise.js";
import { sum } from "./reduce.js";
import { countClassTargets, movedClassesLast } from "./lossShape.js";
import { reshape } from "./shape.js";
import { logSoftmax } from "./softmax.js";
import { result } from "./util.js";

/** Picks -(1-eps)*logp[y] - eps*mean(logp) per row of logp [M, C]; rows with target ignoreIndex give 0. */
function nllSmoothed(logp: Tensor, target: Int32Array, ignoreIndex: number, eps: number): Tensor {
  const [M, C] = logp.shape;
  const out = allocate(logp.dtype, M);
  const lp = logp.values;
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
      const gr = g.values[r];
      if (eps > 0) for (let c = 0; c < C; c++) gl[r * C + c] = (-eps * gr) / C;
      gl[r * C + y] += -(1 - eps) * gr;
    }
    return [new Tensor(gl, [M, C], g.dtype)];
  });
}

export function crossEntropyReference(
  input: Tensor, target: Tensor, opts: { reduction?: "mean" | "sum" | "none"; ignoreIndex?: number; labelSmoothing?: number } = {},
): Tensor {
  const { reduction = "mean", ignoreIndex = -100, labelSmoothing = 0 } = opts;
  const { logits2d, restShape } = movedClassesLast(input); // [N, C, d..] -> [N*d.., C]
  const counted = countClassTargets("crossEntropyReference", input, target, restShape, logits2d.shape[1], ignoreIndex);
  const perRow = nllSmoothed(logSoftmax(logits2d, -1), target.values as Int32Array, ignoreIndex, labelSmoothing); // [M]
  if (reduction === "none") return reshape(perRow, restShape);
  const total = sum(perRow);
  if (reduction === "sum") return total;
  return counted === 0 ? mul(total, 0) : div(total, counted);
}
