/** The small-network ops: linear, embedding gather, seeded dropout. */
import { type FloatArray, type TypedArray, allocate, allocateOverwritten } from "../tensor/dtype.js";
import { kernelMatmulBias } from "../kernels/dispatch.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { type Generator, checkGenerator, defaultGenerator } from "../tensor/random.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { Tensor } from "../tensor/tensor.js";
import { add, cast, mul } from "./elementwise.js";
import { matmulRaw } from "./matmul.js";
import { reshape } from "./shape.js";
import { assertFloat, assertTensor, result } from "./util.js";

/**
 * y = x @ weightᵀ + bias, x [.., in], weight [out, in], bias [out] (torch.nn.functional.linear).
 *   dx = g @ weight      dweight = gᵀ @ x      dbias = sum of g over all but the last dim
 * The bias is added to the product's rows in place and its gradient is a column sum in float64 (the
 * order unbroadcast sums in), so this one op equals add(matmul(x, weightᵀ), bias) without the
 * broadcast machinery. A bias of another dtype than the product takes that composite path.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const fn = "linear";
  assertTensor(fn, "x", x);
  assertTensor(fn, "weight", weight);
  assertFloat(fn, "x", x);
  assertFloat(fn, "weight", weight);
  if (weight.ndim !== 2) throw new ShapeError(`${fn}: weight must be 2-D [out, in], got ${fmtShape(weight.shape)}`);
  const [outF, inF] = weight.shape;
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== inF) {
    throw new ShapeError(`${fn}: x ${fmtShape(x.shape)} must end in ${inF} features to match weight ${fmtShape(weight.shape)}`);
  }
  if (bias) {
    assertTensor(fn, "bias", bias);
    if (bias.ndim !== 1 || bias.shape[0] !== outF) throw new ShapeError(`${fn}: bias has shape ${fmtShape(bias.shape)}, expected [${outF}]`);
  }
  const lead = x.shape.slice(0, -1);
  const rows = lead.reduce((a, b) => a * b, 1);
  const x2 = reshape(x, [rows, inF]); // [.., in] -> [R, in]
  const b = bias && bias.dtype === x2.dtype && weight.dtype === x2.dtype ? bias : null; // fused below; another dtype is added after
  const y2 = b === null ? matmulRaw(x2, weight, false, true) : productPlusBias(x2, weight, b); // [R, out]
  const outShape = [...lead, outF];
  const y = result("linear", y2.values, outShape, y2.dtype, b ? [x, weight, b] : [x, weight], (g) => {
    const g2 = reshape(g, [rows, outF]); // [.., out] -> [R, out]
    const gx = x.requiresGrad ? cast(reshape(matmulRaw(g2, weight), x.shape), x.dtype) : null; // [R, in]
    const gw = weight.requiresGrad ? cast(matmulRaw(g2, x2, true, false), weight.dtype) : null; // [out, in]
    if (b === null) return [gx, gw];
    return [gx, gw, b.requiresGrad ? columnSum(g.values, rows, outF, b) : null]; // [out]
  });
  return bias && b === null ? add(y, bias) : y;
}

/**
 * x [R, in] @ weightᵀ + bias, all three of one dtype: the product then bias[j] added to each row
 * (addRows), or the same bits from the backend's matmul with the bias fused (Backend.matmulBias:
 * the wasm kernels add it while the product is still in their memory, one pass instead of two).
 */
function productPlusBias(x: Tensor, weight: Tensor, bias: Tensor): Tensor {
  const [R, inF] = x.shape, outF = weight.shape[0];
  const y = allocateOverwritten(x.dtype, R * outF) as FloatArray; // every element written: out = product (+ bias)
  const p = { batch: 1, m: R, n: outF, k: inF, aBatchStride: 0, bBatchStride: 0, transA: false, transB: true, accumulate: false };
  if (!kernelMatmulBias(y, x.values as FloatArray, weight.values as FloatArray, bias.values as FloatArray, p)) addRows(y, bias.values, R, outF);
  return new Tensor(y, [R, outF], x.dtype);
}

/**
 * y[r, j] += b[j] for every row r of y [R, n], in place. Readable form:
 *   for (let r = 0, o = 0; r < R; r++, o += n) for (let j = 0; j < n; j++) y[o + j] += b[j];
 * here with the row loop unrolled by 4 (V8 does not vectorise; the unrolled loop ran ~1.8× faster
 * on a training step's [1024, 384] rows). Each element gets the same one addition, so the same bits
 * (test/fastops.test.ts).
 */
export function addRows(y: TypedArray, b: TypedArray, R: number, n: number): void {
  const n4 = n - (n % 4);
  for (let r = 0, o = 0; r < R; r++, o += n) {
    let j = 0;
    for (; j < n4; j += 4) {
      const p = o + j;
      y[p] += b[j]; y[p + 1] += b[j + 1]; y[p + 2] += b[j + 2]; y[p + 3] += b[j + 3];
    }
    for (; j < n; j++) y[o + j] += b[j];
  }
}

/**
 * Σ_r g[r, j] for g [R, n], accumulated in float64 row by row, into a new acc [n]. Readable form:
 *   for (let r = 0, o = 0; r < R; r++, o += n) for (let j = 0; j < n; j++) acc[j] += g[o + j];
 * here in chunks of rows (about 16 KB of g each, so a chunk stays in the L1 cache), and within a
 * chunk four columns at a time down its rows, their running sums in locals: each column still adds
 * its rows in order from 0 (same bits, test/fastops.test.ts), with four independent chains of
 * additions instead of a load and a store of acc per element; ~1.5-2× faster on a training step's bias
 * gradients ([1024, 128..512] float32, a loaded machine).
 */
export function columnSums(g: TypedArray, R: number, n: number): Float64Array {
  const acc = new Float64Array(n);
  const n4 = n - (n % 4);
  const rows = Math.max(1, Math.floor(4096 / Math.max(1, n)));
  for (let r0 = 0; r0 < R; r0 += rows) {
    const start = r0 * n, end = Math.min(R, r0 + rows) * n;
    let j = 0;
    for (; j < n4; j += 4) {
      let s0 = acc[j], s1 = acc[j + 1], s2 = acc[j + 2], s3 = acc[j + 3];
      for (let p = start + j; p < end; p += n) { s0 += g[p]; s1 += g[p + 1]; s2 += g[p + 2]; s3 += g[p + 3]; }
      acc[j] = s0; acc[j + 1] = s1; acc[j + 2] = s2; acc[j + 3] = s3;
    }
    for (; j < n; j++) {
      let s = acc[j];
      for (let p = start + j; p < end; p += n) s += g[p];
      acc[j] = s;
    }
  }
  return acc;
}

/** columnSums as a tensor like `like` [n]. */
function columnSum(g: TypedArray, R: number, n: number, like: Tensor): Tensor {
  const acc = columnSums(g, R, n);
  const out = allocate(like.dtype, n);
  out.set(acc);
  return new Tensor(out, like.shape, like.dtype);
}

/**
 * Rows of `weight` [V, D] picked by integer `indices` (any shape) -> [...indices.shape, D].
 * d(weight) = the output gradient scattered back (summed where an index repeats).
 */
export function embedding(weight: Tensor, indices: Tensor | readonly number[]): Tensor {
  const fn = "embedding";
  assertTensor(fn, "weight", weight);
  assertFloat(fn, "weight", weight);
  if (weight.ndim !== 2) throw new ShapeError(`${fn}: weight must be 2-D [numEmbeddings, dim], got ${fmtShape(weight.shape)}`);
  const idx = Array.isArray(indices) ? new Tensor(Int32Array.from(indices as number[]), [indices.length], "int32") : (indices as Tensor);
  assertTensor(fn, "indices", idx);
  if (idx.dtype !== "int32") throw new ArgumentError(`${fn}: indices must be an int32 tensor, got ${idx.dtype}`);
  const [V, D] = weight.shape;
  for (let i = 0; i < idx.size; i++) {
    const v = idx.values[i];
    if (v < 0 || v >= V) throw new ArgumentError(`${fn}: index ${v} at position ${i} is out of range for ${V} embeddings (expected 0..${V - 1})`);
  }
  const n = idx.size;
  const ids = idx.values;
  const wd = weight.values;
  const out = allocateOverwritten(weight.dtype, n * D); // every row written below
  for (let i = 0, o = 0; i < n; i++, o += D) {
    const r = ids[i] * D;
    for (let d = 0; d < D; d++) out[o + d] = wd[r + d];
  }
  return result(fn, out, [...idx.shape, D], weight.dtype, [weight], (g) => {
    const gw = allocate(g.dtype, weight.size);
    scatterAddRows(gw, g.values, ids, n, D);
    return [new Tensor(gw, weight.shape, g.dtype)];
  });
}

/**
 * gw[ids[i], :] += g[i, :] for i < n (rows of D). A top-level function rather than a loop inside the
 * backward closure: V8 optimised the closure's loop late (it boxed every element's sum into a heap
 * number for the first steps of training; bench/profileStep.ts with a sampling heap profile).
 */
function scatterAddRows(gw: TypedArray, gd: TypedArray, ids: TypedArray, n: number, D: number): void {
  for (let i = 0, o = 0; i < n; i++, o += D) {
    const r = ids[i] * D;
    for (let d = 0; d < D; d++) gw[r + d] += gd[o + d];
  }
}

export interface DropoutOptions {
  /** false = identity (evaluation) */
  training?: boolean;
  generator?: Generator;
}
export const DROPOUT_OPTION_KEYS = optionKeys<DropoutOptions>({ training: true, generator: true });

/**
 * Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout). The mask
 * comes from the generator (seeded -> reproducible). d(dropout) = g * mask / (1-p).
 */
export function dropout(x: Tensor, p = 0.5, opts: DropoutOptions = {}): Tensor {
  const fn = "dropout";
  checkOptions(fn, "options", opts, DROPOUT_OPTION_KEYS);
  checkGenerator(fn, "generator", opts.generator);
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  if (typeof p !== "number" || !(p >= 0 && p <= 1)) throw new ArgumentError(`${fn}: p must be in [0, 1], got ${p}`);
  if (opts.training === false || p === 0) return x;
  const g = opts.generator ?? defaultGenerator();
  const scale = p === 1 ? 0 : 1 / (1 - p);
  const m = allocate(x.dtype, x.size);
  for (let i = 0; i < m.length; i++) m[i] = g.nextFloat64() >= p ? scale : 0;
  return mul(x, new Tensor(m, x.shape, x.dtype));
}
