/**
 * Attention operands whose rows are not heads-first (AttentionParams.layout, backend.ts): the
 * strides of the contiguous form, and the one adapter that lets a kernel that reads only that form
 * run a call in any layout, by copying the operands into it and the results back
 * (forwardInAnyLayout, backwardInAnyLayout). The ref kernels (ref/flash.ts) are wrapped in it once
 * (the wasm backend's float64 and small calls reach them so); dispatch.ts wraps every backend that
 * does not declare Backend.attentionLayout in it; the wasm kernels read the rows where they are
 * while they stage them anyway.
 */
import type { FloatArray } from "../tensor/dtype.js";
import type { AttentionLayout, AttentionParams, RowStrides } from "./backend.js";

/** The contiguous [B, heads, T, D]: row (b, h, t) at ((b·heads + h)·T + t)·D. */
export function headsFirstStrides(heads: number, T: number, D: number): RowStrides {
  return { offset: 0, sb: heads * T * D, sh: T * D, sl: D };
}

/** The call's layout, the contiguous one where p.layout is absent. */
export function layoutOf(p: AttentionParams): AttentionLayout {
  if (p.layout) return p.layout;
  return {
    q: headsFirstStrides(p.H, p.L, p.E), k: headsFirstStrides(p.Hkv, p.S, p.E),
    v: headsFirstStrides(p.Hkv, p.S, p.Ev), out: headsFirstStrides(p.H, p.L, p.Ev),
  };
}

/** Where row t of head `head` (the flat index b·heads + h) starts. */
export function rowStart(s: RowStrides, heads: number, head: number): number {
  return s.offset + Math.floor(head / heads) * s.sb + (head % heads) * s.sh;
}

/** The rows of [B, heads, T, D] at strides s, copied into a fresh contiguous array. */
function gather(src: FloatArray, s: RowStrides, B: number, heads: number, T: number, D: number): FloatArray {
  const dst = new (src.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(B * heads * T * D);
  for (let head = 0; head < B * heads; head++) {
    const from = rowStart(s, heads, head);
    for (let t = 0; t < T; t++) dst.set(src.subarray(from + t * s.sl, from + t * s.sl + D), (head * T + t) * D);
  }
  return dst;
}

/** The inverse: a contiguous [B, heads, T, D] written to its rows at strides s. */
function scatter(dst: FloatArray, s: RowStrides, B: number, heads: number, T: number, D: number, src: FloatArray): void {
  for (let head = 0; head < B * heads; head++) {
    const to = rowStart(s, heads, head);
    for (let t = 0; t < T; t++) dst.set(src.subarray((head * T + t) * D, (head * T + t + 1) * D), to + t * s.sl);
  }
}

type Operand = "q" | "k" | "v" | "out";

/** A call in a layout, run by a kernel that reads only the contiguous form. */
export interface HeadsFirstCall {
  /** the same call with p.layout removed */
  p: AttentionParams;
  /** a contiguous copy of q, k, v or out (dq, dk, dv, dout: the same layouts) */
  read(x: FloatArray, which: Operand): FloatArray;
  /** a fresh contiguous array for one of them, for the kernel to write */
  blank(like: FloatArray, which: Operand): FloatArray;
  /** copies a written contiguous array to its rows in the caller's array */
  write(dst: FloatArray, src: FloatArray, which: Operand): void;
}

/** The adapter for a call with p.layout; null where it has none (nothing to do). */
export function headsFirst(p: AttentionParams): HeadsFirstCall | null {
  const lay = p.layout;
  if (!lay) return null;
  const { B, H, Hkv, L, S, E, Ev } = p;
  const dims: Record<Operand, [number, number, number]> = { q: [H, L, E], k: [Hkv, S, E], v: [Hkv, S, Ev], out: [H, L, Ev] };
  return {
    p: { ...p, layout: null },
    read: (x, w) => gather(x, lay[w], B, ...dims[w]),
    blank: (like, w) => new (like.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(B * dims[w][0] * dims[w][1] * dims[w][2]),
    write: (dst, src, w) => scatter(dst, lay[w], B, ...dims[w], src),
  };
}

/**
 * Backend.attentionForward's signature, with whatever arguments a kernel takes after it (`extra`,
 * passed through: ref/flash.ts's tile sizes).
 */
export type ForwardKernel<X extends unknown[] = []> = (
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray, lseLo?: FloatArray, ...extra: X
) => void;

/** Backend.attentionBackward's signature, with extra arguments as in ForwardKernel. */
export type BackwardKernel<X extends unknown[] = []> = (
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, dout: FloatArray,
  lse: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray, lseLo?: FloatArray, ...extra: X
) => void;

/** `forward` (a kernel that reads heads-first operands only) for a call in any layout: copies in, runs, copies out. */
export function forwardInAnyLayout<X extends unknown[]>(forward: ForwardKernel<X>): ForwardKernel<X> {
  return (p, q, k, v, out, lse, lseLo, ...extra) => {
    const hf = headsFirst(p);
    if (hf === null) return forward(p, q, k, v, out, lse, lseLo, ...extra);
    const o = hf.blank(out, "out");
    forward(hf.p, hf.read(q, "q"), hf.read(k, "k"), hf.read(v, "v"), o, lse, lseLo, ...extra);
    hf.write(out, o, "out");
  };
}

/** The same for a backward: dq, dk, dv are written back into their rows (their other elements stay as they are). */
export function backwardInAnyLayout<X extends unknown[]>(backward: BackwardKernel<X>): BackwardKernel<X> {
  return (p, q, k, v, out, dout, lse, dq, dk, dv, lseLo, ...extra) => {
    const hf = headsFirst(p);
    if (hf === null) return backward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo, ...extra);
    const [gq, gk, gv] = [hf.blank(dq, "q"), hf.blank(dk, "k"), hf.blank(dv, "v")];
    backward(hf.p, hf.read(q, "q"), hf.read(k, "k"), hf.read(v, "v"), hf.read(out, "out"), hf.read(dout, "out"), lse, gq, gk, gv, lseLo, ...extra);
    hf.write(dq, gq, "q");
    hf.write(dk, gk, "k");
    hf.write(dv, gv, "v");
  };
}
