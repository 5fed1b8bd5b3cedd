/**
 * The door (src/kernels/door.ts): every backend the registry hands out refuses operand arrays that
 * do not hold what the call reaches (its shape, strides and offset; lse's [B, H, L]; the mask's
 * strides), a detached array named as such, with an error naming the function, the backend, the
 * operand, what its array holds and what the call reaches; valid calls give the backend's own bits.
 * The wasm backend names the function and the operand when its memory cannot grow while staging.
 * The expected numbers below are worked out by hand in the comments.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AttentionParams, MatmulParams, RowStrides } from "../src/kernels/backend.js";
import { attentionKernels, kernelMatmul } from "../src/kernels/dispatch.js";
import { findBackend, getBackendName, refBackend, registerBackend, setBackend, wasmAvailable, wasmBackend } from "../src/kernels/index.js";
import { resetRuntime } from "../src/kernels/wasm/runtime.js";
import { ArgumentError, ShapeError } from "../src/tensor/errors.js";
import { randArray } from "./attention-naive.js";
import { conformanceBackends } from "./backends.js";
import { rng } from "./kernel-inputs.js";

const hasWasm = wasmAvailable();

function detached(n: number): Float32Array {
  const x = new Float32Array(n);
  structuredClone(x.buffer, { transfer: [x.buffer] });
  return x;
}

const f32 = (n: number, seed = 1): Float32Array => randArray(Float32Array, n, rng(seed)) as Float32Array;

/** fn() throws `cls` with exactly this message. */
function refuses(fn: () => void, cls: typeof ShapeError | typeof ArgumentError, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `${String(e)}`);
    assert.equal((e as Error).message, message);
    return true;
  });
}

// heads first: B = 2, H = 2, Hkv = 1, L = 5, S = 7, E = 8, Ev = 4
// q 2·2·5·8 = 160, k 2·1·7·8 = 112, v 2·1·7·4 = 56, out 2·2·5·4 = 80, lse 2·2·5 = 20
const hf: AttentionParams = { B: 2, H: 2, Hkv: 1, L: 5, S: 7, E: 8, Ev: 4, scale: 0.35, causal: "none", mask: null, dropoutP: 0, dropoutSeed: 0 };
const HF_ROWS = { q: 160, k: 112, v: 56, out: 80, lse: 20 };

// interleaved, self-attention's layout: B = 2, H = Hkv = 2, L = S = 5, E = Ev = 8; q, k, v the thirds
// of one [B, L, 3·H·E] = [2, 5, 48] array (480 floats): row (b, h, t) at offset + 240 b + 8 h + 48 t,
// offsets 0, 16, 32; the last element v reaches is 32 + 240 + 8 + 4·48 + 8 = 480. out [B, L, H·E] =
// [2, 5, 16]: row (b, h, t) at 80 b + 8 h + 16 t, reaching 80 + 8 + 64 + 8 = 160.
const third = (offset: number): RowStrides => ({ offset, sb: 240, sh: 8, sl: 48 });
const OUT: RowStrides = { offset: 0, sb: 80, sh: 8, sl: 16 };
const il: AttentionParams = {
  B: 2, H: 2, Hkv: 2, L: 5, S: 5, E: 8, Ev: 8, scale: 0.35, causal: "top-left", mask: null, dropoutP: 0, dropoutSeed: 0,
  layout: { q: third(0), k: third(16), v: third(32), out: OUT },
};
const ROW = "row (b, h, t) starts at offset + b·sb + h·sh + t·sl";

for (const name of conformanceBackends()) describe(`the door refuses what a call cannot read [${name}]`, () => {
  const be = findBackend(name)!;
  const on = `(backend "${name}")`;
  const fwd = `attentionForward ${on}`, bwd = `attentionBackward ${on}`;

  test("short q, k, v, out, lse, lseLo, heads first (forward)", () => {
    const a = (n: number): Float32Array => f32(n);
    const call = (x: Partial<Record<"q" | "k" | "v" | "out" | "lse" | "lseLo", number>>): void => {
      const n = { ...HF_ROWS, lseLo: 20, ...x };
      be.attentionForward(hf, a(n.q), a(n.k), a(n.v), a(n.out), new Float64Array(n.lse), new Float64Array(n.lseLo));
    };
    refuses(() => call({ q: 159 }), ShapeError, `${fwd}: q holds 159 elements, but the call reaches 160: q [B, H, L, E] = [2, 2, 5, 8], heads first, is 160 elements`);
    refuses(() => call({ k: 100 }), ShapeError, `${fwd}: k holds 100 elements, but the call reaches 112: k [B, Hkv, S, E] = [2, 1, 7, 8], heads first, is 112 elements`);
    refuses(() => call({ v: 55 }), ShapeError, `${fwd}: v holds 55 elements, but the call reaches 56: v [B, Hkv, S, Ev] = [2, 1, 7, 4], heads first, is 56 elements`);
    refuses(() => call({ out: 40 }), ShapeError, `${fwd}: out holds 40 elements, but the call reaches 80: out [B, H, L, Ev] = [2, 2, 5, 4], heads first, is 80 elements`);
    refuses(() => call({ lse: 19 }), ShapeError, `${fwd}: lse holds 19 elements, but the call reaches 20: [B, H, L] = [2, 2, 5] is 20 elements`);
    refuses(() => call({ lseLo: 10 }), ShapeError, `${fwd}: lseLo holds 10 elements, but the call reaches 20: [B, H, L] = [2, 2, 5] is 20 elements`);
    call({}); // the same call with every array whole runs
  });

  test("short dout, dq, dk, dv and a detached lse (backward, heads first)", () => {
    const a = (n: number): Float32Array => f32(n, 2);
    const lse = new Float64Array(20);
    const out = a(80);
    be.attentionForward(hf, a(160), a(112), a(56), out, lse);
    const call = (x: Partial<Record<"dout" | "dq" | "dk" | "dv", number>>, l: Float32Array | Float64Array = lse): void => {
      const n = { dout: 80, dq: 160, dk: 112, dv: 56, ...x };
      be.attentionBackward(hf, a(160), a(112), a(56), out, a(n.dout), l, a(n.dq), a(n.dk), a(n.dv));
    };
    refuses(() => call({ dout: 79 }), ShapeError, `${bwd}: dout holds 79 elements, but the call reaches 80: dout [B, H, L, Ev] = [2, 2, 5, 4], heads first, is 80 elements`);
    refuses(() => call({ dq: 0 }), ShapeError, `${bwd}: dq holds 0 elements, but the call reaches 160: dq [B, H, L, E] = [2, 2, 5, 8], heads first, is 160 elements`);
    refuses(() => call({ dk: 111 }), ShapeError, `${bwd}: dk holds 111 elements, but the call reaches 112: dk [B, Hkv, S, E] = [2, 1, 7, 8], heads first, is 112 elements`);
    refuses(() => call({ dv: 28 }), ShapeError, `${bwd}: dv holds 28 elements, but the call reaches 56: dv [B, Hkv, S, Ev] = [2, 1, 7, 4], heads first, is 56 elements`);
    // a detached lse read as undefined, so every P = exp(s - undefined) was NaN
    refuses(() => call({}, detached(20)), ShapeError,
      `${bwd}: lse's buffer is detached (transferred away), so it holds 0 elements, but the call reaches 20: [B, H, L] = [2, 2, 5] is 20 elements`);
    call({});
  });

  test("interleaved rows (AttentionParams.layout): the shared q, k, v array, out, and the gradients, named with their strides", () => {
    const qkv = f32(480, 3);
    const short = qkv.subarray(0, 479);
    refuses(() => be.attentionForward(il, short, short, short, f32(160), new Float64Array(20)), ShapeError,
      `${fwd}: v holds 479 elements, but the call reaches 480: v [B, Hkv, S, Ev] = [2, 2, 5, 8] at layout.v = { offset 32, sb 240, sh 8, sl 48 }: ${ROW}`);
    refuses(() => be.attentionForward(il, qkv, qkv, qkv, f32(150), new Float64Array(20)), ShapeError,
      `${fwd}: out holds 150 elements, but the call reaches 160: out [B, H, L, Ev] = [2, 2, 5, 8] at layout.out = { offset 0, sb 80, sh 8, sl 16 }: ${ROW}`);
    const dq = detached(480);
    refuses(() => be.attentionBackward(il, qkv, qkv, qkv, f32(160), f32(160), new Float64Array(20), dq, new Float32Array(480), new Float32Array(480)), ShapeError,
      `${bwd}: dq's buffer is detached (transferred away), so it holds 0 elements, but the call reaches 448: dq [B, H, L, E] = [2, 2, 5, 8] at layout.q = { offset 0, sb 240, sh 8, sl 48 }: ${ROW}`);
    refuses(() => be.attentionBackward(il, qkv, qkv, qkv, f32(160), f32(159), new Float64Array(20), ...[0, 1, 2].map(() => new Float32Array(480))), ShapeError,
      `${bwd}: dout holds 159 elements, but the call reaches 160: dout [B, H, L, Ev] = [2, 2, 5, 8] at layout.out = { offset 0, sb 80, sh 8, sl 16 }: ${ROW}`);
    // an offset before the array's start: k at offset -16
    const before: AttentionParams = { ...il, layout: { ...il.layout!, k: third(-16) } };
    refuses(() => be.attentionForward(before, qkv, qkv, qkv, f32(160), new Float64Array(20)), ShapeError,
      `${fwd}: k would be read from index -16, before its start: k [B, Hkv, S, E] = [2, 2, 5, 8] at layout.k = { offset -16, sb 240, sh 8, sl 48 }: ${ROW}`);
  });

  test("masks: a bool key-padding mask and a float [L, S] mask shorter than their strides reach", () => {
    const run = (p: AttentionParams): void => be.attentionForward(p, f32(160), f32(112), f32(56), f32(80), new Float64Array(20));
    // [B, 1, 1, S] at strides [7, 0, 0, 1]: the last element read is 7 + 6 = 13, so 14 elements
    refuses(() => run({ ...hf, mask: { kind: "bool", data: new Uint8Array(13).fill(1), strides: [7, 0, 0, 1] } }), ShapeError,
      `${fwd}: mask.data holds 13 elements, but the call reaches 14: the bool mask seen as [B, H, L, S] = [2, 2, 5, 7] at strides [7, 0, 0, 1]`);
    // [L, S] at strides [0, 0, 7, 1]: 4·7 + 6 + 1 = 35 elements
    refuses(() => run({ ...hf, mask: { kind: "float", data: new Float32Array(34), strides: [0, 0, 7, 1] } }), ShapeError,
      `${fwd}: mask.data holds 34 elements, but the call reaches 35: the float mask seen as [B, H, L, S] = [2, 2, 5, 7] at strides [0, 0, 7, 1]`);
    run({ ...hf, mask: { kind: "float", data: new Float32Array(35), strides: [0, 0, 7, 1] } });
  });

  test("matmul: short a, b, out (batched, a batch stride, b shared)", () => {
    // batch 2, m 3, n 4, k 5: a [3, 5] per product 15 apart (30), b [4, 5] stored transposed, shared (20), out 24
    const p: MatmulParams = { batch: 2, m: 3, n: 4, k: 5, aBatchStride: 15, bBatchStride: 0, transA: false, transB: true, accumulate: false };
    const mm = `matmul ${on}`;
    refuses(() => be.matmul(f32(24), f32(29), f32(20), p), ShapeError, `${mm}: a holds 29 elements, but the call reaches 30: a is [3, 5] per product, 2 products 15 apart`);
    refuses(() => be.matmul(f32(24), f32(30), f32(19), p), ShapeError, `${mm}: b holds 19 elements, but the call reaches 20: b is [4, 5], one for the whole batch`);
    refuses(() => be.matmul(detached(24), f32(30), f32(20), p), ShapeError,
      `${mm}: out's buffer is detached (transferred away), so it holds 0 elements, but the call reaches 24: [batch, m, n] = [2, 3, 4]`);
    if (be.matmulBias !== undefined) {
      refuses(() => be.matmulBias!(f32(24), f32(30), f32(20), f32(3), p), ShapeError,
        `matmulBias ${on}: bias holds 3 elements, but the call reaches 4: one per column of out, n = 4`);
    }
    be.matmul(f32(24), f32(30), f32(20), p);
  });

  test("adamw (where the backend has it): an item's g, m, v or vmax shorter than its p, or detached", { skip: be.adamw === undefined && "no adamw kernel" }, () => {
    const item = (over: Partial<Record<"g" | "m" | "v" | "vmax", Float32Array>>) => ({
      p: f32(10), g: f32(10, 2), m: new Float32Array(10), v: new Float32Array(10), vmax: null as Float32Array | null,
      b1: 0.9, b2: 0.999, c1: 0.1, c2: 0.001, sign: 1, decay: 1, stepSize: 1e-3, bc2Sqrt: 1, eps: 1e-8, ...over,
    });
    const fn = `adamw ${on}`;
    const why = "items[1].p holds 10 elements, and the update reads as many of each of its arrays";
    refuses(() => be.adamw!([item({}), item({ m: new Float32Array(9) })]), ShapeError, `${fn}: items[1].m holds 9 elements, but the call reaches 10: ${why}`);
    refuses(() => be.adamw!([item({}), item({ vmax: detached(10) })]), ShapeError,
      `${fn}: items[1].vmax's buffer is detached (transferred away), so it holds 0 elements, but the call reaches 10: ${why}`);
    assert.doesNotThrow(() => be.adamw!([item({}), item({ vmax: new Float32Array(10) })]), "matching lengths pass (the kernel's bits: fastops.test.ts)");
  });

  test("dims that are not counts, and H not a multiple of Hkv, are refused before any length is worked out from them", () => {
    const run = (p: AttentionParams): void => be.attentionForward(p, f32(160), f32(112), f32(56), f32(80), new Float64Array(20));
    refuses(() => run({ ...hf, E: NaN }), ArgumentError, `${fwd}: p.E must be a non-negative integer, got NaN`);
    refuses(() => run({ ...hf, Hkv: 3 }), ArgumentError, `${fwd}: p.Hkv must divide p.H (each kv head serves H / Hkv query heads), got H = 2, Hkv = 3`);
    refuses(() => run({ ...hf, layout: { ...il.layout!, q: { ...third(0), sl: 1.5 } } }), ArgumentError, `${fwd}: layout.q.sl must be an integer, got 1.5`);
  });

  test("a call that reads nothing takes any array (an attention call with B = 0: detached ones too)", () => {
    be.attentionForward({ ...hf, B: 0 }, detached(0), detached(0), detached(0), detached(0), new Float64Array(0));
    // m = 0: out is empty, and a and b are not read
    be.matmul(new Float32Array(0), new Float32Array(0), f32(1), { batch: 1, m: 0, n: 4, k: 5, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, accumulate: false });
  });
});

describe("valid calls through the door give the backend's own bits", () => {
  const raw = [refBackend, ...(hasWasm ? [wasmBackend] : [])];
  for (const r of raw) {
    test(`${r.name}: heads first, interleaved, masked; forward and backward; and the op layer's door (dispatch.ts)`, () => {
      const be = findBackend(r.name)!;
      const qkv = f32(480, 7), dout = f32(160, 8);
      const mask = { kind: "bool" as const, data: Uint8Array.from({ length: 10 }, (_, i) => (i % 3 === 0 ? 0 : 1)), strides: [5, 0, 0, 1] as [number, number, number, number] };
      for (const p of [il, { ...il, layout: null }, { ...il, mask }]) {
        const res = (x: typeof be): Float32Array[] => {
          const out = new Float32Array(160), lse = new Float64Array(20);
          x.attentionForward(p, qkv, qkv, qkv, out, lse);
          const [dq, dk, dv] = [0, 1, 2].map(() => new Float32Array(480));
          x.attentionBackward(p, qkv, qkv, qkv, out, dout, lse, dq, dk, dv);
          return [out, Float32Array.from(lse), dq, dk, dv];
        };
        const want = res(r), got = res(be);
        got.forEach((g, i) => assert.deepEqual(g, want[i], `${r.name} result ${i}`));
        const saved = getBackendName();
        setBackend(r.name);
        try {
          const out = new Float32Array(160), lse = new Float64Array(20);
          attentionKernels().forward(p, qkv, qkv, qkv, out, lse);
          assert.deepEqual(out, want[0]);
          const mp: MatmulParams = { batch: 1, m: 8, n: 60, k: 8, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, accumulate: false };
          const [o1, o2] = [new Float32Array(480), new Float32Array(480)];
          kernelMatmul(o1, qkv.subarray(0, 64), qkv, mp);
          r.matmul(o2, qkv.subarray(0, 64), qkv, mp);
          assert.deepEqual(o1, o2);
        } finally {
          setBackend(saved);
        }
      }
    });
  }

  test("a backend that reads heads-first rows only is checked on the caller's arrays, before the copies (which would hide a short one)", () => {
    const ref = findBackend("ref")!;
    let calls = 0;
    registerBackend("door-plain", () => ({
      name: "door-plain",
      matmul: (out, a, b, p) => ref.matmul(out, a, b, p),
      attentionForward(p, q, k, v, out, lse) { calls++; ref.attentionForward(p, q, k, v, out, lse); },
      attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv) { calls++; ref.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv); },
    }), { priority: -1 });
    const be = findBackend("door-plain")!;
    const qkv = f32(480, 4);
    refuses(() => be.attentionForward(il, qkv, qkv.subarray(0, 460), qkv, f32(160), new Float64Array(20)), ShapeError,
      `attentionForward (backend "door-plain"): k holds 460 elements, but the call reaches 464: k [B, Hkv, S, E] = [2, 2, 5, 8] at layout.k = { offset 16, sb 240, sh 8, sl 48 }: ${ROW}`);
    assert.equal(calls, 0);
  });
});

describe("wasm: memory that cannot grow while staging names the function and the operand", { skip: !hasWasm && "WebAssembly SIMD unavailable" }, () => {
  test("a memory.grow that fails (a fresh runtime: 2 MiB) while k and v of 1.5 MiB each are staged: v is named", () => {
    const rt = resetRuntime();
    const held = rt.memory.buffer.byteLength;
    assert.equal(held, 2 * 1024 * 1024);
    Object.defineProperty(rt.memory, "grow", {
      value: () => { throw new RangeError("WebAssembly.Memory.grow(): Maximum memory size exceeded"); }, configurable: true,
    });
    try {
      // L = 1, S = 49152, E = Ev = 8: k and v are 49152 · 8 · 4 = 1572864 bytes each; 64 KiB below the
      // heap, the scratch, q and k fit in 2 MiB; v does not
      const p: AttentionParams = { B: 1, H: 1, Hkv: 1, L: 1, S: 49152, E: 8, Ev: 8, scale: 1, causal: "none", mask: null, dropoutP: 0, dropoutSeed: 0 };
      const be = findBackend("wasm")!;
      assert.throws(() => be.attentionForward(p, f32(8), f32(49152 * 8), f32(49152 * 8), new Float32Array(8), new Float64Array(1)), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.equal(e.message, "attend: wasmAttentionForward: reserving wasm memory for v (1572864 bytes; the memory holds 2097152 bytes) " +
          "failed: RangeError: WebAssembly.Memory.grow(): Maximum memory size exceeded");
        assert.ok(e.cause instanceof RangeError);
        return true;
      });
    } finally {
      resetRuntime();
    }
  });

  test("a call whose staging would pass 4 GiB (the raw backend: arrays that large are 4 GiB of host memory) names the operand, and grows nothing", () => {
    const rt = resetRuntime();
    // S = 2^27 + 8, E = 8: k alone is 4 · (2^27 + 8) · 8 = 4294967552 bytes, over 4 GiB
    const S = 2 ** 27 + 8;
    const p: AttentionParams = { B: 1, H: 1, Hkv: 1, L: 1, S, E: 8, Ev: 8, scale: 1, causal: "none", mask: null, dropoutP: 0, dropoutSeed: 0 };
    assert.throws(() => wasmBackend.attentionForward(p, f32(8), new Float32Array(8), new Float32Array(8), new Float32Array(8), new Float64Array(1)), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /^attend: wasmAttentionForward: reserving wasm memory for k \(4294967552 bytes; the memory holds 2097152 bytes\) failed: RangeError: attend: wasm kernels need \d+ bytes of memory, over 4 GiB$/);
      return true;
    });
    assert.equal(rt.memory.buffer.byteLength, 2 * 1024 * 1024);
    resetRuntime();
  });
});
