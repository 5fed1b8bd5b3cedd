/**
 * The attention modules hand the fused kernels their projections as they come, heads interleaved
 * ([N, T, H*hd], AttentionParams.layout), instead of splitting the heads into [N, H, T, hd] copies and
 * merging the output back. Here that path is shown to give the same bits, output and gradients, as
 * the readable steps written out from the module's weights with public ops:
 *
 *   q, k, v = linear(x, W_q, b_q), ...                 [N, T, C] -> [N, T, H*hd]
 *   split   = permute(reshape(t, [N, T, H, hd]), [0, 2, 1, 3])                    -> [N, H, T, hd]
 *   y       = scaledDotProductAttention(q, k, v, opts)                           [N, H, L, hd]
 *   out     = out_proj(reshape(permute(y, [0, 2, 1, 3]), [N, L, H*hd]))          -> [N, L, C]
 *
 * on every registered backend (the wasm kernels stage the rows where they are; ref copies them into
 * heads-first order first, kernels/layout.ts), on odd sizes (hd = 5, L = 17, S = 33; hd = 3 for GQA).
 * The PyTorch fixtures (fixtures.test.ts, modules-dispatch.test.ts) run through the same path.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type AttentionParams, type Backend, Generator, GroupedQueryAttention, MultiheadAttention, type Tensor, findBackend, getBackendName,
  linear, logicalNot, noGrad, paddingMask, permute, randn, registerBackend, reshape, scaledDotProductAttention, setBackend, slice, where,
} from "../src/index.js";
import type { AttentionLayout, RowStrides } from "../src/kernels/backend.js";
import { refBackend, wasmAvailable, wasmBackend, wasmTuning } from "../src/kernels/index.js";
import { conformanceBackends, onBackend } from "./backends.js";
import { merge, sameBits, split, withGrads, withLayoutSpy } from "./heads-layout.js";


const N = 2, L = 17, S = 33;

for (const backend of conformanceBackends()) {
  describe(`modules on interleaved heads equal split / sdpa / merge, bit for bit [${backend}]`, () => {
    onBackend(backend);

    test("MultiheadAttention self-attention without gradient (one in_proj product, its thirds read in place), causal, float32", () => {
      const mha = new MultiheadAttention(15, 3, { batchFirst: true, seed: 3 });
      const x = randn([N, L, 15], { seed: 1 });
      const [got] = noGrad(() => mha.forward(x, x, x, { isCausal: true, needWeights: false }));
      const want = noGrad(() => {
        const y3 = linear(x, mha.in_proj_weight!, mha.in_proj_bias); // [N, L, 45]
        const [q, k, v] = [0, 1, 2].map((i) => split(slice(y3, 2, i * 15, (i + 1) * 15), 3));
        return mha.out_proj.forward(merge(scaledDotProductAttention(q, k, v, { isCausal: true })));
      });
      sameBits(got, want, "output");
    });

    for (const dtype of ["float32", "float64"] as const) {
      test(`MultiheadAttention cross-attention with gradients, key padding and a float attnMask (kdim 7, vdim 11, ${dtype})`, () => {
        const mha = new MultiheadAttention(15, 3, { batchFirst: true, kdim: 7, vdim: 11, seed: 4, dtype });
        const x = randn([N, L, 15], { seed: 1, dtype, requiresGrad: true });
        const mem = randn([N, S, 7], { seed: 2, dtype, requiresGrad: true });
        const val = randn([N, S, 11], { seed: 3, dtype, requiresGrad: true });
        const pad = paddingMask([S, 20], S); // [N, S]: true where padding (row 1: keys 20..)
        const bias = randn([L, S], { seed: 5, dtype }); // [L, S], added to the scores
        const g = randn([N, L, 15], { seed: 6, dtype });
        const leaves = [x, mem, val, mha.q_proj_weight!, mha.k_proj_weight!, mha.v_proj_weight!, mha.in_proj_bias!, mha.out_proj.weight];
        const [got, gotGrads] = withGrads(leaves, g, () => mha.forward(x, mem, val, { keyPaddingMask: pad, attnMask: bias, needWeights: false })[0]);
        const [want, wantGrads] = withGrads(leaves, g, () => {
          const b = mha.in_proj_bias!;
          const q = split(linear(x, mha.q_proj_weight!, slice(b, 0, 0, 15)), 3);
          const k = split(linear(mem, mha.k_proj_weight!, slice(b, 0, 15, 30)), 3);
          const v = split(linear(val, mha.v_proj_weight!, slice(b, 0, 30, 45)), 3);
          const allowed = logicalNot(reshape(pad, [N, 1, 1, S])); // [N, S] -> [N, 1, 1, S], true = may attend
          const mask = where(allowed, bias, -Infinity); // [N, 1, L, S]: the two masks combined as the module does
          return mha.out_proj.forward(merge(scaledDotProductAttention(q, k, v, { attnMask: mask })));
        });
        sameBits(got, want, "output");
        gotGrads.forEach((gr, i) => sameBits(gr, wantGrads[i], `gradient of leaf ${i}`));
      });
    }

    test("GroupedQueryAttention (4 query heads over 2, hd 3) with gradients, bottom-right causal, sinks, softcap and ALiBi", () => {
      const gqa = new GroupedQueryAttention(12, 4, 2, { batchFirst: true, seed: 5, bias: true, sinks: true, softcap: 4, alibi: true });
      gqa.sinks!.values.set([0.5, -1, 2, 0]);
      const x = randn([N, L, 12], { seed: 1, requiresGrad: true });
      const mem = randn([N, S, 12], { seed: 2, requiresGrad: true });
      const g = randn([N, L, 12], { seed: 6 });
      const leaves = [x, mem, gqa.q_proj.weight, gqa.k_proj.weight, gqa.v_proj.weight, gqa.o_proj.weight, gqa.sinks!];
      const opts = { isCausal: true, causalAlignment: "bottom-right", needWeights: false } as const;
      const [got, gotGrads] = withGrads(leaves, g, () => gqa.forward(x, mem, mem, opts)[0]);
      const [want, wantGrads] = withGrads(leaves, g, () => {
        const q = split(gqa.q_proj.forward(x), 4);
        const [k, v] = [split(gqa.k_proj.forward(mem), 2), split(gqa.v_proj.forward(mem), 2)];
        const y = scaledDotProductAttention(q, k, v, {
          isCausal: true, causalAlignment: "bottom-right", enableGqa: true, sinks: gqa.sinks, softcap: 4, alibiSlopes: gqa.alibiSlopes,
        });
        return gqa.o_proj.forward(merge(y));
      });
      sameBits(got, want, "output");
      gotGrads.forEach((gr, i) => sameBits(gr, wantGrads[i], `gradient of leaf ${i}`));
    });

    test("MultiheadAttention with dropout in training: the same seed from the module's generator, the same kept weights", () => {
      const gen = new Generator(0);
      const mha = new MultiheadAttention(15, 3, { batchFirst: true, dropout: 0.3, generator: gen });
      mha.train();
      const x = randn([N, L, 15], { seed: 1, requiresGrad: true });
      const g = randn([N, L, 15], { seed: 6 });
      const leaves = [x, mha.in_proj_weight!, mha.out_proj.weight];
      gen.manualSeed(9);
      const [got, gotGrads] = withGrads(leaves, g, () => mha.forward(x, x, x, { isCausal: true, needWeights: false })[0]);
      const [want, wantGrads] = withGrads(leaves, g, () => {
        const y3 = linear(x, mha.in_proj_weight!, mha.in_proj_bias); // [N, L, 45]: one product, as the module (and PyTorch) takes it
        const [q, k, v] = [0, 1, 2].map((i) => split(slice(y3, 2, i * 15, (i + 1) * 15), 3));
        return mha.out_proj.forward(merge(scaledDotProductAttention(q, k, v, { isCausal: true, dropoutP: 0.3, generator: new Generator(9) })));
      });
      sameBits(got, want, "output");
      gotGrads.forEach((gr, i) => sameBits(gr, wantGrads[i], `gradient of leaf ${i}`));
    });
  });
}

describe("what the kernels are handed", () => {
  test("the rows where the projections are: q, k, v of one [N, L, 3C] product (self-attention, with or without a gradient); the output [N, L, C]", () => {
    withLayoutSpy("layout-spy", (seen) => {
      const mha = new MultiheadAttention(8, 2, { batchFirst: true }); // hd 4
      const x = randn([2, 5, 8], { seed: 1 }); // [N, L, C]
      noGrad(() => mha.forward(x, x, x, { isCausal: true, needWeights: false }));
      // one [2, 5, 24] product: row (b, h, l) of q at b*120 + h*4 + l*24, k 8 columns on, v 16
      const out = { offset: 0, sb: 40, sh: 4, sl: 8 };
      assert.deepEqual(seen.splice(0), [{
        q: { offset: 0, sb: 120, sh: 4, sl: 24 }, k: { offset: 8, sb: 120, sh: 4, sl: 24 }, v: { offset: 16, sb: 120, sh: 4, sl: 24 }, out,
      }]);
      const xg = randn([2, 5, 8], { seed: 1, requiresGrad: true });
      mha.forward(xg, xg, xg, { isCausal: true, needWeights: false })[0].sum().backward();
      const thirds = { q: { offset: 0, sb: 120, sh: 4, sl: 24 }, k: { offset: 8, sb: 120, sh: 4, sl: 24 }, v: { offset: 16, sb: 120, sh: 4, sl: 24 }, out };
      assert.deepEqual(seen.splice(0), [thirds, thirds]); // forward, backward: the same one product
      // weights wanted: the math path, no fused call
      mha.forward(xg, xg, xg, { isCausal: true });
      assert.deepEqual(seen.splice(0), []);
    });
  });

  test("a backend that does not declare attentionLayout gets heads-first copies, and the same bits back", () => {
    const ref = findBackend("ref")!;
    const seen: Array<AttentionParams["layout"]> = [];
    const plain: Backend = { // written for the contiguous form only: ignores p.layout
      name: "heads-first-only",
      matmul: (out, a, b, p) => ref.matmul(out, a, b, p),
      attentionForward(p, q, k, v, out, lse, lseLo) { seen.push(p.layout); ref.attentionForward({ ...p, layout: null }, q, k, v, out, lse, lseLo); },
      attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo) {
        seen.push(p.layout);
        ref.attentionBackward({ ...p, layout: null }, q, k, v, out, dout, lse, dq, dk, dv, lseLo);
      },
    };
    registerBackend("heads-first-only", () => plain, { priority: -1 });
    const saved = getBackendName();
    const mha = new MultiheadAttention(15, 3, { batchFirst: true, seed: 3 });
    const x = randn([N, L, 15], { seed: 1, requiresGrad: true });
    const g = randn([N, L, 15], { seed: 6 });
    const leaves = [x, mha.in_proj_weight!];
    const run = (): [Tensor, (Tensor | null)[]] => withGrads(leaves, g, () => mha.forward(x, x, x, { isCausal: true, needWeights: false })[0]);
    try {
      setBackend("ref");
      const [want, wantGrads] = run();
      setBackend("heads-first-only");
      const [got, gotGrads] = run();
      assert.deepEqual(seen, [null, null]); // forward, backward: heads-first
      sameBits(got, want, "output");
      gotGrads.forEach((gr, i) => sameBits(gr, wantGrads[i], `gradient of leaf ${i}`));
    } finally {
      setBackend(saved);
    }
  });
});

/** A seeded float32 array of n values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = x / 2 ** 31 - 1;
  }
  return a;
}

describe("the kernels on interleaved rows equal the kernels on heads-first copies, bit for bit", () => {
  // B 2, H 4 over Hkv 2, L 17, S 33, E 5 and Ev 3 (padded to 8 in wasm memory), causal, a bool mask
  const [B, H, Hkv, L, S, E, Ev] = [2, 4, 2, 17, 33, 5, 3];
  const C = H * E, Ck = Hkv * E, Cv = Hkv * Ev;
  const mask = { kind: "bool" as const, data: Uint8Array.from({ length: B * S }, (_, i) => (i % 7 === 3 ? 0 : 1)), strides: [S, 0, 0, 1] as [number, number, number, number] };
  const base: AttentionParams = { B, H, Hkv, L, S, E, Ev, scale: 0.4, causal: "bottom-right", mask, dropoutP: 0.2, dropoutSeed: 11, softcap: 3 };
  /** [B, heads, T, D] heads-first, out of the rows of `arr` at strides s */
  const gather = (arr: Float32Array, s: RowStrides, heads: number, T: number, D: number): Float32Array => {
    const out = new Float32Array(B * heads * T * D);
    for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let t = 0; t < T; t++) {
      for (let d = 0; d < D; d++) out[((b * heads + h) * T + t) * D + d] = arr[s.offset + b * s.sb + h * s.sh + t * s.sl + d];
    }
    return out;
  };
  const rows = (offset: number, T: number, X: number, D: number): RowStrides => ({ offset, sb: T * X, sh: D, sl: X });
  // self-attention's shape: q, k, v side by side in one [B, T, C + Ck + Cv] (L = S here), and cross-attention's: one array each
  const layouts: Array<[string, number, AttentionLayout]> = [
    ["q, k, v as columns of one array [B, L, C + Ck + Cv] (L = S)", L, {
      q: rows(0, L, C + Ck + Cv, E), k: rows(C, L, C + Ck + Cv, E), v: rows(C + Ck, L, C + Ck + Cv, Ev), out: rows(0, L, C, Ev),
    }],
    ["q, k, v in arrays of their own, k and v with spare columns around their heads", S, {
      q: rows(0, L, C, E), k: rows(2, S, Ck + 3, E), v: rows(1, S, Cv + 2, Ev), out: rows(1, L, H * Ev + 1, Ev),
    }],
  ];
  const backends = [["ref", refBackend], ...(wasmAvailable() ? [["wasm", wasmBackend]] : [])] as const;
  for (const [name, Skv, layout] of layouts) {
    for (const [bname, be] of backends) {
      for (const small of [false, true]) {
        test(`${name} [${bname}${small ? ", a kv group per staging round, 3 rows per moved block" : ""}]`, () => {
          const p: AttentionParams = { ...base, S: Skv, mask: { ...mask, data: mask.data.subarray(0, B * Skv), strides: [Skv, 0, 0, 1] }, layout };
          const span = (s: RowStrides, heads: number, T: number, D: number): number => s.offset + (B - 1) * s.sb + (heads - 1) * s.sh + (T - 1) * s.sl + D;
          const shared = layout.q.sl === layout.k.sl && layout.k.offset > 0 && layout.k.sl === C + Ck + Cv;
          const qa = values(shared ? B * L * (C + Ck + Cv) : span(layout.q, H, L, E), 1);
          const ka = shared ? qa : values(span(layout.k, Hkv, Skv, E), 2);
          const va = shared ? qa : values(span(layout.v, Hkv, Skv, Ev), 3);
          const outLen = span(layout.out, H, L, Ev);
          const gOut = values(outLen, 4);
          const hf: AttentionParams = { ...p, layout: null };
          const [q, k, v] = [gather(qa, layout.q, H, L, E), gather(ka, layout.k, Hkv, Skv, E), gather(va, layout.v, Hkv, Skv, Ev)];
          const dout = gather(gOut, layout.out, H, L, Ev);
          const saved = { budget: wasmTuning.stagingBudget, move: wasmTuning.moveFloats };
          if (small) Object.assign(wasmTuning, { stagingBudget: 1, moveFloats: 3 * (C + Ck + Cv) });
          try {
            // heads-first: the reference of this test
            const out = new Float32Array(B * H * L * Ev), lse = new Float64Array(B * H * L), lo = new Float64Array(B * H * L);
            be.attentionForward(hf, q, k, v, out, lse, lo);
            const [dq, dk, dv] = [new Float32Array(q.length), new Float32Array(k.length), new Float32Array(v.length)];
            be.attentionBackward(hf, q, k, v, out, dout, lse, dq, dk, dv, lo);
            // interleaved: the spare columns of out and of the gradients must keep what they held (NaN here)
            const outI = new Float32Array(outLen).fill(NaN), lseI = new Float64Array(B * H * L), loI = new Float64Array(B * H * L);
            be.attentionForward(p, qa, ka, va, outI, lseI, loI);
            assert.deepEqual(gather(outI, layout.out, H, L, Ev), out, "out");
            assert.deepEqual(lseI, lse, "lse");
            if (layout.out.offset > 0) assert.ok(Number.isNaN(outI[0]), "a column of no head was written");
            const dqa = new Float32Array(qa.length).fill(NaN);
            const dka = shared ? dqa : new Float32Array(ka.length).fill(NaN);
            const dva = shared ? dqa : new Float32Array(va.length).fill(NaN);
            const outForBwd = new Float32Array(outLen);
            for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++) {
              const s = layout.out;
              outForBwd.set(out.subarray(((b * H + h) * L + l) * Ev, ((b * H + h) * L + l + 1) * Ev), s.offset + b * s.sb + h * s.sh + l * s.sl);
            }
            be.attentionBackward(p, qa, ka, va, outForBwd, gOut, lseI, dqa, dka, dva, loI);
            assert.deepEqual(gather(dqa, layout.q, H, L, E), dq, "dq");
            assert.deepEqual(gather(dka, layout.k, Hkv, Skv, E), dk, "dk");
            assert.deepEqual(gather(dva, layout.v, Hkv, Skv, Ev), dv, "dv");
            if (!shared) assert.ok(Number.isNaN(dka[0]) && Number.isNaN(dva[0]), "a column of no head was written");
          } finally {
            Object.assign(wasmTuning, { stagingBudget: saved.budget, moveFloats: saved.move });
          }
        });
      }
    }
  }
});
