// Entry point of the kernels module. The JavaScript side (src/kernels/wasm/) stages operands in the
// shared linear memory, writes a job descriptor at JOB_BASE and has every participating thread call
// run_tasks(tid); threads grab task indices from the descriptor's atomic counter until none are left,
// or until a task has failed on some thread (the host then sets J_FAILED; see src/kernels/wasm/runtime.ts).

import {
  CTL_BASE, CTL_WORKER_TASKS, J_KIND, J_NEXT, J_NTASKS, JOB_BASE, K_ATT_BWD, K_ATT_BWD_PREP, K_ATT_FWD, K_MM, K_MM_PACK_B,
} from "./layout";
import { jobFailed } from "./job";
import { attBwdPrepTask, attBwdTask, attFwdTask, bwdScratchFloats, copyRows, fwdScratchFloats } from "./attention";
import { mmPackBTask, mmScratchFloats, mmTask, MM_MB, MM_NB } from "./matmul";
import { ewNormBwdTask, ewNormFwdTask, ewPiecewiseTask } from "./elementwise";
import { K_EW_NORM_BWD, K_EW_NORM_FWD, K_EW_PIECEWISE } from "./layout";

export function run_tasks(tid: i32): void {
  while (run_one(tid) >= 0);
}

/**
 * Grabs and runs one task of the published job on thread `tid`; returns its index, or -1 when none
 * is left (or a task has failed somewhere). The calling thread uses it to do other work between its
 * tasks (the matmul copies finished blocks of out while the workers compute the rest).
 */
export function run_one(tid: i32): i32 {
  const job = <usize>JOB_BASE;
  if (jobFailed(job)) return -1;
  const kind = load<i32>(job + (<usize>J_KIND << 2));
  const n = load<i32>(job + (<usize>J_NTASKS << 2));
  const t = atomic.add<i32>(job + (<usize>J_NEXT << 2), 1);
  if (t >= n) return -1;
  if (tid > 0) atomic.add<i32>(<usize>CTL_BASE + (<usize>CTL_WORKER_TASKS << 2), 1);
  if (kind == K_ATT_FWD) attFwdTask(job, t, tid);
  else if (kind == K_ATT_BWD) attBwdTask(job, t, tid);
  else if (kind == K_ATT_BWD_PREP) attBwdPrepTask(job, t, tid);
  else if (kind == K_MM) mmTask(job, t, tid);
  else if (kind == K_MM_PACK_B) mmPackBTask(job, t);
  else if (kind == K_EW_PIECEWISE) ewPiecewiseTask(job, t);
  else if (kind == K_EW_NORM_FWD) ewNormFwdTask(job, t);
  else if (kind == K_EW_NORM_BWD) ewNormBwdTask(job, t);
  return t;
}

export function fwd_scratch_floats(Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return fwdScratchFloats(Br, Bc, Ep, Evp);
}

export function bwd_scratch_floats(Br: i32, Bc: i32, Ep: i32, Evp: i32): i32 {
  return bwdScratchFloats(Br, Bc, Ep, Evp);
}

/** Strided row copies on the calling thread (attention staging of interleaved heads; see copyRows). */
export function copy_rows(dst: usize, dstStride: usize, src: usize, srcStride: usize, rows: i32, bytes: usize, padBytes: usize): void {
  copyRows(dst, dstStride, src, srcStride, rows, bytes, padBytes);
}

export function mm_row_block(): i32 {
  return MM_MB;
}

export function mm_col_block(): i32 {
  return MM_NB;
}

export function mm_scratch_floats(): i32 {
  return mmScratchFloats();
}
