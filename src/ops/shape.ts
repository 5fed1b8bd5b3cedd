/**
 * Shape ops. reshape shares storage; permute/transpose/expand/slice/concat copy into a fresh
 * contiguous array. Each backward is the inverse movement of the gradient.
 */
import { type TypedArray, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { type Shape, broadcastShapes, broadcastStrides, normAxis, sameShape, sizeOf, stridesOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { forEachRun, unbroadcast } from "./broadcast.js";
import { assertTensor, result } from "./util.js";

/** New shape for the same data; one dim may be -1 (inferred). Shares storage. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const fn = "reshape";
  assertTensor(fn, "x", x);
  const dims = [...shape];
  const infer = dims.indexOf(-1);
  if (dims.some((d, i) => !Number.isInteger(d) || d < -1 || (d === -1 && i !== infer))) {
    throw new ArgumentError(`${fn}: shape ${fmtShape(shape)} must be non-negative integers with at most one -1`);
  }
  if (infer >= 0) {
    const known = dims.reduce((a, d, i) => (i === infer ? a : a * d), 1);
    if (known === 0 || x.size % known !== 0) {
      throw new ShapeError(`${fn}: cannot infer the -1 in ${fmtShape(shape)} for ${x.size} elements (shape ${fmtShape(x.shape)})`);
    }
    dims[infer] = x.size / known;
  }
  if (sizeOf(dims) !== x.size) {
    throw new ShapeError(`${fn}: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(dims)} (${sizeOf(dims)} elements)`);
  }
  if (sameShape(dims, x.shape)) return x;
  return result(fn, x.values, dims, x.dtype, [x], (g) => [reshape(g, x.shape)]);
}

export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  assertTensor("flatten", "x", x);
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normAxis("flatten", startAxis, x.ndim, "startAxis");
  const e = normAxis("flatten", endAxis, x.ndim, "endAxis");
  if (s > e) throw new ArgumentError(`flatten: startAxis ${startAxis} comes after endAxis ${endAxis}`);
  const mid = x.shape.slice(s, e + 1).reduce((a, b) => a * b, 1);
  return reshape(x, [...x.shape.slice(0, s), mid, ...x.shape.slice(e + 1)]);
}

/** Reorder dims: out.shape[i] = x.shape[dims[i]]. d(permute) = permute back by the inverse. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const fn = "permute";
  assertTensor(fn, "x", x);
  if (dims.length !== x.ndim) {
    throw new ShapeError(`${fn}: dims ${fmtShape(dims)} must list each of the ${x.ndim} axes of x (shape ${fmtShape(x.shape)}) once`);
  }
  const perm = dims.map((d) => normAxis(fn, d, x.ndim, "dims entry"));
  if (new Set(perm).size !== perm.length) throw new ArgumentError(`${fn}: dims ${fmtShape(dims)} repeat an axis`);
  if (perm.every((p, i) => p === i)) return x;
  const outShape = perm.map((p) => x.shape[p]);
  const inStrides = stridesOf(x.shape);
  const readStrides = perm.map((p) => inStrides[p]);
  const out = allocate(x.dtype, x.size);
  if (outShape.length <= 4) permuteCopy4(out, x.values, outShape, readStrides);
  else permuteCopy(out, x.values, outShape, readStrides);
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return result(fn, out, outShape, x.dtype, [x], (g) => [permute(g, inverse)]);
}

/**
 * out (contiguous, shape outShape) = x read at readStrides: out[i0, .., iK] = xd[Σ i_d · readStrides[d]].
 * The readable form: one run along the last dim per forEachRun step.
 */
export function permuteCopy(out: TypedArray, xd: TypedArray, outShape: Shape, readStrides: readonly number[]): void {
  const rs = readStrides[outShape.length - 1];
  forEachRun(outShape, [[...readStrides]], (o, offs, n) => {
    const xi = offs[0];
    for (let j = 0; j < n; j++) out[o + j] = xd[xi + j * rs];
  });
}

/**
 * permuteCopy for rank ≤ 4 as four nested loops (the shape padded with leading 1s): no callback and
 * no odometer per run, which mattered for attention's head split/merge ([N, T, H, E] <-> [N, H, T, E],
 * runs of E) in a training step. A copy, so equal to permuteCopy element for element
 * (test/fastops.test.ts).
 */
export function permuteCopy4(out: TypedArray, xd: TypedArray, outShape: Shape, readStrides: readonly number[]): void {
  const pad = 4 - outShape.length;
  const dim = (d: number): number => (d < pad ? 1 : outShape[d - pad]);
  const str = (d: number): number => (d < pad ? 0 : readStrides[d - pad]);
  const n0 = dim(0), n1 = dim(1), n2 = dim(2), n3 = dim(3);
  const s0 = str(0), s1 = str(1), s2 = str(2), s3 = str(3);
  let o = 0;
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        const base = i0 * s0 + i1 * s1 + i2 * s2;
        if (s3 === 1) {
          let j = 0; // a contiguous run, unrolled by 4 (V8 does not vectorise)
          for (; j + 4 <= n3; j += 4) {
            out[o + j] = xd[base + j]; out[o + j + 1] = xd[base + j + 1];
            out[o + j + 2] = xd[base + j + 2]; out[o + j + 3] = xd[base + j + 3];
          }
          for (; j < n3; j++) out[o + j] = xd[base + j];
        } else for (let j = 0; j < n3; j++) out[o + j] = xd[base + j * s3];
        o += n3;
      }
    }
  }
}

/** Swap two dims (the last two by default). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  assertTensor("transpose", "x", x);
  const a = normAxis("transpose", dim0, x.ndim, "dim0");
  const b = normAxis("transpose", dim1, x.ndim, "dim1");
  const perm = Array.from({ length: x.ndim }, (_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  assertTensor("unsqueeze", "x", x);
  const a = normAxis("unsqueeze", axis, x.ndim + 1);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

/** Drop a size-1 dim (all of them when axis is omitted). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  assertTensor("squeeze", "x", x);
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const a = normAxis("squeeze", axis, x.ndim);
  if (x.shape[a] !== 1) return x;
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/** Broadcast to a larger shape (a copy); -1 keeps a dim. d(expand) = sum back (unbroadcast). */
export function expand(x: Tensor, shape: Shape): Tensor {
  const fn = "expand";
  assertTensor(fn, "x", x);
  const lead = shape.length - x.ndim;
  if (lead < 0) throw new ShapeError(`${fn}: cannot expand ${fmtShape(x.shape)} to fewer dims ${fmtShape(shape)}`);
  const target = shape.map((d, i) => (d === -1 && i >= lead ? x.shape[i - lead] : d));
  const full = broadcastShapes(fn, x.shape, target, "x", "shape");
  if (!sameShape(full, target)) throw new ShapeError(`${fn}: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  if (sameShape(target, x.shape)) return x;
  const st = broadcastStrides(x.shape, target);
  const out = allocate(x.dtype, sizeOf(target));
  const xd = x.values;
  const is = st[target.length - 1] ?? 0;
  forEachRun(target, [st], (o, offs, n) => {
    for (let j = 0; j < n; j++) out[o + j] = xd[offs[0] + j * is];
  });
  return result(fn, out, target, x.dtype, [x], (g) => [unbroadcast(g, x.shape)]);
}

/** Python-style clamp of a possibly negative index into [0, n]. */
function clampIndex(i: number, n: number): number {
  if (i < 0) i += n;
  return Math.min(Math.max(i, 0), n);
}

/**
 * x[..., start:end, ...] along one axis (Python slicing: negative indices count from the end, out
 * of range clamps). d(slice) = the gradient placed back into zeros.
 */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const fn = "slice";
  assertTensor(fn, "x", x);
  const a = normAxis(fn, axis, x.ndim);
  if (!Number.isInteger(start) || (end !== undefined && !Number.isInteger(end))) {
    throw new ArgumentError(`${fn}: start and end must be integers, got ${start} and ${end}`);
  }
  const n = x.shape[a];
  const s = clampIndex(start, n);
  const e = Math.max(s, end === undefined ? n : clampIndex(end, n));
  if (s === 0 && e === n) return x;
  const outShape = [...x.shape];
  outShape[a] = e - s;
  const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const out = allocate(x.dtype, outer * (e - s) * inner);
  for (let o = 0; o < outer; o++) {
    out.set(x.values.subarray((o * n + s) * inner, (o * n + e) * inner), o * (e - s) * inner);
  }
  return result(fn, out, outShape, x.dtype, [x], (g) => {
    const gx = allocate(g.dtype, x.size);
    for (let o = 0; o < outer; o++) gx.set(g.values.subarray(o * (e - s) * inner, (o + 1) * (e - s) * inner), (o * n + s) * inner);
    return [new Tensor(gx, x.shape, g.dtype)];
  });
}

/** Join along an existing axis. d(concat) = the gradient sliced back into pieces. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  const fn = "concat";
  if (!Array.isArray(xs as unknown) || xs.length === 0) throw new ArgumentError(`${fn}: needs a non-empty array of tensors`);
  xs.forEach((x, i) => assertTensor(fn, `tensors[${i}]`, x));
  const first = xs[0];
  const a = normAxis(fn, axis, first.ndim);
  for (let i = 1; i < xs.length; i++) {
    const x = xs[i];
    if (x.dtype !== first.dtype) throw new ArgumentError(`${fn}: tensors[${i}] is ${x.dtype} but tensors[0] is ${first.dtype}`);
    if (x.ndim !== first.ndim || x.shape.some((d, k) => k !== a && d !== first.shape[k])) {
      throw new ShapeError(`${fn}: tensors[${i}] has shape ${fmtShape(x.shape)}, which does not match tensors[0] ${fmtShape(first.shape)} outside axis ${a}`);
    }
  }
  const outer = first.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = first.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const total = xs.reduce((p, x) => p + x.shape[a], 0);
  const outShape = [...first.shape];
  outShape[a] = total;
  const out = allocate(first.dtype, outer * total * inner);
  let off = 0;
  for (const x of xs) {
    const w = x.shape[a] * inner;
    for (let o = 0; o < outer; o++) out.set(x.values.subarray(o * w, (o + 1) * w), o * total * inner + off);
    off += w;
  }
  return result(fn, out, outShape, first.dtype, xs, (g) => {
    let start = 0;
    return xs.map((x) => {
      const piece = slice(g, a, start, start + x.shape[a]);
      start += x.shape[a];
      return piece;
    });
  });
}

/** Join along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs as unknown) || xs.length === 0) throw new ArgumentError("stack: needs a non-empty array of tensors");
  xs.forEach((x, i) => assertTensor("stack", `tensors[${i}]`, x));
  const a = normAxis("stack", axis, xs[0].ndim + 1);
  for (let i = 1; i < xs.length; i++) {
    if (!sameShape(xs[i].shape, xs[0].shape)) {
      throw new ShapeError(`stack: tensors[${i}] has shape ${fmtShape(xs[i].shape)} but tensors[0] has ${fmtShape(xs[0].shape)}; all must match`);
    }
  }
  return concat(xs.map((x) => unsqueeze(x, a)), a);
}

/**
 * Split along an axis, as torch.split: a number gives chunks of that size (the last may be
 * smaller); an array gives the exact sizes, which must add up to the axis length.
 */
export function split(x: Tensor, sizeOrSections: number | readonly number[], axis = 0): Tensor[] {
  const fn = "split";
  assertTensor(fn, "x", x);
  const a = normAxis(fn, axis, x.ndim);
  const n = x.shape[a];
  let sizes: number[];
  if (typeof sizeOrSections === "number") {
    if (!Number.isInteger(sizeOrSections) || sizeOrSections <= 0) {
      throw new ArgumentError(`${fn}: split size must be a positive integer, got ${sizeOrSections}`);
    }
    sizes = [];
    for (let s = 0; s < n; s += sizeOrSections) sizes.push(Math.min(sizeOrSections, n - s));
  } else {
    sizes = [...sizeOrSections];
    const total = sizes.reduce((p, d) => p + d, 0);
    if (sizes.some((d) => !Number.isInteger(d) || d < 0) || total !== n) {
      throw new ShapeError(`${fn}: sections ${fmtShape(sizes)} must be non-negative integers adding up to ${n} (axis ${a} of ${fmtShape(x.shape)})`);
    }
  }
  let start = 0;
  return sizes.map((d) => {
    const piece = slice(x, a, start, start + d);
    start += d;
    return piece;
  });
}
