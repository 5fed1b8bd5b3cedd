/**
 * Where a tensor's values live: host tensors (ref, wasm) hold a typed array; a device backend's
 * tensor holds a DeviceBuffer and reads back on demand. The device here is a stand-in (a buffer
 * that hands out a copy of its values asynchronously, like a mapped GPU buffer), so the tensor
 * layer's contract is tested without a GPU.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ArgumentError, type DeviceBuffer, Tensor, tensor } from "../src/index.js";

function fakeDevice(values: number[], sync: boolean): DeviceBuffer & { reads: number } {
  const stored = Float32Array.from(values);
  const buf = {
    backend: "fake-gpu",
    length: stored.length,
    reads: 0,
    async read() { buf.reads++; await new Promise((r) => setTimeout(r, 1)); return stored.slice(); },
    ...(sync ? { readSync() { buf.reads++; return stored.slice(); } } : {}),
  };
  return buf;
}

test("host tensors: await t.data() and t.array() give copies of the values", async () => {
  const t = tensor([[1, 2], [3, 4]]);
  const d = await t.data();
  assert.deepEqual([...d], [1, 2, 3, 4]);
  d[0] = 99;
  assert.equal(t.values[0], 1, "data() returns a copy");
  assert.deepEqual(await t.array(), [[1, 2], [3, 4]]);
  assert.equal(t.isOnDevice, false);
  assert.equal(t.device, null);
});

test("a device tensor: shape and size without reading; values ask for await t.data(); then they are on the host", async () => {
  const buf = fakeDevice([1, 2, 3, 4, 5, 6], false);
  const t = new Tensor(buf, [2, 3], "float32");
  assert.equal(t.isOnDevice, true);
  assert.equal(t.size, 6);
  assert.equal(t.ndim, 2);
  assert.equal(buf.reads, 0, "size and shape come without a read");
  assert.throws(() => t.values, (e: unknown) => e instanceof ArgumentError && /"fake-gpu" backend.*await t\.data\(\)/.test((e as Error).message));
  assert.match(String(t), /6 values on the "fake-gpu" backend: await t\.data\(\) to read/);
  assert.deepEqual(await t.array(), [[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual([...(await t.data())], [1, 2, 3, 4, 5, 6]);
  assert.equal(buf.reads, 1, "read back once, then kept on the host");
  assert.equal(t.values[5], 6);
});

test("a device that can read synchronously serves t.values directly", () => {
  const buf = fakeDevice([7, 8], true);
  const t = new Tensor(buf, [2], "float32");
  assert.deepEqual([...t.values], [7, 8]);
  assert.deepEqual(t.arraySync(), [7, 8]);
  assert.equal(buf.reads, 1);
});

test("a device tensor needs its dtype and the right number of elements", () => {
  assert.throws(() => new Tensor(fakeDevice([1, 2], false), [2]), /needs its dtype/);
  assert.throws(() => new Tensor(fakeDevice([1, 2], false), [3], "float32"), /values has 2 elements but shape \[3\] needs 3/);
});
