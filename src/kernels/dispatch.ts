/**
 * The op layer's one door to the kernels: every op that runs a kernel (matmul, fused attention)
 * calls these, and they run it on the selected backend (registry.ts). Nothing above src/kernels
 * calls a backend any other way.
 */
import type { FloatArray } from "../tensor/dtype.js";
import type { AttentionParams, Backend, MatmulParams } from "./backend.js";
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

/** The selected backend's attention kernels. */
export function attentionKernels(): AttentionKernels {
  const b: Backend = getBackend();
  return {
    backend: b.name,
    forward: (p, q, k, v, out, lse, lseLo) => b.attentionForward(p, q, k, v, out, lse, lseLo),
    backward: (p, q, k, v, out, dout, lse, dq, dk, dv, lseLo) => b.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo),
  };
}
