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
// sums l and the final division, lse (staged as two float32s), D, and dP - D where P > 1/4.

import {
  A_BC, A_BR, A_CAUSAL_OFF, A_CNT, A_D, A_DK, A_DO, A_DOT, A_DQ, A_DROP_INV, A_DROP_ON, A_DROP_SEED,
  A_DROP_THR, A_DV, A_EP, A_EVP, A_G0, A_H, A_HKV, A_K, A_L, A_LP, A_LSE, A_LSE_LO, A_MASK_KIND, A_MASK_LO,
  A_MASK_PTR, A_MASK_SB, A_MASK_SH, A_MASK_SL, A_MASK_SS, A_O, A_Q, A_QT, A_ROW_MAX, A_ROW_SUM, A_S, A_SCALE,
  A_SP, A_V, J_PARAMS, J_SCRATCH, J_SCRATCH_STRIDE,
} from "./layout";
import { gemm, rowState, vexp, vkeep } from "./simd";

// @ts-ignore: decorator
@inline function prm(job: usize, slot: i32): i32 {
  return load<i32>(job + (<usize>(J_PARAMS + slot) << 2));
}
// @ts-ignore: decorator
@inline function prmf(job: usize, slot: i32): f32 {
  return load<f32>(job + (<usize>(J_PARAMS + slot) << 2));
}
// @ts-ignore: decorator
@inline function ptr(job: usize, slot: i32): usize {
  return <usize>load<u32>(job + (<usize>(J_PARAMS + slot) << 2));
}
// @ts-ignore: decorator
@inline function imin(a: i32, b: i32): i32 {
  return a < b ? a : b;
}

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
function applyMask(job: usize, st: usize, Brw: i32, Bcw: i32, i0: i32, j0: i32, b: i32, h: i32): void {
  const L = prm(job, A_L), S = prm(job, A_S);
  const kind = prm(job, A_MASK_KIND);
  const base = ptr(job, A_MASK_PTR);
  const lo = prm(job, A_MASK_LO);
  const sl = prm(job, A_MASK_SL), ss = prm(job, A_MASK_SS);
  const bh = b * prm(job, A_MASK_SB) + h * prm(job, A_MASK_SH) - lo;
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

/** Scratch floats one forward task needs. */
export function fwdScratchFloats(Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return Ep * Br + Bc * Br + Br * Evp + 7 * Br + 16;
}

/** Scratch floats one backward task needs. */
export function bwdScratchFloats(Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return 2 * Bc * Br + Bc * Ep + Bc * Evp + 2 * Br + DQ_RING * Br * Ep + 2 * DQ_RING + 8 + 16;
}

export function attFwdTask(job: usize, t: i32, tid: i32): void {
  const G0 = prm(job, A_G0);
  const H = prm(job, A_H), Hkv = prm(job, A_HKV), L = prm(job, A_L), S = prm(job, A_S);
  const Lp = prm(job, A_LP), Sp = prm(job, A_SP), Ep = prm(job, A_EP), Evp = prm(job, A_EVP);
  const Br = prm(job, A_BR), Bc = prm(job, A_BC), off = prm(job, A_CAUSAL_OFF);
  const scale = prmf(job, A_SCALE);
  const maskKind = prm(job, A_MASK_KIND);
  const dropOn = prm(job, A_DROP_ON) != 0;
  const G = H / Hkv;
  const nI = (Lp + Br - 1) / Br;

  // heavier (later) query blocks first: with causality they see more keys
  const hl = t / nI;
  const i = nI - 1 - (t - hl * nI);
  const gl = hl / G, hh = hl - gl * G;
  const g = G0 + gl;
  const b = g / Hkv, kvh = g - b * Hkv;
  const h = kvh * G + hh;
  const i0 = i * Br;
  const Brw = imin(Br, Lp - i0);

  const q = ptr(job, A_Q) + (<usize>((hl * Lp + i0) * Ep) << 2);
  const kbase = ptr(job, A_K) + (<usize>(gl * Sp * Ep) << 2);
  const vbase = ptr(job, A_V) + (<usize>(gl * Sp * Evp) << 2);
  const o = ptr(job, A_O) + (<usize>((hl * Lp + i0) * Evp) << 2);
  const rowMax = ptr(job, A_ROW_MAX) + (<usize>(hl * Lp + i0) << 2);
  const rowSum = ptr(job, A_ROW_SUM) + (<usize>(hl * Lp + i0) << 3);

  const sc = ptr(job, J_SCRATCH - J_PARAMS) + <usize>tid * ptr(job, J_SCRATCH_STRIDE - J_PARAMS);
  const qt = sc;
  const st = qt + (<usize>(Ep * Br) << 2);
  const oa = st + (<usize>(Bc * Br) << 2);
  const mrow = oa + (<usize>(Br * Evp) << 2);
  const lrow = mrow + (<usize>Br << 2); // float64
  const alpha = lrow + (<usize>Br << 3);
  const rs = alpha + (<usize>Br << 2);
  const lim = rs + (<usize>Br << 2);

  // Q block transposed and scaled: qt[e][ii] = scale * q[ii][e], so the scores come out scaled
  packScaledTranspose(qt, q, Brw, Ep, scale);
  for (let ii = 0; ii < Brw; ii++) {
    store<f32>(mrow + (<usize>ii << 2), -Infinity);
    store<f64>(lrow + (<usize>ii << 3), 0);
  }
  memory.fill(oa, 0, <usize>(Brw * Evp) << 2);
  fillLimits(lim, i0, Brw, S, off);
  const seed = <u32>prm(job, A_DROP_SEED);
  if (dropOn) fillRowStates(rs, seed, (b * H + h) * L + i0, Brw);
  const thr = i32x4.splat(prm(job, A_DROP_THR));

  const limMin = load<i32>(lim), limMax = load<i32>(lim + (<usize>(Brw - 1) << 2));
  const nJ = limMax < 0 ? 0 : limMax / Bc + 1;
  const rowBytes = <usize>Brw << 2;
  const zero = f32x4.splat(0);
  const ninf = f32x4.splat(-Infinity);

  for (let j = 0; j < nJ; j++) {
    const j0 = j * Bc;
    const Bcw = imin(Bc, Sp - j0);
    // S^T = K_j . Q_i^T  (Bcw x Brw)
    gemm(st, rowBytes, kbase + (<usize>(j0 * Ep) << 2), <usize>Ep << 2, 4, qt, rowBytes, Bcw, Brw, Ep, false);
    if (maskKind != 0) applyMask(job, st, Brw, Bcw, i0, j0, b, h);
    if (j0 + Bcw - 1 > limMin) applyLimits(st, Brw, Bcw, j0, lim);

    // online softmax, 4 queries per vector
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
      // the row sums l are kept in float64 (see the end of this function); two keys per turn (Bcw is a
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
      const a = v128.load(alpha + cOff);
      v128.store(lp, f64x2.add(f64x2.mul(v128.load(lp), widenLo(a)), sum0));
      v128.store(lp, f64x2.add(f64x2.mul(v128.load(lp, 16), widenHi(a)), sum1), 16);
    }
    // O = diag(alpha) O + P V_j
    if (j > 0) {
      for (let ii = 0; ii < Brw; ii++) {
        const a = v128.load32_splat(alpha + (<usize>ii << 2));
        const row = oa + (<usize>(ii * Evp) << 2);
        for (let e = 0; e < Evp; e += 4) {
          const at = row + (<usize>e << 2);
          v128.store(at, f32x4.mul(v128.load(at), a));
        }
      }
    }
    gemm(oa, <usize>Evp << 2, st, 4, rowBytes, vbase + (<usize>(j0 * Evp) << 2), <usize>Evp << 2, Brw, Evp, Bcw, true);
  }

  // out = O / l (times 1 / (1 - p) with dropout), divided in float64. m and l go out apart: the host
  // forms lse = m + log(l) in float64, since float32 could not hold it to better than ulp(m) (3e-5 at
  // |m| ~ 300). l is summed in float64 and out rounded once: backward's D = rowsum(dO * out) must be
  // as exact as float32 storage allows, since where a row's softmax is nearly one-hot every error in
  // D goes straight into the (small) gradients dq and dk.
  const inv = dropOn ? <f64>prmf(job, A_DROP_INV) : 1.0;
  memory.copy(rowMax, mrow, rowBytes);
  memory.copy(rowSum, lrow, rowBytes << 1);
  for (let ii = 0; ii < Brw; ii++) {
    const m = load<f32>(mrow + (<usize>ii << 2));
    const dst = o + (<usize>(ii * Evp) << 2);
    const src = oa + (<usize>(ii * Evp) << 2);
    if (m == -Infinity) {
      memory.fill(dst, 0, <usize>Evp << 2);
      continue;
    }
    const f = f64x2.splat(inv / load<f64>(lrow + (<usize>ii << 3)));
    for (let e = 0; e < Evp; e += 4) {
      const x = v128.load(src + (<usize>e << 2));
      v128.store(dst + (<usize>e << 2), narrow(f64x2.mul(widenLo(x), f), f64x2.mul(widenHi(x), f)));
    }
  }
}

/** Backward prep, task (head, query block): Q^T (scaled) and dO^T of the block. */
export function attBwdPrepTask(job: usize, t: i32): void {
  const scale = prmf(job, A_SCALE);
  const Lp = prm(job, A_LP), Ep = prm(job, A_EP), Evp = prm(job, A_EVP), Br = prm(job, A_BR);
  const nI = (Lp + Br - 1) / Br;
  const hl = t / nI;
  const i = t - hl * nI;
  const i0 = i * Br;
  const Brw = imin(Br, Lp - i0);
  const q = ptr(job, A_Q) + (<usize>((hl * Lp + i0) * Ep) << 2);
  const qt = ptr(job, A_QT) + (<usize>((hl * Lp + i0) * Ep) << 2);
  const dO = ptr(job, A_DO) + (<usize>((hl * Lp + i0) * Evp) << 2);
  const dOt = ptr(job, A_DOT) + (<usize>((hl * Lp + i0) * Evp) << 2);
  packScaledTranspose(qt, q, Brw, Ep, scale);
  packScaledTranspose(dOt, dO, Brw, Evp, 1);
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
 * Waits until `j` earlier key blocks have added into the dQ block behind counter `cnt`, spinning.
 * Not memory.atomic.wait32: in V8 11 (Node 20) its Liftoff (baseline-tier) code made later dQ
 * additions land out of order now and then (test/kernels-stress.test.ts reproduced lost updates with
 * Liftoff only, never with TurboFan only, and never without the wait). The ring below keeps waits rare.
 */
function waitTurn(cnt: usize, j: i32): void {
  while (atomic.load<i32>(cnt) != j) {
    // spin
  }
}

/**
 * dQ contributions of one key-block task wait in a ring of DQ_RING tiles until their turn comes, so a
 * thread stalls only when it is DQ_RING tiles ahead of the key block before it (not at every tile):
 * threads stay decoupled when one of them is descheduled for a while.
 */
const DQ_RING: i32 = 8;

/** Adds the oldest pending dQ tile into dQ when its turn has come (or waits for it if `block`). */
function flushDq(job: usize, ring: usize, meta: usize, head: i32, j: i32, block: bool): bool {
  const Lp = prm(job, A_LP), Ep = prm(job, A_EP), Br = prm(job, A_BR);
  const nI = (Lp + Br - 1) / Br;
  const hl = load<i32>(meta + (<usize>head << 3));
  const i = load<i32>(meta + (<usize>head << 3), 4);
  const cnt = ptr(job, A_CNT) + (<usize>(hl * nI + i) << 2);
  if (block) waitTurn(cnt, j);
  else if (atomic.load<i32>(cnt) != j) return false;
  const i0 = i * Br;
  const n = imin(Br, Lp - i0) * Ep;
  const dst = ptr(job, A_DQ) + (<usize>((hl * Lp + i0) * Ep) << 2);
  const src = ring + (<usize>(head * Br * Ep) << 2);
  for (let e = 0; e < n; e += 4) {
    const at = dst + (<usize>e << 2);
    v128.store(at, f32x4.add(v128.load(at), v128.load(src + (<usize>e << 2))));
  }
  atomic.store<i32>(cnt, j + 1);
  return true;
}

export function attBwdTask(job: usize, t: i32, tid: i32): void {
  const G0 = prm(job, A_G0);
  const H = prm(job, A_H), Hkv = prm(job, A_HKV), L = prm(job, A_L), S = prm(job, A_S);
  const Lp = prm(job, A_LP), Sp = prm(job, A_SP), Ep = prm(job, A_EP), Evp = prm(job, A_EVP);
  const Br = prm(job, A_BR), Bc = prm(job, A_BC), off = prm(job, A_CAUSAL_OFF);
  const scale = prmf(job, A_SCALE);
  const maskKind = prm(job, A_MASK_KIND);
  const dropOn = prm(job, A_DROP_ON) != 0;
  const G = H / Hkv;
  const nI = (Lp + Br - 1) / Br;
  const nJ = (Sp + Bc - 1) / Bc;

  const gl = t / nJ;
  const j = t - gl * nJ;
  const g = G0 + gl;
  const b = g / Hkv, kvh = g - b * Hkv;
  const j0 = j * Bc;
  const Bcw = imin(Bc, Sp - j0);

  const kb = ptr(job, A_K) + (<usize>((gl * Sp + j0) * Ep) << 2);
  const vb = ptr(job, A_V) + (<usize>((gl * Sp + j0) * Evp) << 2);

  const sc = ptr(job, J_SCRATCH - J_PARAMS) + <usize>tid * ptr(job, J_SCRATCH_STRIDE - J_PARAMS);
  const st = sc;
  const dpt = st + (<usize>(Bc * Br) << 2);
  const dk = dpt + (<usize>(Bc * Br) << 2);
  const dv = dk + (<usize>(Bc * Ep) << 2);
  const rs = dv + (<usize>(Bc * Evp) << 2);
  const lim = rs + (<usize>Br << 2);
  const ring = lim + (<usize>Br << 2);
  const meta = ring + (<usize>(DQ_RING * Br * Ep) << 2);
  const exact = meta + (<usize>DQ_RING << 3); // 4 float64s
  let head = 0, pending = 0;
  memory.fill(dk, 0, <usize>(Bcw * Ep) << 2);
  memory.fill(dv, 0, <usize>(Bcw * Evp) << 2);

  const seed = <u32>prm(job, A_DROP_SEED);
  const thr = i32x4.splat(prm(job, A_DROP_THR));
  const invV32 = f32x4.splat(prmf(job, A_DROP_INV));
  const invV = f64x2.splat(<f64>prmf(job, A_DROP_INV));
  const scaleV = f32x4.splat(scale);
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
      const limMin = load<i32>(lim);
      if (dropOn) fillRowStates(rs, seed, (b * H + h) * L + i0, Brw);

      // S^T = K_j . Q_i^T and dP^T = V_j . dO_i^T  (Bcw x Brw each)
      const dOt = ptr(job, A_DOT) + (<usize>((hl * Lp + i0) * Evp) << 2);
      gemm(st, rowBytes, kb, <usize>Ep << 2, 4, ptr(job, A_QT) + (<usize>((hl * Lp + i0) * Ep) << 2), rowBytes, Bcw, Brw, Ep, false);
      if (maskKind != 0) applyMask(job, st, Brw, Bcw, i0, j0, b, h);
      if (j0 + Bcw - 1 > limMin) applyLimits(st, Brw, Bcw, j0, lim);
      gemm(dpt, rowBytes, vb, <usize>Evp << 2, 4, dOt, rowBytes, Bcw, Brw, Evp, false);

      // P = exp((s - lseHi) - lseLo); dS = scale * P * (dP - D); st <- dropped P, dpt <- dS.
      // Where P > 1/4 (a peak of the row), dP - D is formed in float64 from a float64 dP (exactDp):
      // near a one-hot row dP and D agree to many digits there, and float32 would leave only their
      // rounding errors. Below 1/4 what a peak cancels is mild: a factor 1 / (1 - P) < 4/3.
      const hiRow = ptr(job, A_LSE) + (<usize>(hl * Lp + i0) << 2);
      const loRow = ptr(job, A_LSE_LO) + (<usize>(hl * Lp + i0) << 2);
      const dRow = ptr(job, A_D) + (<usize>(hl * Lp + i0) << 3);
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
      gemm(dv, <usize>Evp << 2, st, rowBytes, 4, ptr(job, A_DO) + (<usize>((hl * Lp + i0) * Evp) << 2), <usize>Evp << 2, Bcw, Evp, Brw, true);
      gemm(dk, <usize>Ep << 2, dpt, rowBytes, 4, ptr(job, A_Q) + (<usize>((hl * Lp + i0) * Ep) << 2), <usize>Ep << 2, Bcw, Ep, Brw, true);
      // dQ_i += dS K_j, added in key-block order: the tile goes to the ring, tiles whose turn has come
      // are flushed; a full ring waits for its oldest
      if (pending == DQ_RING) {
        flushDq(job, ring, meta, head, j, true);
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
    flushDq(job, ring, meta, head, j, true);
    head = head + 1 == DQ_RING ? 0 : head + 1;
    pending--;
  }
  memory.copy(ptr(job, A_DK) + (<usize>((gl * Sp + j0) * Ep) << 2), dk, <usize>(Bcw * Ep) << 2);
  memory.copy(ptr(job, A_DV) + (<usize>((gl * Sp + j0) * Evp) << 2), dv, <usize>(Bcw * Evp) << 2);
}
