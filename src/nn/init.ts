/**
 * Weight initialisers with PyTorch's formulas (torch.nn.init), drawing from an explicit Generator.
 * fan_in / fan_out of a [out, in, k..] tensor: in * prod(k..), out * prod(k..).
 */
import { type DType, allocate } from "../tensor/dtype.js";
import type { Generator } from "../tensor/random.js";
import { sizeOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { ArgumentError } from "../tensor/errors.js";

export function fans(shape: readonly number[]): [number, number] {
  if (shape.length < 2) return [shape[0] ?? 1, shape[0] ?? 1];
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return [shape[1] * receptive, shape[0] * receptive];
}

export function uniform(shape: readonly number[], low: number, high: number, g: Generator, dtype: DType = "float32"): Tensor {
  const d = allocate(dtype, sizeOf(shape));
  for (let i = 0; i < d.length; i++) d[i] = low + (high - low) * g.nextFloat64();
  return new Tensor(d, shape, dtype);
}

export function normal(shape: readonly number[], std: number, g: Generator, dtype: DType = "float32"): Tensor {
  const d = allocate(dtype, sizeOf(shape));
  for (let i = 0; i < d.length; i++) d[i] = std * g.nextNormal();
  return new Tensor(d, shape, dtype);
}

/** U(-a, a), a = sqrt(6 / (fan_in + fan_out)) */
export function xavierUniform(shape: readonly number[], g: Generator, dtype: DType = "float32"): Tensor {
  const [fi, fo] = fans(shape);
  const a = Math.sqrt(6 / (fi + fo));
  return uniform(shape, -a, a, g, dtype);
}

/** N(0, std^2), std = sqrt(2 / (fan_in + fan_out)) */
export function xavierNormal(shape: readonly number[], g: Generator, dtype: DType = "float32"): Tensor {
  const [fi, fo] = fans(shape);
  return normal(shape, Math.sqrt(2 / (fi + fo)), g, dtype);
}

/** torch.nn.Linear's default: kaiming_uniform(a = sqrt(5)), which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function linearWeight(shape: readonly number[], g: Generator, dtype: DType = "float32"): Tensor {
  const bound = 1 / Math.sqrt(Math.max(fans(shape)[0], 1));
  return uniform(shape, -bound, bound, g, dtype);
}

/**
 * A module's skipInit option (default false). With it the parameters are allocated as zeros and no
 * number is drawn: for a module whose weights are about to be loaded (fromPretrained), where drawing
 * them would cost time and, once written, memory that the checkpoint overwrites anyway.
 */
export function checkSkipInit(fn: string, skipInit: unknown): boolean {
  if (skipInit !== undefined && typeof skipInit !== "boolean") throw new ArgumentError(`${fn}: skipInit must be true or false, got ${JSON.stringify(skipInit)}`);
  return skipInit === true;
}

/** A zero-filled parameter (what skipInit gives). */
export function zerosOf(shape: readonly number[], dtype: DType = "float32"): Tensor {
  return new Tensor(allocate(dtype, sizeOf(shape)), shape, dtype);
}
