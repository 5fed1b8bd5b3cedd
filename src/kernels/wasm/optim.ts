/**
 * The wasm backend's optimizer kernel (assembly/optim.ts): AdamW's update of all the parameters of a
 * step in one job. Parameters, gradients and moments are staged one parameter after another (each
 * padded to a multiple of 4 floats), the tasks (chunks of taskElements of one parameter) read their
 * scalars from a table, and the results are copied back. The workers start on the first parameters
 * while the calling thread stages the rest (runJob's `stage`). Declines (returns false) below
 * minElements in all, when only some items have a vmax, and when arrays share memory; AdamW then
 * runs its own loop. Measured on GPT("small")'s 0.92M parameters (2 threads, same process, a quiet
 * 2-core machine): 2.5 ms per step against the loop's 4.2; on 1 thread 3.8 against 4.2 (the f64
 * square roots and divisions that keep the loop's bits bound it; the copies in and out cost ~1 ms).
 */
import type { AdamWItem } from "../backend.js";
import * as Lay from "./build/layout.js";
import { getNumThreads, getRuntime } from "./runtime.js";

/** Tunables (exported for tests and benchmarks; results never depend on the thread count). */
export const optimTuning = {
  /** below this many elements in all a step is left to AdamW's own loop */
  minElements: 4096,
  /** elements per task (a multiple of 4) */
  taskElements: 32768,
  /** below this many elements in all the update runs on the calling thread alone */
  minParallelElements: 1 << 17,
};

const up4 = (x: number): number => (x + 3) & ~3;

/**
 * Whether an array the update writes (p, m, v, vmax) shares its buffer with any other array of the
 * call: the staged copies would then be updated apart, where AdamW's loop, one parameter after
 * another, sees the earlier one's writes. Views of one buffer as parameters are not something the
 * library makes; such a call is declined.
 */
function sharesMemory(items: readonly AdamWItem[]): boolean {
  const written = new Set<ArrayBufferLike>();
  for (const it of items) {
    for (const a of [it.p, it.m, it.v, it.vmax]) {
      if (a === null) continue;
      if (written.has(a.buffer)) return true;
      written.add(a.buffer);
    }
  }
  for (const it of items) if (written.has(it.g.buffer)) return true;
  return false;
}

export function wasmAdamW(items: readonly AdamWItem[]): boolean {
  if (items.length === 0) return true;
  const ams = items[0].vmax !== null;
  const chunk = Math.max(4, optimTuning.taskElements & ~3);
  let total = 0, tasks = 0;
  for (const it of items) {
    const n = it.p.length;
    if ((it.vmax !== null) !== ams || it.g.length !== n || it.m.length !== n || it.v.length !== n || (it.vmax !== null && it.vmax.length !== n)) return false;
    total += up4(n);
    tasks += Math.ceil(n / chunk);
  }
  if (total < optimTuning.minElements || sharesMemory(items)) return false;
  const rt = getRuntime();
  if (rt === null) return false;
  rt.reset();
  const tableP = rt.allocF64(tasks * Lay.ADAMW_ROW);
  const pP = rt.allocF32(total), gP = rt.allocF32(total), mP = rt.allocF32(total), vP = rt.allocF32(total);
  const vmP = ams ? rt.allocF32(total) : 0;
  const f64 = rt.f64;
  for (let i = 0, t = 0, off = 0; i < items.length; off += up4(items[i].p.length), i++) {
    const it = items[i], n = it.p.length;
    for (let s = 0; s < n; s += chunk, t++) {
      const r = (tableP >> 3) + t * Lay.ADAMW_ROW;
      f64[r] = off + s;
      f64[r + 1] = up4(Math.min(chunk, n - s));
      f64[r + 2] = it.b1; f64[r + 3] = it.b2; f64[r + 4] = it.c1; f64[r + 5] = it.c2;
      f64[r + 6] = it.sign; f64[r + 7] = it.decay; f64[r + 8] = -it.stepSize; f64[r + 9] = it.bc2Sqrt; f64[r + 10] = it.eps;
    }
  }
  const stage = (release: (t: number) => void): void => {
    const f32 = rt.f32;
    for (let i = 0, t = 0, off = 0; i < items.length; i++) {
      const it = items[i], n = it.p.length;
      for (const [src, at] of [[it.p, pP], [it.g, gP], [it.m, mP], [it.v, vP], [it.vmax, vmP]] as const) {
        if (src === null) continue;
        const d = (at >> 2) + off;
        f32.set(src, d);
        f32.fill(0, d + n, d + up4(n)); // the padding lanes compute zeros, never copied back
      }
      off += up4(n);
      t += Math.ceil(n / chunk);
      release(t);
    }
  };
  rt.setJob(Lay.K_OPT_ADAMW, tasks, 0, 0, Lay.OptJob, { table: tableP, p: pP, g: gP, m: mP, v: vP, vmax: vmP });
  rt.runJob(total < optimTuning.minParallelElements ? 1 : getNumThreads(), tasks, undefined, stage);
  const f32 = rt.f32;
  for (let i = 0, off = 0; i < items.length; off += up4(items[i].p.length), i++) {
    const it = items[i], n = it.p.length;
    it.p.set(f32.subarray((pP >> 2) + off, (pP >> 2) + off + n));
    it.m.set(f32.subarray((mP >> 2) + off, (mP >> 2) + off + n));
    it.v.set(f32.subarray((vP >> 2) + off, (vP >> 2) + off + n));
    if (it.vmax !== null) it.vmax.set(f32.subarray((vmP >> 2) + off, (vmP >> 2) + off + n));
  }
  return true;
}
