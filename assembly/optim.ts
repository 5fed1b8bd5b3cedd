// The optimizer kernel: AdamW's update over float32 parameters, in float64 arithmetic.
//
//   K_OPT_ADAMW: the readable form is src/optim/adamw.ts (AdamW.update's loop and adamwLoop32): per
//     element, with gi = sign · g,
//       p' = fround(p · decay)
//       m  = fround(m · b1 + c1 · gi)
//       v  = fround(v · b2 + (c2 · gi) · gi)                  (amsgrad: vmax = max(vmax, v), read below)
//       p  = fround(p' + nss · (m / (sqrt(v) / bc2Sqrt + eps)))      nss = -stepSize
//     here two elements at a time as float64x2 (each operation the same IEEE operation on the same
//     operands, so the same bits as the JavaScript loop; test/fastops.test.ts). The parameters of one
//     step lie one after another in the staged arrays (each padded with zeros to a multiple of 4:
//     a padding lane computes 0 and is not copied back); task t reads its row of the f64 table: the
//     first element, how many (a multiple of 4), and its parameter's scalars.

import { ADAMW_ROW, J_PARAMS, OptJob } from "./layout";

// @ts-ignore: decorator
@inline function optJob(job: usize): OptJob {
  return changetype<OptJob>(job + (<usize>J_PARAMS << 2));
}

/** A float64x2 rounded to float32 and back (Math.fround on each lane). */
// @ts-ignore: decorator
@inline function fround2(x: v128): v128 {
  return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(x));
}

export function adamwTask(job: usize, t: i32): void {
  const J = optJob(job);
  const row = <usize>J.table + ((<usize>t * <usize>ADAMW_ROW) << 3);
  const off = <usize>load<f64>(row), len = <usize>load<f64>(row, 8);
  const b1 = f64x2.splat(load<f64>(row, 16)), b2 = f64x2.splat(load<f64>(row, 24));
  const c1 = f64x2.splat(load<f64>(row, 32)), c2 = f64x2.splat(load<f64>(row, 40));
  const sign = f64x2.splat(load<f64>(row, 48)), decay = f64x2.splat(load<f64>(row, 56));
  const nss = f64x2.splat(load<f64>(row, 64)), bc2 = f64x2.splat(load<f64>(row, 72)), eps = f64x2.splat(load<f64>(row, 80));
  const P = <usize>J.p + (off << 2), G = <usize>J.g + (off << 2), M = <usize>J.m + (off << 2), V = <usize>J.v + (off << 2);
  const VM: usize = J.vmax == 0 ? 0 : <usize>J.vmax + (off << 2);
  for (let i: usize = 0; i < len; i += 2) {
    const o = i << 2;
    const gi = f64x2.mul(sign, f64x2.promote_low_f32x4(v128.load64_zero(G + o)));
    const pi = fround2(f64x2.mul(f64x2.promote_low_f32x4(v128.load64_zero(P + o)), decay));
    const mi = fround2(f64x2.add(f64x2.mul(f64x2.promote_low_f32x4(v128.load64_zero(M + o)), b1), f64x2.mul(c1, gi)));
    const vi = fround2(f64x2.add(f64x2.mul(f64x2.promote_low_f32x4(v128.load64_zero(V + o)), b2), f64x2.mul(f64x2.mul(c2, gi), gi)));
    let vd = vi; // the second moment the step divides by: v, or amsgrad's running max
    if (VM != 0) {
      vd = f64x2.max(f64x2.promote_low_f32x4(v128.load64_zero(VM + o)), vi);
      v128.store64_lane(VM + o, f32x4.demote_f64x2_zero(vd), 0);
    }
    const q = f64x2.div(mi, f64x2.add(f64x2.div(f64x2.sqrt(vd), bc2), eps));
    v128.store64_lane(M + o, f32x4.demote_f64x2_zero(mi), 0);
    v128.store64_lane(V + o, f32x4.demote_f64x2_zero(vi), 0);
    v128.store64_lane(P + o, f32x4.demote_f64x2_zero(f64x2.add(pi, f64x2.mul(nss, q))), 0);
  }
}
