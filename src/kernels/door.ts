/**
 * The door every backend is reached through. The registry (registry.ts) hands out each backend
 * wrapped here, so getBackend(), findBackend(), the ops (dispatch.ts) and the conformance suites all
 * call a backend's kernels after the same two steps:
 *
 * 1. Each operand array is checked to hold every element the call reaches: its shape, and for the
 *    attention operands their strides and offset (AttentionParams.layout), the mask's strides, lse's
 *    [B, H, L]. A kernel handed a shorter array would read past its end: the wasm backend's copies
 *    clamp (a view past the end is cut short), so it computed on whatever its memory held before; a
 *    typed array read past its end gives undefined, which arithmetic turns into NaN. A detached
 *    array (its buffer transferred away) holds 0 elements and is named as such. The check is a few
 *    multiplications per operand, never a pass over the elements.
 * 2. An attention call with p.layout reaches a backend that does not declare attentionLayout as
 *    heads-first copies (layout.ts), so a backend written for the contiguous form stays correct.
 *
 * Errors name the function (and the backend), the operand, what its array holds and what the call
 * reaches.
 */
import type { FloatArray } from "../tensor/dtype.js";
import { ArgumentError, ShapeError } from "../tensor/errors.js";
import type { AttentionParams, Backend, MatmulParams, RowStrides } from "./backend.js";
import { backwardInAnyLayout, forwardInAnyLayout, layoutOf } from "./layout.js";

type AnyArray = FloatArray | Uint8Array | Int32Array;

/** Whether x's buffer was detached (transferred away); only asked once x is found too short. */
function isDetached(x: AnyArray): boolean {
  const buf = x.buffer as ArrayBuffer & { detached?: boolean };
  if (typeof buf.detached === "boolean") return buf.detached; // Node >= 22, current browsers
  if (x.byteLength !== 0) return false;
  try {
    x.subarray(0, 0); // a view of a detached buffer cannot be made
    return false;
  } catch {
    return true;
  }
}

/** A non-negative safe integer, or an ArgumentError naming it. */
function count(fn: string, name: string, x: number): number {
  if (!Number.isSafeInteger(x) || x < 0) throw new ArgumentError(`${fn}: ${name} must be a non-negative integer, got ${String(x)}`);
  return x;
}

/** A safe integer (a stride or offset: may be negative), or an ArgumentError naming it. */
function integer(fn: string, name: string, x: number): number {
  if (!Number.isSafeInteger(x)) throw new ArgumentError(`${fn}: ${name} must be an integer, got ${String(x)}`);
  return x;
}

/**
 * Refuses `arr` unless it holds elements [lo, hi) (`reach`, said in the error: how the call gets
 * there). A call that reads nothing (hi <= lo) takes any array, a detached one included.
 */
function holds(fn: string, name: string, arr: AnyArray | null | undefined, lo: number, hi: number, reach: () => string): void {
  if (arr === null || arr === undefined || typeof arr.length !== "number") {
    throw new ArgumentError(`${fn}: ${name} must be a typed array, got ${arr === null ? "null" : typeof arr}`);
  }
  if (hi <= lo || (lo >= 0 && hi <= arr.length)) return;
  if (lo < 0) throw new ShapeError(`${fn}: ${name} would be read from index ${lo}, before its start: ${reach()}`);
  const seen = isDetached(arr) ? `${name}'s buffer is detached (transferred away), so it holds 0 elements` : `${name} holds ${arr.length} elements`;
  throw new ShapeError(`${fn}: ${seen}, but the call reaches ${hi}: ${reach()}`);
}

/** Elements [lo, hi) that dims `n` at strides `s` reach from `offset`, `width` contiguous at the last one (none if a dim is 0). */
function span(offset: number, n: readonly number[], s: readonly number[], width: number): [number, number] {
  let lo = offset, hi = offset;
  for (let i = 0; i < n.length; i++) {
    if (n[i] === 0) return [0, 0];
    const d = (n[i] - 1) * s[i];
    if (d < 0) lo += d;
    else hi += d;
  }
  return width === 0 ? [0, 0] : [lo, hi + width];
}

/** An attention operand's rows: [B, heads, T, D] (letters `dims`) at strides s, or heads first. */
function checkRows(
  fn: string, name: string, arr: FloatArray, s: RowStrides, laidOut: boolean, dims: string, B: number, heads: number, T: number, D: number,
): void {
  const at = `layout.${name === "dout" ? "out" : name.replace(/^d(?=[qkv]$)/, "")}`;
  for (const key of ["offset", "sb", "sh", "sl"] as const) integer(fn, `${at}.${key}`, s[key]);
  const [lo, hi] = span(s.offset, [B, heads, T], [s.sb, s.sh, s.sl], D);
  holds(fn, name, arr, lo, hi, () => {
    const shape = `${name} ${dims} = [${B}, ${heads}, ${T}, ${D}]`;
    if (!laidOut) return `${shape}, heads first, is ${B * heads * T * D} elements`;
    return `${shape} at ${at} = { offset ${s.offset}, sb ${s.sb}, sh ${s.sh}, sl ${s.sl} }: row (b, h, t) starts at offset + b·sb + h·sh + t·sl`;
  });
}

/** Everything but the rows: the dims, lse (and lseLo), the mask, the flexible options' arrays. */
function checkAttentionParams(fn: string, p: AttentionParams, lse: FloatArray, lseLo: FloatArray | undefined): void {
  const { B, H, Hkv, L, S } = p;
  for (const key of ["B", "H", "Hkv", "L", "S", "E", "Ev"] as const) count(fn, `p.${key}`, p[key]);
  if (H > 0 && (Hkv === 0 || H % Hkv !== 0)) {
    throw new ArgumentError(`${fn}: p.Hkv must divide p.H (each kv head serves H / Hkv query heads), got H = ${H}, Hkv = ${Hkv}`);
  }
  const rows = (): string => `[B, H, L] = [${B}, ${H}, ${L}] is ${B * H * L} elements`;
  holds(fn, "lse", lse, 0, B * H * L, rows);
  if (lseLo !== undefined) holds(fn, "lseLo", lseLo, 0, B * H * L, rows);
  const mk = p.mask;
  if (mk !== null && mk !== undefined) {
    const st = mk.strides;
    st.forEach((x, i) => integer(fn, `mask.strides[${i}]`, x));
    const [lo, hi] = span(0, [B, H, L, S], st, 1);
    holds(fn, "mask.data", mk.data, lo, hi, () => `the ${mk.kind} mask seen as [B, H, L, S] = [${B}, ${H}, ${L}, ${S}] at strides [${st.join(", ")}]`);
  }
  const perHead = (): string => `one per query head, H = ${H}`;
  if (p.alibiSlopes) holds(fn, "alibiSlopes", p.alibiSlopes, 0, H, perHead);
  if (p.sinks) holds(fn, "sinks", p.sinks, 0, H, perHead);
  if (p.documents) {
    holds(fn, "documents.query", p.documents.query, 0, B * L, () => `[B, L] = [${B}, ${L}]`);
    holds(fn, "documents.key", p.documents.key, 0, B * S, () => `[B, S] = [${B}, ${S}]`);
  }
  const bm = p.blockMask;
  if (bm) {
    const n = bm.B * bm.H * bm.nRows * bm.nCols;
    const blocks = (): string => `[B, H, nRows, nCols] = [${bm.B}, ${bm.H}, ${bm.nRows}, ${bm.nCols}]`;
    holds(fn, "blockMask.kinds", bm.kinds, 0, n, blocks);
    holds(fn, "blockMask.bitStart", bm.bitStart, 0, n, blocks);
  }
}

/** Checks an attention forward's operands (q, k, v read; out, lse, lseLo written). */
export function checkAttentionForward(
  fn: string, p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray, lseLo?: FloatArray,
): void {
  checkAttentionParams(fn, p, lse, lseLo);
  const { B, H, Hkv, L, S, E, Ev } = p, lay = layoutOf(p), laid = !!p.layout;
  checkRows(fn, "q", q, lay.q, laid, "[B, H, L, E]", B, H, L, E);
  checkRows(fn, "k", k, lay.k, laid, "[B, Hkv, S, E]", B, Hkv, S, E);
  checkRows(fn, "v", v, lay.v, laid, "[B, Hkv, S, Ev]", B, Hkv, S, Ev);
  checkRows(fn, "out", out, lay.out, laid, "[B, H, L, Ev]", B, H, L, Ev);
}

/** Checks an attention backward's operands: forward's, plus dout (out's rows), dq, dk, dv (q's, k's, v's rows). */
export function checkAttentionBackward(
  fn: string, p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, dout: FloatArray,
  lse: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray, lseLo?: FloatArray,
): void {
  checkAttentionForward(fn, p, q, k, v, out, lse, lseLo);
  const { B, H, Hkv, L, S, E, Ev } = p, lay = layoutOf(p), laid = !!p.layout;
  checkRows(fn, "dout", dout, lay.out, laid, "[B, H, L, Ev]", B, H, L, Ev);
  checkRows(fn, "dq", dq, lay.q, laid, "[B, H, L, E]", B, H, L, E);
  checkRows(fn, "dk", dk, lay.k, laid, "[B, Hkv, S, E]", B, Hkv, S, E);
  checkRows(fn, "dv", dv, lay.v, laid, "[B, Hkv, S, Ev]", B, Hkv, S, Ev);
}

/** Checks a matmul's operands: out [batch, m, n]; a, b at their batch strides (0: one shared); bias [n]. */
export function checkMatmul(fn: string, out: FloatArray, a: FloatArray, b: FloatArray, bias: FloatArray | null, p: MatmulParams): void {
  const { batch, m, n, k } = p;
  for (const key of ["batch", "m", "n", "k"] as const) count(fn, `p.${key}`, p[key]);
  const aS = count(fn, "p.aBatchStride", p.aBatchStride), bS = count(fn, "p.bBatchStride", p.bBatchStride);
  const dims = (x: "a" | "b", rows: number, cols: number, stride: number): string =>
    `${x} is [${rows}, ${cols}]${stride === 0 ? ", one for the whole batch" : ` per product, ${batch} products ${stride} apart`}`;
  const none = batch * m * n === 0; // nothing is computed (wasm and ref both return at once)
  holds(fn, "out", out, 0, batch * m * n, () => `[batch, m, n] = [${batch}, ${m}, ${n}]`);
  if (none) return;
  const [am, ak] = p.transA ? [k, m] : [m, k], [bk, bn] = p.transB ? [n, k] : [k, n];
  holds(fn, "a", a, 0, k === 0 ? 0 : (aS === 0 ? 0 : (batch - 1) * aS) + m * k, () => dims("a", am, ak, aS));
  holds(fn, "b", b, 0, k === 0 ? 0 : (bS === 0 ? 0 : (batch - 1) * bS) + n * k, () => dims("b", bk, bn, bS));
  if (bias !== null) holds(fn, "bias", bias, 0, n, () => `one per column of out, n = ${n}`);
}

/**
 * `b` behind the door: the same name and kernels, each called after its operands are checked, and
 * attention in any layout (attentionLayout: true; heads-first copies for a backend without it).
 */
export function guardBackend(b: Backend): Backend {
  const on = ` (backend "${b.name}")`;
  const [mm, mmBias, fwd, bwd] = ["matmul", "matmulBias", "attentionForward", "attentionBackward"].map((f) => f + on);
  const anyLayout = b.attentionLayout === true;
  const forward = anyLayout ? null : forwardInAnyLayout((p, q, k, v, out, lse, lseLo) => b.attentionForward(p, q, k, v, out, lse, lseLo));
  const backward = anyLayout ? null : backwardInAnyLayout((p, q, k, v, out, dout, lse, dq, dk, dv, lseLo) =>
    b.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo));
  const g: { -readonly [K in keyof Backend]: Backend[K] } = {
    name: b.name,
    attentionLayout: true,
    matmul(out, x, y, p) {
      checkMatmul(mm, out, x, y, null, p);
      b.matmul(out, x, y, p);
    },
    attentionForward(p, q, k, v, out, lse, lseLo) {
      checkAttentionForward(fwd, p, q, k, v, out, lse, lseLo);
      if (forward === null) b.attentionForward(p, q, k, v, out, lse, lseLo);
      else forward(p, q, k, v, out, lse, lseLo);
    },
    attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo) {
      checkAttentionBackward(bwd, p, q, k, v, out, dout, lse, dq, dk, dv, lseLo);
      if (backward === null) b.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo);
      else backward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo);
    },
  };
  if (b.matmulBias !== undefined) {
    g.matmulBias = (out, x, y, bias, p) => {
      checkMatmul(mmBias, out, x, y, bias, p);
      b.matmulBias!(out, x, y, bias, p);
    };
  }
  // the elementwise fast paths decline arrays they do not take; they pass through as they are
  if (b.mulPiecewise !== undefined) g.mulPiecewise = (out, by, x, f) => b.mulPiecewise!(out, by, x, f);
  if (b.normRows !== undefined) g.normRows = (p, out, x, w, bb, mean, std) => b.normRows!(p, out, x, w, bb, mean, std);
  if (b.normRowsBackward !== undefined) {
    g.normRowsBackward = (p, gr, x, w, mean, std, gx, accW, accB) => b.normRowsBackward!(p, gr, x, w, mean, std, gx, accW, accB);
  }
  return g;
}
