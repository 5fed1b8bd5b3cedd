/**
 * Tiled attention with an online softmax (the FlashAttention recurrence), one tile at a time, with
 * the library's ops. The N × N score matrix is never held: each step sees one Br × Bc tile of
 * scores and keeps, per query row, the running max m, the running sum ℓ of exp(score − m), and an
 * unnormalised output O. When a larger max appears, the old sum and output are rescaled by
 * exp(m_old − m_new). At the end O / ℓ is softmax(QKᵀ·scale)V exactly (up to rounding).
 */
import { type Tensor, add, div, exp, matmul, max, maximum, mul, slice, sub, sum, tensor, transpose } from "attend";

export interface TiledState {
  L: number;
  S: number;
  Ev: number;
  /** running max per query row [L] (−∞ before the first tile) */
  m: Float64Array;
  /** running sum per query row [L] */
  l: Float64Array;
  /** unnormalised output [L, Ev] */
  O: Float64Array;
  /** 1 where a score has been computed by some step so far [L, S] */
  seen: Uint8Array;
  /** the tile of the last step, if any */
  current: { r0: number; r1: number; c0: number; c1: number } | null;
  stepsDone: number;
  totalSteps: number;
}

export function tileCount(L: number, S: number, Br: number, Bc: number): number {
  return Math.ceil(L / Br) * Math.ceil(S / Bc);
}

/** Run the first `steps` tile steps (query tiles outer, key tiles inner). */
export function tiledAttention(Q: Tensor, K: Tensor, V: Tensor, Br: number, Bc: number, steps: number): TiledState {
  const [L, E] = Q.shape, S = K.shape[0], Ev = V.shape[1];
  const scale = 1 / Math.sqrt(E);
  const st: TiledState = {
    L, S, Ev, m: new Float64Array(L).fill(-Infinity), l: new Float64Array(L), O: new Float64Array(L * Ev),
    seen: new Uint8Array(L * S), current: null, stepsDone: 0, totalSteps: tileCount(L, S, Br, Bc),
  };
  const nKeyTiles = Math.ceil(S / Bc);
  for (let k = 0; k < Math.min(steps, st.totalSteps); k++) {
    const r0 = Math.floor(k / nKeyTiles) * Br, r1 = Math.min(L, r0 + Br);
    const c0 = (k % nKeyTiles) * Bc, c1 = Math.min(S, c0 + Bc);
    const br = r1 - r0;
    const s = mul(matmul(slice(Q, 0, r0, r1), transpose(slice(K, 0, c0, c1))), scale); // [br, bc]
    const mOld = tensor(st.m.slice(r0, r1), [br, 1]);
    const lOld = tensor(st.l.slice(r0, r1), [br, 1]);
    const oOld = tensor(st.O.slice(r0 * Ev, r1 * Ev), [br, Ev]);
    const mNew = maximum(mOld, max(s, -1, true)); // [br, 1]
    const p = exp(sub(s, mNew)); // [br, bc], every entry <= 1
    const alpha = exp(sub(mOld, mNew)); // rescales what was summed under the old max (0 on the first tile)
    const lNew = add(mul(alpha, lOld), sum(p, -1, true));
    const oNew = add(mul(alpha, oOld), matmul(p, slice(V, 0, c0, c1))); // [br, Ev]
    st.m.set(mNew.data, r0);
    st.l.set(lNew.data, r0);
    st.O.set(oNew.data, r0 * Ev);
    for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) st.seen[r * S + c] = 1;
    st.current = { r0, r1, c0, c1 };
    st.stepsDone = k + 1;
  }
  return st;
}

/** O / ℓ, the normalised output, [L, Ev] (rows not started yet are 0). */
export function finalOutput(st: TiledState): Tensor {
  const O = tensor(st.O, [st.L, st.Ev]);
  const l = tensor(st.l.map((v) => (v === 0 ? 1 : v)), [st.L, 1]);
  return div(O, l);
}
