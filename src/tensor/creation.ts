/** Creation ops. Random ones take an explicit seeded Generator (or a seed), else the default one. */
import { type DType, allocate } from "./dtype.js";
import { ArgumentError } from "./errors.js";
import { type Generator as Gen, Generator, defaultGenerator } from "./random.js";
import { type Shape, checkShape, sizeOf } from "./shape.js";
import { Tensor, type TensorOptions } from "./tensor.js";

export interface RandomOptions extends TensorOptions {
  /** the generator to draw from (advanced by the draw) */
  generator?: Gen;
  /** shorthand for a fresh Generator(seed) */
  seed?: number;
}

function make(fn: string, shape: Shape, opts: TensorOptions, fill: (data: ReturnType<typeof allocate>) => void): Tensor {
  checkShape(fn, shape);
  const dtype: DType = opts.dtype ?? "float32";
  const data = allocate(dtype, sizeOf(shape));
  fill(data);
  const t = new Tensor(data, shape, dtype);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

export function full(shape: Shape, value: number | boolean, opts: TensorOptions = {}): Tensor {
  const dtype = opts.dtype ?? (typeof value === "boolean" ? "bool" : "float32");
  return make("full", shape, { ...opts, dtype }, (d) => d.fill(Number(value)));
}
export const zeros = (shape: Shape, opts: TensorOptions = {}): Tensor => make("zeros", shape, opts, () => {});
export const ones = (shape: Shape, opts: TensorOptions = {}): Tensor => make("ones", shape, opts, (d) => d.fill(1));

/** [start, end) in steps (arange(n) = 0..n-1), float32 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (!Number.isFinite(start) || !Number.isFinite(end) || !Number.isFinite(step) || step === 0) {
    throw new ArgumentError(`arange: start, end and step must be finite with step != 0, got ${start}, ${end}, ${step}`);
  }
  const n = Math.max(0, Math.ceil((end - start) / step));
  return make("arange", [n], opts, (d) => {
    for (let i = 0; i < n; i++) d[i] = start + i * step;
  });
}

function generatorOf(fn: string, opts: RandomOptions): Gen {
  if (opts.generator !== undefined && opts.seed !== undefined) {
    throw new ArgumentError(`${fn}: pass either generator or seed, not both`);
  }
  if (opts.generator !== undefined) {
    if (!(opts.generator instanceof Generator)) throw new ArgumentError(`${fn}: generator must be a Generator`);
    return opts.generator;
  }
  return opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator();
}

function checkFloat(fn: string, opts: TensorOptions): void {
  if (opts.dtype !== undefined && opts.dtype !== "float32" && opts.dtype !== "float64") {
    throw new ArgumentError(`${fn}: dtype must be float32 or float64, got ${opts.dtype}`);
  }
}

/** Standard normal samples. */
export function randn(shape: Shape, opts: RandomOptions = {}): Tensor {
  checkFloat("randn", opts);
  const g = generatorOf("randn", opts);
  return make("randn", shape, opts, (d) => {
    for (let i = 0; i < d.length; i++) d[i] = g.nextNormal();
  });
}

/** Uniform samples in [0, 1). */
export function rand(shape: Shape, opts: RandomOptions = {}): Tensor {
  checkFloat("rand", opts);
  const g = generatorOf("rand", opts);
  const f64 = opts.dtype === "float64";
  return make("rand", shape, opts, (d) => {
    for (let i = 0; i < d.length; i++) d[i] = f64 ? g.nextFloat64() : g.nextFloat32();
  });
}

/** Uniform integers in [low, high), int32. */
export function randint(low: number, high: number, shape: Shape, opts: Omit<RandomOptions, "dtype" | "requiresGrad"> = {}): Tensor {
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) {
    throw new ArgumentError(`randint: needs integers low < high, got ${low} and ${high}`);
  }
  const g = generatorOf("randint", opts);
  return make("randint", shape, { dtype: "int32" }, (d) => {
    for (let i = 0; i < d.length; i++) d[i] = low + g.nextInt(high - low);
  });
}
