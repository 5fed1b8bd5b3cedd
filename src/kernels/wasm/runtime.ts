/**
 * The WebAssembly runtime behind the wasm backend: the kernels module (embedded as base64, compiled
 * synchronously on first use), one WebAssembly.Memory shared by every thread, a bump allocator for
 * the per-call staging buffers, and a pool of workers that run tasks of a job together with the
 * calling thread. Blocks that must outlive one call (a weight matrix packed once for a decoding loop,
 * see ../frozen.ts) sit below the staging area, from HEAP_BASE up to `base`, until released.
 *
 * Synchronous by design: a kernel call publishes a job, does tasks itself, and blocks with
 * Atomics.wait until the workers it enlisted are done (allowed on Node's main thread and in workers).
 * Where the caller cannot block (a browser's main thread) or memory cannot be shared (a page that is
 * not cross-origin isolated), jobs run on the calling thread alone; results are bitwise the same.
 */
import { ArgumentError } from "../../tensor/errors.js";
import { wasmBase64, wasmRelaxedBase64 } from "./build/kernelsWasm.js";
import * as Lay from "./build/layout.js";
import { workerSource } from "./worker.js";

export interface KernelExports {
  run_tasks(tid: number): number;
  run_one(tid: number): number;
  fwd_scratch_floats(Br: number, Bc: number, Ep: number, Evp: number): number;
  bwd_scratch_floats(Br: number, Bc: number, Ep: number, Evp: number): number;
  copy_rows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, bytes: number, padBytes: number): void;
  mm_row_block(): number;
  mm_col_block(): number;
  mm_pack_cols(): number;
  mm_scratch_floats(): number;
}

/** A job parameter block as generated from assembly/layout.ts: field -> [slot from J_PARAMS, type]. */
export type JobStruct = Readonly<Record<string, readonly [number, "i32" | "u32" | "f32"]>>;
/** Values for (some of) a parameter block's fields, by name. */
export type JobFields<S extends JobStruct> = { [K in keyof S]?: number };

const JOB_NAMES: Record<number, string> = {
  [Lay.K_MM_PACK_B]: "matmul, packing b", [Lay.K_MM]: "matmul", [Lay.K_ATT_FWD]: "attention forward",
  [Lay.K_ATT_BWD_PREP]: "attention backward, prep", [Lay.K_ATT_BWD]: "attention backward",
  [Lay.K_EW_PIECEWISE]: "piecewise table", [Lay.K_EW_NORM_FWD]: "norm rows", [Lay.K_EW_NORM_BWD]: "norm rows backward",
};

/** job kinds msSinceWorkerJob leaves out */
const ATTENTION_KINDS: ReadonlySet<number> = new Set([Lay.K_ATT_FWD, Lay.K_ATT_BWD_PREP, Lay.K_ATT_BWD]);

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit (address space is reserved, not committed)
const CTL_WORDS = (Lay.JOB_BASE - Lay.CTL_BASE) >> 2;
const WORKER_SPIN = 20000;

// ----------------------------------------------------------------------------------------------
// Environment probes
// ----------------------------------------------------------------------------------------------

/** A minimal module using one v128 instruction: validates only where WebAssembly SIMD is supported. */
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section
  0x0a, 0x0a, 0x01, 0x08, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0xfd, 0x62, 0x0b, // i32.const 0; i8x16.splat; i8x16.popcnt
]);

export function simdSupported(): boolean {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

/** Whether this thread may block in Atomics.wait (false on a browser's main thread). */
function callerCanBlock(): boolean {
  if (typeof SharedArrayBuffer === "undefined") return false;
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

interface NodeLike {
  getBuiltinModule?: (id: string) => unknown;
}

function nodeBuiltin<T>(id: string): T | null {
  const proc = (globalThis as { process?: NodeLike }).process;
  if (proc === undefined || typeof proc.getBuiltinModule !== "function") return null;
  try {
    return proc.getBuiltinModule(id) as T;
  } catch {
    return null;
  }
}

/** Available cores: os.availableParallelism() in Node, navigator.hardwareConcurrency in browsers. */
export function hardwareThreads(): number {
  const os = nodeBuiltin<{ availableParallelism?: () => number; cpus(): unknown[] }>("node:os");
  if (os !== null) return Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (nav !== undefined && typeof nav.hardwareConcurrency === "number") return Math.max(1, nav.hardwareConcurrency);
  return 1;
}

// ----------------------------------------------------------------------------------------------
// Module bytes
// ----------------------------------------------------------------------------------------------

function decodeBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * The module imports its memory as shared. Where SharedArrayBuffer is unavailable, a copy of the bytes
 * with the import's limits flag turned from "shared, with maximum" (3) to "with maximum" (1) links to
 * an ordinary memory instead (atomic instructions are valid on unshared memory; only wait traps, and
 * a single thread never waits).
 */
function unshareMemoryImport(bytes: Uint8Array): Uint8Array {
  const b = bytes.slice();
  let pos = 8;
  const uleb = (): number => {
    let r = 0, s = 0, x: number;
    do { x = b[pos++]; r |= (x & 0x7f) << s; s += 7; } while (x & 0x80);
    return r >>> 0;
  };
  while (pos < b.length) {
    const id = b[pos++];
    const size = uleb();
    const next = pos + size;
    if (id === 2) {
      const count = uleb();
      for (let i = 0; i < count; i++) {
        const modLen = uleb();
        pos += modLen; // module name
        const fieldLen = uleb();
        pos += fieldLen; // field name
        const kind = b[pos++];
        if (kind === 0) uleb();
        else if (kind === 1) { pos++; const f = uleb(); uleb(); if (f & 1) uleb(); }
        else if (kind === 3) { pos += 2; }
        else if (kind === 2) {
          if (b[pos] === 3) b[pos] = 1;
          return b;
        }
      }
    }
    pos = next;
  }
  throw new Error("attend: memory import not found in the kernels module");
}

/**
 * "simd": WebAssembly SIMD only. "relaxed": adds relaxed SIMD (fused multiply-add in the product
 * kernels; Node >= 22, Chromium >= 114, or Node 20 run with --experimental-wasm-relaxed-simd).
 * Results are bitwise independent of the thread count in both; they differ slightly between the two.
 */
export type WasmVariant = "simd" | "relaxed";

const variantBytes: Partial<Record<WasmVariant, Uint8Array>> = {};
function bytesOf(v: WasmVariant): Uint8Array {
  return (variantBytes[v] ??= decodeBase64(v === "simd" ? wasmBase64 : wasmRelaxedBase64));
}

export function relaxedSimdSupported(): boolean {
  try {
    return WebAssembly.validate(bytesOf("relaxed") as BufferSource);
  } catch {
    return false;
  }
}

let forcedVariant: WasmVariant | null = null;

/** The variant the runtime uses: the forced one, else "relaxed" where it validates, else "simd". */
export function wasmVariant(): WasmVariant {
  if (runtime !== null) return runtime.variant;
  return forcedVariant ?? (relaxedSimdSupported() ? "relaxed" : "simd");
}

/**
 * Forces a variant (null: automatic). Takes effect for the next runtime: if one exists with another
 * variant it is replaced (its idle workers stay parked), so call this before the first kernel call.
 */
export function setWasmVariant(v: WasmVariant | null): void {
  if (v === "relaxed" && !relaxedSimdSupported()) throw new Error("setWasmVariant: relaxed SIMD is not available here");
  forcedVariant = v;
  if (runtime !== null && runtime.variant !== wasmVariant()) {
    runtime = null;
    runtimeError = null;
  }
}

/** Whether a module compiled by initRuntimeAsync imports a shared memory, and its variant. */
const moduleInfo = new WeakMap<WebAssembly.Module, { shared: boolean; variant: WasmVariant }>();

// ----------------------------------------------------------------------------------------------
// Thread count
// ----------------------------------------------------------------------------------------------

let numThreads = 0; // 0 = not yet decided

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new ArgumentError(`setNumThreads: n must be an integer >= 1, got ${String(n)}`);
  numThreads = Math.min(n, Lay.MAX_WORKERS + 1);
}

export function getNumThreads(): number {
  if (numThreads === 0) numThreads = Math.min(hardwareThreads(), Lay.MAX_WORKERS + 1);
  return numThreads;
}

// ----------------------------------------------------------------------------------------------
// Runtime
// ----------------------------------------------------------------------------------------------

interface WorkerHandle {
  unref?: () => void;
  postMessage?: (m: unknown) => void;
}

export class WasmRuntime {
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
  readonly variant: WasmVariant;
  readonly exports: KernelExports;
  /** memory is a SharedArrayBuffer and this thread may block: workers can be used */
  readonly threaded: boolean;
  private top = Lay.HEAP_BASE;
  /** start of the per-call staging area: resident blocks lie in [HEAP_BASE, base) */
  private base = Lay.HEAP_BASE;
  private buf: ArrayBuffer | SharedArrayBuffer;
  /**
   * The memory's byte length as of the last grow: only alloc() grows it (the kernels never do), so
   * the views and this size change there and nowhere else. Reading memory.buffer instead costs about
   * 0.1 µs a time, a dozen times per kernel call, which showed in one-token decode steps.
   */
  private bytes: number;
  private f32v: Float32Array;
  private f64v: Float64Array;
  private u8v: Uint8Array;
  private i32v: Int32Array;
  private readonly workers: WorkerHandle[] = [];
  private spawnFailed = false;
  private gen = 0;
  /** performance.now() when the last non-attention job a worker took part in ended; -1 before any (msSinceWorkerJob) */
  private lastWorkerJob = -1;

  /**
   * @param variant which module to compile
   * @param module a module already compiled for this variant (initRuntimeAsync)
   * @param opts.unshared use an ordinary memory even where a shared one is possible (single-threaded;
   *   what a page that is not cross-origin isolated gets; for tests)
   */
  constructor(variant: WasmVariant, module?: WebAssembly.Module, opts: { unshared?: boolean } = {}) {
    this.variant = variant;
    let memory: WebAssembly.Memory | null = null;
    const canShare = typeof SharedArrayBuffer !== "undefined" && opts.unshared !== true;
    if (canShare) {
      for (const maximum of [MAX_PAGES, 32768, 16384]) {
        try {
          memory = new WebAssembly.Memory({ initial: 32, maximum, shared: true } as WebAssembly.MemoryDescriptor);
          break;
        } catch {
          memory = null;
        }
      }
    }
    const shared = memory !== null;
    if (memory === null) memory = new WebAssembly.Memory({ initial: 32, maximum: MAX_PAGES });
    this.memory = memory;
    const info = module !== undefined ? moduleInfo.get(module) : undefined;
    this.module = module !== undefined && info?.shared === shared && info.variant === variant
      ? module
      : new WebAssembly.Module((shared ? bytesOf(variant) : unshareMemoryImport(bytesOf(variant))) as BufferSource);
    const instance = new WebAssembly.Instance(this.module, {
      env: { memory, abort: () => { throw new Error("attend: wasm kernel abort"); } },
    });
    this.exports = instance.exports as unknown as KernelExports;
    this.threaded = shared && callerCanBlock();
    this.buf = memory.buffer;
    this.bytes = this.buf.byteLength;
    this.f32v = new Float32Array(this.buf);
    this.f64v = new Float64Array(this.buf);
    this.u8v = new Uint8Array(this.buf);
    this.i32v = new Int32Array(this.buf);
  }

  // --- memory ---------------------------------------------------------------------------------

  /** Frees every staging buffer (call at the start of each kernel call); resident blocks stay. */
  reset(): void {
    this.top = this.base;
  }

  /**
   * Reserves `bytes` that survive reset() until releaseResident(): call right after reset(), before
   * this call's staging buffers, so that the block ends where staging begins.
   */
  allocResident(bytes: number): number {
    if (this.top !== this.base) throw new Error("attend: WasmRuntime.allocResident must come right after reset()");
    const at = this.alloc(bytes);
    this.base = this.top;
    return at;
  }

  /** Frees every resident block (and with them every staging buffer). */
  releaseResident(): void {
    this.base = Lay.HEAP_BASE;
    this.top = Lay.HEAP_BASE;
  }

  /** Bytes held by resident blocks. */
  get residentBytes(): number {
    return this.base - Lay.HEAP_BASE;
  }

  /** Reserves `bytes` (64-byte aligned) and returns the byte address. Contents are unspecified. */
  alloc(bytes: number): number {
    const at = this.top;
    const end = at + Math.ceil(bytes / 64) * 64;
    if (end > MAX_PAGES * PAGE) throw new RangeError(`attend: wasm kernels need ${end} bytes of memory, over 4 GiB`);
    if (end > this.bytes) {
      const have = this.memory.buffer.byteLength;
      if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
      this.remap();
    }
    this.top = end;
    return at;
  }

  allocF32(n: number): number {
    return this.alloc(n * 4);
  }

  allocF64(n: number): number {
    return this.alloc(n * 8);
  }

  /** New views over the memory's current buffer (after a grow: an unshared memory detaches the old one). */
  private remap(): void {
    const b = this.memory.buffer;
    if (b !== this.buf || b.byteLength !== this.bytes) {
      this.buf = b;
      this.f32v = new Float32Array(b);
      this.f64v = new Float64Array(b);
      this.u8v = new Uint8Array(b);
      this.i32v = new Int32Array(b);
    }
    this.bytes = b.byteLength;
  }

  /** A view detached by a grow that did not come through alloc() (someone else's memory.grow) is remapped. */
  private refresh(): void {
    if (this.u8v.byteLength === 0) this.remap();
  }

  get f32(): Float32Array {
    this.refresh();
    return this.f32v;
  }

  get f64(): Float64Array {
    this.refresh();
    return this.f64v;
  }

  get u8(): Uint8Array {
    this.refresh();
    return this.u8v;
  }

  get i32(): Int32Array {
    this.refresh();
    return this.i32v;
  }

  /** Bytes of linear memory (pages already touched stay resident). */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  // --- jobs -------------------------------------------------------------------------------------

  /**
   * Writes a job descriptor: the fields of `parts` by name into the parameter block `struct` (a table
   * generated from assembly/layout.ts); fields not given are 0, and a later part's field wins.
   *
   * Readable form of what it does for the parameter block:
   *   zero the struct's slots; for each given field: slot, type = struct[name]; write it as f32 or i32
   * The per-struct layout (slots and types as flat arrays, a name -> index map) is worked out once
   * (writerOf), so a call walks the given fields only instead of listing the struct's keys: this runs
   * several times per generated token (one job per small matmul), where that cost showed. A name the
   * struct lacks is not written (JobFields<S> makes it a type error).
   * Several parts instead of one merged object: V8 builds `{ ...a, ...b, x, y }` with 30-odd fields
   * in a slow dictionary mode, 40-80 µs a time (more than an attention job's staging at N = 128);
   * four parts of an attention job are written in 2-4 µs.
   */
  setJob<S extends JobStruct>(kind: number, ntasks: number, scratch: number, scratchStride: number, struct: S, ...parts: JobFields<S>[]): void {
    const i32 = this.i32, f32 = this.f32;
    const base = Lay.JOB_BASE >> 2;
    i32[base + Lay.J_KIND] = kind;
    i32[base + Lay.J_NTASKS] = ntasks;
    i32[base + Lay.J_NEXT] = 0;
    i32[base + Lay.J_SCRATCH] = scratch;
    i32[base + Lay.J_SCRATCH_STRIDE] = scratchStride;
    i32[base + Lay.J_FAILED] = 0;
    i32[base + Lay.J_AVAIL] = ntasks; // every task available (runJob's `stage` lowers it)
    const p = base + Lay.J_PARAMS;
    const w = writerOf(struct);
    i32.fill(0, p, p + w.words);
    for (const part of parts) {
      const f = part as Readonly<Record<string, number | undefined>>;
      for (const name in f) {
        const i = w.index.get(name), x = f[name];
        if (i === undefined || x === undefined) continue;
        if (w.isF32[i] === 1) f32[p + w.slots[i]] = x;
        else i32[p + w.slots[i]] = x | 0;
      }
    }
  }

  /** Scratch space for `threads` threads of `floatsPerThread` each; returns [address, stride in bytes]. */
  allocScratch(floatsPerThread: number): [number, number] {
    const stride = Math.ceil((floatsPerThread * 4) / 64) * 64;
    const threads = 1 + (this.threaded ? Math.max(this.workers.length, getNumThreads() - 1) : 0);
    return [this.alloc(stride * threads), stride];
  }

  /**
   * Runs the published job's tasks on up to `threads` threads (the caller plus ready workers) and
   * returns when all are done. If a task fails on any thread, every thread stops (none waits for a
   * task that will never finish) and this throws, naming the job, the thread and the cause. If
   * `stage` or `afterTask` throws, every thread stops the same way and its error is rethrown as it is:
   * no task failed, and the caller's code names what it was copying (not the job it copied for).
   * `afterTask`, when given, is called on this thread after each task it ran (with the task's index):
   * work that can go on while the workers compute (copying finished results out).
   * `stage`, when given, is called on this thread once the job is published and before it takes tasks
   * itself: it stages the tasks' inputs in order and calls `release(t)` once the inputs of tasks
   * [0, t) are in memory; until then the workers take none of them (they wait for J_AVAIL to rise).
   * Everything is released when it returns. The workers start on the first tasks while it copies the rest.
   */
  runJob(threads: number, ntasks: number, afterTask?: (t: number) => void, stage?: (release: (t: number) => void) => void): void {
    const want = this.threaded ? Math.min(threads, ntasks) - 1 : 0;
    if (want > 0) this.spawn(want);
    const ctl = this.i32; // word CTL_BASE/4 + i is control word i (a fresh view: an unshared memory detaches on growth)
    const C = Lay.CTL_BASE >> 2, J = Lay.JOB_BASE >> 2;
    // the memory the job reaches: a worker that sees less refreshes its view first (see worker.ts)
    Atomics.store(ctl, J + Lay.J_MEM_PAGES, this.bytes / PAGE);
    let gen = (this.gen + 1) | 0;
    if (gen === 0) gen = 1; // 0 marks a part taken up or withdrawn
    this.gen = gen;
    let part = 0;
    for (let w = 0; w < this.workers.length && part < want; w++) {
      if (Atomics.load(ctl, C + Lay.CTL_READY + w) === 1) {
        Atomics.store(ctl, C + Lay.CTL_PART + w, gen);
        part++;
      }
    }
    Atomics.store(ctl, C + Lay.CTL_DONE, 0);
    if (stage !== undefined) ctl[J + Lay.J_AVAIL] = 0; // published below, with the generation
    Atomics.store(ctl, C + Lay.CTL_GEN, gen);
    if (part > 0) Atomics.notify(ctl, C + Lay.CTL_GEN);
    let own: unknown = null, inCaller = false; // inCaller: in stage or afterTask, not in a task
    try {
      if (stage !== undefined) {
        inCaller = true;
        this.stageJob(ntasks, stage);
        inCaller = false;
      }
      if (afterTask === undefined) this.exports.run_tasks(0);
      else {
        for (let t = this.exports.run_one(0); t >= 0; t = this.exports.run_one(0)) {
          inCaller = true;
          afterTask(t);
          inCaller = false;
        }
      }
    } catch (e) {
      own = e;
      Atomics.compareExchange(ctl, J + Lay.J_FAILED, 0, 1); // the others stop taking tasks and waiting
    }
    // A worker invited but not yet awake would only find no tasks left: it is withdrawn instead of
    // waited for. Worker and caller both turn PART[w] from gen to 0, so exactly one of them succeeds:
    // the worker takes part (and counts itself done later), or it is withdrawn (and never starts).
    for (let w = 0; w < this.workers.length && part > 0; w++) {
      if (Atomics.compareExchange(ctl, C + Lay.CTL_PART + w, gen, 0) === gen) part--;
    }
    for (;;) {
      const d = Atomics.load(ctl, C + Lay.CTL_DONE);
      if (d >= part) break;
      Atomics.wait(ctl, C + Lay.CTL_DONE, d, 1000);
    }
    if (part > 0 && !ATTENTION_KINDS.has(ctl[J + Lay.J_KIND])) this.lastWorkerJob = performance.now();
    if (inCaller) throw own; // still set: stage or afterTask threw
    const failed = Atomics.load(ctl, J + Lay.J_FAILED);
    if (failed === 0) return;
    const kind = JOB_NAMES[ctl[J + Lay.J_KIND]] ?? `kind ${ctl[J + Lay.J_KIND]}`;
    const where = failed === 1 ? "on the calling thread" : `in worker ${failed - 2}`;
    const why = failed === 1 ? String(own) : this.workerErrorText();
    throw new Error(`attend: a wasm kernel task (${kind}) failed ${where}: ${why}; the call's outputs are not valid`, { cause: own ?? undefined });
  }

  /**
   * runJob's `stage`: raises J_AVAIL as `stage` releases tasks (waking workers that wait for it), and
   * to ntasks when it returns; if it throws, the job is failed first, so that no worker runs a task
   * whose inputs were not staged.
   */
  private stageJob(ntasks: number, stage: (release: (t: number) => void) => void): void {
    const ctl = this.i32, at = (Lay.JOB_BASE >> 2) + Lay.J_AVAIL;
    const release = (t: number): void => {
      Atomics.store(ctl, at, Math.min(t, ntasks));
      Atomics.notify(ctl, at);
    };
    try {
      stage(release);
    } catch (e) {
      Atomics.compareExchange(ctl, (Lay.JOB_BASE >> 2) + Lay.J_FAILED, 0, 1);
      release(ntasks);
      throw e;
    }
    release(ntasks);
  }

  /** The message a failed worker task left in the control block. */
  private workerErrorText(): string {
    const ctl = this.i32, t = (Lay.CTL_BASE >> 2) + Lay.CTL_ERROR_TEXT;
    const n = Math.min(Atomics.load(ctl, t), Lay.ERROR_TEXT_CHARS - 1);
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(ctl[t + 1 + i]);
    return s;
  }

  /** Workers that have instantiated the module and can take part in jobs. */
  get readyWorkers(): number {
    let n = 0;
    for (let w = 0; w < this.workers.length; w++) if (Atomics.load(this.i32, (Lay.CTL_BASE >> 2) + Lay.CTL_READY + w) === 1) n++;
    return n;
  }

  /**
   * Milliseconds since the last job a worker took part in ended (Infinity before any), attention jobs
   * not counted: a hint that the calling code is in a threaded stretch (a training step's matmuls),
   * where handing a worker a smaller attention job as well pays (see attThreads in backend.ts).
   * Attention jobs do not count so that a run of small attention calls alone (a benchmark loop)
   * does not keep itself threaded. Timing only; no result depends on it.
   */
  msSinceWorkerJob(): number {
    return this.lastWorkerJob < 0 ? Infinity : performance.now() - this.lastWorkerJob;
  }

  /** Tasks run by workers (not the calling thread) since the runtime started. */
  get workerTasks(): number {
    return Atomics.load(this.i32, (Lay.CTL_BASE >> 2) + Lay.CTL_WORKER_TASKS);
  }

  /** Number of workers started so far (they start lazily, on the first call that wants them). */
  get workerCount(): number {
    return this.workers.length;
  }

  private spawn(want: number): void {
    if (this.spawnFailed) return;
    while (this.workers.length < Math.min(want, Lay.MAX_WORKERS)) {
      const index = this.workers.length;
      const data = {
        module: this.module, memory: this.memory, index, spin: WORKER_SPIN,
        ctlBase: Lay.CTL_BASE, ctlWords: CTL_WORDS, jobBase: Lay.JOB_BASE, jobWords: Lay.J_PARAMS,
        GEN: Lay.CTL_GEN, DONE: Lay.CTL_DONE, PART: Lay.CTL_PART, READY: Lay.CTL_READY,
        TEXT: Lay.CTL_ERROR_TEXT, TEXT_CHARS: Lay.ERROR_TEXT_CHARS, FAILED: Lay.J_FAILED, MEM_PAGES: Lay.J_MEM_PAGES, AVAIL: Lay.J_AVAIL, NEXT: Lay.J_NEXT, NTASKS: Lay.J_NTASKS,
      };
      try {
        this.workers.push(startWorker(data));
      } catch (e) {
        this.spawnFailed = true;
        warnOnce(`attend: could not start a wasm worker thread (${String(e)}); the kernels run on ${1 + this.workers.length} thread(s)`);
        return;
      }
    }
  }
}

/** A parameter block's layout as flat arrays (see setJob): field i is names[i] at slots[i], f32 when isF32[i]. */
interface JobWriter {
  names: readonly string[];
  /** name -> i */
  index: ReadonlyMap<string, number>;
  slots: Int32Array;
  isF32: Uint8Array;
  /** slots to zero: as many as the struct has fields */
  words: number;
}

const writers = new WeakMap<JobStruct, JobWriter>();

function writerOf(struct: JobStruct): JobWriter {
  let w = writers.get(struct);
  if (w === undefined) {
    const names = Object.keys(struct);
    w = {
      names,
      index: new Map(names.map((n, i) => [n, i])),
      slots: Int32Array.from(names, (n) => struct[n][0]),
      isF32: Uint8Array.from(names, (n) => (struct[n][1] === "f32" ? 1 : 0)),
      words: names.length,
    };
    writers.set(struct, w);
  }
  return w;
}

let warned = false;

/** One warning per process (a worker that cannot start must not go unnoticed, nor flood the log). */
function warnOnce(message: string): void {
  if (warned) return;
  warned = true;
  const proc = (globalThis as { process?: { emitWarning?: (m: string) => void } }).process;
  if (typeof proc?.emitWarning === "function") proc.emitWarning(message);
  else console.warn(message);
}

interface NodeWorkerThreads {
  Worker: new (src: string, opts: { eval: boolean; workerData: unknown }) => WorkerHandle & { on(ev: string, f: (e: unknown) => void): void };
}

function startWorker(data: Record<string, unknown>): WorkerHandle {
  const wt = nodeBuiltin<NodeWorkerThreads>("node:worker_threads");
  if (wt !== null) {
    const w = new wt.Worker(workerSource, { eval: true, workerData: data });
    // it never becomes ready and so takes no part; say so once
    w.on("error", (e) => warnOnce(`attend: a wasm worker thread failed (${String(e)}); the kernels run on fewer threads`));
    w.unref?.();
    return w;
  }
  const g = globalThis as unknown as {
    Worker?: new (url: string) => WorkerHandle & { onerror?: (e: { message?: string }) => void };
    Blob?: new (parts: string[], opts: { type: string }) => unknown;
    URL?: { createObjectURL(b: unknown): string };
  };
  if (g.Worker === undefined || g.Blob === undefined || g.URL === undefined) throw new Error("no workers here");
  const url = g.URL.createObjectURL(new g.Blob([workerSource], { type: "text/javascript" }));
  const w = new g.Worker(url);
  w.onerror = (e) => warnOnce(`attend: a wasm worker thread failed (${e.message ?? "error"}); the kernels run on fewer threads`);
  w.postMessage!(data);
  return w;
}

// ----------------------------------------------------------------------------------------------
// The process-wide runtime
// ----------------------------------------------------------------------------------------------

let runtime: WasmRuntime | null = null;
let runtimeError: unknown = null;

/** The runtime, created on first use (synchronous compile of the embedded module); null if it cannot be. */
export function getRuntime(): WasmRuntime | null {
  if (runtime !== null) return runtime;
  if (runtimeError !== null) return null;
  try {
    runtime = new WasmRuntime(wasmVariant());
  } catch (e) {
    runtimeError = e;
    return null;
  }
  return runtime;
}

/**
 * Replaces the process-wide runtime with a fresh one (for tests: `{ unshared: true }` exercises the
 * single-threaded, unshared-memory path browsers take without cross-origin isolation). The old
 * runtime's workers stay parked.
 */
export function resetRuntime(opts: { unshared?: boolean } = {}): WasmRuntime {
  runtime = new WasmRuntime(wasmVariant(), undefined, opts);
  runtimeError = null;
  return runtime;
}

/**
 * Compiles the module asynchronously and creates the runtime: for browsers that refuse synchronous
 * compilation on the main thread (Chromium before 114 capped it at 4 KB).
 */
export async function initRuntimeAsync(): Promise<WasmRuntime | null> {
  if (runtime !== null) return runtime;
  try {
    const shared = typeof SharedArrayBuffer !== "undefined";
    const variant = wasmVariant();
    const bytes = shared ? bytesOf(variant) : unshareMemoryImport(bytesOf(variant));
    const module = await WebAssembly.compile(bytes as BufferSource);
    moduleInfo.set(module, { shared, variant });
    runtime = new WasmRuntime(variant, module);
    runtimeError = null;
  } catch (e) {
    runtimeError = e;
    return null;
  }
  return runtime;
}
