/**
 * Masks. Throughout this library a bool mask means true = may attend (PyTorch's
 * scaled_dot_product_attention convention); keyPaddingMask is the one exception, true = padding,
 * as in torch.nn.MultiheadAttention, because it names keys to drop.
 *
 *   causalMask(3, 5, "top-left")      causalMask(3, 5, "bottom-right")   windowMask(4, 4, [1, 0])
 *     1 0 0 0 0                          1 1 1 0 0                          1 0 0 0
 *     1 1 0 0 0                          1 1 1 1 0                          1 1 0 0
 *     1 1 1 0 0                          1 1 1 1 1                          0 1 1 0
 *                                                                           0 0 1 1
 *
 * The fused kernels never build these (they get each rule as parameters and skip hidden tiles); the
 * textbook path, which forms the [L, S] weights anyway, and pictures do.
 */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { broadcastShapes } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { expand } from "../ops/shape.js";
import { causalLimit, positionShift, visibleKeys } from "../kernels/causal.js";

export type CausalAlignment = "top-left" | "bottom-right";

export function checkAlignment(fn: string, a: unknown): CausalAlignment {
  if (a === undefined) return "top-left";
  if (a !== "top-left" && a !== "bottom-right") {
    throw new ArgumentError(`${fn}: causalAlignment must be "top-left" or "bottom-right", got ${JSON.stringify(a)}`);
  }
  return a;
}

/**
 * [L, S] bool, true = may attend: the causal rule of kernels/causal.ts drawn out. top-left: query l
 * sees keys s <= l (PyTorch's is_causal); bottom-right: the last query lines up with the last key,
 * s <= l + (S - L) (a query appended to a KV cache sees every cached key). isCausal never builds it
 * on the fused path (the kernels get the rule as a flag and skip hidden tiles); the textbook path,
 * which forms the weights anyway, and pictures do.
 */
export function causalMask(L: number, S: number, alignment: CausalAlignment = "top-left"): Tensor {
  checkLengths("causalMask", L, S);
  checkAlignment("causalMask", alignment);
  const m = new Uint8Array(L * S);
  for (let l = 0; l < L; l++) {
    const limit = causalLimit(alignment, l, L, S);
    for (let s = 0; s <= limit; s++) m[l * S + s] = 1;
  }
  return new Tensor(m, [L, S], "bool");
}

/**
 * A key padding mask from sequence lengths: [N, S] bool, true where position s >= lengths[n]
 * (padding), ready for keyPaddingMask.
 */
export function paddingMask(lengths: readonly number[], S: number): Tensor {
  const m = new Uint8Array(lengths.length * S);
  lengths.forEach((len, n) => {
    if (!Number.isInteger(len) || len < 0 || len > S) {
      throw new ArgumentError(`paddingMask: lengths[${n}] = ${len} must be an integer in [0, ${S}]`);
    }
    for (let s = len; s < S; s++) m[n * S + s] = 1;
  });
  return new Tensor(m, [lengths.length, S], "bool");
}

/** A sliding window as [left, right]: a number w is [w - 1, 0] (w keys up to and including the query's own). */
export type SlidingWindow = number | readonly [number, number];

/** [left, right] of a sliding window, or an ArgumentError naming fn (sides: non-negative integers or Infinity). */
export function checkWindow(fn: string, w: unknown): [number, number] {
  const side = (x: unknown): boolean => typeof x === "number" && x >= 0 && (Number.isInteger(x) || x === Infinity);
  if (typeof w === "number" && Number.isInteger(w) && w >= 1) return [w - 1, 0];
  if (Array.isArray(w) && w.length === 2 && side(w[0]) && side(w[1])) return [w[0] as number, w[1] as number];
  const show = (x: unknown): string => (typeof x === "string" ? JSON.stringify(x) : String(x)); // "4" shows as "4", not 4
  const seen = Array.isArray(w) ? `[${w.map(show).join(", ")}]` : show(w);
  throw new ArgumentError(
    `${fn}: slidingWindow must be a positive integer w (the query's own key and the w - 1 before it) or [left, right] with non-negative integer sides (or Infinity), got ${seen}`,
  );
}

/**
 * [L, S] bool, true = may attend: query l sees keys l' - left .. l' + right, l' = l shifted by the
 * alignment (top-left: l' = l; bottom-right: l' = l + S - L), the rule of kernels/causal.ts.
 */
export function windowMask(L: number, S: number, window: SlidingWindow, alignment: CausalAlignment = "top-left"): Tensor {
  checkLengths("windowMask", L, S);
  const [left, right] = checkWindow("windowMask", window);
  checkAlignment("windowMask", alignment);
  const m = new Uint8Array(L * S);
  for (let l = 0; l < L; l++) {
    const [first, last] = visibleKeys("none", alignment, { left, right }, l, L, S);
    for (let s = Math.max(0, first); s <= last; s++) m[l * S + s] = 1;
  }
  return new Tensor(m, [L, S], "bool");
}

/**
 * Document masking for packed sequences: query ids [N.., L] and key ids [N.., S] (int32; the batch
 * dims broadcast) -> [N.., L, S] bool, true where query l and key s belong to the same document.
 */
export function documentMask(queryIds: Tensor, keyIds: Tensor): Tensor {
  const fn = "documentMask";
  for (const [name, t] of [["queryIds", queryIds], ["keyIds", keyIds]] as const) {
    if (!(t instanceof Tensor)) throw new ArgumentError(`${fn}: ${name} must be a Tensor`);
    if (t.dtype !== "int32") throw new ArgumentError(`${fn}: ${name} must be int32 document ids, got ${t.dtype}`);
    if (t.ndim < 1) throw new ShapeError(`${fn}: ${name} must be at least 1-D ([N.., L] or [N.., S]), got ${fmtShape(t.shape)}`);
  }
  const L = queryIds.shape[queryIds.ndim - 1], S = keyIds.shape[keyIds.ndim - 1];
  const batch = broadcastShapes(fn, queryIds.shape.slice(0, -1), keyIds.shape.slice(0, -1), "queryIds' batch dims", "keyIds' batch dims");
  const q = expand(queryIds, [...batch, L]).values, k = expand(keyIds, [...batch, S]).values;
  const B = batch.reduce((a, b) => a * b, 1);
  const m = new Uint8Array(B * L * S);
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) for (let s = 0; s < S; s++) m[(b * L + l) * S + s] = q[b * L + l] === k[b * S + s] ? 1 : 0;
  }
  return new Tensor(m, [...batch, L, S], "bool");
}

/**
 * The ALiBi slopes of Press et al. for H heads: for H a power of 2, 2^(-8/H), 2^(-16/H), ..., 2^(-8);
 * otherwise those of the power of 2 just below H, then every other slope of twice that power, as the
 * paper's reference code (get_slopes) does.
 */
export function defaultAlibiSlopes(H: number): number[] {
  if (!Number.isInteger(H) || H < 1) throw new ArgumentError(`defaultAlibiSlopes: H must be a positive integer, got ${String(H)}`);
  const powerOf2 = (n: number): number[] => {
    const start = 2 ** -(2 ** -(Math.log2(n) - 3)); // 2^(-8/n)
    return Array.from({ length: n }, (_, i) => start * start ** i);
  };
  if (Number.isInteger(Math.log2(H))) return powerOf2(H);
  const closest = 2 ** Math.floor(Math.log2(H));
  return [...powerOf2(closest), ...defaultAlibiSlopes(2 * closest).filter((_, i) => i % 2 === 0).slice(0, H - closest)];
}

/**
 * The ALiBi bias [H, L, S] (float64): -slopes[h] * |l' - s|, l' the query's position among the keys
 * (as windowMask), added to the scaled scores.
 */
export function alibiBias(slopes: readonly number[] | Float64Array, L: number, S: number, alignment: CausalAlignment = "top-left"): Tensor {
  checkLengths("alibiBias", L, S);
  checkAlignment("alibiBias", alignment);
  const H = slopes.length, shift = positionShift(alignment, L, S);
  const m = new Float64Array(H * L * S);
  for (let h = 0; h < H; h++) {
    for (let l = 0; l < L; l++) for (let s = 0; s < S; s++) m[(h * L + l) * S + s] = -slopes[h] * Math.abs(l + shift - s);
  }
  return new Tensor(m, [H, L, S], "float64");
}

/**
 * The ALiBi bias at given token positions, for keys that are not consecutive positions (a streaming
 * KV cache's sinks, then its last window): queryPositions [R, L] and keyPositions [R, S] (int32) ->
 * [R, H, L, S] float64, -slopes[h] · |queryPositions[r, l] - keyPositions[r, s]|. alibiBias is the
 * case queryPositions = l' (l shifted by the alignment), keyPositions = s.
 */
export function alibiBiasAt(slopes: readonly number[] | Float64Array, queryPositions: Tensor, keyPositions: Tensor): Tensor {
  const fn = "alibiBiasAt";
  for (const [name, t] of [["queryPositions", queryPositions], ["keyPositions", keyPositions]] as const) {
    if (!(t instanceof Tensor) || t.dtype !== "int32" || t.ndim !== 2) {
      throw new ArgumentError(`${fn}: ${name} must be an int32 Tensor [R, ${name === "queryPositions" ? "L" : "S"}] of token positions, got ${t instanceof Tensor ? `${t.dtype} ${fmtShape(t.shape)}` : typeof t}`);
    }
  }
  const [R, L] = queryPositions.shape, S = keyPositions.shape[1];
  if (keyPositions.shape[0] !== R) throw new ShapeError(`${fn}: queryPositions ${fmtShape(queryPositions.shape)} and keyPositions ${fmtShape(keyPositions.shape)} must have the same rows R`);
  const H = slopes.length, qp = queryPositions.values, kp = keyPositions.values;
  const m = new Float64Array(R * H * L * S);
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < H; h++) {
      for (let l = 0; l < L; l++) {
        const row = ((r * H + h) * L + l) * S;
        for (let s = 0; s < S; s++) m[row + s] = -slopes[h] * Math.abs(qp[r * L + l] - kp[r * S + s]);
      }
    }
  }
  return new Tensor(m, [R, H, L, S], "float64");
}

function checkLengths(fn: string, L: number, S: number): void {
  for (const [name, v] of [["L", L], ["S", S]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new ArgumentError(`${fn}: ${name} must be a non-negative integer, got ${v}`);
  }
}
