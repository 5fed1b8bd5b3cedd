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
import { backwardInAnyLayout, forwardInAnyLayout } from "./layout.js";

type AnyArray = FloatArray | Uint8Array | Int32Array;

// Each check is a few comparisons on the passing path, allocating nothing; its message is built only
// once it has failed (the flexible options' checks, for calls that have them, pass a closure that
// builds theirs).

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

const isCount = (x: number): boolean => Number.isSafeInteger(x) && x >= 0;

/** An ArgumentError for the first of `names` whose value (`values`, the same order) is not a count, or an integer with `signed`. */
function notIntegers(fn: string, names: string[], values: number[], signed = false): ArgumentError {
  const i = values.findIndex((x) => !(signed ? Number.isSafeInteger(x) : isCount(x)));
  return new ArgumentError(`${fn}: ${names[i]} must be ${signed ? "an integer" : "a non-negative integer"}, got ${String(values[i])}`);
}

/**
 * Whether `arr` holds elements [lo, hi), which a call that reads nothing (hi <= lo) needs none of;
 * an ArgumentError for something that is not an array at all.
 */
function holds(fn: string, name: string, arr: AnyArray | null | undefined, lo: number, hi: number): boolean {
  if (arr === null || arr === undefined || typeof arr.length !== "number") {
    throw new ArgumentError(`${fn}: ${name} must be a typed array, got ${arr === null ? "null" : typeof arr}`);
  }
  return hi <= lo || (lo >= 0 && hi <= arr.length);
}

/** The error for an array that does not hold [lo, hi): what it holds (or that it is detached), what the call reaches and how (`reach`). */
function shortArray(fn: string, name: string, arr: AnyArray, lo: number, hi: number, reach: string): ShapeError {
  if (lo < 0) return new ShapeError(`${fn}: ${name} would be read from index ${lo}, before its start: ${reach}`);
  const seen = isDetached(arr) ? `${name}'s buffer is detached (transferred away), so it holds 0 elements` : `${name} holds ${arr.length} elements`;
  return new ShapeError(`${fn}: ${seen}, but the call reaches ${hi}: ${reach}`);
}

/** A contiguous array of n elements. */
function checkLength(fn: string, name: string, arr: AnyArray, n: number, what: () => string): void {
  if (!holds(fn, name, arr, 0, n)) throw shortArray(fn, name, arr, 0, n, what());
}

/**
 * An attention operand's rows: [B, heads, T, D] (letters `dims`) with row (b, h, t) at
 * offset + b·sb + h·sh + t·sl (`s`; null: heads first), its D elements contiguous. Elements
 * [lo, hi) are reached: lo from the negative strides, hi from the positive ones plus D.
 */
function checkRows(
  fn: string, name: string, arr: FloatArray, s: RowStrides | null, dims: string, B: number, heads: number, T: number, D: number,
): void {
  let lo = 0, hi = B * heads * T * D;
  if (s !== null) {
    const { offset, sb, sh, sl } = s;
    if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(sb) && Number.isSafeInteger(sh) && Number.isSafeInteger(sl))) {
      throw notIntegers(fn, ["offset", "sb", "sh", "sl"].map((k) => `${layoutName(name)}.${k}`), [offset, sb, sh, sl], true);
    }
    if (hi > 0) {
      const b = (B - 1) * sb, h = (heads - 1) * sh, t = (T - 1) * sl;
      lo = offset + Math.min(0, b) + Math.min(0, h) + Math.min(0, t);
      hi = offset + Math.max(0, b) + Math.max(0, h) + Math.max(0, t) + D;
    }
  }
  if (holds(fn, name, arr, lo, hi)) return;
  const shape = `${name} ${dims} = [${B}, ${heads}, ${T}, ${D}]`;
  const reach = s === null
    ? `${shape}, heads first, is ${hi} elements`
    : `${shape} at ${layoutName(name)} = { offset ${s.offset}, sb ${s.sb}, sh ${s.sh}, sl ${s.sl} }: row (b, h, t) starts at offset + b·sb + h·sh + t·sl`;
  throw shortArray(fn, name, arr, lo, hi, reach);
}

/** Where an operand's rows are given: dq, dk, dv and dout share q's, k's, v's and out's layouts. */
const layoutName = (name: string): string => `layout.${name === "dout" ? "out" : name.replace(/^d(?=[qkv]$)/, "")}`;

/** Everything but the rows: the dims, lse (and lseLo), the mask, the flexible options' arrays. */
function checkAttentionParams(fn: string, p: AttentionParams, lse: FloatArray, lseLo: FloatArray | undefined): void {
  const { B, H, Hkv, L, S, E, Ev } = p;
  if (!(isCount(B) && isCount(H) && isCount(Hkv) && isCount(L) && isCount(S) && isCount(E) && isCount(Ev))) {
    throw notIntegers(fn, ["B", "H", "Hkv", "L", "S", "E", "Ev"].map((k) => `p.${k}`), [B, H, Hkv, L, S, E, Ev]);
  }
  if (H > 0 && (Hkv === 0 || H % Hkv !== 0)) {
    throw new ArgumentError(`${fn}: p.Hkv must divide p.H (each kv head serves H / Hkv query heads), got H = ${H}, Hkv = ${Hkv}`);
  }
  const n = B * H * L;
  if (!holds(fn, "lse", lse, 0, n)) throw shortArray(fn, "lse", lse, 0, n, `[B, H, L] = [${B}, ${H}, ${L}] is ${n} elements`);
  if (lseLo !== undefined && !holds(fn, "lseLo", lseLo, 0, n)) {
    throw shortArray(fn, "lseLo", lseLo, 0, n, `[B, H, L] = [${B}, ${H}, ${L}] is ${n} elements`);
  }
  const mk = p.mask;
  if (mk !== null && mk !== undefined) checkMask(fn, mk.kind, mk.data, mk.strides, B, H, L, S);
  if (p.alibiSlopes) checkLength(fn, "alibiSlopes", p.alibiSlopes, H, () => `one per query head, H = ${H}`);
  if (p.sinks) checkLength(fn, "sinks", p.sinks, H, () => `one per query head, H = ${H}`);
  if (p.documents) {
    checkLength(fn, "documents.query", p.documents.query, B * L, () => `[B, L] = [${B}, ${L}]`);
    checkLength(fn, "documents.key", p.documents.key, B * S, () => `[B, S] = [${B}, ${S}]`);
  }
  const bm = p.blockMask;
  if (bm) {
    const n = bm.B * bm.H * bm.nRows * bm.nCols;
    const blocks = (): string => `[B, H, nRows, nCols] = [${bm.B}, ${bm.H}, ${bm.nRows}, ${bm.nCols}]`;
    checkLength(fn, "blockMask.kinds", bm.kinds, n, blocks);
    checkLength(fn, "blockMask.bitStart", bm.bitStart, n, blocks);
  }
}

/** A mask seen as [B, H, L, S] through its strides (0 on broadcast dims; any sign). */
function checkMask(
  fn: string, kind: string, data: AnyArray, st: readonly [number, number, number, number], B: number, H: number, L: number, S: number,
): void {
  const [sb, sh, sl, ss] = st;
  if (!(Number.isSafeInteger(sb) && Number.isSafeInteger(sh) && Number.isSafeInteger(sl) && Number.isSafeInteger(ss))) {
    throw notIntegers(fn, [0, 1, 2, 3].map((i) => `mask.strides[${i}]`), [sb, sh, sl, ss], true);
  }
  let lo = 0, hi = 0;
  if (B * H * L * S > 0) {
    const d = [(B - 1) * sb, (H - 1) * sh, (L - 1) * sl, (S - 1) * ss];
    lo = Math.min(0, d[0]) + Math.min(0, d[1]) + Math.min(0, d[2]) + Math.min(0, d[3]);
    hi = Math.max(0, d[0]) + Math.max(0, d[1]) + Math.max(0, d[2]) + Math.max(0, d[3]) + 1;
  }
  if (holds(fn, "mask.data", data, lo, hi)) return;
  throw shortArray(fn, "mask.data", data, lo, hi, `the ${kind} mask seen as [B, H, L, S] = [${B}, ${H}, ${L}, ${S}] at strides [${st.join(", ")}]`);
}

/** Checks an attention forward's operands (q, k, v read; out, lse, lseLo written). */
export function checkAttentionForward(
  fn: string, p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray, lseLo?: FloatArray,
): void {
  checkAttentionParams(fn, p, lse, lseLo);
  const { B, H, Hkv, L, S, E, Ev } = p, lay = p.layout ?? null;
  checkRows(fn, "q", q, lay && lay.q, "[B, H, L, E]", B, H, L, E);
  checkRows(fn, "k", k, lay && lay.k, "[B, Hkv, S, E]", B, Hkv, S, E);
  checkRows(fn, "v", v, lay && lay.v, "[B, Hkv, S, Ev]", B, Hkv, S, Ev);
  checkRows(fn, "out", out, lay && lay.out, "[B, H, L, Ev]", B, H, L, Ev);
}

/** Checks an attention backward's operands: forward's, plus dout (out's rows), dq, dk, dv (q's, k's, v's rows). */
export function checkAttentionBackward(
  fn: string, p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, dout: FloatArray,
  lse: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray, lseLo?: FloatArray,
): void {
  checkAttentionForward(fn, p, q, k, v, out, lse, lseLo);
  const { B, H, Hkv, L, S, E, Ev } = p, lay = p.layout ?? null;
  checkRows(fn, "dout", dout, lay && lay.out, "[B, H, L, Ev]", B, H, L, Ev);
  checkRows(fn, "dq", dq, lay && lay.q, "[B, H, L, E]", B, H, L, E);
  checkRows(fn, "dk", dk, lay && lay.k, "[B, Hkv, S, E]", B, Hkv, S, E);
  checkRows(fn, "dv", dv, lay && lay.v, "[B, Hkv, S, Ev]", B, Hkv, S, Ev);
}

/** Checks a matmul's operands: out [batch, m, n]; a, b at their batch strides (0: one shared); bias [n]. */
export function checkMatmul(fn: string, out: FloatArray, a: FloatArray, b: FloatArray, bias: FloatArray | null, p: MatmulParams): void {
  const { batch, m, n, k, aBatchStride: aS, bBatchStride: bS } = p;
  if (!(isCount(batch) && isCount(m) && isCount(n) && isCount(k) && isCount(aS) && isCount(bS))) {
    throw notIntegers(fn, ["batch", "m", "n", "k", "aBatchStride", "bBatchStride"].map((x) => `p.${x}`), [batch, m, n, k, aS, bS]);
  }
  const outN = batch * m * n;
  if (!holds(fn, "out", out, 0, outN)) throw shortArray(fn, "out", out, 0, outN, `[batch, m, n] = [${batch}, ${m}, ${n}]`);
  if (outN === 0) return; // nothing is computed (wasm and ref both return at once)
  // a [m, k] ([k, m] with transA) and b [k, n] ([n, k] with transB) per product, batch strides apart
  const aN = k === 0 ? 0 : (aS === 0 ? 0 : (batch - 1) * aS) + m * k, bN = k === 0 ? 0 : (bS === 0 ? 0 : (batch - 1) * bS) + n * k;
  if (!holds(fn, "a", a, 0, aN)) throw shortArray(fn, "a", a, 0, aN, matmulOperand("a", p.transA ? [k, m] : [m, k], batch, aS));
  if (!holds(fn, "b", b, 0, bN)) throw shortArray(fn, "b", b, 0, bN, matmulOperand("b", p.transB ? [n, k] : [k, n], batch, bS));
  if (bias !== null && !holds(fn, "bias", bias, 0, n)) throw shortArray(fn, "bias", bias, 0, n, `one per column of out, n = ${n}`);
}

/** How a matmul operand reaches: its shape per product, and its batch stride. */
function matmulOperand(x: string, [rows, cols]: [number, number], batch: number, stride: number): string {
  return `${x} is [${rows}, ${cols}]${stride === 0 ? ", one for the whole batch" : ` per product, ${batch} products ${stride} apart`}`;
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
  if (b.adamw !== undefined) {
    const fn = "adamw" + on;
    /** items[i]'s array `name` holds p's length (the update runs over p's elements); the message is built only on failure */
    const checkItem = (i: number, name: string, arr: FloatArray, n: number): void => {
      if (arr.length < n) checkLength(fn, `items[${i}].${name}`, arr, n, () => `items[${i}].p holds ${n} elements, and the update reads as many of each of its arrays`);
    };
    g.adamw = (items) => {
      for (let i = 0; i < items.length; i++) {
        const it = items[i], n = it.p.length;
        checkItem(i, "g", it.g, n);
        checkItem(i, "m", it.m, n);
        checkItem(i, "v", it.v, n);
        if (it.vmax !== null) checkItem(i, "vmax", it.vmax, n);
      }
      return b.adamw!(items);
    };
  }
  return g;
}
