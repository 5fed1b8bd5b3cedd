/**
 * The wasm backend's elementwise and row fast paths (kernels in assembly/elementwise.ts): a table of
 * polynomials times a factor (GELU's forward and backward), and layerNorm / rmsNorm rows forward and
 * backward. Each stages its operands into linear memory, runs one job (split into tasks that workers
 * take when the call is large: `elementwiseTuning`) and copies the results back; it declines (returns
 * false) for float64 arrays and for calls too small to be worth staging, and the op runs its own loop.
 */
import type { FloatArray } from "../../tensor/dtype.js";
import type { NormRowsParams, PiecewiseTable32 } from "../backend.js";
import * as Lay from "./build/layout.js";
import { getNumThreads, getRuntime, type JobFields, type WasmRuntime } from "./runtime.js";

/** Tunables (exported for tests and benchmarks; results never depend on the thread count). */
export const elementwiseTuning = {
  /** below this many elements a call is left to the op's own loop */
  minElements: 4096,
  /** elements per task (rounded down to whole rows, at least one, for the row kernels) */
  taskElements: 32768,
  /**
   * below this many elements a call runs on the calling thread alone: staging runs there anyway, and
   * layerNorm at [512, 768] (393K) was no faster on 2 threads, GELU at [512, 3072] was (busy 2-core machine)
   */
  minParallelElements: 1 << 19,
};

type EwFields = JobFields<typeof Lay.EwJob>;

const up4 = (x: number): number => (x + 3) & ~3;

function allF32(...xs: (FloatArray | null)[]): boolean {
  for (const x of xs) if (x !== null && !(x instanceof Float32Array)) return false;
  return true;
}

/** The runtime when a call of n elements on these arrays should run here, else null. */
function runtimeFor(n: number, ...xs: (FloatArray | null)[]): WasmRuntime | null {
  return n >= elementwiseTuning.minElements && allF32(...xs) ? getRuntime() : null;
}

function threadsFor(n: number): number {
  return n < elementwiseTuning.minParallelElements ? 1 : getNumThreads();
}

/** Copies src into a fresh staging buffer (padded to a multiple of 4 floats); returns its address. */
function stage(rt: WasmRuntime, src: FloatArray, n = src.length): number {
  const at = rt.allocF32(up4(n));
  rt.f32.set(src.subarray(0, n), at >> 2);
  return at;
}

function run(rt: WasmRuntime, kind: number, tasks: number, n: number, fields: EwFields): void {
  rt.setJob(kind, tasks, 0, 0, Lay.EwJob, fields);
  rt.runJob(threadsFor(n), tasks);
}

export function wasmMulPiecewise(out: FloatArray, by: FloatArray, x: FloatArray, f: PiecewiseTable32): boolean {
  const n = out.length;
  const rt = runtimeFor(n, out, by, x);
  if (rt === null) return false;
  rt.reset();
  const tableP = rt.allocF32(f.coef.length);
  rt.f32.set(f.coef, tableP >> 2);
  const c = f.core;
  const coreP = c === undefined ? 0 : rt.allocF32(c.coef.length);
  if (c !== undefined) rt.f32.set(c.coef, coreP >> 2);
  const xP = stage(rt, x, n);
  const byP = by === x ? xP : stage(rt, by, n);
  const outP = rt.allocF32(up4(n));
  const chunk = Math.max(4, up4(elementwiseTuning.taskElements));
  const tasks = Math.ceil(n / chunk);
  run(rt, Lay.K_EW_PIECEWISE, tasks, n, {
    n, chunk, x: xP, by: byP, out: outP, table: tableP, intervals: f.intervals, lo: f.lo, hi: f.hi, width: f.width,
    perWidth: 1 / f.width, toT: 2 / f.width, below: f.below, above: f.above, negInf: f.negInf, posInf: f.posInf,
    core: coreP, cIntervals: c?.intervals ?? 0, cLo: c?.lo ?? 0, cHi: c?.hi ?? 0, cWidth: c?.width ?? 0,
    cPerWidth: c === undefined ? 0 : 1 / c.width, cToT: c === undefined ? 0 : 2 / c.width,
  });
  out.set(rt.f32.subarray(outP >> 2, (outP >> 2) + n));
  return true;
}

/** Rows per task: about taskElements elements, at least one row. */
function rowsPerTask(D: number): number {
  return Math.max(1, Math.floor(elementwiseTuning.taskElements / Math.max(1, D)));
}

export function wasmNormRows(
  p: NormRowsParams, out: FloatArray, x: FloatArray, w: FloatArray | null, b: FloatArray | null,
  mean: Float64Array | null, std: Float64Array,
): boolean {
  const { R, D } = p;
  const n = R * D;
  const rt = runtimeFor(n, out, x, w, b);
  if (rt === null || (mean === null && b !== null)) return false;
  rt.reset();
  const epsP = rt.allocF64(1);
  rt.f64[epsP >> 3] = p.eps;
  const xP = stage(rt, x, n);
  const wP = w === null ? 0 : stage(rt, w, D);
  const bP = b === null ? 0 : stage(rt, b, D);
  const outP = rt.allocF32(n);
  const meanP = rt.allocF64(R), stdP = rt.allocF64(R);
  const rows = rowsPerTask(D);
  run(rt, Lay.K_EW_NORM_FWD, Math.ceil(R / rows), n, {
    R, D, rows, rms: mean === null ? 1 : 0, x: xP, w: wP, b: bP, eps: epsP, out: outP, mean: meanP, std: stdP,
  });
  out.set(rt.f32.subarray(outP >> 2, (outP >> 2) + n));
  const f64 = rt.f64;
  std.set(f64.subarray(stdP >> 3, (stdP >> 3) + R));
  if (mean !== null) mean.set(f64.subarray(meanP >> 3, (meanP >> 3) + R));
  return true;
}

export function wasmNormRowsBackward(
  p: NormRowsParams, g: FloatArray, x: FloatArray, w: FloatArray | null, mean: Float64Array | null, std: Float64Array,
  gx: FloatArray | null, accW: Float64Array | null, accB: Float64Array | null,
): boolean {
  const { R, D } = p;
  const n = R * D;
  const rt = runtimeFor(n, g, x, w, gx);
  if (rt === null) return false;
  rt.reset();
  const rows = rowsPerTask(D);
  const tasks = Math.ceil(R / rows);
  const xP = stage(rt, x, n);
  const gP = stage(rt, g, n);
  const wP = w === null ? 0 : stage(rt, w, D);
  const meanP = rt.allocF64(R), stdP = rt.allocF64(R);
  const gxP = gx === null ? 0 : rt.allocF32(n);
  const accWP = accW === null ? 0 : rt.allocF64(tasks * D);
  const accBP = accB === null ? 0 : rt.allocF64(tasks * D);
  const f64 = rt.f64;
  if (mean === null) f64.fill(0, meanP >> 3, (meanP >> 3) + R);
  else f64.set(mean, meanP >> 3);
  f64.set(std, stdP >> 3);
  if (accWP !== 0) f64.fill(0, accWP >> 3, (accWP >> 3) + tasks * D);
  if (accBP !== 0) f64.fill(0, accBP >> 3, (accBP >> 3) + tasks * D);
  run(rt, Lay.K_EW_NORM_BWD, tasks, n, {
    R, D, rows, rms: mean === null ? 1 : 0, x: xP, by: gP, w: wP, mean: meanP, std: stdP, out: gxP, accW: accWP, accB: accBP,
  });
  if (gx !== null) gx.set(rt.f32.subarray(gxP >> 2, (gxP >> 2) + n));
  // each task's column sums, added in task order
  const res = rt.f64;
  for (const [acc, at] of [[accW, accWP], [accB, accBP]] as const) {
    if (acc === null) continue;
    for (let t = 0, o = at >> 3; t < tasks; t++, o += D) for (let j = 0; j < D; j++) acc[j] += res[o + j];
  }
  return true;
}
