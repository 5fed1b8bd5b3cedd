/**
 * Rotary position embedding (RoPE, Su et al. 2021), in the GPT-NeoX / Llama "half-split" layout:
 * the head dim E is cut in two halves and dim i is paired with dim i + E/2 (i < E/2). At position p
 * the pair is rotated by the angle p·θ_i, with θ_i = base^(-2i/E), base = 10000:
 *
 *   x'[i]       = x[i] cos(pθ_i) - x[i + E/2] sin(pθ_i)
 *   x'[i + E/2] = x[i + E/2] cos(pθ_i) + x[i] sin(pθ_i)
 *
 * Applied to q (at position m) and k (at position n) after the projections, it makes each pair's
 * dot product depend on the angle difference (m - n)θ_i only: q'·k' is a function of q, k and the
 * relative position m - n. Nothing is learned and nothing is added to x, so it needs no weights and
 * is not in the state dict. With a KV cache, new tokens start at position offset = tokens cached.
 *
 *   textbook:  rope(x) = x * cos + rotateHalf(x) * sin,   rotateHalf([x1, x2]) = [-x2, x1]
 *   gradient:  a rotation's transpose is its inverse, so dx = g rotated by -pθ.
 *
 * applyRotary rotates heads laid out [.., T, E]; applyRotaryInterleaved rotates them where the
 * attention projections put them ([N, T, ..heads·E..], heads interleaved), so the modules need not
 * split the heads out first (the fused kernels read that layout too).
 */
import { type FloatArray, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { add, mul, neg } from "../ops/elementwise.js";
import { concat, permute, reshape, slice } from "../ops/shape.js";
import { assertFloat, assertTensor, result } from "../ops/util.js";
import { Module } from "../nn/module.js";
import { checkOptions, checkPositiveInt, optionKeys } from "../tensor/validate.js";
import type { HeadColumns } from "./plan.js";

/** θ_i = base^(-2i/E) for i < E/2 (float64). */
export function rotaryFrequencies(E: number, base = 10000): Float64Array {
  const half = E / 2;
  return Float64Array.from({ length: half }, (_, i) => Math.pow(base, (-2 * i) / E));
}

function checkRotaryInput(fn: string, x: Tensor, E: number, offset: number): void {
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  if (x.ndim < 2 || x.shape[x.ndim - 1] !== E) {
    throw new ShapeError(`${fn}: x must be [.., T, E] with head dim E = ${E}, got ${fmtShape(x.shape)}`);
  }
  if (!Number.isInteger(offset) || offset < 0) throw new ArgumentError(`${fn}: offset must be a non-negative integer, got ${offset}`);
}

/**
 * The readable version, from ops (autograd derives the gradient): x [.., T, E] at positions
 * offset .. offset + T - 1. applyRotary is proven equal to it in the tests.
 */
export function rotaryReference(x: Tensor, offset = 0, base = 10000): Tensor {
  const E = x.shape[x.ndim - 1];
  checkRotaryInput("rotaryReference", x, E, offset);
  const T = x.shape[x.ndim - 2];
  const half = E / 2;
  const theta = rotaryFrequencies(E, base);
  const cos = allocate(x.dtype, T * E);
  const sin = allocate(x.dtype, T * E);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < E; c++) {
      const angle = (offset + t) * theta[c % half]; // cat(freqs, freqs): dims i and i + E/2 share θ_i
      cos[t * E + c] = Math.cos(angle);
      sin[t * E + c] = Math.sin(angle);
    }
  }
  const x1 = slice(x, -1, 0, half); // [.., T, E/2]
  const x2 = slice(x, -1, half, E);
  const rotated = concat([neg(x2), x1], -1); // rotateHalf: [x1, x2] -> [-x2, x1]
  return add(mul(x, new Tensor(cos, [T, E], x.dtype)), mul(rotated, new Tensor(sin, [T, E], x.dtype)));
}

/** Rotate every (i, i + E/2) pair of x [R, T, E] by the angle whose cos/sin are given per [T, E/2]. */
function rotatePairs(out: FloatArray, x: FloatArray, cos: Float64Array, sin: Float64Array, T: number, E: number, sign: 1 | -1): void {
  const half = E / 2;
  const rows = x.length / (T * E);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < T; t++) {
      const o = (r * T + t) * E;
      const a0 = t * half;
      for (let i = 0; i < half; i++) {
        const c = cos[a0 + i];
        const s = sign * sin[a0 + i];
        const a = x[o + i];
        const b = x[o + i + half];
        out[o + i] = a * c - b * s;
        out[o + i + half] = b * c + a * s;
      }
    }
  }
}

/**
 * RoPE as one op: x [.., T, E], cos/sin [T * E/2] (row t holds cos/sin(pos_t θ_i)) -> [.., T, E].
 * backward: rotate the gradient by the opposite angle (cos, -sin).
 */
export function applyRotary(x: Tensor, cos: Float64Array, sin: Float64Array): Tensor {
  const fn = "applyRotary";
  assertTensor(fn, "x", x);
  assertFloat(fn, "x", x);
  const E = x.shape[x.ndim - 1];
  const T = x.ndim >= 2 ? x.shape[x.ndim - 2] : 0;
  if (x.ndim < 2 || E % 2 !== 0) throw new ShapeError(`${fn}: x must be [.., T, E] with an even head dim E, got ${fmtShape(x.shape)}`);
  if (cos.length !== (T * E) / 2 || sin.length !== cos.length) {
    throw new ShapeError(`${fn}: cos and sin must hold T * E/2 = ${(T * E) / 2} angles for x ${fmtShape(x.shape)}, got ${cos.length} and ${sin.length}`);
  }
  const out = allocate(x.dtype, x.size) as FloatArray;
  rotatePairs(out, x.values as FloatArray, cos, sin, T, E, 1);
  return result(fn, out, x.shape, x.dtype, [x], (g) => {
    const gx = allocate(g.dtype, g.size) as FloatArray;
    rotatePairs(gx, g.values as FloatArray, cos, sin, T, E, -1); // dx = R(-pθ) g
    return [new Tensor(gx, x.shape, g.dtype)];
  });
}

function checkColumns(fn: string, c: HeadColumns, cos: Float64Array, sin: Float64Array): void {
  assertTensor(fn, "x", c.t);
  assertFloat(fn, "x", c.t);
  const { t, offset, heads, dim: E } = c;
  if (t.ndim !== 3 || E % 2 !== 0 || !(heads >= 1) || !(offset >= 0) || offset + heads * E > t.shape[2]) {
    throw new ShapeError(
      `${fn}: x must be [N, T, X] holding ${heads} heads of an even head dim E = ${E} in columns ${offset}..${offset + heads * E - 1}, got ${fmtShape(t.shape)}`,
    );
  }
  const T = t.shape[1];
  if (cos.length !== (T * E) / 2 || sin.length !== cos.length) {
    throw new ShapeError(`${fn}: cos and sin must hold T * E/2 = ${(T * E) / 2} angles for x ${fmtShape(t.shape)}, got ${cos.length} and ${sin.length}`);
  }
}

/**
 * The readable version of applyRotaryInterleaved, from ops (autograd derives the gradient): cut the
 * heads out of the projection, rotate them as applyRotary does, merge them back.
 */
export function rotaryInterleavedReference(c: HeadColumns, cos: Float64Array, sin: Float64Array): Tensor {
  checkColumns("rotaryInterleavedReference", c, cos, sin);
  const [N, T] = c.t.shape;
  const { heads, dim: E } = c;
  const cols = slice(c.t, 2, c.offset, c.offset + heads * E); // [N, T, X] -> [N, T, heads*E]
  const split = permute(reshape(cols, [N, T, heads, E]), [0, 2, 1, 3]); // -> [N, T, heads, E] -> [N, heads, T, E]
  const rotated = applyRotary(split, cos, sin); // [N, heads, T, E]
  return reshape(permute(rotated, [0, 2, 1, 3]), [N, T, heads * E]); // -> [N, T, heads, E] -> [N, T, heads*E]
}

/** Where a kernel's rows are: row (n, t) of a [N, T, width] array starts at (n·T + t)·width + from. */
interface Rows {
  a: FloatArray;
  from: number;
  width: number;
}

/**
 * Rotate every head's (i, i + E/2) pairs, heads interleaved: head h of row (n, t) sits h·E after the
 * row's start in both src and dst; cos/sin per [T, E/2]. sign -1 rotates by the opposite angle.
 */
function rotateInterleaved(dst: Rows, src: Rows, cos: Float64Array, sin: Float64Array, N: number, T: number, heads: number, E: number, sign: 1 | -1): void {
  const half = E / 2;
  for (let n = 0; n < N; n++) {
    for (let t = 0; t < T; t++) {
      const a0 = t * half;
      const xr = (n * T + t) * src.width + src.from;
      const or = (n * T + t) * dst.width + dst.from;
      for (let h = 0; h < heads; h++) {
        const xo = xr + h * E;
        const oo = or + h * E;
        for (let i = 0; i < half; i++) {
          const c = cos[a0 + i];
          const s = sign * sin[a0 + i];
          const a = src.a[xo + i];
          const b = src.a[xo + i + half];
          dst.a[oo + i] = a * c - b * s;
          dst.a[oo + i + half] = b * c + a * s;
        }
      }
    }
  }
}

/**
 * applyRotary on heads as the projections lay them out (HeadColumns: columns offset.. of x [N, T, X],
 * head h in columns offset + h·E .. offset + (h + 1)·E) -> [N, T, heads·E], the rotated heads still
 * interleaved: what rotaryInterleavedReference (split, applyRotary, merge) computes, bit for bit,
 * without the split and merge copies. cos/sin [T * E/2] as for applyRotary (every row at the same
 * positions). backward: the gradient rotated by the opposite angle, into x's columns (zeros elsewhere).
 */
export function applyRotaryInterleaved(c: HeadColumns, cos: Float64Array, sin: Float64Array): Tensor {
  const fn = "applyRotaryInterleaved";
  checkColumns(fn, c, cos, sin);
  const x = c.t;
  const [N, T, X] = x.shape;
  const { heads, dim: E } = c;
  const W = heads * E;
  const out = allocate(x.dtype, N * T * W) as FloatArray;
  rotateInterleaved({ a: out, from: 0, width: W }, { a: x.values as FloatArray, from: c.offset, width: X }, cos, sin, N, T, heads, E, 1);
  return result(fn, out, [N, T, W], x.dtype, [x], (g) => {
    const gx = allocate(g.dtype, x.size) as FloatArray; // x's other columns get no gradient from here
    rotateInterleaved({ a: gx, from: c.offset, width: X }, { a: g.values as FloatArray, from: 0, width: W }, cos, sin, N, T, heads, E, -1); // dx = R(-pθ) g
    return [new Tensor(gx, x.shape, g.dtype)];
  });
}

export interface RotaryOptions {
  /** default 10000 */
  base?: number;
}
export const ROTARY_OPTION_KEYS = optionKeys<RotaryOptions>({ base: true });

/** The RoPE module: forward(x [.., T, E], offset) rotates x for positions offset .. offset + T - 1. */
export class RotaryEmbedding extends Module {
  readonly dim: number;
  readonly base: number;
  private readonly theta: Float64Array;
  /** cos/sin of positions [0, cached) as [cached, E/2], grown on demand */
  private cos = new Float64Array(0);
  private sin = new Float64Array(0);
  private cached = 0;

  constructor(dim: number, opts: RotaryOptions = {}) {
    super();
    checkOptions("RotaryEmbedding", "options", opts, ROTARY_OPTION_KEYS);
    checkPositiveInt("RotaryEmbedding", "dim", dim);
    if (dim % 2 !== 0) throw new ArgumentError(`RotaryEmbedding: dim must be even (dims i and i + dim/2 are rotated as a pair), got ${dim}`);
    const base = opts.base ?? 10000;
    if (typeof base !== "number" || !(base > 1) || !Number.isFinite(base)) throw new ArgumentError(`RotaryEmbedding: base must be a finite number > 1, got ${String(base)}`);
    this.dim = dim;
    this.base = base;
    this.theta = rotaryFrequencies(dim, base);
  }

  /** cos and sin of (offset + t) θ_i for t < T, as [T * E/2] (views of a table grown geometrically). */
  angles(T: number, offset = 0): { cos: Float64Array; sin: Float64Array } {
    const half = this.dim / 2;
    const need = offset + T;
    if (need > this.cached) {
      const n = Math.max(need, 2 * this.cached, 64);
      const cos = new Float64Array(n * half);
      const sin = new Float64Array(n * half);
      for (let p = 0; p < n; p++) {
        for (let i = 0; i < half; i++) {
          const angle = p * this.theta[i];
          cos[p * half + i] = Math.cos(angle);
          sin[p * half + i] = Math.sin(angle);
        }
      }
      [this.cos, this.sin, this.cached] = [cos, sin, n];
    }
    return { cos: this.cos.subarray(offset * half, need * half), sin: this.sin.subarray(offset * half, need * half) };
  }

  /** x [.., T, E] -> x rotated for positions offset .. offset + T - 1. */
  forward(x: Tensor, offset = 0): Tensor {
    checkRotaryInput("RotaryEmbedding.forward", x, this.dim, offset);
    const { cos, sin } = this.angles(x.shape[x.ndim - 2], offset);
    return applyRotary(x, cos, sin);
  }

  /**
   * The heads of a projection as it comes (HeadColumns, head dim this.dim) rotated for positions
   * offset .. offset + T - 1 -> [N, T, heads·E], heads still interleaved (applyRotaryInterleaved).
   */
  forwardInterleaved(c: HeadColumns, offset = 0): Tensor {
    const fn = "RotaryEmbedding.forwardInterleaved";
    if (c.dim !== this.dim) throw new ShapeError(`${fn}: the heads have dim ${c.dim} but this RotaryEmbedding rotates dim ${this.dim}`);
    if (!Number.isInteger(offset) || offset < 0) throw new ArgumentError(`${fn}: offset must be a non-negative integer, got ${offset}`);
    assertTensor(fn, "x", c.t);
    const { cos, sin } = this.angles(c.t.ndim === 3 ? c.t.shape[1] : 0, offset);
    return applyRotaryInterleaved(c, cos, sin);
  }
}

/**
 * What an attention module accepts as its rotary option: a RotaryEmbedding, or any function of
 * (x [N, heads, T, E], position offset) -> same shape, applied to q and k after projection.
 */
export type QKTransform = RotaryEmbedding | ((x: Tensor, offset: number) => Tensor);

export function applyQKTransform(t: QKTransform, x: Tensor, offset: number): Tensor {
  return t instanceof RotaryEmbedding ? t.forward(x, offset) : t(x, offset);
}

/** Validate an attention module's rotary option against its head dim. */
export function checkRotary(fn: string, rotary: QKTransform | null, headDim: number, extraKeys: boolean): QKTransform | null {
  if (rotary === null) return null;
  if (!(rotary instanceof RotaryEmbedding) && typeof rotary !== "function") {
    throw new ArgumentError(`${fn}: rotary must be a RotaryEmbedding or a function (x, offset) => Tensor, got ${typeof rotary}`);
  }
  if (rotary instanceof RotaryEmbedding && rotary.dim !== headDim) {
    throw new ArgumentError(`${fn}: rotary has dim ${rotary.dim} but each head has ${headDim} dims; make it new RotaryEmbedding(${headDim})`);
  }
  if (extraKeys) throw new ArgumentError(`${fn}: rotary cannot be combined with addBiasKv or addZeroAttn (the extra key position has no place in the sequence)`);
  return rotary;
}
