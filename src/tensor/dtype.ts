/**
 * Element types. Floats carry values and gradients; "bool" carries masks (true = 1 in a Uint8Array);
 * "int32" carries indices (token ids, class targets), which PyTorch would hold as int64.
 */
import { ArgumentError } from "./errors.js";
import { POOL_MIN_LENGTH, noteAllocated, takePooled } from "./pool.js";

export type DType = "float32" | "float64" | "bool" | "int32";
export const DTYPES: readonly DType[] = ["float32", "float64", "bool", "int32"];
export const FLOAT_DTYPES: readonly FloatDType[] = ["float32", "float64"];
export type FloatDType = "float32" | "float64";
export type TypedArray = Float32Array | Float64Array | Uint8Array | Int32Array;
export type FloatArray = Float32Array | Float64Array;

/** The plain-data view of a tensor: what kernels and file formats need, nothing of autograd. */
export interface RawTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly values: TypedArray;
}

export function isFloatDType(d: DType): d is FloatDType {
  return d === "float32" || d === "float64";
}

/** `v` as a DType, or an ArgumentError naming fn, the argument, the value and the dtypes `allowed`. */
export function checkDType<D extends DType = DType>(fn: string, name: string, v: unknown, allowed: readonly D[] = DTYPES as readonly D[]): D {
  if (typeof v === "string" && (allowed as readonly string[]).includes(v)) return v as D;
  const seen = typeof v === "string" ? JSON.stringify(v) : String(v);
  throw new ArgumentError(`${fn}: ${name} must be one of ${allowed.map((d) => JSON.stringify(d)).join(", ")}, got ${seen}`);
}

/**
 * A zeroed array (zero false: see allocateOverwritten) of `size` elements of `dtype`: from the pool of arrays backward() proved dead
 * (./pool.ts) when it holds one of this size, else a fresh one (allocateFresh).
 */
export function allocate(dtype: DType, size: number, zero = true): TypedArray {
  if (size < POOL_MIN_LENGTH) return allocateFresh(dtype, size);
  const a = takePooled(dtype, size, zero) ?? allocateFresh(dtype, size);
  noteAllocated(a);
  return a;
}

/**
 * allocate() for a caller that writes every one of the `size` elements before anything reads the
 * array (an elementwise op's output, a sum of two gradients): an array from the pool comes as it was
 * given back, not zeroed, which saves a pass over it. Zeroing a training step's reused gradient
 * arrays was ~1% of the step. Anything that may leave an element unwritten calls allocate().
 */
export function allocateOverwritten(dtype: DType, size: number): TypedArray {
  return allocate(dtype, size, false);
}

export function allocateFresh(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case "float32": return new Float32Array(size);
    case "float64": return new Float64Array(size);
    case "bool": return new Uint8Array(size);
    case "int32": return new Int32Array(size);
  }
}

export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  return "bool";
}

/** PyTorch's promotion among the types we have: float64 > float32 > int32 > bool. */
export function promote(a: DType, b: DType): DType {
  const rank: Record<DType, number> = { bool: 0, int32: 1, float32: 2, float64: 3 };
  return rank[a] >= rank[b] ? a : b;
}
