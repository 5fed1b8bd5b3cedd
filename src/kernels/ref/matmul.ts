import type { FloatArray } from "../../tensor/dtype.js";
import type { MatmulParams } from "../backend.js";

/**
 * The readable matmul: out[bi] = op(a[bi]) @ op(b[bi]). Loop order i-p-j keeps the inner loop
 * streaming through contiguous rows of b and out when b is not transposed.
 */
export function refMatmul(out: FloatArray, a: FloatArray, b: FloatArray, p: MatmulParams): void {
  const { batch, m, n, k, aBatchStride, bBatchStride, transA, transB, accumulate } = p;
  for (let bi = 0; bi < batch; bi++) {
    const aOff = bi * aBatchStride;
    const bOff = bi * bBatchStride;
    const oOff = bi * m * n;
    if (!accumulate) out.fill(0, oOff, oOff + m * n);
    for (let i = 0; i < m; i++) {
      const oRow = oOff + i * n;
      if (!transB) {
        for (let q = 0; q < k; q++) {
          const av = transA ? a[aOff + q * m + i] : a[aOff + i * k + q];
          const bRow = bOff + q * n;
          for (let j = 0; j < n; j++) out[oRow + j] += av * b[bRow + j];
        }
      } else {
        for (let j = 0; j < n; j++) {
          const bRow = bOff + j * k;
          let s = 0;
          if (transA) for (let q = 0; q < k; q++) s += a[aOff + q * m + i] * b[bRow + q];
          else {
            const aRow = aOff + i * k;
            for (let q = 0; q < k; q++) s += a[aRow + q] * b[bRow + q];
          }
          out[oRow + j] += s;
        }
      }
    }
  }
}
