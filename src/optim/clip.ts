/**
 * clipGradNorm: torch.nn.utils.clip_grad_norm_. The norm is taken over all gradients together, as if
 * they were one vector (the norm of the per-parameter norms); if it exceeds maxNorm every gradient
 * is scaled by maxNorm / (norm + 1e-6). Returns the norm before clipping, which is worth logging.
 */
import { type FloatArray, allocate } from "../tensor/dtype.js";
import { ArgumentError } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";

export interface ClipOptions {
  /** p of the p-norm (default 2); Infinity for the largest absolute value */
  normType?: number;
  /** throw if the total norm is NaN or infinite instead of scaling by it */
  errorIfNonfinite?: boolean;
}
export const CLIP_OPTION_KEYS = optionKeys<ClipOptions>({ normType: true, errorIfNonfinite: true });

function pNorm(data: ArrayLike<number>, p: number): number {
  if (p === Infinity) {
    let m = 0;
    for (let i = 0; i < data.length; i++) {
      const a = Math.abs(data[i]);
      if (a > m || a !== a) m = a;
    }
    return m;
  }
  let s = 0;
  if (p === 2) for (let i = 0; i < data.length; i++) s += data[i] * data[i];
  else for (let i = 0; i < data.length; i++) s += Math.pow(Math.abs(data[i]), p);
  return p === 2 ? Math.sqrt(s) : Math.pow(s, 1 / p);
}

/** The total p-norm of the gradients of `params` (those without a gradient count as absent). */
export function gradNorm(params: Iterable<Tensor> | Map<string, Tensor>, normType = 2): number {
  const list = params instanceof Map ? [...params.values()] : [...params];
  const norms = list.filter((p) => p.grad !== null).map((p) => pNorm(p.grad!.values, normType));
  return norms.length === 0 ? 0 : pNorm(norms, normType);
}

export function clipGradNorm(params: Iterable<Tensor> | Map<string, Tensor>, maxNorm: number, opts: ClipOptions = {}): number {
  const fn = "clipGradNorm";
  checkOptions(fn, "options", opts, CLIP_OPTION_KEYS);
  const normType = opts.normType ?? 2;
  if (typeof maxNorm !== "number" || !(maxNorm >= 0)) throw new ArgumentError(`${fn}: maxNorm must be a number >= 0, got ${String(maxNorm)}`);
  if (typeof normType !== "number" || !(normType > 0)) throw new ArgumentError(`${fn}: normType must be > 0 (or Infinity), got ${String(normType)}`);
  const list = params instanceof Map ? [...params.values()] : [...params];
  for (const [i, p] of list.entries()) if (!(p instanceof Tensor)) throw new ArgumentError(`${fn}: params item ${i} is not a Tensor`);
  const total = gradNorm(list, normType);
  if (opts.errorIfNonfinite && !Number.isFinite(total)) {
    throw new ArgumentError(`${fn}: the total ${normType}-norm of the gradients is ${total}; pass errorIfNonfinite: false to scale by it anyway`);
  }
  const coef = Math.min(maxNorm / (total + 1e-6), 1);
  for (const p of list) {
    const g = p.grad;
    if (g === null) continue;
    // A fresh tensor, never written in place: backward may hand the same gradient tensor to two leaves.
    const out = allocate(g.dtype, g.size) as FloatArray;
    for (let i = 0; i < out.length; i++) out[i] = g.values[i] * coef;
    p.grad = new Tensor(out, g.shape, g.dtype);
  }
  return total;
}
