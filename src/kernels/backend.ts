/**
 * The small interface every compute backend implements. Kernels are output-first and allocation-free:
 * the op layer (src/ops, src/attention) validates, allocates and calls them on flat row-major arrays.
 *
 * Shape letters: B flattened batch (all leading dims), H query heads, Hkv key/value heads
 * (H % Hkv == 0; query head h reads kv head floor(h / (H / Hkv))), L query length, S key length,
 * E head dim, Ev value dim.
 */
import type { FloatArray } from "../tensor/dtype.js";

export interface MatmulParams {
  /** number of independent products; a and b advance by their batch strides (0 = broadcast) */
  batch: number;
  m: number;
  n: number;
  k: number;
  aBatchStride: number;
  bBatchStride: number;
  /** a is stored [k, m] and used transposed */
  transA: boolean;
  /** b is stored [n, k] and used transposed */
  transB: boolean;
  /** out += product instead of out = product */
  accumulate: boolean;
}

export type CausalKind = "none" | "top-left" | "bottom-right";

/** A mask seen as [B, H, L, S] through strides (0 on broadcast dims). */
export type AttentionMask =
  | { kind: "bool"; data: Uint8Array; strides: [number, number, number, number] }
  | { kind: "float"; data: FloatArray; strides: [number, number, number, number] };

export interface AttentionDims {
  B: number;
  H: number;
  Hkv: number;
  L: number;
  S: number;
  E: number;
  Ev: number;
}

export interface AttentionParams extends AttentionDims {
  scale: number;
  causal: CausalKind;
  mask: AttentionMask | null;
  /** 0 = no dropout; keep decision from kernels/dropoutHash.ts with row = (b*H + h)*L + l, col = s */
  dropoutP: number;
  dropoutSeed: number;
}

export interface Backend {
  readonly name: string;
  /** out[B, m, n] = op(a) @ op(b) (see MatmulParams) */
  matmul(out: FloatArray, a: FloatArray, b: FloatArray, p: MatmulParams): void;
  /**
   * Fused attention forward. q [B,H,L,E], k [B,Hkv,S,E], v [B,Hkv,S,Ev] -> out [B,H,L,Ev] and
   * lse [B,H,L] (the natural log of the row's sum of exp(score), -Infinity for a fully masked row,
   * whose output row is zeros). lse may be stored as float32 or float64 whatever the data's dtype; the
   * op layer passes float64: at |lse| ~ 300 float32 keeps it only to 3e-5, an error backward's
   * P = exp(score - lse) would inherit.
   * lseLo [B,H,L], where given, gets the rounding residual of lse, lse + lseLo = m + log(l) (m the
   * row's max, l its sum of exp(score - m)): where |m| dwarfs log(l) (a float mask of -1e30) lse alone
   * equals m, and backward's P = exp((score - lse) - lseLo) needs the log(l) it dropped.
   */
  attentionForward(
    p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray, lseLo?: FloatArray,
  ): void;
  /**
   * Fused attention backward: recomputes the tiles from q, k, v, lse and lseLo (float32 or float64, as
   * forward wrote them; lseLo absent = 0); writes (not accumulates) dq, dk, dv.
   */
  attentionBackward(
    p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, dout: FloatArray,
    lse: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray, lseLo?: FloatArray,
  ): void;
}
