/**
 * Elementwise ops with NumPy/PyTorch broadcasting, each forward beside its gradient.
 * Broadcast gradients are summed back to the input's shape once, in unbroadcast().
 */
import { type DType, type TypedArray, allocate, allocateOverwritten, checkDType, isFloatDType, promote } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { type Shape, broadcastShapes, broadcastStrides, sameShape, sizeOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { forEachRun, unbroadcast } from "./broadcast.js";
import { assertTensor, result, scalarLike } from "./util.js";

// ---------------------------------------------------------------------------------------------
// Broadcasting machinery

const enum Bin { Add, Sub, Mul, Div, Max, Min, Eq, Ne, Lt, Le, Gt, Ge, And, Or, Pow }

/** out[o + j] = a[ai + j*as] (op) b[bi + j*bs] for j < n: one tight loop per op. */
function binLoop(op: Bin, out: TypedArray, o: number, a: TypedArray, ai: number, as: number, b: TypedArray, bi: number, bs: number, n: number): void {
  switch (op) {
    case Bin.Add: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] + b[bi + j * bs]; break;
    case Bin.Sub: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] - b[bi + j * bs]; break;
    case Bin.Mul: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] * b[bi + j * bs]; break;
    case Bin.Div: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] / b[bi + j * bs]; break;
    case Bin.Pow: for (let j = 0; j < n; j++) out[o + j] = Math.pow(a[ai + j * as], b[bi + j * bs]); break;
    case Bin.Max: for (let j = 0; j < n; j++) { const x = a[ai + j * as], y = b[bi + j * bs]; out[o + j] = x !== x || y !== y ? NaN : x > y ? x : y; } break;
    case Bin.Min: for (let j = 0; j < n; j++) { const x = a[ai + j * as], y = b[bi + j * bs]; out[o + j] = x !== x || y !== y ? NaN : x < y ? x : y; } break;
    case Bin.Eq: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] === b[bi + j * bs] ? 1 : 0; break;
    case Bin.Ne: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] !== b[bi + j * bs] ? 1 : 0; break;
    case Bin.Lt: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] < b[bi + j * bs] ? 1 : 0; break;
    case Bin.Le: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] <= b[bi + j * bs] ? 1 : 0; break;
    case Bin.Gt: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] > b[bi + j * bs] ? 1 : 0; break;
    case Bin.Ge: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] >= b[bi + j * bs] ? 1 : 0; break;
    case Bin.And: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] && b[bi + j * bs] ? 1 : 0; break;
    case Bin.Or: for (let j = 0; j < n; j++) out[o + j] = a[ai + j * as] || b[bi + j * bs] ? 1 : 0; break;
  }
}

/**
 * binLoop with both strides 1, for the four arithmetic ops on float arrays (residual adds, the
 * training step's elementwise products): the same arithmetic per element, so the same bits
 * (test/fastops.test.ts), in loops V8 compiles to plain indexed loads. binLoop's loops, called with
 * every array type and stride, ran at ~2.5 ns per float32 element; these at ~1.3 (bench/profileStep.ts).
 * Returns false for the other ops and for integer or mixed arrays: binLoop then runs.
 */
function binLoopSame(op: Bin, out: TypedArray, a: TypedArray, b: TypedArray, n: number): boolean {
  if (out instanceof Float32Array && a instanceof Float32Array && b instanceof Float32Array) return sameLoop32(op, out, a, b, n);
  if (out instanceof Float64Array && a instanceof Float64Array && b instanceof Float64Array) return sameLoop64(op, out, a, b, n);
  return false;
}

function sameLoop32(op: Bin, out: Float32Array, a: Float32Array, b: Float32Array, n: number): boolean {
  switch (op) {
    case Bin.Add: for (let j = 0; j < n; j++) out[j] = a[j] + b[j]; return true;
    case Bin.Sub: for (let j = 0; j < n; j++) out[j] = a[j] - b[j]; return true;
    case Bin.Mul: for (let j = 0; j < n; j++) out[j] = a[j] * b[j]; return true;
    case Bin.Div: for (let j = 0; j < n; j++) out[j] = a[j] / b[j]; return true;
    default: return false;
  }
}

function sameLoop64(op: Bin, out: Float64Array, a: Float64Array, b: Float64Array, n: number): boolean {
  switch (op) {
    case Bin.Add: for (let j = 0; j < n; j++) out[j] = a[j] + b[j]; return true;
    case Bin.Sub: for (let j = 0; j < n; j++) out[j] = a[j] - b[j]; return true;
    case Bin.Mul: for (let j = 0; j < n; j++) out[j] = a[j] * b[j]; return true;
    case Bin.Div: for (let j = 0; j < n; j++) out[j] = a[j] / b[j]; return true;
    default: return false;
  }
}

function binaryRaw(fn: string, op: Bin, a: Tensor, b: Tensor, outDtype: DType): { data: TypedArray; shape: number[] } {
  const shape = broadcastShapes(fn, a.shape, b.shape);
  const out = allocateOverwritten(outDtype, sizeOf(shape)); // every path below writes every element
  if (sameShape(a.shape, b.shape)) {
    if (!binLoopSame(op, out, a.values, b.values, out.length)) binLoop(op, out, 0, a.values, 0, 1, b.values, 0, 1, out.length);
  }
  else if (b.size === 1 && sameShape(a.shape, shape)) binLoop(op, out, 0, a.values, 0, 1, b.values, 0, 0, out.length);
  else if (a.size === 1 && sameShape(b.shape, shape)) binLoop(op, out, 0, a.values, 0, 0, b.values, 0, 1, out.length);
  else if (b.size > 0 && sameShape(a.shape, shape) && isTrailing(b.shape, shape)) {
    // b repeats along a's leading dims (a bias, a positional table): row by row
    for (let o = 0; o < out.length; o += b.size) binLoop(op, out, o, a.values, o, 1, b.values, 0, 1, b.size);
  } else if (a.size > 0 && sameShape(b.shape, shape) && isTrailing(a.shape, shape)) {
    for (let o = 0; o < out.length; o += a.size) binLoop(op, out, o, a.values, 0, 1, b.values, o, 1, a.size);
  } else {
    const sa = broadcastStrides(a.shape, shape);
    const sb = broadcastStrides(b.shape, shape);
    const ia = sa[shape.length - 1] ?? 0;
    const ib = sb[shape.length - 1] ?? 0;
    forEachRun(shape, [sa, sb], (o, offs, n) => binLoop(op, out, o, a.values, offs[0], ia, b.values, offs[1], ib, n));
  }
  return { data: out, shape };
}

/** Whether `part`, without its leading 1s, is the trailing dims of `full` ([T, C] in [N, T, C]). */
function isTrailing(part: readonly number[], full: readonly number[]): boolean {
  let lead = 0;
  while (lead < part.length && part[lead] === 1) lead++;
  const n = part.length - lead;
  if (n > full.length) return false;
  for (let i = 0; i < n; i++) if (part[lead + i] !== full[full.length - n + i]) return false;
  return true;
}

/**
 * unbroadcast, with the common case as a plain loop: when `shape` is the trailing dims of g's, the
 * gradient is a column sum over g's leading rows, in float64 and in row order (as sumAxes adds).
 */
function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  const n = sizeOf(shape);
  if (sameShape(g.shape, shape) || n === 0 || !isTrailing(shape, g.shape)) return unbroadcast(g, shape);
  const acc = new Float64Array(n);
  const gd = g.values;
  for (let o = 0; o < gd.length; o += n) for (let j = 0; j < n; j++) acc[j] += gd[o + j];
  const dtype = isFloatDType(g.dtype) ? g.dtype : "int32";
  const out = allocate(dtype, n);
  out.set(acc);
  return new Tensor(out, shape, dtype);
}

function operands(fn: string, a: Tensor | number, b: Tensor | number): [Tensor, Tensor] {
  if (typeof a === "number" && typeof b === "number") {
    throw new ArgumentError(`${fn}: at least one operand must be a Tensor, got two numbers`);
  }
  const ta = typeof a === "number" ? scalarLike(a, b as Tensor) : a;
  const tb = typeof b === "number" ? scalarLike(b, ta) : b;
  assertTensor(fn, "a", ta);
  assertTensor(fn, "b", tb);
  return [ta, tb];
}

function arithmeticDtype(a: Tensor, b: Tensor, op: Bin): DType {
  let d = promote(a.dtype, b.dtype);
  if (d === "bool") d = "int32";
  if ((op === Bin.Div || op === Bin.Pow) && !isFloatDType(d)) d = "float32";
  return d;
}

type BinGrad = (g: Tensor, a: Tensor, b: Tensor, out: Tensor) => [Tensor | null, Tensor | null];

function arithmetic(fn: string, op: Bin, x: Tensor | number, y: Tensor | number, grad: BinGrad): Tensor {
  const [a, b] = operands(fn, x, y);
  const dtype = arithmeticDtype(a, b, op);
  const { data, shape } = binaryRaw(fn, op, a, b, dtype);
  let out: Tensor;
  const backward = (g: Tensor): (Tensor | null)[] => {
    const [ga, gb] = grad(g, a, b, out);
    return [ga && reduceTo(ga, a.shape), gb && reduceTo(gb, b.shape)];
  };
  out = result(fn, data, shape, dtype, [a, b], backward);
  return out;
}

// d(a+b) = g, g
export function add(a: Tensor | number, b: Tensor | number): Tensor {
  return arithmetic("add", Bin.Add, a, b, (g) => [g, g]);
}
// d(a-b) = g, -g
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  return arithmetic("sub", Bin.Sub, a, b, (g) => [g, neg(g)]);
}
// d(a*b) = g*b, g*a
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  return arithmetic("mul", Bin.Mul, a, b, (g, x, y) => [mul(g, y), mul(g, x)]);
}
// d(a/b) = g/b, -g*a/b^2 = -g*out/b
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  return arithmetic("div", Bin.Div, a, b, (g, _x, y, out) => [div(g, y), neg(div(mul(g, out), y))]);
}
// maximum/minimum: the gradient goes to the larger (smaller) input, split in half on ties (as PyTorch).
export function maximum(a: Tensor | number, b: Tensor | number): Tensor {
  return arithmetic("maximum", Bin.Max, a, b, (g, x, y) => tieSplit(g, x, y, Bin.Gt));
}
export function minimum(a: Tensor | number, b: Tensor | number): Tensor {
  return arithmetic("minimum", Bin.Min, a, b, (g, x, y) => tieSplit(g, x, y, Bin.Lt));
}
function tieSplit(g: Tensor, x: Tensor, y: Tensor, wins: Bin): [Tensor, Tensor] {
  const shape = broadcastShapes("maximum", x.shape, y.shape);
  const wa = allocate(g.dtype, sizeOf(shape));
  const sa = broadcastStrides(x.shape, shape);
  const sb = broadcastStrides(y.shape, shape);
  const ia = sa[shape.length - 1] ?? 0;
  const ib = sb[shape.length - 1] ?? 0;
  forEachRun(shape, [sa, sb], (o, offs, n) => {
    for (let j = 0; j < n; j++) {
      const u = x.values[offs[0] + j * ia];
      const v = y.values[offs[1] + j * ib];
      wa[o + j] = u === v ? 0.5 : (wins === Bin.Gt ? u > v : u < v) ? 1 : 0;
    }
  });
  const w = new Tensor(wa, shape, g.dtype);
  return [mul(g, w), mul(g, sub(1, w))];
}

// ---------------------------------------------------------------------------------------------
// Comparisons and logic (bool results, no gradient)

function compare(fn: string, op: Bin, a: Tensor | number, b: Tensor | number): Tensor {
  const [x, y] = operands(fn, a, b);
  const { data, shape } = binaryRaw(fn, op, x, y, "bool");
  return new Tensor(data, shape, "bool");
}
export const eq = (a: Tensor | number, b: Tensor | number): Tensor => compare("eq", Bin.Eq, a, b);
export const ne = (a: Tensor | number, b: Tensor | number): Tensor => compare("ne", Bin.Ne, a, b);
export const lt = (a: Tensor | number, b: Tensor | number): Tensor => compare("lt", Bin.Lt, a, b);
export const le = (a: Tensor | number, b: Tensor | number): Tensor => compare("le", Bin.Le, a, b);
export const gt = (a: Tensor | number, b: Tensor | number): Tensor => compare("gt", Bin.Gt, a, b);
export const ge = (a: Tensor | number, b: Tensor | number): Tensor => compare("ge", Bin.Ge, a, b);
export const logicalAnd = (a: Tensor, b: Tensor): Tensor => compare("logicalAnd", Bin.And, a, b);
export const logicalOr = (a: Tensor, b: Tensor): Tensor => compare("logicalOr", Bin.Or, a, b);
export function logicalNot(a: Tensor): Tensor {
  assertTensor("logicalNot", "a", a);
  const out = new Uint8Array(a.size);
  for (let i = 0; i < out.length; i++) out[i] = a.values[i] ? 0 : 1;
  return new Tensor(out, a.shape, "bool");
}

// ---------------------------------------------------------------------------------------------
// Unary ops: forward as one loop, gradient as a formula in the output and/or input

function unary(fn: string, x: Tensor, f: (v: number) => number, grad: ((g: Tensor, x: Tensor, y: Tensor) => Tensor) | null): Tensor {
  assertTensor(fn, "x", x);
  const dtype: DType = isFloatDType(x.dtype) ? x.dtype : "float32";
  const out = allocateOverwritten(dtype, x.size); // every element written below
  const xd = x.values;
  for (let i = 0; i < out.length; i++) out[i] = f(xd[i]);
  let y: Tensor;
  y = result(fn, out, x.shape, dtype, [x], grad && ((g) => [grad(g, x, y)]));
  return y;
}

/** A gradient-free elementwise map used inside backward formulas. */
function mapData(x: Tensor, f: (v: number) => number): Tensor {
  const out = allocateOverwritten(x.dtype, x.size); // every element written below
  for (let i = 0; i < out.length; i++) out[i] = f(x.values[i]);
  return new Tensor(out, x.shape, x.dtype);
}

export function neg(x: Tensor): Tensor {
  return unary("neg", x, (v) => -v, (g) => neg(g));
}
// exp: dx = g * y
export function exp(x: Tensor): Tensor {
  return unary("exp", x, Math.exp, (g, _x, y) => mul(g, y));
}
// log: dx = g / x
export function log(x: Tensor): Tensor {
  return unary("log", x, Math.log, (g, xx) => div(g, xx));
}
// sqrt: dx = g / (2 y)
export function sqrt(x: Tensor): Tensor {
  return unary("sqrt", x, Math.sqrt, (g, _x, y) => div(g, mul(y, 2)));
}
// tanh: dx = g * (1 - y^2)
export function tanh(x: Tensor): Tensor {
  return unary("tanh", x, Math.tanh, (g, _x, y) => mul(g, mapData(y, (v) => 1 - v * v)));
}
// sigmoid: dx = g * y (1 - y)
export function sigmoid(x: Tensor): Tensor {
  return unary("sigmoid", x, (v) => 1 / (1 + Math.exp(-v)), (g, _x, y) => mul(g, mapData(y, (v) => v * (1 - v))));
}
// relu: dx = g * [x > 0]
export function relu(x: Tensor): Tensor {
  return unary("relu", x, (v) => (v > 0 ? v : v !== v ? v : 0), (g, xx) => mul(g, mapData(xx, (v) => (v > 0 ? 1 : 0))));
}
// abs: dx = g * sign(x)
export function abs(x: Tensor): Tensor {
  return unary("abs", x, Math.abs, (g, xx) => mul(g, mapData(xx, (v) => Math.sign(v))));
}
// pow with a constant exponent: dx = g * p * x^(p-1)
export function pow(x: Tensor, exponent: number): Tensor {
  if (typeof exponent !== "number" || Number.isNaN(exponent)) {
    throw new ArgumentError(`pow: exponent must be a number, got ${String(exponent)}`);
  }
  return unary("pow", x, (v) => Math.pow(v, exponent), (g, xx) =>
    mul(g, mapData(xx, (v) => (exponent === 0 ? 0 : exponent * Math.pow(v, exponent - 1)))),
  );
}

// GELU has its own file (gelu.ts: its derivative tables), re-exported here beside the other activations.
export { gelu, type GeluApproximate } from "./gelu.js";

// ---------------------------------------------------------------------------------------------
// Selection

/**
 * where(cond, a, b): a where cond is true, else b, all three broadcast together.
 * Gradients: g masked to each side.
 */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const fn = "where";
  assertTensor(fn, "cond", cond);
  if (cond.dtype !== "bool") throw new ArgumentError(`${fn}: cond must be a bool tensor, got ${cond.dtype}`);
  const [x, y] = operands(fn, a, b);
  const dtype = promote(x.dtype, y.dtype);
  const shape = broadcastShapes(fn, broadcastShapes(fn, cond.shape, x.shape, "cond", "a"), y.shape, "cond/a", "b");
  const out = allocate(dtype, sizeOf(shape));
  const sc = broadcastStrides(cond.shape, shape);
  const sx = broadcastStrides(x.shape, shape);
  const sy = broadcastStrides(y.shape, shape);
  const last = shape.length - 1;
  const [ic, ix, iy] = [sc[last] ?? 0, sx[last] ?? 0, sy[last] ?? 0];
  forEachRun(shape, [sc, sx, sy], (o, offs, n) => {
    for (let j = 0; j < n; j++) {
      out[o + j] = cond.values[offs[0] + j * ic] ? x.values[offs[1] + j * ix] : y.values[offs[2] + j * iy];
    }
  });
  return result(fn, out, shape, dtype, [x, y], (g) => {
    const zero = scalarLike(0, g);
    return [unbroadcast(where(cond, g, zero), x.shape), unbroadcast(where(cond, zero, g), y.shape)];
  });
}

/** x with `value` wherever mask (bool, broadcast to x) is true; no gradient flows through filled places. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  const fn = "maskedFill";
  assertTensor(fn, "x", x);
  assertTensor(fn, "mask", mask);
  if (mask.dtype !== "bool") throw new ArgumentError(`${fn}: mask must be a bool tensor, got ${mask.dtype}`);
  const shape = broadcastShapes(fn, x.shape, mask.shape, "x", "mask");
  if (!sameShape(shape, x.shape)) {
    throw new ShapeError(`${fn}: mask of shape ${fmtShape(mask.shape)} must broadcast to x's shape ${fmtShape(x.shape)}, not enlarge it to ${fmtShape(shape)}`);
  }
  return where(mask, scalarLike(value, x), x);
}

// ---------------------------------------------------------------------------------------------
// Dtype and copies

/** Convert to another dtype (gradients flow between float types). */
export function cast(x: Tensor, dtype: DType): Tensor {
  assertTensor("cast", "x", x);
  checkDType("cast", "dtype", dtype);
  if (x.dtype === dtype) return x;
  const out = allocate(dtype, x.size);
  if (dtype === "bool") for (let i = 0; i < out.length; i++) out[i] = x.values[i] ? 1 : 0;
  else if (dtype === "int32") for (let i = 0; i < out.length; i++) out[i] = Math.trunc(x.values[i]);
  else out.set(x.values);
  const back = isFloatDType(x.dtype) && isFloatDType(dtype);
  return result("cast", out, x.shape, dtype, [x], back ? (g) => [cast(g, x.dtype)] : null);
}

export function clone(x: Tensor): Tensor {
  assertTensor("clone", "x", x);
  return result("clone", x.values.slice(), x.shape, x.dtype, [x], (g) => [g]);
}

export function fullLike(x: Tensor, value: number, dtype: DType = x.dtype): Tensor {
  assertTensor("fullLike", "x", x);
  checkDType("fullLike", "dtype", dtype);
  const out = allocate(dtype, x.size);
  out.fill(value);
  return new Tensor(out, x.shape, dtype);
}
export const zerosLike = (x: Tensor, dtype?: DType): Tensor => fullLike(x, 0, dtype);
export const onesLike = (x: Tensor, dtype?: DType): Tensor => fullLike(x, 1, dtype);

