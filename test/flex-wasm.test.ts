/**
 * The flexible options (sliding window, ALiBi, softcap, sinks, documents, block mask) in the wasm SIMD
 * kernels, which no longer hand them to ref:
 *
 *   wasm == ref        kernel level, float32: out, lse, dq, dk, dv and dsinks (formed from each
 *                      backend's own out and lse, as the op layer does) for each option alone and
 *                      combined, with causal alignments, GQA, odd sizes, dropout, masks, rows that see
 *                      nothing, small and default tiles; 1 and 2 threads bitwise equal
 *   wasm == math       through scaledDotProductAttention: the fused path on wasm against the textbook
 *                      path (materialised scores and masks, autograd), every gradient including dsinks
 *   skipping           tiles outside the band, other documents and empty blocks are never computed:
 *                      NaN placed in keys no query may see stays out of every result
 *
 * test/flex.test.ts runs its own cases on every registered backend too (wasm included).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createBlockMask, getNumThreads, randn, scaledDotProductAttention, setNumThreads, type MaskMod, type SdpaOptions, Tensor, cast } from "../src/index.js";
import type { AttentionParams, CausalKind, PositionAlignment } from "../src/kernels/backend.js";
import { refBackend, wasmAvailable, wasmBackend, wasmTuning } from "../src/kernels/index.js";
import { type Case, type Problem, type Result, assertClose, compareResults, makeProblem, runBackend } from "./attention-naive.js";
import { relError } from "./harness.js";
import { rng } from "./kernel-inputs.js";

const hasWasm = wasmAvailable();

interface FlexSpec extends Case {
  name: string;
  alignment?: PositionAlignment;
  window?: [number, number];
  alibi?: boolean;
  softcap?: number;
  sinks?: boolean;
  /** document run length (ids floor((pos + 3b) / n) for queries and keys), or "odd" for unrelated ids */
  docs?: number | "odd";
  block?: { mod: MaskMod; perHead?: boolean; blockSize?: number };
}

/** The flexible options of a spec as AttentionParams fields. */
function flexParams(c: FlexSpec): Partial<AttentionParams> {
  const { B, H, L, S } = c;
  const r = rng(77 + L + S);
  const ids = (n: number, run: number | "odd", shift: number): Int32Array =>
    Int32Array.from({ length: B * n }, (_, i) => {
      const b = Math.floor(i / n), pos = i % n;
      return run === "odd" ? (pos * 7 + b + shift) % 3 : Math.floor((pos + 3 * b) / run);
    });
  const f: Partial<AttentionParams> = { alignment: c.alignment };
  if (c.window) f.window = { left: c.window[0], right: c.window[1] };
  if (c.alibi) f.alibiSlopes = Float64Array.from({ length: H }, (_, h) => 2 ** -(h + 1));
  if (c.softcap) f.softcap = c.softcap;
  if (c.sinks) f.sinks = Float64Array.from({ length: H }, () => 2 * r() - 0.5);
  if (c.docs !== undefined) f.documents = { query: ids(L, c.docs, 0), key: ids(S, c.docs, 1) };
  if (c.block) {
    f.blockMask = createBlockMask(c.block.mod, { batch: 1, heads: c.block.perHead ? H : 1, L, S, blockSize: c.block.blockSize }).blocks;
  }
  return f;
}

function problem(c: FlexSpec, seed: number): Problem {
  const pr = makeProblem(c, Float32Array, seed);
  Object.assign(pr.p, flexParams(c));
  return pr;
}

/** dsink_h = −Σ_rows exp(sink_h − lse) · rowsum(dO ∘ out), from a backend's own results (as fused.ts forms it). */
function dsinks(p: AttentionParams, r: Result, dout: ArrayLike<number>): Float64Array {
  const { B, H, L, Ev } = p;
  const ds = new Float64Array(H);
  if (!p.sinks) return ds;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++) {
    const row = (b * H + h) * L + l;
    let D = 0;
    for (let e = 0; e < Ev; e++) D += dout[row * Ev + e] * r.out[row * Ev + e];
    ds[h] -= Math.exp(p.sinks[h] - r.lse[row]) * D;
  }
  return ds;
}

function assertBitwise(a: Float32Array | Float64Array, b: Float32Array | Float64Array, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}: differs at ${i}: ${a[i]} vs ${b[i]}`);
  }
}

function withTiles<T>(Br: number, Bc: number, fn: () => T): T {
  const saved = { Br: wasmTuning.Br, Bc: wasmTuning.Bc, min: wasmTuning.minParallelAttentionFlops };
  Object.assign(wasmTuning, { Br, Bc, minParallelAttentionFlops: 0 });
  try {
    return fn();
  } finally {
    Object.assign(wasmTuning, { Br: saved.Br, Bc: saved.Bc, minParallelAttentionFlops: saved.min });
  }
}

const causalWithHoles: MaskMod = (b, h, q, k) => k <= q && (q + k + h) % 5 !== 0;
const band = (w: number): MaskMod => (b, h, q, k) => k <= q && q - k < w;

// Each option alone, then together; sizes from {1, 17, 65, 130}, head dims from {8, 24, 64}.
const SPECS: FlexSpec[] = [
  { name: "causal window 9", B: 2, H: 2, Hkv: 2, L: 130, S: 130, E: 8, Ev: 8, causal: "top-left", window: [8, 0] },
  { name: "two-sided window [5, 3], bottom-right, L < S, GQA", B: 1, H: 4, Hkv: 2, L: 17, S: 130, E: 24, Ev: 8, window: [5, 3], alignment: "bottom-right" },
  { name: "window [0, 0], L > S: rows past S see nothing", B: 1, H: 2, Hkv: 1, L: 65, S: 17, E: 8, Ev: 24, window: [0, 0] },
  { name: "causal bottom-right, L > S, window 4 (first rows see nothing)", B: 2, H: 2, Hkv: 2, L: 130, S: 65, E: 64, Ev: 64, causal: "bottom-right", window: [3, 0] },
  { name: "window of 1 query, L = S = 1", B: 1, H: 1, Hkv: 1, L: 1, S: 1, E: 8, Ev: 8, causal: "top-left", window: [4, 0], sinks: true },
  { name: "ALiBi, causal, GQA", B: 2, H: 4, Hkv: 2, L: 65, S: 65, E: 24, Ev: 24, causal: "top-left", alibi: true },
  { name: "ALiBi bottom-right L < S, no causality", B: 1, H: 3, Hkv: 1, L: 17, S: 130, E: 8, Ev: 8, alignment: "bottom-right", alibi: true },
  { name: "softcap 2, scale 1 (large scores)", B: 1, H: 2, Hkv: 2, L: 65, S: 65, E: 8, Ev: 8, causal: "top-left", softcap: 2, scale: 1 },
  { name: "softcap with a float mask and dropout", B: 2, H: 2, Hkv: 1, L: 17, S: 65, E: 24, Ev: 8, softcap: 5, mask: "float-1hls", dropoutP: 0.2 },
  { name: "sinks", B: 2, H: 3, Hkv: 3, L: 65, S: 17, E: 8, Ev: 24, sinks: true },
  { name: "sinks with fully masked rows and dropout", B: 1, H: 2, Hkv: 1, L: 17, S: 17, E: 8, Ev: 8, sinks: true, mask: "bool-full-rows", dropoutP: 0.3 },
  { name: "documents of 23, causal", B: 2, H: 2, Hkv: 2, L: 130, S: 130, E: 8, Ev: 8, causal: "top-left", docs: 23 },
  { name: "documents of 64 (tile-aligned), GQA", B: 1, H: 4, Hkv: 1, L: 130, S: 130, E: 64, Ev: 64, docs: 64 },
  { name: "unrelated query and key ids (some rows see nothing)", B: 2, H: 2, Hkv: 2, L: 17, S: 65, E: 8, Ev: 8, docs: "odd" },
  { name: "block mask, blockSize 64, causal with holes", B: 1, H: 2, Hkv: 2, L: 130, S: 130, E: 24, Ev: 24, block: { mod: causalWithHoles } },
  { name: "block mask per head, blockSize 16 (not the tile)", B: 2, H: 2, Hkv: 1, L: 65, S: 130, E: 8, Ev: 8, block: { mod: (b, h, q, k) => (q * 3 + k + h) % 7 !== 0 && Math.abs(q - k) < 40, perHead: true, blockSize: 16 } },
  { name: "block mask band 100, blockSize 64 (whole bytes of bits 0 or 1)", B: 1, H: 2, Hkv: 2, L: 130, S: 130, E: 8, Ev: 8, block: { mod: band(100) } },
  { name: "block mask band 32, blockSize 5", B: 1, H: 2, Hkv: 2, L: 65, S: 65, E: 8, Ev: 8, block: { mod: band(32), blockSize: 5 } },
  {
    name: "everything: GQA, causal bottom-right L < S, window, ALiBi, softcap, sinks, documents, block mask, bool mask, dropout",
    B: 2, H: 4, Hkv: 2, L: 65, S: 130, E: 24, Ev: 8, causal: "bottom-right", window: [40, 0], alibi: true, softcap: 3, sinks: true, docs: 29,
    block: { mod: (b, h, q, k) => (q + k + h) % 6 !== 0, perHead: true, blockSize: 8 }, mask: "bool-b1ls", dropoutP: 0.2,
  },
  {
    name: "everything, top-left, two-sided window, float mask",
    B: 1, H: 2, Hkv: 1, L: 130, S: 65, E: 64, Ev: 24, window: [20, 6], alignment: "top-left", alibi: true, softcap: 1.5, sinks: true, docs: 40,
    block: { mod: (b, h, q, k) => (q ^ k) % 4 !== 1 }, mask: "float-ls",
  },
];

describe("flexible options in the wasm kernels equal ref", { skip: !hasWasm && "WebAssembly SIMD unavailable" }, () => {
  for (const [ci, c] of SPECS.entries()) {
    test(`${c.name} (B${c.B} H${c.H}/${c.Hkv} L${c.L} S${c.S} E${c.E} Ev${c.Ev})`, () => {
      const pr = problem(c, ci + 1);
      const want = runBackend(refBackend, pr, Float32Array, Float64Array);
      const wantDs = dsinks(pr.p, want, pr.dout);
      const saved = getNumThreads();
      try {
        const tiles: [number, number][] = c.L > 64 || c.S > 64 ? [[64, 64], [16, 32]] : [[64, 64], [8, 8], [16, 8]];
        for (const [Br, Bc] of tiles) {
          setNumThreads(1);
          const one = withTiles(Br, Bc, () => runBackend(wasmBackend, pr, Float32Array, Float64Array));
          const what = `wasm(${Br}x${Bc}) vs ref`;
          compareResults(one, want, 3e-5, 3e-4, what);
          assertClose(dsinks(pr.p, one, pr.dout), wantDs, 3e-5, 3e-4, `${what} dsinks`);
          for (const x of [one.out, one.dq, one.dk, one.dv]) assert.ok(x.every((y) => Number.isFinite(y)), `${what}: finite`);
          setNumThreads(2);
          const two = withTiles(Br, Bc, () => runBackend(wasmBackend, pr, Float32Array, Float64Array));
          for (const key of ["out", "lse", "dq", "dk", "dv"] as const) assertBitwise(two[key], one[key], `${key} with 2 threads vs 1 (${Br}x${Bc})`);
        }
      } finally {
        setNumThreads(saved);
      }
    });
  }

  test("staging one kv group per round (tables indexed by absolute batch and head) gives the same bits", () => {
    const pr = problem(SPECS.find((c) => c.name.startsWith("everything: GQA"))!, 7);
    const one = withTiles(16, 16, () => runBackend(wasmBackend, pr, Float32Array, Float64Array));
    const saved = wasmTuning.stagingBudget;
    wasmTuning.stagingBudget = 1;
    try {
      const many = withTiles(16, 16, () => runBackend(wasmBackend, pr, Float32Array, Float64Array));
      for (const key of ["out", "lse", "dq", "dk", "dv"] as const) assertBitwise(many[key], one[key], key);
    } finally {
      wasmTuning.stagingBudget = saved;
    }
  });

  test("rows that see nothing: out 0, lse -Infinity (with sinks: the sink), gradients 0, never NaN", () => {
    // window [0, 0] with L > S: rows S.. see no key; documents: query id 9 has no key
    for (const sinks of [false, true]) {
      const c: FlexSpec = { name: "", B: 1, H: 2, Hkv: 2, L: 24, S: 16, E: 8, Ev: 8, window: [0, 0], sinks };
      const pr = problem(c, 3);
      const r = withTiles(8, 8, () => runBackend(wasmBackend, pr, Float32Array, Float64Array));
      for (let h = 0; h < 2; h++) for (let l = 16; l < 24; l++) {
        const row = h * 24 + l;
        assert.equal(r.lse[row], sinks ? Math.fround(pr.p.sinks![h]) : -Infinity, `lse of row ${row}`);
        for (let e = 0; e < 8; e++) {
          assert.equal(r.out[row * 8 + e], 0);
          assert.equal(r.dq[row * 8 + e], 0);
        }
      }
      for (const x of [r.out, r.dq, r.dk, r.dv]) assert.ok(x.every((y) => Number.isFinite(y)));
    }
  });

  test("NaN in: NaN out, in the rows that see it", () => {
    const c: FlexSpec = { name: "", B: 1, H: 1, Hkv: 1, L: 40, S: 40, E: 8, Ev: 8, causal: "top-left", window: [3, 0], softcap: 2, alibi: true, sinks: true };
    const pr = problem(c, 5);
    pr.k[20 * 8 + 3] = NaN; // key 20: seen by rows 20..23 only
    const r = withTiles(8, 8, () => runBackend(wasmBackend, pr, Float32Array, Float64Array));
    for (let l = 0; l < 40; l++) {
      const nan = Number.isNaN(r.out[l * 8]);
      assert.equal(nan, l >= 20 && l <= 23, `row ${l}`);
      assert.equal(Number.isNaN(r.lse[l]), l >= 20 && l <= 23, `lse of row ${l}`);
    }
  });

  test("tiles outside the band, other documents and empty blocks are never computed (NaN there stays out)", () => {
    // keys that no query of a tile may see carry NaN: a tile that were computed would make its rows NaN
    // (NaN times a weight of 0 is NaN). Tiles of 8: causal window 8 on 64 keys, documents of 16, and a
    // block mask with empty blocks.
    const cases: [FlexSpec, (l: number, s: number) => boolean][] = [
      [{ name: "", B: 1, H: 1, Hkv: 1, L: 64, S: 64, E: 8, Ev: 8, causal: "top-left", window: [7, 0] }, (l, s) => s <= l && l - s < 16],
      [{ name: "", B: 1, H: 1, Hkv: 1, L: 64, S: 64, E: 8, Ev: 8, docs: 16 }, (l, s) => Math.floor(l / 16) === Math.floor(s / 16)],
      [{ name: "", B: 1, H: 1, Hkv: 1, L: 64, S: 64, E: 8, Ev: 8, block: { mod: (b, h, q, k) => Math.floor(q / 8) === Math.floor(k / 8), blockSize: 8 } }, (l, s) => Math.floor(l / 8) === Math.floor(s / 8)],
    ];
    for (const [c, near] of cases) {
      const pr = problem(c, 9);
      // the NaN key must be in a tile hidden from rows 40..47 (tile 5 of 8 rows): key 8 is in tile 1
      for (let e = 0; e < 8; e++) pr.v[8 * 8 + e] = NaN;
      const r = withTiles(8, 8, () => runBackend(wasmBackend, pr, Float32Array, Float64Array));
      for (let l = 40; l < 48; l++) {
        assert.ok(!near(l, 8), "the key is outside the tile's reach");
        for (let e = 0; e < 8; e++) assert.ok(Number.isFinite(r.out[l * 8 + e]), `row ${l} stays finite`);
      }
      for (let e = 0; e < 8; e++) assert.ok(Number.isFinite(r.dq[40 * 8 + e]));
    }
  });
});

// ------------------------------------------------------------------------------------------------
// the public API: fused on wasm against the textbook path
// ------------------------------------------------------------------------------------------------

describe("scaledDotProductAttention on wasm: fused equals math, every gradient (float32)", { skip: !hasWasm && "WebAssembly SIMD unavailable" }, () => {
  const H = 4, Hkv = 2;
  const cases: { name: string; L: number; S: number; E: number; opts: (sinks: Tensor) => SdpaOptions }[] = [
    {
      name: "causal window, ALiBi, softcap, sinks, GQA", L: 65, S: 65, E: 24,
      opts: (sinks) => ({ isCausal: true, slidingWindow: 20, alibiSlopes: "default", softcap: 4, sinks, enableGqa: true }),
    },
    {
      name: "documents and a block mask, bottom-right with L < S", L: 17, S: 130, E: 8,
      opts: (sinks) => ({
        isCausal: true, causalAlignment: "bottom-right", sinks, enableGqa: true,
        documents: { query: new Tensor(Int32Array.from({ length: 2 * 17 }, (_, i) => Math.floor((i % 17 + 113) / 50)), [2, 17], "int32"), key: new Tensor(Int32Array.from({ length: 2 * 130 }, (_, i) => Math.floor((i % 130) / 50)), [2, 130], "int32") },
        blockMask: createBlockMask((b, h, q, k) => (q + k + h) % 3 !== 0, { batch: 1, heads: H, L: 17, S: 130, blockSize: 16 }),
      }),
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const run = (implementation: "fused" | "math"): Record<string, Tensor> => {
        const mk = (shape: number[], seed: number): Tensor => { const x = randn(shape, { seed }); x.requiresGrad = true; return x; };
        const q = mk([2, H, c.L, c.E], 1), k = mk([2, Hkv, c.S, c.E], 2), v = mk([2, Hkv, c.S, c.E], 3), sinks = mk([H], 4);
        const out = scaledDotProductAttention(q, k, v, { ...c.opts(sinks), implementation });
        out.backward(cast(randn(out.shape, { seed: 5 }), "float32"));
        return { out, dq: q.grad!, dk: k.grad!, dv: v.grad!, dsinks: sinks.grad! };
      };
      const fused = run("fused"), math = run("math");
      for (const key of Object.keys(math)) {
        const e = relError(fused[key], math[key]);
        assert.ok(e <= (key === "out" ? 3e-5 : 3e-4), `${key}: relative error ${e}`);
      }
    });
  }
});
