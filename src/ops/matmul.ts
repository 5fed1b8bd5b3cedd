/**
 * matmul with PyTorch's rules: 1-D operands are promoted (a vector on the left is a row, on the right
 * a column) and the promoted dim removed afterwards; leading (batch) dims broadcast.
 *   out = a @ b       da = g @ bᵀ       db = aᵀ @ g      (each summed back over broadcast batch dims)
 */
import { type FloatArray, allocateOverwritten, promote } from "../tensor/dtype.js";
import { ShapeError, fmtShape } from "../tensor/errors.js";
import { broadcastShapes, broadcastStrides, sizeOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { kernelMatmul } from "../kernels/dispatch.js";
import { unbroadcast } from "./broadcast.js";
import { cast } from "./elementwise.js";
import { reshape } from "./shape.js";
import { assertFloat, assertTensor, result } from "./util.js";

/**
 * Batched product of 3+-D (or 2-D) float tensors with broadcast batch dims, optionally reading
 * either side transposed. No gradient: the building block for matmul's forward and backward.
 */
export function matmulRaw(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  const dtype = promote(a.dtype, b.dtype);
  if (a.dtype !== dtype) a = cast(a, dtype);
  if (b.dtype !== dtype) b = cast(b, dtype);
  const ar = a.ndim;
  const br = b.ndim;
  const m = transA ? a.shape[ar - 1] : a.shape[ar - 2];
  const k = transA ? a.shape[ar - 2] : a.shape[ar - 1];
  const k2 = transB ? b.shape[br - 1] : b.shape[br - 2];
  const n = transB ? b.shape[br - 2] : b.shape[br - 1];
  if (k !== k2) {
    throw new ShapeError(`matmul: inner dims differ: a ${fmtShape(a.shape)} has ${k} columns, b ${fmtShape(b.shape)} has ${k2} rows`);
  }
  // out: every element written by the kernel (MatmulParams.accumulate false: out = product), so an
  // array from the pool comes as it was given back, not zeroed (linear's products in a training step:
  // ~17 MB of zeroing per step of GPT("small"))
  if (ar === 2 && br === 2) {
    // two matrices (linear's case): the general path below with no batch dims, without its bookkeeping
    const out2 = allocateOverwritten(dtype, m * n) as FloatArray;
    const p2 = { batch: 1, m, n, k, aBatchStride: 0, bBatchStride: 0, transA, transB, accumulate: false };
    kernelMatmul(out2, a.values as FloatArray, b.values as FloatArray, p2);
    return new Tensor(out2, [m, n], dtype);
  }
  const aBatch = a.shape.slice(0, ar - 2);
  const bBatch = b.shape.slice(0, br - 2);
  const batch = broadcastShapes("matmul", aBatch, bBatch, "a's batch dims", "b's batch dims");
  const nb = sizeOf(batch);
  const aMat = a.shape[ar - 2] * a.shape[ar - 1];
  const bMat = b.shape[br - 2] * b.shape[br - 1];
  const out = allocateOverwritten(dtype, nb * m * n) as FloatArray; // every element written (above)
  const ad = a.values as FloatArray;
  const bd = b.values as FloatArray;
  const p = { batch: nb, m, n, k, aBatchStride: 0, bBatchStride: 0, transA, transB, accumulate: false };
  // The common layouts need one kernel call: a side's batch is either all ones (stride 0) or the full
  // batch (contiguous stride). Partial broadcasting (GQA's [Hkv, 1] against [Hkv, G]) walks the
  // batch with broadcast strides instead of copying the operand.
  const full = (tb: readonly number[]): boolean => sizeOf(tb) === nb;
  if ((sizeOf(aBatch) === 1 || full(aBatch)) && (sizeOf(bBatch) === 1 || full(bBatch))) {
    p.aBatchStride = sizeOf(aBatch) === 1 ? 0 : aMat;
    p.bBatchStride = sizeOf(bBatch) === 1 ? 0 : bMat;
    kernelMatmul(out, ad, bd, p);
  } else {
    const sa = broadcastStrides(aBatch, batch);
    const sb = broadcastStrides(bBatch, batch);
    const idx = new Array<number>(batch.length).fill(0);
    p.batch = 1;
    for (let bi = 0; bi < nb; bi++) {
      let ao = 0;
      let bo = 0;
      for (let d = 0; d < batch.length; d++) {
        ao += idx[d] * sa[d];
        bo += idx[d] * sb[d];
      }
      kernelMatmul(out.subarray(bi * m * n, (bi + 1) * m * n), ad.subarray(ao * aMat, (ao + 1) * aMat), bd.subarray(bo * bMat, (bo + 1) * bMat), p);
      for (let d = batch.length - 1; d >= 0; d--) {
        if (++idx[d] < batch[d]) break;
        idx[d] = 0;
      }
    }
  }
  return new Tensor(out, [...batch, m, n], dtype);
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  const fn = "matmul";
  assertTensor(fn, "a", a);
  assertTensor(fn, "b", b);
  assertFloat(fn, "a", a);
  assertFloat(fn, "b", b);
  if (a.ndim === 0 || b.ndim === 0) {
    throw new ShapeError(`${fn}: both operands need at least 1 dim, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)} (use mul for scalars)`);
  }
  // [k] @ [.., k, n]: a becomes [1, k]; [.., m, k] @ [k]: b becomes [k, 1]
  const a2 = a.ndim === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.ndim === 1 ? reshape(b, [b.shape[0], 1]) : b;
  const prod = matmulRaw(a2, b2);
  let outShape = [...prod.shape];
  if (a.ndim === 1) outShape.splice(outShape.length - 2, 1);
  if (b.ndim === 1) outShape = outShape.slice(0, outShape.length - 1);
  return result(fn, prod.values, outShape, prod.dtype, [a, b], (g) => {
    const g2 = reshape(g, prod.shape); // [batch.., m, n]
    const ga = a.requiresGrad ? unbroadcast(matmulRaw(g2, b2, false, true), a2.shape) : null; // g @ bᵀ
    const gb = b.requiresGrad ? unbroadcast(matmulRaw(a2, g2, true, false), b2.shape) : null; // aᵀ @ g
    return [ga && cast(reshape(ga, a.shape), a.dtype), gb && cast(reshape(gb, b.shape), b.dtype)];
  });
}
