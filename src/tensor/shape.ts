import { ArgumentError, ShapeError, fmtShape } from "./errors.js";
import { describeValue } from "./validate.js";

export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides: the last dim is contiguous. */
export function stridesOf(shape: Shape): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

export function sameShape(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** NumPy/PyTorch broadcasting: align from the right; each dim pair must be equal or contain a 1. */
export function broadcastShapes(fn: string, a: Shape, b: Shape, aName = "a", bName = "b"): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        `${fn}: ${aName} of shape ${fmtShape(a)} and ${bName} of shape ${fmtShape(b)} do not broadcast ` +
          `(dim ${i - n} is ${da} vs ${db}; each pair must be equal or one of them 1)`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * Strides that read a tensor of shape `from` as if it had the (broadcast) shape `to`:
 * broadcast dims get stride 0.
 */
export function broadcastStrides(from: Shape, to: Shape): number[] {
  const st = stridesOf(from);
  const out = new Array<number>(to.length).fill(0);
  const off = to.length - from.length;
  for (let i = 0; i < from.length; i++) out[i + off] = from[i] === 1 && to[i + off] !== 1 ? 0 : st[i];
  return out;
}

/** Resolve a possibly negative axis against a rank, with a clear error when out of range. */
export function normAxis(fn: string, axis: number, rank: number, argName = "axis"): number {
  if (!Number.isInteger(axis)) throw new ArgumentError(`${fn}: ${argName} must be an integer, got ${axis}`);
  const lo = rank === 0 ? -1 : -rank;
  const hi = rank === 0 ? 0 : rank - 1;
  if (axis < lo || axis > hi) {
    throw new ArgumentError(`${fn}: ${argName} ${axis} is out of range for a tensor of rank ${rank} (expected ${lo}..${hi})`);
  }
  return axis < 0 ? axis + Math.max(rank, 1) : axis;
}

export function checkShape(fn: string, shape: Shape, argName = "shape"): void {
  if (!Array.isArray(shape)) {
    throw new ArgumentError(`${fn}: ${argName} must be an array of sizes like [2, 3], got ${describeValue(shape)}`);
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new ArgumentError(`${fn}: ${argName} ${fmtShape(shape)} must hold non-negative integers`);
    }
  }
}

/** Split a shape around one axis into [outer, n, inner] for axis-wise kernels. */
export function aroundAxis(shape: Shape, axis: number): [number, number, number] {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i];
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i];
  return [outer, shape.length === 0 ? 1 : shape[axis], inner];
}
