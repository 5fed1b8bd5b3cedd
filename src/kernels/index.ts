/**
 * Backend selection and threading.
 *
 *   setBackend("ref" | "wasm" | a registered name)   getBackend(): Backend   getBackendName()
 *   registerBackend(name, factory, { priority })      listBackends()
 *   setNumThreads(n)             getNumThreads()           (default: the available cores)
 *   withFrozenWeights(tensors, fn)   fn with those tensors read-only: a backend may keep them prepared
 *
 * The two built-in backends register here like any other (registry.ts): "ref" (priority 0, runs
 * everywhere) and "wasm" (priority 1, where WebAssembly SIMD validates), so "wasm" is the default
 * where it can run.
 * "wasm" is the default wherever WebAssembly SIMD validates (probed synchronously with a tiny module);
 * its module is compiled synchronously on the first kernel call. If that fails (e.g. a browser that
 * refuses synchronous compilation on the main thread: Chromium before 114 capped it at 4 KB, the
 * module is about 13 KB), its calls fall back to the reference kernels; `await initWasm()` compiles
 * asynchronously instead. float64 calls always run the reference kernels.
 *
 * The wasm module comes in two variants (wasmVariant(), setWasmVariant()): "relaxed" (relaxed SIMD:
 * fused multiply-add) where the engine validates it, else "simd".
 */
import { registerBackend } from "./registry.js";
import { refBackend } from "./ref/index.js";
import { wasmBackend, wasmTuning } from "./wasm/backend.js";
import {
  getNumThreads as runtimeGetNumThreads, getRuntime, initRuntimeAsync, relaxedSimdSupported,
  setNumThreads as runtimeSetNumThreads, setWasmVariant, simdSupported, wasmVariant, type WasmVariant,
} from "./wasm/runtime.js";

/** The built-in backends' names, plus any registered one. */
export type BackendName = "ref" | "wasm" | (string & {});

registerBackend("ref", () => refBackend, { priority: 0 });
registerBackend("wasm", () => (simdSupported() ? wasmBackend : null), { priority: 1 });

/** Threads used by the wasm kernels (the calling thread plus n - 1 workers, started on first need). */
export function setNumThreads(n: number): void {
  runtimeSetNumThreads(n);
}

export function getNumThreads(): number {
  return runtimeGetNumThreads();
}

/** Whether the wasm kernels can run here (compiling them now if they were not yet). */
export function wasmAvailable(): boolean {
  return simdSupported() && getRuntime() !== null;
}

export interface WasmRuntimeInfo {
  variant: WasmVariant;
  /** shared memory and a caller that may block: jobs can use workers */
  threaded: boolean;
  workersStarted: number;
  workersReady: number;
  /** tasks run by workers (not the calling thread) so far */
  workerTasks: number;
  /** bytes of wasm linear memory (it grows with the largest call and never shrinks) */
  memoryBytes: number;
}

/** Diagnostics of the wasm runtime (null if it cannot run here); creates it if needed. */
export function wasmRuntimeInfo(): WasmRuntimeInfo | null {
  const rt = simdSupported() ? getRuntime() : null;
  if (rt === null) return null;
  return {
    variant: rt.variant, threaded: rt.threaded, workersStarted: rt.workerCount, workersReady: rt.readyWorkers,
    workerTasks: rt.workerTasks, memoryBytes: rt.memoryBytes,
  };
}

/** Compiles the wasm kernels asynchronously (for pages that refuse synchronous compilation). */
export async function initWasm(): Promise<boolean> {
  if (!simdSupported()) return false;
  return (await initRuntimeAsync()) !== null;
}

export type { AdamWItem, AttentionParams, Backend, MatmulParams, NormRowsParams, PiecewiseTable32 } from "./backend.js";
export {
  findBackend, getBackend, getBackendName, listBackends, registerBackend, setBackend, type BackendFactory, type RegisterBackendOptions,
} from "./registry.js";
export type { WasmVariant };
export { withFrozenWeights } from "./frozen.js";
export { elementwiseTuning } from "./wasm/elementwise.js";
export { optimTuning } from "./wasm/optim.js";
export { refBackend, relaxedSimdSupported, setWasmVariant, wasmBackend, wasmTuning, wasmVariant };
