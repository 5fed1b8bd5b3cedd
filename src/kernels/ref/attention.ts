/**
 * The readable reference of the fused attention kernels: plain loops, one query row at a time, in
 * float64 arithmetic whatever the storage type (Float32Array or Float64Array).
 *
 * Forward, for every (b, h, l):
 *   score[s] = scale * (q[l] . k[s]) + mask[b,h,l,s]      (-Infinity where masked or hidden by causality)
 *   m = max_s score[s];  p[s] = exp(score[s] - m);  sum = sum_s p[s];  lse = m + log(sum)
 *   out[l] = (1 / sum) * sum_s drop(p[s]) * v[s]          drop(x) = keep ? x / (1 - dropoutP) : 0
 * A row that sees no key (m = -Infinity) gets out = 0 and lse = -Infinity.
 *
 * Backward (FlashAttention identities), with P[s] = exp(score[s] - lse) recomputed from the saved lse:
 *   dPd[s] = dO[l] . v[s]      dP[s] = keep ? dPd[s] / (1 - p) : 0      D = dO[l] . out[l]
 *   dS[s]  = P[s] * (dP[s] - D)
 *   dq[l] += scale * sum_s dS[s] k[s];  dk[s] += scale * dS[s] q[l];  dv[s] += drop(P[s]) dO[l]
 */
import type { FloatArray } from "../../tensor/dtype.js";
import type { AttentionParams } from "../backend.js";
import { causalLimit as causalRule } from "../causal.js";
import { dropoutBits, dropoutRowState, dropoutThreshold } from "../dropoutHash.js";

/** The key range a query row may see: keys s with s <= limit (the rule of ../causal.ts). */
export function causalLimit(p: AttentionParams, l: number): number {
  return causalRule(p.causal, l, p.L, p.S);
}

/** Additive mask value for (b, h, l, s): 0 or -Infinity for a bool mask (true = attend), the value for a float mask. */
export function maskValue(p: AttentionParams, b: number, h: number, l: number, s: number): number {
  const mk = p.mask;
  if (mk === null) return 0;
  const [sb, sh, sl, ss] = mk.strides;
  const x = mk.data[b * sb + h * sh + l * sl + s * ss];
  if (mk.kind === "bool") return x ? 0 : -Infinity;
  return x;
}

/** Fills `score` (length S) with the masked, scaled scores of row (b, h, l); returns their maximum. */
function scoreRow(
  p: AttentionParams, q: FloatArray, k: FloatArray, b: number, h: number, l: number, score: Float64Array,
): number {
  const { H, Hkv, L, S, E, scale } = p;
  const kvh = Math.floor(h / (H / Hkv));
  const qOff = ((b * H + h) * L + l) * E;
  const kBase = (b * Hkv + kvh) * S * E;
  const lim = causalLimit(p, l);
  let m = -Infinity;
  for (let s = 0; s < S; s++) {
    let x = -Infinity;
    if (s <= lim) {
      let dot = 0;
      const kOff = kBase + s * E;
      for (let e = 0; e < E; e++) dot += q[qOff + e] * k[kOff + e];
      x = scale * dot + maskValue(p, b, h, l, s);
    }
    score[s] = x;
    if (x > m) m = x;
  }
  return m;
}

/** keep factor for each key of one row: 1 / (1 - p) where kept, 0 where dropped (all 1 without dropout). */
function dropRow(p: AttentionParams, b: number, h: number, l: number, out: Float64Array): void {
  const { S, dropoutP } = p;
  if (dropoutP <= 0) { out.fill(1, 0, S); return; }
  if (dropoutP >= 1) { out.fill(0, 0, S); return; }
  const thr = dropoutThreshold(dropoutP);
  const inv = 1 / (1 - dropoutP);
  const st = dropoutRowState(p.dropoutSeed, (b * p.H + h) * p.L + l);
  for (let s = 0; s < S; s++) out[s] = dropoutBits(st, s) >= thr ? inv : 0;
}

export function refAttentionForward(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
): void {
  const { B, H, Hkv, L, S, Ev } = p;
  const score = new Float64Array(S);
  const keep = new Float64Array(S);
  const acc = new Float64Array(Ev);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      const vBase = (b * Hkv + kvh) * S * Ev;
      for (let l = 0; l < L; l++) {
        const row = (b * H + h) * L + l;
        const m = scoreRow(p, q, k, b, h, l, score);
        const oOff = row * Ev;
        if (m === -Infinity) {
          out.fill(0, oOff, oOff + Ev);
          lse[row] = -Infinity;
          continue;
        }
        dropRow(p, b, h, l, keep);
        let sum = 0;
        acc.fill(0);
        for (let s = 0; s < S; s++) {
          const e = Math.exp(score[s] - m);
          sum += e;
          const w = e * keep[s];
          if (w !== 0) {
            const vOff = vBase + s * Ev;
            for (let c = 0; c < Ev; c++) acc[c] += w * v[vOff + c];
          }
        }
        for (let c = 0; c < Ev; c++) out[oOff + c] = acc[c] / sum;
        lse[row] = m + Math.log(sum);
      }
    }
  }
}

export function refAttentionBackward(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, dout: FloatArray,
  lse: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray,
): void {
  const { B, H, Hkv, L, S, E, Ev, scale } = p;
  dq.fill(0);
  dk.fill(0);
  dv.fill(0);
  const score = new Float64Array(S);
  const keep = new Float64Array(S);
  const dqRow = new Float64Array(E);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      const kBase = (b * Hkv + kvh) * S * E;
      const vBase = (b * Hkv + kvh) * S * Ev;
      for (let l = 0; l < L; l++) {
        const row = (b * H + h) * L + l;
        const rowLse = lse[row];
        if (rowLse === -Infinity) continue; // fully masked: no gradient flows
        scoreRow(p, q, k, b, h, l, score);
        dropRow(p, b, h, l, keep);
        const oOff = row * Ev;
        const qOff = row * E;
        let D = 0;
        for (let c = 0; c < Ev; c++) D += dout[oOff + c] * out[oOff + c];
        dqRow.fill(0);
        for (let s = 0; s < S; s++) {
          if (score[s] === -Infinity) continue;
          const P = Math.exp(score[s] - rowLse);
          const vOff = vBase + s * Ev;
          let dPd = 0;
          for (let c = 0; c < Ev; c++) dPd += dout[oOff + c] * v[vOff + c];
          const dS = P * (dPd * keep[s] - D);
          const pd = P * keep[s];
          if (pd !== 0) for (let c = 0; c < Ev; c++) dv[vOff + c] += pd * dout[oOff + c];
          const kOff = kBase + s * E;
          const g = scale * dS;
          for (let e = 0; e < E; e++) {
            dqRow[e] += g * k[kOff + e];
            dk[kOff + e] += g * q[qOff + e];
          }
        }
        for (let e = 0; e < E; e++) dq[qOff + e] = dqRow[e];
      }
    }
  }
}
