import { markLibraryNode, needsGrad } from "../autograd/tape.js";
import type { DType, TypedArray } from "../tensor/dtype.js";
import { isFloatDType } from "../tensor/dtype.js";
import { ArgumentError } from "../tensor/errors.js";
import type { Shape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";

/**
 * Wrap an op's output. When gradient recording is on and an input needs a gradient, the output
 * records `backward` (output grad -> input grads, same order as `inputs`).
 */
export function result(
  op: string,
  data: TypedArray,
  shape: Shape,
  dtype: DType,
  inputs: readonly Tensor[],
  backward: ((g: Tensor) => (Tensor | null)[]) | null,
): Tensor {
  const out = new Tensor(data, shape, dtype);
  if (backward !== null && isFloatDType(dtype) && needsGrad(inputs)) {
    out.requiresGrad = true;
    out.gradNode = markLibraryNode({ op, inputs, backward });
  }
  return out;
}

export function assertTensor(fn: string, name: string, x: unknown): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    const seen = x === null ? "null" : Array.isArray(x) ? "an array" : typeof x;
    throw new ArgumentError(`${fn}: ${name} must be a Tensor, got ${seen} (wrap data with tensor(...))`);
  }
}

export function assertFloat(fn: string, name: string, x: Tensor): void {
  if (!isFloatDType(x.dtype)) {
    throw new ArgumentError(`${fn}: ${name} must be float32 or float64, got ${x.dtype}`);
  }
}

/** A scalar operand takes the tensor's float dtype (as a Python number does in PyTorch). */
export function scalarLike(v: number, like: Tensor): Tensor {
  const dtype: DType = isFloatDType(like.dtype) ? like.dtype : Number.isInteger(v) ? "int32" : "float32";
  const data = dtype === "float64" ? new Float64Array([v]) : dtype === "int32" ? new Int32Array([v]) : new Float32Array([v]);
  return new Tensor(data, [], dtype);
}
