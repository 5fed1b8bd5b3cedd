/**
 * The wasm backend: float32 kernels in WebAssembly SIMD (assembly/), run on a pool of threads over
 * one shared memory (runtime.ts). A call stages its operands into linear memory (padding rows to
 * multiples of 4 or 8 and the head dims to multiples of 8, with zeros), publishes one or more jobs,
 * and copies the results back. Attention is staged a few kv groups (b, kv head) at a time, within a
 * fixed byte budget, so that memory stays bounded for long sequences. float64 calls, and calls too
 * small to be worth staging, go to the reference kernels.
 */
import type { FloatArray } from "../../tensor/dtype.js";
import type { AttentionParams, Backend, MatmulParams, PositionAlignment, RowStrides } from "../backend.js";
import { blockKind, documentRanges, positionShift, visibleOffsets } from "../causal.js";
import { ArgumentError } from "../../tensor/errors.js";
import { dropoutThreshold } from "../dropoutHash.js";
import { isFrozen, onFrozenScopeEnd } from "../frozen.js";
import { refAttentionBackward, refAttentionForward } from "../ref/attention.js";
import { layoutOf, rowStart } from "../layout.js";
import { refMatmul } from "../ref/matmul.js";
import { wasmMulPiecewise, wasmNormRows, wasmNormRowsBackward } from "./elementwise.js";
import { wasmAdamW } from "./optim.js";
import * as Lay from "./build/layout.js";
import { getNumThreads, getRuntime, type JobFields, type WasmRuntime } from "./runtime.js";

type AttFields = JobFields<typeof Lay.AttJob>;

/** Tunables (exported for tests and benchmarks; results never depend on the thread count). */
export const wasmTuning = {
  /** query rows per attention tile (multiple of 8) */
  Br: 64,
  /** keys per attention tile (multiple of 8) */
  Bc: 64,
  /**
   * bytes of staged attention tensors per round, the block that interleaved rows move through
   * included (at least one kv group is always staged); the threads' scratch is not counted
   */
  stagingBudget: 32 * 1024 * 1024,
  /**
   * floats of wasm memory an attention call borrows to move interleaved rows (AttentionParams.layout)
   * through, a block of rows at a time (at least one row: a row wider than this takes its width;
   * counted in stagingBudget); 0: a copy per head row instead (the slower form, kept for comparison)
   */
  moveFloats: 1 << 20,
  /** below this many flops a matmul runs on the calling thread alone */
  minParallelFlops: 4e6,
  /**
   * below this many flops an attention job (a forward, or a backward) runs on the calling thread
   * alone: about 2.5 ms of one thread's work. Measured through scaledDotProductAttention forward +
   * backward on 2 shared cores at loads 4-9 (1 and 2 threads in turns, blocks of consecutive calls):
   * at B·H = 8, L = S = 128, E = 64 (forward 34, backward 84 MFLOP) 2 threads with every job threaded
   * took 1.03-1.17 of 1 thread's time in 5 runs; at L = S = 256 (134, 336 MFLOP) 0.84; between
   * (L = S = 192, or 16 heads at 128) either way with the load. A quiet machine gains from less.
   * See attThreads.
   */
  minParallelAttentionFlops: 100e6,
  /**
   * below minParallelAttentionFlops, but from this many flops on, an attention job still goes to all
   * threads when a worker finished a (non-attention) job within the last hotWorkerMs milliseconds. In
   * a training step of GPT("small") on a quiet machine 7 of the 8 attention calls come 0.2 ms after a
   * threaded matmul, one 2.4 ms after; on a loaded one the gaps spread (median 0.4, 75% within 2.7 ms).
   * See attThreads.
   */
  minHotAttentionFlops: 4e6,
  /** see minHotAttentionFlops */
  hotWorkerMs: 3,
  /** below this many floats of b, packing b for a matmul runs on the calling thread alone */
  minParallelPack: 1 << 18,
  /** below this many flops a matmul goes to the reference kernel */
  minMatmulFlops: 16384,
  /**
   * from this many floats of out on, a threaded matmul touches the pages of out between its own tasks,
   * while the workers compute, so that the copy after the job does not take their first-touch faults
   * with the workers idle (a projection's fresh [512, 3072] output)
   */
  minOverlapUnstage: 1 << 18,
  /**
   * from this many floats of out on, a threaded matmul copies each finished column block of out out
   * between its own tasks instead (a prefill's [512, 50257] logits): the copy itself overlaps the
   * workers too. Each block is one copy per row, so for smaller outs the calls cost more than the
   * overlap saves: a GPT-2-small prefill (2 threads, alternating in one process) took 0.94x the time
   * with this at 2^22 (only the logits) than at 2^18 (every projection too).
   */
  minCopyOutDuring: 1 << 22,
  /** from this many floats of b on, a threaded matmul's workers start packing b while the calling thread copies the rest of it in */
  minOverlapStage: 1 << 18,
  /** bytes of packed weights kept in wasm memory while they are frozen (../frozen.ts) */
  residentBudget: 256 * 1024 * 1024,
};

const up4 = (x: number): number => (x + 3) & ~3;
const up8 = (x: number): number => (x + 7) & ~7;

function isF32(...xs: FloatArray[]): boolean {
  for (const x of xs) if (!(x instanceof Float32Array)) return false;
  return true;
}

/**
 * Copies `rows` rows of `cols` floats (source row stride `srcStride`) into rows of `dstCols` floats
 * at dst[dstOff], zero-filling the padding columns; then zero-fills rows rows..padRows.
 */
function stageRows(
  dst: Float32Array, dstOff: number, src: FloatArray, srcOff: number,
  rows: number, cols: number, srcStride: number, dstCols: number, padRows: number,
): void {
  if (cols === dstCols && cols === srcStride) {
    dst.set(src.subarray(srcOff, srcOff + rows * cols), dstOff);
  } else {
    for (let r = 0; r < rows; r++) {
      const d = dstOff + r * dstCols;
      dst.set(src.subarray(srcOff + r * srcStride, srcOff + r * srcStride + cols), d);
      if (dstCols > cols) dst.fill(0, d + cols, d + dstCols);
    }
  }
  if (padRows > rows) dst.fill(0, dstOff + rows * dstCols, dstOff + padRows * dstCols);
}

/** The inverse: rows of `cols` floats out of rows of `srcCols` floats (destination row stride `dstStride`). */
function unstageRows(
  dst: FloatArray, dstOff: number, src: Float32Array, srcOff: number, rows: number, cols: number, srcCols: number, dstStride = cols,
): void {
  if (cols === srcCols && cols === dstStride) {
    dst.set(src.subarray(srcOff, srcOff + rows * cols), dstOff);
  } else {
    for (let r = 0; r < rows; r++) dst.set(src.subarray(srcOff + r * srcCols, srcOff + r * srcCols + cols), dstOff + r * dstStride);
  }
}

/**
 * An error thrown while an operand was copied between its array and wasm memory (a detached buffer,
 * memory that cannot grow), named: the function, what it was doing, the operand.
 */
function stagingError(fn: string, what: string, e: unknown): Error {
  return new Error(`attend: ${fn}: ${what} failed: ${String(e)}`, { cause: e });
}

/**
 * rt.alloc(bytes) for `what` (an operand, or a buffer) of the call `fn`: memory that cannot grow, or
 * would pass 4 GiB, fails naming the function, what the bytes were for and how many, instead of with
 * the runtime's bare RangeError.
 */
function reserve(rt: WasmRuntime, fn: string, what: string, bytes: number): number {
  try {
    return rt.alloc(bytes);
  } catch (e) {
    throw reserveError(rt, fn, what, `${bytes} bytes`, e);
  }
}

/** The same for the threads' scratch (rt.allocScratch: `floats` per thread). */
function reserveScratch(rt: WasmRuntime, fn: string, floats: number): [number, number] {
  try {
    return rt.allocScratch(floats);
  } catch (e) {
    throw reserveError(rt, fn, "the threads' scratch", `${floats} floats per thread`, e);
  }
}

function reserveError(rt: WasmRuntime, fn: string, what: string, size: string, e: unknown): Error {
  return stagingError(fn, `reserving wasm memory for ${what} (${size}; the memory holds ${rt.memoryBytes} bytes)`, e);
}

// ----------------------------------------------------------------------------------------------
// matmul
// ----------------------------------------------------------------------------------------------

/**
 * Packed right operands kept across calls while they are frozen (../frozen.ts): by the buffer b lies
 * in, then by its byte range and the way it is read (transB, n, k, batch), the resident address of
 * its packed panels. At most `wasmTuning.residentBudget` bytes are kept.
 */
const resident = { rt: null as WasmRuntime | null, packs: new Map<ArrayBufferLike, Map<string, number>>(), last: new WeakMap<FloatArray, LastPack>() };

/**
 * The last answer for one array object, checked before the key is built: a weight's values are the
 * same object at every decode step, and building the string key cost more than the lookup it serves.
 */
interface LastPack {
  transB: boolean;
  n: number;
  k: number;
  batch: number;
  bBatchStride: number;
  at: number;
}

function dropResident(): void {
  resident.packs.clear();
  resident.last = new WeakMap();
}

onFrozenScopeEnd(() => {
  resident.rt?.releaseResident();
  resident.rt = null;
  dropResident();
});

/**
 * Where b's packed panels are for this call: [address, true] when they are already there, [address,
 * false] when they are to be packed there now (kept from now on), or null when b is not frozen or
 * the budget is spent (pack into staging as usual). Call right after rt.reset().
 */
function residentPackOf(rt: WasmRuntime, b: FloatArray, p: MatmulParams, bytes: number, fn: string): [number, boolean] | null {
  if (!isFrozen(b)) return null;
  if (resident.rt !== rt) { // first use in this scope, or the runtime was replaced: start over
    resident.rt?.releaseResident();
    resident.rt = rt;
    dropResident();
  }
  const last = resident.last.get(b);
  if (last !== undefined && last.transB === p.transB && last.n === p.n && last.k === p.k && last.batch === p.batch && last.bBatchStride === p.bBatchStride) {
    return [last.at, true];
  }
  const key = `${b.byteOffset},${b.length},${p.transB ? 1 : 0},${p.n},${p.k},${p.batch},${p.bBatchStride}`;
  let byKey = resident.packs.get(b.buffer);
  let at = byKey?.get(key);
  const had = at !== undefined;
  if (at === undefined) {
    if (rt.residentBytes + bytes > wasmTuning.residentBudget) return null;
    try {
      at = rt.allocResident(bytes);
    } catch (e) {
      throw reserveError(rt, fn, "b's packed panels, kept while b is frozen", `${bytes} bytes`, e);
    }
    if (byKey === undefined) resident.packs.set(b.buffer, (byKey = new Map()));
    byKey.set(key, at);
  }
  resident.last.set(b, { transB: p.transB, n: p.n, k: p.k, batch: p.batch, bBatchStride: p.bBatchStride, at });
  return [at, had];
}

function wasmMatmul(out: FloatArray, a: FloatArray, b: FloatArray, p: MatmulParams): void {
  wasmMatmulBias(out, a, b, null, p);
}

/** out[i, j] += bias[j] for each of the `rows` rows of out (the reference kernel's bias). */
function addBiasRows(out: FloatArray, bias: FloatArray, rows: number, n: number): void {
  for (let r = 0, o = 0; r < rows; r++, o += n) for (let j = 0; j < n; j++) out[o + j] += bias[j];
}

/** wasmMatmul, then bias [n] (when given) added to every row; in the kernels, while out is still staged. */
function wasmMatmulBias(out: FloatArray, a: FloatArray, b: FloatArray, bias: FloatArray | null, p: MatmulParams): void {
  const { batch, m, n, k, aBatchStride, bBatchStride, transA, transB, accumulate } = p;
  if (batch * m * n === 0) return;
  if (k === 0) {
    if (!accumulate) out.fill(0, 0, batch * m * n);
    if (bias !== null) addBiasRows(out, bias, batch * m, n);
    return;
  }
  const flops = 2 * batch * m * n * k;
  const rt = isF32(out, a, b) && (bias === null || isF32(bias)) && flops >= wasmTuning.minMatmulFlops ? getRuntime() : null;
  if (rt === null) {
    refMatmul(out, a, b, p);
    if (bias !== null) addBiasRows(out, bias, batch * m, n);
    return;
  }
  const mp = up4(m), np = up8(n);
  const nA = aBatchStride === 0 ? 1 : batch;
  const nB = bBatchStride === 0 ? 1 : batch;
  const fn = bias === null ? "wasmMatmul" : "wasmMatmulBias";
  rt.reset();
  const kept = residentPackOf(rt, b, p, 4 * nB * k * np, fn);
  const [scratch, stride] = reserveScratch(rt, fn, rt.exports.mm_scratch_floats());
  const aP = reserve(rt, fn, "a", 4 * nA * m * k);
  const packed = kept !== null && kept[1];
  const bP = packed ? 0 : reserve(rt, fn, "b", 4 * nB * n * k);
  const bpP = kept !== null ? kept[0] : reserve(rt, fn, "b's packed panels", 4 * nB * k * np);
  const cP = reserve(rt, fn, "out", 4 * batch * mp * np);
  const biasP = bias === null ? 0 : reserve(rt, fn, "bias", 4 * np);
  const threads = flops < wasmTuning.minParallelFlops ? 1 : getNumThreads();
  const mb = Math.ceil(mp / rt.exports.mm_row_block());
  const nb = Math.ceil(np / rt.exports.mm_col_block());
  const tasks = batch * mb * nb;
  // out is copied out during the product job (a counter per column block tells when a block is done)
  const overlapOut = threads > 1 && rt.threaded && tasks >= 2 * threads;
  const copyingOut = overlapOut && batch * m * n >= wasmTuning.minCopyOutDuring;
  const prefaulting = overlapOut && !copyingOut && !accumulate && batch * m * n >= wasmTuning.minOverlapUnstage;
  const doneP = copyingOut ? reserve(rt, fn, "the column blocks' counters", 4 * batch * nb) : 0;
  const prm: JobFields<typeof Lay.MmJob> = {
    a: aP, bp: bpP, b: bP, c: cP, m, n, k, mp, np, aBatch: nA === 1 ? 0 : 1, bBatch: nB === 1 ? 0 : 1,
    transA: transA ? 1 : 0, transB: transB ? 1 : 0, acc: accumulate ? 1 : 0, mBlocks: mb, nBlocks: nb, bias: biasP, done: doneP,
  };
  // a and b go in as given (the kernels pack b, and each product task its rows of a); out is staged
  // with padded rows and columns. `what`: the operand being copied, which an error names.
  const packCols = rt.exports.mm_pack_cols();
  let what = "";
  const copyIn = (release: (t: number) => void): void => {
    try {
      if (!packed) {
        what = `b (${nB} × ${n * k} floats; its array holds ${b.length})`;
        stageB(rt.f32, bP >> 2, b, p, packCols, release);
      }
      const f32 = rt.f32;
      if (bias !== null) {
        what = `bias (${n} floats; its array holds ${bias.length})`;
        f32.set(bias.subarray(0, n), biasP >> 2);
        f32.fill(0, (biasP >> 2) + n, (biasP >> 2) + np);
      }
      what = `a (${nA} × ${m * k} floats; its array holds ${a.length})`;
      for (let i = 0; i < nA; i++) f32.set(a.subarray(i * aBatchStride, i * aBatchStride + m * k), (aP >> 2) + i * m * k);
      if (accumulate) {
        what = `out (accumulated into: ${batch} × ${m * n} floats; its array holds ${out.length})`;
        for (let i = 0; i < batch; i++) stageRows(f32, (cP >> 2) + i * mp * np, out, i * m * n, m, n, n, np, m);
      }
    } catch (e) {
      throw stagingError(fn, `staging ${what} into wasm memory`, e);
    }
    if (copyingOut) rt.i32.fill(0, doneP >> 2, (doneP >> 2) + batch * nb);
  };
  if (packed) {
    copyIn(() => {});
  } else {
    const packTasks = nB * Math.ceil(np / packCols);
    // packing moves each float once: below minParallelPack floats a worker's wake-up costs more than it saves
    const packThreads = nB * k * np < wasmTuning.minParallelPack ? 1 : threads;
    rt.setJob(Lay.K_MM_PACK_B, packTasks, scratch, stride, Lay.MmJob, prm);
    if (packThreads > 1 && rt.threaded && nB * n * k >= wasmTuning.minOverlapStage) {
      // the workers pack b's first panels while this thread copies the rest of b, then a (an error
      // while copying is rethrown by runJob as copyIn named it, not as a failed pack task)
      rt.runJob(packThreads, packTasks, undefined, copyIn);
    } else {
      copyIn(() => {});
      rt.runJob(packThreads, packTasks);
    }
  }
  rt.setJob(Lay.K_MM, tasks, scratch, stride, Lay.MmJob, prm);
  if (copyingOut) {
    runMatmulCopyingOut(rt, out, cP, doneP, { batch, m, n, mp, np, mb, nb }, threads, tasks, fn);
    return;
  }
  if (prefaulting) runMatmulPrefaulting(rt, out, batch * m * n, threads, tasks);
  else rt.runJob(threads, tasks);
  const res = rt.f32;
  try {
    for (let i = 0; i < batch; i++) unstageRows(out, i * m * n, res, (cP >> 2) + i * mp * np, m, n, np);
  } catch (e) {
    throw stagingError(fn, `writing out (${batch} × ${m * n} floats; its array holds ${out.length}) from wasm memory`, e);
  }
}

/**
 * Copies b as given into wasm memory at dst (the pack tasks' input: [nB][n][k] with transB, else
 * [nB][k][n]), in the pack tasks' order, calling release(t) once pack tasks [0, t) can read all
 * they need: with transB, task (batch i, columns c0..c0 + packCols - 1) reads those rows of b[i], so
 * b goes in a task's rows at a time; without, every task of b[i] reads all of b[i].
 * Readable form: for each batch i, dst[i * n * k ..][0 .. n * k) = b[i * bBatchStride ..]; release(all).
 */
function stageB(dst: Float32Array, at: number, b: FloatArray, p: MatmulParams, packCols: number, release: (t: number) => void): void {
  const { n, k, batch, bBatchStride, transB } = p;
  const nB = bBatchStride === 0 ? 1 : batch;
  const groups = Math.ceil(up8(n) / packCols);
  for (let i = 0; i < nB; i++) {
    const src = i * bBatchStride, d = at + i * n * k;
    if (!transB) { // every task of b[i] reads all of it: one copy, one release
      dst.set(b.subarray(src, src + n * k), d);
      release((i + 1) * groups);
      continue;
    }
    for (let g = 0, staged = 0; g < groups; g++) { // staged: floats of b[i] in memory
      const need = Math.min(n, (g + 1) * packCols) * k;
      dst.set(b.subarray(src + staged, src + need), d + staged);
      staged = need;
      release(i * groups + g + 1);
    }
  }
}

/**
 * The product job of wasmMatmul for a large `out` that the product overwrites: between its own
 * tasks the calling thread touches the pages of `out` (one write per 4 KiB), so that their first-touch
 * faults are taken while the workers compute, and the copy after the job writes to mapped pages. The
 * writes are zeros that the copy overwrites; the tasks, their order and so the values are those of
 * the plain path.
 */
function runMatmulPrefaulting(
  rt: WasmRuntime, out: FloatArray, total: number, threads: number, tasks: number,
): void {
  const step = 4096 / out.BYTES_PER_ELEMENT; // elements per page
  const chunk = 256 * step; // pages touched after each own task (1 MiB of float32): a task's time or less
  let at = 0;
  rt.runJob(threads, tasks, () => {
    if (at >= total) return;
    const end = Math.min(total, at + chunk);
    for (; at < end; at += step) out[at] = 0;
  });
}

/**
 * The product job of wasmMatmul for a large `out`, copying out each column block of the staged
 * product (all rows, MM_NB columns) as soon as its tasks are done, between the calling thread's own
 * tasks, so that the copy (and, for a fresh array, its first-touch page faults: a prefill's
 * [512, 50257] logits are 100 MB) goes on while the workers compute instead of after the job with
 * them idle. The tasks run column block by column block (assembly mmTask: row blocks inner), so
 * blocks finish in order; each task adds 1 to its block's counter at `doneP` when its part of out is
 * stored. The tasks, their order and so the values are those of the plain path; only when each part
 * is copied changes. Readable form: runJob(threads, tasks); unstageRows(out, ...) for each product.
 */
function runMatmulCopyingOut(
  rt: WasmRuntime, out: FloatArray, cP: number, doneP: number, g: { batch: number; m: number; n: number; mp: number; np: number; mb: number; nb: number },
  threads: number, tasks: number, fn: string,
): void {
  const { batch, m, n, mp, np, mb, nb } = g;
  const NB = rt.exports.mm_col_block();
  const blocks = batch * nb;
  let next = 0; // column blocks [0, next) are copied out
  /** Copies column blocks [q0, q1) of one product out (all of its rows). */
  const copy = (q0: number, q1: number): void => {
    try {
      copyBlocks(q0, q1);
    } catch (e) {
      throw stagingError(fn, `writing out (column blocks ${q0} to ${q1} of ${blocks}; its array holds ${out.length}) from wasm memory`, e);
    }
  };
  const copyBlocks = (q0: number, q1: number): void => {
    const res = rt.f32;
    const i = Math.floor(q0 / nb), c0 = (q0 - i * nb) * NB, c1 = Math.min(n, (q1 - i * nb) * NB);
    const src = (cP >> 2) + i * mp * np + c0, dst = i * m * n + c0;
    if (c0 === 0 && c1 === n && n === np) {
      out.set(res.subarray(src, src + m * n), dst);
      return;
    }
    for (let r = 0; r < m; r++) out.set(res.subarray(src + r * np, src + r * np + c1 - c0), dst + r * n);
  };
  /** Copies the finished blocks from `next` on (`all`: every block left, the job being over), a product's run at a time. */
  const copyReady = (all: boolean): void => {
    const cnt = rt.i32, at = doneP >> 2;
    while (next < blocks) {
      const end = (Math.floor(next / nb) + 1) * nb; // this product's blocks end here
      let q = next;
      while (q < end && (all || Atomics.load(cnt, at + q) === mb)) q++;
      if (q === next) return;
      copy(next, q);
      next = q;
    }
  };
  rt.runJob(threads, tasks, () => copyReady(false));
  copyReady(true);
}

// ----------------------------------------------------------------------------------------------
// attention
// ----------------------------------------------------------------------------------------------

interface AttGeometry {
  G: number;
  Lp: number;
  Sp: number;
  Ep: number;
  Evp: number;
  Br: number;
  Bc: number;
  nI: number;
  nJ: number;
}

function geometry(p: AttentionParams): AttGeometry {
  const Lp = up8(p.L), Sp = up8(p.S);
  const Br = Math.min(up8(wasmTuning.Br), Lp), Bc = Math.min(up8(wasmTuning.Bc), Sp);
  return {
    G: p.H / p.Hkv, Lp, Sp, Ep: up8(p.E), Evp: up8(p.Ev), Br, Bc,
    nI: Math.ceil(Lp / Br), nJ: Math.ceil(Sp / Bc),
  };
}


/**
 * One operand of an attention call: its name (for errors), its array, where its rows are in it
 * (AttentionParams.layout), its T rows of D floats per head, padded to Tp × Dp in wasm memory, and
 * the heads the current staging round stages: [head (flat, b·heads + h), float index of its Tp × Dp slot].
 */
interface Operand {
  name: string;
  arr: FloatArray;
  s: RowStrides;
  heads: number;
  T: number;
  D: number;
  Tp: number;
  Dp: number;
  slots: Array<[number, number]>;
}

/**
 * Whether an operand's heads lie side by side within its rows ([B, T, ..heads·D..]: sh < sl), where a
 * copy per head row (one typed-array view each) costs more than the permute it replaces.
 */
const interleavedRows = (o: Operand): boolean => o.s.sh < o.s.sl && wasmTuning.moveFloats > 0;

/**
 * Interleaved operands that share their rows (self-attention without gradient hands q, k and v as
 * thirds of one array): their rows are moved once, a block of `rows` rows at a time, each block the
 * columns [lo, lo + width) of its rows that the operands' heads cover. Worked out once per call.
 */
interface RowGroup {
  ops: Operand[];
  lo: number;
  width: number;
  rows: number;
}

/** How a call moves some of its operands between their arrays and wasm memory (`fn`: the call, for errors). */
interface Staging {
  fn: string;
  /** operands copied a head row at a time (stageRows) */
  direct: Operand[];
  /** interleaved operands, moved a block of whole rows at a time */
  groups: RowGroup[];
  /** floats of wasm memory the largest block takes (0: no groups) */
  blockFloats: number;
}

/** The interleaved operands in groups that share their rows. */
function rowGroups(ops: Operand[]): Operand[][] {
  const groups: Operand[][] = [];
  for (const o of ops) {
    const g = groups.find(([f]) => f.arr === o.arr && f.s.sb === o.s.sb && f.s.sl === o.s.sl && f.T === o.T);
    if (g) g.push(o);
    else groups.push([o]);
  }
  return groups;
}

/** A group's walk: the columns its heads cover, and rows per block (as many as fit wasmTuning.moveFloats, at least one, at most T). */
function rowGroup(ops: Operand[]): RowGroup {
  const { s, T } = ops[0];
  const lo = Math.min(...ops.map((o) => o.s.offset));
  const hi = Math.max(...ops.map((o) => o.s.offset + (o.heads - 1) * o.s.sh + o.D));
  return { ops, lo, width: hi - lo, rows: Math.min(T, Math.max(1, Math.floor(wasmTuning.moveFloats / s.sl))) };
}

function stagingOf(fn: string, ops: Operand[]): Staging {
  const groups = rowGroups(ops.filter(interleavedRows)).map(rowGroup);
  return {
    fn, direct: ops.filter((o) => !interleavedRows(o)), groups,
    blockFloats: Math.max(0, ...groups.map((g) => (g.rows - 1) * g.ops[0].s.sl + g.width)),
  };
}

/**
 * A round's moves within one group's blocks for batch element b: each staged head's slot, and where
 * its row t0 starts in a block (from the block's first float; its rows follow sl apart).
 */
interface BlockMoves {
  b: number;
  moves: Array<[o: Operand, at: number, inBlock: number]>;
}

/** The round's moves of a group, per batch element that a slot of the round is in (worked out once per round, not per block). */
function roundMoves(g: RowGroup): BlockMoves[] {
  const byB = new Map<number, BlockMoves>();
  for (const o of g.ops) {
    for (const [head, at] of o.slots) {
      const b = Math.floor(head / o.heads);
      let m = byB.get(b);
      if (m === undefined) byB.set(b, (m = { b, moves: [] }));
      m.moves.push([o, at, o.s.offset - g.lo + (head % o.heads) * o.s.sh]);
    }
  }
  return [...byB.values()];
}

/**
 * Walks a group's rows of batch element b block by block: rows [t0, t1) at a time, `block(t0, t1,
 * from, to)` with the span of the array they occupy, which starts at column lo of row t0.
 */
function eachRowBlock(g: RowGroup, b: number, block: (t0: number, t1: number, from: number, to: number) => void): void {
  const { s, T } = g.ops[0];
  for (let t0 = 0; t0 < T; t0 += g.rows) {
    const t1 = Math.min(T, t0 + g.rows);
    const from = g.lo + b * s.sb + t0 * s.sl;
    block(t0, t1, from, from + (t1 - t0 - 1) * s.sl + g.width);
  }
}

/**
 * Whether the heads of a round's moves for one batch element write every column of its blocks (each
 * operand's heads dense, D apart, all of them staged, side by side without gaps or overlaps), so
 * that a block need not be read before it is written back.
 */
function coversBlock(g: RowGroup, m: BlockMoves): boolean {
  const ranges: Array<[number, number]> = [];
  for (const o of g.ops) {
    if (o.s.sh !== o.D || m.moves.filter(([x]) => x === o).length !== o.heads) return false;
    ranges.push([o.s.offset, o.s.offset + o.heads * o.D]);
  }
  ranges.sort((x, y) => x[0] - y[0]);
  let end = g.lo;
  for (const [from, to] of ranges) {
    if (from !== end) return false;
    end = to;
  }
  return end === g.lo + g.width;
}

/** An operand as errors name it: its name, its heads' rows, the array's length. */
const operandName = (o: Operand): string =>
  `${o.name} (${o.heads} heads of ${o.T} rows of ${o.D} floats per batch element; its array holds ${o.arr.length} floats)`;

/** A group's operands as errors name them. */
const groupName = (g: RowGroup): string => {
  const { T, s, arr } = g.ops[0];
  const whose = g.ops.length > 1 ? "the rows they share" : "its rows";
  return `${g.ops.map((o) => o.name).join(", ")} (${whose}: ${T} of ${s.sl} floats per batch element; their array holds ${arr.length} floats)`;
};

/**
 * Copies each operand's heads of this round into their slots (zero padding to Tp × Dp). Heads-first
 * rows go with stageRows, a set per head; interleaved rows come into wasm memory a block of whole
 * rows at a time (one set, at `tmp`, st.blockFloats floats; rows that q, k and v share come once) and
 * move to the slots inside it (copy_rows, one call per head and block: a host call per row, a
 * typed-array view or a copyWithin each, cost more than the permute this replaces).
 */
function stageOperands(rt: WasmRuntime, st: Staging, tmp: number): void {
  let what = "";
  try {
    for (const o of st.direct) {
      what = operandName(o);
      for (const [head, at] of o.slots) stageRows(rt.f32, at, o.arr, rowStart(o.s, o.heads, head), o.T, o.D, o.s.sl, o.Dp, o.Tp);
    }
    const f32 = rt.f32;
    for (const g of st.groups) {
      what = groupName(g);
      const arr = g.ops[0].arr;
      for (const { b, moves } of roundMoves(g)) {
        eachRowBlock(g, b, (t0, t1, from, to) => {
          f32.set(arr.subarray(from, to), tmp);
          for (const [o, at, inBlock] of moves) {
            rt.exports.copy_rows(4 * (at + t0 * o.Dp), 4 * o.Dp, 4 * (tmp + inBlock), 4 * o.s.sl, t1 - t0, 4 * o.D, 4 * (o.Dp - o.D));
          }
        });
      }
      for (const o of g.ops) for (const [, at] of o.slots) f32.fill(0, at + o.T * o.Dp, at + o.Tp * o.Dp);
    }
  } catch (e) {
    throw stagingError(st.fn, `staging ${what} into wasm memory`, e);
  }
}

/**
 * The inverse, after the job: D floats of each staged row (Dp wide) to the operand's rows. Interleaved
 * rows go a block at a time (through `tmp`): the heads are moved into it and it is written back,
 * after reading it first where this round's heads do not cover it (so that the columns of heads from
 * other rounds, or of no head, keep what they hold).
 */
function unstageOperands(rt: WasmRuntime, st: Staging, tmp: number): void {
  let what = "";
  try {
    for (const o of st.direct) {
      what = operandName(o);
      for (const [head, at] of o.slots) unstageRows(o.arr, rowStart(o.s, o.heads, head), rt.f32, at, o.T, o.D, o.Dp, o.s.sl);
    }
    const f32 = rt.f32;
    for (const g of st.groups) {
      what = groupName(g);
      const arr = g.ops[0].arr;
      for (const m of roundMoves(g)) {
        const covers = coversBlock(g, m);
        eachRowBlock(g, m.b, (t0, t1, from, to) => {
          if (!covers) f32.set(arr.subarray(from, to), tmp); // keep the columns no head of this round writes
          for (const [o, at, inBlock] of m.moves) {
            rt.exports.copy_rows(4 * (tmp + inBlock), 4 * o.s.sl, 4 * (at + t0 * o.Dp), 4 * o.Dp, t1 - t0, 4 * o.D, 0);
          }
          arr.set(f32.subarray(tmp, tmp + (to - from)), from);
        });
      }
    }
  } catch (e) {
    throw stagingError(st.fn, `writing ${what} from wasm memory`, e);
  }
}

/** Where query row l sits among the keys for windows and ALiBi (AttentionParams.alignment). */
function alignmentOf(p: AttentionParams): PositionAlignment {
  return p.alignment ?? (p.causal === "none" ? "top-left" : p.causal);
}

/** Parameters shared by forward and backward jobs (buffers filled in by the caller). */
function attParams(p: AttentionParams, g: AttGeometry, g0: number, ng: number): AttFields {
  const drop = p.dropoutP > 0;
  // the rule of ../causal.ts: row l sees keys max(0, l + firstOff) .. min(S - 1, l + lastOff); the
  // offsets are clamped to +-big (beyond it every row sees all keys, or none), which keeps them i32
  const big = g.Lp + g.Sp + 8;
  const [firstOff, lastOff] = visibleOffsets(p.causal, alignmentOf(p), p.window ?? null, p.L, p.S)
    .map((x) => Math.max(-big, Math.min(big, x)));
  return {
    G0: g0, NG: ng, H: p.H, Hkv: p.Hkv, L: p.L, S: p.S, Lp: g.Lp, Sp: g.Sp, Ep: g.Ep, Evp: g.Evp, Br: g.Br, Bc: g.Bc,
    firstOff, lastOff, scale: p.scale,
    shift: positionShift(alignmentOf(p), p.L, p.S), cap: p.softcap ?? 0,
    dropOn: drop ? 1 : 0,
    dropThr: drop ? dropoutThreshold(p.dropoutP) : 0,
    dropInv: drop && p.dropoutP < 1 ? 1 / (1 - p.dropoutP) : 0,
    dropSeed: p.dropoutSeed,
  };
}

/** Stages the part of the mask that kv groups [g0, g0 + ng) read; returns the mask's job fields. */
function stageMask(rt: WasmRuntime, p: AttentionParams, g0: number, ng: number, fn: string): AttFields {
  const mk = p.mask;
  if (mk === null) return {};
  const [sb, sh, sl, ss] = mk.strides;
  const G = p.H / p.Hkv;
  let lo = Infinity, hi = -Infinity;
  for (let g = g0; g < g0 + ng; g++) {
    const b = Math.floor(g / p.Hkv), kvh = g % p.Hkv;
    for (let hh = 0; hh < G; hh++) {
      const base = b * sb + (kvh * G + hh) * sh;
      lo = Math.min(lo, base + Math.min(0, (p.L - 1) * sl) + Math.min(0, (p.S - 1) * ss));
      hi = Math.max(hi, base + Math.max(0, (p.L - 1) * sl) + Math.max(0, (p.S - 1) * ss) + 1);
    }
  }
  lo = Math.max(0, lo);
  hi = Math.min(mk.data.length, hi);
  const n = Math.max(0, hi - lo);
  const at = reserve(rt, fn, `the mask (${mk.kind}, elements ${lo} to ${hi} of ${mk.data.length})`, mk.kind === "bool" ? n : 4 * n);
  try {
    if (mk.kind === "bool") rt.u8.set(mk.data.subarray(lo, hi), at);
    else rt.f32.set(mk.data.subarray(lo, hi), at >> 2);
  } catch (e) {
    throw stagingError(fn, `staging the mask (${mk.kind}, elements ${lo} to ${hi} of ${mk.data.length}) into wasm memory`, e);
  }
  return { maskKind: mk.kind === "bool" ? 1 : 2, mask: at, maskLo: lo, maskSb: sb, maskSh: sh, maskSl: sl, maskSs: ss };
}

/**
 * What the flexible options need beyond the job's numbers, computed once per call: document ids
 * (query ids padded to Lp rows) and each tile's least and greatest id, and the block mask with each
 * tile's kind (causal.ts blockKind over the tile's real rows and keys, in the wasm tiles' geometry).
 */
interface FlexTables {
  slopes: Float32Array | null;
  sinks: Float32Array | null;
  qDoc: Int32Array | null;
  kDoc: Int32Array | null;
  qDocTiles: Int32Array | null;
  kDocTiles: Int32Array | null;
  bmTiles: Uint8Array | null;
}

function flexTables(fn: string, p: AttentionParams, g: AttGeometry): FlexTables {
  const { B, L, S } = p;
  const docs = p.documents ?? null, bm = p.blockMask ?? null;
  if (bm !== null && (bm.L !== L || bm.S !== S || (bm.B !== 1 && bm.B !== B) || (bm.H !== 1 && bm.H !== p.H))) {
    throw new ArgumentError(
      `${fn}: the block mask is for [B, H, L, S] = [${bm.B}, ${bm.H}, ${bm.L}, ${bm.S}] but the call is [${B}, ${p.H}, ${L}, ${S}] (B and H may be 1)`,
    );
  }
  let qDoc: Int32Array | null = null;
  if (docs !== null) {
    qDoc = new Int32Array(B * g.Lp); // padded rows: id 0 (their results are dropped)
    for (let b = 0; b < B; b++) qDoc.set(docs.query.subarray(b * L, (b + 1) * L), b * g.Lp);
  }
  let bmTiles: Uint8Array | null = null;
  if (bm !== null) {
    bmTiles = new Uint8Array(bm.B * bm.H * g.nI * g.nJ);
    for (let b = 0; b < bm.B; b++) {
      for (let h = 0; h < bm.H; h++) {
        for (let i = 0; i < g.nI; i++) {
          const r0 = i * g.Br, r1 = Math.min(r0 + g.Br, L) - 1;
          for (let j = 0; j < g.nJ; j++) {
            const c0 = j * g.Bc, c1 = Math.min(c0 + g.Bc, S) - 1;
            bmTiles[((b * bm.H + h) * g.nI + i) * g.nJ + j] = blockKind(bm, b, h, r0, r1, c0, c1);
          }
        }
      }
    }
  }
  return {
    slopes: p.alibiSlopes ? Float32Array.from(p.alibiSlopes) : null,
    sinks: p.sinks ? Float32Array.from(p.sinks) : null,
    qDoc,
    kDoc: docs === null ? null : docs.key,
    qDocTiles: docs === null ? null : documentRanges(docs.query, B, L, g.Br, g.nI),
    kDocTiles: docs === null ? null : documentRanges(docs.key, B, S, g.Bc, g.nJ),
    bmTiles,
  };
}

/** Stages the flexible options' tables (for every batch element and head: they are small); returns their job fields. */
function stageFlex(rt: WasmRuntime, p: AttentionParams, t: FlexTables, fn: string): AttFields {
  const f: { -readonly [K in keyof AttFields]: AttFields[K] } = {};
  const i32 = (x: Int32Array | Float32Array): number => {
    const at = reserve(rt, fn, "the flexible options' tables", 4 * x.length);
    if (x instanceof Float32Array) rt.f32.set(x, at >> 2);
    else rt.i32.set(x, at >> 2);
    return at;
  };
  const u8 = (x: Uint8Array): number => {
    const at = reserve(rt, fn, "the block mask's tables", x.length);
    rt.u8.set(x, at);
    return at;
  };
  if (t.slopes) f.slopes = i32(t.slopes);
  if (t.sinks) f.sinks = i32(t.sinks);
  if (t.qDoc && t.kDoc && t.qDocTiles && t.kDocTiles) {
    f.qDoc = i32(t.qDoc);
    f.kDoc = i32(t.kDoc);
    f.qDocTiles = i32(t.qDocTiles);
    f.kDocTiles = i32(t.kDocTiles);
  }
  const bm = p.blockMask ?? null;
  if (bm !== null && t.bmTiles) {
    Object.assign(f, {
      bmTiles: u8(t.bmTiles), bmKinds: u8(bm.kinds), bmBitStart: i32(bm.bitStart), bmBits: u8(bm.bits),
      bmB: bm.B, bmH: bm.H, bmRows: bm.nRows, bmCols: bm.nCols, bmSize: bm.blockSize,
    });
  }
  return f;
}

function maskRoundBytes(p: AttentionParams, ngroups: number): number {
  const mk = p.mask;
  if (mk === null) return 0;
  const elem = mk.kind === "bool" ? 1 : 4;
  return Math.min(mk.data.length, ngroups * (p.H / p.Hkv) * p.L * p.S) * elem;
}

/**
 * Threads for an attention job: all of them (getNumThreads) where the job's flops reach
 * wasmTuning.minParallelAttentionFlops, else the calling thread alone. Below that size waking a
 * worker and handing it tasks costs about what it saves (more when the machine is loaded), and the
 * results are the same bits either way. Flops per visible (query, key) pair and head: forward
 * 2 (E + Ev) (S = Q K^T, P V); backward 2 (3 E + 2 Ev) (S again, dP = dO V^T, dV, dK, dQ).
 * A smaller job (from wasmTuning.minHotAttentionFlops on) takes all threads as well when a worker
 * finished a job within the last wasmTuning.hotWorkerMs: the calling code is then in a threaded
 * stretch (a training step of GPT("small"), 8 x 4 heads, L = S = 128: forward 34, backward 84 MFLOP,
 * most calls 0.2 ms after a threaded matmul), where the worker would otherwise idle through the
 * call. An isolated call (no threaded job just before it) runs on the calling thread as before.
 */
function attThreads(rt: WasmRuntime, p: AttentionParams, pass: "forward" | "backward"): number {
  const perPair = pass === "forward" ? 2 * (p.E + p.Ev) : 2 * (3 * p.E + 2 * p.Ev);
  const flops = p.B * p.H * visiblePairs(p) * perPair;
  if (flops >= wasmTuning.minParallelAttentionFlops) return getNumThreads();
  if (flops < wasmTuning.minHotAttentionFlops) return 1;
  return rt.msSinceWorkerJob() < wasmTuning.hotWorkerMs ? getNumThreads() : 1;
}

/**
 * (query, key) pairs of one head that causality and the window leave visible (../causal.ts's rule):
 * the kernels skip hidden tiles, so this is about the work left (tiles cut in part count in part).
 */
function visiblePairs(p: AttentionParams): number {
  const [firstOff, lastOff] = visibleOffsets(p.causal, alignmentOf(p), p.window ?? null, p.L, p.S);
  if (firstOff <= -p.L && lastOff >= p.S - 1) return p.L * p.S; // every row sees every key
  let n = 0;
  for (let l = 0; l < p.L; l++) n += Math.max(0, Math.min(p.S - 1, l + lastOff) - Math.max(0, l + firstOff) + 1);
  return n;
}

/**
 * Groups per round: as many kv groups as fit the staging budget, at least one. A round takes
 * floatsPerGroup floats per group, the mask's part, and `roundFloats` that do not depend on the
 * number of groups (the block that interleaved rows move through, Staging.blockFloats).
 */
function groupsPerRound(p: AttentionParams, floatsPerGroup: number, roundFloats: number): number {
  const groups = p.B * p.Hkv;
  const budget = wasmTuning.stagingBudget - 4 * roundFloats;
  let ng = Math.max(1, Math.floor(budget / (4 * floatsPerGroup)));
  ng = Math.min(ng, groups);
  while (ng > 1 && 4 * ng * floatsPerGroup + maskRoundBytes(p, ng) > budget) ng--;
  return ng;
}

/**
 * Walks the NG kv groups of a staging round (from group g0): for each, its G query heads (`head`:
 * index among all B·H, `hl`: its slot in the round), then the group itself (`gg`: index among all
 * B·Hkv, `gl`: its slot in the round). Staging and unstaging share this one walk.
 */
function eachGroup(
  p: AttentionParams, g0: number, NG: number, G: number,
  perHead: (head: number, hl: number) => void, perGroup: (gg: number, gl: number) => void,
): void {
  for (let gl = 0; gl < NG; gl++) {
    const gg = g0 + gl;
    const b = Math.floor(gg / p.Hkv), h0 = (gg % p.Hkv) * G; // batch and first query head of kv group gg
    for (let hh = 0; hh < G; hh++) perHead(b * p.H + h0 + hh, gl * G + hh);
    perGroup(gg, gl);
  }
}

/** The functions as errors name them. */
const FWD = "wasmAttentionForward", BWD = "wasmAttentionBackward";

function wasmAttentionForward(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray, lseLo?: FloatArray,
): void {
  const { B, H, L, S, E, Ev } = p;
  if (B * H * L === 0) return;
  // lse may be float32 or float64 storage: the kernels write m and l, and lse = m + log(l) is formed below
  const rt = isF32(q, k, v, out) && S > 0 && E > 0 && Ev > 0 ? getRuntime() : null;
  if (rt === null) {
    refAttentionForward(p, q, k, v, out, lse, lseLo);
    return;
  }
  const g = geometry(p);
  const { G, Lp, Sp, Ep, Evp, Br, Bc, nI } = g;
  const flex = flexTables(FWD, p, g);
  const lay = layoutOf(p); // where each head's rows are: staging reads them there (no separate permute)
  const qo: Operand = { name: "q", arr: q, s: lay.q, heads: H, T: L, D: E, Tp: Lp, Dp: Ep, slots: [] };
  const ko: Operand = { name: "k", arr: k, s: lay.k, heads: p.Hkv, T: S, D: E, Tp: Sp, Dp: Ep, slots: [] };
  const vo: Operand = { name: "v", arr: v, s: lay.v, heads: p.Hkv, T: S, D: Ev, Tp: Sp, Dp: Evp, slots: [] };
  const oo: Operand = { name: "out", arr: out, s: lay.out, heads: H, T: L, D: Ev, Tp: Lp, Dp: Evp, slots: [] };
  const stIn = stagingOf(FWD, [qo, ko, vo]), stOut = stagingOf(FWD, [oo]);
  const blockFloats = Math.max(stIn.blockFloats, stOut.blockFloats); // one block buffer, for both
  const perGroup = G * Lp * (Ep + Evp + 3) + Sp * (Ep + Evp);
  const NGmax = groupsPerRound(p, perGroup, blockFloats);
  const threads = attThreads(rt, p, "forward");
  const groups = B * p.Hkv;
  for (let g0 = 0; g0 < groups; g0 += NGmax) {
    const NG = Math.min(NGmax, groups - g0);
    rt.reset();
    const [scratch, stride] = reserveScratch(rt, FWD, rt.exports.fwd_scratch_floats(Br, Bc, Ep, Evp));
    const qP = reserve(rt, FWD, "q", 4 * NG * G * Lp * Ep);
    const kP = reserve(rt, FWD, "k", 4 * NG * Sp * Ep);
    const vP = reserve(rt, FWD, "v", 4 * NG * Sp * Evp);
    const oP = reserve(rt, FWD, "out", 4 * NG * G * Lp * Evp);
    const maxP = reserve(rt, FWD, "the row maxima", 4 * NG * G * Lp);
    const sumP = reserve(rt, FWD, "the row sums", 8 * NG * G * Lp);
    const tmp = blockFloats > 0 ? reserve(rt, FWD, "the block interleaved rows move through", 4 * blockFloats) >> 2 : 0;
    const mask = stageMask(rt, p, g0, NG, FWD);
    const flexFields = stageFlex(rt, p, flex, FWD);
    for (const o of [qo, ko, vo, oo]) o.slots.length = 0;
    eachGroup(p, g0, NG, G, (head, hl) => {
      qo.slots.push([head, (qP >> 2) + hl * Lp * Ep]);
      oo.slots.push([head, (oP >> 2) + hl * Lp * Evp]);
    }, (gg, gl) => {
      ko.slots.push([gg, (kP >> 2) + gl * Sp * Ep]);
      vo.slots.push([gg, (vP >> 2) + gl * Sp * Evp]);
    });
    stageOperands(rt, stIn, tmp);
    const tasks = NG * G * nI;
    rt.setJob(Lay.K_ATT_FWD, tasks, scratch, stride, Lay.AttJob, attParams(p, g, g0, NG), mask, flexFields, {
      q: qP, k: kP, v: vP, o: oP, rowMax: maxP, rowSum: sumP,
    });
    rt.runJob(threads, tasks);
    unstageOperands(rt, stOut, tmp);
    const res = rt.f32, res64 = rt.f64;
    eachGroup(p, g0, NG, G, (head, hl) => {
      // lse = m + log(l) in float64; l = 0 for a row that sees no key (with a sink: l >= 1, m >= the
      // sink's float32 value), NaN for a row with a NaN score
      const mAt = (maxP >> 2) + hl * Lp, lAt = (sumP >> 3) + hl * Lp;
      for (let l = 0; l < L; l++) {
        const sum = res64[lAt + l];
        lse[head * L + l] = sum === 0 ? -Infinity : res[mAt + l] + Math.log(sum);
      }
    }, () => {});
  }
}

function wasmAttentionBackward(
  p: AttentionParams, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, dout: FloatArray,
  lse: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray, lseLo?: FloatArray,
): void {
  const { B, H, Hkv, L, S, E, Ev } = p;
  const rt = isF32(q, k, v, out, dout, dq, dk, dv) && B * H * L > 0 && S > 0 && E > 0 && Ev > 0
    ? getRuntime() : null;
  if (rt === null) {
    refAttentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo);
    return;
  }
  const g = geometry(p);
  const { G, Lp, Sp, Ep, Evp, Br, Bc, nI, nJ } = g;
  const flex = flexTables(BWD, p, g);
  // floats per kv group: q, qt, dq, dO, dOt, out, lse hi and lo, D (float64); k, v, dk, dv; counters
  const perGroup = G * Lp * (3 * Ep + 3 * Evp + 4) + Sp * (2 * Ep + 2 * Evp) + G * nI;
  const lay = layoutOf(p); // as in forward: dq, dk, dv and dout share q's, k's, v's and out's layouts
  const op = (name: string, arr: FloatArray, s: RowStrides, heads: number, T: number, D: number, Tp: number, Dp: number): Operand => ({ name, arr, s, heads, T, D, Tp, Dp, slots: [] });
  const qo = op("q", q, lay.q, H, L, E, Lp, Ep), doo = op("dout", dout, lay.out, H, L, Ev, Lp, Evp), oo = op("out", out, lay.out, H, L, Ev, Lp, Evp);
  const ko = op("k", k, lay.k, Hkv, S, E, Sp, Ep), vo = op("v", v, lay.v, Hkv, S, Ev, Sp, Evp);
  const dqo = op("dq", dq, lay.q, H, L, E, Lp, Ep), dko = op("dk", dk, lay.k, Hkv, S, E, Sp, Ep), dvo = op("dv", dv, lay.v, Hkv, S, Ev, Sp, Evp);
  const stIn = stagingOf(BWD, [qo, doo, oo, ko, vo]), stOut = stagingOf(BWD, [dqo, dko, dvo]);
  const blockFloats = Math.max(stIn.blockFloats, stOut.blockFloats); // one block buffer, for both
  const NGmax = groupsPerRound(p, perGroup, blockFloats);
  const threads = attThreads(rt, p, "backward");
  const groups = B * Hkv;
  for (let g0 = 0; g0 < groups; g0 += NGmax) {
    const NG = Math.min(NGmax, groups - g0);
    rt.reset();
    const [scratch, stride] = reserveScratch(rt, BWD, rt.exports.bwd_scratch_floats(Br, Bc, Ep, Evp));
    const nh = NG * G;
    const qP = reserve(rt, BWD, "q", 4 * nh * Lp * Ep);
    const kP = reserve(rt, BWD, "k", 4 * NG * Sp * Ep);
    const vP = reserve(rt, BWD, "v", 4 * NG * Sp * Evp);
    const doP = reserve(rt, BWD, "dout", 4 * nh * Lp * Evp);
    const oP = reserve(rt, BWD, "out", 4 * nh * Lp * Evp);
    const hiP = reserve(rt, BWD, "lse (its float32 hi part)", 4 * nh * Lp);
    const loP = reserve(rt, BWD, "lse (its float32 lo part)", 4 * nh * Lp);
    const dP = reserve(rt, BWD, "D = rowsum(dout * out)", 8 * nh * Lp);
    const qtP = reserve(rt, BWD, "q transposed", 4 * nh * Lp * Ep);
    const dotP = reserve(rt, BWD, "dout transposed", 4 * nh * Lp * Evp);
    const dqP = reserve(rt, BWD, "dq", 4 * nh * Lp * Ep);
    const dkP = reserve(rt, BWD, "dk", 4 * NG * Sp * Ep);
    const dvP = reserve(rt, BWD, "dv", 4 * NG * Sp * Evp);
    const cntP = reserve(rt, BWD, "the dQ blocks' turn counters", 4 * nh * nI);
    const tmp = blockFloats > 0 ? reserve(rt, BWD, "the block interleaved rows move through", 4 * blockFloats) >> 2 : 0;
    const mask = stageMask(rt, p, g0, NG, BWD);
    const flexFields = stageFlex(rt, p, flex, BWD);
    for (const o of [qo, doo, oo, ko, vo, dqo, dko, dvo]) o.slots.length = 0;
    const f32 = rt.f32;
    eachGroup(p, g0, NG, G, (head, hl) => {
      qo.slots.push([head, (qP >> 2) + hl * Lp * Ep]);
      doo.slots.push([head, (doP >> 2) + hl * Lp * Evp]);
      // the prep tasks form D = rowsum(dO * O) from these, in float64 (a loop here cost more than the copy)
      oo.slots.push([head, (oP >> 2) + hl * Lp * Evp]);
      dqo.slots.push([head, (dqP >> 2) + hl * Lp * Ep]);
      const hi = (hiP >> 2) + hl * Lp, lo = (loP >> 2) + hl * Lp;
      for (let l = 0; l < L; l++) {
        // lse = hi + lo, two float32s (P = exp((s - hi) - lo)); fully masked row: P = exp(s - inf) = 0.
        // Where |lse| is too large for that (a huge finite mask), the prep tasks put m and log(l) there.
        const x = lse[head * L + l];
        const xh = x === -Infinity ? Infinity : Math.fround(x);
        f32[hi + l] = xh;
        f32[lo + l] = Number.isFinite(x) ? x - xh : 0;
      }
      f32.fill(Infinity, hi + L, hi + Lp);
      f32.fill(0, lo + L, lo + Lp);
    }, (gg, gl) => {
      ko.slots.push([gg, (kP >> 2) + gl * Sp * Ep]);
      vo.slots.push([gg, (vP >> 2) + gl * Sp * Evp]);
      dko.slots.push([gg, (dkP >> 2) + gl * Sp * Ep]);
      dvo.slots.push([gg, (dvP >> 2) + gl * Sp * Evp]);
    });
    stageOperands(rt, stIn, tmp);
    // D, dq's zeros and cnt (each dQ block's turn) are set by the prep tasks
    const shared = attParams(p, g, g0, NG);
    const buffers: AttFields = {
      q: qP, k: kP, v: vP, o: oP, lseHi: hiP, lseLo: loP, dO: doP, D: dP, qt: qtP, dOt: dotP, dq: dqP, dk: dkP, dv: dvP, cnt: cntP,
    };
    const prepTasks = nh * nI;
    rt.setJob(Lay.K_ATT_BWD_PREP, prepTasks, scratch, stride, Lay.AttJob, shared, mask, flexFields, buffers);
    rt.runJob(threads, prepTasks);
    // key blocks per task (assembly attBwdTask): a whole kv group where there are groups enough to
    // give every thread two, so that no task waits on another's dQ turns (a thread spinning on a turn
    // held by a descheduled thread is what made 2 threads slower than 1 on loaded cores); else one
    const jChunk = NG >= 2 * threads ? nJ : 1;
    const tasks = NG * Math.ceil(nJ / jChunk);
    rt.setJob(Lay.K_ATT_BWD, tasks, scratch, stride, Lay.AttJob, shared, mask, flexFields, buffers, { jChunk });
    rt.runJob(threads, tasks);
    unstageOperands(rt, stOut, tmp);
  }
}

export const wasmBackend: Backend = {
  name: "wasm",
  attentionLayout: true, // staging reads and writes the rows where they are
  matmul: wasmMatmul,
  matmulBias: wasmMatmulBias,
  attentionForward: wasmAttentionForward,
  attentionBackward: wasmAttentionBackward,
  mulPiecewise: wasmMulPiecewise,
  normRows: wasmNormRows,
  normRowsBackward: wasmNormRowsBackward,
  adamw: wasmAdamW,
};
