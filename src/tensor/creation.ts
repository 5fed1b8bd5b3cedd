/** Creation ops. Random ones take an explicit seeded Generator (or a seed), else the default one. */
import { type DType, FLOAT_DTYPES, allocate, checkDType } from "./dtype.js";
import { ArgumentError } from "./errors.js";
import { type Generator as Gen, Generator, checkGenerator, defaultGenerator } from "./random.js";
import { type Shape, checkShape, sizeOf } from "./shape.js";
import { TENSOR_OPTION_KEYS, Tensor, type TensorOptions } from "./tensor.js";
import { checkOptions, describeValue, optionKeys } from "./validate.js";

export interface RandomOptions extends TensorOptions {
  /** the generator to draw from (advanced by the draw) */
  generator?: Gen;
  /** shorthand for a fresh Generator(seed) */
  seed?: number;
}
export const RANDOM_OPTION_KEYS = optionKeys<RandomOptions>({ dtype: true, requiresGrad: true, generator: true, seed: true });

/** randint's options: always int32, never a gradient. */
export type RandintOptions = Omit<RandomOptions, "dtype" | "requiresGrad">;
export const RANDINT_OPTION_KEYS = optionKeys<RandintOptions>({ generator: true, seed: true });

/**
 * A shape as one array, zeros([2, 3]), or as separate sizes, zeros(2, 3) (PyTorch's habit), with the
 * options last either way: zeros([2, 3], { dtype }), randn(2, 3, { seed: 0 }).
 */
export type ShapeArgs<O> = [shape: Shape, opts?: O] | [size: number, ...sizes: number[]] | [size: number, ...sizes: number[], opts: O];

function shapeArgs<O extends object>(fn: string, args: readonly unknown[], validKeys: readonly string[]): { shape: Shape; opts: O } {
  let shape: Shape;
  let rest: readonly unknown[];
  if (typeof args[0] === "number") {
    let n = 0;
    while (typeof args[n] === "number") n++;
    shape = args.slice(0, n) as number[];
    rest = args.slice(n);
  } else if (Array.isArray(args[0])) {
    shape = args[0] as Shape;
    rest = args.slice(1);
  } else {
    const seen = args.length === 0 ? "nothing" : describeValue(args[0]);
    throw new ArgumentError(`${fn}: needs a shape, as an array ${fn}([2, 3]) or as sizes ${fn}(2, 3), got ${seen}`);
  }
  if (rest.length > 1 && rest.slice(1).some((a) => a !== undefined)) {
    throw new ArgumentError(`${fn}: takes a shape and then one options object, got ${args.length} arguments (${args.map(describeValue).join(", ")})`);
  }
  checkOptions(fn, "options", rest[0], validKeys);
  return { shape, opts: (rest[0] ?? {}) as O };
}

function make(fn: string, shape: Shape, opts: TensorOptions, fill: (data: ReturnType<typeof allocate>) => void): Tensor {
  checkShape(fn, shape);
  const dtype: DType = opts.dtype === undefined ? "float32" : checkDType(fn, "dtype", opts.dtype);
  const data = allocate(dtype, sizeOf(shape));
  fill(data);
  const t = new Tensor(data, shape, dtype);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

export function full(shape: Shape, value: number | boolean, opts: TensorOptions = {}): Tensor {
  checkOptions("full", "options", opts, TENSOR_OPTION_KEYS);
  if (typeof value !== "number" && typeof value !== "boolean") throw new ArgumentError(`full: value must be a number or boolean, got ${describeValue(value)}`);
  const dtype = opts.dtype ?? (typeof value === "boolean" ? "bool" : "float32");
  return make("full", shape, { ...opts, dtype }, (d) => d.fill(Number(value)));
}

/** zeros([2, 3]) or zeros(2, 3), float32 unless a dtype is given. */
export function zeros(...args: ShapeArgs<TensorOptions>): Tensor {
  const { shape, opts } = shapeArgs<TensorOptions>("zeros", args, TENSOR_OPTION_KEYS);
  return make("zeros", shape, opts, () => {});
}

/** ones([2, 3]) or ones(2, 3), float32 unless a dtype is given. */
export function ones(...args: ShapeArgs<TensorOptions>): Tensor {
  const { shape, opts } = shapeArgs<TensorOptions>("ones", args, TENSOR_OPTION_KEYS);
  return make("ones", shape, opts, (d) => d.fill(1));
}

/** [start, end) in steps (arange(n) = 0..n-1), float32 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  checkOptions("arange", "options", opts, TENSOR_OPTION_KEYS);
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
  const g = checkGenerator(fn, "generator", opts.generator);
  if (g !== undefined) return g;
  if (opts.seed !== undefined && (typeof opts.seed !== "number" || !Number.isFinite(opts.seed))) {
    throw new ArgumentError(`${fn}: seed must be a finite number, got ${describeValue(opts.seed)}`);
  }
  return opts.seed !== undefined ? new Generator(opts.seed) : defaultGenerator();
}

function checkFloat(fn: string, opts: TensorOptions): void {
  if (opts.dtype !== undefined) checkDType(fn, "dtype", opts.dtype, FLOAT_DTYPES);
}

/** Standard normal samples: randn([2, 3]) or randn(2, 3), options last ({ seed }, { generator }, dtype). */
export function randn(...args: ShapeArgs<RandomOptions>): Tensor {
  const { shape, opts } = shapeArgs<RandomOptions>("randn", args, RANDOM_OPTION_KEYS);
  checkFloat("randn", opts);
  const g = generatorOf("randn", opts);
  return make("randn", shape, opts, (d) => {
    for (let i = 0; i < d.length; i++) d[i] = g.nextNormal();
  });
}

/** Uniform samples in [0, 1): rand([2, 3]) or rand(2, 3). */
export function rand(...args: ShapeArgs<RandomOptions>): Tensor {
  const { shape, opts } = shapeArgs<RandomOptions>("rand", args, RANDOM_OPTION_KEYS);
  checkFloat("rand", opts);
  const g = generatorOf("rand", opts);
  const f64 = opts.dtype === "float64";
  return make("rand", shape, opts, (d) => {
    for (let i = 0; i < d.length; i++) d[i] = f64 ? g.nextFloat64() : g.nextFloat32();
  });
}

/** Uniform integers in [low, high), int32. */
export function randint(low: number, high: number, shape: Shape, opts: RandintOptions = {}): Tensor {
  checkOptions("randint", "options", opts, RANDINT_OPTION_KEYS);
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) {
    throw new ArgumentError(`randint: needs integers low < high, got ${low} and ${high}`);
  }
  const g = generatorOf("randint", opts);
  return make("randint", shape, { dtype: "int32" }, (d) => {
    for (let i = 0; i < d.length; i++) d[i] = low + g.nextInt(high - low);
  });
}
