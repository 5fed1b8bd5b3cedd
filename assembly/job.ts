// The job descriptor at JOB_BASE as the kernels see it: the parameter block, the calling thread's
// scratch, and the failure flag that lets every thread give up when one thread's task has failed.

import { AttJob, J_FAILED, J_PARAMS, J_SCRATCH, J_SCRATCH_STRIDE, MmJob } from "./layout";

// @ts-ignore: decorator
@inline export function attJob(job: usize): AttJob {
  return changetype<AttJob>(job + (<usize>J_PARAMS << 2));
}

// @ts-ignore: decorator
@inline export function mmJob(job: usize): MmJob {
  return changetype<MmJob>(job + (<usize>J_PARAMS << 2));
}

/** Byte address of thread `tid`'s scratch. */
// @ts-ignore: decorator
@inline export function scratchOf(job: usize, tid: i32): usize {
  return <usize>load<u32>(job + (<usize>J_SCRATCH << 2)) + <usize>tid * <usize>load<u32>(job + (<usize>J_SCRATCH_STRIDE << 2));
}

/** Whether a task of this job failed on some thread (the others then stop taking tasks and waiting). */
// @ts-ignore: decorator
@inline export function jobFailed(job: usize): bool {
  return atomic.load<i32>(job + (<usize>J_FAILED << 2)) != 0;
}

// @ts-ignore: decorator
@inline export function imin(a: i32, b: i32): i32 {
  return a < b ? a : b;
}
