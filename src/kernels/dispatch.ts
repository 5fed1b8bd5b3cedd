/**
 * The op layer's door to the kernels. Until the backend registry lands, everything runs on the
 * reference kernels.
 */
import type { FloatArray } from "../tensor/dtype.js";
import type { MatmulParams } from "./backend.js";
import { refMatmul } from "./ref/matmul.js";

export function kernelMatmul(out: FloatArray, a: FloatArray, b: FloatArray, p: MatmulParams): void {
  refMatmul(out, a, b, p);
}
