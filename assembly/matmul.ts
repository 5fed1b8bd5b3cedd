// Blocked float32 matrix product: out[bi] (+)= op(a[bi]) . op(b[bi]).
//   K_MM_PACK_B tasks pack b into panels of 8 columns, [np / 8][k][8] (transposing it if transB, 4x4
//   blocks at a time, zero columns past n), so the product kernel streams 32 contiguous bytes of b per k step.
//   K_MM tasks each own one (product, column block, row block) of out: per k block they pack their rows
//   of a into [rows / 4][kc][4] in thread scratch (transposing if transA, zero rows past m), then run the
//   4x8 register tile over the block; rows past the last full group of 4 (all of them when m < 4: the
//   matrix-vector products of decoding) go through the one-row kernels instead of a tile 3/4 zeros. k is summed in increasing order inside one task, so results do not
//   depend on the thread count. With a bias, each element of the block then gets bias[col] added once
//   (out = sum + bias, the bits of adding the bias to the finished product).

import { imin, mmJob, scratchOf } from "./job";
import { row1x32, row1x8, tile4x8 } from "./simd";

export const MM_MB: i32 = 64; // rows per task
export const MM_NB: i32 = 256; // columns per task
export const MM_KC: i32 = 256; // k block
export const PANELS_PER_PACK_TASK: i32 = 8;

/** Scratch floats one K_MM task needs (its packed rows of a). */
export function mmScratchFloats(): i32 {
  return MM_MB * MM_KC;
}

/**
 * Rows x0..x3 (4 floats each) written as columns: dst + i * 32 gets [x0[i], x1[i], x2[i], x3[i]] for
 * i = 0..3 (16 bytes of each 32-byte panel row).
 */
// @ts-ignore: decorator
@inline function transpose4(dst: usize, x0: v128, x1: v128, x2: v128, x3: v128): void {
  const t0 = v128.shuffle<f32>(x0, x1, 0, 4, 1, 5); // x0[0] x1[0] x0[1] x1[1]
  const t1 = v128.shuffle<f32>(x2, x3, 0, 4, 1, 5);
  const t2 = v128.shuffle<f32>(x0, x1, 2, 6, 3, 7); // x0[2] x1[2] x0[3] x1[3]
  const t3 = v128.shuffle<f32>(x2, x3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(dst, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), 32);
  v128.store(dst, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 64);
  v128.store(dst, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 96);
}

/** Task (b index, group of 8 panels): pack columns of b into [panel][k][8]. */
export function mmPackBTask(job: usize, t: i32): void {
  const mm = mmJob(job);
  const n = mm.n, np = mm.np, k = mm.k;
  const transB = mm.transB != 0;
  const panels = np >> 3;
  const groups = (panels + PANELS_PER_PACK_TASK - 1) / PANELS_PER_PACK_TASK;
  const bi = t / groups;
  const pg = t - bi * groups;
  const src = <usize>mm.b + (<usize>bi * <usize>n * <usize>k << 2);
  const dstBase = <usize>mm.bp + (<usize>bi * <usize>np * <usize>k << 2);
  const pEnd = imin(panels, (pg + 1) * PANELS_PER_PACK_TASK);
  for (let pn = pg * PANELS_PER_PACK_TASK; pn < pEnd; pn++) {
    const c0 = pn << 3;
    let dst = dstBase + (<usize>pn * <usize>k << 5);
    if (!transB && c0 + 8 <= n) {
      let s = src + (<usize>c0 << 2);
      const ld = <usize>n << 2;
      for (let p = 0; p < k; p++) {
        v128.store(dst, v128.load(s));
        v128.store(dst, v128.load(s, 16), 16);
        s += ld;
        dst += 32;
      }
    } else if (transB && c0 + 8 <= n) {
      // b is [n][k]: 4 k steps of 8 rows at a time, two 4x4 transposes into 4 rows of the panel
      const r0 = src + (<usize>c0 * <usize>k << 2);
      const ld = <usize>k << 2;
      let p = 0;
      for (; p + 4 <= k; p += 4) {
        const s = r0 + (<usize>p << 2);
        transpose4(dst, v128.load(s), v128.load(s + ld), v128.load(s + 2 * ld), v128.load(s + 3 * ld));
        const s4 = s + 4 * ld;
        transpose4(dst + 16, v128.load(s4), v128.load(s4 + ld), v128.load(s4 + 2 * ld), v128.load(s4 + 3 * ld));
        dst += 128;
      }
      for (; p < k; p++) {
        for (let c = 0; c < 8; c++) store<f32>(dst + (<usize>c << 2), load<f32>(r0 + <usize>c * ld + (<usize>p << 2)));
        dst += 32;
      }
    } else {
      for (let p = 0; p < k; p++) {
        for (let c = 0; c < 8; c++) {
          const col = c0 + c;
          let x: f32 = 0;
          if (col < n) x = transB ? load<f32>(src + ((<usize>col * <usize>k + <usize>p) << 2)) : load<f32>(src + ((<usize>p * <usize>n + <usize>col) << 2));
          store<f32>(dst + (<usize>c << 2), x);
        }
        dst += 32;
      }
    }
  }
}

/** Packs rows [i0, i0 + rows) x k range [p0, p0 + kw) of a into ap as [rows / 4][kw][4]. */
function packA(ap: usize, a: usize, transA: bool, m: i32, k: i32, i0: i32, rows: i32, p0: i32, kw: i32): void {
  for (let q = 0; q < rows; q += 4) {
    let dst = ap + (<usize>(q * kw) << 2);
    const r0 = i0 + q;
    if (transA) {
      // a is [k][m]: 4 consecutive rows of out are 4 consecutive floats
      let s = a + ((<usize>p0 * <usize>m + <usize>r0) << 2);
      const ld = <usize>m << 2;
      if (r0 + 4 <= m) {
        for (let p = 0; p < kw; p++) {
          v128.store(dst, v128.load(s));
          s += ld;
          dst += 16;
        }
      } else {
        for (let p = 0; p < kw; p++) {
          for (let r = 0; r < 4; r++) store<f32>(dst + (<usize>r << 2), r0 + r < m ? load<f32>(s + (<usize>r << 2)) : 0);
          s += ld;
          dst += 16;
        }
      }
    } else {
      // a is [m][k]
      for (let r = 0; r < 4; r++) {
        const row = r0 + r;
        let d = dst + (<usize>r << 2);
        if (row < m) {
          let s = a + ((<usize>row * <usize>k + <usize>p0) << 2);
          for (let p = 0; p < kw; p++) {
            store<f32>(d, load<f32>(s));
            s += 4;
            d += 16;
          }
        } else {
          for (let p = 0; p < kw; p++) {
            store<f32>(d, 0);
            d += 16;
          }
        }
      }
    }
  }
}

export function mmTask(job: usize, t: i32, tid: i32): void {
  const mm = mmJob(job);
  const m = mm.m, mp = mm.mp, np = mm.np, k = mm.k;
  const mb = mm.mBlocks, nb = mm.nBlocks;
  const transA = mm.transA != 0;
  const acc = mm.acc != 0;
  const per = mb * nb;
  const bi = t / per;
  const rem = t - bi * per;
  const jb = rem / mb;
  const ib = rem - jb * mb;
  const i0 = ib * MM_MB, n0 = jb * MM_NB;
  const Mw = imin(MM_MB, mp - i0), Nw = imin(MM_NB, np - n0);

  const a = <usize>mm.a + (<usize>(mm.aBatch * bi) * <usize>m * <usize>k << 2);
  const bp = <usize>mm.bp + (<usize>(mm.bBatch * bi) * <usize>k * <usize>np << 2);
  const c = <usize>mm.c + ((<usize>bi * <usize>mp * <usize>np + <usize>i0 * <usize>np + <usize>n0) << 2);
  const ldc = <usize>np << 2;
  const ap = scratchOf(job, tid);
  const rows = imin(Mw, m - i0); // rows of out in this block (the rest is padding, never read)
  const full = rows & ~3; // rows in full tiles of 4
  const ps = <usize>k << 5; // bytes from one panel of b to the next
  for (let p0 = 0; p0 < k; p0 += MM_KC) {
    const kw = imin(MM_KC, k - p0);
    packA(ap, a, transA, m, k, i0, Mw, p0, kw);
    const accum = acc || p0 > 0;
    for (let j = 0; j < Nw; j += 8) {
      const panel = bp + (((<usize>(n0 + j) >> 3) * <usize>k + <usize>p0) << 5);
      const cj = c + (<usize>j << 2);
      for (let i = 0; i < full; i += 4) {
        tile4x8(cj + <usize>i * ldc, ldc, ap + (<usize>(i * kw) << 2), 4, 16, panel, 32, kw, accum);
      }
    }
    for (let i = full; i < rows; i++) {
      // row i of the packed a: group i / 4, lane i % 4, 16 bytes per k
      const ai = ap + (<usize>((i & ~3) * kw + (i & 3)) << 2);
      const ci = c + <usize>i * ldc;
      let j = 0;
      for (; j + 32 <= Nw; j += 32) {
        const panel = bp + (((<usize>(n0 + j) >> 3) * <usize>k + <usize>p0) << 5);
        row1x32(ci + (<usize>j << 2), ai, 16, panel, ps, kw, accum);
      }
      for (; j < Nw; j += 8) {
        const panel = bp + (((<usize>(n0 + j) >> 3) * <usize>k + <usize>p0) << 5);
        row1x8(ci + (<usize>j << 2), ai, 16, panel, kw, accum);
      }
    }
  }
  if (mm.bias != 0) addBias(c, ldc, <usize>mm.bias + (<usize>n0 << 2), rows, Nw);
  // release: the block's stores before the count (the host copies a column block out once all its tasks are counted)
  if (mm.done != 0) atomic.add<i32>(<usize>mm.done + (<usize>(bi * nb + jb) << 2), 1);
}

/** c[i][j] += bias[j] for rows i < rows and columns j < cols (a multiple of 8). */
function addBias(c: usize, ldc: usize, bias: usize, rows: i32, cols: i32): void {
  for (let i = 0; i < rows; i++) {
    const ci = c + <usize>i * ldc;
    for (let j = 0; j < cols; j += 4) {
      const at = ci + (<usize>j << 2);
      v128.store(at, f32x4.add(v128.load(at), v128.load(bias + (<usize>j << 2))));
    }
  }
}
