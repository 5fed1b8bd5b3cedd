/**
 * Backend selection and threading.
 *
 *   setBackend("ref" | "wasm")   getBackend(): Backend   getBackendName()
 *   setNumThreads(n)             getNumThreads()           (default: the available cores)
 *
 * "wasm" is the default wherever WebAssembly SIMD validates (probed synchronously with a tiny module);
 * its module is compiled synchronously on the first kernel call. If that fails (e.g. a browser that
 * refuses synchronous compilation on the main thread: Chromium before 114 capped it at 4 KB, the
 * module is about 13 KB), its calls fall back to the reference kernels; `await initWasm()` compiles
 * asynchronously instead. float64 calls always run the reference kernels.
 *
 * The wasm module comes in two variants (wasmVariant(), setWasmVariant()): "relaxed" (relaxed SIMD:
 * fused multiply-add) where the engine validates it, else "simd".
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Backend } from "./backend.js";
import { refBackend } from "./ref/index.js";
import { wasmBackend, wasmTuning } from "./wasm/backend.js";
import {
  getNumThreads as runtimeGetNumThreads, getRuntime, initRuntimeAsync, relaxedSimdSupported,
  setNumThreads as runtimeSetNumThreads, setWasmVariant, simdSupported, wasmVariant, type WasmVariant,
} from "./wasm/runtime.js";

export type BackendName = "ref" | "wasm";

const backends: Record<BackendName, Backend> = { ref: refBackend, wasm: wasmBackend };
let current: BackendName = simdSupported() ? "wasm" : "ref";

export function setBackend(name: BackendName): void {
  if (!(name in backends)) throw new ArgumentError(`setBackend: unknown backend "${String(name)}"; expected "ref" or "wasm"`);
  if (name === "wasm" && !simdSupported()) throw new ArgumentError("setBackend: WebAssembly SIMD is not available in this runtime; use \"ref\" (plain TypeScript) here");
  current = name;
}

export function getBackend(): Backend {
  return backends[current];
}

export function getBackendName(): BackendName {
  return current;
}

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

export type { AttentionParams, Backend, MatmulParams } from "./backend.js";
export type { WasmVariant };
export { refBackend, relaxedSimdSupported, setWasmVariant, wasmBackend, wasmTuning, wasmVariant };
