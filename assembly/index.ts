// Entry point of the kernels module. The JavaScript side (src/kernels/wasm/) stages operands in the
// shared linear memory, writes a job descriptor at JOB_BASE and has every participating thread call
// run_tasks(tid); threads grab task indices from the descriptor's atomic counter until none are left,
// or until a task has failed on some thread (the host then sets J_FAILED; see src/kernels/wasm/runtime.ts).
// A job may be published before all its inputs are staged: then only tasks below J_AVAIL may be taken,
// and the host raises J_AVAIL as it stages the inputs of the next ones (a matmul's pack tasks start on
// the first rows of b while the calling thread copies the rest).

import {
  CTL_BASE, CTL_WORKER_TASKS, J_AVAIL, J_KIND, J_NEXT, J_NTASKS, JOB_BASE, K_ATT_BWD, K_ATT_BWD_PREP, K_ATT_FWD, K_MM, K_MM_PACK_B,
} from "./layout";
import { jobFailed } from "./job";
import { attBwdPrepTask, attBwdTask, attFwdTask, bwdScratchFloats, copyRows, fwdScratchFloats } from "./attention";
import { mmPackBTask, mmScratchFloats, mmTask, MM_MB, MM_NB, PANELS_PER_PACK_TASK } from "./matmul";
import { ewNormBwdTask, ewNormFwdTask, ewPiecewiseTask } from "./elementwise";
import { K_EW_NORM_BWD, K_EW_NORM_FWD, K_EW_PIECEWISE, K_OPT_ADAMW } from "./layout";
import { adamwTask } from "./optim";

/**
 * Runs tasks on thread `tid` until none is left (-1) or none is available yet (-2: the host has not
 * staged the next task's inputs; a worker then waits for J_AVAIL to rise and calls again).
 */
export function run_tasks(tid: i32): i32 {
  let t: i32;
  do t = run_one(tid); while (t >= 0);
  return t;
}

/** Takes the next task index if it is below J_AVAIL: the index (>= n when none is left), or -2 when none is available yet. */
function takeTask(job: usize, n: i32): i32 {
  const next = job + (<usize>J_NEXT << 2), avail = job + (<usize>J_AVAIL << 2);
  if (atomic.load<i32>(avail) >= n) return atomic.add<i32>(next, 1); // every task available: the plain counter
  let t = atomic.load<i32>(next);
  while (t < n) {
    if (t >= atomic.load<i32>(avail)) return -2;
    const seen = atomic.cmpxchg<i32>(next, t, t + 1);
    if (seen == t) break;
    t = seen;
  }
  return t;
}

/**
 * Grabs and runs one task of the published job on thread `tid`; returns its index, -1 when none
 * is left (or a task has failed somewhere), or -2 when the next is not available yet (J_AVAIL). The
 * calling thread uses it to do other work between its tasks (the matmul copies finished blocks of
 * out while the workers compute the rest).
 */
export function run_one(tid: i32): i32 {
  const job = <usize>JOB_BASE;
  if (jobFailed(job)) return -1;
  const kind = load<i32>(job + (<usize>J_KIND << 2));
  const n = load<i32>(job + (<usize>J_NTASKS << 2));
  const t = takeTask(job, n);
  if (t == -2) return -2;
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
  else if (kind == K_OPT_ADAMW) adamwTask(job, t);
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

/** Columns of b one K_MM_PACK_B task packs (its panels of 8). */
export function mm_pack_cols(): i32 {
  return PANELS_PER_PACK_TASK << 3;
}

export function mm_scratch_floats(): i32 {
  return mmScratchFloats();
}

