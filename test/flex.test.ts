/**
 * The flexible options of scaledDotProductAttention (sliding windows, ALiBi, softcap, sinks, documents,
 * block masks), alone and combined, on every registered backend, in float64 (tight) and float32 (loose):
 *
 *   fused == math            the kernels against the textbook path, out and every gradient (q, k, v, sinks)
 *   fused == explicit        against plain sdpa given the same thing written out here, independently of
 *                            the library: one float mask (bias, -inf where hidden) and, for sinks, an extra
 *                            key of value 0 whose mask column is the sink logit (its gradient is dsink)
 *   fused == naive           float64 loops written here, for the forward (softcap included)
 *
 * Then: rows that see nothing (zeros, never NaN), tiles that are skipped, block masks (maskMod run once
 * per element), lse, attentionWeights of selected rows and heads, errors, and thread counts. The PyTorch
 * fixtures of these options (make_fixtures.py, flex_cases) are replayed by fixtures.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ArgumentError, BlockMask, ShapeError, type SdpaImplementation, type SdpaOptions, Tensor, attentionWeights, cast, concat,
  createBlockMask, defaultAlibiSlopes, expand, getNumThreads, gradcheck, randn, reshape, scaledDotProductAttention,
  scaledDotProductAttentionWithLse, setNumThreads, slice, tensor, windowMask, zeros, type CausalAlignment, type MaskMod,
} from "../src/index.js";
import type { AttentionParams } from "../src/kernels/backend.js";
import { flashAttentionBackward, flashAttentionForward, flashForwardSteps } from "../src/kernels/ref/flash.js";
import { conformanceBackends, onBackend } from "./backends.js";
import { relError } from "./harness.js";

type DT = "float32" | "float64";

interface Spec {
  name: string;
  batch: number[];
  H: number;
  Hkv?: number;
  L: number;
  S: number;
  E: number;
  Ev: number;
  isCausal?: boolean;
  align?: CausalAlignment;
  window?: number | [number, number];
  /** slopes as the test knows them (the options may say "default") */
  alibi?: number[];
  alibiDefault?: boolean;
  softcap?: number;
  sinks?: boolean;
  /** document id of position `pos` of flattened batch element b, for queries and keys */
  docs?: { q: (b: number, pos: number) => number; k: (b: number, pos: number) => number };
  block?: { mod: MaskMod; batch: number; heads: number; blockSize?: number };
  boolMask?: (b: number, h: number, l: number, s: number) => boolean;
  floatMask?: boolean;
  dropoutP?: number;
  scale?: number;
}

const prod = (xs: number[]): number => xs.reduce((a, b) => a * b, 1);

/** Whether query l of head h of batch element b sees key s: the rules, written out. */
function visible(c: Spec, b: number, h: number, l: number, s: number): boolean {
  const lp = l + (c.align === "bottom-right" ? c.S - c.L : 0); // l'
  if (c.isCausal && s > lp) return false;
  if (c.window !== undefined) {
    const [left, right] = typeof c.window === "number" ? [c.window - 1, 0] : c.window;
    if (s < lp - left || s > lp + right) return false;
  }
  if (c.docs && c.docs.q(b, l) !== c.docs.k(b, s)) return false;
  if (c.block && !c.block.mod(c.block.batch === 1 ? 0 : b, c.block.heads === 1 ? 0 : h, l, s)) return false;
  if (c.boolMask && !c.boolMask(b, h, l, s)) return false;
  return true;
}

/** −slope_h |l' − s| */
function bias(c: Spec, h: number, l: number, s: number): number {
  if (!c.alibi) return 0;
  const lp = l + (c.align === "bottom-right" ? c.S - c.L : 0);
  return -c.alibi[h] * Math.abs(lp - s);
}

interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  sinks: Tensor | null;
  floatMask: Tensor | null;
}

function inputs(c: Spec, dtype: DT): Inputs {
  const mk = (shape: number[], seed: number, amp = 1): Tensor => {
    const x = cast(randn(shape, { seed }), dtype);
    for (let i = 0; i < x.size; i++) x.values[i] *= amp;
    x.requiresGrad = true;
    return x;
  };
  const Hkv = c.Hkv ?? c.H;
  return {
    q: mk([...c.batch, c.H, c.L, c.E], 1, 1.5), k: mk([...c.batch, Hkv, c.S, c.E], 2, 1.5), v: mk([...c.batch, Hkv, c.S, c.Ev], 3),
    sinks: c.sinks ? mk([c.H], 4) : null,
    floatMask: c.floatMask ? cast(randn([c.L, c.S], { seed: 5 }), dtype) : null,
  };
}

function options(c: Spec, x: Inputs): SdpaOptions {
  const B = prod(c.batch);
  const ids = (f: (b: number, p: number) => number, n: number): Tensor =>
    new Tensor(Int32Array.from({ length: B * n }, (_, i) => f(Math.floor(i / n), i % n)), [...c.batch, n], "int32");
  const boolMask = c.boolMask
    ? new Tensor(Uint8Array.from({ length: B * c.H * c.L * c.S }, (_, i) => {
      const s = i % c.S, l = Math.floor(i / c.S) % c.L, h = Math.floor(i / (c.S * c.L)) % c.H, b = Math.floor(i / (c.S * c.L * c.H));
      return c.boolMask!(b, h, l, s) ? 1 : 0;
    }), [...c.batch, c.H, c.L, c.S], "bool")
    : null;
  return {
    isCausal: c.isCausal, causalAlignment: c.align, scale: c.scale, enableGqa: (c.Hkv ?? c.H) !== c.H,
    slidingWindow: c.window, alibiSlopes: c.alibiDefault ? "default" : c.alibi, softcap: c.softcap, sinks: x.sinks,
    documents: c.docs ? { query: ids(c.docs.q, c.L), key: ids(c.docs.k, c.S) } : undefined,
    blockMask: c.block ? createBlockMask(c.block.mod, { batch: c.block.batch, heads: c.block.heads, L: c.L, S: c.S, blockSize: c.block.blockSize }) : undefined,
    attnMask: boolMask ?? x.floatMask, dropoutP: c.dropoutP, dropoutSeed: 99,
  };
}

interface Result {
  out: Tensor;
  grads: Record<string, Tensor>;
}

function backwardOf(out: Tensor, x: Inputs, dtype: DT): Result {
  out.backward(cast(randn(out.shape, { seed: 6 }), dtype));
  const grads: Record<string, Tensor> = { dq: x.q.grad!, dk: x.k.grad!, dv: x.v.grad! };
  if (x.sinks) grads.dsinks = x.sinks.grad!;
  return { out, grads };
}

function runFlex(c: Spec, dtype: DT, implementation: SdpaImplementation): Result {
  const x = inputs(c, dtype);
  return backwardOf(scaledDotProductAttention(x.q, x.k, x.v, { ...options(c, x), implementation }), x, dtype);
}

/**
 * Plain sdpa (math path) with everything written out: one float mask [N.., H, L, S] holding the ALiBi
 * bias and the float mask where visible, -inf where not; sinks as one more key (zeros in k and v)
 * whose mask column is the sink logit, so the sink's gradient is that column's, summed over rows.
 */
function runExplicit(c: Spec, dtype: DT): Result {
  const x = inputs(c, dtype);
  const { B, H, L, S } = { B: prod(c.batch), H: c.H, L: c.L, S: c.S };
  const m = new Float64Array(B * H * L * S);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++) for (let s = 0; s < S; s++) {
    const add = bias(c, h, l, s) + (x.floatMask ? x.floatMask.values[l * S + s] : 0);
    m[((b * H + h) * L + l) * S + s] = visible(c, b, h, l, s) ? add : -Infinity;
  }
  let mask = cast(new Tensor(m, [...c.batch, H, L, S], "float64"), dtype);
  let k = x.k, v = x.v;
  if (x.sinks) {
    const rows = [...c.batch, H, L, 1];
    mask = concat([mask, expand(reshape(x.sinks, [H, 1, 1]), rows)], -1); // [N.., H, L, S + 1]
    const Hkv = c.Hkv ?? c.H;
    k = concat([k, zeros([...c.batch, Hkv, 1, c.E], { dtype })], -2); // one more key: k = 0, v = 0
    v = concat([v, zeros([...c.batch, Hkv, 1, c.Ev], { dtype })], -2);
  }
  const out = scaledDotProductAttention(x.q, k, v, {
    attnMask: mask, scale: c.scale, enableGqa: (c.Hkv ?? c.H) !== c.H, dropoutP: c.dropoutP, dropoutSeed: 99, implementation: "math",
  });
  return backwardOf(out, x, dtype);
}

/** The forward in float64 loops: scores, bias, softcap, float mask, visibility, the sink column; no dropout. */
function naiveForward(c: Spec): Float64Array {
  const x = inputs(c, "float64");
  const B = prod(c.batch), { H, L, S, E, Ev } = c;
  const G = H / (c.Hkv ?? H);
  const scale = c.scale ?? 1 / Math.sqrt(E);
  const out = new Float64Array(B * H * L * Ev);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++) {
    const xs: number[] = [], vs: number[] = [];
    for (let s = 0; s < S; s++) {
      if (!visible(c, b, h, l, s)) continue;
      let dot = 0;
      for (let e = 0; e < E; e++) dot += x.q.values[((b * H + h) * L + l) * E + e] * x.k.values[((b * (H / G) + Math.floor(h / G)) * S + s) * E + e];
      let sc = scale * dot + bias(c, h, l, s);
      if (c.softcap) sc = c.softcap * Math.tanh(sc / c.softcap);
      if (x.floatMask) sc += x.floatMask.values[l * S + s];
      xs.push(sc);
      vs.push(s);
    }
    const sink = x.sinks ? x.sinks.values[h] : -Infinity;
    const mx = Math.max(sink, ...xs);
    if (mx === -Infinity) continue;
    let den = Math.exp(sink - mx);
    for (const sc of xs) den += Math.exp(sc - mx);
    xs.forEach((sc, i) => {
      for (let e = 0; e < Ev; e++) out[((b * H + h) * L + l) * Ev + e] += (Math.exp(sc - mx) / den) * x.v.values[((b * (H / G) + Math.floor(h / G)) * S + vs[i]) * Ev + e];
    });
  }
  return out;
}

const doc3 = (n: number) => (b: number, p: number): number => Math.floor((p + 7 * b) / n); // runs of n positions, shifted per batch
const causalMod: MaskMod = (b, h, q, k) => k <= q && (q + k + h + b) % 5 !== 0; // causal, with holes: partial and empty tiles

const SPECS: Spec[] = [
  { name: "causal sliding window 5 (tiles away from the diagonal are skipped)", batch: [2], H: 2, L: 70, S: 70, E: 8, Ev: 4, isCausal: true, window: 5 },
  { name: "two-sided window [3, 2], bottom-right, no causality, L < S", batch: [2], H: 2, L: 20, S: 70, E: 8, Ev: 4, window: [3, 2], align: "bottom-right" },
  { name: "window [0, 0] with L > S: rows past S see nothing (zeros)", batch: [1], H: 2, L: 9, S: 5, E: 4, Ev: 3, window: [0, 0] },
  { name: "ALiBi slopes, causal, GQA 4 over 2", batch: [2], H: 4, Hkv: 2, L: 17, S: 17, E: 8, Ev: 4, isCausal: true, alibi: [0.5, 0.25, 0.125, 0.0625] },
  { name: "ALiBi \"default\" for 3 heads ([1/16, 1/256, 1/4]), bottom-right L < S", batch: [1], H: 3, L: 5, S: 9, E: 4, Ev: 4, align: "bottom-right", alibiDefault: true, alibi: [1 / 16, 1 / 256, 1 / 4] },
  { name: "softcap 2 on large scores, causal", batch: [2], H: 2, L: 33, S: 33, E: 8, Ev: 4, isCausal: true, softcap: 2, scale: 1 },
  { name: "softcap with a float mask added after it", batch: [1], H: 2, L: 9, S: 11, E: 8, Ev: 3, softcap: 3, floatMask: true, scale: 0.8 },
  { name: "sinks, with a fully masked row (only the sink: output 0)", batch: [2], H: 3, L: 6, S: 8, E: 4, Ev: 3, sinks: true, boolMask: (b, h, l, s) => !(b === 1 && l === 2) && (l + s + h) % 3 !== 0 },
  { name: "sinks with dropout", batch: [2], H: 2, L: 17, S: 19, E: 8, Ev: 4, sinks: true, dropoutP: 0.3 },
  { name: "packed documents with causality (tiles between documents are skipped)", batch: [2], H: 2, L: 70, S: 70, E: 8, Ev: 4, isCausal: true, docs: { q: doc3(23), k: doc3(23) } },
  { name: "query and key documents differ; a query with no key of its document is zero", batch: [2], H: 1, L: 6, S: 9, E: 4, Ev: 3, docs: { q: (b, p) => [0, 1, 5, 2, 1, 0][p] + b, k: (b, p) => Math.floor(p / 3) + b } },
  { name: "block mask, blockSize 16 (not the kernel tile), per batch element and head", batch: [2], H: 2, L: 40, S: 50, E: 8, Ev: 4, block: { mod: causalMod, batch: 2, heads: 2, blockSize: 16 } },
  { name: "block mask, blockSize 64, shared by batch and heads, with isCausal", batch: [1], H: 2, L: 130, S: 130, E: 4, Ev: 4, isCausal: true, block: { mod: (b, h, q, k) => q - k < 70 && (q * k) % 7 !== 3, batch: 1, heads: 1 } },
  { name: "block mask, blockSize 5, batch dims [2, 3]", batch: [2, 3], H: 2, L: 11, S: 13, E: 4, Ev: 3, block: { mod: (b, h, q, k) => (q + 2 * k + b + h) % 4 !== 1, batch: 6, heads: 2, blockSize: 5 } },
  {
    name: "everything: GQA, causal bottom-right L < S, window, ALiBi, sinks, documents, block mask, bool mask, dropout", batch: [2], H: 4, Hkv: 2, L: 19, S: 27, E: 8, Ev: 4,
    isCausal: true, align: "bottom-right", window: [6, 0], alibi: [0.3, 0.2, 0.1, 0.05], sinks: true, docs: { q: doc3(9), k: (b, p) => doc3(9)(b, p - 8) },
    block: { mod: (b, h, q, k) => (q + k + h) % 6 !== 0, batch: 2, heads: 4, blockSize: 8 }, boolMask: (b, h, l, s) => (b + l * s) % 11 !== 4, dropoutP: 0.2,
  },
  {
    name: "everything with softcap (no explicit form: math path and loops)", batch: [2], H: 4, Hkv: 2, L: 19, S: 19, E: 8, Ev: 4, isCausal: true, window: 7,
    alibi: [0.3, 0.2, 0.1, 0.05], softcap: 1.5, sinks: true, docs: { q: doc3(10), k: doc3(10) }, block: { mod: (b, h, q, k) => (q + k) % 5 !== 2, batch: 1, heads: 4, blockSize: 4 }, floatMask: true,
  },
];

const TOL = { float64: { out: 1e-12, grad: 1e-11 }, float32: { out: 3e-5, grad: 2e-4 } };

function assertResults(a: Result, b: Result, dtype: DT, what: string): void {
  const e = relError(a.out, b.out);
  assert.ok(e <= TOL[dtype].out, `${what}: out relative error ${e}`);
  for (const [name, g] of Object.entries(b.grads)) {
    const eg = relError(a.grads[name], g);
    assert.ok(eg <= TOL[dtype].grad, `${what}: ${name} relative error ${eg}`);
  }
}

for (const backend of conformanceBackends()) {
  describe(`flexible options: fused equals the math path and the explicit masks [${backend}]`, () => {
    onBackend(backend);
    for (const c of SPECS) {
      for (const dtype of ["float64", "float32"] as const) {
        test(`${c.name} (${dtype})`, () => {
          const fused = runFlex(c, dtype, "fused");
          assert.ok(fused.out.dataSync().every((x) => !Number.isNaN(x)), "no NaN");
          assertResults(fused, runFlex(c, dtype, "math"), dtype, "fused vs math");
          if (c.softcap === undefined) assertResults(fused, runExplicit(c, dtype), dtype, "fused vs explicit mask");
          if (dtype === "float64" && !c.dropoutP) {
            const want = new Tensor(naiveForward(c), fused.out.shape, "float64");
            assert.ok(relError(fused.out, want) <= 1e-12, `fused vs loops: ${relError(fused.out, want)}`);
          }
        });
      }
    }
  });
}

describe("softcap's gradient is exact (finite differences, float64)", () => {
  test("q, k, v and sinks through the fused path, with ALiBi and a window", () => {
    const c: Spec = { name: "", batch: [1], H: 2, L: 5, S: 6, E: 3, Ev: 2, softcap: 0.7, scale: 1, alibi: [0.4, 0.1], window: [2, 1], sinks: true };
    const x = inputs(c, "float64");
    const opts = options(c, x);
    const r = gradcheck((q, k, v, sinks) => scaledDotProductAttention(q, k, v, { ...opts, sinks, implementation: "fused" }), [x.q, x.k, x.v, x.sinks!], { atol: 1e-7, rtol: 1e-5 });
    assert.ok(r.ok, `worst ${r.worst} at ${r.at}: ${r.analytical} vs ${r.numerical}`);
  });
});

describe("rows that see nothing give zeros, never NaN", () => {
  const q = randn([1, 2, 4, 3], { seed: 1, dtype: "float64" }), k = randn([1, 2, 6, 3], { seed: 2, dtype: "float64" }), v = randn([1, 2, 6, 2], { seed: 3, dtype: "float64" });
  for (const impl of ["fused", "math"] as const) {
    test(`a document without keys, a window past the keys; with sinks: out 0, lse = the sink (${impl})`, () => {
      const docs = { query: tensor([[0, 9, 1, 1]], undefined, { dtype: "int32" }), key: tensor([[0, 0, 1, 1, 1, 2]], undefined, { dtype: "int32" }) };
      for (const sinks of [null, tensor([0.5, -1.25], undefined, { dtype: "float64" })]) {
        const qq = q.detach(); qq.requiresGrad = true;
        const [out, lse] = scaledDotProductAttentionWithLse(qq, k, v, { documents: docs, sinks, implementation: impl });
        out.backward(randn(out.shape, { seed: 4, dtype: "float64" }));
        for (let h = 0; h < 2; h++) {
          assert.deepEqual([...out.values.slice((h * 4 + 1) * 2, (h * 4 + 2) * 2)], [0, 0], "row 1: document 9 has no key");
          assert.equal(lse.values[h * 4 + 1], sinks === null ? -Infinity : sinks.values[h]);
          assert.deepEqual([...qq.grad!.values.slice((h * 4 + 1) * 3, (h * 4 + 2) * 3)], [0, 0, 0]);
        }
        assert.ok([...out.values, ...qq.grad!.values].every((x) => !Number.isNaN(x)));
      }
      const out = scaledDotProductAttention(q, k, v, { slidingWindow: [0, 0], causalAlignment: "bottom-right", isCausal: true, implementation: impl });
      assert.ok(out.dataSync().every((x) => Number.isFinite(x)));
    });
  }
  test("document ids [L] broadcast over the batch dims, as ids [N, L] repeated", () => {
    const x = randn([2, 3, 5, 4], { seed: 1, dtype: "float64" }), y = randn([2, 3, 5, 4], { seed: 2, dtype: "float64" });
    const ids = tensor([0, 0, 1, 1, 1], undefined, { dtype: "int32" });
    const a = scaledDotProductAttention(x, y, y, { documents: { query: ids, key: ids } });
    const both = expand(ids, [2, 5]);
    assert.deepEqual(a.values, scaledDotProductAttention(x, y, y, { documents: { query: both, key: both } }).values);
  });
  test("ALiBi \"default\": the paper's slopes (powers of 2, and the rule for 3 and 6 heads)", () => {
    assert.deepEqual(defaultAlibiSlopes(8), [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256]);
    assert.deepEqual(defaultAlibiSlopes(3), [1 / 16, 1 / 256, 1 / 4]); // slopes(2), then slopes(4)[0::2][:1]
    assert.deepEqual(defaultAlibiSlopes(6), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]); // slopes(4), then slopes(8)[0::2][:2]
  });
  test("windowMask draws the rule: [1, 0] on 4 x 4, and a causal window of 2 bottom-right on 2 x 4", () => {
    assert.deepEqual([...windowMask(4, 4, [1, 0]).values], [1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1]);
    assert.deepEqual([...windowMask(2, 4, 2, "bottom-right").values], [0, 1, 1, 0, 0, 0, 1, 1]); // l' = l + 2: keys l' - 1, l'
  });
});

/** A float64 problem [B=1, H, L, S] for the kernel directly. */
function problem(H: number, L: number, S: number, E: number, extra: Partial<AttentionParams>): { p: AttentionParams; q: Float64Array; k: Float64Array; v: Float64Array } {
  const r = (n: number, seed: number): Float64Array => randn([n], { seed, dtype: "float64" }).values as Float64Array;
  return {
    p: { B: 1, H, Hkv: H, L, S, E, Ev: E, scale: 0.5, causal: "none", mask: null, dropoutP: 0, dropoutSeed: 0, ...extra },
    q: r(H * L * E, 1), k: r(H * S * E, 2), v: r(H * S * E, 3),
  };
}

describe("hidden tiles are never computed", () => {
  const tiles = { Br: 64, Bc: 64 };
  test("a causal window of 64 on 256 x 256 visits the diagonal and sub-diagonal tiles: 7 of 16", () => {
    const { p, q, k, v } = problem(1, 256, 256, 2, { causal: "top-left", window: { left: 63, right: 0 } });
    const st = flashForwardSteps(p, q, k, v, Infinity, tiles);
    assert.equal(st.totalSteps, 7);
    assert.ok(st.steps.every((t) => t.c0 === t.r0 || t.c0 === t.r0 - 64));
  });
  test("two documents of 128 on 256 x 256: 8 of 16 tiles; with causality 6", () => {
    const ids = Int32Array.from({ length: 256 }, (_, i) => (i < 128 ? 0 : 1));
    const a = problem(1, 256, 256, 2, { documents: { query: ids, key: ids } });
    assert.equal(flashForwardSteps(a.p, a.q, a.k, a.v, Infinity, tiles).totalSteps, 8);
    a.p.causal = "top-left";
    assert.equal(flashForwardSteps(a.p, a.q, a.k, a.v, Infinity, tiles).totalSteps, 6);
  });
  test("a causal block mask on 256 x 256 (blockSize 64): 10 of 16 tiles, density 0.625; 4 partial, 6 full", () => {
    const bm = createBlockMask((b, h, q, k) => k <= q, { batch: 1, heads: 1, L: 256, S: 256 });
    assert.equal(bm.density(), 10 / 16);
    assert.deepEqual(bm.counts(), { empty: 6, partial: 4, full: 6 });
    const { p, q, k, v } = problem(1, 256, 256, 2, { blockMask: bm.blocks });
    assert.equal(flashForwardSteps(p, q, k, v, Infinity, tiles).totalSteps, 10);
  });
  // Each rule given to the kernel as a parameter (tiles skipped or read per element) against the same
  // rule drawn out here (visible()) as a bool mask: the same numbers, bit for bit, for any tile shape.
  const kernelSpecs: Spec[] = [
    { name: "window [5, 2] bottom-right", batch: [1], H: 2, L: 30, S: 40, E: 3, Ev: 3, window: [5, 2], align: "bottom-right" },
    { name: "causal bottom-right with S = L + 1 and a window of 9 (one row of a tile reaches the next key tile)", batch: [1], H: 2, L: 34, S: 35, E: 3, Ev: 3, isCausal: true, align: "bottom-right", window: 9 },
    { name: "documents", batch: [1], H: 2, L: 30, S: 40, E: 3, Ev: 3, docs: { q: doc3(7), k: (b, p) => Math.floor((p + 3) / 9) } },
    { name: "block mask, blockSize 7", batch: [1], H: 2, L: 30, S: 40, E: 3, Ev: 3, block: { mod: (b, h, q, k) => Math.abs(q - k) < 9 && (q ^ k) % 3 !== 0, batch: 1, heads: 2, blockSize: 7 } },
  ];
  for (const c of kernelSpecs) {
    test(`${c.name}: tiles 3 x 5, 8 x 8, 64 x 64 give the explicit mask's numbers exactly`, () => {
      const { H, L, S } = c;
      const o = options(c, inputs(c, "float64"));
      const flex: Partial<AttentionParams> = {
        causal: c.isCausal ? c.align ?? "top-left" : "none", alignment: c.align,
        window: c.window === undefined ? null : typeof c.window === "number" ? { left: c.window - 1, right: 0 } : { left: c.window[0], right: c.window[1] },
        documents: o.documents ? { query: o.documents.query.values as Int32Array, key: o.documents.key.values as Int32Array } : null,
        blockMask: o.blockMask?.blocks ?? null,
      };
      const dense = Uint8Array.from({ length: H * L * S }, (_, i) => (visible(c, 0, Math.floor(i / (L * S)), Math.floor(i / S) % L, i % S) ? 1 : 0));
      for (const t of [{ Br: 3, Bc: 5 }, { Br: 8, Bc: 8 }, { Br: 64, Bc: 64 }]) {
        const a = problem(H, L, S, 3, flex);
        const b = problem(H, L, S, 3, { mask: { kind: "bool", data: dense, strides: [0, L * S, S, 1] } });
        const outs = [a, b].map(({ p, q, k, v }) => {
          const out = new Float64Array(H * L * 3), lse = new Float64Array(H * L);
          flashAttentionForward(p, q, k, v, out, lse, undefined, t);
          const d = [new Float64Array(q.length), new Float64Array(k.length), new Float64Array(v.length)];
          flashAttentionBackward(p, q, k, v, out, Float64Array.from(out, (_, i) => Math.sin(i)), lse, d[0], d[1], d[2], undefined, t);
          return [out, lse, ...d];
        });
        outs[0].forEach((x, i) => assert.deepEqual(x, outs[1][i], `tiles ${t.Br} x ${t.Bc}, array ${i}`));
      }
    });
  }
});

describe("createBlockMask", () => {
  test("maskMod runs exactly once per element, at creation only", () => {
    let calls = 0;
    const bm = createBlockMask((b, h, q, k) => { calls++; return (b + h + q + k) % 3 !== 0; }, { batch: 2, heads: 3, L: 10, S: 12, blockSize: 4 });
    assert.equal(calls, 2 * 3 * 10 * 12);
    const x = randn([2, 3, 10, 4], { seed: 1 }), y = randn([2, 3, 12, 4], { seed: 2 });
    scaledDotProductAttention(x, y, y, { blockMask: bm });
    scaledDotProductAttention(x, y, y, { blockMask: bm, implementation: "math" });
    assert.equal(calls, 2 * 3 * 10 * 12);
  });
  test("toMask draws it back, [batch, heads, L, S]", () => {
    const mod: MaskMod = (b, h, q, k) => (q * 3 + k + h) % 4 !== 0;
    const m = createBlockMask(mod, { batch: 1, heads: 2, L: 5, S: 7, blockSize: 3 }).toMask();
    assert.deepEqual(m.shape, [1, 2, 5, 7]);
    for (let h = 0; h < 2; h++) for (let q = 0; q < 5; q++) for (let k = 0; k < 7; k++) assert.equal(m.values[(h * 5 + q) * 7 + k] === 1, mod(0, h, q, k));
  });
  test("bad input: not a function, non-boolean results, bad sizes", () => {
    // @ts-expect-error: checking the runtime error for plain-JavaScript callers
    assert.throws(() => createBlockMask(3, { batch: 1, heads: 1, L: 2, S: 2 }), /createBlockMask: maskMod must be a function/);
    // @ts-expect-error: as above
    assert.throws(() => createBlockMask(() => 1, { batch: 1, heads: 1, L: 2, S: 2 }), /maskMod must return a boolean .* got 1 for \(b, h, q, k\) = \(0, 0, 0, 0\)/);
    assert.throws(() => createBlockMask(() => true, { batch: 1, heads: 0, L: 2, S: 2 }), /createBlockMask: heads must be a positive integer, got 0/);
    // @ts-expect-error: as above
    assert.throws(() => createBlockMask(() => true, { batch: 1, heads: 1, L: 2, S: 2, blocksize: 8 }), /unknown option "blocksize".*did you mean "blockSize"/);
  });
});

describe("scaledDotProductAttentionWithLse", () => {
  test("lse [N, H, L] is the log of each row's softmax denominator, the sink's term included; fused equals math", () => {
    const c: Spec = { name: "", batch: [2], H: 2, L: 9, S: 11, E: 4, Ev: 3, isCausal: true, window: 4, alibi: [0.5, 0.1], sinks: true };
    const x = inputs(c, "float64");
    const [outF, lseF] = scaledDotProductAttentionWithLse(x.q, x.k, x.v, { ...options(c, x), implementation: "fused" });
    const [outM, lseM] = scaledDotProductAttentionWithLse(x.q, x.k, x.v, { ...options(c, x), implementation: "math" });
    assert.deepEqual(lseF.shape, [2, 2, 9]);
    assert.ok(relError(lseF, lseM) < 1e-13 && relError(outF, outM) < 1e-13);
    // row (b=0, h=1, l=3) by hand: keys 0..3 (window 4), scores scale q·k − 0.1 |3 − s|, plus the sink
    const scale = 1 / 2;
    let sum = Math.exp(x.sinks!.values[1]);
    for (let s = 0; s <= 3; s++) {
      let dot = 0;
      for (let e = 0; e < 4; e++) dot += x.q.values[((0 * 2 + 1) * 9 + 3) * 4 + e] * x.k.values[((0 * 2 + 1) * 11 + s) * 4 + e];
      sum += Math.exp(scale * dot - 0.1 * (3 - s));
    }
    assert.ok(Math.abs(lseF.values[(0 * 2 + 1) * 9 + 3] - Math.log(sum)) < 1e-13);
    assert.equal(lseF.requiresGrad, false);
    assert.equal(outF.requiresGrad, true);
  });
  test("unbatched [L, E]: lse [L]; float32 in, float32 lse", () => {
    const [out, lse] = scaledDotProductAttentionWithLse(randn([3, 4]), randn([5, 4]), randn([5, 2]), { slidingWindow: 2 });
    assert.deepEqual([out.shape, lse.shape, lse.dtype], [[3, 2], [3], "float32"]);
  });
});

describe("attentionWeights of selected rows and heads", () => {
  for (const backend of conformanceBackends()) {
    test(`equals the materialised weights' rows and heads, every option on [${backend}]`, () => {
      const c = SPECS[14];
      const x = inputs(c, "float64");
      const opts = options(c, x);
      const all = attentionWeights(x.q, x.k, opts); // [2, 4, 19, 27]
      const heads = [3, 0];
      const part = attentionWeights(x.q, x.k, { ...opts, rows: [5, 12], heads });
      assert.deepEqual(part.shape, [2, 2, 7, 27]);
      for (let b = 0; b < 2; b++) heads.forEach((h, hi) => {
        for (let l = 5; l < 12; l++) for (let s = 0; s < 27; s++) {
          const want = all.values[((b * 4 + h) * 19 + l) * 27 + s], got = part.values[((b * 2 + hi) * 7 + l - 5) * 27 + s];
          assert.ok(Math.abs(want - got) < 1e-14, `(${b}, ${h}, ${l}, ${s}): ${got} vs ${want}`);
        }
      });
    });
  }
  test("rows alone, float32, unbatched; bad rows and heads are clear errors", () => {
    const q = randn([6, 4], { seed: 1 }), k = randn([7, 4], { seed: 2 });
    const w = attentionWeights(q, k, { rows: [2, 4], isCausal: true });
    assert.deepEqual([w.shape, w.dtype], [[2, 7], "float32"]);
    assert.ok(relError(w, slice(attentionWeights(q, k, { isCausal: true }), 0, 2, 4)) < 1e-6);
    assert.throws(() => attentionWeights(q, k, { rows: [4, 2] }), (e: unknown) => e instanceof ArgumentError && /rows must be \[start, end\] with 0 <= start <= end <= L = 6, got \[4,2\]/.test(String(e)));
    assert.throws(() => attentionWeights(q, k, { heads: [1] }), /heads must be an array of query head indices in \[0, 0\], got \[1\]/);
  });
});

describe("bad input is a clear error", () => {
  const q = randn([1, 2, 4, 3]), k = randn([1, 2, 5, 3]);
  const call = (o: Record<string, unknown>): unknown => scaledDotProductAttention(q, k, k, o as SdpaOptions);
  const cases: [string, Record<string, unknown>, typeof ArgumentError, RegExp][] = [
    ["a window with a negative side", { slidingWindow: [-1, 0] }, ArgumentError, /slidingWindow must be a positive integer w .* got \[-1, 0\]/],
    ["a window of 0 keys", { slidingWindow: 0 }, ArgumentError, /slidingWindow must be .* got 0/],
    ["slopes of the wrong length", { alibiSlopes: [0.5] }, ShapeError, /alibiSlopes must have one slope per query head \(2\); got 1/],
    ["slopes as a Tensor of the wrong shape", { alibiSlopes: randn([3]) }, ShapeError, /alibiSlopes must have one slope per query head, shape \[2\]; got \[3\]/],
    ["a misspelt default", { alibiSlopes: "paper" }, ArgumentError, /alibiSlopes must be an array of numbers, a Tensor \[H\] or "default", got "paper"/],
    ["softcap 0", { softcap: 0 }, ArgumentError, /softcap must be a positive finite number .* got 0/],
    ["softcap negative", { softcap: -2 }, ArgumentError, /softcap must be a positive finite number .* got -2/],
    ["sinks of the wrong shape", { sinks: randn([1, 2]) }, ShapeError, /sinks must have one logit per query head, shape \[2\]; got \[1, 2\]/],
    ["sinks that are ids", { sinks: tensor([1, 2], undefined, { dtype: "int32" }) }, ArgumentError, /sinks must be float32 or float64, got int32/],
    ["document ids as floats", { documents: { query: randn([1, 4]), key: randn([1, 5]) } }, ArgumentError, /documents.query must be int32 document ids, got float32/],
    ["document ids of the wrong length", { documents: { query: tensor([[0, 0, 1]], undefined, { dtype: "int32" }), key: tensor([[0, 0, 1, 1, 1]], undefined, { dtype: "int32" }) } }, ShapeError, /documents.query of shape \[1, 3\] does not broadcast to \[1, 4\] \(\[N.., L\]\)/],
    ["a block mask for other sizes", { blockMask: createBlockMask(() => true, { batch: 1, heads: 1, L: 4, S: 6 }) }, ShapeError, /blockMask was built for batch 1, heads 1, L 4, S 6; this call has batch 1, heads 2, L 4, S 5/],
    ["a block mask for 3 heads", { blockMask: createBlockMask(() => true, { batch: 1, heads: 3, L: 4, S: 5 }) }, ShapeError, /blockMask was built for batch 1, heads 3/],
    ["a hand-made block mask", { blockMask: { L: 4 } }, ArgumentError, /blockMask must be made by createBlockMask/],
    ["a misspelt option", { slidingWindows: 3 }, ArgumentError, /unknown option "slidingWindows".*did you mean "slidingWindow"/],
  ];
  for (const [what, o, E, re] of cases) {
    test(what, () => assert.throws(() => call(o), (e: unknown) => e instanceof E && re.test(String(e)), String((() => { try { call(o); } catch (e) { return e; } })())));
  }
  test("BlockMask is exported for instanceof checks", () => assert.ok(createBlockMask(() => true, { batch: 1, heads: 1, L: 1, S: 1 }) instanceof BlockMask));
});

describe("1 and 2 threads give bitwise the same results", () => {
  for (const backend of conformanceBackends()) {
    describe(backend, () => {
      onBackend(backend);
      test("every option at once, float32, forward and backward", () => {
        const saved = getNumThreads();
        try {
          const runs = [1, 2].map((n) => { setNumThreads(n); return runFlex(SPECS[14], "float32", "fused"); });
          assert.deepEqual(runs[0].out.values, runs[1].out.values);
          for (const name of Object.keys(runs[0].grads)) assert.deepEqual(runs[0].grads[name].values, runs[1].grads[name].values, name);
        } finally {
          setNumThreads(saved);
        }
      });
    });
  }
});
