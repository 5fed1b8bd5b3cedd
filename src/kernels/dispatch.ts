/**
 * The op layer's door to the kernels: whichever backend is selected (setBackend) runs the product.
 * The wasm backend computes float32 itself and hands float64 to the reference loops.
 */
import type { FloatArray } from "../tensor/dtype.js";
import type { MatmulParams } from "./backend.js";
import { getBackend } from "./index.js";

export function kernelMatmul(out: FloatArray, a: FloatArray, b: FloatArray, p: MatmulParams): void {
  getBackend().matmul(out, a, b, p);
}
