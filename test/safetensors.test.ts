import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RawTensor } from "../src/tensor/dtype.js";
import {
  SAFETENSORS_MAX_HEADER_BYTES,
  SAFETENSORS_MAX_TENSORS,
  SafetensorsError,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensorsHeaderLength,
} from "../src/io/safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../src/io/safetensorsFile.js";
import { deserializeSafetensors, serializeSafetensors } from "../src/io/tensors.js";
import { loadSafetensors } from "../src/io/files.js";
import { tensor } from "../src/index.js";

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** Bytes of a file built by hand: the header text (or raw header bytes) exactly as given, no padding. */
function rawFile(header: string | object | Uint8Array, data: ArrayLike<number> = [], claimedLength?: bigint): Uint8Array {
  const json =
    header instanceof Uint8Array
      ? header
      : new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, claimedLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Same dtype, shape, array type and bit pattern. */
function assertSameTensor(actual: RawTensor | undefined, expected: RawTensor, label: string): void {
  assert.ok(actual, `${label}: missing`);
  assert.equal(actual.dtype, expected.dtype, `${label}: dtype`);
  assert.deepEqual([...actual.shape], [...expected.shape], `${label}: shape`);
  assert.equal(actual.values.constructor, expected.values.constructor, `${label}: array type`);
  assert.deepEqual(bytesOf(actual.values), bytesOf(expected.values), `${label}: bits`);
}

function t(dtype: RawTensor["dtype"], shape: number[], values: number[]): RawTensor {
  const Ctor = { float32: Float32Array, float64: Float64Array, int32: Int32Array, bool: Uint8Array }[dtype];
  return { dtype, shape, values: Ctor.from(values) };
}

/** decodeSafetensors must throw a SafetensorsError that says what it saw and what it expected. */
function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => decodeSafetensors(bytes),
    (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `expected a SafetensorsError, got ${String(err)}`);
      assert.equal(err.name, "SafetensorsError");
      assert.match(err.message, /^decodeSafetensors: /);
      assert.match(err.message, /expected/);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

function encodeRejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SafetensorsError, `expected a SafetensorsError, got ${String(err)}`);
    assert.match(err.message, /^encodeSafetensors: /);
    assert.match(err.message, /expected/);
    assert.match(err.message, pattern);
    return true;
  });
}

function withTempDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "attend-safetensors-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const PYTHON = "/usr/bin/python3";
const torchAvailable = (() => {
  const r = spawnSync(PYTHON, ["-c", "import torch"], { stdio: "ignore", timeout: 120_000 });
  return r.error === undefined && r.status === 0;
})();

function runPython(script: string, args: string[]): string {
  const r = spawnSync(PYTHON, ["-c", script, ...args], { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  return r.stdout;
}

// A representative set of tensors: every dtype, special values, empty and 0-d tensors, awkward names.
function sampleTensors(): Record<string, RawTensor> {
  return {
    "layers.10.weight": t("float32", [2, 3], [1.5, -0, 3.4028234663852886e38, 1e-45, -7.25, 0.1]),
    "layers.9.weight": t("float64", [4], [1 / 3, 5e-324, -1.7976931348623157e308, -0]),
    "specials.f32": t("float32", [3], [NaN, Infinity, -Infinity]),
    "specials.f64": t("float64", [3], [NaN, Infinity, -Infinity]),
    "ids": t("int32", [2, 2], [-2147483648, 2147483647, 0, -1]),
    "mask": t("bool", [5], [1, 0, 0, 1, 1]),
    "empty.f32": t("float32", [0, 3], []),
    "empty.bool": t("bool", [0], []),
    "empty.i32": t("int32", [3, 0, 2], []),
    "scalar.f64": t("float64", [], [2.5]),
    "scalar.i32": t("int32", [], [-7]),
    "scalar.bool": t("bool", [], [1]),
    "ünïcödé ✓": t("float32", [1], [42]),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Round trips and layout

test("round trip: every dtype, special values, empty and 0-d tensors, metadata", () => {
  const tensors = sampleTensors();
  // JSON.parse makes "__proto__" an own key (an object literal would set the prototype instead).
  const metadata = JSON.parse('{"format":"pt","note":"héllo 🙂","empty":"","__proto__":"not a prototype"}') as Record<string, string>;
  assert.equal(Object.hasOwn(metadata, "__proto__"), true);
  const { tensors: back, metadata: meta } = decodeSafetensors(encodeSafetensors(tensors, metadata));
  assert.deepEqual([...back.keys()], Object.keys(tensors).sort());
  for (const [name, tensor] of Object.entries(tensors)) assertSameTensor(back.get(name), tensor, name);
  assert.deepEqual(meta, metadata);
  assert.equal(Object.getPrototypeOf(meta), Object.prototype);
  assert.equal(Object.hasOwn(meta, "__proto__"), true);
});

test("round trip: a Map, no metadata, and no tensors at all", () => {
  const m = new Map<string, RawTensor>([["x", t("float32", [2], [1, 2])]]);
  const { tensors, metadata } = decodeSafetensors(encodeSafetensors(m));
  assertSameTensor(tensors.get("x"), m.get("x")!, "x");
  assert.deepEqual(metadata, {});

  const empty = encodeSafetensors({});
  assert.equal(empty.length, 16); // 8 + "{}" padded to 8
  assert.deepEqual(decodeSafetensors(empty), { tensors: new Map(), metadata: {} });
});

test("round trip: bool data other than 0/1 is written as 1; output arrays are copies", () => {
  const bytes = encodeSafetensors({ m: { dtype: "bool", shape: [3], values: Uint8Array.from([0, 2, 255]) } });
  const first = decodeSafetensors(bytes).tensors.get("m")!;
  assert.deepEqual([...first.values], [0, 1, 1]);
  (first.values as Uint8Array)[0] = 9;
  assert.deepEqual([...decodeSafetensors(bytes).tensors.get("m")!.values], [0, 1, 1]);
});

test("round trip: tensors whose data is a view into a larger buffer", () => {
  const big = new Float64Array([9, 1, 2, 3, 9]);
  const x: RawTensor = { dtype: "float64", shape: [3], values: big.subarray(1, 4) };
  assertSameTensor(decodeSafetensors(encodeSafetensors({ x })).tensors.get("x"), t("float64", [3], [1, 2, 3]), "x");
});

test("encoding: exact bytes, header padded with spaces to 8, data in sorted-name order", () => {
  const bytes = encodeSafetensors(
    {
      b: t("float32", [1], [1.5]),
      a: t("int32", [2], [1, -1]),
      "10": t("bool", [3], [1, 0, 1]),
      "9": t("float64", [], [0.25]),
    },
    { k: "v" },
  );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const json =
    '{"__metadata__":{"k":"v"},' +
    '"10":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]},' +
    '"9":{"dtype":"F64","shape":[],"data_offsets":[3,11]},' +
    '"a":{"dtype":"I32","shape":[2],"data_offsets":[11,19]},' +
    '"b":{"dtype":"F32","shape":[1],"data_offsets":[19,23]}}';
  assert.equal(headerText, json + " ".repeat(n - json.length));
  assert.ok(n - json.length < 8);
  assert.deepEqual(
    [...bytes.subarray(8 + n)],
    [
      1, 0, 1, // "10": BOOL
      0, 0, 0, 0, 0, 0, 0xd0, 0x3f, // "9": 0.25 = 0x3FD0000000000000
      1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, // "a": 1, -1
      0, 0, 0xc0, 0x3f, // "b": 1.5 = 0x3FC00000
    ],
  );
});

test("decoding: hand-built bytes with every dtype, unaligned offsets, known values", () => {
  const header = {
    __metadata__: { format: "pt", emoji: "🙂" },
    i8: { dtype: "I8", shape: [3], data_offsets: [0, 3] },
    f32: { dtype: "F32", shape: [2], data_offsets: [3, 11] },
    f16: { dtype: "F16", shape: [3, 3], data_offsets: [11, 29] },
    bf16: { dtype: "BF16", shape: [3], data_offsets: [29, 35] },
    i64: { dtype: "I64", shape: [3], data_offsets: [35, 59] },
    i16: { dtype: "I16", shape: [2], data_offsets: [59, 63] },
    u8: { dtype: "U8", shape: [2], data_offsets: [63, 65] },
    bool: { dtype: "BOOL", shape: [2, 2], data_offsets: [65, 69] },
    f64: { dtype: "F64", shape: [], data_offsets: [69, 77] },
    i32: { dtype: "I32", shape: [1], data_offsets: [77, 81] },
    none: { dtype: "F16", shape: [0, 4], data_offsets: [81, 81] },
  };
  const data = [
    0x80, 0x7f, 0xff, // I8: -128, 127, -1
    0, 0, 0, 0x3f, 0, 0, 0x80, 0xc0, // F32: 0.5 (0x3F000000), -4 (0xC0800000)
    // F16: 1, -2, 2^-24, +inf, -inf, NaN, -0, 0x3555, 65504
    0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c, 0x00, 0xfc, 0x00, 0x7e, 0x00, 0x80, 0x55, 0x35, 0xff, 0x7b,
    0x80, 0x3f, 0x40, 0xc0, 0x49, 0x40, // BF16: 1 (0x3F80), -3 (0xC040), 3.140625 (0x4049)
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // I64: -1
    0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, // I64: 2147483647
    0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff, // I64: -2147483648
    0x00, 0x80, 0xff, 0x7f, // I16: -32768, 32767
    255, 0, // U8
    0, 1, 2, 255, // BOOL
    0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // F64: 1.5 (0x3FF8000000000000)
    0xef, 0xbe, 0xad, 0xde, // I32: 0xDEADBEEF
  ];
  // Decode from a view that starts at an odd offset of its buffer, too.
  const file = rawFile(header, data);
  const shifted = new Uint8Array(file.length + 3);
  shifted.set(file, 3);
  for (const bytes of [file, shifted.subarray(3)]) {
    const { tensors, metadata } = decodeSafetensors(bytes);
    assert.deepEqual(metadata, { format: "pt", emoji: "🙂" });
    assert.deepEqual(
      [...tensors.keys()],
      ["bf16", "bool", "f16", "f32", "f64", "i16", "i32", "i64", "i8", "none", "u8"],
    );
    assertSameTensor(tensors.get("i8"), t("int32", [3], [-128, 127, -1]), "i8");
    assertSameTensor(tensors.get("f32"), t("float32", [2], [0.5, -4]), "f32");
    assertSameTensor(
      tensors.get("f16"),
      t("float32", [3, 3], [1, -2, 2 ** -24, Infinity, -Infinity, NaN, -0, 0.333251953125, 65504]),
      "f16",
    );
    assertSameTensor(tensors.get("bf16"), t("float32", [3], [1, -3, 3.140625]), "bf16");
    assertSameTensor(tensors.get("i64"), t("int32", [3], [-1, 2147483647, -2147483648]), "i64");
    assertSameTensor(tensors.get("i16"), t("int32", [2], [-32768, 32767]), "i16");
    assertSameTensor(tensors.get("u8"), t("int32", [2], [255, 0]), "u8");
    assertSameTensor(tensors.get("bool"), t("bool", [2, 2], [0, 1, 1, 1]), "bool");
    assertSameTensor(tensors.get("f64"), t("float64", [], [1.5]), "f64");
    assertSameTensor(tensors.get("i32"), t("int32", [1], [-559038737]), "i32");
    assertSameTensor(tensors.get("none"), t("float32", [0, 4], []), "none");
  }
});

test("decoding: header padding, extra entry fields and zero-length tensors at boundaries are accepted", () => {
  const header =
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":true},' +
    '"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},' +
    '"b":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}}     ';
  const { tensors } = decodeSafetensors(rawFile(header, [0, 0, 0x80, 0x3f, 7]));
  assertSameTensor(tensors.get("a"), t("float32", [1], [1]), "a");
  assertSameTensor(tensors.get("z"), t("float32", [0], []), "z");
  assertSameTensor(tensors.get("b"), t("int32", [1], [7]), "b");
});

// ---------------------------------------------------------------------------------------------------------
// Hostile and malformed files

test("hostile: too short, zero, past-the-end and oversized header lengths fail instantly", () => {
  rejects(new Uint8Array(0), /0 bytes long; expected at least 8/);
  rejects(new Uint8Array(7), /7 bytes long; expected at least 8/);
  rejects(rawFile("", []), /header length is 0/);
  rejects(rawFile("{}", [], 100n), /header length is 100 bytes, past the end of the file \(10 bytes\)/);
  rejects(rawFile("{}", [], 2n ** 40n), /header length is 1099511627776 bytes, past the end/);
  rejects(rawFile("{}", [], 2n ** 64n - 1n), /header length is 18446744073709551615 bytes/);

  // Over the cap in a file that really is that long: decided from the first 8 bytes (all it is given).
  const prefix = rawFile("{}", [], 2n ** 40n).subarray(0, 8);
  assert.throws(
    () => readSafetensorsHeaderLength(prefix, 2 ** 50),
    (err: unknown) =>
      err instanceof SafetensorsError &&
      /^decodeSafetensors: the header length is 1099511627776 bytes; expected at most 104857600/.test(err.message),
  );
  assert.equal(SAFETENSORS_MAX_HEADER_BYTES, 100 * 1024 * 1024);
  assert.equal(readSafetensorsHeaderLength(rawFile("{}"), 10), 2);
});

test("hostile: header not UTF-8, not JSON, or not an object", () => {
  rejects(rawFile(Uint8Array.from([0x7b, 0xff, 0x7d])), /not valid UTF-8/);
  rejects(rawFile(Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), /not valid JSON/); // a BOM
  rejects(rawFile("{abc"), /not valid JSON.*"\{abc"/);
  rejects(rawFile("{} trailing"), /not valid JSON/);
  rejects(rawFile("[]"), /header is array \[\]; expected a JSON object/);
  rejects(rawFile("null"), /header is null; expected a JSON object/);
  rejects(rawFile("3"), /header is number 3/);
  rejects(rawFile('"x"'), /header is string "x"/);
});

test("hostile: entries that are not objects, or lack or mistype dtype, shape, data_offsets", () => {
  const entry = (e: unknown, data: number[] = [0, 0, 0, 0]) => rawFile({ x: e }, data);
  rejects(entry(3), /tensor "x" is number 3; expected an object/);
  rejects(entry([1]), /tensor "x" is array \[1\]/);
  rejects(entry({ shape: [1], data_offsets: [0, 4] }), /tensor "x" has no "dtype"/);
  rejects(entry({ dtype: "F32", data_offsets: [0, 4] }), /tensor "x" has no "shape"/);
  rejects(entry({ dtype: "F32", shape: [1] }), /tensor "x" has no "data_offsets"/);
  rejects(entry({ dtype: 3, shape: [1], data_offsets: [0, 4] }), /dtype number 3; expected a string/);
  rejects(entry({ dtype: "F32", shape: "1", data_offsets: [0, 4] }), /shape string "1"; expected an array/);
  rejects(entry({ dtype: "F32", shape: [-1], data_offsets: [0, 4] }), /shape array \[-1\]; expected an array of non-negative integers/);
  rejects(entry({ dtype: "F32", shape: [1.5], data_offsets: [0, 4] }), /shape array \[1.5\]/);
  rejects(entry({ dtype: "F32", shape: ["1"], data_offsets: [0, 4] }), /shape array \["1"\]/);
  rejects(entry({ dtype: "F32", shape: [null], data_offsets: [0, 4] }), /shape array \[null\]/);
  rejects(rawFile('{"x":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /shape/);
  rejects(entry({ dtype: "F32", shape: [1], data_offsets: [0] }), /data_offsets array \[0\]; expected \[begin, end\]/);
  rejects(entry({ dtype: "F32", shape: [1], data_offsets: [0, 4, 8] }), /data_offsets array \[0,4,8\]/);
  rejects(entry({ dtype: "F32", shape: [1], data_offsets: [-4, 0] }), /data_offsets array \[-4,0\]/);
  rejects(entry({ dtype: "F32", shape: [1], data_offsets: [0.5, 4] }), /data_offsets array \[0.5,4\]/);
  rejects(entry({ dtype: "F32", shape: [1], data_offsets: ["0", "4"] }), /data_offsets array \["0","4"\]/);
  rejects(entry({ dtype: "F32", shape: [1], data_offsets: { begin: 0 } }), /data_offsets object/);
  rejects(entry({ dtype: "F32", shape: [1], data_offsets: [4, 0] }), /data_offsets \[4, 0\]; expected begin <= end/);
});

test("hostile: unknown dtype, wrong byte length, offsets out of range, overflowing shape", () => {
  const entry = (e: unknown, data: number[] = [0, 0, 0, 0]) => rawFile({ x: e }, data);
  rejects(entry({ dtype: "F8_E4M3", shape: [4], data_offsets: [0, 4] }), /unknown dtype string "F8_E4M3"; expected one of F64, F32, F16, BF16/);
  rejects(entry({ dtype: "toString", shape: [4], data_offsets: [0, 4] }), /unknown dtype/);
  rejects(entry({ dtype: "f32", shape: [1], data_offsets: [0, 4] }), /unknown dtype/);
  rejects(entry({ dtype: "F32", shape: [2], data_offsets: [0, 4] }), /spans 4 bytes; expected 8 \(2 elements of F32/);
  rejects(entry({ dtype: "F16", shape: [], data_offsets: [0, 4] }), /spans 4 bytes; expected 2/);
  rejects(entry({ dtype: "F32", shape: [2], data_offsets: [0, 8] }), /past the end of the data section; expected end <= 4/);
  rejects(entry({ dtype: "F32", shape: [1], data_offsets: [2 ** 53 - 5, 2 ** 53 - 1] }), /past the end/);
  rejects(entry({ dtype: "F32", shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 4] }), /overflows; expected at most 2\^53 - 1/);
  rejects(entry({ dtype: "F32", shape: [2 ** 40, 2 ** 40, 0], data_offsets: [0, 0] }, []), /overflows/);
  // A huge but representable shape is caught by the byte-length check, before any allocation.
  rejects(entry({ dtype: "F64", shape: [2 ** 20, 2 ** 20], data_offsets: [0, 4] }), /spans 4 bytes; expected 8796093022208/);
});

test("hostile: overlapping tensors, holes and trailing bytes in the data section", () => {
  const f32 = (begin: number, end: number) => ({ dtype: "F32", shape: [(end - begin) / 4], data_offsets: [begin, end] });
  rejects(rawFile({ a: f32(0, 8), b: f32(4, 12) }, new Array(12).fill(0)), /"b" starts at data byte 4 but "a" ends at 8: tensors overlap/);
  rejects(rawFile({ a: f32(0, 8), b: f32(0, 8) }, new Array(8).fill(0)), /overlap/);
  rejects(rawFile({ a: f32(0, 8), z: f32(4, 4) }, new Array(8).fill(0)), /"z" starts at data byte 4 but "a" ends at 8/);
  rejects(rawFile({ a: f32(0, 4), b: f32(8, 12) }, new Array(12).fill(0)), /data bytes 4\.\.8 belong to no tensor/);
  rejects(rawFile({ a: f32(4, 8) }, new Array(8).fill(0)), /data bytes 0\.\.4 belong to no tensor/);
  rejects(rawFile({ a: f32(0, 4) }, new Array(8).fill(0)), /data section is 8 bytes but the tensors cover only 4/);
  rejects(rawFile({}, [1]), /data section is 1 bytes but the tensors cover only 0/);
});

test("hostile: __metadata__ that is not an object of strings", () => {
  rejects(rawFile({ __metadata__: "x" }), /"__metadata__" is string "x"; expected an object of strings/);
  rejects(rawFile({ __metadata__: null }), /"__metadata__" is null/);
  rejects(rawFile({ __metadata__: ["a"] }), /"__metadata__" is array/);
  rejects(rawFile({ __metadata__: { k: 1 } }), /"__metadata__" key "k" is number 1; expected a string/);
  rejects(rawFile({ __metadata__: { k: { nested: "x" } } }), /key "k" is object/);
});

test("hostile: an I64 value that does not fit in int32", () => {
  const header = { x: { dtype: "I64", shape: [2], data_offsets: [0, 16] } };
  rejects(rawFile(header, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0]), /element 1 is 2147483648; expected a value in int32 range/);
  rejects(rawFile(header, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), /element 1 is 4294967296/);
  rejects(rawFile(header, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff]), /element 1 is -2147483649/);
});

/** Like rejects(), for inputs too large to time: only the error matters. */
function refuses(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => decodeSafetensors(bytes),
    (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `expected a SafetensorsError, got ${String(err)}`);
      assert.match(err.message, /^decodeSafetensors: /);
      assert.match(err.message, /expected/);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

test("hostile: values nested a million deep give a SafetensorsError, not a RangeError from the message", () => {
  const deep = `${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}`;
  refuses(rawFile(`{"x":${deep}}`), /tensor "x" is array \[\[\[\[\.\.\.\]\]\]\]; expected an object/);
  refuses(rawFile(`{"x":{"dtype":"F32","shape":${deep},"data_offsets":[0,0]}}`), /tensor "x" has shape array \[\[\[/);
  refuses(rawFile(`{"x":{"dtype":${deep},"shape":[0],"data_offsets":[0,0]}}`), /dtype array \[\[/);
  refuses(rawFile(`{"__metadata__":{"k":${deep}}}`), /"__metadata__" key "k" is array \[\[/);
  const wide = `{"x":{"dtype":"F32","shape":[${new Array(100_000).fill("[]").join(",")}],"data_offsets":[0,0]}}`;
  refuses(rawFile(wide), /shape array \[\[\],\[\],.*\.\.\.; expected/);
});

test("hostile: a tensor named __proto__ loads as an ordinary tensor of that name", () => {
  const proto = t("float32", [2], [1, 2]);
  const other = t("int32", [1], [7]);
  const bytes = encodeSafetensors(new Map([["__proto__", proto], ["w", other]]));
  const raw = decodeSafetensors(bytes).tensors;
  assertSameTensor(raw.get("__proto__"), proto, "__proto__ (raw)");
  const { tensors } = deserializeSafetensors(bytes);
  assert.deepEqual(Object.keys(tensors), ["__proto__", "w"]);
  assert.ok(Object.hasOwn(tensors, "__proto__"));
  assert.deepEqual(tensors["__proto__"].arraySync(), [1, 2]);
  assert.equal(Object.getPrototypeOf(tensors), null, "no prototype for a name to replace");
  assert.equal("toString" in tensors, false, "names like toString are not already present");
  // and through a file, and back out through a record that has the name as its own key
  withTempDir((dir) => {
    const path = join(dir, "proto.safetensors");
    writeFileSync(path, serializeSafetensors(Object.fromEntries([["__proto__", tensor([3, 4])]])));
    const loaded = loadSafetensors(path).tensors;
    assert.deepEqual(Object.keys(loaded), ["__proto__"]);
    assert.deepEqual(loaded["__proto__"].arraySync(), [3, 4]);
  });
});

test("hostile: a name (or key) given twice in the header is refused, naming it", () => {
  const f32 = (begin: number) => `{"dtype":"F32","shape":[1],"data_offsets":[${begin},${begin + 4}]}`;
  const data = new Array(8).fill(0);
  refuses(rawFile(`{"a":${f32(0)},"b":${f32(4)},"a":${f32(4)}}`, data), /names tensor "a" twice; expected each name once/);
  // the same name spelled with an escape is the same name
  refuses(rawFile(`{"ab":${f32(0)},"\\u0061b":${f32(4)}}`, data), /names tensor "ab" twice/);
  refuses(rawFile(`{"__metadata__":{},"__metadata__":{}}`), /names tensor "__metadata__" twice/);
  refuses(rawFile(`{"__metadata__":{"k":"1","k":"2"}}`), /"__metadata__" has key "k" twice; expected each key once/);
  refuses(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"data_offsets":[4,8]}}`, data), /tensor "a" has key "data_offsets" twice/);
  // names made of JSON's own punctuation are read as names, not as structure
  const odd = { 'a"b': t("float32", [1], [1]), "c\\d": t("float32", [1], [2]), "{[,:]}": t("float32", [1], [3]), 'e\\"': t("float32", [1], [4]) };
  const back = decodeSafetensors(encodeSafetensors(odd, { 'm"': "{,}" }));
  assert.deepEqual([...back.tensors.keys()], Object.keys(odd).sort());
  assert.deepEqual(back.metadata, { 'm"': "{,}" });
  // deeper objects (in an extra entry field, which readers ignore) are not looked into
  const extra = decodeSafetensors(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":{"k":1,"k":2}}}`, [0, 0, 0, 0]));
  assert.deepEqual([...extra.tensors.keys()], ["a"]);
});

test(`hostile: more than SAFETENSORS_MAX_TENSORS (${SAFETENSORS_MAX_TENSORS}) tensors are refused before the header is parsed`, () => {
  assert.equal(SAFETENSORS_MAX_TENSORS, 2 ** 18);
  const entry = (i: number) => `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`;
  const many = (n: number, meta = false) => `{${meta ? '"__metadata__":{},' : ""}${Array.from({ length: n }, (_, i) => entry(i)).join(",")}}`;
  refuses(rawFile(many(SAFETENSORS_MAX_TENSORS + 1)), /more than 262144 tensors; expected at most 262144/);
  refuses(rawFile(many(SAFETENSORS_MAX_TENSORS + 1, true)), /more than 262144 tensors; expected at most 262144/);
  refuses(rawFile(`${many(3 * SAFETENSORS_MAX_TENSORS).slice(0, -1)},"bad`), /more than 262144 tensors/);
  const empty = { dtype: "float32" as const, shape: [0], values: new Float32Array(0) };
  encodeRejects(
    () => encodeSafetensors(new Map(Array.from({ length: SAFETENSORS_MAX_TENSORS + 1 }, (_, i) => [`t${i}`, empty]))),
    /262145 tensors; expected at most 262144 in one file/,
  );
});

test("encoding rejects invalid input with a SafetensorsError", () => {
  const ok = t("float32", [1], [1]);
  encodeRejects(() => encodeSafetensors({ x: t("float32", [2, 2], [1, 2, 3]) }), /"x" has 3 elements of data for shape \[2, 2\]; expected 4/);
  encodeRejects(() => encodeSafetensors({ "": ok }), /name is empty/);
  encodeRejects(() => encodeSafetensors({ __metadata__: ok }), /named "__metadata__"/);
  encodeRejects(() => encodeSafetensors({ ["\ud800"]: ok }), /unpaired UTF-16 surrogate/);
  encodeRejects(() => encodeSafetensors({ x: ok }, { k: 3 as unknown as string }), /metadata "k" is number 3; expected a string/);
  encodeRejects(() => encodeSafetensors({ x: ok }, null as unknown as Record<string, string>), /metadata is null/);
  encodeRejects(() => encodeSafetensors({ x: { dtype: "float32", shape: [1], values: new Float64Array(1) } }), /holds a Float64Array; expected a Float32Array/);
  encodeRejects(() => encodeSafetensors({ x: { dtype: "int64" as "int32", shape: [1], values: new Int32Array(1) } }), /dtype string "int64"/);
  encodeRejects(() => encodeSafetensors({ x: t("float32", [-1], []) }), /non-negative integer dimensions/);
  encodeRejects(() => encodeSafetensors({ x: { dtype: "float32", shape: [2 ** 26, 2 ** 26], values: new Float32Array(0) } }), /expected 4503599627370496/);
  encodeRejects(() => encodeSafetensors(new Map([[3 as unknown as string, ok]])), /name is number 3; expected a string/);
});

// ---------------------------------------------------------------------------------------------------------
// Files

test("files: write then read, overwrite, missing file", () => {
  withTempDir((dir) => {
    const path = join(dir, "model.safetensors");
    const tensors = sampleTensors();
    writeSafetensorsFile(path, tensors, { format: "pt" });
    assert.deepEqual(readFileSync(path), Buffer.from(encodeSafetensors(tensors, { format: "pt" })));
    const back = readSafetensorsFile(path);
    for (const [name, tensor] of Object.entries(tensors)) assertSameTensor(back.tensors.get(name), tensor, name);
    assert.deepEqual(back.metadata, { format: "pt" });

    writeSafetensorsFile(path, new Map([["only", t("int32", [1], [5])]]));
    assert.deepEqual([...readSafetensorsFile(path).tensors.keys()], ["only"]);
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);

    const missing = join(dir, "nope.safetensors");
    assert.throws(() => readSafetensorsFile(missing), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /no such file/);
      assert.ok(err.message.includes(missing));
      return true;
    });
    assert.throws(() => readSafetensorsFile(dir), /is not a regular file/);
  });
});

test("files: the atomic writer leaves the old file intact and no temporary files when it fails", () => {
  withTempDir((dir) => {
    const path = join(dir, "w.safetensors");
    writeSafetensorsFile(path, { x: t("float32", [2], [1, 2]) });
    const before = readFileSync(path);

    // Encoding throws: nothing on disk changes.
    assert.throws(() => writeSafetensorsFile(path, { x: t("float32", [3], [1, 2]) }), SafetensorsError);
    assert.deepEqual(readFileSync(path), before);
    assert.deepEqual(readdirSync(dir), ["w.safetensors"]);

    // The rename fails (the target is a non-empty directory): the temporary file is removed.
    const blocked = join(dir, "blocked");
    mkdirSync(blocked);
    writeFileSync(join(blocked, "keep"), "x");
    assert.throws(() => writeSafetensorsFile(blocked, { x: t("float32", [2], [1, 2]) }));
    assert.deepEqual(readdirSync(dir).sort(), ["blocked", "w.safetensors"]);
    assert.deepEqual(readdirSync(blocked), ["keep"]);

    // The directory does not exist: nothing is created.
    assert.throws(() => writeSafetensorsFile(join(dir, "no", "such", "x.safetensors"), {}));
    assert.deepEqual(readdirSync(dir).sort(), ["blocked", "w.safetensors"]);
  });
});

test("files: a save removes the temporary files that killed writers of the same target left, and no others", () => {
  withTempDir((dir) => {
    const path = join(dir, "run.safetensors");
    const exited = spawnSync(process.execPath, ["-e", ""]); // a process id that no longer runs
    assert.equal(exited.status, 0);
    const dead = exited.pid!;
    const tmp = (pid: number, target = "run.safetensors", tail = "0123456789abcdef") => `${target}.tmp-${pid}-${tail}`;
    const stale = [tmp(dead), tmp(dead, undefined, "fedcba9876543210")];
    const kept = [
      tmp(process.ppid), // a live process: another save in progress
      tmp(process.pid), // this process
      tmp(dead, "other.safetensors"), // another target
      tmp(dead, undefined, "notes"), // not a name the writer makes
      tmp(0),
      "run.safetensors.bak",
    ];
    for (const name of [...stale, ...kept]) writeFileSync(join(dir, name), new Uint8Array(64)); // as a killed save leaves them
    writeSafetensorsFile(path, { x: t("float32", [1], [1]) });
    assert.deepEqual(readdirSync(dir).sort(), [...kept, "run.safetensors"].sort());
    assert.deepEqual([...readSafetensorsFile(path).tensors.keys()], ["x"]);
  });
});

test("files: hostile files (some sparse, a terabyte long) are rejected from the header length, with the path in the message", () => {
  withTempDir((dir) => {
    const check = (name: string, bytes: Uint8Array | null, pattern: RegExp, sparseSize?: number) => {
      const path = join(dir, name);
      if (bytes) writeFileSync(path, bytes);
      if (sparseSize !== undefined) {
        const fd = openSync(path, bytes ? "r+" : "w");
        ftruncateSync(fd, sparseSize);
        closeSync(fd);
      }
      assert.throws(() => readSafetensorsFile(path), (err: unknown) => {
        assert.ok(err instanceof SafetensorsError, String(err));
        assert.match(err.message, /^decodeSafetensors: /);
        assert.match(err.message, pattern);
        assert.ok(err.message.includes(path));
        return true;
      });
    };
    check("short", Uint8Array.from([1, 2, 3]), /3 bytes long; expected at least 8/);
    check("huge-claim", rawFile("{}", [], 2n ** 40n), /header length is 1099511627776 bytes, past the end of the file/);
    // A 200 MiB (sparse) file whose header claims 150 MiB: refused by the cap without reading it.
    check("over-cap", rawFile("{}", [], 150n * 1024n * 1024n).subarray(0, 8), /expected at most 104857600/, 200 * 1024 * 1024);
    check("bad-json", rawFile("{nope}"), /not valid JSON/);
    check("hole", rawFile({ a: { dtype: "U8", shape: [1], data_offsets: [1, 2] } }, [0, 0]), /belong to no tensor/);
    check("i64", rawFile({ a: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, [0, 0, 0, 0, 1, 0, 0, 0]), /int32 range/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Interoperability with PyTorch

const PY_READER = String.raw`
import json, math, struct, sys, torch
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert (8 + n) % 8 == 0, "data section not 8-aligned"
text = raw[8:8 + n].decode("utf-8")
assert text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))), "padding is not spaces"
header = json.loads(text)
meta = header.pop("__metadata__", {})
types = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32, "BOOL": torch.bool}
data = raw[8 + n:]
cursor = 0
out = {}
for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
    begin, end = info["data_offsets"]
    assert begin == cursor, "not contiguous"
    cursor = end
    dtype = types[info["dtype"]]
    if end > begin:
        tensor = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype)
    else:
        tensor = torch.empty(0, dtype=dtype)
    tensor = tensor.reshape(info["shape"])
    values = tensor.flatten().tolist()
    if tensor.is_floating_point():
        values = [v if math.isfinite(v) else repr(v) for v in values]
    out[name] = {"dtype": str(tensor.dtype), "shape": list(tensor.shape), "values": values}
assert cursor == len(data), "trailing bytes"
print(json.dumps({"metadata": meta, "tensors": out}))
`;

const PY_WRITER = String.raw`
import json, struct, sys, torch
patterns = torch.arange(65536, dtype=torch.int32).to(torch.int16)
f16 = patterns.view(torch.float16)
bf16 = patterns.view(torch.bfloat16)
tensors = {
    "i8": torch.tensor([-128, 127, -1], dtype=torch.int8),
    "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
    "f16": f16,
    "f16_as_f32": f16.float(),
    "bf16": bf16,
    "bf16_as_f32": bf16.float(),
    "i64": torch.tensor([[-2**31, 2**31 - 1], [0, -1], [12345, -54321]], dtype=torch.int64),
    "i32": torch.tensor([-2**31, 2**31 - 1], dtype=torch.int32),
    "i16": torch.tensor([-32768, 32767, -1], dtype=torch.int16),
    "bool": torch.tensor([True, False, True]),
    "f64": torch.tensor([[1 / 3, -2.5]], dtype=torch.float64),
    "f32_0d": torch.tensor(1.25, dtype=torch.float32),
    "empty_i64": torch.zeros(0, 2, dtype=torch.int64),
}
codes = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
         torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
         torch.bool: "BOOL"}
header = {"__metadata__": {"format": "pt", "from": "python"}}
blobs = []
offset = 0
for name, tensor in tensors.items():  # insertion order: odd sizes first, so later offsets are unaligned
    t = tensor.contiguous()
    blob = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
    header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
    blobs.append(blob)
    offset += len(blob)
text = json.dumps(header).encode("utf-8")  # deliberately unpadded
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
`;

test("interop: a file written here is read by Python (torch.frombuffer) to the same values", (ctx) => {
  if (!torchAvailable) {
    ctx.skip(`${PYTHON} cannot import torch`);
    return;
  }
  withTempDir((dir) => {
    const path = join(dir, "from-ts.safetensors");
    const tensors = sampleTensors();
    const random = new Float32Array(257);
    for (let i = 0; i < random.length; i++) random[i] = (Math.random() - 0.5) * 10 ** ((i % 20) - 10);
    tensors["random"] = { dtype: "float32", shape: [257], values: random };
    const metadata = { format: "pt", note: "héllo 🙂" };
    writeSafetensorsFile(path, tensors, metadata);

    const result = JSON.parse(runPython(PY_READER, [path])) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; values: (number | boolean | string)[] }>;
    };
    assert.deepEqual(result.metadata, metadata);
    assert.deepEqual(Object.keys(result.tensors).sort(), Object.keys(tensors).sort());
    const torchName = { float32: "torch.float32", float64: "torch.float64", int32: "torch.int32", bool: "torch.bool" };
    const fromPython = (v: number | boolean | string): number =>
      typeof v === "boolean" ? (v ? 1 : 0) : typeof v === "string" ? ({ nan: NaN, inf: Infinity, "-inf": -Infinity } as Record<string, number>)[v]! : v;
    for (const [name, tensor] of Object.entries(tensors)) {
      const py = result.tensors[name]!;
      assert.equal(py.dtype, torchName[tensor.dtype], name);
      assert.deepEqual(py.shape, [...tensor.shape], name);
      assert.deepEqual(py.values.map(fromPython), [...tensor.values], name);
    }
  });
});

test("interop: a file written by Python is read here; every F16 and BF16 bit pattern matches torch's conversion", (ctx) => {
  if (!torchAvailable) {
    ctx.skip(`${PYTHON} cannot import torch`);
    return;
  }
  withTempDir((dir) => {
    const path = join(dir, "from-py.safetensors");
    runPython(PY_WRITER, [path]);
    const { tensors, metadata } = readSafetensorsFile(path);
    assert.deepEqual(metadata, { format: "pt", from: "python" });
    assert.deepEqual(decodeSafetensors(readFileSync(path)).tensors, tensors);

    for (const [half, reference] of [["f16", "f16_as_f32"], ["bf16", "bf16_as_f32"]] as const) {
      const got = tensors.get(half)!;
      const want = tensors.get(reference)!;
      assert.equal(got.dtype, "float32");
      assert.deepEqual(got.shape, [65536]);
      let mismatches = 0;
      for (let i = 0; i < 65536; i++) {
        const a = got.values[i]!;
        const b = want.values[i]!;
        if (!(Number.isNaN(a) ? Number.isNaN(b) : Object.is(a, b))) mismatches++;
      }
      assert.equal(mismatches, 0, `${half}: ${mismatches} of 65536 bit patterns differ from torch`);
    }
    assertSameTensor(tensors.get("i8"), t("int32", [3], [-128, 127, -1]), "i8");
    assertSameTensor(tensors.get("u8"), t("int32", [3], [0, 255, 7]), "u8");
    assertSameTensor(tensors.get("i64"), t("int32", [3, 2], [-(2 ** 31), 2 ** 31 - 1, 0, -1, 12345, -54321]), "i64");
    assertSameTensor(tensors.get("i32"), t("int32", [2], [-(2 ** 31), 2 ** 31 - 1]), "i32");
    assertSameTensor(tensors.get("i16"), t("int32", [3], [-32768, 32767, -1]), "i16");
    assertSameTensor(tensors.get("bool"), t("bool", [3], [1, 0, 1]), "bool");
    assertSameTensor(tensors.get("f64"), t("float64", [1, 2], [1 / 3, -2.5]), "f64");
    assertSameTensor(tensors.get("f32_0d"), t("float32", [], [1.25]), "f32_0d");
    assertSameTensor(tensors.get("empty_i64"), t("int32", [0, 2], []), "empty_i64");
  });
});
