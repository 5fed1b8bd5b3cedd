/**
 * Tensor: flat row-major values, a shape and a dtype, plus what autograd needs (requiresGrad, grad,
 * and the GradNode that produced it). The values live on the host (a typed array, `t.values`: the
 * ref and wasm backends) or in a device backend's buffer (a DeviceBuffer, src/tensor/storage.ts),
 * read back on demand: `await t.data()` / `await t.array()` work for both. Storage is always
 * contiguous; reshape shares it, every other view op copies. Tensors are immutable by convention: ops never write into
 * their inputs (optimizers update parameters in place under noGrad, as in PyTorch).
 *
 * This file sits at the bottom of the layers: it imports nothing above src/tensor. The method forms
 * (x.add(y), x.matmul(w), x.clone(), ...) are attached by src/ops/methods.ts, and x.backward() by
 * src/autograd/backward.ts, each in its own layer.
 */
import { type DType, type TypedArray, allocate, checkDType, dtypeOfArray, isFloatDType } from "./dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "./errors.js";
import { formatTensor } from "./format.js";
import { type DeviceBuffer, isDeviceBuffer } from "./storage.js";
import { type Shape, checkShape, sizeOf } from "./shape.js";
import { checkOptions, describeValue, optionKeys } from "./validate.js";

/**
 * What autograd records on an op's output: the op's name, its inputs and its local chain rule
 * (output gradient -> one gradient per input, null for none). Defined here, below autograd, because
 * a Tensor holds one; src/autograd/tape.ts builds and walks them.
 */
export interface GradNode {
  /** name of the op, for error messages and debugging */
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** gradient of the output -> gradient of each input (null = no gradient for that input) */
  readonly backward: (grad: Tensor) => (Tensor | null)[];
}

export type NestedArray = number | boolean | NestedArray[];

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}
export const TENSOR_OPTION_KEYS = optionKeys<TensorOptions>({ dtype: true, requiresGrad: true });

export class Tensor {
  /** the host copy (null until a device tensor is read back) */
  private _host: TypedArray | null;
  /** the device buffer, for a tensor a device backend made (null for host tensors) */
  readonly device: DeviceBuffer | null;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** The accumulated gradient of a leaf after backward(); null before. */
  grad: Tensor | null = null;
  /** The op that produced this tensor (null for leaves and for tensors made without gradient). */
  gradNode: GradNode | null = null;
  private _requiresGrad = false;

  /**
   * Low-level constructor: takes ownership of `values` (no copy), a host typed array or a device
   * backend's buffer (then `dtype` is required). Use tensor() for user data.
   */
  constructor(values: TypedArray | DeviceBuffer, shape: Shape, dtype?: DType) {
    const onDevice = isDeviceBuffer(values);
    if (onDevice && dtype === undefined) {
      throw new ArgumentError(`Tensor: a tensor on the "${values.backend}" backend needs its dtype (new Tensor(buffer, shape, dtype))`);
    }
    if (values.length !== sizeOf(shape)) {
      throw new ShapeError(`Tensor: values has ${values.length} elements but shape ${fmtShape(shape)} needs ${sizeOf(shape)}`);
    }
    this._host = onDevice ? null : values;
    this.device = onDevice ? values : null;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype ?? dtypeOfArray(values as TypedArray);
  }

  /**
   * The values as a flat row-major typed array, shared, not copied (ops read and write through it).
   * For a device tensor this reads back synchronously where its backend can, and otherwise asks you
   * to `await t.data()` first.
   */
  get values(): TypedArray {
    const h = this._host;
    return h !== null ? h : this.readBackSync();
  }

  private readBackSync(): TypedArray {
    const d = this.device!;
    if (d.readSync === undefined) {
      throw new ArgumentError(
        `Tensor.values: this tensor lives on the "${d.backend}" backend, which cannot read synchronously; use \`await t.data()\` or \`await t.array()\` (after that the values are on the host too)`,
      );
    }
    this._host = d.readSync();
    return this._host;
  }

  /** Whether the values live in a device backend's buffer (false for the host backends ref and wasm). */
  get isOnDevice(): boolean {
    return this.device !== null;
  }

  /** A flat row-major copy of the values, wherever they live (tfjs's and PyTorch's async read). */
  async data(): Promise<TypedArray> {
    if (this._host === null) this._host = await this.device!.read();
    return this._host.slice();
  }

  /** The values as nested arrays, wherever they live (see arraySync). */
  async array<T extends NestedArray = NestedArray>(): Promise<T> {
    if (this._host === null) this._host = await this.device!.read();
    return this.arraySync<T>();
  }

  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  set requiresGrad(v: boolean) {
    if (v && !isFloatDType(this.dtype)) {
      throw new ArgumentError(`Tensor.requiresGrad: only float32/float64 tensors can require gradients, this one is ${this.dtype}`);
    }
    this._requiresGrad = v;
  }

  /** Mark as a leaf that needs a gradient; returns this (PyTorch's requires_grad_()). */
  requiresGrad_(v = true): this {
    this.requiresGrad = v;
    return this;
  }

  get size(): number {
    return this._host !== null ? this._host.length : this.device!.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** A leaf is a tensor no recorded op produced: its gradient lands in .grad. */
  get isLeaf(): boolean {
    return this.gradNode === null;
  }

  /** A flat row-major copy of the values (synchronous: host tensors, or devices that can read synchronously). */
  dataSync(): TypedArray {
    return this.values.slice();
  }

  /**
   * The data as nested arrays (booleans for a bool tensor), e.g. [[1, 2], [3, 4]]. The type argument
   * states what you know of the rank, so strict TypeScript can index the result:
   * `t.arraySync<number[][]>()[0][1]` (it is not checked; the default is the general NestedArray).
   */
  arraySync<T extends NestedArray = NestedArray>(): T {
    const isBool = this.dtype === "bool";
    const data = this.values;
    const shape = this.shape;
    if (shape.length === 0) return (isBool ? data[0] !== 0 : data[0]) as T;
    const build = (dim: number, offset: number, stride: number): NestedArray[] => {
      const n = shape[dim];
      const inner = stride / Math.max(n, 1);
      const out: NestedArray[] = new Array(n);
      for (let i = 0; i < n; i++) {
        out[i] = dim === shape.length - 1
          ? (isBool ? data[offset + i] !== 0 : data[offset + i])
          : build(dim + 1, offset + i * inner, inner);
      }
      return out;
    };
    return build(0, 0, this.size) as T;
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`Tensor.item: needs a tensor with one element, this one has shape ${fmtShape(this.shape)}`);
    return this.values[0];
  }

  /** The same values, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this._host ?? this.device!, this.shape, this.dtype);
  }

  /** PyTorch's repr: `tensor([[1.0000, 2.5000], [3.0000, 4.0000]], requires_grad=True)` (see format.ts). */
  toString(): string {
    if (this._host === null && this.device!.readSync === undefined) {
      return `tensor(<${this.size} values on the "${this.device!.backend}" backend: await t.data() to read>, shape=${fmtShape(this.shape)}, dtype=${this.dtype})`;
    }
    return formatTensor(this, { requiresGrad: this.requiresGrad, gradOp: this.gradNode?.op ?? null });
  }

  /** console.log(t) and util.inspect(t) in Node print the same as String(t) (no node:util needed). */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }
}

// ---------------------------------------------------------------------------------------------
// Creation

function inferNested(fn: string, data: NestedArray): { shape: number[]; flat: (number | boolean)[] } {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as NestedArray;
    if (cur === undefined) break;
  }
  const flat: (number | boolean)[] = [];
  const walk = (x: NestedArray, dim: number, path: string): void => {
    if (dim === shape.length) {
      if (Array.isArray(x)) throw new ShapeError(`${fn}: ragged nested array at ${path} (expected a number, found an array)`);
      if (typeof x !== "number" && typeof x !== "boolean") {
        throw new ArgumentError(`${fn}: element at ${path} is ${typeof x}, expected a number or boolean`);
      }
      flat.push(x);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim]) {
      throw new ShapeError(
        `${fn}: ragged nested array at ${path}: expected ${shape[dim]} elements like the first row, found ${Array.isArray(x) ? x.length : "a scalar"}`,
      );
    }
    for (let i = 0; i < x.length; i++) walk(x[i], dim + 1, `${path}[${i}]`);
  };
  walk(data, 0, "data");
  return { shape, flat };
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

function fillArray(fn: string, dtype: DType, values: ArrayLike<number | boolean | bigint>): TypedArray {
  const out = allocate(dtype, values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (dtype === "bool") {
      out[i] = v ? 1 : 0;
      continue;
    }
    const x = Number(v);
    if (dtype === "int32" && !(x >= INT32_MIN && x <= INT32_MAX)) {
      throw new ArgumentError(`${fn}: data[${i}] = ${String(v)} does not fit int32 (${INT32_MIN}..${INT32_MAX}); pass { dtype: "float64" } to keep it`);
    }
    out[i] = x;
  }
  return out;
}

/** What tensor() takes: nested arrays of numbers or booleans, or a flat typed array. */
export type TensorData =
  | NestedArray | readonly number[] | TypedArray
  | Int8Array | Int16Array | Uint16Array | Uint8ClampedArray | Uint32Array | BigInt64Array | BigUint64Array;

/**
 * The dtype a typed array becomes: Float32Array and Float64Array keep theirs, Uint8Array means bool
 * (masks), every other integer array becomes int32 (values checked to fit), Float16Array float32.
 */
function dtypeOfView(fn: string, data: ArrayBufferView): DType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Uint8Array) return "bool";
  const ints = [Int32Array, Int8Array, Int16Array, Uint16Array, Uint8ClampedArray, Uint32Array, BigInt64Array, BigUint64Array];
  if (ints.some((c) => data instanceof c)) return "int32";
  const f16 = (globalThis as { Float16Array?: new () => ArrayBufferView }).Float16Array;
  if (f16 !== undefined && data instanceof f16) return "float32";
  throw new ArgumentError(`${fn}: data is ${describeValue(data)}; pass a typed array (Float32Array, Float64Array, Int32Array, Uint8Array, ...) or nested arrays`);
}

/**
 * Make a tensor from user data (always copied):
 *   tensor([[1, 2], [3, 4]])                       nested arrays, shape inferred
 *   tensor(new Float32Array(6), [2, 3])            flat typed array + shape
 *   tensor([1, 2, 3, 4], [2, 2], { dtype: "float64", requiresGrad: true })
 *   tensor([1, 2], { dtype: "float64" })           options without a shape
 * dtype defaults to float32 for numbers, bool for booleans, and for a typed array to its own:
 * Float32Array/Float64Array keep theirs, Uint8Array means bool, Int8/Int16/Int32/Uint16/Uint32/
 * Uint8Clamped/BigInt64/BigUint64 arrays become int32 (each value must fit), Float16Array float32.
 */
export function tensor(data: TensorData, opts?: TensorOptions): Tensor;
export function tensor(data: TensorData, shape?: Shape, opts?: TensorOptions): Tensor;
export function tensor(data: TensorData, shapeOrOpts?: Shape | TensorOptions, options?: TensorOptions): Tensor {
  const fn = "tensor";
  const optsFirst = shapeOrOpts !== undefined && shapeOrOpts !== null && typeof shapeOrOpts === "object" && !Array.isArray(shapeOrOpts) && !ArrayBuffer.isView(shapeOrOpts);
  const shape = optsFirst ? undefined : (shapeOrOpts as Shape | undefined);
  const opts = optsFirst ? (shapeOrOpts as TensorOptions) : (options ?? {});
  checkOptions(fn, "options", opts, TENSOR_OPTION_KEYS);
  let flat: ArrayLike<number | boolean | bigint>;
  let inferredShape: number[];
  let dtype = opts.dtype === undefined ? undefined : checkDType(fn, "dtype", opts.dtype);
  if (ArrayBuffer.isView(data)) {
    const own = dtypeOfView(fn, data);
    flat = data as ArrayLike<number | bigint>;
    inferredShape = [flat.length];
    dtype ??= own;
  } else if (typeof data === "number" || typeof data === "boolean") {
    flat = [data];
    inferredShape = [];
    dtype ??= typeof data === "boolean" ? "bool" : "float32";
  } else if (Array.isArray(data)) {
    const r = inferNested(fn, data as NestedArray);
    flat = r.flat;
    inferredShape = r.shape;
    dtype ??= r.flat.length > 0 && typeof r.flat[0] === "boolean" ? "bool" : "float32";
  } else {
    throw new ArgumentError(`${fn}: data must be a number, nested arrays or a typed array, got ${describeValue(data)}`);
  }
  let finalShape: number[] = inferredShape;
  if (shape !== undefined) {
    checkShape(fn, shape);
    if (sizeOf(shape) !== flat.length) {
      throw new ShapeError(`${fn}: data has ${flat.length} elements but shape ${fmtShape(shape)} needs ${sizeOf(shape)}`);
    }
    finalShape = [...shape];
  }
  const t = new Tensor(fillArray(fn, dtype, flat), finalShape, dtype);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}
