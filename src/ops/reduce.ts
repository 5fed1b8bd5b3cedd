/** Reductions over axes: sum, mean, max (with the index it came from), argmax. */
import { allocate, isFloatDType } from "../tensor/dtype.js";
import { ShapeError, fmtShape } from "../tensor/errors.js";
import { aroundAxis, broadcastStrides, normAxis, stridesOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { forEachRun, sumAxes } from "./broadcast.js";
import { div } from "./elementwise.js";
import { expand, reshape } from "./shape.js";
import { assertTensor, result } from "./util.js";

function normAxes(fn: string, axis: number | readonly number[] | undefined, rank: number): number[] {
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axis === "number" ? [axis] : [...axis];
  const out = [...new Set(list.map((a) => normAxis(fn, a, rank)))].sort((a, b) => a - b);
  return rank === 0 ? [] : out;
}

function keptShape(shape: readonly number[], axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function dropped(shape: readonly number[], axes: number[], keepdim: boolean): number[] {
  return keepdim ? keptShape(shape, axes) : shape.filter((_, i) => !axes.includes(i));
}

/** Sum over `axis` (all axes when omitted). d(sum) = g broadcast back over the summed axes. */
export function sum(x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor {
  const fn = "sum";
  assertTensor(fn, "x", x);
  const axes = normAxes(fn, axis, x.ndim);
  const { acc, keep } = sumAxes(x, axes);
  const dtype = isFloatDType(x.dtype) ? x.dtype : "int32";
  const out = allocate(dtype, acc.length);
  out.set(acc);
  return result(fn, out, dropped(x.shape, axes, keepdim), dtype, [x], (g) => [expand(reshape(g, keep), x.shape)]);
}

/** Mean over `axis` (all axes when omitted). */
export function mean(x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor {
  assertTensor("mean", "x", x);
  const axes = normAxes("mean", axis, x.ndim);
  let count = 1;
  for (const a of axes) count *= x.shape[a];
  if (count === 0) throw new ShapeError(`mean: cannot average over an empty axis of shape ${fmtShape(x.shape)}`);
  return div(sum(x, axes, keepdim), count);
}

function maxRaw(fn: string, x: Tensor, axis: number | undefined): { values: Float64Array; index: Int32Array; shape: number[]; ax: number; flat: boolean } {
  const flat = axis === undefined;
  const shape = flat ? [x.size] : [...x.shape];
  const ax = flat ? 0 : normAxis(fn, axis, x.ndim);
  if (x.ndim === 0) return { values: Float64Array.of(x.values[0]), index: Int32Array.of(0), shape: [1], ax: 0, flat: true };
  const [outer, n, inner] = aroundAxis(shape, ax);
  if (n === 0) throw new ShapeError(`${fn}: cannot take the max over an empty axis of shape ${fmtShape(x.shape)}`);
  const values = new Float64Array(outer * inner);
  const index = new Int32Array(outer * inner);
  const xd = x.values;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let best = xd[base];
      let bi = 0;
      for (let k = 1; k < n && best === best; k++) {
        const v = xd[base + k * inner];
        if (v > best || v !== v) {
          best = v;
          bi = k;
        }
      }
      values[o * inner + i] = best;
      index[o * inner + i] = bi;
    }
  }
  return { values, index, shape, ax, flat };
}

/**
 * Max over one axis (over everything when omitted). The gradient goes to the first position holding
 * the maximum (the index torch.max(dim) returns); NaN propagates.
 */
export function max(x: Tensor, axis?: number, keepdim = false): Tensor {
  const fn = "max";
  assertTensor(fn, "x", x);
  const { values, index, shape, ax, flat } = maxRaw(fn, x, axis);
  const outShape = flat ? (keepdim ? x.shape.map(() => 1) : []) : dropped(x.shape, [ax], keepdim);
  const out = allocate(x.dtype, values.length);
  out.set(values);
  return result(fn, out, outShape, x.dtype, [x], (g) => {
    const [outer, n, inner] = aroundAxis(shape, ax);
    const gx = allocate(g.dtype, x.size);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) gx[o * n * inner + index[o * inner + i] * inner + i] = g.values[o * inner + i];
    }
    return [new Tensor(gx, x.shape, g.dtype)];
  });
}

/** Index of the first maximum along `axis` (of the flattened tensor when omitted), as int32. */
export function argmax(x: Tensor, axis?: number, keepdim = false): Tensor {
  const fn = "argmax";
  assertTensor(fn, "x", x);
  const { index, ax, flat } = maxRaw(fn, x, axis);
  const outShape = flat ? (keepdim ? x.shape.map(() => 1) : []) : dropped(x.shape, [ax], keepdim);
  return new Tensor(index, outShape, "int32");
}
