/**
 * FlashAttention-2 in plain TypeScript: the `ref` backend's attention. It is the SIMD kernel of
 * assembly/attention.ts without the SIMD: the same tiles (Br query rows × Bc keys), the same names
 * (m, l, lse, D; query tile i, key tile j), the same loops (forward: a task per head and query tile,
 * over key tiles; backward: a task per kv head and key tile, over the group's heads and query tiles),
 * and tiles wholly hidden by causality are skipped. Arithmetic is float64 whatever the storage
 * (Float32Array or Float64Array). The textbook form is the math path of src/attention/sdpa.ts.
 *
 * Forward, query tile Q_i against key tiles K_j, V_j (m = −∞, l = 0, O = 0 to start):
 *   S  = scale · Q_i K_jᵀ + mask                 (−∞ where a bool mask or causality hides a key)
 *   m' = max(m, rowmax S)    α = exp(m − m')     P = exp(S − m')
 *   l' = α l + rowsum P      O' = α O + drop(P) V_j          drop(x) = keep ? x / (1 − p) : 0
 *   out = O / l              lse = m + log l     (with its rounding residual lseLo: see finishRows)
 * Backward, key tile j against query tiles Q_i, with D = rowsum(dO ∘ out):
 *   P = exp((S − lse) − lseLo)    dP = drop(dO_i V_jᵀ)    dS = P ∘ (dP − D)
 *   dV_j += drop(P)ᵀ dO_i         dK_j += scale · dSᵀ Q_i     dQ_i += scale · dS K_j
 * A row that sees no key gives out = 0, lse = −∞ and no gradient; a NaN score makes its row NaN.
 *
 * Layout (backend.ts): q [B,H,L,E], k [B,Hkv,S,E], v [B,Hkv,S,Ev], out [B,H,L,Ev], lse [B,H,L]; query
 * head h reads kv head floor(h / G), G = H / Hkv. Score tiles are kept [query][key] here; the SIMD
 * keeps them transposed so that 4 queries share a vector.
 */
import type { FloatArray } from "../../tensor/dtype.js";
import { ArgumentError } from "../../tensor/errors.js";
import { causalLimit as causalRuleLimit, causalOffset as causalRuleOffset } from "../causal.js";
import type { AttentionParams } from "../backend.js";
import { dropoutBits, dropoutRowState, dropoutThreshold } from "../dropoutHash.js";

/** Query rows per tile, by default (the SIMD kernel's default too, wasmTuning.Br). */
export const FLASH_BR = 64;
/** Keys per tile, by default. */
export const FLASH_BC = 64;

export interface FlashTiles {
  Br: number;
  Bc: number;
}

const DEFAULT_TILES: FlashTiles = { Br: FLASH_BR, Bc: FLASH_BC };

// ----------------------------------------------------------------------------------------------
// The rules: causality, masks, dropout (defined once, here)
// ----------------------------------------------------------------------------------------------

/** Key s is visible from query row l iff s <= l + causalOffset(p) (and s < S): the rule of ../causal.ts. */
export function causalOffset(p: AttentionParams): number {
  return causalRuleOffset(p.causal, p.L, p.S);
}

/** The last key query row l may see (−1: none). */
function causalLimit(p: AttentionParams, l: number): number {
  return causalRuleLimit(p.causal, l, p.L, p.S);
}

/** What a call's tiles all read. */
interface Ctx {
  p: AttentionParams;
  q: FloatArray;
  k: FloatArray;
  v: FloatArray;
  Br: number;
  Bc: number;
  /** query heads per kv head */
  G: number;
  /** dropout: a weight is kept iff its bits >= dropThr, and then scaled by dropInv (0 when p >= 1) */
  dropOn: boolean;
  dropThr: number;
  dropInv: number;
  /** one Br × Bc tile of scores, S[ii * Bc + jj] */
  S: Float64Array;
}

function context(fn: string, p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, tiles: FlashTiles): Ctx {
  for (const name of ["Br", "Bc"] as const) {
    const x = tiles[name];
    if (!Number.isInteger(x) || x < 1) throw new ArgumentError(`${fn}: tiles.${name} must be a positive integer, got ${String(x)}`);
  }
  return {
    p, q, k, v, Br: tiles.Br, Bc: tiles.Bc, G: p.H / p.Hkv,
    dropOn: p.dropoutP > 0,
    dropThr: dropoutThreshold(p.dropoutP),
    dropInv: p.dropoutP >= 1 ? 0 : 1 / (1 - p.dropoutP),
    S: new Float64Array(tiles.Br * tiles.Bc),
  };
}

/** Dropout bits of query row l of head (b, h) (the row of dropoutHash.ts). */
function rowState(c: Ctx, b: number, h: number, l: number): number {
  return c.dropOn ? dropoutRowState(c.p.dropoutSeed, (b * c.p.H + h) * c.p.L + l) : 0;
}

/** drop(1) for key s of a row: 1 / (1 − p) where kept, 0 where dropped, 1 without dropout. */
function keep(c: Ctx, rs: number, s: number): number {
  if (!c.dropOn) return 1;
  return dropoutBits(rs, s) >= c.dropThr ? c.dropInv : 0;
}

/** The score of query l and key s: scale · q_l · k_s + a float mask, or −∞ where a bool mask says no. */
function score(c: Ctx, b: number, h: number, l: number, s: number): number {
  const { p, q, k } = c;
  const { H, Hkv, L, S, E } = p;
  let add = 0;
  if (p.mask !== null) {
    const [sb, sh, sl, ss] = p.mask.strides;
    const x = p.mask.data[b * sb + h * sh + l * sl + s * ss];
    if (p.mask.kind === "bool") {
      if (!x) return -Infinity; // true = attend
    } else add = x;
  }
  const qOff = ((b * H + h) * L + l) * E;
  const kOff = ((b * Hkv + Math.floor(h / c.G)) * S + s) * E;
  let dot = 0;
  for (let e = 0; e < E; e++) dot += q[qOff + e] * k[kOff + e];
  return p.scale * dot + add;
}

/** S = scale · Q_i K_jᵀ + mask for rows i0 .. i0 + rows − 1 and keys j0 .. j0 + cols − 1 of head (b, h). */
function scoreTile(c: Ctx, b: number, h: number, i0: number, rows: number, j0: number, cols: number): void {
  for (let ii = 0; ii < rows; ii++) {
    const lim = causalLimit(c.p, i0 + ii);
    for (let jj = 0; jj < cols; jj++) {
      const s = j0 + jj;
      c.S[ii * c.Bc + jj] = s <= lim ? score(c, b, h, i0 + ii, s) : -Infinity;
    }
  }
}

/** How many key tiles the query tile of rows i0 .. i0 + rows − 1 visits: the rest are hidden by causality. */
function keyTileCount(c: Ctx, i0: number, rows: number): number {
  const lim = causalLimit(c.p, i0 + rows - 1); // its last row sees the most
  return lim < 0 ? 0 : Math.floor(lim / c.Bc) + 1;
}

/** The first query tile that sees a key of the tile starting at j0: the ones before are hidden by causality. */
function firstQueryTile(c: Ctx, j0: number): number {
  return Math.floor(Math.max(0, j0 - causalOffset(c.p)) / c.Br);
}

// ----------------------------------------------------------------------------------------------
// Forward
// ----------------------------------------------------------------------------------------------

/** The running state of one query tile: rows i0 .. i0 + rows − 1 of head (b, h). */
interface QueryTile {
  b: number;
  h: number;
  i0: number;
  rows: number;
  /** running max per row */
  m: Float64Array;
  /** running sum of exp(S − m) per row */
  l: Float64Array;
  /** unnormalised output [rows, Ev] */
  O: Float64Array;
}

/** One step of the online softmax: query tile t against the keys j0 .. j0 + cols − 1. */
function forwardTile(c: Ctx, t: QueryTile, j0: number, cols: number): void {
  const { p, v, S: st, Bc } = c;
  const { Hkv, S, Ev } = p;
  scoreTile(c, t.b, t.h, t.i0, t.rows, j0, cols);
  const vBase = (t.b * Hkv + Math.floor(t.h / c.G)) * S * Ev;
  for (let ii = 0; ii < t.rows; ii++) {
    const mOld = t.m[ii];
    let m = mOld;
    for (let jj = 0; jj < cols; jj++) m = Math.max(m, st[ii * Bc + jj]); // m' = max(m, rowmax S); NaN wins
    const mSafe = m === -Infinity ? 0 : m; // nothing visible yet: exp(−∞ − 0) = 0 rather than NaN
    const alpha = Math.exp(mOld - mSafe); // rescales what was summed under the old max
    const O = ii * Ev;
    for (let e = 0; e < Ev; e++) t.O[O + e] *= alpha;
    const rs = rowState(c, t.b, t.h, t.i0 + ii);
    let rowSum = 0;
    for (let jj = 0; jj < cols; jj++) {
      const P = Math.exp(st[ii * Bc + jj] - mSafe);
      rowSum += P;
      const w = P * keep(c, rs, j0 + jj); // O += drop(P) V_j
      const vOff = vBase + (j0 + jj) * Ev;
      for (let e = 0; e < Ev; e++) t.O[O + e] += w * v[vOff + e];
    }
    t.l[ii] = alpha * t.l[ii] + rowSum;
    t.m[ii] = m;
  }
}

/**
 * out = O / l and lse = m + log(l) for the tile's rows. lse alone loses log(l) where |m| dwarfs it: a
 * float mask of −1e30 makes m + log(l) == m in float64, and backward's P = exp(S − lse) would be 1 for
 * every key instead of 1 / l. So the rounding residual goes with it, lseLo = (m − lse) + log(l), and
 * lse + lseLo = m + log(l) exactly where |m| >= log(l) (to within ulp(lse) otherwise). The SIMD kernel
 * stages lse the same way, as a hi and a lo part.
 */
function finishRows(c: Ctx, t: QueryTile, out: FloatArray, lse: FloatArray, lseLo?: FloatArray): void {
  const { H, L, Ev } = c.p;
  for (let ii = 0; ii < t.rows; ii++) {
    const row = (t.b * H + t.h) * L + t.i0 + ii;
    const m = t.m[ii];
    if (m === -Infinity) { // the row sees no key
      out.fill(0, row * Ev, (row + 1) * Ev);
      lse[row] = -Infinity;
      if (lseLo) lseLo[row] = 0;
      continue;
    }
    for (let e = 0; e < Ev; e++) out[row * Ev + e] = t.O[ii * Ev + e] / t.l[ii];
    const logl = Math.log(t.l[ii]);
    lse[row] = m + logl;
    if (lseLo) lseLo[row] = (m - lse[row]) + logl; // against the stored lse (float32 storage rounds it)
  }
}

/**
 * The forward's loops, shared by the kernel and the step-wise form: every head (b, h), every query
 * tile, and for each the key tiles it can see, in order. Stops after `maxSteps` tile steps; `finish`
 * gets every query tile that was started, `onStep` every step. Returns the steps taken.
 */
function runForward(
  c: Ctx, maxSteps: number, finish: (t: QueryTile) => void, onStep?: (t: QueryTile, j0: number, cols: number) => void,
): number {
  const { B, H, L, S, Ev } = c.p;
  const t: QueryTile = {
    b: 0, h: 0, i0: 0, rows: 0, m: new Float64Array(c.Br), l: new Float64Array(c.Br), O: new Float64Array(c.Br * Ev),
  };
  let steps = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i0 = 0; i0 < L && steps < maxSteps; i0 += c.Br) {
        t.b = b;
        t.h = h;
        t.i0 = i0;
        t.rows = Math.min(c.Br, L - i0);
        t.m.fill(-Infinity);
        t.l.fill(0);
        t.O.fill(0);
        const nJ = keyTileCount(c, i0, t.rows);
        for (let j = 0; j < nJ && steps < maxSteps; j++, steps++) {
          const j0 = j * c.Bc, cols = Math.min(c.Bc, S - j0);
          forwardTile(c, t, j0, cols);
          onStep?.(t, j0, cols);
        }
        finish(t);
      }
    }
  }
  return steps;
}

/**
 * Fused attention forward (Backend.attentionForward): out and lse, and where given lseLo, the part of
 * m + log(l) that lse's rounding drops (finishRows), which backward needs where |m| is huge.
 */
export function flashAttentionForward(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
  lseLo?: FloatArray, tiles: FlashTiles = DEFAULT_TILES,
): void {
  const c = context("flashAttentionForward", p, q, k, v, tiles);
  runForward(c, Infinity, (t) => finishRows(c, t, out, lse, lseLo));
}

/** One tile step of the forward: query rows [r0, r1) of head (b, h) against keys [c0, c1). */
export interface FlashStep {
  b: number;
  h: number;
  r0: number;
  r1: number;
  c0: number;
  c1: number;
}

/** The forward's state after some tile steps (rows not started yet: m = −∞, l = 0, O = 0, out = 0). */
export interface FlashForwardState {
  /** running max per query row [B, H, L] */
  m: Float64Array;
  /** running sum of exp(score − m) per query row [B, H, L] */
  l: Float64Array;
  /** unnormalised output [B, H, L, Ev] */
  O: Float64Array;
  /** O / l so far [B, H, L, Ev], as the kernel writes it */
  out: Float64Array;
  /** the steps taken, in order */
  steps: FlashStep[];
  /** the steps of the whole forward (tiles hidden by causality are not steps) */
  totalSteps: number;
}

/** The first `steps` tile steps of flashAttentionForward, with the state they leave (for pictures). */
export function flashForwardSteps(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, steps: number, tiles: FlashTiles = DEFAULT_TILES,
): FlashForwardState {
  const c = context("flashForwardSteps", p, q, k, v, tiles);
  const { B, H, L, Ev } = p;
  let total = 0;
  for (let i0 = 0; i0 < L; i0 += c.Br) total += keyTileCount(c, i0, Math.min(c.Br, L - i0));
  const rows = B * H * L;
  const st: FlashForwardState = {
    m: new Float64Array(rows).fill(-Infinity), l: new Float64Array(rows), O: new Float64Array(rows * Ev),
    out: new Float64Array(rows * Ev), steps: [], totalSteps: total * B * H,
  };
  const lse = new Float64Array(rows);
  runForward(c, steps, (t) => {
    const row = (t.b * H + t.h) * L + t.i0;
    st.m.set(t.m.subarray(0, t.rows), row);
    st.l.set(t.l.subarray(0, t.rows), row);
    st.O.set(t.O.subarray(0, t.rows * Ev), row * Ev);
    finishRows(c, t, st.out, lse);
  }, (t, j0, cols) => st.steps.push({ b: t.b, h: t.h, r0: t.i0, r1: t.i0 + t.rows, c0: j0, c1: j0 + cols }));
  return st;
}

// ----------------------------------------------------------------------------------------------
// Backward
// ----------------------------------------------------------------------------------------------

/** What backward's tiles read and add into. */
interface Grads {
  dout: FloatArray;
  lse: FloatArray;
  lseLo: FloatArray | undefined;
  /** rowsum(dO ∘ out) per query row [B, H, L] */
  D: Float64Array;
  /** dQ accumulated in float64 over the key tiles [B, H, L, E] */
  dQ: Float64Array;
  /** dK_j and dV_j of the current key tile, summed over the group's heads and the query tiles */
  dKj: Float64Array;
  dVj: Float64Array;
}

/** D = rowsum(dO ∘ out): the softmax backward's Σ_s P dP, one per query row. */
function rowDots(p: AttentionParams, dout: FloatArray, out: FloatArray): Float64Array {
  const { B, H, L, Ev } = p;
  const D = new Float64Array(B * H * L);
  for (let row = 0; row < D.length; row++) {
    let d = 0;
    for (let e = 0; e < Ev; e++) d += dout[row * Ev + e] * out[row * Ev + e];
    D[row] = d;
  }
  return D;
}

/** One backward tile: query rows i0 .. i0 + rows − 1 of head (b, h) against keys j0 .. j0 + cols − 1. */
function backwardTile(c: Ctx, g: Grads, b: number, h: number, i0: number, rows: number, j0: number, cols: number): void {
  const { p, q, k, v, S: st, Bc } = c;
  const { H, Hkv, L, S, E, Ev, scale } = p;
  scoreTile(c, b, h, i0, rows, j0, cols);
  const kvRow = (b * Hkv + Math.floor(h / c.G)) * S;
  for (let ii = 0; ii < rows; ii++) {
    const row = (b * H + h) * L + i0 + ii;
    const lse = g.lse[row], lseLo = g.lseLo ? g.lseLo[row] : 0;
    if (lse === -Infinity) continue; // the row sees no key: no gradient
    const rs = rowState(c, b, h, i0 + ii);
    for (let jj = 0; jj < cols; jj++) {
      const x = st[ii * Bc + jj];
      if (x === -Infinity) continue; // hidden: P = 0 (and a NaN row stays out of keys it never saw)
      const s = j0 + jj;
      const P = Math.exp((x - lse) - lseLo);
      const kp = keep(c, rs, s);
      const vOff = (kvRow + s) * Ev, dV = jj * Ev;
      let dP = 0;
      for (let e = 0; e < Ev; e++) {
        dP += g.dout[row * Ev + e] * v[vOff + e]; // dP = dO_i V_jᵀ (dropped below)
        g.dVj[dV + e] += P * kp * g.dout[row * Ev + e]; // dV_j += drop(P)ᵀ dO_i
      }
      const dS = P * (dP * kp - g.D[row]); // dS = P ∘ (dP − D)
      const kOff = (kvRow + s) * E, dK = jj * E, qOff = row * E;
      for (let e = 0; e < E; e++) {
        g.dKj[dK + e] += scale * dS * q[qOff + e]; // dK_j += scale · dSᵀ Q_i
        g.dQ[qOff + e] += scale * dS * k[kOff + e]; // dQ_i += scale · dS K_j
      }
    }
  }
}

/**
 * Fused attention backward (Backend.attentionBackward): writes dq, dk, dv. lseLo is forward's
 * residual of lse (absent: taken as 0, exact unless a row's max dwarfs log(l)).
 */
export function flashAttentionBackward(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, dout: FloatArray,
  lse: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray, lseLo?: FloatArray, tiles: FlashTiles = DEFAULT_TILES,
): void {
  const c = context("flashAttentionBackward", p, q, k, v, tiles);
  const { B, H, Hkv, L, S, E, Ev } = p;
  const g: Grads = {
    dout, lse, lseLo, D: rowDots(p, dout, out), dQ: new Float64Array(B * H * L * E),
    dKj: new Float64Array(c.Bc * E), dVj: new Float64Array(c.Bc * Ev),
  };
  for (let b = 0; b < B; b++) {
    for (let kvh = 0; kvh < Hkv; kvh++) {
      for (let j0 = 0; j0 < S; j0 += c.Bc) {
        const cols = Math.min(c.Bc, S - j0);
        g.dKj.fill(0);
        g.dVj.fill(0);
        for (let hh = 0; hh < c.G; hh++) {
          for (let i0 = firstQueryTile(c, j0) * c.Br; i0 < L; i0 += c.Br) {
            backwardTile(c, g, b, kvh * c.G + hh, i0, Math.min(c.Br, L - i0), j0, cols);
          }
        }
        const kv = (b * Hkv + kvh) * S + j0;
        dk.set(g.dKj.subarray(0, cols * E), kv * E);
        dv.set(g.dVj.subarray(0, cols * Ev), kv * Ev);
      }
    }
  }
  dq.set(g.dQ);
}
