/**
 * The op layer's one door to the kernels: every op that runs a kernel (matmul, fused attention,
 * the optional elementwise and row fast paths)
 * calls these, and they run it on the selected backend (registry.ts). Nothing above src/kernels
 * calls a backend any other way.
 */
import type { FloatArray } from "../tensor/dtype.js";
import type { AdamWItem, AttentionParams, Backend, MatmulParams, NormRowsParams, PiecewiseTable32 } from "./backend.js";
import { getBackend } from "./index.js"; // index.ts registers the built-in backends

export { withFrozenWeights } from "./frozen.js";

/** out = op(a) @ op(b) on the selected backend. */
export function kernelMatmul(out: FloatArray, a: FloatArray, b: FloatArray, p: MatmulParams): void {
  getBackend().matmul(out, a, b, p);
}

/**
 * out = op(a) @ op(b) + bias on every row, where the selected backend fuses the bias into its matmul
 * (Backend.matmulBias); returns false when it does not, after the plain product: the caller adds it.
 */
export function kernelMatmulBias(out: FloatArray, a: FloatArray, b: FloatArray, bias: FloatArray, p: MatmulParams): boolean {
  const be = getBackend();
  if (be.matmulBias === undefined) {
    be.matmul(out, a, b, p);
    return false;
  }
  be.matmulBias(out, a, b, bias, p);
  return true;
}

/** Fused attention's forward and backward, bound to one backend so that a backward runs where its forward ran. */
export interface AttentionKernels {
  readonly backend: string;
  forward(p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray, lseLo?: FloatArray): void;
  backward(
    p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, dout: FloatArray,
    lse: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray, lseLo?: FloatArray,
  ): void;
}

/**
 * The selected backend's attention kernels. getBackend() hands it out behind the door (door.ts): the
 * operands are checked, and a call with AttentionParams.layout reaches a backend that does not
 * declare attentionLayout as heads-first copies (kernels/layout.ts).
 */
export function attentionKernels(): AttentionKernels {
  const b: Backend = getBackend();
  return {
    backend: b.name,
    forward: (p, q, k, v, out, lse, lseLo) => b.attentionForward(p, q, k, v, out, lse, lseLo),
    backward: (p, q, k, v, out, dout, lse, dq, dk, dv, lseLo) => b.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo),
  };
}

// The optional fast paths: each returns false when the selected backend has none for these arrays,
// and the op then runs its own loop (the readable form, which the `ref` backend always runs).

/** out[i] = by[i] · f(x[i]) with f a float32 table (backend.ts PiecewiseTable32); false: not done. */
export function kernelMulPiecewise(out: FloatArray, by: FloatArray, x: FloatArray, f: PiecewiseTable32): boolean {
  const b = getBackend();
  return b.mulPiecewise !== undefined && b.mulPiecewise(out, by, x, f);
}

/** layerNorm rows (mean null: rmsNorm); false: not done. */
export function kernelNormRows(
  p: NormRowsParams, out: FloatArray, x: FloatArray, w: FloatArray | null, b: FloatArray | null, mean: Float64Array | null, std: Float64Array,
): boolean {
  const be = getBackend();
  return be.normRows !== undefined && be.normRows(p, out, x, w, b, mean, std);
}

/** layerNorm's (mean null: rmsNorm's) backward over the rows; false: not done. */
export function kernelNormRowsBackward(
  p: NormRowsParams, g: FloatArray, x: FloatArray, w: FloatArray | null, mean: Float64Array | null, std: Float64Array,
  gx: FloatArray | null, accW: Float64Array | null, accB: Float64Array | null,
): boolean {
  const be = getBackend();
  return be.normRowsBackward !== undefined && be.normRowsBackward(p, g, x, w, mean, std, gx, accW, accB);
}

/** AdamW's update of these parameters (every item with a vmax, or none); false: not done. */
export function kernelAdamW(items: readonly AdamWItem[]): boolean {
  const be = getBackend();
  return be.adamw !== undefined && be.adamw(items);
}
