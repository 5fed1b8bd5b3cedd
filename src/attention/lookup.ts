/**
 * The lookup table: the simplest attention block. Each query picks ONE value, the one whose key
 * matches it, like a dictionary lookup:
 *   out[l] = value[i*],   i* = first i with key[i] == query[l]         (match: "exact")
 *                         i* = argmax_i query[l] · key[i]               (match: "nearest")
 * The choice of i* is an indicator function of query and key: piecewise constant, so its derivative
 * is 0 almost everywhere. Gradients reach the selected value rows only; query and key receive
 * gradients of exactly zero, which is why a lookup table cannot learn what to look for (and why
 * softmax attention, its smooth version, can).
 */
import { allocate, promote } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { broadcastShapes, broadcastStrides, sizeOf } from "../tensor/shape.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { Tensor } from "../tensor/tensor.js";
import { cast } from "../ops/elementwise.js";
import { assertFloat, assertTensor, result } from "../ops/util.js";
import { unbroadcast } from "../ops/broadcast.js";

export interface LookupOptions {
  match?: "exact" | "nearest";
  /** "exact" only: a key matches when every |key - query| <= tolerance (default 0) */
  tolerance?: number;
}
export const LOOKUP_OPTION_KEYS = optionKeys<LookupOptions>({ match: true, tolerance: true });

/** For each query row, the index of the chosen key row (-1 = no match). */
function choose(q: Float64Array | Float32Array, qo: number, k: Float64Array | Float32Array, ko: number, S: number, E: number, exact: boolean, tol: number): number {
  if (exact) {
    for (let i = 0; i < S; i++) {
      let ok = true;
      for (let e = 0; e < E && ok; e++) if (!(Math.abs(k[ko + i * E + e] - q[qo + e]) <= tol)) ok = false;
      if (ok) return i;
    }
    return -1;
  }
  let best = -1;
  let bestDot = -Infinity;
  for (let i = 0; i < S; i++) {
    let dot = 0;
    for (let e = 0; e < E; e++) dot += q[qo + e] * k[ko + i * E + e];
    if (dot > bestDot || best === -1) {
      bestDot = dot;
      best = i;
    }
  }
  return best;
}

/** query [.., L, E], key [.., S, E], value [.., S, Ev] -> [.., L, Ev] (batch dims broadcast). */
export function lookupAttention(query: Tensor, key: Tensor, value: Tensor, opts: LookupOptions = {}): Tensor {
  const fn = "lookupAttention";
  checkOptions(fn, "options", opts, LOOKUP_OPTION_KEYS);
  assertTensor(fn, "query", query);
  assertTensor(fn, "key", key);
  assertTensor(fn, "value", value);
  for (const [name, t] of [["query", query], ["key", key], ["value", value]] as const) {
    assertFloat(fn, name, t);
    if (t.ndim < 2) throw new ShapeError(`${fn}: ${name} must have at least 2 dims [.., rows, features], got ${fmtShape(t.shape)}`);
  }
  const match = opts.match ?? "exact";
  if (match !== "exact" && match !== "nearest") throw new ArgumentError(`${fn}: match must be "exact" or "nearest", got ${JSON.stringify(match)}`);
  const tol = opts.tolerance ?? 0;
  if (typeof tol !== "number" || !(tol >= 0)) throw new ArgumentError(`${fn}: tolerance must be a non-negative number, got ${tol}`);
  if (opts.tolerance !== undefined && match === "nearest") throw new ArgumentError(`${fn}: tolerance applies to match "exact" only`);
  const [L, E] = query.shape.slice(-2);
  const [S, Ek] = key.shape.slice(-2);
  const [Sv, Ev] = value.shape.slice(-2);
  if (Ek !== E) throw new ShapeError(`${fn}: query rows have ${E} features but key rows have ${Ek} (query ${fmtShape(query.shape)}, key ${fmtShape(key.shape)})`);
  if (Sv !== S) throw new ShapeError(`${fn}: key has ${S} rows but value has ${Sv} (key ${fmtShape(key.shape)}, value ${fmtShape(value.shape)})`);
  const qb = query.shape.slice(0, -2);
  const kb = key.shape.slice(0, -2);
  const vb = value.shape.slice(0, -2);
  const batch = broadcastShapes(fn, broadcastShapes(fn, qb, kb, "query's batch dims", "key's batch dims"), vb, "query/key batch dims", "value's batch dims");
  const nb = sizeOf(batch);
  const [sq, sk, sv] = [qb, kb, vb].map((b) => broadcastStrides(b, batch));
  const dtype = promote(query.dtype, promote(key.dtype, value.dtype));
  const out = allocate(dtype, nb * L * Ev);
  const chosen = new Int32Array(nb * L); // flat row of value per output row, -1 = zero row
  const idx = new Array<number>(batch.length).fill(0);
  for (let b = 0; b < nb; b++) {
    let qo = 0, ko = 0, vo = 0;
    for (let d = 0; d < batch.length; d++) {
      qo += idx[d] * sq[d];
      ko += idx[d] * sk[d];
      vo += idx[d] * sv[d];
    }
    for (let l = 0; l < L; l++) {
      const i = choose(query.values as Float64Array, (qo * L + l) * E, key.values as Float64Array, ko * S * E, S, E, match === "exact", tol);
      const row = i < 0 ? -1 : vo * S + i;
      chosen[b * L + l] = row;
      if (row >= 0) for (let e = 0; e < Ev; e++) out[(b * L + l) * Ev + e] = value.values[row * Ev + e];
    }
    for (let d = batch.length - 1; d >= 0; d--) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  return result(fn, out, [...batch, L, Ev], dtype, [query, key, value], (g) => {
    // d out[l] / d value[i*] = identity; d out / d query = d out / d key = 0 (indicator function).
    const gv = allocate(g.dtype, sizeOf(vb) * S * Ev);
    for (let r = 0; r < chosen.length; r++) {
      const row = chosen[r];
      if (row < 0) continue;
      for (let e = 0; e < Ev; e++) gv[row * Ev + e] += g.values[r * Ev + e];
    }
    const zq = allocate(query.dtype, query.size);
    const zk = allocate(key.dtype, key.size);
    const gValue = unbroadcast(new Tensor(gv, value.shape, g.dtype), value.shape);
    return [new Tensor(zq, query.shape, query.dtype), new Tensor(zk, key.shape, key.dtype), cast(gValue, value.dtype)];
  });
}
