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
 * The flexible options change only the score and where the row starts (AttentionParams):
 *   S  = softcap · tanh((scale · Q_i K_jᵀ − slope_h |l' − s|) / softcap) + mask
 *        (−∞ where causality, the sliding window, the documents or the block mask hide a key)
 *   dS = P ∘ (dP − D) ∘ (1 − tanh²)               the softcap's chain rule (1 where it is off)
 *   with sinks: m = sink_h, l = 1 to start (a first column of value 0), so lse counts the sink and a
 *   row that sees no key gives out = 0, lse = sink_h. Tiles that causality, the window, the documents
 *   (disjoint id ranges) or the block mask (empty blocks) hide wholly are never computed; a tile the
 *   block mask marks full reads no mask bits.
 *
 * Layout (backend.ts): q [B,H,L,E], k [B,Hkv,S,E], v [B,Hkv,S,Ev], out [B,H,L,Ev], lse [B,H,L]; query
 * head h reads kv head floor(h / G), G = H / Hkv. Score tiles are kept [query][key] here; the SIMD
 * keeps them transposed so that 4 queries share a vector.
 */
import type { FloatArray } from "../../tensor/dtype.js";
import { ArgumentError } from "../../tensor/errors.js";
import {
  BLOCK_EMPTY, BLOCK_FULL, blockAllows, blockKind, causalOffset as causalRuleOffset, documentRanges, positionShift, visibleKeys,
} from "../causal.js";
import type {
  AttentionBlockMask, AttentionDocuments, AttentionParams, AttentionWindow, Backend, PositionAlignment,
} from "../backend.js";
import { dropoutBits, dropoutRowState, dropoutThreshold } from "../dropoutHash.js";
import { backwardInAnyLayout, forwardInAnyLayout } from "../layout.js";

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
// The rules: visibility (../causal.ts), scores, dropout
// ----------------------------------------------------------------------------------------------

/** Key s is visible from query row l iff s <= l + causalOffset(p) (and s < S): the rule of ../causal.ts. */
export function causalOffset(p: AttentionParams): number {
  return causalRuleOffset(p.causal, p.L, p.S);
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
  /** where query row l sits among the keys for windows and ALiBi: l' = l + shift */
  alignment: PositionAlignment;
  shift: number;
  window: AttentionWindow | null;
  slopes: Float64Array | null;
  /** 0: no softcap */
  cap: number;
  sinks: Float64Array | null;
  docs: AttentionDocuments | null;
  /** per (b, query tile) and (b, key tile): the least and greatest document id, [min, max] pairs */
  qDocs: Int32Array;
  kDocs: Int32Array;
  blockMask: AttentionBlockMask | null;
  /** one Br × Bc tile of scores, S[ii * Bc + jj] */
  S: Float64Array;
  /** with a softcap: d(capped)/d(raw) = 1 − tanh² of each score of the tile */
  dcap: Float64Array;
}

function context(fn: string, p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, tiles: FlashTiles): Ctx {
  for (const name of ["Br", "Bc"] as const) {
    const x = tiles[name];
    if (!Number.isInteger(x) || x < 1) throw new ArgumentError(`${fn}: tiles.${name} must be a positive integer, got ${String(x)}`);
  }
  if (p.layout) throw new ArgumentError(`${fn}: takes heads-first operands only (p.layout must be absent; kernels/layout.ts headsFirst adapts a call)`);
  const bm = p.blockMask ?? null;
  if (bm !== null && (bm.L !== p.L || bm.S !== p.S || (bm.B !== 1 && bm.B !== p.B) || (bm.H !== 1 && bm.H !== p.H))) {
    throw new ArgumentError(
      `${fn}: the block mask is for [B, H, L, S] = [${bm.B}, ${bm.H}, ${bm.L}, ${bm.S}] but the call is [${p.B}, ${p.H}, ${p.L}, ${p.S}] (B and H may be 1)`,
    );
  }
  const docs = p.documents ?? null;
  const alignment: PositionAlignment = p.alignment ?? (p.causal === "none" ? "top-left" : p.causal);
  return {
    p, q, k, v, Br: tiles.Br, Bc: tiles.Bc, G: p.H / p.Hkv,
    dropOn: p.dropoutP > 0,
    dropThr: dropoutThreshold(p.dropoutP),
    dropInv: p.dropoutP >= 1 ? 0 : 1 / (1 - p.dropoutP),
    alignment,
    shift: positionShift(alignment, p.L, p.S),
    window: p.window ?? null,
    slopes: p.alibiSlopes ?? null,
    cap: p.softcap ?? 0,
    sinks: p.sinks ?? null,
    docs,
    qDocs: docs === null ? new Int32Array(0) : documentRanges(docs.query, p.B, p.L, tiles.Br),
    kDocs: docs === null ? new Int32Array(0) : documentRanges(docs.key, p.B, p.S, tiles.Bc),
    blockMask: bm,
    S: new Float64Array(tiles.Br * tiles.Bc),
    dcap: new Float64Array(p.softcap ? tiles.Br * tiles.Bc : 0),
  };
}

/** The keys query row l may see under causality and the window: first..last (last < first: none). */
function rowKeys(c: Ctx, l: number): [number, number] {
  return visibleKeys(c.p.causal, c.alignment, c.window, l, c.p.L, c.p.S);
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

/**
 * The score of query l and key s, at tile element `at`: scale · q_l · k_s − slope_h |l' − s|, capped
 * (softcap · tanh(x / softcap), its derivative kept in dcap[at]), plus a float mask; or −∞ where a
 * bool mask says no.
 */
function score(c: Ctx, b: number, h: number, l: number, s: number, at: number): number {
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
  let x = p.scale * dot;
  if (c.slopes !== null) x -= c.slopes[h] * Math.abs(l + c.shift - s); // ALiBi: −slope_h |l' − s|
  if (c.cap > 0) {
    const t = Math.tanh(x / c.cap);
    x = c.cap * t;
    c.dcap[at] = 1 - t * t; // d(cap · tanh(x / cap))/dx
  }
  return x + add;
}

/** Tile kinds: hidden (never computed), partial (the block mask is read per element), open (it is not). */
const TILE_HIDDEN = 0, TILE_PARTIAL = 1, TILE_OPEN = 2;

/** Whether the tile of rows i0 .. i0 + rows − 1 and keys j0 .. j0 + cols − 1 of head (b, h) has a key to see. */
function tileKind(c: Ctx, b: number, h: number, i0: number, rows: number, j0: number, cols: number): number {
  const j1 = j0 + cols - 1;
  let seen = false; // causality and the window: some row's first..last meets j0..j1
  for (let l = i0; l < i0 + rows && !seen; l++) {
    const [first, last] = rowKeys(c, l);
    seen = first <= j1 && last >= j0 && first <= last;
  }
  if (!seen) return TILE_HIDDEN;
  if (c.docs !== null) { // documents: the tiles' id ranges must meet
    const qt = 2 * (b * Math.ceil(c.p.L / c.Br) + Math.floor(i0 / c.Br));
    const kt = 2 * (b * Math.ceil(c.p.S / c.Bc) + Math.floor(j0 / c.Bc));
    if (c.qDocs[qt + 1] < c.kDocs[kt] || c.kDocs[kt + 1] < c.qDocs[qt]) return TILE_HIDDEN;
  }
  if (c.blockMask === null) return TILE_OPEN;
  const kind = blockKind(c.blockMask, b, h, i0, i0 + rows - 1, j0, j1);
  return kind === BLOCK_EMPTY ? TILE_HIDDEN : kind === BLOCK_FULL ? TILE_OPEN : TILE_PARTIAL;
}

/** S = the scores of rows i0 .. i0 + rows − 1 and keys j0 .. j0 + cols − 1 of head (b, h), −∞ where hidden. */
function scoreTile(c: Ctx, b: number, h: number, i0: number, rows: number, j0: number, cols: number, kind: number): void {
  const { p, docs, blockMask } = c;
  for (let ii = 0; ii < rows; ii++) {
    const l = i0 + ii;
    const [first, last] = rowKeys(c, l);
    const doc = docs === null ? 0 : docs.query[b * p.L + l];
    for (let jj = 0; jj < cols; jj++) {
      const s = j0 + jj, at = ii * c.Bc + jj;
      const visible = s >= first && s <= last
        && (docs === null || docs.key[b * p.S + s] === doc)
        && (kind !== TILE_PARTIAL || blockAllows(blockMask!, b, h, l, s));
      c.S[at] = visible ? score(c, b, h, l, s, at) : -Infinity;
    }
  }
}

/**
 * Calls fn for each key tile that query rows i0 .. i0 + rows − 1 of head (b, h) can see, in order:
 * those outside the keys causality and the window leave them are not even looked at, and tileKind
 * drops the rest that are hidden.
 */
function forEachKeyTile(c: Ctx, b: number, h: number, i0: number, rows: number, fn: (j0: number, cols: number, kind: number) => boolean): void {
  const first = Math.max(0, rowKeys(c, i0)[0]); // the tile's first row sees the earliest key,
  const last = Math.min(c.p.S - 1, rowKeys(c, i0 + rows - 1)[1]); // its last row the latest
  if (last < first) return;
  for (let j0 = Math.floor(first / c.Bc) * c.Bc; j0 <= last; j0 += c.Bc) {
    const cols = Math.min(c.Bc, c.p.S - j0);
    const kind = tileKind(c, b, h, i0, rows, j0, cols);
    if (kind !== TILE_HIDDEN && !fn(j0, cols, kind)) return;
  }
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

/** A query tile's rows before any key: m = −∞, l = 0, O = 0; with a sink, its column is the first key (m = sink, l = 1). */
function startTile(c: Ctx, t: QueryTile): void {
  const sink = c.sinks === null ? -Infinity : c.sinks[t.h];
  t.m.fill(sink);
  t.l.fill(sink === -Infinity ? 0 : 1); // exp(sink − m) with m = sink
  t.O.fill(0); // the sink's value is zero
}

/** One step of the online softmax: query tile t against the keys j0 .. j0 + cols − 1. */
function forwardTile(c: Ctx, t: QueryTile, j0: number, cols: number, kind: number): void {
  const { p, v, S: st, Bc } = c;
  const { Hkv, S, Ev } = p;
  scoreTile(c, t.b, t.h, t.i0, t.rows, j0, cols, kind);
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
    if (m === -Infinity) { // the row sees no key (and has no sink)
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
  const { B, H, L, Ev } = c.p;
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
        startTile(c, t);
        forEachKeyTile(c, b, h, i0, t.rows, (j0, cols, kind) => {
          if (steps >= maxSteps) return false;
          forwardTile(c, t, j0, cols, kind);
          onStep?.(t, j0, cols);
          steps++;
          return true;
        });
        finish(t);
      }
    }
  }
  return steps;
}

/** flashAttentionForward on heads-first operands. */
function forwardHeadsFirst(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
  lseLo?: FloatArray, tiles: FlashTiles = DEFAULT_TILES,
): void {
  const c = context("flashAttentionForward", p, q, k, v, tiles);
  runForward(c, Infinity, (t) => finishRows(c, t, out, lse, lseLo));
}

/**
 * Fused attention forward (Backend.attentionForward): out and lse, and where given lseLo, the part of
 * m + log(l) that lse's rounding drops (finishRows), which backward needs where |m| is huge. Operands
 * in another layout than heads-first (p.layout) are copied into it and out back (../layout.ts).
 */
export const flashAttentionForward = forwardInAnyLayout(forwardHeadsFirst);

/**
 * The attention weights P [B, heads.length, r1 − r0, S] of query rows r0 ≤ l < r1 of the given heads,
 * before dropout, without an L × S matrix: for each tile of those rows, the forward's online softmax
 * (its statistics m and l only: no values) over the key tiles the row sees, then the same tiles again
 * to replay P = exp(S − m) / l = exp(S − lse). Tiles it skips stay 0. `weights` is written, not
 * accumulated (v is not read: pass any array).
 */
export function flashAttentionRows(
  p: AttentionParams, q: FloatArray, k: FloatArray, r0: number, r1: number, heads: readonly number[], weights: FloatArray,
  tiles: FlashTiles = DEFAULT_TILES,
): void {
  const c = context("flashAttentionRows", { ...p, Ev: 0, dropoutP: 0 }, q, k, k, tiles);
  const { B, S } = p;
  const R = r1 - r0;
  weights.fill(0, 0, B * heads.length * R * S);
  const t: QueryTile = { b: 0, h: 0, i0: 0, rows: 0, m: new Float64Array(c.Br), l: new Float64Array(c.Br), O: new Float64Array(0) };
  for (let b = 0; b < B; b++) {
    heads.forEach((h, hi) => {
      for (let i0 = r0; i0 < r1; i0 += c.Br) {
        Object.assign(t, { b, h, i0, rows: Math.min(c.Br, r1 - i0) });
        startTile(c, t);
        forEachKeyTile(c, b, h, i0, t.rows, (j0, cols, kind) => { forwardTile(c, t, j0, cols, kind); return true; });
        forEachKeyTile(c, b, h, i0, t.rows, (j0, cols, kind) => {
          scoreTile(c, b, h, i0, t.rows, j0, cols, kind);
          for (let ii = 0; ii < t.rows; ii++) {
            if (t.m[ii] === -Infinity) continue; // the row sees no key: zeros
            const at = ((b * heads.length + hi) * R + i0 - r0 + ii) * S + j0;
            for (let jj = 0; jj < cols; jj++) weights[at + jj] = Math.exp(c.S[ii * c.Bc + jj] - t.m[ii]) / t.l[ii];
          }
          return true;
        });
      }
    });
  }
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
  /** the steps of the whole forward (tiles hidden by causality, the window, documents or block mask are not steps) */
  totalSteps: number;
}

/** The first `steps` tile steps of flashAttentionForward, with the state they leave (for pictures). */
export function flashForwardSteps(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, steps: number, tiles: FlashTiles = DEFAULT_TILES,
): FlashForwardState {
  const c = context("flashForwardSteps", p, q, k, v, tiles);
  const { B, H, L, Ev } = p;
  let total = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i0 = 0; i0 < L; i0 += c.Br) forEachKeyTile(c, b, h, i0, Math.min(c.Br, L - i0), () => ++total > 0);
    }
  }
  const rows = B * H * L;
  const st: FlashForwardState = {
    m: new Float64Array(rows).fill(-Infinity), l: new Float64Array(rows), O: new Float64Array(rows * Ev),
    out: new Float64Array(rows * Ev), steps: [], totalSteps: total,
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
function backwardTile(c: Ctx, g: Grads, b: number, h: number, i0: number, rows: number, j0: number, cols: number, kind: number): void {
  const { p, q, k, v, S: st, Bc } = c;
  const { H, Hkv, L, S, E, Ev, scale } = p;
  scoreTile(c, b, h, i0, rows, j0, cols, kind);
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
      let dS = P * (dP * kp - g.D[row]); // dS = P ∘ (dP − D)
      if (c.cap > 0) dS *= c.dcap[ii * Bc + jj]; // through the softcap: d(cap · tanh(x / cap)) = (1 − tanh²) dx
      const kOff = (kvRow + s) * E, dK = jj * E, qOff = row * E;
      for (let e = 0; e < E; e++) {
        g.dKj[dK + e] += scale * dS * q[qOff + e]; // dK_j += scale · dSᵀ Q_i
        g.dQ[qOff + e] += scale * dS * k[kOff + e]; // dQ_i += scale · dS K_j
      }
    }
  }
}

/**
 * Fused attention backward (Backend.attentionBackward) on heads-first operands: writes dq, dk, dv.
 * lseLo is forward's residual of lse (absent: taken as 0, exact unless a row's max dwarfs log(l)).
 */
function backwardHeadsFirst(
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
          const h = kvh * c.G + hh;
          for (let i0 = 0; i0 < L; i0 += c.Br) {
            const rows = Math.min(c.Br, L - i0);
            const kind = tileKind(c, b, h, i0, rows, j0, cols);
            if (kind !== TILE_HIDDEN) backwardTile(c, g, b, h, i0, rows, j0, cols, kind);
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

/** backwardHeadsFirst for operands in any layout (as flashAttentionForward: ../layout.ts). */
export const flashAttentionBackward = backwardInAnyLayout(backwardHeadsFirst);
