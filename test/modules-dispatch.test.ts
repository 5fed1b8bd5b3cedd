/**
 * What the attention modules hand the kernels. A spy backend (the registry's pattern, see
 * test/registry.test.ts) records every fused attention call: causality must arrive as the flag
 * ("top-left", or "bottom-right" with a KV cache), so the kernel can skip hidden tiles, and key
 * padding as a [N, 1, 1, S] bool mask (strides [S, 0, 0, 1]); never an L x S causal mask.
 * Then the flag path is checked against PyTorch (the gqa_kpm_causal fixture, replayed with
 * needWeights: false so that it runs the fused kernels).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type AttentionParams, type Backend, GPT, GroupedQueryAttention, KVCache, MultiheadAttention, type Tensor, cast, causalMask,
  findBackend, getBackendName, noGrad, paddingMask, randn, registerBackend, setBackend,
} from "../src/index.js";
import { TOL, assertClose, input, loadFixture } from "./harness.js";

interface Seen {
  H: number;
  Hkv: number;
  L: number;
  S: number;
  causal: string;
  mask: { kind: string; strides: number[]; size: number; data: number[] } | null;
}

const seen: Seen[] = [];
const backwardSeen: string[] = [];

function record(p: AttentionParams): Seen {
  const m = p.mask;
  return {
    H: p.H, Hkv: p.Hkv, L: p.L, S: p.S, causal: p.causal,
    mask: m && { kind: m.kind, strides: [...m.strides], size: m.data.length, data: Array.from(m.data) },
  };
}

let saved = "";
before(() => {
  const ref = findBackend("ref")!;
  const spy: Backend = {
    name: "dispatch-spy",
    matmul: (out, a, b, p) => ref.matmul(out, a, b, p),
    attentionForward(p, q, k, v, out, lse) {
      seen.push(record(p));
      ref.attentionForward(p, q, k, v, out, lse);
    },
    attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv) {
      backwardSeen.push(p.causal);
      ref.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
    },
  };
  registerBackend("dispatch-spy", () => spy, { priority: -1 });
  saved = getBackendName();
  setBackend("dispatch-spy");
});
after(() => setBackend(saved));

/** The fused calls f makes. */
function calls(f: () => void): Seen[] {
  seen.length = 0;
  f();
  return [...seen];
}

const x = randn([2, 5, 8], { seed: 1 }); // [N, L, C], batch-first

describe("the modules pass causality to the kernel as a flag", () => {
  test("MultiheadAttention and GroupedQueryAttention, isCausal: top-left, no mask", () => {
    const mha = new MultiheadAttention(8, 2, { batchFirst: true });
    const gqa = new GroupedQueryAttention(8, 4, 2, { batchFirst: true });
    assert.deepEqual(calls(() => mha.forward(x, x, x, { isCausal: true, needWeights: false })),
      [{ H: 2, Hkv: 2, L: 5, S: 5, causal: "top-left", mask: null }]);
    assert.deepEqual(calls(() => gqa.forward(x, x, x, { isCausal: true, needWeights: false })),
      [{ H: 4, Hkv: 2, L: 5, S: 5, causal: "top-left", mask: null }]);
    assert.deepEqual(calls(() => mha.forward(x, x, x, { isCausal: true, causalAlignment: "bottom-right", needWeights: false }))[0].causal, "bottom-right");
  });

  test("backward runs with the same flag", () => {
    const mha = new MultiheadAttention(8, 2, { batchFirst: true });
    backwardSeen.length = 0;
    mha.forward(x, x, x, { isCausal: true, needWeights: false })[0].sum().backward();
    assert.deepEqual(backwardSeen, ["top-left"]);
  });

  test("key padding reaches the kernel as [N, 1, 1, S] (strides [S, 0, 0, 1]), with the flag beside it", () => {
    const gqa = new GroupedQueryAttention(8, 4, 2, { batchFirst: true });
    const pad = paddingMask([5, 3], 5); // row 1: keys 3, 4 are padding
    const [c] = calls(() => gqa.forward(x, x, x, { isCausal: true, keyPaddingMask: pad, needWeights: false }));
    assert.equal(c.causal, "top-left");
    assert.deepEqual(c.mask, { kind: "bool", strides: [5, 0, 0, 1], size: 2 * 5, data: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0] });
  });

  test("isCausal with an attnMask keeps the flag; the mask goes as given ([L, S]: strides [0, 0, S, 1])", () => {
    const mha = new MultiheadAttention(8, 2, { batchFirst: true });
    const band = causalMask(5, 5, "top-left"); // any [L, S] mask; the flag still comes separately
    const [c] = calls(() => mha.forward(x, x, x, { isCausal: true, attnMask: band, needWeights: false }));
    assert.equal(c.causal, "top-left");
    assert.deepEqual(c.mask!.strides, [0, 0, 5, 1]);
  });

  test("a KV cache: bottom-right, the new queries against every cached key; a one-token step runs decode.ts, not a kernel", () => {
    const mha = new MultiheadAttention(8, 2, { batchFirst: true });
    const cache = new KVCache();
    const got = calls(() => noGrad(() => {
      mha.forward(x, x, x, { isCausal: true, cache: cache.layer(0), needWeights: false }); // prefill 5
      const y = randn([2, 1, 8], { seed: 2 });
      mha.forward(y, y, y, { isCausal: true, cache: cache.layer(0), needWeights: false }); // one more: decodeAttention
      const z = randn([2, 2, 8], { seed: 3 });
      mha.forward(z, z, z, { isCausal: true, cache: cache.layer(0), needWeights: false }); // two more
    }));
    assert.deepEqual(got.map((c) => [c.causal, c.L, c.S, c.mask]), [["bottom-right", 5, 5, null], ["bottom-right", 2, 8, null]]);
  });

  test("GPT (MHA and GQA presets): every layer gets the flag; key padding stays [N, 1, 1, S]; a cache gives bottom-right (one-token steps: decode.ts)", () => {
    for (const preset of ["tiny", "tiny-gqa"] as const) {
      const model = new GPT(preset, { seed: 0 });
      model.eval();
      const idx = [[1, 2, 3, 4], [5, 6, 7, 8]];
      const L = model.config.numLayers;
      const plain = calls(() => noGrad(() => model.forward(idx)));
      assert.deepEqual(plain.map((c) => [c.causal, c.mask]), Array(L).fill(["top-left", null]), preset);
      const padded = calls(() => noGrad(() => model.forward(idx, { keyPaddingMask: paddingMask([4, 2], 4) })));
      assert.deepEqual(padded.map((c) => [c.causal, c.mask!.strides]), Array(L).fill(["top-left", [4, 0, 0, 1]]), preset);
      const cache = model.newCache();
      const cached = calls(() => noGrad(() => {
        model.forward(idx, { cache });
        model.forward([[9], [10]], { cache }); // one token: decodeAttention (decode.ts), no kernel call
        model.forward([[11, 12], [13, 14]], { cache });
      }));
      assert.deepEqual(cached.map((c) => [c.causal, c.L, c.S, c.mask]),
        [...Array(L).fill(["bottom-right", 4, 4, null]), ...Array(L).fill(["bottom-right", 2, 7, null])], preset);
    }
  });

  test("needWeights: true takes the math path (it forms the weights), so no fused call", () => {
    const mha = new MultiheadAttention(8, 2, { batchFirst: true });
    assert.deepEqual(calls(() => mha.forward(x, x, x, { isCausal: true })), []);
  });

  test("addBiasKv / addZeroAttn with isCausal: the extra keys are always attendable, so only then the rule is drawn out", () => {
    const mha = new MultiheadAttention(8, 2, { batchFirst: true, addBiasKv: true, addZeroAttn: true });
    const [c] = calls(() => mha.forward(x, x, x, { isCausal: true, needWeights: false }));
    assert.equal(c.causal, "none");
    assert.equal(c.S, 7);
    // row l sees keys 0..l and the two extra columns 5, 6
    const rows = Array.from({ length: 5 }, (_, l) => c.mask!.data.slice(l * 7, l * 7 + 7));
    assert.deepEqual(rows, Array.from({ length: 5 }, (_, l) => Array.from({ length: 7 }, (_, s) => (s <= l || s >= 5 ? 1 : 0))));
  });
});

describe("the flag path against PyTorch", () => {
  for (const precision of ["float32", "float64"] as const) {
    test(`gqa_kpm_causal through the fused kernels (needWeights: false, ${precision})`, () => {
      const f = loadFixture("gqa_kpm_causal");
      const o = f.options as { embedDim: number; numQueryHeads: number; numKvHeads: number };
      const m = new GroupedQueryAttention(o.embedDim, o.numQueryHeads, o.numKvHeads, { dtype: precision });
      const params: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(f.t)) if (k.startsWith("param.")) params[k.slice(6)] = cast(v, precision);
      m.loadStateDict(params);
      m.eval();
      const q = input(f.t.query, precision, true), k = input(f.t.key, precision, true), v = input(f.t.value, precision, true);
      let out: Tensor | null = null;
      const got = calls(() => {
        [out] = m.forward(q, k, v, { isCausal: true, keyPaddingMask: f.t.keyPaddingMask, needWeights: false });
      });
      assert.deepEqual(got.map((c) => [c.causal, c.mask!.strides]), [["top-left", [6, 0, 0, 1]]]);
      assertClose(out!, f.t.out, TOL[precision].out, "out");
      out!.backward(input(f.t.grad_out, precision));
      for (const [name, t] of [["query", q], ["key", k], ["value", v]] as const) assertClose(t.grad, f.t[`grad_${name}`], TOL[precision].grad, `grad_${name}`);
      for (const [name, p] of m.namedParameters()) assertClose(p.grad, f.t[`grad_param.${name}`], TOL[precision].grad, `grad_param.${name}`);
    });
  }
});
