/**
 * Broadcasting, done once: walking a broadcast shape run by run (forEachRun), summing over axes in
 * float64 (sumAxes, the arithmetic of sum()), and undoing a broadcast in a gradient (unbroadcast).
 * The lowest file of the ops layer: it imports only src/tensor, so elementwise, shape and reduction
 * ops can all stand on it without importing each other in a circle.
 */
import { allocate, isFloatDType } from "../tensor/dtype.js";
import { type Shape, broadcastStrides, sameShape, sizeOf, stridesOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";

/**
 * Visit a broadcast shape row by row: calls inner(outOffset, offsets..., n, innerStrides...) for
 * every run along the last dim. Works for any number of operands.
 */
export function forEachRun(shape: Shape, operandStrides: number[][], inner: (o: number, offs: number[], n: number) => void): void {
  const rank = shape.length;
  const total = sizeOf(shape);
  if (total === 0) return;
  if (rank === 0) {
    inner(0, operandStrides.map(() => 0), 1);
    return;
  }
  const n = shape[rank - 1];
  const idx = new Array<number>(rank - 1).fill(0);
  const offs = operandStrides.map(() => 0);
  for (let o = 0; o < total; o += n) {
    inner(o, offs, n);
    // advance the odometer over dims 0..rank-2
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offs.length; k++) offs[k] += operandStrides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < offs.length; k++) offs[k] -= operandStrides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** The sums of x over `axes`, kept as size-1 dims: [shape with axes set to 1], accumulated in float64. */
export function sumAxes(x: Tensor, axes: readonly number[]): { acc: Float64Array; keep: number[] } {
  const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const acc = new Float64Array(keep.reduce((a, b) => a * b, 1));
  const outStrides = broadcastStrides(keep, x.shape);
  const inStrides = stridesOf(x.shape);
  const last = x.ndim - 1;
  const os = outStrides[last] ?? 0;
  const xd = x.values;
  forEachRun(x.shape, [inStrides, outStrides], (_o, offs, n) => {
    const xi = offs[0];
    const oi = offs[1];
    if (os === 0) {
      let s = 0;
      for (let j = 0; j < n; j++) s += xd[xi + j];
      acc[oi] += s;
    } else for (let j = 0; j < n; j++) acc[oi + j * os] += xd[xi + j];
  });
  return { acc, keep };
}

/**
 * Sum a broadcast gradient back down to `shape` (the one place broadcasting is undone): every axis
 * the forward broadcast (a leading one, or a 1 stretched to n) is summed away. Runs inside backward,
 * so it records nothing.
 */
export function unbroadcast(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  if (axes.length === 0) return new Tensor(g.values, shape, g.dtype); // only size-1 dims added or dropped
  const { acc } = sumAxes(g, axes);
  const dtype = isFloatDType(g.dtype) ? g.dtype : "int32";
  const out = allocate(dtype, acc.length);
  out.set(acc);
  return new Tensor(out, shape, dtype);
}
