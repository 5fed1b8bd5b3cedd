// FlashAttention-2 style fused attention on float32, one task = one tile row or column:
//   forward:  task (head, query block)  -> out rows, row max m and row sum l of that block (online
//             softmax over key blocks; the host forms lse = m + log(l) in float64)
//   backward: prep task (head, query block) -> Q^T (scaled) and dO^T packed per block
//             main task (kv group, key block) -> dK, dV of that block (summed over the group's heads
//             and query blocks in a fixed order) and its share of dQ, one tile per query block, added
//             into each dQ block in increasing key-block order (a per-block counter makes later key
//             blocks wait; a small ring of pending tiles keeps threads from waiting at every tile), so
//             every output element has one fixed summation order whatever the thread count.
// Scores are kept transposed, S^T[key][query], so the softmax statistics of 4 queries sit in one
// vector and every row max / row sum is a vertical SIMD operation. No L x S matrix exists: the
// per-thread scratch is a few tiles. Tiles that causality hides entirely are never computed.
// Precision: scores, P and the products are float32; the few places where float32 would cost accuracy
// that float32 storage could keep (nearly one-hot rows, |scores| in the hundreds) use float64: the row
// sums l and the final division, lse (staged as two float32s), D, and dP - D where P > 1/4. Where
// |lse| is so large that float64 could not keep log(l) next to m (a row masked with -1e30), the
// backward takes m and l from the scores again (splitLargeLse).
// NaN propagates as in the textbook softmax: a NaN score makes its row's out, lse and gradients NaN.

import { AttJob } from "./layout";
import { attJob, imin, jobFailed, scratchOf } from "./job";
import { gemm, rowState, vexp, vkeep } from "./simd";

/** Key limits per query row of a block: key s is visible from row i0 + ii iff s <= lim[ii]. */
function fillLimits(lim: usize, i0: i32, rows: i32, S: i32, off: i32): void {
  for (let ii = 0; ii < rows; ii++) store<i32>(lim + (<usize>ii << 2), imin(S - 1, i0 + ii + off));
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

/** Scalar pass: -Infinity where key j0 + jj is beyond the row's limit (causality, padded keys). */
function applyLimits(st: usize, Brw: i32, Bcw: i32, j0: i32, lim: usize): void {
  for (let jj = 0; jj < Bcw; jj++) {
    const s = j0 + jj;
    const row = st + (<usize>(jj * Brw) << 2);
    for (let ii = 0; ii < Brw; ii++) {
      if (s > load<i32>(lim + (<usize>ii << 2))) store<f32>(row + (<usize>ii << 2), -Infinity);
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
 * query block packed transposed and scaled), the mask added, and -Infinity for keys past each row's
 * limit (lim, see fillLimits). Forward, backward and splitLargeLse all form their scores here.
 */
function scoreTile(a: AttJob, st: usize, kb: usize, qt: usize, Brw: i32, Bcw: i32, i0: i32, j0: i32, b: i32, h: i32, lim: usize): void {
  const rowBytes = <usize>Brw << 2;
  gemm(st, rowBytes, kb, <usize>a.Ep << 2, 4, qt, rowBytes, Bcw, Brw, a.Ep, false);
  if (a.maskKind != 0) applyMask(a, st, Brw, Bcw, i0, j0, b, h);
  if (j0 + Bcw - 1 > load<i32>(lim)) applyLimits(st, Brw, Bcw, j0, lim);
}

/** Key blocks a query block with limits `lim` (Brw rows) sees: the last row sees the most keys. */
function keyBlocks(lim: usize, Brw: i32, Bc: i32): i32 {
  const limMax = load<i32>(lim + (<usize>(Brw - 1) << 2));
  return limMax < 0 ? 0 : limMax / Bc + 1;
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

// forward: qt [Ep][Br] | st [Bc][Br] | oa [Br][Evp] | m [Br] | l [Br] f64 | alpha [Br] | rs [Br] | lim [Br]
const F_QT: i32 = 0, F_ST: i32 = 1, F_OA: i32 = 2, F_M: i32 = 3, F_L: i32 = 4, F_ALPHA: i32 = 5, F_RS: i32 = 6, F_LIM: i32 = 7, F_END: i32 = 8;

// @ts-ignore: decorator
@inline function fwdPart(part: i32, Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return partAt(part, Ep * Br, Bc * Br, Br * Evp, Br, 2 * Br, Br, Br, Br);
}

/** The DQ_RING pending dQ tiles of a backward task (see flushDq). */
const DQ_RING: i32 = 8;

// backward: st [Bc][Br] | dpt [Bc][Br] | dk [Bc][Ep] | dv [Bc][Evp] | rs [Br] | lim [Br] |
//           ring [DQ_RING][Br][Ep] | meta [DQ_RING] x 2 i32 | exact 4 f64
const B_ST: i32 = 0, B_DPT: i32 = 1, B_DK: i32 = 2, B_DV: i32 = 3, B_RS: i32 = 4, B_LIM: i32 = 5, B_RING: i32 = 6, B_META: i32 = 7, B_EXACT: i32 = 8, B_END: i32 = 9;

// @ts-ignore: decorator
@inline function bwdPart(part: i32, Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return partAt(part, Bc * Br, Bc * Br, Bc * Ep, Bc * Evp, Br, Br, DQ_RING * Br * Ep, 2 * DQ_RING, 8);
}

// backward prep (splitLargeLse): st [Bc][Br] | lim [Br] | m [Br] | l [Br] f64 | alpha [Br]
const P_ST: i32 = 0, P_LIM: i32 = 1, P_M: i32 = 2, P_L: i32 = 3, P_ALPHA: i32 = 4, P_END: i32 = 5;

// @ts-ignore: decorator
@inline function prepPart(part: i32, Br: i32, Bc: i32): i32 {
  return partAt(part, Bc * Br, Br, Br, 2 * Br, Br);
}

/** Scratch floats one forward task needs. */
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
  const lim = sc + (<usize>fwdPart(F_LIM, Br, Bc, Ep, Evp) << 2);

  // Q block transposed and scaled: qt[e][ii] = scale * q[ii][e], so the scores come out scaled
  packScaledTranspose(qt, q, Brw, Ep, a.scale);
  for (let ii = 0; ii < Brw; ii++) {
    store<f32>(mrow + (<usize>ii << 2), -Infinity);
    store<f64>(lrow + (<usize>ii << 3), 0);
  }
  memory.fill(oa, 0, <usize>(Brw * Evp) << 2);
  fillLimits(lim, i0, Brw, S, a.causalOff);
  if (dropOn) fillRowStates(rs, a.dropSeed, (b * H + h) * L + i0, Brw);
  const thr = i32x4.splat(<i32>a.dropThr);

  const nJ = keyBlocks(lim, Brw, Bc);
  const rowBytes = <usize>Brw << 2;

  for (let j = 0; j < nJ; j++) {
    const j0 = j * Bc;
    const Bcw = imin(Bc, Sp - j0);
    // S^T = K_j . Q_i^T  (Bcw x Brw)
    scoreTile(a, st, kbase + (<usize>(j0 * Ep) << 2), qt, Brw, Bcw, i0, j0, b, h, lim);

    softmaxTile(st, Brw, Bcw, j0, mrow, lrow, alpha, dropOn, rs, thr);
    // O = diag(alpha) O + P V_j
    if (j > 0) {
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
  }

  // out = O / l (times 1 / (1 - p) with dropout), divided in float64. m and l go out apart: the host
  // forms lse = m + log(l) in float64, since float32 could not hold it to better than ulp(m) (3e-5 at
  // |m| ~ 300). l is summed in float64 and out rounded once: backward's D = rowsum(dO * out) must be
  // as exact as float32 storage allows, since where a row's softmax is nearly one-hot every error in
  // D goes straight into the (small) gradients dq and dk. l = 0 exactly when the row sees no key
  // (then out = 0); a NaN score makes l NaN, and out NaN with it.
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
  const lim = sc + (<usize>prepPart(P_LIM, Br, Bc) << 2);
  const mrow = sc + (<usize>prepPart(P_M, Br, Bc) << 2);
  const lrow = sc + (<usize>prepPart(P_L, Br, Bc) << 2); // float64
  const alpha = sc + (<usize>prepPart(P_ALPHA, Br, Bc) << 2);
  fillLimits(lim, i0, Brw, a.S, a.causalOff);
  const nJ = keyBlocks(lim, Brw, Bc);
  for (let ii = 0; ii < Brw; ii++) {
    store<f32>(mrow + (<usize>ii << 2), -Infinity);
    store<f64>(lrow + (<usize>ii << 3), 0);
  }
  for (let j = 0; j < nJ; j++) {
    const j0 = j * Bc;
    const Bcw = imin(Bc, Sp - j0);
    scoreTile(a, st, kbase + (<usize>(j0 * Ep) << 2), qt, Brw, Bcw, i0, j0, b, h, lim);
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
 * Backward prep, task (head, query block): Q^T (scaled) and dO^T of the block, and m, l again for
 * its rows with a huge lse (splitLargeLse).
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
  splitLargeLse(a, scratchOf(job, tid), hl, i0, Brw);
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
 * Waits until `j` earlier key blocks have added into the dQ block behind counter `cnt`, spinning;
 * false if a task of the job failed meanwhile (that block's turn may never come).
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
  atomic.store<i32>(cnt, j + 1);
  return true;
}

export function attBwdTask(job: usize, t: i32, tid: i32): void {
  const a = attJob(job);
  const H = a.H, Hkv = a.Hkv, L = a.L, S = a.S;
  const Lp = a.Lp, Sp = a.Sp, Ep = a.Ep, Evp = a.Evp, Br = a.Br, Bc = a.Bc, off = a.causalOff;
  const dropOn = a.dropOn != 0;
  const G = H / Hkv;
  const nI = (Lp + Br - 1) / Br;
  const nJ = (Sp + Bc - 1) / Bc;

  const gl = t / nJ;
  const j = t - gl * nJ;
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
  const lim = sc + (<usize>bwdPart(B_LIM, Br, Bc, Ep, Evp) << 2);
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
  const lFirst = j0 - off > 0 ? j0 - off : 0;
  const iStart = lFirst / Br;

  for (let hh = 0; hh < G; hh++) {
    const h = kvh * G + hh;
    const hl = gl * G + hh;
    for (let i = iStart; i < nI; i++) {
      const i0 = i * Br;
      const Brw = imin(Br, Lp - i0);
      const rowBytes = <usize>Brw << 2;
      fillLimits(lim, i0, Brw, S, off);
      if (dropOn) fillRowStates(rs, a.dropSeed, (b * H + h) * L + i0, Brw);

      // S^T = K_j . Q_i^T and dP^T = V_j . dO_i^T  (Bcw x Brw each)
      const dOt = <usize>a.dOt + (<usize>((hl * Lp + i0) * Evp) << 2);
      scoreTile(a, st, kb, <usize>a.qt + (<usize>((hl * Lp + i0) * Ep) << 2), Brw, Bcw, i0, j0, b, h, lim);
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
