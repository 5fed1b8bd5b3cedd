// Elementwise and row kernels of a transformer step, float32 data with float64 where precision needs it.
//
//   K_EW_PIECEWISE: out[i] = by[i] · f(x[i]), f read from a table of degree-7 polynomials on [lo, hi)
//     (src/ops/piecewise.ts builds it from f's definition; GELU's gate and derivative). The readable
//     form is mulPiecewiseBy in that file: the same index, the same t, the same Estrin scheme, here
//     in float32 four elements at a time, the four lanes' coefficients gathered and transposed.
//     Outside the table: f = below (x < lo), above (x >= hi), negInf / posInf at ±Infinity; NaN
//     stays NaN. Task t covers elements [t · chunk, (t + 1) · chunk). With a core table (a cubic one on
//     [cLo, cHi), narrower intervals), four elements that all lie in that range read it instead: one
//     row of four coefficients per lane to gather and transpose instead of two (poly4, not poly8);
//     the gathers and transposes are most of this kernel's time.
//   K_EW_NORM_FWD / K_EW_NORM_BWD: layerNorm (rmsNorm when mean = 0) over rows of D, the readable
//     form being src/ops/norm.ts (layerNorm, layerNormBackwardRows): row sums, x̂ and the output in
//     float64 (two float32 lanes widened per f64x2), rounded to float32 once. Task t covers rows
//     [t · rows, (t + 1) · rows); the backward's weight and bias column sums go into the task's own
//     float64 row of partial sums, which the host adds in task order (results do not depend on the
//     thread count).

import { EwJob, J_PARAMS } from "./layout";
import { imin } from "./job";

// @ts-ignore: decorator
@inline function ewJob(job: usize): EwJob {
  return changetype<EwJob>(job + (<usize>J_PARAMS << 2));
}

// ---------------------------------------------------------------------------------------------
// piecewise tables
// ---------------------------------------------------------------------------------------------

/**
 * Σ_j c_j t^j for 4 lanes whose coefficients are 4 rows r0..r3 (lane i's [c0, c1, c2, c3] in r_i) and
 * s0..s3 ([c4, c5, c6, c7]): the rows transposed to columns c_j = [r0[j], r1[j], r2[j], r3[j]], then
 * Estrin's scheme as evalPiecewise: ((c0 + c1 t) + (c2 + c3 t) t²) + ((c4 + c5 t) + (c6 + c7 t) t²) t⁴.
 */
// @ts-ignore: decorator
@inline function poly8(r0: v128, r1: v128, r2: v128, r3: v128, s0: v128, s1: v128, s2: v128, s3: v128, t: v128): v128 {
  const t2 = f32x4.mul(t, t);
  // pairs of rows interleaved (lo: columns 0, 1; hi: columns 2, 3), then pairs of pairs
  let a = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), b = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  let c = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), d = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  const q0 = f32x4.add(
    f32x4.add(v128.shuffle<f32>(a, b, 0, 1, 4, 5), f32x4.mul(v128.shuffle<f32>(a, b, 2, 3, 6, 7), t)),
    f32x4.mul(f32x4.add(v128.shuffle<f32>(c, d, 0, 1, 4, 5), f32x4.mul(v128.shuffle<f32>(c, d, 2, 3, 6, 7), t)), t2),
  );
  a = v128.shuffle<f32>(s0, s1, 0, 4, 1, 5); b = v128.shuffle<f32>(s2, s3, 0, 4, 1, 5);
  c = v128.shuffle<f32>(s0, s1, 2, 6, 3, 7); d = v128.shuffle<f32>(s2, s3, 2, 6, 3, 7);
  const q1 = f32x4.add(
    f32x4.add(v128.shuffle<f32>(a, b, 0, 1, 4, 5), f32x4.mul(v128.shuffle<f32>(a, b, 2, 3, 6, 7), t)),
    f32x4.mul(f32x4.add(v128.shuffle<f32>(c, d, 0, 1, 4, 5), f32x4.mul(v128.shuffle<f32>(c, d, 2, 3, 6, 7), t)), t2),
  );
  return f32x4.add(q0, f32x4.mul(q1, f32x4.mul(t2, t2)));
}

/** Σ_j c_j t^j, j ≤ 3, for 4 lanes whose coefficients are rows r0..r3: the first half of poly8. */
// @ts-ignore: decorator
@inline function poly4(r0: v128, r1: v128, r2: v128, r3: v128, t: v128): v128 {
  const t2 = f32x4.mul(t, t);
  const a = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), b = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const c = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), d = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  return f32x4.add(
    f32x4.add(v128.shuffle<f32>(a, b, 0, 1, 4, 5), f32x4.mul(v128.shuffle<f32>(a, b, 2, 3, 6, 7), t)),
    f32x4.mul(f32x4.add(v128.shuffle<f32>(c, d, 0, 1, 4, 5), f32x4.mul(v128.shuffle<f32>(c, d, 2, 3, 6, 7), t)), t2),
  );
}

export function ewPiecewiseTask(job: usize, t: i32): void {
  const p = ewJob(job);
  const start = t * p.chunk;
  const end = imin(p.n, start + p.chunk);
  const table = <usize>p.table;
  const lo = f32x4.splat(p.lo), hi = f32x4.splat(p.hi);
  const perWidth = f32x4.splat(p.perWidth), width = f32x4.splat(p.width), toT = f32x4.splat(p.toT);
  const half = f32x4.splat(0.5), zero = i32x4.splat(0), last = i32x4.splat(p.intervals - 1);
  const below = f32x4.splat(p.below), above = f32x4.splat(p.above);
  const negInf = f32x4.splat(p.negInf), posInf = f32x4.splat(p.posInf);
  const mInf = f32x4.splat(-Infinity), pInf = f32x4.splat(Infinity);
  const xs = <usize>p.x, bys = <usize>p.by, outs = <usize>p.out;
  const core = <usize>p.core;
  const cLo = f32x4.splat(p.cLo), cHi = f32x4.splat(p.cHi), cLast = i32x4.splat(p.cIntervals - 1);
  const cPerWidth = f32x4.splat(p.cPerWidth), cWidth = f32x4.splat(p.cWidth), cToT = f32x4.splat(p.cToT);
  // the staged arrays are padded to a multiple of 4 floats: the last vector may read and write padding
  for (let i = start; i < end; i += 4) {
    const off = <usize>i << 2;
    const v = v128.load(xs + off);
    if (core != 0 && i32x4.all_true(v128.and(f32x4.ge(v, cLo), f32x4.lt(v, cHi)))) {
      // all four in the core (NaN is not): the cubic table, the same index and t as below
      const k = i32x4.min_s(i32x4.max_s(i32x4.trunc_sat_f32x4_s(f32x4.mul(f32x4.sub(v, cLo), cPerWidth)), zero), cLast);
      const mid = f32x4.add(cLo, f32x4.mul(f32x4.add(f32x4.convert_i32x4_s(k), half), cWidth));
      const tt = f32x4.mul(f32x4.sub(v, mid), cToT);
      // each lane's 4 coefficients (16 bytes per interval)
      const f = poly4(
        v128.load(core + (<usize>i32x4.extract_lane(k, 0) << 4)), v128.load(core + (<usize>i32x4.extract_lane(k, 1) << 4)),
        v128.load(core + (<usize>i32x4.extract_lane(k, 2) << 4)), v128.load(core + (<usize>i32x4.extract_lane(k, 3) << 4)), tt,
      );
      v128.store(outs + off, f32x4.mul(v128.load(bys + off), f));
      continue;
    }
    // interval k = min(floor((x - lo) / width), intervals - 1), clamped at 0 (lanes below lo, NaN)
    const k = i32x4.min_s(i32x4.max_s(i32x4.trunc_sat_f32x4_s(f32x4.mul(f32x4.sub(v, lo), perWidth)), zero), last);
    // t = (x - mid) / (width / 2), mid = lo + (k + 1/2) width exact in float32, so x - mid loses nothing
    const mid = f32x4.add(lo, f32x4.mul(f32x4.add(f32x4.convert_i32x4_s(k), half), width));
    const tt = f32x4.mul(f32x4.sub(v, mid), toT);
    // each lane's 8 coefficients (32 bytes per interval), gathered as rows
    const a0 = table + (<usize>i32x4.extract_lane(k, 0) << 5), a1 = table + (<usize>i32x4.extract_lane(k, 1) << 5);
    const a2 = table + (<usize>i32x4.extract_lane(k, 2) << 5), a3 = table + (<usize>i32x4.extract_lane(k, 3) << 5);
    let f = poly8(
      v128.load(a0), v128.load(a1), v128.load(a2), v128.load(a3),
      v128.load(a0, 16), v128.load(a1, 16), v128.load(a2, 16), v128.load(a3, 16), tt,
    );
    // outside [lo, hi): the limits; ±Infinity: f's values there; NaN fails every test and stays NaN
    f = v128.bitselect(below, f, f32x4.lt(v, lo));
    f = v128.bitselect(above, f, f32x4.ge(v, hi));
    f = v128.bitselect(negInf, f, f32x4.eq(v, mInf));
    f = v128.bitselect(posInf, f, f32x4.eq(v, pInf));
    v128.store(outs + off, f32x4.mul(v128.load(bys + off), f));
  }
}

// ---------------------------------------------------------------------------------------------
// layerNorm / rmsNorm rows
// ---------------------------------------------------------------------------------------------

/** Lanes 0, 1 and lanes 2, 3 of a float32 vector, widened to float64. */
// @ts-ignore: decorator
@inline function wideLo(v: v128): v128 {
  return f64x2.promote_low_f32x4(v);
}

// @ts-ignore: decorator
@inline function wideHi(v: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3));
}

/** Two float64 pairs rounded into one float32 vector. */
// @ts-ignore: decorator
@inline function narrow(lo: v128, hi: v128): v128 {
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

/** Σ x[i] (shift = 0) or Σ (x[i] - shift)² over a row of D floats, in float64. */
function rowSums(x: usize, D: i32, shift: f64, squares: bool): f64 {
  const s = f64x2.splat(shift);
  let a0 = f64x2.splat(0), a1 = a0;
  let j = 0;
  for (; j + 4 <= D; j += 4) {
    const v = v128.load(x + (<usize>j << 2));
    let lo = f64x2.sub(wideLo(v), s), hi = f64x2.sub(wideHi(v), s);
    if (squares) { lo = f64x2.mul(lo, lo); hi = f64x2.mul(hi, hi); }
    a0 = f64x2.add(a0, lo);
    a1 = f64x2.add(a1, hi);
  }
  let acc = hsum(f64x2.add(a0, a1));
  for (; j < D; j++) {
    const c = <f64>load<f32>(x + (<usize>j << 2)) - shift;
    acc += squares ? c * c : c;
  }
  return acc;
}

/**
 * Rows of layerNorm: mean (0 for rmsNorm), σ = sqrt(mean((x - mean)²) + eps), y = (x - mean) / σ · w + b,
 * mean and σ written to the float64 arrays the backward reads.
 */
export function ewNormFwdTask(job: usize, t: i32): void {
  const p = ewJob(job);
  const D = p.D;
  const r0 = t * p.rows, r1 = imin(p.R, r0 + p.rows);
  const rms = p.rms != 0;
  const eps = load<f64>(<usize>p.eps);
  const w = <usize>p.w, b = <usize>p.b;
  const rowBytes = <usize>D << 2;
  for (let r = r0; r < r1; r++) {
    const x = <usize>p.x + <usize>r * rowBytes, out = <usize>p.out + <usize>r * rowBytes;
    const mu: f64 = rms ? 0 : rowSums(x, D, 0, false) / <f64>D;
    const sd = Math.sqrt(rowSums(x, D, mu, true) / <f64>D + eps);
    store<f64>(<usize>p.mean + (<usize>r << 3), mu);
    store<f64>(<usize>p.std + (<usize>r << 3), sd);
    const inv = 1 / sd;
    const m = f64x2.splat(mu), iv = f64x2.splat(inv);
    let j = 0;
    for (; j + 4 <= D; j += 4) {
      const o = <usize>j << 2;
      const v = v128.load(x + o);
      let lo = f64x2.mul(f64x2.sub(wideLo(v), m), iv), hi = f64x2.mul(f64x2.sub(wideHi(v), m), iv);
      if (w != 0) { const wv = v128.load(w + o); lo = f64x2.mul(lo, wideLo(wv)); hi = f64x2.mul(hi, wideHi(wv)); }
      if (b != 0) { const bv = v128.load(b + o); lo = f64x2.add(lo, wideLo(bv)); hi = f64x2.add(hi, wideHi(bv)); }
      v128.store(out + o, narrow(lo, hi));
    }
    for (; j < D; j++) {
      const o = <usize>j << 2;
      let y = (<f64>load<f32>(x + o) - mu) * inv;
      if (w != 0) y *= <f64>load<f32>(w + o);
      if (b != 0) y += <f64>load<f32>(b + o);
      store<f32>(out + o, <f32>y);
    }
  }
}

/**
 * Rows of layerNorm's backward. x̂ = (x - mean) / σ, gw = g · w:
 *   dx = (gw - mean(gw) - x̂ · mean(gw · x̂)) / σ       (rmsNorm: no mean(gw) term)
 *   dw += g · x̂,  db += g                                (into this task's row of partial sums)
 */
export function ewNormBwdTask(job: usize, t: i32): void {
  const p = ewJob(job);
  const D = p.D;
  const r0 = t * p.rows, r1 = imin(p.R, r0 + p.rows);
  const rms = p.rms != 0;
  const w = <usize>p.w, gx = <usize>p.out;
  const accW = p.accW == 0 ? <usize>0 : <usize>p.accW + (<usize>t * <usize>D << 3);
  const accB = p.accB == 0 ? <usize>0 : <usize>p.accB + (<usize>t * <usize>D << 3);
  const rowBytes = <usize>D << 2;
  for (let r = r0; r < r1; r++) {
    const x = <usize>p.x + <usize>r * rowBytes, g = <usize>p.by + <usize>r * rowBytes;
    const mu = load<f64>(<usize>p.mean + (<usize>r << 3));
    const inv = 1 / load<f64>(<usize>p.std + (<usize>r << 3));
    const m = f64x2.splat(mu), iv = f64x2.splat(inv);
    // pass 1: the row's sums of gw and gw · x̂, and the weight / bias columns
    let sg0 = f64x2.splat(0), sg1 = sg0, sx0 = sg0, sx1 = sg0;
    let j = 0;
    for (; j + 4 <= D; j += 4) {
      const o = <usize>j << 2, o8 = <usize>j << 3;
      const v = v128.load(x + o), gv = v128.load(g + o);
      const xl = f64x2.mul(f64x2.sub(wideLo(v), m), iv), xh = f64x2.mul(f64x2.sub(wideHi(v), m), iv);
      const gl = wideLo(gv), gh = wideHi(gv);
      let wl = gl, wh = gh;
      if (w != 0) { const wv = v128.load(w + o); wl = f64x2.mul(gl, wideLo(wv)); wh = f64x2.mul(gh, wideHi(wv)); }
      sg0 = f64x2.add(sg0, wl); sg1 = f64x2.add(sg1, wh);
      sx0 = f64x2.add(sx0, f64x2.mul(wl, xl)); sx1 = f64x2.add(sx1, f64x2.mul(wh, xh));
      if (accW != 0) {
        v128.store(accW + o8, f64x2.add(v128.load(accW + o8), f64x2.mul(gl, xl)));
        v128.store(accW + o8, f64x2.add(v128.load(accW + o8, 16), f64x2.mul(gh, xh)), 16);
      }
      if (accB != 0) {
        v128.store(accB + o8, f64x2.add(v128.load(accB + o8), gl));
        v128.store(accB + o8, f64x2.add(v128.load(accB + o8, 16), gh), 16);
      }
    }
    let sumGw = hsum(f64x2.add(sg0, sg1)), sumGwXhat = hsum(f64x2.add(sx0, sx1));
    for (let jj = j; jj < D; jj++) {
      const o = <usize>jj << 2, o8 = <usize>jj << 3;
      const gj = <f64>load<f32>(g + o);
      const xhat = (<f64>load<f32>(x + o) - mu) * inv;
      const gw = w != 0 ? gj * <f64>load<f32>(w + o) : gj;
      sumGw += gw;
      sumGwXhat += gw * xhat;
      if (accW != 0) store<f64>(accW + o8, load<f64>(accW + o8) + gj * xhat);
      if (accB != 0) store<f64>(accB + o8, load<f64>(accB + o8) + gj);
    }
    if (gx == 0) continue;
    // pass 2: dx
    const m1 = rms ? 0 : sumGw / <f64>D, m2 = sumGwXhat / <f64>D;
    const vm1 = f64x2.splat(m1), vm2 = f64x2.splat(m2);
    const out = gx + <usize>r * rowBytes;
    j = 0;
    for (; j + 4 <= D; j += 4) {
      const o = <usize>j << 2;
      const v = v128.load(x + o), gv = v128.load(g + o);
      const xl = f64x2.mul(f64x2.sub(wideLo(v), m), iv), xh = f64x2.mul(f64x2.sub(wideHi(v), m), iv);
      let wl = wideLo(gv), wh = wideHi(gv);
      if (w != 0) { const wv = v128.load(w + o); wl = f64x2.mul(wl, wideLo(wv)); wh = f64x2.mul(wh, wideHi(wv)); }
      const dl = f64x2.mul(f64x2.sub(f64x2.sub(wl, vm1), f64x2.mul(xl, vm2)), iv);
      const dh = f64x2.mul(f64x2.sub(f64x2.sub(wh, vm1), f64x2.mul(xh, vm2)), iv);
      v128.store(out + o, narrow(dl, dh));
    }
    for (; j < D; j++) {
      const o = <usize>j << 2;
      const gj = <f64>load<f32>(g + o);
      const gw = w != 0 ? gj * <f64>load<f32>(w + o) : gj;
      store<f32>(out + o, <f32>((gw - m1 - (<f64>load<f32>(x + o) - mu) * inv * m2) * inv));
    }
  }
}
