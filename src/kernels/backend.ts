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

/** Where query row l sits among the keys, l' = l (top-left) or l + S − L (bottom-right): see causal.ts. */
export type PositionAlignment = "top-left" | "bottom-right";

/** A sliding window: query row l sees keys l' − left .. l' + right (sides may be Infinity). */
export interface AttentionWindow {
  left: number;
  right: number;
}

/** Document ids of packed sequences (query l sees key s iff query[b*L + l] == key[b*S + s]). */
export interface AttentionDocuments {
  /** [B, L] */
  query: Int32Array;
  /** [B, S] */
  key: Int32Array;
}

/**
 * A block-sparse mask (src/attention/blockMask.ts makes it), blocks of blockSize × blockSize over
 * [B, H, L, S] (B or H may be 1: the same for every batch element / head). Each block is empty (0: no
 * key visible), partial (1: its bits say which) or full (2: every key visible). The reading rules are
 * in causal.ts (blockKind, blockAllows).
 */
export interface AttentionBlockMask {
  B: number;
  H: number;
  L: number;
  S: number;
  blockSize: number;
  /** rows and columns of blocks: ceil(L / blockSize), ceil(S / blockSize) */
  nRows: number;
  nCols: number;
  /** [B, H, nRows, nCols]: 0 empty, 1 partial, 2 full */
  kinds: Uint8Array;
  /** [B, H, nRows, nCols]: for a partial block, the index of its first bit in `bits`; −1 otherwise */
  bitStart: Int32Array;
  /** the partial blocks' elements, blockSize² bits each (row-major in the block, 1 = may attend), packed 8 to a byte */
  bits: Uint8Array;
}

/**
 * Where the rows of one attention operand lie in its array: row (b, h, t) starts at
 * offset + b·sb + h·sh + t·sl, its D elements contiguous (D = E, or Ev for v and out).
 */
export interface RowStrides {
  offset: number;
  sb: number;
  sh: number;
  sl: number;
}

/**
 * The rows of q (and dq), k (dk), v (dv) and out (dout) when they are not the contiguous
 * [B, H, L, E], [B, Hkv, S, E], [B, Hkv, S, Ev], [B, H, L, Ev]. The attention modules use it to hand
 * over their projections as they come, heads interleaved ([B, L, H·E]: sb = L·H·E, sh = E, sl = H·E),
 * instead of copying them into heads-first order and the output back (kernels/layout.ts).
 * lse stays [B, H, L]; the mask, the dropout rows and the flexible options index (b, h, l) as always.
 */
export interface AttentionLayout {
  q: RowStrides;
  k: RowStrides;
  v: RowStrides;
  out: RowStrides;
}

export interface AttentionParams extends AttentionDims {
  scale: number;
  causal: CausalKind;
  mask: AttentionMask | null;
  /** 0 = no dropout; keep decision from kernels/dropoutHash.ts with row = (b*H + h)*L + l, col = s */
  dropoutP: number;
  dropoutSeed: number;
  // The flexible options (all optional; absent = off). Scores go: s = scale · q·k − slope_h |l' − s|,
  // then softcap · tanh(s / softcap), then the mask; the visible keys are those that causality, the
  // window, the documents, the block mask and a bool mask all allow.
  /** where query row l sits among the keys, for windows and ALiBi; default: causal's alignment, else top-left */
  alignment?: PositionAlignment;
  window?: AttentionWindow | null;
  /** ALiBi slopes per query head [H]: adds −slope_h · |l' − s| to the scaled scores */
  alibiSlopes?: Float64Array | null;
  /** > 0: scores become softcap · tanh(scores / softcap); absent or 0: off */
  softcap?: number;
  /** one logit per query head [H]: an extra softmax column whose value is zero */
  sinks?: Float64Array | null;
  documents?: AttentionDocuments | null;
  blockMask?: AttentionBlockMask | null;
  /** where the operands' rows are (absent or null: contiguous, heads first); the gradients share it */
  layout?: AttentionLayout | null;
}

/**
 * A function f as a table of polynomials (src/ops/piecewise.ts builds it from f's definition): on
 * [lo, hi), cut into `intervals` of `width`, interval k holds 8 float32 coefficients of
 * Σ c_j t^j, t = (x - mid_k) / (width / 2), mid_k = lo + (k + 1/2) width. Outside: f = below for
 * x < lo, above for x >= hi, negInf and posInf at ±Infinity; NaN gives NaN.
 */
export interface PiecewiseTable32 {
  lo: number;
  hi: number;
  width: number;
  intervals: number;
  /** [intervals][8], lowest power first */
  coef: Float32Array;
  below: number;
  above: number;
  negInf: number;
  posInf: number;
  /**
   * A cubic table of the same f on [core.lo, core.hi) ⊂ [lo, hi) in narrower intervals, [intervals][4]
   * coefficients, lowest power first: a kernel may read it for elements inside that range (GELU's
   * activations nearly all are) instead of the degree-7 table, gathering half the coefficients.
   * Optional; either table gives f to float32 rounding.
   */
  core?: { lo: number; hi: number; width: number; intervals: number; coef: Float32Array };
}

/** layerNorm (or rmsNorm: mean null) over R rows of D contiguous elements. */
export interface NormRowsParams {
  R: number;
  D: number;
  eps: number;
}

/**
 * One parameter's AdamW update (src/optim/adamw.ts): float32 arrays of one length, updated in place
 * (p, m, v, and vmax when amsgrad), from the gradient g and the scalars the optimizer worked out.
 */
export interface AdamWItem {
  p: Float32Array;
  g: Float32Array;
  m: Float32Array;
  v: Float32Array;
  vmax: Float32Array | null;
  b1: number;
  b2: number;
  /** 1 - b1 */
  c1: number;
  /** 1 - b2 */
  c2: number;
  /** 1, or -1 when maximizing */
  sign: number;
  /** 1 - lr · weightDecay */
  decay: number;
  /** lr / (1 - b1^t) */
  stepSize: number;
  /** sqrt(1 - b2^t) */
  bc2Sqrt: number;
  eps: number;
}

export interface Backend {
  readonly name: string;
  /**
   * true: attentionForward / attentionBackward read AttentionParams.layout (operands whose rows are
   * not heads-first). Otherwise the op layer's door (dispatch.ts) hands them heads-first copies, so a
   * backend written for the contiguous form stays correct.
   */
  readonly attentionLayout?: boolean;
  /** out[B, m, n] = op(a) @ op(b) (see MatmulParams) */
  matmul(out: FloatArray, a: FloatArray, b: FloatArray, p: MatmulParams): void;
  /**
   * Optional: matmul, then bias [n] added to every row of out (linear's bias), each element getting
   * one float addition after its sum is complete: the bits of matmul followed by out[i, j] += bias[j].
   * A backend without it gets matmul and the addition done by the op (kernelMatmulBias).
   */
  matmulBias?(out: FloatArray, a: FloatArray, b: FloatArray, bias: FloatArray, p: MatmulParams): void;
  /**
   * Fused attention forward. q [B,H,L,E], k [B,Hkv,S,E], v [B,Hkv,S,Ev] -> out [B,H,L,Ev] (or
   * their rows where p.layout puts them, for a backend that declares attentionLayout) and
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
  // Optional fast paths of elementwise and row ops. Each returns false, having written nothing, when
  // it does not take these arrays (dtype, size); the op then runs its own loop, the readable form.
  /** out[i] = by[i] · f(x[i]), f the table (float32 arithmetic; the op keeps float64 ones for itself) */
  mulPiecewise?(out: FloatArray, by: FloatArray, x: FloatArray, f: PiecewiseTable32): boolean;
  /**
   * layerNorm rows: out = (x - mean) / σ · w + b, σ = sqrt(mean((x - mean)²) + eps); writes each row's
   * mean and σ. mean null: rmsNorm (the mean taken as 0, b must be null).
   */
  normRows?(
    p: NormRowsParams, out: FloatArray, x: FloatArray, w: FloatArray | null, b: FloatArray | null,
    mean: Float64Array | null, std: Float64Array,
  ): boolean;
  /**
   * layerNorm's backward over the rows (mean null: rmsNorm's), from forward's mean and σ: writes gx
   * (when not null) and adds the weight and bias column sums Σ g x̂, Σ g into accW, accB (when not null).
   */
  normRowsBackward?(
    p: NormRowsParams, g: FloatArray, x: FloatArray, w: FloatArray | null, mean: Float64Array | null, std: Float64Array,
    gx: FloatArray | null, accW: Float64Array | null, accB: Float64Array | null,
  ): boolean;
  /**
   * AdamW's update of every item, each element with the arithmetic of AdamW.update's loop (float64,
   * each stored value rounded to float32): the same bits. Every item has a vmax, or none has.
   */
  adamw?(items: readonly AdamWItem[]): boolean;
}
