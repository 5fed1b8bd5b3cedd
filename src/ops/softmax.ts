/**
 * softmax and logSoftmax along one axis, stable (the row max is subtracted first).
 * A row that is entirely -Infinity (every key masked) gives zeros from softmax and -Infinity from
 * logSoftmax, with zero gradient, instead of PyTorch's NaN.
 */
import { allocate } from "../tensor/dtype.js";
import { aroundAxis, normAxis } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { assertFloat, assertTensor, result } from "./util.js";

function rows(x: Tensor, axis: number, fn: string): [number, number, number] {
  return aroundAxis(x.shape, normAxis(fn, axis, x.ndim));
}

export function softmax(x: Tensor, axis = -1): Tensor {
  const fn = "softmax";
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  const [outer, n, inner] = rows(x, axis, fn);
  const xd = x.values;
  const out = allocate(x.dtype, x.size);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let m = -Infinity;
      for (let k = 0; k < n; k++) { const v = xd[base + k * inner]; if (v > m || v !== v) m = v; }
      if (m === -Infinity) continue; // fully masked row: zeros
      let s = 0;
      for (let k = 0; k < n; k++) { const e = Math.exp(xd[base + k * inner] - m); out[base + k * inner] = e; s += e; }
      const inv = 1 / s;
      for (let k = 0; k < n; k++) out[base + k * inner] *= inv;
    }
  }
  let y: Tensor;
  // softmax: dx = y * (dy - sum(dy * y))
  y = result(fn, out, x.shape, x.dtype, [x], (g) => {
    const gx = allocate(g.dtype, x.size);
    const yd = y.values;
    const gd = g.values;
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        let dot = 0;
        for (let k = 0; k < n; k++) dot += gd[base + k * inner] * yd[base + k * inner];
        for (let k = 0; k < n; k++) gx[base + k * inner] = yd[base + k * inner] * (gd[base + k * inner] - dot);
      }
    }
    return [new Tensor(gx, x.shape, g.dtype)];
  });
  return y;
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const fn = "logSoftmax";
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  const [outer, n, inner] = rows(x, axis, fn);
  const xd = x.values;
  const out = allocate(x.dtype, x.size);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let m = -Infinity;
      for (let k = 0; k < n; k++) { const v = xd[base + k * inner]; if (v > m || v !== v) m = v; }
      if (m === -Infinity) {
        for (let k = 0; k < n; k++) out[base + k * inner] = -Infinity;
        continue;
      }
      let s = 0;
      for (let k = 0; k < n; k++) s += Math.exp(xd[base + k * inner] - m);
      const lse = m + Math.log(s);
      for (let k = 0; k < n; k++) out[base + k * inner] = xd[base + k * inner] - lse;
    }
  }
  let y: Tensor;
  // logSoftmax: dx = dy - exp(y) * sum(dy)
  y = result(fn, out, x.shape, x.dtype, [x], (g) => {
    const gx = allocate(g.dtype, x.size);
    const yd = y.values;
    const gd = g.values;
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        let allMasked = true; // a fully masked row passes no gradient
        for (let k = 0; k < n && allMasked; k++) if (yd[base + k * inner] !== -Infinity) allMasked = false;
        if (allMasked) continue;
        let s = 0;
        for (let k = 0; k < n; k++) s += gd[base + k * inner];
        for (let k = 0; k < n; k++) gx[base + k * inner] = gd[base + k * inner] - Math.exp(yd[base + k * inner]) * s;
      }
    }
    return [new Tensor(gx, x.shape, g.dtype)];
  });
  return y;
}
