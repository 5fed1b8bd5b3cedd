/**
 * Named edge cases of the wasm fused attention, through scaledDotProductAttention: the fused path
 * against the materialising textbook path ("math", which PyTorch's math backend matches) and
 * hand-worked numbers. NaN inputs must come out NaN where the textbook softmax makes them NaN, and
 * huge finite masks (-1e30, or the float32 minimum that Hugging Face models use) must share a row's
 * weight among the keys tied at its maximum, forward and backward.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  type BackendName, type SdpaImplementation, type SdpaOptions, Tensor, getBackendName, randn, scaledDotProductAttention,
  setBackend, tensor,
} from "../src/index.js";
import { wasmAvailable } from "../src/kernels/index.js";
import { relError } from "./harness.js";

const F32_MIN = -3.4028234663852886e38; // torch.finfo(torch.float32).min

interface Run { out: Tensor; dq: Tensor; dk: Tensor; dv: Tensor }

function run(q0: Tensor, k0: Tensor, v0: Tensor, opts: SdpaOptions, implementation: SdpaImplementation, dout?: Tensor): Run {
  const [q, k, v] = [q0, k0, v0].map((x) => tensor(x.values, x.shape, { dtype: "float32", requiresGrad: true }));
  const out = scaledDotProductAttention(q, k, v, { ...opts, implementation });
  out.backward(dout ?? randn(out.shape, { seed: 9 }));
  return { out, dq: q.grad!, dk: k.grad!, dv: v.grad! };
}

function assertValues(t: Tensor, want: number[], what: string): void {
  assert.equal(t.size, want.length, `${what}: size`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(t.values[i] - want[i]) <= 1e-6 * Math.max(1, Math.abs(want[i])), `${what}[${i}]: ${t.values[i]}, expected ${want[i]}`);
  }
}

/** Same NaN positions, and the other values within `tol` (relative to the largest). */
function assertSameWithNaN(a: Tensor, b: Tensor, tol: number, what: string): void {
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  for (let i = 0; i < b.size; i++) {
    assert.equal(Number.isNaN(a.values[i]), Number.isNaN(b.values[i]), `${what}[${i}]: ${a.values[i]} (fused) vs ${b.values[i]} (math)`);
  }
  const keep = (t: Tensor): Tensor => tensor(Array.from(t.values, (x) => (Number.isNaN(x) ? 0 : x)), t.shape);
  assert.ok(relError(keep(a), keep(b)) <= tol, `${what}: relative error ${relError(keep(a), keep(b))}`);
}

function nanRows(t: Tensor, rowLen: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < t.size / rowLen; r++) {
    let n = 0;
    for (let c = 0; c < rowLen; c++) if (Number.isNaN(t.values[r * rowLen + c])) n++;
    if (n === rowLen) rows.push(r);
    else assert.equal(n, 0, `row ${r} is partly NaN`);
  }
  return rows;
}

describe("wasm fused attention edge cases", { skip: !wasmAvailable() && "WebAssembly SIMD unavailable" }, () => {
  let saved: BackendName;
  before(() => { saved = getBackendName(); setBackend("wasm"); });
  after(() => setBackend(saved));

  test("a huge finite mask: the keys tied at the row maximum share its weight (hand-worked, forward and backward)", () => {
    // q = [[1]], k = [[1], [2]], v = [[1], [3]], scale 1. In float32 1 + mask and 2 + mask both round
    // to mask: a tie, so P = [0.5, 0.5]; out = 0.5 * 1 + 0.5 * 3 = 2. With dO = 1: dP = dO v^T = [1, 3],
    // D = rowsum(dO * out) = 2, dS = P (dP - D) = [-0.5, 0.5]; dq = dS k = 0.5, dk = dS q = [-0.5, 0.5],
    // dv = P^T dO = [0.5, 0.5].
    const q = tensor([[1]]), k = tensor([[1], [2]]), v = tensor([[1], [3]]);
    for (const big of [-1e30, -1e20, -1e15, F32_MIN]) {
      for (const impl of ["fused", "math"] as const) {
        const r = run(q, k, v, { attnMask: tensor([[big, big]]) }, impl, tensor([[1]]));
        const what = `mask ${big}, ${impl}`;
        assertValues(r.out, [2], `${what}: out`);
        assertValues(r.dq, [0.5], `${what}: dq`);
        assertValues(r.dk, [-0.5, 0.5], `${what}: dk`);
        assertValues(r.dv, [0.5, 0.5], `${what}: dv`);
      }
    }
  });

  test("Hugging Face style padding mask (float32 minimum on padded keys and on whole padded rows): fused = math", () => {
    // [B, H, L, E] = [2, 3, 17, 8] against S = 33 keys; mask [B, 1, L, S]: batch b pads its last 5b
    // keys, and rows l % 4 == 3 are padding queries that see only masked keys (a row of ties)
    const B = 2, L = 17, S = 33;
    const m: number[] = [];
    for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) for (let s = 0; s < S; s++) m.push(l % 4 === 3 || s >= S - 5 * b ? F32_MIN : 0);
    const attnMask = tensor(m, [B, 1, L, S]);
    const q = randn([B, 3, L, 8], { seed: 1 }), k = randn([B, 3, S, 8], { seed: 2 }), v = randn([B, 3, S, 8], { seed: 3 });
    for (const isCausal of [false, true]) {
      const fused = run(q, k, v, { attnMask, isCausal }, "fused"), math = run(q, k, v, { attnMask, isCausal }, "math");
      for (const key of ["out", "dq", "dk", "dv"] as const) {
        const e = relError(fused[key], math[key]);
        assert.ok(e <= 1e-5, `causal ${isCausal}: ${key} relative error ${e}`);
      }
    }
  });

  test("NaN in a query row: that row's out and dq are NaN, dk and dv of its head NaN, the rest as on the math path", () => {
    const q = randn([1, 2, 5, 8], { seed: 4 }), k = randn([1, 2, 7, 8], { seed: 5 }), v = randn([1, 2, 7, 8], { seed: 6 });
    q.values.fill(NaN, (1 * 5 + 2) * 8, (1 * 5 + 3) * 8); // head 1, row 2
    const fused = run(q, k, v, {}, "fused"), math = run(q, k, v, {}, "math");
    assert.deepEqual(nanRows(math.out, 8), [7], "math: out rows");
    assert.deepEqual(nanRows(math.dq, 8), [7], "math: dq rows");
    assert.deepEqual(nanRows(math.dk, 8), [7, 8, 9, 10, 11, 12, 13], "math: dk rows");
    for (const key of ["out", "dq", "dk", "dv"] as const) assertSameWithNaN(fused[key], math[key], 1e-5, key);
  });

  test("NaN in a float mask row, or in one key: NaN where the math path has it", () => {
    const q = randn([2, 2, 5, 8], { seed: 7 }), k = randn([2, 2, 7, 8], { seed: 8 }), v = randn([2, 2, 7, 8], { seed: 9 });
    const m = randn([5, 7], { seed: 10 });
    m.values.fill(NaN, 3 * 7, 4 * 7); // query row 3 of every batch and head
    const fused = run(q, k, v, { attnMask: m }, "fused"), math = run(q, k, v, { attnMask: m }, "math");
    assert.deepEqual(nanRows(math.out, 8), [3, 8, 13, 18], "math: out rows");
    for (const key of ["out", "dq", "dk", "dv"] as const) assertSameWithNaN(fused[key], math[key], 1e-5, `mask: ${key}`);

    const kn = randn([2, 2, 7, 8], { seed: 8 });
    kn.values[(2 * 7 + 4) * 8 + 1] = NaN; // batch 1, head 0, key 4
    const f2 = run(q, kn, v, {}, "fused"), m2 = run(q, kn, v, {}, "math");
    assert.deepEqual(nanRows(m2.out, 8), [10, 11, 12, 13, 14], "math: out rows");
    for (const key of ["out", "dq", "dk", "dv"] as const) assertSameWithNaN(f2[key], m2[key], 1e-5, `key: ${key}`);
  });
});
