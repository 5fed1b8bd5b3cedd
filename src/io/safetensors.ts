/**
 * The safetensors format (https://github.com/huggingface/safetensors), pure TypeScript, no Node imports:
 *
 *   8 bytes   N, the header length, an unsigned 64-bit little-endian integer
 *   N bytes   a UTF-8 JSON object, padded with spaces so that the data section starts at a multiple of 8:
 *             { "__metadata__": { "k": "v", ... },          (optional, strings only)
 *               "name": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }, ... }
 *   the rest  the data section: every tensor's elements, row-major, little-endian, at
 *             [begin, end) relative to the start of the data section; the tensors cover it exactly.
 *
 * Decoding treats the file as hostile: every length, offset and shape is checked against the others and
 * against the size of the file before anything of the claimed size is allocated.
 */
import type { DType, RawTensor, TypedArray } from "../tensor/dtype.js";

/** The largest header we accept (100 MiB), as the reference implementation does: a bound on what a file can make us parse. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * The most tensors one file may hold (2^18 = 262,144). Real checkpoints hold far fewer per file (a
 * 405B-parameter Llama has about 1,100 in all; a shard of the largest mixture-of-experts models a
 * few thousand), while each entry costs memory and time however small its tensor: a 95 MB header of
 * empty tensors would otherwise hold 1.5 million of them. Counted before the header is parsed.
 */
export const SAFETENSORS_MAX_TENSORS = 1 << 18;

/** A file that is not valid safetensors, or tensors that cannot be written as safetensors. */
export class SafetensorsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SafetensorsError";
  }
}

/** The element types this library reads; the file's name for each. */
export type SafetensorsDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** What each file type becomes in memory, and its size in the file. */
const FILE_DTYPES: Readonly<Record<SafetensorsDType, { readonly itemSize: number; readonly dtype: DType }>> = {
  F64: { itemSize: 8, dtype: "float64" },
  F32: { itemSize: 4, dtype: "float32" },
  F16: { itemSize: 2, dtype: "float32" },
  BF16: { itemSize: 2, dtype: "float32" },
  I64: { itemSize: 8, dtype: "int32" },
  I32: { itemSize: 4, dtype: "int32" },
  I16: { itemSize: 2, dtype: "int32" },
  I8: { itemSize: 1, dtype: "int32" },
  U8: { itemSize: 1, dtype: "int32" },
  BOOL: { itemSize: 1, dtype: "bool" },
};
const FILE_DTYPE_LIST = Object.keys(FILE_DTYPES).join(", ");

/** How each in-memory type is written. */
const WRITE_DTYPES: Readonly<Record<DType, { readonly code: SafetensorsDType; readonly itemSize: number }>> = {
  float32: { code: "F32", itemSize: 4 },
  float64: { code: "F64", itemSize: 8 },
  int32: { code: "I32", itemSize: 4 },
  bool: { code: "BOOL", itemSize: 1 },
};

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const METADATA_KEY = "__metadata__";

/** One tensor's entry in a validated header; begin and end are byte offsets into the data section. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly fileDType: SafetensorsDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A validated header: entries sorted by name, and the metadata (empty when the file has none). */
export interface SafetensorsHeader {
  readonly entries: SafetensorsEntry[];
  readonly metadata: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

/**
 * Serialize tensors (and optional string metadata) to safetensors bytes. Tensors are laid out in the data
 * section in sorted-name order (UTF-16 code-unit order), contiguously, little-endian; bool is written as
 * bytes 0/1. Throws SafetensorsError for an invalid name, shape, dtype, data length or metadata value.
 */
export function encodeSafetensors(
  tensors: Record<string, RawTensor> | Map<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`encodeSafetensors: ${msg}`);
  };
  if (tensors === null || typeof tensors !== "object") {
    fail(`tensors is ${describe(tensors)}; expected a Map or a record of name -> tensor`);
  }
  const list: [unknown, unknown][] = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name] of list) {
    if (typeof name !== "string") fail(`a tensor name is ${describe(name)}; expected a string`);
  }
  const named = list as [string, unknown][];
  if (named.length > SAFETENSORS_MAX_TENSORS) {
    fail(`${named.length} tensors; expected at most ${SAFETENSORS_MAX_TENSORS} in one file (readers refuse more; split them across files)`);
  }
  named.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

  const parts: string[] = [];
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
      fail(`metadata is ${describe(metadata)}; expected a record of string -> string`);
    }
    const fields: string[] = [];
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") fail(`metadata "${key}" is ${describe(value)}; expected a string`);
      if (!isWellFormed(key) || !isWellFormed(value)) {
        fail(`metadata "${key}" contains an unpaired UTF-16 surrogate; expected text that UTF-8 can hold`);
      }
      fields.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    if (fields.length > 0) parts.push(`${JSON.stringify(METADATA_KEY)}:{${fields.join(",")}}`);
  }

  const layout: { data: TypedArray; dtype: DType; at: number }[] = [];
  let offset = 0;
  for (const [name, t] of named) {
    if (name.length === 0) fail(`a tensor name is empty; expected a non-empty name`);
    if (name === METADATA_KEY) fail(`a tensor is named "${METADATA_KEY}"; expected any other name (that key holds the metadata)`);
    if (!isWellFormed(name)) fail(`tensor name ${JSON.stringify(name)} contains an unpaired UTF-16 surrogate; expected text that UTF-8 can hold`);
    if (t === null || typeof t !== "object") fail(`tensor "${name}" is ${describe(t)}; expected an object with dtype, shape and values`);
    const { dtype, shape, values: data } = t as RawTensor;
    if (typeof dtype !== "string" || !Object.hasOwn(WRITE_DTYPES, dtype)) {
      fail(`tensor "${name}" has dtype ${describe(dtype)}; expected float32, float64, int32 or bool`);
    }
    const spec = WRITE_DTYPES[dtype];
    if (!Array.isArray(shape)) fail(`tensor "${name}" has shape ${describe(shape)}; expected an array of dimensions`);
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) fail(`tensor "${name}" has shape ${describe(shape)}; expected non-negative integer dimensions`);
    }
    const numel = shapeSize(shape);
    if (numel === undefined) fail(`tensor "${name}" has shape ${describe(shape)} whose size overflows; expected at most 2^53 - 1 elements`);
    if (!(data instanceof ARRAY_OF[dtype])) {
      fail(`tensor "${name}" (dtype ${dtype}) holds ${describe(data)}; expected a ${ARRAY_OF[dtype].name}`);
    }
    if (data.length !== numel) {
      fail(`tensor "${name}" has ${data.length} elements of data for shape [${shape.join(", ")}]; expected ${numel}`);
    }
    const byteLength = (numel as number) * spec.itemSize;
    const end = offset + byteLength;
    if (!Number.isSafeInteger(end)) fail(`the data section would be over 2^53 - 1 bytes; expected less`);
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${spec.code}","shape":[${shape.join(",")}],"data_offsets":[${offset},${end}]}`,
    );
    layout.push({ data, dtype, at: offset });
    offset = end;
  }

  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > SAFETENSORS_MAX_HEADER_BYTES) {
    fail(`the header would be ${headerLength} bytes; expected at most ${SAFETENSORS_MAX_HEADER_BYTES} (readers refuse more)`);
  }
  const dataStart = 8 + headerLength;
  const out = new Uint8Array(dataStart + offset);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(0, headerLength, true); // the high 32 bits stay 0: the header is capped far below 2^32
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, dataStart);
  for (const { data, dtype, at } of layout) writeLittleEndian(out, view, dataStart + at, dtype, data);
  return out;
}

const ARRAY_OF = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  bool: Uint8Array,
} as const;

function writeLittleEndian(out: Uint8Array, view: DataView, at: number, dtype: DType, data: TypedArray): void {
  const n = data.length;
  if (dtype === "bool") {
    for (let i = 0; i < n; i++) out[at + i] = data[i] !== 0 ? 1 : 0;
  } else if (HOST_LITTLE_ENDIAN) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
  } else if (dtype === "float32") {
    for (let i = 0; i < n; i++) view.setFloat32(at + 4 * i, data[i]!, true);
  } else if (dtype === "float64") {
    for (let i = 0; i < n; i++) view.setFloat64(at + 8 * i, data[i]!, true);
  } else {
    for (let i = 0; i < n; i++) view.setInt32(at + 4 * i, data[i]!, true);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

/**
 * Parse safetensors bytes. F64 -> float64; F32, F16, BF16 -> float32 (exactly: every F16 and BF16 value is a
 * float32); I64 (each value must fit), I32, I16, I8, U8 -> int32; BOOL -> bool (any nonzero byte is 1).
 * Output arrays are fresh copies, so the input may be reused and offsets need not be aligned. The returned
 * map is in sorted-name order. Throws SafetensorsError (message "decodeSafetensors: ...") for anything
 * malformed, before allocating anything the file's claims would size.
 */
export function decodeSafetensors(bytes: Uint8Array): {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
} {
  if (!(bytes instanceof Uint8Array)) {
    throw new SafetensorsError(`decodeSafetensors: input is ${describe(bytes)}; expected a Uint8Array`);
  }
  const headerLength = readSafetensorsHeaderLength(bytes, bytes.length);
  const dataStart = 8 + headerLength;
  const header = parseSafetensorsHeader(bytes.subarray(8, dataStart), bytes.length - dataStart);
  const tensors = new Map<string, RawTensor>();
  for (const e of header.entries) {
    tensors.set(e.name, decodeSafetensorsTensor(e, bytes.subarray(dataStart + e.begin, dataStart + e.end)));
  }
  return { tensors, metadata: header.metadata };
}

/**
 * Read and check the header length N from the first 8 bytes of a file of `fileLength` bytes (`prefix` may
 * be the whole file or just its start). Checks that the file has 8 bytes, that 0 < N, that the header ends
 * inside the file, and that N is at most SAFETENSORS_MAX_HEADER_BYTES. Returns N.
 */
export function readSafetensorsHeaderLength(prefix: Uint8Array, fileLength: number): number {
  if (fileLength < 8 || prefix.length < 8) {
    throw new SafetensorsError(
      `decodeSafetensors: the file is ${Math.min(fileLength, prefix.length)} bytes long; expected at least 8 (the header length)`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n === 0n) {
    throw new SafetensorsError(`decodeSafetensors: the header length is 0; expected a JSON header of at least 2 bytes ("{}")`);
  }
  if (n > BigInt(fileLength - 8)) {
    throw new SafetensorsError(
      `decodeSafetensors: the header length is ${n} bytes, past the end of the file (${fileLength} bytes); ` +
        `expected at most ${fileLength - 8}`,
    );
  }
  if (n > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `decodeSafetensors: the header length is ${n} bytes; expected at most ${SAFETENSORS_MAX_HEADER_BYTES} (100 MiB)`,
    );
  }
  return Number(n);
}

/**
 * Parse and validate the JSON header (the N bytes after the length), given the length of the data section
 * that follows it. Checks every entry's dtype, shape and offsets, that each tensor's byte length matches
 * its shape, and that the tensors cover the data section exactly (no overlap, no holes, no trailing bytes).
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number): SafetensorsHeader {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`decodeSafetensors: ${msg}`);
  };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (err) {
    throw new SafetensorsError(`decodeSafetensors: the header is not valid UTF-8; expected UTF-8 JSON`, { cause: err });
  }
  // Before parsing: count the entries (refusing too many at no cost) and note any repeated key,
  // which JSON.parse would silently resolve to its last value.
  const keys = scanHeaderKeys(text, SAFETENSORS_MAX_TENSORS);
  if (keys.entries > SAFETENSORS_MAX_TENSORS) {
    fail(`the header has more than ${SAFETENSORS_MAX_TENSORS} tensors; expected at most ${SAFETENSORS_MAX_TENSORS} (SAFETENSORS_MAX_TENSORS)`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new SafetensorsError(
      `decodeSafetensors: the header is not valid JSON (${why}), starting ${JSON.stringify(text.slice(0, 40))}; expected a JSON object`,
      { cause: err },
    );
  }
  if (!isObject(parsed)) fail(`the header is ${describe(parsed)}; expected a JSON object`);
  if (keys.duplicate !== undefined) {
    const { key, parent } = keys.duplicate;
    fail(
      parent === undefined
        ? `the header names tensor ${JSON.stringify(key)} twice; expected each name once`
        : `${parent === METADATA_KEY ? `"${METADATA_KEY}"` : `tensor ${JSON.stringify(parent)}`} has key ${JSON.stringify(key)} twice; expected each key once`,
    );
  }
  const root = parsed as Record<string, unknown>;

  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const name of Object.keys(root)) {
    const value = root[name];
    if (name === METADATA_KEY) {
      if (!isObject(value)) fail(`"${METADATA_KEY}" is ${describe(value)}; expected an object of strings`);
      const m = value as Record<string, unknown>;
      for (const key of Object.keys(m)) {
        if (typeof m[key] !== "string") fail(`"${METADATA_KEY}" key ${JSON.stringify(key)} is ${describe(m[key])}; expected a string`);
      }
      metadata = Object.fromEntries(Object.entries(m)) as Record<string, string>;
      continue;
    }
    entries.push(parseEntry(name, value, dataLength, fail));
  }

  // The data section must be covered exactly: sorted by position, each tensor starts where the last ended.
  const byPosition = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: SafetensorsEntry | undefined;
  for (const e of byPosition) {
    if (e.begin < cursor) {
      fail(
        `tensor ${JSON.stringify(e.name)} starts at data byte ${e.begin} but ${JSON.stringify(previous!.name)} ends at ` +
          `${cursor}: tensors overlap; expected each tensor to start where the previous one ends`,
      );
    }
    if (e.begin > cursor) {
      fail(
        `data bytes ${cursor}..${e.begin} belong to no tensor (a hole before ${JSON.stringify(e.name)}); ` +
          `expected the tensors to cover the data section contiguously`,
      );
    }
    cursor = e.end;
    previous = e;
  }
  if (cursor !== dataLength) {
    fail(
      `the data section is ${dataLength} bytes but the tensors cover only ${cursor}; ` +
        `expected them to cover it exactly (no trailing bytes)`,
    );
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { entries, metadata };
}

function parseEntry(name: string, value: unknown, dataLength: number, fail: (msg: string) => never): SafetensorsEntry {
  const label = `tensor ${JSON.stringify(name)}`;
  if (!isObject(value)) fail(`${label} is ${describe(value)}; expected an object with dtype, shape and data_offsets`);
  const v = value as Record<string, unknown>;
  for (const key of ["dtype", "shape", "data_offsets"]) {
    if (!Object.hasOwn(v, key)) fail(`${label} has no "${key}"; expected an object with dtype, shape and data_offsets`);
  }
  const code = v["dtype"];
  if (typeof code !== "string") fail(`${label} has dtype ${describe(code)}; expected a string such as "F32"`);
  if (!Object.hasOwn(FILE_DTYPES, code as string)) fail(`${label} has unknown dtype ${describe(code)}; expected one of ${FILE_DTYPE_LIST}`);
  const fileDType = code as SafetensorsDType;

  const shape = v["shape"];
  if (!Array.isArray(shape)) fail(`${label} has shape ${describe(shape)}; expected an array of non-negative integers`);
  for (const d of shape as unknown[]) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      fail(`${label} has shape ${describe(shape)}; expected an array of non-negative integers`);
    }
  }
  const dims = (shape as number[]).map((d) => d + 0); // + 0 turns -0 into 0
  const numel = shapeSize(dims);
  if (numel === undefined) fail(`${label} has shape ${describe(shape)} whose size overflows; expected at most 2^53 - 1 elements`);

  const offsets = v["data_offsets"];
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o: unknown) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    fail(`${label} has data_offsets ${describe(offsets)}; expected [begin, end], two non-negative integers`);
  }
  const begin = (offsets as number[])[0]! + 0;
  const end = (offsets as number[])[1]! + 0;
  if (begin > end) fail(`${label} has data_offsets [${begin}, ${end}]; expected begin <= end`);
  if (end > dataLength) {
    fail(`${label} has data_offsets [${begin}, ${end}], past the end of the data section; expected end <= ${dataLength}`);
  }
  const expected = (numel as number) * FILE_DTYPES[fileDType].itemSize;
  if (end - begin !== expected) {
    fail(
      `${label} spans ${end - begin} bytes; expected ${expected} (${numel} elements of ${fileDType}, ` +
        `${FILE_DTYPES[fileDType].itemSize} bytes each, for shape [${dims.join(", ")}])`,
    );
  }
  return { name, fileDType, shape: dims, begin, end };
}

/**
 * Convert one tensor's bytes (exactly end - begin of them, as validated by parseSafetensorsHeader) to a
 * fresh RawTensor. Throws SafetensorsError if an I64 value does not fit in int32.
 */
export function decodeSafetensorsTensor(entry: SafetensorsEntry, bytes: Uint8Array): RawTensor {
  const spec = FILE_DTYPES[entry.fileDType];
  const n = bytes.length / spec.itemSize;
  if (!Number.isInteger(n) || n !== shapeSize(entry.shape)) {
    throw new SafetensorsError(
      `decodeSafetensors: tensor ${JSON.stringify(entry.name)} was given ${bytes.length} bytes; ` +
        `expected ${(shapeSize(entry.shape) ?? NaN) * spec.itemSize}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = [...entry.shape];
  switch (entry.fileDType) {
    case "F64": {
      const out = new Float64Array(n);
      if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
      else for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      return { dtype: "float64", shape, values: out };
    }
    case "F32": {
      const out = new Float32Array(n);
      if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
      else for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      return { dtype: "float32", shape, values: out };
    }
    case "F16": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToNumber(view.getUint16(2 * i, true));
      return { dtype: "float32", shape, values: out };
    }
    case "BF16": {
      // A bfloat16 is the top half of a float32: shift its bits into place in the host's own order.
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return { dtype: "float32", shape, values: out };
    }
    case "I64": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const lo = view.getInt32(8 * i, true);
        const hi = view.getInt32(8 * i + 4, true);
        if (hi !== lo >> 31) {
          throw new SafetensorsError(
            `decodeSafetensors: tensor ${JSON.stringify(entry.name)} (I64) element ${i} is ${view.getBigInt64(8 * i, true)}; ` +
              `expected a value in int32 range [-2147483648, 2147483647]`,
          );
        }
        out[i] = lo;
      }
      return { dtype: "int32", shape, values: out };
    }
    case "I32": {
      const out = new Int32Array(n);
      if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
      else for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
      return { dtype: "int32", shape, values: out };
    }
    case "I16": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt16(2 * i, true);
      return { dtype: "int32", shape, values: out };
    }
    case "I8": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = (bytes[i]! << 24) >> 24;
      return { dtype: "int32", shape, values: out };
    }
    case "U8": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = bytes[i]!;
      return { dtype: "int32", shape, values: out };
    }
    case "BOOL": {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = bytes[i] !== 0 ? 1 : 0;
      return { dtype: "bool", shape, values: out };
    }
  }
}

/** IEEE 754 binary16 bits to their exact value. */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (0x400 + mantissa) * 2 ** (exponent - 25);
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** The product of the dimensions, or undefined if it is not a safe integer (zeros anywhere give 0). */
function shapeSize(shape: readonly number[]): number | undefined {
  let product = 1;
  let zero = false;
  for (const d of shape) {
    if (d === 0) {
      zero = true;
      continue;
    }
    product *= d;
    if (product > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return zero ? 0 : product;
}

function isObject(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A short description of a value for an error message. */
function describe(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === "function") return "a function";
  if (typeof v === "bigint") return `${v}n`;
  const s = preview(v, 3, 61);
  const kind = Array.isArray(v) ? "array" : typeof v;
  return `${kind} ${s.length > 60 ? `${s.slice(0, 57)}...` : s}`;
}

/**
 * JSON-like text of v, cut off after about `budget` characters and `depth` levels of nesting ("..."
 * beyond), so a hostile value (an array nested a million deep) cannot exhaust the stack or the heap.
 */
function preview(v: unknown, depth: number, budget: number): string {
  if (v === null || typeof v !== "object") {
    const s = typeof v === "string" ? JSON.stringify(v.length > budget ? v.slice(0, budget) : v) : String(JSON.stringify(v) ?? v);
    return s;
  }
  if (depth === 0) return Array.isArray(v) ? "[...]" : "{...}";
  const items = Array.isArray(v) ? v : Object.keys(v);
  const parts: string[] = [];
  let used = 2;
  for (const item of items) {
    if (used > budget) {
      parts.push("...");
      break;
    }
    const part = Array.isArray(v)
      ? preview(item, depth - 1, budget - used)
      : `${JSON.stringify(item)}:${preview((v as Record<string, unknown>)[item as string], depth - 1, budget - used)}`;
    parts.push(part);
    used += part.length + 1;
  }
  return Array.isArray(v) ? `[${parts.join(",")}]` : `{${parts.join(",")}}`;
}

/**
 * One pass over the header text, before JSON.parse: the number of tensors (top-level keys other than
 * "__metadata__"; stopping once it passes `limit`), and the first key that an object at the top two levels (the header, an entry,
 * the metadata) repeats, with the top-level key it sits under. Linear in the text, recursion-free;
 * deeper objects are not looked into (the header has none that are valid). Its answers are only
 * trusted once JSON.parse has accepted the text.
 */
function scanHeaderKeys(text: string, limit: number): { entries: number; duplicate?: { key: string; parent?: string } } {
  const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d, OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d;
  let depth = 0;
  const objectAt = [false, false, false]; // whether the container at depth 1 and 2 is an object
  let expectKey = false;
  let entries = 0;
  const rootKeys = new Set<string>();
  let childKeys = new Set<string>();
  let parent = "";
  let duplicate: { key: string; parent?: string } | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // the closing quote: the next one not escaped by an odd run of backslashes
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end < 0) return { entries, duplicate }; // unterminated: JSON.parse will say so
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
        if (slashes % 2 === 0) break;
      }
      if (expectKey && depth <= 2) {
        const raw = text.slice(i + 1, end);
        let key = raw;
        if (raw.includes("\\")) {
          try {
            key = JSON.parse(`"${raw}"`) as string;
          } catch {
            return { entries, duplicate }; // a bad escape: JSON.parse will say so
          }
        }
        if (depth === 1) {
          if (key !== METADATA_KEY && ++entries > limit) return { entries, duplicate };
          if (rootKeys.has(key)) duplicate ??= { key };
          rootKeys.add(key);
          parent = key;
        } else {
          if (childKeys.has(key)) duplicate ??= { key, parent };
          childKeys.add(key);
        }
      }
      expectKey = false;
      i = end;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++;
      if (depth <= 2) objectAt[depth] = c === OPEN_OBJECT;
      if (depth === 2) childKeys = new Set();
      expectKey = c === OPEN_OBJECT;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
      expectKey = false;
    } else if (c === COMMA) {
      expectKey = depth <= 2 && objectAt[depth] === true;
    }
  }
  return { entries, duplicate };
}

/** True when the string has no unpaired surrogates, so UTF-8 (and every JSON reader) can hold it. */
function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      return false;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}
