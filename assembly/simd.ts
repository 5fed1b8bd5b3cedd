// SIMD building blocks: the 4x8 register-blocked product kernel every matrix product here goes through,
// a vectorised exp, and the vectorised dropout hash.

// ---------------------------------------------------------------------------------------------
// gemm: C[M x N] (+)= A[M x K] . B[K x N] on float32, M a multiple of 4 and N a multiple of 8.
//   A(r, k) is read at a + r * rsA + k * csA (any strides: the kernel splats scalars of A),
//   B row k is read at b + k * ldb (8 contiguous floats per register tile), C row r at c + r * ldc.
// The register tile is 4 rows x 2 vectors (8 accumulators): wider tiles make V8 spill on x64
// (measured: 4x2 ~30 GFLOP/s, 4x3 / 3x4 / 6x2 ~20 GFLOP/s on one Zen 3 core).
// Every C element is the sum over k in increasing order, so results do not depend on how callers
// split rows or columns among threads.
// ---------------------------------------------------------------------------------------------

/**
 * c + a * b per lane. The relaxed-SIMD build (see scripts/build-wasm.mjs) uses relaxed_madd, a fused
 * multiply-add where the hardware has one: half the instructions in the product kernels.
 */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

// @ts-ignore: decorator
@inline export function tile4x8(
  c: usize, ldc: usize, a: usize, rsA: usize, csA: usize, b: usize, ldb: usize, K: i32, acc: bool,
): void {
  let c00: v128, c01: v128, c10: v128, c11: v128, c20: v128, c21: v128, c30: v128, c31: v128;
  const c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
  if (acc) {
    c00 = v128.load(c); c01 = v128.load(c, 16);
    c10 = v128.load(c1); c11 = v128.load(c1, 16);
    c20 = v128.load(c2); c21 = v128.load(c2, 16);
    c30 = v128.load(c3); c31 = v128.load(c3, 16);
  } else {
    c00 = f32x4.splat(0); c01 = c00; c10 = c00; c11 = c00; c20 = c00; c21 = c00; c30 = c00; c31 = c00;
  }
  const r1 = rsA, r2 = rsA << 1, r3 = rsA * <usize>3;
  let pa = a, pb = b;
  for (let k = 0; k < K; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    const a0 = v128.load32_splat(pa);
    c00 = madd(a0, b0, c00);
    c01 = madd(a0, b1, c01);
    const a1 = v128.load32_splat(pa + r1);
    c10 = madd(a1, b0, c10);
    c11 = madd(a1, b1, c11);
    const a2 = v128.load32_splat(pa + r2);
    c20 = madd(a2, b0, c20);
    c21 = madd(a2, b1, c21);
    const a3 = v128.load32_splat(pa + r3);
    c30 = madd(a3, b0, c30);
    c31 = madd(a3, b1, c31);
    pa += csA;
    pb += ldb;
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c1, c10); v128.store(c1, c11, 16);
  v128.store(c2, c20); v128.store(c2, c21, 16);
  v128.store(c3, c30); v128.store(c3, c31, 16);
}

/**
 * One row of C (+)= A . B over 32 columns: c[0..32) (+)= sum over k of A(k) * B(k, 0..32), where A(k)
 * is read at a + k * csA and B's 32 columns are 4 panels of 8 (panel q row k at b + q * ps + k * 32).
 * Each element is summed in the same order, with the same madd, as tile4x8: a row computed here is
 * bitwise the row tile4x8 computes, without the three other rows (the matrix-vector case).
 */
// @ts-ignore: decorator
@inline export function row1x32(c: usize, a: usize, csA: usize, b: usize, ps: usize, K: i32, acc: bool): void {
  let c0: v128, c1: v128, c2: v128, c3: v128, c4: v128, c5: v128, c6: v128, c7: v128;
  if (acc) {
    c0 = v128.load(c); c1 = v128.load(c, 16); c2 = v128.load(c, 32); c3 = v128.load(c, 48);
    c4 = v128.load(c, 64); c5 = v128.load(c, 80); c6 = v128.load(c, 96); c7 = v128.load(c, 112);
  } else {
    c0 = f32x4.splat(0); c1 = c0; c2 = c0; c3 = c0; c4 = c0; c5 = c0; c6 = c0; c7 = c0;
  }
  let pa = a, p0 = b, p1 = b + ps, p2 = b + 2 * ps, p3 = b + 3 * ps;
  for (let k = 0; k < K; k++) {
    const x = v128.load32_splat(pa);
    c0 = madd(x, v128.load(p0), c0); c1 = madd(x, v128.load(p0, 16), c1);
    c2 = madd(x, v128.load(p1), c2); c3 = madd(x, v128.load(p1, 16), c3);
    c4 = madd(x, v128.load(p2), c4); c5 = madd(x, v128.load(p2, 16), c5);
    c6 = madd(x, v128.load(p3), c6); c7 = madd(x, v128.load(p3, 16), c7);
    pa += csA;
    p0 += 32; p1 += 32; p2 += 32; p3 += 32;
  }
  v128.store(c, c0); v128.store(c, c1, 16); v128.store(c, c2, 32); v128.store(c, c3, 48);
  v128.store(c, c4, 64); v128.store(c, c5, 80); v128.store(c, c6, 96); v128.store(c, c7, 112);
}

/** row1x32 over one panel (8 columns). */
// @ts-ignore: decorator
@inline export function row1x8(c: usize, a: usize, csA: usize, b: usize, K: i32, acc: bool): void {
  let c0: v128, c1: v128;
  if (acc) {
    c0 = v128.load(c); c1 = v128.load(c, 16);
  } else {
    c0 = f32x4.splat(0); c1 = c0;
  }
  let pa = a, pb = b;
  for (let k = 0; k < K; k++) {
    const x = v128.load32_splat(pa);
    c0 = madd(x, v128.load(pb), c0);
    c1 = madd(x, v128.load(pb, 16), c1);
    pa += csA;
    pb += 32;
  }
  v128.store(c, c0); v128.store(c, c1, 16);
}

export function gemm(
  c: usize, ldc: usize, a: usize, rsA: usize, csA: usize, b: usize, ldb: usize,
  M: i32, N: i32, K: i32, acc: bool,
): void {
  for (let j = 0; j < N; j += 8) {
    const cj = c + (<usize>j << 2), bj = b + (<usize>j << 2);
    for (let i = 0; i < M; i += 4) {
      tile4x8(cj + <usize>i * ldc, ldc, a + <usize>i * rsA, rsA, csA, bj, ldb, K, acc);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// vexp: e^x per lane, within ~2 ulp for x in [-87, 88]; lanes below -87 (including -Infinity) give
// exactly 0, NaN lanes give NaN. e^x = 2^n * e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in
// a high and a low part so r stays exact), e^r by a degree-6 polynomial fitted (least squares on
// Chebyshev nodes, relative error) for this interval, 2^n built in the exponent bits.
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline export function vexp(x: v128): v128 {
  const lo = f32x4.splat(-87.0);
  const under = f32x4.lt(x, lo); // false for NaN, which then runs through as NaN
  const xc = f32x4.pmin(f32x4.pmax(x, lo), f32x4.splat(88.0));
  // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
  const magic = f32x4.splat(12582912.0);
  const t = f32x4.add(f32x4.mul(xc, f32x4.splat(1.4426950408889634)), magic);
  const n = f32x4.sub(t, magic);
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693145751953125)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(1.428606765330187e-6)));
  let p = f32x4.splat(0.001385929062962532);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.008374763652682304));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.04166772589087486));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.1666642129421234));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.4999999403953552));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  // t's bits are 0x4B400000 + n; (n + 127) << 23 is 2^n
  const pow2n = i32x4.shl(i32x4.add(t, i32x4.splat(127 - 0x4b400000)), 23);
  return v128.andnot(f32x4.mul(p, pow2n), under);
}

// ---------------------------------------------------------------------------------------------
// Dropout bits, the same function as src/kernels/dropoutHash.ts:
//   rowState = fmix32(seed ^ imul(row, 0x9E3779B1)); bits = fmix32(rowState ^ imul(col + 1, 0x85EBCA77))
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline export function fmix32(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h;
}

// @ts-ignore: decorator
@inline export function rowState(seed: u32, row: u32): u32 {
  return fmix32(seed ^ (row * 0x9e3779b1));
}

// @ts-ignore: decorator
@inline export function vfmix32(h: v128): v128 {
  h = v128.xor(h, i32x4.shr_u(h, 16));
  h = i32x4.mul(h, i32x4.splat(0x85ebca6b));
  h = v128.xor(h, i32x4.shr_u(h, 13));
  h = i32x4.mul(h, i32x4.splat(0xc2b2ae35));
  h = v128.xor(h, i32x4.shr_u(h, 16));
  return h;
}

/** All-ones lanes where the element of (4 rows with states `states`, column `col`) is kept. */
// @ts-ignore: decorator
@inline export function vkeep(states: v128, col: i32, thr: v128): v128 {
  const ch = <u32>(col + 1) * 0x85ebca77;
  return i32x4.ge_u(vfmix32(v128.xor(states, i32x4.splat(ch))), thr);
}
