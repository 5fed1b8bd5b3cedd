/**
 * The PyTorch side of the attention modules (attentionCore.ts): torch.nn.MultiheadAttention.forward's
 * input layouts ([L, N, C], [N, L, C] with batchFirst, [L, C] unbatched), its forward options, and its
 * masks (keyPaddingMask, attnMask, isCausal) turned into scaledDotProductAttention's options.
 */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { full } from "../tensor/creation.js";
import { add, cast, logicalAnd, logicalNot, where } from "../ops/elementwise.js";
import { checkOptions } from "../tensor/validate.js";
import { concat, reshape, squeeze, transpose, unsqueeze } from "../ops/shape.js";
import { mean } from "../ops/reduce.js";
import { assertTensor } from "../ops/util.js";
import { type CausalAlignment, causalMask, checkAlignment } from "./masks.js";
import { KVCacheLayer } from "./kvcache.js";

export interface AttentionForwardOptions {
  /** [N, S] (or [S] unbatched): true (or a float added to the scores) where a key is padding */
  keyPaddingMask?: Tensor | null;
  /** return the attention weights (default true) */
  needWeights?: boolean;
  /** [L, S], [N*H, L, S], or broadcastable to [N, H, L, S]; bool: true = may attend; float: added */
  attnMask?: Tensor | null;
  /** average the weights over heads (default true): [N, L, S] instead of [N, H, L, S] */
  averageAttnWeights?: boolean;
  /** causal masking without building a mask (top-left, or bottom-right with a cache) */
  isCausal?: boolean;
  /**
   * where the causal diagonal sits when L != S: "top-left" (PyTorch's default, the default here) or
   * "bottom-right" (the last query sees every key; the default when a cache is given)
   */
  causalAlignment?: CausalAlignment;
  /**
   * decode with a KV cache: only the new tokens are passed as query/key/value; their keys and values
   * are appended to this layer's cache and the queries attend over everything cached. A "cross"
   * layer is filled on the first call and reused after (key/value are then not projected again).
   * keyPaddingMask and attnMask must then cover all cached positions.
   */
  cache?: KVCacheLayer | null;
}

export interface Inputs {
  /** [N, L, C] */
  q: Tensor;
  /** [N, S, Ck] */
  k: Tensor;
  /** [N, S, Cv] */
  v: Tensor;
  unbatched: boolean;
  N: number;
  L: number;
  S: number;
}

/** Validate and bring query/key/value to batch-first [N, T, C]. */
export function toBatchFirst(
  fn: string, query: Tensor, key: Tensor, value: Tensor, batchFirst: boolean, dims: { embed: number; kdim: number; vdim: number },
): Inputs {
  assertTensor(fn, "query", query);
  assertTensor(fn, "key", key);
  assertTensor(fn, "value", value);
  const rank = query.ndim;
  for (const [name, t, c] of [["query", query, dims.embed], ["key", key, dims.kdim], ["value", value, dims.vdim]] as const) {
    if (t.dtype !== "float32" && t.dtype !== "float64") throw new ArgumentError(`${fn}: ${name} must be float32 or float64, got ${t.dtype}`);
    if (t.ndim !== 2 && t.ndim !== 3) {
      throw new ShapeError(`${fn}: ${name} must be 3-D (${batchFirst ? "[N, T, C]" : "[T, N, C]"}) or 2-D unbatched [T, C], got ${fmtShape(t.shape)}`);
    }
    if (t.ndim !== rank) throw new ShapeError(`${fn}: query is ${rank}-D but ${name} is ${t.ndim}-D (${fmtShape(t.shape)}); all three must be batched or all unbatched`);
    if (t.shape[t.ndim - 1] !== c) throw new ShapeError(`${fn}: ${name} has ${t.shape[t.ndim - 1]} features (shape ${fmtShape(t.shape)}), expected ${c}`);
  }
  const unbatched = rank === 2;
  const norm = (t: Tensor): Tensor => (unbatched ? unsqueeze(t, 0) : batchFirst ? t : transpose(t, 0, 1)); // -> [N, T, C]
  const q = norm(query);
  const k = key === query ? q : norm(key); // self-attention keeps one tensor (projectSelf looks for it)
  const v = value === query ? q : value === key ? k : norm(value);
  if (k.shape[0] !== q.shape[0] || v.shape[0] !== q.shape[0]) {
    throw new ShapeError(`${fn}: batch sizes differ: query ${q.shape[0]}, key ${k.shape[0]}, value ${v.shape[0]} (batchFirst = ${batchFirst})`);
  }
  if (k.shape[1] !== v.shape[1]) throw new ShapeError(`${fn}: key has ${k.shape[1]} positions but value has ${v.shape[1]}`);
  return { q, k, v, unbatched, N: q.shape[0], L: q.shape[1], S: k.shape[1] };
}

/** What sdpaMasks hands to scaledDotProductAttention. */
export interface SdpaMasks {
  /** broadcastable to [N, H, L, S + extra]; null when no mask is needed */
  attnMask: Tensor | null;
  isCausal: boolean;
  causalAlignment: CausalAlignment;
}

/**
 * torch.nn.MultiheadAttention's masks as scaledDotProductAttention's options. Causality stays a flag
 * (the kernels skip what it hides and nothing L x S is built); keyPaddingMask becomes a [N, 1, 1, S]
 * bool (true = may attend) that broadcasts over heads and queries; attnMask [L, S] or [N*H, L, S] is
 * read as [N, H, L, S]. Two masks are combined into one: bool when both are bool, else float (bool
 * parts become 0 / -inf). `extra` key columns appended by addBiasKv / addZeroAttn are always
 * attendable; the causal rule cannot say so, so only then is it drawn out as a mask (as PyTorch does).
 */
export function sdpaMasks(fn: string, opts: AttentionForwardOptions, inp: Inputs, S: number, H: number, extra: number): SdpaMasks {
  const { N, L, unbatched } = inp;
  const causalAlignment = opts.causalAlignment ?? (opts.cache ? "bottom-right" : "top-left"); // a cache's new queries come last
  let isCausal = opts.isCausal ?? false;
  const allowed: Tensor[] = [];
  const added: Tensor[] = [];
  const put = (m: Tensor): void => void (m.dtype === "bool" ? allowed.push(m) : added.push(m));
  const kinds = (m: Tensor, name: string): void => {
    assertTensor(fn, name, m);
    if (m.dtype !== "bool" && m.dtype !== "float32" && m.dtype !== "float64") {
      throw new ArgumentError(`${fn}: ${name} must be bool or float, got ${m.dtype}`);
    }
  };
  if (opts.attnMask) {
    const m = opts.attnMask;
    kinds(m, "attnMask");
    const want = `[L, S] = [${L}, ${S}], [N*H, L, S] = [${N * H}, ${L}, ${S}] or broadcastable to [N, H, L, S] = [${N}, ${H}, ${L}, ${S}]`;
    let m4: Tensor;
    if (m.ndim === 2 && m.shape[0] === L && m.shape[1] === S) m4 = m;
    else if (m.ndim === 3 && m.shape[0] === N * H && m.shape[1] === L && m.shape[2] === S) m4 = reshape(m, [N, H, L, S]); // [N*H, L, S] -> [N, H, L, S]
    else if (m.ndim === 4 && m.shape.every((d, i) => d === 1 || d === [N, H, L, S][i])) m4 = m;
    else throw new ShapeError(`${fn}: attnMask has shape ${fmtShape(m.shape)}, expected ${want}`);
    put(m4);
  }
  if (opts.keyPaddingMask) {
    const m = opts.keyPaddingMask;
    kinds(m, "keyPaddingMask");
    const ok = unbatched ? m.ndim === 1 && m.shape[0] === S : m.ndim === 2 && m.shape[0] === N && m.shape[1] === S;
    if (!ok) throw new ShapeError(`${fn}: keyPaddingMask has shape ${fmtShape(m.shape)}, expected ${unbatched ? `[S] = [${S}]` : `[N, S] = [${N}, ${S}]`}`);
    const m4 = reshape(m, [N, 1, 1, S]); // [N, S] -> [N, 1, 1, S]
    put(m4.dtype === "bool" ? logicalNot(m4) : m4); // padding -> not allowed
  }
  if (isCausal && extra > 0) {
    put(causalMask(L, S, causalAlignment)); // [L, S]
    isCausal = false;
  }
  if (allowed.length === 0 && added.length === 0) return { attnMask: null, isCausal, causalAlignment };
  let mask: Tensor;
  const allow = allowed.length > 0 ? allowed.reduce((a, b) => logicalAnd(a, b)) : null;
  if (added.length === 0) mask = allow!;
  else {
    const dtype = added.some((m) => m.dtype === "float64") ? "float64" : "float32";
    mask = added.map((m) => cast(m, dtype)).reduce((a, b) => add(a, b));
    if (allow) mask = where(allow, mask, -Infinity);
  }
  if (extra > 0) {
    const pad = full([...mask.shape.slice(0, -1), extra], mask.dtype === "bool" ? 1 : 0, { dtype: mask.dtype });
    mask = concat([mask, pad], -1); // [.., S] -> [.., S + extra]
  }
  return { attnMask: mask, isCausal, causalAlignment };
}

/** [N, L, C] back to the caller's layout. */
export function fromBatchFirst(out: Tensor, inp: Inputs, batchFirst: boolean): Tensor {
  if (inp.unbatched) return squeeze(out, 0);
  return batchFirst ? out : transpose(out, 0, 1);
}

/** Weights [N, H, L, S] -> [N, L, S] averaged (or as is), unbatched without N. */
export function shapeWeights(w: Tensor, inp: Inputs, average: boolean): Tensor {
  const out = average ? mean(w, 1) : w;
  return inp.unbatched ? squeeze(out, 0) : out;
}

const FORWARD_OPTIONS = ["keyPaddingMask", "needWeights", "attnMask", "averageAttnWeights", "isCausal", "causalAlignment", "cache"] as const;

export function checkForwardOptions(fn: string, opts: AttentionForwardOptions): void {
  checkOptions(fn, "opts", opts, FORWARD_OPTIONS);
  for (const k of ["needWeights", "averageAttnWeights", "isCausal"] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== "boolean") throw new ArgumentError(`${fn}: ${k} must be a boolean, got ${typeof opts[k]}`);
  }
  if (opts.causalAlignment !== undefined) checkAlignment(fn, opts.causalAlignment);
  if (opts.cache !== undefined && opts.cache !== null && !(opts.cache instanceof KVCacheLayer)) {
    throw new ArgumentError(`${fn}: cache must be a KVCacheLayer (kvCache.layer(i) or kvCache.cross(i)), got ${typeof opts.cache}`);
  }
}
