/**
 * The flexible options of scaledDotProductAttention (sliding windows, ALiBi, softcapping, attention
 * sinks, document masking, block masks): what each means, and their validation into the plan. Both
 * paths read the plan: the textbook path (sdpa.ts) draws each option out as a mask, a bias or an extra
 * column; the fused path (fused.ts) hands it to the kernels as parameters.
 *
 *   scores  = Q Kᵀ · scale − slope_h · |l' − s|          alibiSlopes (l' = l shifted by the alignment)
 *   scores  = softcap · tanh(scores / softcap)           softcap (then any float mask is added)
 *   hidden  = outside l' − left .. l' + right            slidingWindow
 *           | another document                           documents
 *           | false in the block mask                    blockMask      (and causality, a bool mask)
 *   P       = softmax([scores | sink_h]) without its last column       sinks (weights sum to < 1)
 */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { broadcastShapes, sameShape, sizeOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { expand } from "../ops/shape.js";
import { BlockMask } from "./blockMask.js";
import { type SlidingWindow, checkWindow, defaultAlibiSlopes } from "./masks.js";

export interface FlexOptions {
  /**
   * query l sees keys s with l' - left <= s <= l' + right (l' = l, or l + S - L with causalAlignment
   * "bottom-right"); a number w is [w - 1, 0]: w keys up to and including the query's own (Mistral)
   */
  slidingWindow?: SlidingWindow | null;
  /** ALiBi: adds -slope_h · |l' - s| to the scaled scores; "default": the paper's slopes for H heads (not differentiated) */
  alibiSlopes?: readonly number[] | Tensor | "default" | null;
  /** scores become softcap · tanh(scores / softcap) after scaling and ALiBi, before masks (Gemma 2) */
  softcap?: number | null;
  /** [H] one learnable logit per query head: an extra softmax column whose value is zero (gpt-oss) */
  sinks?: Tensor | null;
  /** packed sequences: int32 document ids, query [N.., L] and key [N.., S]; a query sees only its own document's keys */
  documents?: { query: Tensor; key: Tensor } | null;
  /** a block-sparse mask from createBlockMask (for the flattened batch N.. and the query heads) */
  blockMask?: BlockMask | null;
}

/** The flexible options, validated (part of SdpaPlan). */
export interface FlexPlan {
  window: { left: number; right: number } | null;
  /** [H] */
  alibiSlopes: Float64Array | null;
  softcap: number | null;
  /** [H] */
  sinks: Tensor | null;
  /** ids over the flattened batch: query [B, L], key [B, S] */
  documents: { query: Int32Array; key: Int32Array } | null;
  blockMask: BlockMask | null;
}

interface Dims {
  batch: number[];
  H: number;
  L: number;
  S: number;
}

function slopes(fn: string, x: NonNullable<FlexOptions["alibiSlopes"]>, H: number): Float64Array {
  if (x === "default") return Float64Array.from(defaultAlibiSlopes(H));
  let values: ArrayLike<number>;
  if (x instanceof Tensor) {
    if (x.dtype !== "float32" && x.dtype !== "float64") throw new ArgumentError(`${fn}: alibiSlopes must be float32 or float64, got ${x.dtype}`);
    if (!sameShape(x.shape, [H])) throw new ShapeError(`${fn}: alibiSlopes must have one slope per query head, shape [${H}]; got ${fmtShape(x.shape)}`);
    values = x.values;
  } else if (Array.isArray(x)) {
    if (x.length !== H) throw new ShapeError(`${fn}: alibiSlopes must have one slope per query head (${H}); got ${x.length}`);
    values = x as readonly number[];
  } else {
    throw new ArgumentError(`${fn}: alibiSlopes must be an array of numbers, a Tensor [H] or "default", got ${typeof x === "string" ? JSON.stringify(x) : typeof x}`);
  }
  const out = Float64Array.from(values);
  const bad = out.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new ArgumentError(`${fn}: alibiSlopes[${bad}] must be a finite number, got ${String((values as ArrayLike<unknown>)[bad])}`);
  return out;
}

/** The document ids of one side, [N.., n] broadcast over the batch dims, flattened to [B, n]. */
function documentIds(fn: string, name: string, t: unknown, batch: number[], n: number, letter: string): Int32Array {
  if (!(t instanceof Tensor)) throw new ArgumentError(`${fn}: documents.${name} must be a Tensor of int32 document ids [N.., ${letter}]`);
  if (t.dtype !== "int32") throw new ArgumentError(`${fn}: documents.${name} must be int32 document ids, got ${t.dtype}`);
  const want = [...batch, n];
  let fits = t.ndim >= 1 && t.shape[t.ndim - 1] === n;
  if (fits) {
    try {
      fits = sameShape(broadcastShapes(fn, t.shape, want), want);
    } catch {
      fits = false;
    }
  }
  if (!fits) throw new ShapeError(`${fn}: documents.${name} of shape ${fmtShape(t.shape)} does not broadcast to ${fmtShape(want)} ([N.., ${letter}])`);
  return Int32Array.from(expand(t, want).values); // [N.., n] -> [B, n]
}

export function planFlex(fn: string, opts: FlexOptions, d: Dims): FlexPlan {
  let window: FlexPlan["window"] = null;
  if (opts.slidingWindow !== undefined && opts.slidingWindow !== null) {
    const [left, right] = checkWindow(fn, opts.slidingWindow);
    window = { left, right };
  }
  const alibi = opts.alibiSlopes === undefined || opts.alibiSlopes === null ? null : slopes(fn, opts.alibiSlopes, d.H);
  let softcap: number | null = null;
  if (opts.softcap !== undefined && opts.softcap !== null) {
    if (typeof opts.softcap !== "number" || !(opts.softcap > 0) || !Number.isFinite(opts.softcap)) {
      throw new ArgumentError(`${fn}: softcap must be a positive finite number (scores become softcap · tanh(scores / softcap)), got ${String(opts.softcap)}`);
    }
    softcap = opts.softcap;
  }
  let sinks: Tensor | null = null;
  if (opts.sinks !== undefined && opts.sinks !== null) {
    const t = opts.sinks;
    if (!(t instanceof Tensor)) throw new ArgumentError(`${fn}: sinks must be a Tensor [H] (one logit per query head)`);
    if (t.dtype !== "float32" && t.dtype !== "float64") throw new ArgumentError(`${fn}: sinks must be float32 or float64, got ${t.dtype}`);
    if (!sameShape(t.shape, [d.H])) throw new ShapeError(`${fn}: sinks must have one logit per query head, shape [${d.H}]; got ${fmtShape(t.shape)}`);
    sinks = t;
  }
  let documents: FlexPlan["documents"] = null;
  if (opts.documents !== undefined && opts.documents !== null) {
    const doc = opts.documents as unknown;
    if (typeof doc !== "object" || doc === null) throw new ArgumentError(`${fn}: documents must be { query: Tensor [N.., L], key: Tensor [N.., S] } of int32 ids`);
    const { query, key } = doc as Record<string, unknown>;
    documents = { query: documentIds(fn, "query", query, d.batch, d.L, "L"), key: documentIds(fn, "key", key, d.batch, d.S, "S") };
  }
  let blockMask: BlockMask | null = null;
  if (opts.blockMask !== undefined && opts.blockMask !== null) {
    const bm = opts.blockMask;
    if (!(bm instanceof BlockMask)) throw new ArgumentError(`${fn}: blockMask must be made by createBlockMask`);
    const B = sizeOf(d.batch);
    if (bm.L !== d.L || bm.S !== d.S || (bm.batch !== 1 && bm.batch !== B) || (bm.heads !== 1 && bm.heads !== d.H)) {
      throw new ShapeError(
        `${fn}: blockMask was built for batch ${bm.batch}, heads ${bm.heads}, L ${bm.L}, S ${bm.S}; this call has batch ${B}, heads ${d.H}, L ${d.L}, S ${d.S} (batch and heads may be 1)`,
      );
    }
    blockMask = bm;
  }
  return { window, alibiSlopes: alibi, softcap, sinks, documents, blockMask };
}
