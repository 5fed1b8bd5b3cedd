// FlashAttention-2 style fused attention on float32, one task = one tile row or column:
//   forward:  task (head, query block)  -> out rows, row max m and row sum l of that block (online
//             softmax over key blocks; the host forms lse = m + log(l) in float64)
//   backward: prep task (head, query block) -> Q^T (scaled) and dO^T packed per block
//             main task (key block, kv group) -> dK, dV of that block (summed over the group's heads
//             and query blocks in a fixed order) and its share of dQ, one tile per query block, added
//             into each dQ block in increasing key-block order (a per-block counter makes later key
//             blocks wait; a small ring of pending tiles keeps threads from waiting at every tile), so
//             every output element has one fixed summation order whatever the thread count.
// Scores are kept transposed, S^T[key][query], so the softmax statistics of 4 queries sit in one
// vector and every row max / row sum is a vertical SIMD operation. No L x S matrix exists: the
// per-thread scratch is a few tiles. Tiles that causality, the sliding window, the documents or the
// block mask hide entirely are never computed (tileKind), and a visible tile runs only the element
// passes it needs (scoreTile).
// The flexible options, as in src/kernels/ref/flash.ts:
//   window     each row's keys are first..last = l + firstOff .. l + lastOff (clamped to 0..S-1), one
//              rule with causality; the key tiles a query tile visits and the query tiles a key tile
//              visits come from it; where a tile is cut, whole runs of a key's queries are set to -inf
//   ALiBi      -slope_h |l' - s| added to the scaled scores, 4 queries per vector (biasAndCap)
//   softcap    cap tanh(s / cap) after it, vector tanh; backward keeps 1 - tanh^2 per score (dcap)
//   sinks      each row's online softmax starts at m = sink_h, l = 1 (startRows); nothing else changes
//   documents  tiles whose query and key id ranges are disjoint are skipped, tiles of one document
//              read no ids, the rest compare ids 4 queries per vector (applyDocs)
//   blockMask  tiles over empty blocks are skipped, over full blocks read no bits, the rest read
//              each element's bit (applyBlocks); the host gives each tile's kind (bmTiles)
// Precision: scores, P and the products are float32; the few places where float32 would cost accuracy
// that float32 storage could keep (nearly one-hot rows, |scores| in the hundreds) use float64: the row
// sums l and the final division, lse (staged as two float32s), D, and dP - D where P > 1/4. Where
// |lse| is so large that float64 could not keep log(l) next to m (a row masked with -1e30), the
// backward takes m and l from the scores again (splitLargeLse).
// NaN propagates as in the textbook softmax: a NaN score makes its row's out, lse and gradients NaN.

import { AttJob } from "./layout";
import { attJob, imin, jobFailed, scratchOf } from "./job";
import { gemm, rowState, vexp, vkeep } from "./simd";

// ---------------------------------------------------------------------------------------------
// Which tiles are computed. Query row l sees keys first..last, first = max(0, l + firstOff),
// last = min(S - 1, l + lastOff) (causality and the window); both ends grow with l, so the key tiles
// query tile i can see are a run, and so are the query tiles key tile j can be seen from.
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline function imax(a: i32, b: i32): i32 {
  return a > b ? a : b;
}

/** The first key tile query rows i0.. can see (its first row sees the earliest key). */
function firstKeyTile(a: AttJob, i0: i32): i32 {
  return imax(0, i0 + a.firstOff) / a.Bc;
}

/** The last key tile real query rows i0 .. i0 + rows - 1 can see (-1: none); its last row sees the latest key. */
function lastKeyTile(a: AttJob, i0: i32, rows: i32): i32 {
  const k = imin(a.S - 1, i0 + rows - 1 + a.lastOff);
  return k < 0 ? -1 : k / a.Bc;
}

/** The first query tile that can see keys j0.. . */
function firstQueryTile(a: AttJob, j0: i32): i32 {
  return imax(0, j0 - a.lastOff) / a.Br;
}

/** The last query tile that can see real keys j0 .. j0 + cols - 1 (-1: none). */
function lastQueryTile(a: AttJob, j0: i32, cols: i32): i32 {
  const l = imin(a.L - 1, j0 + cols - 1 - a.firstOff);
  return l < 0 ? -1 : l / a.Br;
}

/** Tile kinds: TILE_HIDDEN (never computed), or TILE_SEEN plus the element passes it needs. */
const TILE_HIDDEN: i32 = 0, TILE_SEEN: i32 = 1, TILE_DOCS: i32 = 2, TILE_BLOCKS: i32 = 4;

/**
 * What query tile i (rows i0 ..) of head (b, h) sees of key tile j, from its real rows and keys:
 * hidden when no row's first..last meets the keys, when the tile's query and key document ids cannot
 * meet (disjoint ranges), or when every block-mask block it touches is empty; else which element
 * passes it needs (documents: unless every id is the same; block mask: unless every block is full).
 * ref/flash.ts tileKind says the same of the same tile; backward visits exactly these tiles too.
 */
function tileKind(a: AttJob, b: i32, h: i32, i: i32, j: i32): i32 {
  const Br = a.Br, Bc = a.Bc;
  const i0 = i * Br, j0 = j * Bc;
  const i1 = imin(i0 + Br, a.L) - 1, j1 = imin(j0 + Bc, a.S) - 1;
  // some row l in i0..i1 with l + firstOff <= j1 and l + lastOff >= j0 (and rows that see anything)
  if (a.firstOff > a.lastOff || imax(i0, j0 - a.lastOff) > imin(i1, j1 - a.firstOff)) return TILE_HIDDEN;
  let kind = TILE_SEEN;
  if (a.qDocTiles != 0) {
    const nI = (a.Lp + Br - 1) / Br, nJ = (a.Sp + Bc - 1) / Bc;
    const qd = <usize>a.qDocTiles + (<usize>(b * nI + i) << 3);
    const kd = <usize>a.kDocTiles + (<usize>(b * nJ + j) << 3);
    const qLo = load<i32>(qd), qHi = load<i32>(qd, 4), kLo = load<i32>(kd), kHi = load<i32>(kd, 4);
    if (qHi < kLo || kHi < qLo) return TILE_HIDDEN;
    if (qLo != qHi || kLo != kHi || qLo != kLo) kind |= TILE_DOCS;
  }
  if (a.bmTiles != 0) {
    const nI = (a.Lp + Br - 1) / Br, nJ = (a.Sp + Bc - 1) / Bc;
    const bb = a.bmB == 1 ? 0 : b, hb = a.bmH == 1 ? 0 : h;
    const x = load<u8>(<usize>a.bmTiles + <usize>(((bb * a.bmH + hb) * nI + i) * nJ + j));
    if (x == 0) return TILE_HIDDEN;
    if (x == 1) kind |= TILE_BLOCKS;
  }
  return kind;
}

/** The first key tile from j on that query tile i of head (b, h) sees; nJ if none (the dQ turns, see flushDq). */
function nextKeyTile(a: AttJob, b: i32, h: i32, i: i32, j: i32): i32 {
  const nJ = (a.Sp + a.Bc - 1) / a.Bc;
  const i0 = i * a.Br;
  const last = lastKeyTile(a, i0, imin(a.Br, a.L - i0));
  for (let jj = imax(j, firstKeyTile(a, i0)); jj <= last; jj++) {
    if (tileKind(a, b, h, i, jj) != TILE_HIDDEN) return jj;
  }
  return nJ;
}

/** (b, h) of local head hl (kv group gl = hl / G of the round, its head hl % G). */
// @ts-ignore: decorator
@inline function batchOf(a: AttJob, hl: i32): i32 {
  return (a.G0 + hl / (a.H / a.Hkv)) / a.Hkv;
}

// @ts-ignore: decorator
@inline function headOf(a: AttJob, hl: i32): i32 {
  const G = a.H / a.Hkv;
  const g = a.G0 + hl / G;
  return (g - (g / a.Hkv) * a.Hkv) * G + (hl - (hl / G) * G);
}

/** Each row's online softmax before any key: m = -inf, l = 0; with a sink, its column first (m = sink_h, l = 1). */
function startRows(a: AttJob, mrow: usize, lrow: usize, Brw: i32, h: i32): void {
  const sink: f32 = a.sinks != 0 ? load<f32>(<usize>a.sinks + (<usize>h << 2)) : -Infinity;
  const l: f64 = a.sinks != 0 ? 1 : 0; // exp(sink - m) with m = sink; the sink's value is zero
  for (let ii = 0; ii < Brw; ii++) {
    store<f32>(mrow + (<usize>ii << 2), sink);
    store<f64>(lrow + (<usize>ii << 3), l);
  }
}

function fillRowStates(rs: usize, seed: u32, rowBase: i32, rows: i32): void {
  for (let ii = 0; ii < rows; ii++) store<u32>(rs + (<usize>ii << 2), rowState(seed, <u32>(rowBase + ii)));
}

/**
 * Scalar pass over a score tile st[Bcw][Brw] (keys x queries, already scaled): x = x + mask for the
 * real rows and keys (a bool mask's false gives -Infinity); padded keys get -Infinity.
 */
function applyMask(a: AttJob, st: usize, Brw: i32, Bcw: i32, i0: i32, j0: i32, b: i32, h: i32): void {
  const L = a.L, S = a.S;
  const kind = a.maskKind;
  const base = <usize>a.mask;
  const sl = a.maskSl, ss = a.maskSs;
  const bh = b * a.maskSb + h * a.maskSh - a.maskLo;
  const rowsReal = imin(Brw, L - i0);
  for (let jj = 0; jj < Bcw; jj++) {
    const s = j0 + jj;
    const row = st + (<usize>(jj * Brw) << 2);
    if (s >= S) {
      for (let ii = 0; ii < Brw; ii++) store<f32>(row + (<usize>ii << 2), -Infinity);
      continue;
    }
    const bhs = bh + s * ss;
    if (kind == 1) {
      for (let ii = 0; ii < rowsReal; ii++) {
        const at = row + (<usize>ii << 2);
        const keep = load<u8>(base + <usize>(bhs + (i0 + ii) * sl));
        if (keep == 0) store<f32>(at, -Infinity);
      }
    } else {
      for (let ii = 0; ii < rowsReal; ii++) {
        const at = row + (<usize>ii << 2);
        store<f32>(at, load<f32>(at) + load<f32>(base + (<usize>(bhs + (i0 + ii) * sl) << 2)));
      }
    }
  }
}

/** Lanes 0 and 1 of a float32x4 as a float64x2. */
// @ts-ignore: decorator
@inline function widenLo(x: v128): v128 {
  return f64x2.promote_low_f32x4(x);
}

/** Lanes 2 and 3 of a float32x4 as a float64x2. */
// @ts-ignore: decorator
@inline function widenHi(x: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3));
}

/** The float32 lanes [a0, a1, b0, b1] of two float64x2 vectors. */
// @ts-ignore: decorator
@inline function narrow(a: v128, b: v128): v128 {
  return i32x4.shuffle(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 4, 5);
}

/**
 * -Infinity where causality or the window hide a key from a row, and for padded keys. Key s is seen by
 * the rows l with s - lastOff <= l <= s - firstOff: a run, so each key's row of S^T is cut at both ends.
 */
function applyRanges(a: AttJob, st: usize, Brw: i32, Bcw: i32, i0: i32, j0: i32): void {
  for (let jj = 0; jj < Bcw; jj++) {
    const s = j0 + jj;
    const row = st + (<usize>(jj * Brw) << 2);
    const lo = s >= a.S ? Brw : imin(Brw, imax(0, s - a.lastOff - i0)); // rows before lo do not see s yet
    const hi = s >= a.S ? Brw : imax(lo, imin(Brw, s - a.firstOff - i0 + 1)); // rows from hi on no longer
    for (let ii = 0; ii < lo; ii++) store<f32>(row + (<usize>ii << 2), -Infinity);
    for (let ii = hi; ii < Brw; ii++) store<f32>(row + (<usize>ii << 2), -Infinity);
  }
}

/** Whether some element of the tile (rows i0 .. i0 + Brw - 1, padded ones too) is cut by applyRanges. */
// @ts-ignore: decorator
@inline function rangesCut(a: AttJob, Brw: i32, Bcw: i32, i0: i32, j0: i32): bool {
  return j0 + Bcw > a.S || j0 + Bcw - 1 - a.lastOff > i0 || j0 - a.firstOff < i0 + Brw - 1;
}

/** -Infinity where a query's document id differs from the key's: 4 queries per vector. */
function applyDocs(a: AttJob, st: usize, Brw: i32, Bcw: i32, i0: i32, j0: i32, b: i32): void {
  const ninf = f32x4.splat(-Infinity);
  const qd = <usize>a.qDoc + (<usize>(b * a.Lp + i0) << 2);
  const cols = imin(Bcw, a.S - j0);
  for (let jj = 0; jj < cols; jj++) {
    const kd = i32x4.splat(load<i32>(<usize>a.kDoc + (<usize>(b * a.S + j0 + jj) << 2)));
    const row = st + (<usize>(jj * Brw) << 2);
    for (let ii = 0; ii < Brw; ii += 4) {
      const at = row + (<usize>ii << 2);
      v128.store(at, v128.bitselect(ninf, v128.load(at), i32x4.ne(v128.load(qd + (<usize>ii << 2)), kd)));
    }
  }
}

/**
 * -Infinity where the block mask says no (causal.ts blockAllows): each real row's keys go by runs
 * of one block; an empty block hides its run, a full one leaves it, a partial one reads a bit per key.
 */
function applyBlocks(a: AttJob, st: usize, Brw: i32, Bcw: i32, i0: i32, j0: i32, b: i32, h: i32): void {
  const bs = a.bmSize;
  const blocks = ((a.bmB == 1 ? 0 : b) * a.bmH + (a.bmH == 1 ? 0 : h)) * a.bmRows;
  const rows = imin(Brw, a.L - i0), sEnd = imin(j0 + Bcw, a.S);
  for (let ii = 0; ii < rows; ii++) {
    const l = i0 + ii;
    const bi = l / bs;
    const at0 = (blocks + bi) * a.bmCols;
    const inRow = (l - bi * bs) * bs; // the row's first bit within its block
    const col = st + (<usize>ii << 2);
    let s = j0;
    while (s < sEnd) {
      const bj = s / bs;
      const runEnd = imin(sEnd, (bj + 1) * bs);
      const kind = load<u8>(<usize>a.bmKinds + <usize>(at0 + bj));
      if (kind == 0) {
        for (; s < runEnd; s++) store<f32>(col + (<usize>((s - j0) * Brw) << 2), -Infinity);
      } else if (kind == 1) {
        const bit0 = load<i32>(<usize>a.bmBitStart + (<usize>(at0 + bj) << 2)) + inRow - bj * bs; // + s
        while (s < runEnd) {
          const bit = bit0 + s;
          const byte = load<u8>(<usize>a.bmBits + <usize>(bit >>> 3));
          if ((bit & 7) == 0 && s + 8 <= runEnd && (byte == 0xff || byte == 0)) { // 8 keys at once
            if (byte == 0) for (let x = 0; x < 8; x++) store<f32>(col + (<usize>((s + x - j0) * Brw) << 2), -Infinity);
            s += 8;
            continue;
          }
          if (((byte >> <u8>(bit & 7)) & 1) == 0) store<f32>(col + (<usize>((s - j0) * Brw) << 2), -Infinity);
          s++;
        }
      } else s = runEnd;
    }
  }
}

/** tanh per lane: sign(y) (1 - e) / (1 + e), e = exp(-2|y|) (within ~1e-7 absolute); NaN stays NaN. */
// @ts-ignore: decorator
@inline function vtanh(y: v128): v128 {
  const e = vexp(f32x4.mul(f32x4.abs(y), f32x4.splat(-2)));
  const one = f32x4.splat(1);
  const t = f32x4.div(f32x4.sub(one, e), f32x4.add(one, e));
  return v128.or(t, v128.and(y, i32x4.splat(0x80000000))); // t >= 0: copy the sign of y
}

/**
 * The scores before any mask, 4 queries per vector: -slope_h |l' - s| added (ALiBi), then
 * cap tanh(x / cap) (softcap), with 1 - tanh^2 kept in dcap where given (backward's chain rule).
 */
function biasAndCap(a: AttJob, st: usize, dcap: usize, Brw: i32, Bcw: i32, i0: i32, j0: i32, h: i32): void {
  const alibi = a.slopes != 0;
  const slope = f32x4.splat(alibi ? load<f32>(<usize>a.slopes + (<usize>h << 2)) : 0);
  const capOn = a.cap != 0;
  const cap = f32x4.splat(a.cap), invCap = f32x4.splat(capOn ? 1 / a.cap : 0), one = f32x4.splat(1);
  const lanes = i32x4(0, 1, 2, 3);
  for (let jj = 0; jj < Bcw; jj++) {
    const row = <usize>(jj * Brw) << 2;
    const base = i0 + a.shift - (j0 + jj); // l' - s for ii = 0
    for (let ii = 0; ii < Brw; ii += 4) {
      const at = <usize>ii << 2;
      let x = v128.load(st + row + at);
      if (alibi) {
        const dist = f32x4.convert_i32x4_s(i32x4.abs(i32x4.add(i32x4.splat(base + ii), lanes)));
        x = f32x4.sub(x, f32x4.mul(slope, dist));
      }
      if (capOn) {
        const t = vtanh(f32x4.mul(x, invCap));
        x = f32x4.mul(cap, t);
        if (dcap != 0) v128.store(dcap + row + at, f32x4.sub(one, f32x4.mul(t, t)));
      }
      v128.store(st + row + at, x);
    }
  }
}

/** dst[e][ii] = scale * src[ii][e] for a block of `rows` rows of `cols` floats. */
function packScaledTranspose(dst: usize, src: usize, rows: i32, cols: i32, scale: f32): void {
  for (let ii = 0; ii < rows; ii++) {
    const s = src + (<usize>(ii * cols) << 2);
    for (let e = 0; e < cols; e++) store<f32>(dst + (<usize>(e * rows + ii) << 2), load<f32>(s + (<usize>e << 2)) * scale);
  }
}

/**
 * One tile of scores, transposed: st[Bcw][Brw] = K_j . Q_i^T (kb: the key block's first row; qt: the
 * query block packed transposed and scaled), ALiBi and the softcap (1 - tanh^2 into dcap where
 * given), the mask added, and -Infinity where causality, the window, the documents or the block mask
 * hide a key (`kind` from tileKind says which passes the tile needs), and for padded keys.
 * Forward, backward and splitLargeLse all form their scores here.
 */
function scoreTile(
  a: AttJob, st: usize, kb: usize, qt: usize, Brw: i32, Bcw: i32, i0: i32, j0: i32, b: i32, h: i32, kind: i32, dcap: usize,
): void {
  const rowBytes = <usize>Brw << 2;
  gemm(st, rowBytes, kb, <usize>a.Ep << 2, 4, qt, rowBytes, Bcw, Brw, a.Ep, false);
  if (a.slopes != 0 || a.cap != 0) biasAndCap(a, st, dcap, Brw, Bcw, i0, j0, h);
  if (a.maskKind != 0) applyMask(a, st, Brw, Bcw, i0, j0, b, h);
  if (rangesCut(a, Brw, Bcw, i0, j0)) applyRanges(a, st, Brw, Bcw, i0, j0);
  if (kind & TILE_DOCS) applyDocs(a, st, Brw, Bcw, i0, j0, b);
  if (kind & TILE_BLOCKS) applyBlocks(a, st, Brw, Bcw, i0, j0, b, h);
}

/**
 * One step of the online softmax, over a score tile st[Bcw][Brw] (keys x queries, scaled and masked),
 * 4 queries per vector: the row max m (mrow) and the float64 row sum l (lrow) take in the tile, alpha
 * gets exp(m_old - m_new) (the factor by which earlier sums shrink), and st is left holding
 * P = exp(s - m_new), times the keep mask with dropout. NaN scores are passed over by the max but
 * make l NaN. The forward and splitLargeLse both go through here, so they get the same m and l.
 */
function softmaxTile(
  st: usize, Brw: i32, Bcw: i32, j0: i32, mrow: usize, lrow: usize, alpha: usize, dropOn: bool, rs: usize, thr: v128,
): void {
  const rowBytes = <usize>Brw << 2;
  const zero = f32x4.splat(0);
  const ninf = f32x4.splat(-Infinity);
  for (let c = 0; c < Brw; c += 4) {
    const cOff = <usize>c << 2;
    const mOld = v128.load(mrow + cOff);
    let mx = mOld;
    let p = st + cOff;
    for (let jj = 0; jj < Bcw; jj++) {
      mx = f32x4.pmax(mx, v128.load(p));
      p += rowBytes;
    }
    const mSafe = v128.bitselect(zero, mx, f32x4.eq(mx, ninf));
    v128.store(alpha + cOff, vexp(f32x4.sub(mOld, mSafe)));
    v128.store(mrow + cOff, mx);
    // the row sums l are kept in float64 (see the end of attFwdTask); two keys per turn (Bcw is a
    // multiple of 8), which pays for the widening
    let sum0 = f64x2.splat(0), sum1 = sum0;
    p = st + cOff;
    if (dropOn) {
      const states = v128.load(rs + cOff);
      for (let jj = 0; jj < Bcw; jj += 2) {
        const e = vexp(f32x4.sub(v128.load(p), mSafe));
        const f = vexp(f32x4.sub(v128.load(p + rowBytes), mSafe));
        sum0 = f64x2.add(sum0, f64x2.add(widenLo(e), widenLo(f)));
        sum1 = f64x2.add(sum1, f64x2.add(widenHi(e), widenHi(f)));
        v128.store(p, v128.and(e, vkeep(states, j0 + jj, thr)));
        v128.store(p + rowBytes, v128.and(f, vkeep(states, j0 + jj + 1, thr)));
        p += rowBytes << 1;
      }
    } else {
      for (let jj = 0; jj < Bcw; jj += 2) {
        const e = vexp(f32x4.sub(v128.load(p), mSafe));
        const f = vexp(f32x4.sub(v128.load(p + rowBytes), mSafe));
        sum0 = f64x2.add(sum0, f64x2.add(widenLo(e), widenLo(f)));
        sum1 = f64x2.add(sum1, f64x2.add(widenHi(e), widenHi(f)));
        v128.store(p, e);
        v128.store(p + rowBytes, f);
        p += rowBytes << 1;
      }
    }
    const lp = lrow + (<usize>c << 3);
    const al = v128.load(alpha + cOff);
    v128.store(lp, f64x2.add(f64x2.mul(v128.load(lp), widenLo(al)), sum0));
    v128.store(lp, f64x2.add(f64x2.mul(v128.load(lp, 16), widenHi(al)), sum1), 16);
  }
}

// ---------------------------------------------------------------------------------------------
// Per-thread scratch. Each layout is one list of parts (sizes in floats, in order); the address of a
// part and the total come from the same function, so the host's allocation (the exported
// *_scratch_floats) and the tasks' carving cannot drift apart.
// ---------------------------------------------------------------------------------------------

/** Offset in floats of part `part` of a layout whose parts, in order, have sizes s0, s1, ... floats. */
// @ts-ignore: decorator
@inline function partAt(
  part: i32, s0: i32, s1: i32, s2: i32, s3: i32, s4: i32 = 0, s5: i32 = 0, s6: i32 = 0, s7: i32 = 0, s8: i32 = 0,
): i32 {
  let at = 0;
  if (part > 0) at += s0;
  if (part > 1) at += s1;
  if (part > 2) at += s2;
  if (part > 3) at += s3;
  if (part > 4) at += s4;
  if (part > 5) at += s5;
  if (part > 6) at += s6;
  if (part > 7) at += s7;
  if (part > 8) at += s8;
  return at;
}

// forward: qt [Ep][Br] | st [Bc][Br] | oa [Br][Evp] | m [Br] | l [Br] f64 | alpha [Br] | rs [Br]
const F_QT: i32 = 0, F_ST: i32 = 1, F_OA: i32 = 2, F_M: i32 = 3, F_L: i32 = 4, F_ALPHA: i32 = 5, F_RS: i32 = 6, F_END: i32 = 7;

// @ts-ignore: decorator
@inline function fwdPart(part: i32, Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return partAt(part, Ep * Br, Bc * Br, Br * Evp, Br, 2 * Br, Br, Br);
}

/** The DQ_RING pending dQ tiles of a backward task (see flushDq). */
const DQ_RING: i32 = 8;

// backward: st [Bc][Br] | dpt [Bc][Br] | dk [Bc][Ep] | dv [Bc][Evp] | rs [Br] | dcap [Bc][Br] |
//           ring [DQ_RING][Br][Ep] | meta [DQ_RING] x 2 i32 | exact 4 f64
const B_ST: i32 = 0, B_DPT: i32 = 1, B_DK: i32 = 2, B_DV: i32 = 3, B_RS: i32 = 4, B_DCAP: i32 = 5, B_RING: i32 = 6, B_META: i32 = 7, B_EXACT: i32 = 8, B_END: i32 = 9;

// @ts-ignore: decorator
@inline function bwdPart(part: i32, Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return partAt(part, Bc * Br, Bc * Br, Bc * Ep, Bc * Evp, Br, Bc * Br, DQ_RING * Br * Ep, 2 * DQ_RING, 8);
}

// backward prep (splitLargeLse): st [Bc][Br] | m [Br] | l [Br] f64 | alpha [Br]
const P_ST: i32 = 0, P_M: i32 = 1, P_L: i32 = 2, P_ALPHA: i32 = 3, P_END: i32 = 4;

// @ts-ignore: decorator
@inline function prepPart(part: i32, Br: i32, Bc: i32): i32 {
  return partAt(part, Bc * Br, Br, 2 * Br, Br);
}

/** Scratch floats one forward task needs. */
/**
 * Copies `rows` rows of `bytes` bytes from src (rows `srcStride` bytes apart) to dst (rows `dstStride`
 * apart), zeroing `padBytes` after each copied row at dst: the host's staging of operands whose heads
 * lie side by side in their rows (AttentionParams.layout; src/kernels/wasm/backend.ts), one call per
 * head and block of rows instead of one host call per row.
 */
export function copyRows(dst: usize, dstStride: usize, src: usize, srcStride: usize, rows: i32, bytes: usize, padBytes: usize): void {
  for (let r = 0; r < rows; r++) {
    const d = dst + <usize>r * dstStride;
    memory.copy(d, src + <usize>r * srcStride, bytes);
    if (padBytes > 0) memory.fill(d + bytes, 0, padBytes);
  }
}

export function fwdScratchFloats(Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return fwdPart(F_END, Br, Bc, Ep, Evp);
}

/** Scratch floats one backward task (prep or main) needs. */
export function bwdScratchFloats(Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  const main = bwdPart(B_END, Br, Bc, Ep, Evp), prep = prepPart(P_END, Br, Bc);
  return main > prep ? main : prep;
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

export function attFwdTask(job: usize, t: i32, tid: i32): void {
  const a = attJob(job);
  const H = a.H, Hkv = a.Hkv, L = a.L, S = a.S;
  const Lp = a.Lp, Sp = a.Sp, Ep = a.Ep, Evp = a.Evp, Br = a.Br, Bc = a.Bc;
  const dropOn = a.dropOn != 0;
  const G = H / Hkv;
  const nI = (Lp + Br - 1) / Br;

  // heavier (later) query blocks first: with causality they see more keys
  const hl = t / nI;
  const i = nI - 1 - (t - hl * nI);
  const gl = hl / G, hh = hl - gl * G;
  const g = a.G0 + gl;
  const b = g / Hkv, kvh = g - b * Hkv;
  const h = kvh * G + hh;
  const i0 = i * Br;
  const Brw = imin(Br, Lp - i0);

  const q = <usize>a.q + (<usize>((hl * Lp + i0) * Ep) << 2);
  const kbase = <usize>a.k + (<usize>(gl * Sp * Ep) << 2);
  const vbase = <usize>a.v + (<usize>(gl * Sp * Evp) << 2);
  const o = <usize>a.o + (<usize>((hl * Lp + i0) * Evp) << 2);
  const rowMax = <usize>a.rowMax + (<usize>(hl * Lp + i0) << 2);
  const rowSum = <usize>a.rowSum + (<usize>(hl * Lp + i0) << 3);

  const sc = scratchOf(job, tid);
  const qt = sc + (<usize>fwdPart(F_QT, Br, Bc, Ep, Evp) << 2);
  const st = sc + (<usize>fwdPart(F_ST, Br, Bc, Ep, Evp) << 2);
  const oa = sc + (<usize>fwdPart(F_OA, Br, Bc, Ep, Evp) << 2);
  const mrow = sc + (<usize>fwdPart(F_M, Br, Bc, Ep, Evp) << 2);
  const lrow = sc + (<usize>fwdPart(F_L, Br, Bc, Ep, Evp) << 2); // float64
  const alpha = sc + (<usize>fwdPart(F_ALPHA, Br, Bc, Ep, Evp) << 2);
  const rs = sc + (<usize>fwdPart(F_RS, Br, Bc, Ep, Evp) << 2);

  // Q block transposed and scaled: qt[e][ii] = scale * q[ii][e], so the scores come out scaled
  packScaledTranspose(qt, q, Brw, Ep, a.scale);
  startRows(a, mrow, lrow, Brw, h);
  memory.fill(oa, 0, <usize>(Brw * Evp) << 2);
  if (dropOn) fillRowStates(rs, a.dropSeed, (b * H + h) * L + i0, Brw);
  const thr = i32x4.splat(<i32>a.dropThr);

  // the key tiles the block's rows can see: a run (causality and the window), less the hidden ones
  const jLast = lastKeyTile(a, i0, imin(Brw, L - i0));
  const rowBytes = <usize>Brw << 2;
  let first = true;

  for (let j = firstKeyTile(a, i0); j <= jLast; j++) {
    const kind = tileKind(a, b, h, i, j);
    if (kind == TILE_HIDDEN) continue;
    const j0 = j * Bc;
    const Bcw = imin(Bc, Sp - j0);
    // S^T = K_j . Q_i^T  (Bcw x Brw)
    scoreTile(a, st, kbase + (<usize>(j0 * Ep) << 2), qt, Brw, Bcw, i0, j0, b, h, kind, 0);

    softmaxTile(st, Brw, Bcw, j0, mrow, lrow, alpha, dropOn, rs, thr);
    // O = diag(alpha) O + P V_j (O is still 0 before the first tile)
    if (!first) {
      for (let ii = 0; ii < Brw; ii++) {
        const al = v128.load32_splat(alpha + (<usize>ii << 2));
        const row = oa + (<usize>(ii * Evp) << 2);
        for (let e = 0; e < Evp; e += 4) {
          const at = row + (<usize>e << 2);
          v128.store(at, f32x4.mul(v128.load(at), al));
        }
      }
    }
    gemm(oa, <usize>Evp << 2, st, 4, rowBytes, vbase + (<usize>(j0 * Evp) << 2), <usize>Evp << 2, Brw, Evp, Bcw, true);
    first = false;
  }

  // out = O / l (times 1 / (1 - p) with dropout), divided in float64. m and l go out apart: the host
  // forms lse = m + log(l) in float64, since float32 could not hold it to better than ulp(m) (3e-5 at
  // |m| ~ 300). l is summed in float64 and out rounded once: backward's D = rowsum(dO * out) must be
  // as exact as float32 storage allows, since where a row's softmax is nearly one-hot every error in
  // D goes straight into the (small) gradients dq and dk. l = 0 exactly when the row sees no key
  // (then out = 0; with a sink l >= 1 and O = 0: out = 0 too); a NaN score makes l NaN, and out NaN with it.
  const inv = dropOn ? <f64>a.dropInv : 1.0;
  memory.copy(rowMax, mrow, rowBytes);
  memory.copy(rowSum, lrow, rowBytes << 1);
  for (let ii = 0; ii < Brw; ii++) {
    const l = load<f64>(lrow + (<usize>ii << 3));
    const dst = o + (<usize>(ii * Evp) << 2);
    const src = oa + (<usize>(ii * Evp) << 2);
    if (l == 0) {
      memory.fill(dst, 0, <usize>Evp << 2);
      continue;
    }
    const f = f64x2.splat(inv / l);
    for (let e = 0; e < Evp; e += 4) {
      const x = v128.load(src + (<usize>e << 2));
      v128.store(dst + (<usize>e << 2), narrow(f64x2.mul(widenLo(x), f), f64x2.mul(widenHi(x), f)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

/**
 * |lse| from which the staged lse = hi + lo no longer gives P = exp(s - lse) to float32 accuracy:
 * float64 holds lse = m + log(l) to ulp/2 = 2^-26 below 2^28, and loses log(l) entirely next to
 * |m| ~ 1e16 (then every key tied at the maximum would get P = 1 instead of 1 / ties).
 */
const LSE_SPLIT: f32 = 268435456.0; // 2^28

/**
 * For the rows of query block (hl, i0) whose staged |lse| is at least LSE_SPLIT (and finite: a row
 * that sees no key stages +Infinity), m and l again from the scores, exactly as the forward formed
 * them (the same tiles through softmaxTile), staged as hi = m, lo = log(l): then
 * (s - hi) - lo keeps log(l) whatever the size of m. Such rows only come from huge finite masks
 * (-1e30, or -3.4e38 as Hugging Face models use), so the extra pass over their scores is rare.
 */
function splitLargeLse(a: AttJob, sc: usize, hl: i32, i0: i32, Brw: i32): void {
  const Lp = a.Lp, Sp = a.Sp, Ep = a.Ep, Br = a.Br, Bc = a.Bc;
  const hiRow = <usize>a.lseHi + (<usize>(hl * Lp + i0) << 2);
  const loRow = <usize>a.lseLo + (<usize>(hl * Lp + i0) << 2);
  let any = false;
  for (let ii = 0; ii < Brw; ii++) {
    const x = abs<f32>(load<f32>(hiRow + (<usize>ii << 2)));
    if (x >= LSE_SPLIT && x != Infinity) any = true;
  }
  if (!any) return;

  const G = a.H / a.Hkv;
  const gl = hl / G, hh = hl - gl * G;
  const g = a.G0 + gl;
  const b = g / a.Hkv, kvh = g - b * a.Hkv;
  const h = kvh * G + hh;
  const kbase = <usize>a.k + (<usize>(gl * Sp * Ep) << 2);
  const qt = <usize>a.qt + (<usize>((hl * Lp + i0) * Ep) << 2);
  const st = sc + (<usize>prepPart(P_ST, Br, Bc) << 2);
  const mrow = sc + (<usize>prepPart(P_M, Br, Bc) << 2);
  const lrow = sc + (<usize>prepPart(P_L, Br, Bc) << 2); // float64
  const alpha = sc + (<usize>prepPart(P_ALPHA, Br, Bc) << 2);
  const i = i0 / Br;
  const jLast = lastKeyTile(a, i0, imin(Brw, a.L - i0));
  startRows(a, mrow, lrow, Brw, h);
  for (let j = firstKeyTile(a, i0); j <= jLast; j++) { // the forward's tiles, in its order
    const kind = tileKind(a, b, h, i, j);
    if (kind == TILE_HIDDEN) continue;
    const j0 = j * Bc;
    const Bcw = imin(Bc, Sp - j0);
    scoreTile(a, st, kbase + (<usize>(j0 * Ep) << 2), qt, Brw, Bcw, i0, j0, b, h, kind, 0);
    softmaxTile(st, Brw, Bcw, j0, mrow, lrow, alpha, false, 0, i32x4.splat(0));
  }
  for (let ii = 0; ii < Brw; ii++) {
    const x = abs<f32>(load<f32>(hiRow + (<usize>ii << 2)));
    if (x < LSE_SPLIT || x == Infinity) continue;
    const l = load<f64>(lrow + (<usize>ii << 3));
    const noKey = l == 0; // only if lse did not come from these scores
    store<f32>(hiRow + (<usize>ii << 2), noKey ? Infinity : load<f32>(mrow + (<usize>ii << 2)));
    store<f32>(loRow + (<usize>ii << 2), noKey ? 0 : Mathf.log(<f32>l));
  }
}

/**
 * D = rowsum(dO * O) for `rows` rows (Evp floats each) into float64s: float32 products are exact in
 * float64, summed there (two lanes over e = 0, 1 mod 2 for each of two vectors, then added). Padded
 * rows and columns are staged as zeros and give 0.
 */
function rowDots(D: usize, dO: usize, o: usize, rows: i32, Evp: i32): void {
  for (let r = 0; r < rows; r++) {
    const pd = dO + (<usize>(r * Evp) << 2), po = o + (<usize>(r * Evp) << 2);
    let a0 = f64x2.splat(0), a1 = a0;
    for (let e = 0; e < Evp; e += 4) {
      const x = v128.load(pd + (<usize>e << 2)), y = v128.load(po + (<usize>e << 2));
      a0 = f64x2.add(a0, f64x2.mul(widenLo(x), widenLo(y)));
      a1 = f64x2.add(a1, f64x2.mul(widenHi(x), widenHi(y)));
    }
    const sum = f64x2.add(a0, a1);
    store<f64>(D + (<usize>r << 3), f64x2.extract_lane(sum, 0) + f64x2.extract_lane(sum, 1));
  }
}

/**
 * Backward prep, task (head, query block): Q^T (scaled) and dO^T of the block, D = rowsum(dO * O)
 * of its rows, m, l again for its rows with a huge lse (splitLargeLse), the block's dQ zeroed, and
 * its dQ turn: the first key block that sees it.
 */
export function attBwdPrepTask(job: usize, t: i32, tid: i32): void {
  const a = attJob(job);
  const Lp = a.Lp, Ep = a.Ep, Evp = a.Evp, Br = a.Br;
  const nI = (Lp + Br - 1) / Br;
  const hl = t / nI;
  const i = t - hl * nI;
  const i0 = i * Br;
  const Brw = imin(Br, Lp - i0);
  const q = <usize>a.q + (<usize>((hl * Lp + i0) * Ep) << 2);
  const qt = <usize>a.qt + (<usize>((hl * Lp + i0) * Ep) << 2);
  const dO = <usize>a.dO + (<usize>((hl * Lp + i0) * Evp) << 2);
  const dOt = <usize>a.dOt + (<usize>((hl * Lp + i0) * Evp) << 2);
  packScaledTranspose(qt, q, Brw, Ep, a.scale);
  packScaledTranspose(dOt, dO, Brw, Evp, 1);
  rowDots(<usize>a.D + (<usize>(hl * Lp + i0) << 3), dO, <usize>a.o + (<usize>((hl * Lp + i0) * Evp) << 2), Brw, Evp);
  memory.fill(<usize>a.dq + (<usize>((hl * Lp + i0) * Ep) << 2), 0, <usize>(Brw * Ep) << 2);
  splitLargeLse(a, scratchOf(job, tid), hl, i0, Brw);
  atomic.store<i32>(<usize>a.cnt + (<usize>(hl * nI + i) << 2), nextKeyTile(a, batchOf(a, hl), headOf(a, hl), i, 0));
}

/**
 * dst (4 float64s) = dO . v for 4 queries and one key: float64 sums of exact products, e in order.
 * dOt points at the 4 queries' column of the block's dO^T ([Evp][rows], `rowBytes` apart), v at the key's row.
 */
function exactDp(dst: usize, dOt: usize, rowBytes: usize, v: usize, Evp: i32): void {
  let a0 = f64x2.splat(0), a1 = a0;
  let p = dOt;
  for (let e = 0; e < Evp; e++) {
    const x = v128.load(p);
    const w = f64x2.splat(<f64>load<f32>(v + (<usize>e << 2)));
    a0 = f64x2.add(a0, f64x2.mul(widenLo(x), w));
    a1 = f64x2.add(a1, f64x2.mul(widenHi(x), w));
    p += rowBytes;
  }
  v128.store(dst, a0);
  v128.store(dst, a1, 16);
}

/**
 * Waits until it is key block j's turn to add into the dQ block behind counter `cnt` (the counter
 * holds the key block whose turn it is), spinning; false if a task of the job failed meanwhile (that
 * block's turn may never come).
 * Not memory.atomic.wait32: in V8 11 (Node 20) its Liftoff (baseline-tier) code made later dQ
 * additions land out of order now and then (test/kernels-stress.test.ts reproduced lost updates with
 * Liftoff only, never with TurboFan only, and never without the wait). The ring below keeps waits rare.
 */
function waitTurn(job: usize, cnt: usize, j: i32): bool {
  while (atomic.load<i32>(cnt) != j) {
    if (jobFailed(job)) return false;
  }
  return true;
}

/*
 * dQ contributions of one key-block task wait in a ring of DQ_RING tiles until their turn comes, so a
 * thread stalls only when it is DQ_RING tiles ahead of the key block before it (not at every tile):
 * threads stay decoupled when one of them is descheduled for a while.
 */

/**
 * Adds the oldest pending dQ tile into dQ when its turn has come, or waits for it if `block`. False
 * when not added: its turn has not come (without `block`), or the job failed (with it).
 */
function flushDq(job: usize, ring: usize, meta: usize, head: i32, j: i32, block: bool): bool {
  const a = attJob(job);
  const Lp = a.Lp, Ep = a.Ep, Br = a.Br;
  const nI = (Lp + Br - 1) / Br;
  const hl = load<i32>(meta + (<usize>head << 3));
  const i = load<i32>(meta + (<usize>head << 3), 4);
  const cnt = <usize>a.cnt + (<usize>(hl * nI + i) << 2);
  if (block) {
    if (!waitTurn(job, cnt, j)) return false;
  } else if (atomic.load<i32>(cnt) != j) return false;
  const i0 = i * Br;
  const n = imin(Br, Lp - i0) * Ep;
  const dst = <usize>a.dq + (<usize>((hl * Lp + i0) * Ep) << 2);
  const src = ring + (<usize>(head * Br * Ep) << 2);
  for (let e = 0; e < n; e += 4) {
    const at = dst + (<usize>e << 2);
    v128.store(at, f32x4.add(v128.load(at), v128.load(src + (<usize>e << 2))));
  }
  // the turn passes to the next key block that sees this query block (tiles hidden by causality, the
  // window, the documents or the block mask add nothing, and are passed over)
  atomic.store<i32>(cnt, nextKeyTile(a, batchOf(a, hl), headOf(a, hl), i, j + 1));
  return true;
}

/**
 * Backward main task t: key blocks [c jChunk, (c + 1) jChunk) of kv group gl, in order, chunk c =
 * t / NG. Chunk major, so tasks t and t + 1 are two kv groups, not two chunks of one group: threads
 * running side by side do not wait on each other's dQ turns (a chunk's first block waits for the
 * previous chunk's last, taken NG tasks earlier and usually done). Within a chunk a block's turns
 * follow the same thread's previous block, which has flushed all its tiles: they never wait. The host
 * makes a chunk a whole group where there are groups enough for the threads (no task then waits on
 * another), else one key block (threads share a group's key blocks and hand its dQ turns on).
 */
export function attBwdTask(job: usize, t: i32, tid: i32): void {
  const a = attJob(job);
  const nJ = (a.Sp + a.Bc - 1) / a.Bc;
  const per = imax(1, a.jChunk);
  const c = t / a.NG;
  const gl = t - c * a.NG;
  const jEnd = imin(nJ, (c + 1) * per);
  for (let j = c * per; j < jEnd; j++) {
    if (jobFailed(job)) return;
    bwdKeyBlock(job, gl, j, tid);
  }
}

/** Key block j of kv group gl: dK, dV of the block, its dQ tiles added in turn. */
function bwdKeyBlock(job: usize, gl: i32, j: i32, tid: i32): void {
  const a = attJob(job);
  const H = a.H, Hkv = a.Hkv, L = a.L, S = a.S;
  const Lp = a.Lp, Sp = a.Sp, Ep = a.Ep, Evp = a.Evp, Br = a.Br, Bc = a.Bc;
  const dropOn = a.dropOn != 0;
  const G = H / Hkv;

  const g = a.G0 + gl;
  const b = g / Hkv, kvh = g - b * Hkv;
  const j0 = j * Bc;
  const Bcw = imin(Bc, Sp - j0);

  const kb = <usize>a.k + (<usize>((gl * Sp + j0) * Ep) << 2);
  const vb = <usize>a.v + (<usize>((gl * Sp + j0) * Evp) << 2);

  const sc = scratchOf(job, tid);
  const st = sc + (<usize>bwdPart(B_ST, Br, Bc, Ep, Evp) << 2);
  const dpt = sc + (<usize>bwdPart(B_DPT, Br, Bc, Ep, Evp) << 2);
  const dk = sc + (<usize>bwdPart(B_DK, Br, Bc, Ep, Evp) << 2);
  const dv = sc + (<usize>bwdPart(B_DV, Br, Bc, Ep, Evp) << 2);
  const rs = sc + (<usize>bwdPart(B_RS, Br, Bc, Ep, Evp) << 2);
  const dcap = a.cap != 0 ? sc + (<usize>bwdPart(B_DCAP, Br, Bc, Ep, Evp) << 2) : 0; // 1 - tanh^2 per score
  const ring = sc + (<usize>bwdPart(B_RING, Br, Bc, Ep, Evp) << 2);
  const meta = sc + (<usize>bwdPart(B_META, Br, Bc, Ep, Evp) << 2);
  const exact = sc + (<usize>bwdPart(B_EXACT, Br, Bc, Ep, Evp) << 2); // 4 float64s
  let head = 0, pending = 0;
  memory.fill(dk, 0, <usize>(Bcw * Ep) << 2);
  memory.fill(dv, 0, <usize>(Bcw * Evp) << 2);

  const thr = i32x4.splat(<i32>a.dropThr);
  const invV32 = f32x4.splat(a.dropInv);
  const invV = f64x2.splat(<f64>a.dropInv);
  const scaleV = f32x4.splat(a.scale);
  const peakV = f32x4.splat(0.25);
  // the query tiles that can see the block's keys: a run (causality and the window), less the hidden ones
  const iFirst = firstQueryTile(a, j0), iLast = lastQueryTile(a, j0, imin(Bcw, S - j0));

  for (let hh = 0; hh < G; hh++) {
    const h = kvh * G + hh;
    const hl = gl * G + hh;
    for (let i = iFirst; i <= iLast; i++) {
      const kind = tileKind(a, b, h, i, j);
      if (kind == TILE_HIDDEN) continue;
      const i0 = i * Br;
      const Brw = imin(Br, Lp - i0);
      const rowBytes = <usize>Brw << 2;
      if (dropOn) fillRowStates(rs, a.dropSeed, (b * H + h) * L + i0, Brw);

      // S^T = K_j . Q_i^T and dP^T = V_j . dO_i^T  (Bcw x Brw each)
      const dOt = <usize>a.dOt + (<usize>((hl * Lp + i0) * Evp) << 2);
      scoreTile(a, st, kb, <usize>a.qt + (<usize>((hl * Lp + i0) * Ep) << 2), Brw, Bcw, i0, j0, b, h, kind, dcap);
      gemm(dpt, rowBytes, vb, <usize>Evp << 2, 4, dOt, rowBytes, Bcw, Brw, Evp, false);

      // P = exp((s - lseHi) - lseLo); dS = scale * P * (dP - D); st <- dropped P, dpt <- dS.
      // Where P > 1/4 (a peak of the row), dP - D is formed in float64 from a float64 dP (exactDp):
      // near a one-hot row dP and D agree to many digits there, and float32 would leave only their
      // rounding errors. Below 1/4 what a peak cancels is mild: a factor 1 / (1 - P) < 4/3.
      const hiRow = <usize>a.lseHi + (<usize>(hl * Lp + i0) << 2);
      const loRow = <usize>a.lseLo + (<usize>(hl * Lp + i0) << 2);
      const dRow = <usize>a.D + (<usize>(hl * Lp + i0) << 3);
      for (let c = 0; c < Brw; c += 4) {
        const cOff = <usize>c << 2;
        const hiV = v128.load(hiRow + cOff), loV = v128.load(loRow + cOff);
        const d0 = v128.load(dRow + (<usize>c << 3)), d1 = v128.load(dRow + (<usize>c << 3), 16);
        const d32 = narrow(d0, d1);
        let ps = st + cOff, pd = dpt + cOff;
        if (dropOn) {
          const states = v128.load(rs + cOff);
          for (let jj = 0; jj < Bcw; jj++) {
            const P = vexp(f32x4.sub(f32x4.sub(v128.load(ps), hiV), loV));
            const keep = vkeep(states, j0 + jj, thr);
            let diff = f32x4.sub(v128.and(f32x4.mul(v128.load(pd), invV32), keep), d32);
            if (v128.any_true(f32x4.gt(P, peakV))) {
              exactDp(exact, dOt + cOff, rowBytes, vb + (<usize>(jj * Evp) << 2), Evp);
              const x0 = v128.and(f64x2.mul(v128.load(exact), invV), i64x2.extend_low_i32x4_s(keep));
              const x1 = v128.and(f64x2.mul(v128.load(exact, 16), invV), i64x2.extend_high_i32x4_s(keep));
              diff = narrow(f64x2.sub(x0, d0), f64x2.sub(x1, d1));
            }
            v128.store(pd, f32x4.mul(f32x4.mul(P, diff), scaleV));
            v128.store(ps, v128.and(f32x4.mul(P, invV32), keep));
            ps += rowBytes;
            pd += rowBytes;
          }
        } else {
          for (let jj = 0; jj < Bcw; jj++) {
            const P = vexp(f32x4.sub(f32x4.sub(v128.load(ps), hiV), loV));
            let diff = f32x4.sub(v128.load(pd), d32);
            if (v128.any_true(f32x4.gt(P, peakV))) {
              exactDp(exact, dOt + cOff, rowBytes, vb + (<usize>(jj * Evp) << 2), Evp);
              diff = narrow(f64x2.sub(v128.load(exact), d0), f64x2.sub(v128.load(exact, 16), d1));
            }
            v128.store(pd, f32x4.mul(f32x4.mul(P, diff), scaleV));
            v128.store(ps, P);
            ps += rowBytes;
            pd += rowBytes;
          }
        }
      }
      if (dcap != 0) { // through the softcap: d(cap tanh(x / cap)) = (1 - tanh^2) dx, so dS *= dcap
        for (let x = 0; x < Bcw * Brw; x += 4) {
          const at = <usize>x << 2;
          v128.store(dpt + at, f32x4.mul(v128.load(dpt + at), v128.load(dcap + at)));
        }
      }
      // dV_j += P^T dO_i ; dK_j += dS^T Q_i
      gemm(dv, <usize>Evp << 2, st, rowBytes, 4, <usize>a.dO + (<usize>((hl * Lp + i0) * Evp) << 2), <usize>Evp << 2, Bcw, Evp, Brw, true);
      gemm(dk, <usize>Ep << 2, dpt, rowBytes, 4, <usize>a.q + (<usize>((hl * Lp + i0) * Ep) << 2), <usize>Ep << 2, Bcw, Ep, Brw, true);
      // dQ_i += dS K_j, added in key-block order: the tile goes to the ring, tiles whose turn has come
      // are flushed; a full ring waits for its oldest
      if (pending == DQ_RING) {
        if (!flushDq(job, ring, meta, head, j, true)) return;
        head = head + 1 == DQ_RING ? 0 : head + 1;
        pending--;
      }
      const slot = head + pending < DQ_RING ? head + pending : head + pending - DQ_RING;
      gemm(ring + (<usize>(slot * Br * Ep) << 2), <usize>Ep << 2, dpt, 4, rowBytes, kb, <usize>Ep << 2, Brw, Ep, Bcw, false);
      store<i32>(meta + (<usize>slot << 3), hl);
      store<i32>(meta + (<usize>slot << 3), i, 4);
      pending++;
      while (pending > 0 && flushDq(job, ring, meta, head, j, false)) {
        head = head + 1 == DQ_RING ? 0 : head + 1;
        pending--;
      }
    }
  }
  while (pending > 0) {
    if (!flushDq(job, ring, meta, head, j, true)) return;
    head = head + 1 == DQ_RING ? 0 : head + 1;
    pending--;
  }
  memory.copy(<usize>a.dk + (<usize>((gl * Sp + j0) * Ep) << 2), dk, <usize>(Bcw * Ep) << 2);
  memory.copy(<usize>a.dv + (<usize>((gl * Sp + j0) * Evp) << 2), dv, <usize>(Bcw * Evp) << 2);
}
