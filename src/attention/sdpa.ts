/**
 * Scaled dot-product attention, the soft lookup table: every value is poured in, in proportion to
 * how well its key matches the query (softmax of the scaled dot products).
 *
 *   scores  = Q Kᵀ · scale                     [N.., H, L, S]   scale = 1/sqrt(E) by default
 *   scores += float mask; scores[!bool mask] = -inf; causal: scores[s > l (+ S - L)] = -inf (kernels/causal.ts)
 *   P       = softmax(scores, over S)          a fully masked row gives P = 0 (output 0, never NaN)
 *   out     = dropout(P) V                     [N.., H, L, Ev]
 *
 * The flexible options (sliding windows, ALiBi, softcapping, sinks, documents, block masks; see
 * flexPlan.ts) enter the textbook form here as an explicit bias, mask or extra column (attentionLogits).
 *
 * Shape letters: N.. batch dims, H query heads, Hkv key/value heads (G = H / Hkv query heads share
 * one), L query length, S key length, E head dim, Ev value dim.
 */
import { type FloatDType, promote } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { type Generator, checkGenerator, defaultGenerator } from "../tensor/random.js";
import { broadcastShapes, sameShape } from "../tensor/shape.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { Tensor } from "../tensor/tensor.js";
import { add, cast, div, logicalAnd, logicalNot, maskedFill, mul, tanh } from "../ops/elementwise.js";
import { matmul } from "../ops/matmul.js";
import { concat, expand, reshape, slice, transpose, unsqueeze } from "../ops/shape.js";
import { softmax } from "../ops/softmax.js";
import { assertTensor } from "../ops/util.js";
import {
  type CausalAlignment, alibiBias, causalMask, checkAlignment, documentMask, windowMask,
} from "./masks.js";
import { dropoutBits, dropoutRowState, dropoutThreshold } from "../kernels/dropoutHash.js";
import { allocate } from "../tensor/dtype.js";
import { type FlexOptions, planFlex } from "./flexPlan.js";
import { fusedAttention, fusedAttentionInterleaved, fusedEligible, fusedWeightRows, interleavedEligible } from "./fused.js";
import type { HeadColumns, SdpaPlan } from "./plan.js";

export type { HeadColumns, SdpaPlan };

export interface SdpaOptions extends FlexOptions {
  /** broadcastable to [N.., H, L, S]; bool: true = may attend; float: added to the scores */
  attnMask?: Tensor | null;
  /** causal masking (top-left by default, as PyTorch); may be combined with attnMask */
  isCausal?: boolean;
  causalAlignment?: CausalAlignment;
  /** multiplies QKᵀ; default 1/sqrt(E) */
  scale?: number;
  /** dropout on the attention weights, in [0, 1) (applied whenever > 0, as PyTorch's function) */
  dropoutP?: number;
  /** H may be a multiple of Hkv: query head h reads key/value head floor(h / (H / Hkv)) */
  enableGqa?: boolean;
  /** draws the dropout seed (default: the global generator) */
  generator?: Generator;
  /** fixes the dropout mask directly (overrides generator) */
  dropoutSeed?: number;
  /**
   * How to compute it (as torch.nn.attention.sdpa_kernel picks a backend): "auto" (default) runs the
   * fused kernels (no [L, S] matrix; FlashAttention-2 style on the wasm backend) unless the call needs
   * the weights (a float attnMask that requires grad); "fused" insists on them (an error if it cannot);
   * "math" materialises the weights, the textbook path, for comparison.
   */
  implementation?: SdpaImplementation;
}

export type SdpaImplementation = "auto" | "fused" | "math";

export const SDPA_OPTION_KEYS = optionKeys<SdpaOptions>({
  attnMask: true, isCausal: true, causalAlignment: true, scale: true, dropoutP: true, enableGqa: true, generator: true,
  dropoutSeed: true, implementation: true,
  slidingWindow: true, alibiSlopes: true, softcap: true, sinks: true, documents: true, blockMask: true,
});

export function planSdpa(fn: string, query: Tensor, key: Tensor, value: Tensor, opts: SdpaOptions): SdpaPlan {
  assertTensor(fn, "query", query);
  assertTensor(fn, "key", key);
  assertTensor(fn, "value", value);
  return planOperands(fn, query, key, value, opts);
}

/** What planning reads of query, key and value: their shapes and dtypes (a tensor, or heads a layout describes). */
type Operand = Pick<Tensor, "shape" | "dtype" | "ndim">;

function planOperands(fn: string, query: Operand, key: Operand, value: Operand, opts: SdpaOptions): SdpaPlan {
  checkOptions(fn, "options", opts, SDPA_OPTION_KEYS);
  checkGenerator(fn, "generator", opts.generator);
  for (const [name, t] of [["query", query], ["key", key], ["value", value]] as const) {
    if (t.dtype !== "float32" && t.dtype !== "float64") throw new ArgumentError(`${fn}: ${name} must be float32 or float64, got ${t.dtype}`);
    if (t.ndim < 2) throw new ShapeError(`${fn}: ${name} must be at least 2-D ([L, E] unbatched or [N.., H, L, E]), got ${fmtShape(t.shape)}`);
  }
  const [L, E] = query.shape.slice(-2);
  const [S, Ek] = key.shape.slice(-2);
  const [Sv, Ev] = value.shape.slice(-2);
  if (Ek !== E) throw new ShapeError(`${fn}: query has head dim E = ${E} but key has ${Ek} (query ${fmtShape(query.shape)}, key ${fmtShape(key.shape)})`);
  if (Sv !== S) throw new ShapeError(`${fn}: key has S = ${S} positions but value has ${Sv} (key ${fmtShape(key.shape)}, value ${fmtShape(value.shape)})`);
  const gqa = opts.enableGqa === true;
  const hasHeads = query.ndim >= 3 && key.ndim >= 3 && value.ndim >= 3;
  const H = query.ndim >= 3 ? query.shape[query.ndim - 3] : 1;
  const Hkv = key.ndim >= 3 ? key.shape[key.ndim - 3] : 1;
  const Hv = value.ndim >= 3 ? value.shape[value.ndim - 3] : 1;
  let batch: number[];
  if (gqa) {
    if (!hasHeads) {
      throw new ShapeError(`${fn}: enableGqa needs a head dim: query, key and value must be [N.., H, L, E] (got ${fmtShape(query.shape)}, ${fmtShape(key.shape)}, ${fmtShape(value.shape)})`);
    }
    if (Hv !== Hkv) throw new ShapeError(`${fn}: key has ${Hkv} heads but value has ${Hv}; they must match`);
    if (Hkv === 0 || H % Hkv !== 0) {
      throw new ShapeError(`${fn}: query has ${H} heads and key has ${Hkv}; with enableGqa the query heads must be a multiple of the key heads`);
    }
    const nb = (t: Operand): number[] => t.shape.slice(0, -3);
    batch = broadcastShapes(fn, broadcastShapes(fn, nb(query), nb(key), "query's batch dims", "key's batch dims"), nb(value), "query/key batch dims", "value's batch dims");
  } else {
    if (hasHeads && H !== Hkv && Hkv !== 1 && H !== 1) {
      throw new ShapeError(`${fn}: query has ${H} heads and key has ${Hkv}; pass enableGqa: true for grouped-query attention (query heads a multiple of key heads)`);
    }
    const lead = (t: Operand): number[] => t.shape.slice(0, -2);
    const all = broadcastShapes(fn, broadcastShapes(fn, lead(query), lead(key), "query's leading dims", "key's leading dims"), lead(value), "query/key leading dims", "value's leading dims");
    batch = all.length > 0 && hasHeads ? all.slice(0, -1) : all;
  }
  const headDims = hasHeads ? [gqa ? H : broadcastShapes(fn, broadcastShapes(fn, [H], [Hkv]), [Hv])[0]] : [];
  const scoreShape = [...batch, ...headDims, L, S];

  let scale = 1 / Math.sqrt(E);
  if (opts.scale !== undefined && opts.scale !== null) {
    if (typeof opts.scale !== "number" || !Number.isFinite(opts.scale)) {
      throw new ArgumentError(`${fn}: scale must be a finite number, got ${String(opts.scale)}`);
    }
    scale = opts.scale;
  }
  const dropoutP = opts.dropoutP ?? 0;
  if (typeof dropoutP !== "number" || !(dropoutP >= 0 && dropoutP < 1)) {
    throw new ArgumentError(`${fn}: dropoutP must be in [0, 1), got ${String(dropoutP)}`);
  }
  if (opts.isCausal !== undefined && typeof opts.isCausal !== "boolean") {
    throw new ArgumentError(`${fn}: isCausal must be a boolean, got ${typeof opts.isCausal}`);
  }
  const alignment = checkAlignment(fn, opts.causalAlignment);
  let mask: Tensor | null = null;
  if (opts.attnMask !== undefined && opts.attnMask !== null) {
    const m = opts.attnMask;
    assertTensor(fn, "attnMask", m);
    if (m.dtype !== "bool" && m.dtype !== "float32" && m.dtype !== "float64") {
      throw new ArgumentError(`${fn}: attnMask must be bool (true = may attend) or float (added to the scores), got ${m.dtype}`);
    }
    let b: number[] | null = null;
    try {
      b = broadcastShapes(fn, m.shape, scoreShape);
    } catch {
      b = null;
    }
    if (b === null || !sameShape(b, scoreShape)) {
      throw new ShapeError(`${fn}: attnMask of shape ${fmtShape(m.shape)} does not broadcast to the attention scores' shape ${fmtShape(scoreShape)} ([N.., H, L, S])`);
    }
    mask = m;
  }
  const flex = planFlex(fn, opts, { batch, H: headDims[0] ?? 1, L, S });
  return {
    dtype: promote(query.dtype, promote(key.dtype, value.dtype)) as FloatDType,
    batch, H: headDims[0] ?? 1, Hkv: hasHeads ? Hkv : 1, L, S, E, Ev, hasHeads, gqa, scale,
    causal: opts.isCausal ? alignment : null, alignment, mask, dropoutP, scoreShape, ...flex,
  };
}

/** Scores with query heads grouped over shared key heads: [N.., Hkv, G, L, E] @ [N.., Hkv, 1, E, S]. */
function gqaScores(q: Tensor, k: Tensor, p: SdpaPlan): Tensor {
  const G = p.H / p.Hkv;
  const qg = reshape(q, [...q.shape.slice(0, -3), p.Hkv, G, p.L, p.E]); // [N.., H, L, E] -> [N.., Hkv, G, L, E]
  const kg = unsqueeze(k, -3); // [N.., Hkv, S, E] -> [N.., Hkv, 1, S, E]
  const s = matmul(qg, transpose(kg, -2, -1)); // [N.., Hkv, G, L, S]
  return reshape(s, p.scoreShape); // -> [N.., H, L, S]
}

/**
 * The scores whose softmax is the attention weights, [N.., H, L, S], with every option drawn out: the
 * ALiBi bias, the softcap, the float mask added; causality, the window, the documents, the block mask
 * and a bool mask as one bool mask (-inf where it is false); with sinks, one more column, the sink
 * logit of the row's head (its value is zero: applyWeights never sees it).
 */
function attentionLogits(query: Tensor, key: Tensor, p: SdpaPlan): Tensor {
  if (query.dtype !== p.dtype) query = cast(query, p.dtype);
  if (key.dtype !== p.dtype) key = cast(key, p.dtype);
  const { L, S } = p;
  const batchOnes = p.batch.map(() => 1);
  let scores = p.gqa ? gqaScores(query, key, p) : matmul(query, transpose(key, -2, -1)); // [N.., H, L, S]
  scores = mul(scores, p.scale);
  if (p.alibiSlopes) {
    const bias = cast(alibiBias(p.alibiSlopes, L, S, p.alignment), p.dtype); // [H, L, S]: -slope_h |l' - s|
    scores = add(scores, p.hasHeads ? bias : reshape(bias, [L, S]));
  }
  if (p.softcap !== null) scores = mul(tanh(div(scores, p.softcap)), p.softcap); // softcap · tanh(scores / softcap)
  let allowed: Tensor | null = p.causal ? causalMask(L, S, p.causal) : null;
  const restrict = (m: Tensor): void => { allowed = allowed ? logicalAnd(allowed, m) : m; };
  if (p.window) restrict(windowMask(L, S, [p.window.left, p.window.right], p.alignment));
  if (p.documents) {
    const ids = (d: Int32Array, n: number): Tensor => new Tensor(d, [...p.batch, n], "int32");
    const m = documentMask(ids(p.documents.query, L), ids(p.documents.key, S)); // [N.., L, S]
    restrict(p.hasHeads ? unsqueeze(m, -3) : m); // -> [N.., 1, L, S]
  }
  if (p.blockMask) {
    const bm = p.blockMask; // [batch, heads, L, S] -> [N.. (or 1s), heads, L, S]
    restrict(reshape(bm.toMask(), [...(bm.batch === 1 ? batchOnes : p.batch), ...(p.hasHeads ? [bm.heads] : []), L, S]));
  }
  if (p.mask) {
    if (p.mask.dtype === "bool") restrict(p.mask);
    else scores = add(scores, cast(p.mask, p.dtype));
  }
  if (allowed) scores = maskedFill(scores, logicalNot(allowed), -Infinity);
  if (p.sinks) {
    const sink = reshape(cast(p.sinks, p.dtype), p.hasHeads ? [p.H, 1, 1] : [1, 1]); // [H] -> [H, 1, 1]
    scores = concat([scores, expand(sink, [...p.scoreShape.slice(0, -1), 1])], -1); // [N.., H, L, S + 1]
  }
  return scores;
}

/** softmax over the logits' last dim, without the sink column (weights of a row with a sink sum to < 1). */
function weightsFromLogits(logits: Tensor, p: SdpaPlan): Tensor {
  const w = softmax(logits, -1);
  return p.sinks ? slice(w, -1, 0, p.S) : w;
}

/** The natural log of each row's softmax denominator (the sink included), -Infinity for a row that sees nothing. */
function rowLogSumExp(logits: Tensor): Float64Array {
  const n = logits.shape[logits.ndim - 1];
  const x = logits.values;
  const lse = new Float64Array(logits.shape.slice(0, -1).reduce((a, d) => a * d, 1)).fill(-Infinity);
  for (let r = 0; r < lse.length; r++) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = x[r * n + i] > m || Number.isNaN(x[r * n + i]) ? x[r * n + i] : m;
    if (m === -Infinity) continue;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.exp(x[r * n + i] - m);
    lse[r] = m + Math.log(sum);
  }
  return lse;
}

/** Which rows and heads attentionWeights returns (by default all). */
export interface AttentionWeightsOptions extends SdpaOptions {
  /** query positions start <= l < end */
  rows?: readonly [number, number];
  /** query heads, in this order */
  heads?: readonly number[];
}

/**
 * The attention weights P = softmax(mask(Q Kᵀ · scale)) [N.., H, L, S], before dropout: the picture
 * of who attends to whom. (The textbook form; scaledDotProductAttention uses it when weights are
 * needed.) With `rows` or `heads`, only those: [N.., heads.length, end - start, S], from the fused
 * path's statistics of just those rows (the weights are replayed tile by tile as exp(score - lse);
 * no L × S matrix for the other rows is formed). That form is not differentiable.
 */
export function attentionWeights(query: Tensor, key: Tensor, opts: AttentionWeightsOptions = {}, plan?: SdpaPlan): Tensor {
  const fn = "attentionWeights";
  const { rows, heads, ...rest } = opts ?? {};
  const p = plan ?? planSdpa(fn, query, key, key, rest);
  if (rows === undefined && heads === undefined) return weightsFromLogits(attentionLogits(query, key, p), p);
  const isIndex = (x: unknown, lo: number, hi: number): boolean => typeof x === "number" && Number.isInteger(x) && x >= lo && x <= hi;
  const [r0, r1] = rows ?? [0, p.L];
  if (!Array.isArray(rows ?? []) || (rows !== undefined && rows.length !== 2) || !isIndex(r0, 0, p.L) || !isIndex(r1, r0, p.L)) {
    throw new ArgumentError(`${fn}: rows must be [start, end] with 0 <= start <= end <= L = ${p.L}, got ${JSON.stringify(rows)}`);
  }
  const hs = heads ?? Array.from({ length: p.H }, (_, h) => h);
  if (!Array.isArray(hs) || hs.some((h) => !isIndex(h, 0, p.H - 1))) {
    throw new ArgumentError(`${fn}: heads must be an array of query head indices in [0, ${p.H - 1}], got ${JSON.stringify(heads)}`);
  }
  const w = fusedWeightRows(query, key, p, r0, r1, hs); // [N.., heads, R, S]
  return p.hasHeads || heads !== undefined ? w : reshape(w, [...p.batch, r1 - r0, p.S]);
}

/**
 * Dropout on attention weights with the counter-based mask of kernels/dropoutHash.ts: element
 * (row = flat index of (batch, head, l), col = s) is kept iff bits(seed, row, col) >= p * 2^32, so
 * the fused kernels can regenerate exactly the same mask.
 */
export function attentionDropout(weights: Tensor, p: number, seed: number): Tensor {
  if (p === 0) return weights;
  const S = weights.shape[weights.ndim - 1];
  const rows = S === 0 ? 0 : weights.size / S;
  const threshold = dropoutThreshold(p);
  const scale = 1 / (1 - p);
  const m = allocate(weights.dtype, weights.size);
  for (let r = 0; r < rows; r++) {
    const st = dropoutRowState(seed, r);
    for (let s = 0; s < S; s++) m[r * S + s] = dropoutBits(st, s) >= threshold ? scale : 0;
  }
  return mul(weights, new Tensor(m, weights.shape, weights.dtype));
}

/** out = P V, with grouped heads when enableGqa: [N.., Hkv, G, L, S] @ [N.., Hkv, 1, S, Ev]. */
function applyWeights(weights: Tensor, value: Tensor, p: SdpaPlan): Tensor {
  if (value.dtype !== p.dtype) value = cast(value, p.dtype);
  if (!p.gqa) return matmul(weights, value); // [N.., H, L, S] @ [N.., H, S, Ev]
  const G = p.H / p.Hkv;
  const wg = reshape(weights, [...weights.shape.slice(0, -3), p.Hkv, G, p.L, p.S]); // [N.., H, L, S] -> [N.., Hkv, G, L, S]
  const out = matmul(wg, unsqueeze(value, -3)); // [N.., Hkv, G, L, Ev]
  return reshape(out, [...weights.shape.slice(0, -3), p.H, p.L, p.Ev]); // -> [N.., H, L, Ev]
}

export function resolveDropoutSeed(opts: SdpaOptions): number {
  if (opts.dropoutSeed !== undefined) {
    if (!Number.isInteger(opts.dropoutSeed)) throw new ArgumentError(`scaledDotProductAttention: dropoutSeed must be an integer, got ${opts.dropoutSeed}`);
    return opts.dropoutSeed >>> 0;
  }
  return (opts.generator ?? defaultGenerator()).nextUint32();
}

/**
 * softmax(Q Kᵀ · scale + mask) V with PyTorch's semantics (see SdpaOptions), returning the output
 * and, for pictures, the attention weights (before dropout).
 */
export function scaledDotProductAttentionWithWeights(query: Tensor, key: Tensor, value: Tensor, opts: SdpaOptions = {}): [Tensor, Tensor] {
  const p = planSdpa("scaledDotProductAttentionWithWeights", query, key, value, opts);
  const weights = attentionWeights(query, key, opts, p);
  const dropped = p.dropoutP > 0 ? attentionDropout(weights, p.dropoutP, resolveDropoutSeed(opts)) : weights;
  return [applyWeights(dropped, value, p), weights];
}

/** The output, and the row log-sum-exp computed on demand, by the implementation the options pick. */
function runSdpa(fn: string, query: Tensor, key: Tensor, value: Tensor, opts: SdpaOptions): { p: SdpaPlan; out: Tensor; lse: () => Float64Array } {
  const p = planSdpa(fn, query, key, value, opts);
  const impl = opts.implementation ?? "auto";
  if (impl !== "auto" && impl !== "fused" && impl !== "math") {
    throw new ArgumentError(`${fn}: implementation must be "auto", "fused" or "math", got ${JSON.stringify(impl)}`);
  }
  if (impl !== "math") {
    if (fusedEligible(p)) {
      const { out, lse } = fusedAttention(query, key, value, p, p.dropoutP > 0 ? resolveDropoutSeed(opts) : 0);
      return { p, out, lse: () => lse };
    }
    if (impl === "fused") {
      throw new ArgumentError(`${fn}: implementation "fused" cannot ${p.mask?.requiresGrad ? "give a float attnMask a gradient (that needs the [L, S] weights); use \"auto\" or \"math\"" : "run on an empty input (a dim of size 0); use \"auto\""}`);
    }
  }
  const logits = attentionLogits(query, key, p);
  const weights = weightsFromLogits(logits, p);
  const dropped = p.dropoutP > 0 ? attentionDropout(weights, p.dropoutP, resolveDropoutSeed(opts)) : weights;
  return { p, out: applyWeights(dropped, value, p), lse: () => rowLogSumExp(logits) };
}

/** query [N.., H, L, E], key [N.., Hkv, S, E], value [N.., Hkv, S, Ev] -> [N.., H, L, Ev]. */
export function scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, opts: SdpaOptions = {}): Tensor {
  return runSdpa("scaledDotProductAttention", query, key, value, opts).out;
}

/**
 * scaledDotProductAttention on heads as the projections lay them out (HeadColumns: q [N, L, ..H·E..],
 * k [N, S, ..Hkv·E..], v [N, S, ..Hkv·Ev..]) -> [N, L, H·Ev], the heads merged: what
 *   mergeHeads(scaledDotProductAttention(splitHeads(q), splitHeads(k), splitHeads(v), opts))
 * computes, bit for bit, without the split and merge copies (fused.ts fusedAttentionInterleaved).
 * null where the fused kernels do not take the call (implementation "math", a float mask that wants a
 * gradient, dtypes that differ, ...): the caller then splits the heads and calls scaledDotProductAttention.
 */
export function scaledDotProductAttentionInterleaved(q: HeadColumns, k: HeadColumns, v: HeadColumns, opts: SdpaOptions = {}): Tensor | null {
  const fn = "scaledDotProductAttention";
  if ((opts.implementation ?? "auto") === "math") return null;
  const heads = (c: HeadColumns, T: number): Operand => ({ shape: [c.t.shape[0], c.heads, T, c.dim], dtype: c.t.dtype, ndim: 4 }); // [N, T, ..heads·D..] as [N, heads, T, D]
  const [L, S] = [q.t.shape[1], k.t.shape[1]];
  const p = planOperands(fn, heads(q, L), heads(k, S), heads(v, v.t.shape[1]), opts);
  if (!interleavedEligible(q, k, v, p)) return null;
  return fusedAttentionInterleaved(q, k, v, p, p.dropoutP > 0 ? resolveDropoutSeed(opts) : 0);
}

/**
 * scaledDotProductAttention and the log-sum-exp of each row's scores, lse [N.., H, L] (natural log
 * of the softmax denominator, the sink's term included; -Infinity for a row that sees no key and has
 * no sink), as FlashAttention returns it: weights are exp(score - lse). The output is differentiable,
 * lse is not.
 */
export function scaledDotProductAttentionWithLse(query: Tensor, key: Tensor, value: Tensor, opts: SdpaOptions = {}): [Tensor, Tensor] {
  const { p, out, lse } = runSdpa("scaledDotProductAttentionWithLse", query, key, value, opts);
  const data = lse();
  const shape = p.hasHeads ? [...p.batch, p.H, p.L] : [...p.batch, p.L];
  return [out, new Tensor(p.dtype === "float64" ? data : Float32Array.from(data), shape, p.dtype)];
}
