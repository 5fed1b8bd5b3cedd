/**
 * Where a tensor's values live. Host backends (ref, wasm) keep them in a typed array in JavaScript
 * memory, which the op layer reads directly (`t.values`). A device backend (WebGPU, later) keeps them
 * in a buffer it owns and hands the tensor this opaque handle; the tensor layer never looks inside
 * it, it only asks it to read back. See src/kernels/README.md, "Backends and devices".
 */
import type { TypedArray } from "./dtype.js";

export interface DeviceBuffer {
  /** the registered name of the backend that owns the buffer */
  readonly backend: string;
  /** number of elements */
  readonly length: number;
  /** Copies the values to the host; resolves once the device has finished the work that writes them. */
  read(): Promise<TypedArray>;
  /** A synchronous read, where the device allows one (a browser's WebGPU does not): absent otherwise. */
  readSync?(): TypedArray;
  /** Frees the device memory; the tensor cannot be read afterwards. */
  release?(): void;
}

export function isDeviceBuffer(x: unknown): x is DeviceBuffer {
  return typeof x === "object" && x !== null && !ArrayBuffer.isView(x) && typeof (x as DeviceBuffer).read === "function";
}
