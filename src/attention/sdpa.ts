/**
 * Scaled dot-product attention, the soft lookup table: every value is poured in, in proportion to
 * how well its key matches the query (softmax of the scaled dot products).
 *
 *   scores  = Q Kᵀ · scale                     [N.., H, L, S]   scale = 1/sqrt(E) by default
 *   scores += float mask; scores[!bool mask] = -inf; causal: scores[s > l (+ S - L)] = -inf (kernels/causal.ts)
 *   P       = softmax(scores, over S)          a fully masked row gives P = 0 (output 0, never NaN)
 *   out     = dropout(P) V                     [N.., H, L, Ev]
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
import { add, cast, logicalAnd, logicalNot, maskedFill, mul } from "../ops/elementwise.js";
import { matmul } from "../ops/matmul.js";
import { reshape, transpose, unsqueeze } from "../ops/shape.js";
import { softmax } from "../ops/softmax.js";
import { assertTensor } from "../ops/util.js";
import { type CausalAlignment, causalMask, checkAlignment } from "./masks.js";
import { dropoutBits, dropoutRowState, dropoutThreshold } from "../kernels/dropoutHash.js";
import { allocate } from "../tensor/dtype.js";
import { fusedAttention, fusedEligible } from "./fused.js";
import type { SdpaPlan } from "./plan.js";

export type { SdpaPlan };

export interface SdpaOptions {
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
});

export function planSdpa(fn: string, query: Tensor, key: Tensor, value: Tensor, opts: SdpaOptions): SdpaPlan {
  assertTensor(fn, "query", query);
  assertTensor(fn, "key", key);
  assertTensor(fn, "value", value);
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
    const nb = (t: Tensor): number[] => t.shape.slice(0, -3);
    batch = broadcastShapes(fn, broadcastShapes(fn, nb(query), nb(key), "query's batch dims", "key's batch dims"), nb(value), "query/key batch dims", "value's batch dims");
  } else {
    if (hasHeads && H !== Hkv && Hkv !== 1 && H !== 1) {
      throw new ShapeError(`${fn}: query has ${H} heads and key has ${Hkv}; pass enableGqa: true for grouped-query attention (query heads a multiple of key heads)`);
    }
    const lead = (t: Tensor): number[] => t.shape.slice(0, -2);
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
  return {
    dtype: promote(query.dtype, promote(key.dtype, value.dtype)) as FloatDType,
    batch, H: headDims[0] ?? 1, Hkv: hasHeads ? Hkv : 1, L, S, E, Ev, hasHeads, gqa, scale,
    causal: opts.isCausal ? alignment : null, mask, dropoutP, scoreShape,
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
 * The attention weights P = softmax(mask(Q Kᵀ · scale)) [N.., H, L, S], before dropout: the picture
 * of who attends to whom. (The textbook form; scaledDotProductAttention uses it when weights are
 * needed.)
 */
export function attentionWeights(query: Tensor, key: Tensor, opts: SdpaOptions = {}, plan?: SdpaPlan): Tensor {
  const p = plan ?? planSdpa("attentionWeights", query, key, key, opts);
  if (query.dtype !== p.dtype) query = cast(query, p.dtype);
  if (key.dtype !== p.dtype) key = cast(key, p.dtype);
  let scores = p.gqa ? gqaScores(query, key, p) : matmul(query, transpose(key, -2, -1)); // [N.., H, L, S]
  scores = mul(scores, p.scale);
  let allowed: Tensor | null = p.causal ? causalMask(p.L, p.S, p.causal) : null;
  if (p.mask) {
    if (p.mask.dtype === "bool") allowed = allowed ? logicalAnd(allowed, p.mask) : p.mask;
    else scores = add(scores, cast(p.mask, p.dtype));
  }
  if (allowed) scores = maskedFill(scores, logicalNot(allowed), -Infinity);
  return softmax(scores, -1);
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

/** query [N.., H, L, E], key [N.., Hkv, S, E], value [N.., Hkv, S, Ev] -> [N.., H, L, Ev]. */
export function scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, opts: SdpaOptions = {}): Tensor {
  const fn = "scaledDotProductAttention";
  const p = planSdpa(fn, query, key, value, opts);
  const impl = opts.implementation ?? "auto";
  if (impl !== "auto" && impl !== "fused" && impl !== "math") {
    throw new ArgumentError(`${fn}: implementation must be "auto", "fused" or "math", got ${JSON.stringify(impl)}`);
  }
  if (impl !== "math") {
    if (fusedEligible(p)) return fusedAttention(query, key, value, p, p.dropoutP > 0 ? resolveDropoutSeed(opts) : 0);
    if (impl === "fused") {
      throw new ArgumentError(`${fn}: implementation "fused" cannot ${p.mask?.requiresGrad ? "give a float attnMask a gradient (that needs the [L, S] weights); use \"auto\" or \"math\"" : "run on an empty input (a dim of size 0); use \"auto\""}`);
    }
  }
  const weights = attentionWeights(query, key, opts, p);
  const dropped = p.dropoutP > 0 ? attentionDropout(weights, p.dropoutP, resolveDropoutSeed(opts)) : weights;
  return applyWeights(dropped, value, p);
}
