/**
 * Compare an op's analytical gradient with central finite differences in float64, as
 * torch.autograd.gradcheck does: for a random upstream gradient w, the directional check of
 *   d/dx_i sum(f(x) * w)   against   (sum(f(x + h e_i) * w) - sum(f(x - h e_i) * w)) / 2h.
 */
import { ArgumentError } from "../tensor/errors.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { noGrad } from "./tape.js";
import { backward } from "./backward.js";

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** worst |analytical - numerical| - (atol + rtol * |numerical|) over all checked entries (<= 0 passes) */
  worst: number;
  /** where the worst entry is: input index and flat element index */
  at: [number, number];
  analytical: number;
  numerical: number;
}

export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): GradcheckResult {
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-3;
  for (const [i, x] of inputs.entries()) {
    if (x.requiresGrad && x.dtype !== "float64") throw new ArgumentError(`gradcheck: input ${i} must be float64 to be checked, got ${x.dtype}`);
  }
  const g = new Generator(opts.seed ?? 1234);
  const out0 = f(...inputs);
  const w = new Tensor(Float64Array.from({ length: out0.size }, () => g.nextNormal()), out0.shape, "float64");
  const objective = (): number => noGrad(() => {
    const y = f(...inputs);
    let s = 0;
    for (let i = 0; i < y.size; i++) s += y.values[i] * w.values[i];
    return s;
  });
  for (const x of inputs) x.grad = null;
  backward(out0, out0.dtype === "float64" ? w : new Tensor(Float32Array.from(w.values), w.shape, "float32"));
  const res: GradcheckResult = { ok: true, worst: -Infinity, at: [-1, -1], analytical: 0, numerical: 0 };
  inputs.forEach((x, xi) => {
    if (!x.requiresGrad) return;
    for (let i = 0; i < x.size; i++) {
      const orig = x.values[i];
      x.values[i] = orig + eps;
      const plus = objective();
      x.values[i] = orig - eps;
      const minus = objective();
      x.values[i] = orig;
      const numerical = (plus - minus) / (2 * eps);
      const analytical = x.grad ? x.grad.values[i] : 0;
      const excess = Math.abs(analytical - numerical) - (atol + rtol * Math.abs(numerical));
      if (!(excess <= res.worst) || Number.isNaN(excess)) {
        res.worst = Number.isNaN(excess) ? Infinity : excess;
        res.at = [xi, i];
        res.analytical = analytical;
        res.numerical = numerical;
      }
    }
  });
  res.ok = res.worst <= 0;
  return res;
}
