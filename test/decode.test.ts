/**
 * The decode step's attention (src/attention/decode.ts): one query per head read against a KV
 * cache's storage in place. Checked against a hand-worked example and against the textbook path
 * (scaledDotProductAttention, implementation "math") on odd sizes, grouped heads, both dtypes, each
 * causal alignment, and a cache whose capacity exceeds its length (rows strided by capacity); with
 * the flexible options (sliding window, ALiBi, softcap, sinks) against the textbook path's own
 * drawing of them, contiguous and paged; and modules/GPTs whose cached one-token steps take this
 * path (no fused kernel call, seen by a spy backend) equal recomputing the whole sequence.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type Backend, Tensor, cast, findBackend, getBackendName, linear, noGrad, permute, randn, registerBackend, reshape, scaledDotProductAttention,
  setBackend, slice,
} from "../src/index.js";
import { GroupedQueryAttention, KVCache, KVCacheLayer, MultiheadAttention, PagedKVCache } from "../src/nnNamespace.js";
import { GPT, type GPTConfig, gptConfig } from "../src/models/index.js";
import { DecodeBuffers, TransformerBlock, decodesInPlace } from "../src/models/blocks.js";
import { Generator } from "../src/tensor/random.js";
import { RotaryEmbedding } from "../src/attention/rope.js";
import { type DecodeFlex, decodeAttention } from "../src/attention/decode.js";
import { assertClose, relError } from "./harness.js";

/** A self-attention cache layer holding keys [N, Hkv, S, E] and values [N, Hkv, S, Ev], pushed in two parts so it grows. */
function filled(k: Tensor, v: Tensor, first: number): KVCacheLayer {
  const layer = new KVCacheLayer("self", "test", 2);
  const [N, Hkv, S, E] = k.shape;
  const Ev = v.shape[3];
  const part = (t: Tensor, D: number, from: number, to: number): Tensor => {
    const out = new (t.values.constructor as Float32ArrayConstructor)(N * Hkv * (to - from) * D);
    for (let r = 0; r < N * Hkv; r++) out.set(t.values.subarray((r * S + from) * D, (r * S + to) * D), r * (to - from) * D);
    return new Tensor(out, [N, Hkv, to - from, D], t.dtype);
  };
  if (first > 0) layer.push(part(k, E, 0, first), part(v, Ev, 0, first));
  if (first < S) layer.push(part(k, E, first, S), part(v, Ev, first, S));
  return layer;
}

describe("decodeAttention", () => {
  test("hand-worked: q·k = 1, 0 -> softmax ≈ [0.731, 0.269], out = 0.731 * 2 + 0.269 * 0 ≈ 1.462", () => {
    const k = new Tensor(Float64Array.from([1, 0, 0, 0]), [1, 1, 2, 2]); // keys [1, 0] and [0, 0]
    const v = new Tensor(Float64Array.from([2, 0]), [1, 1, 2, 1]); // values 2 and 0
    const out = decodeAttention(Float64Array.from([1, 0]), filled(k, v, 1).storage()!, 1, 1, null);
    const p = Math.E / (Math.E + 1);
    assert.ok(Math.abs(out[0] - 2 * p) < 1e-15, `got ${out[0]}, expected ${2 * p}`);
    // top-left causal: the single query sees key 0 only, so out = value 0 = 2
    assert.equal(decodeAttention(Float64Array.from([1, 0]), filled(k, v, 1).storage()!, 1, 1, "top-left")[0], 2);
  });

  for (const dtype of ["float32", "float64"] as const) {
    test(`equals the textbook path: S ∈ {1, 3, 17, 33, 257}, G ∈ {1, 2, 4}, every causal alignment (${dtype})`, () => {
      const tol = dtype === "float32" ? 2e-6 : 1e-12;
      let seed = 10;
      for (const S of [1, 3, 17, 33, 257]) {
        for (const [H, Hkv] of [[3, 3], [4, 2], [4, 1]]) {
          const [N, E, Ev] = [2, 5, 7];
          const q = randn([N, H, 1, E], { seed: seed++, dtype });
          const k = randn([N, Hkv, S, E], { seed: seed++, dtype });
          const v = randn([N, Hkv, S, Ev], { seed: seed++, dtype });
          const kv = filled(k, v, S >> 1).storage()!;
          assert.ok(kv.capacity > kv.length, `capacity ${kv.capacity}, length ${kv.length}`); // rows strided by capacity, not length
          for (const causal of [null, "bottom-right", "top-left"] as const) {
            const scale = 1 / Math.sqrt(E);
            const got = new Tensor(decodeAttention(q.values as Float32Array, kv, H, scale, causal), [N, H, 1, Ev], dtype);
            const want = scaledDotProductAttention(q, k, v, {
              implementation: "math", enableGqa: true, isCausal: causal !== null, causalAlignment: causal ?? undefined,
            });
            assertClose(got, want, tol, `S ${S}, H ${H}, Hkv ${Hkv}, causal ${causal}`);
          }
        }
      }
    });
  }

  test("a NaN in one head's query makes that head's row NaN, as softmax does; the other heads are untouched", () => {
    const q = randn([1, 2, 1, 4], { seed: 1, dtype: "float64" });
    const k = randn([1, 2, 6, 4], { seed: 2, dtype: "float64" });
    const v = randn([1, 2, 6, 3], { seed: 3, dtype: "float64" });
    q.values[5] = NaN; // head 1
    const out = decodeAttention(q.values as Float64Array, filled(k, v, 3).storage()!, 2, 0.5, null);
    assert.ok([0, 1, 2].every((e) => Number.isFinite(out[e])));
    assert.ok([3, 4, 5].every((e) => Number.isNaN(out[e])));
  });
});

describe("KVCacheLayer.push / storage", () => {
  test("storage is read in place: position s of row r at (r * capacity + s) * E; growing keeps the rows", () => {
    const layer = new KVCacheLayer("self", "test", 2);
    assert.equal(layer.storage(), null);
    const k = new Tensor(Float32Array.from([1, 2, 3, 4]), [1, 2, 1, 2]); // [N, Hkv, T, E] = [1, 2, 1, 2]: row 0 [1, 2], row 1 [3, 4]
    layer.push(k, k);
    layer.push(k, k);
    layer.push(k, k); // capacity 2 -> 4
    const st = layer.storage()!;
    assert.deepEqual([st.length, st.capacity, st.N, st.heads, st.E, st.Ev], [3, 4, 1, 2, 2, 2]);
    for (let s = 0; s < 3; s++) {
      assert.deepEqual(Array.from(st.keys.subarray((0 * 4 + s) * 2, (0 * 4 + s) * 2 + 2)), [1, 2]);
      assert.deepEqual(Array.from(st.keys.subarray((1 * 4 + s) * 2, (1 * 4 + s) * 2 + 2)), [3, 4]);
    }
    const [kk] = layer.keysValues()!;
    assert.deepEqual(Array.from(kk.values), [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4]);
  });

  test("a filled cross layer refuses another push", () => {
    const layer = new KVCacheLayer("cross", "cross 0");
    const k = randn([1, 1, 3, 2], { seed: 1 });
    layer.push(k, k);
    assert.throws(() => layer.push(k, k), /KVCacheLayer\.push: cross 0 is a cross-attention \(static\) layer that is already filled/);
  });
});

/** No option, the options one at a time and together (window [left, right]; sinks away from 0 so that they matter). */
const FLEX: [string, (H: number) => Omit<DecodeFlex, "alignment">][] = [
  ["no option", () => ({ window: null, alibiSlopes: null, softcap: null, sinks: null })],
  ["window [3, 0]", () => ({ window: { left: 3, right: 0 }, alibiSlopes: null, softcap: null, sinks: null })],
  ["window [2, 1]", () => ({ window: { left: 2, right: 1 }, alibiSlopes: null, softcap: null, sinks: null })],
  ["ALiBi", (H) => ({ window: null, alibiSlopes: Array.from({ length: H }, (_, h) => 0.5 / (h + 1)), softcap: null, sinks: null })],
  ["softcap 0.7", () => ({ window: null, alibiSlopes: null, softcap: 0.7, sinks: null })],
  ["sinks", (H) => ({ window: null, alibiSlopes: null, softcap: null, sinks: Array.from({ length: H }, (_, h) => 1 - 0.6 * h) })],
  ["everything", (H) => ({
    window: { left: 4, right: 0 }, alibiSlopes: Array.from({ length: H }, (_, h) => 0.3 * (h + 1)), softcap: 1.5, sinks: Array.from({ length: H }, (_, h) => 0.5 * h - 1),
  })],
];

/** The textbook path's reading of the same options (flexPlan.ts draws each out as a mask, bias or column). */
function textbook(q: Tensor, k: Tensor, v: Tensor, scale: number, causal: "top-left" | "bottom-right" | null, f: DecodeFlex): Tensor {
  const w = f.window;
  return scaledDotProductAttention(q, k, v, {
    implementation: "math", enableGqa: true, scale, isCausal: causal !== null, causalAlignment: f.alignment,
    slidingWindow: w && [w.left, w.right], alibiSlopes: f.alibiSlopes && Array.from(f.alibiSlopes), softcap: f.softcap,
    sinks: f.sinks && new Tensor(Float64Array.from(f.sinks), [f.sinks.length], "float64"),
  });
}

describe("decodeAttention with the flexible options", () => {
  test("hand-worked: softcap 1 turns scores 2, 0 into tanh 2 ≈ 0.964, 0; a sink of logit 0 adds e^0 to the sum", () => {
    const k = new Tensor(Float64Array.from([2, 0]), [1, 1, 2, 1]); // keys 2 and 0
    const v = new Tensor(Float64Array.from([1, 0]), [1, 1, 2, 1]); // values 1 and 0
    const kv = filled(k, v, 1).storage()!;
    const f: DecodeFlex = { alignment: "bottom-right", window: null, alibiSlopes: null, softcap: 1, sinks: [0] };
    const got = decodeAttention(Float64Array.from([1]), kv, 1, 1, null, f)[0];
    const a = Math.exp(Math.tanh(2)); // out = e^tanh2 · 1 / (e^tanh2 + e^0 + e^0 (the sink))
    assert.ok(Math.abs(got - a / (a + 2)) < 1e-15, `got ${got}, expected ${a / (a + 2)}`);
    // ALiBi slope 1, bottom-right: the query is position 1; key 0 is 1 away: scores 2 - 1, 0 -> out = e / (e + 1)
    const g2 = decodeAttention(Float64Array.from([1]), kv, 1, 1, null, { ...f, softcap: null, sinks: null, alibiSlopes: [1] })[0];
    assert.ok(Math.abs(g2 - Math.E / (Math.E + 1)) < 1e-15, `got ${g2}`);
    // a window [0, 0] (bottom-right): only the query's own position 1 (value 0) -> out = 0
    assert.equal(decodeAttention(Float64Array.from([1]), kv, 1, 1, null, { ...f, softcap: null, sinks: null, window: { left: 0, right: 0 } })[0], 0);
  });

  for (const [name, make] of FLEX) {
    test(`${name}: equals the textbook path, contiguous cache, S ∈ {1, 3, 17, 33}, grouped heads, both alignments, causal or not`, () => {
      let seed = 300;
      for (const S of [1, 3, 17, 33]) {
        for (const [H, Hkv] of [[3, 3], [4, 2]]) {
          const [N, E, Ev] = [2, 9, 17]; // Ev 17: two blocks of eight output dims and one more
          const q = randn([N, H, 1, E], { seed: seed++, dtype: "float64" });
          const k = randn([N, Hkv, S, E], { seed: seed++, dtype: "float64" });
          const v = randn([N, Hkv, S, Ev], { seed: seed++, dtype: "float64" });
          const kv = filled(k, v, S >> 1).storage()!;
          for (const alignment of ["bottom-right", "top-left"] as const) {
            for (const causal of [null, alignment]) {
              const f: DecodeFlex = { alignment, ...make(H) };
              const got = new Tensor(decodeAttention(q.values as Float64Array, kv, H, 0.45, causal, f), [N, H, 1, Ev], "float64");
              assertClose(got, textbook(q, k, v, 0.45, causal, f), 1e-12, `S ${S}, H ${H}, Hkv ${Hkv}, ${alignment}, causal ${causal}`);
            }
          }
        }
      }
    });
  }

  test("paged blocks, rows of different lengths: each row measured from its own last position (bottom-right), blockSize 1, 4", () => {
    let seed = 500;
    for (const B of [1, 4]) {
      for (const [name, make] of FLEX) {
        const lens = [17, 1, 9, 3];
        const [H, Hkv, E, Ev] = [4, 2, 5, 3];
        const cache = new PagedKVCache({ blockSize: B });
        const layer = cache.layer(0);
        const k = lens.map((S) => randn([1, Hkv, S, E], { seed: seed++, dtype: "float64" }));
        const v = lens.map((S) => randn([1, Hkv, S, Ev], { seed: seed++, dtype: "float64" }));
        lens.forEach((_, n) => {
          cache.select([n]);
          layer.push(k[n], v[n]);
        });
        cache.select([0, 1, 2, 3]);
        const q = randn([4, H, 1, E], { seed: seed++, dtype: "float64" });
        const f: DecodeFlex = { alignment: "bottom-right", ...make(H) };
        const got = new Tensor(decodeAttention(q.values as Float64Array, layer.storage()!, H, 0.4, "bottom-right", f), [4, H, 1, Ev], "float64");
        lens.forEach((S, n) => {
          assertClose(slice(got, 0, n, n + 1), textbook(slice(q, 0, n, n + 1), k[n], v[n], 0.4, "bottom-right", f), 1e-12, `${name}, blockSize ${B}, row ${n} (length ${S})`);
        });
      }
    }
  });
});

describe("cached one-token steps with the flexible options take the decode loop and equal recomputation", () => {
  // a spy backend counts fused attention calls: a step through decodeAttention makes none
  let fused = 0;
  let saved = "";
  before(() => {
    const ref = findBackend("ref")!;
    const spy: Backend = {
      name: "decode-spy",
      matmul: (out, a, b, p) => ref.matmul(out, a, b, p),
      attentionForward(p, q, k, v, out, lse, lseLo) {
        fused++;
        ref.attentionForward(p, q, k, v, out, lse, lseLo);
      },
      attentionBackward: (...a) => ref.attentionBackward(...a),
    };
    registerBackend("decode-spy", () => spy, { priority: -1 });
    saved = getBackendName();
    setBackend("decode-spy");
  });
  after(() => setBackend(saved));

  const OPTIONS: [string, { slidingWindow?: number | [number, number]; alibi?: boolean; softcap?: number; sinks?: boolean }][] = [
    ["slidingWindow 3", { slidingWindow: 3 }],
    ["slidingWindow [2, 0]", { slidingWindow: [2, 0] }],
    ["alibi", { alibi: true }],
    ["softcap 1.2", { softcap: 1.2 }],
    ["sinks", { sinks: true }],
    ["everything", { slidingWindow: 4, alibi: true, softcap: 1.5, sinks: true }],
  ];
  for (const kind of ["mha", "gqa"] as const) {
    for (const [name, o] of OPTIONS) {
      test(`${kind}, ${name}: prefill 3, then 7 one-token steps`, () => {
        const opts = { ...o, batchFirst: true, seed: 3, dtype: "float64" as const };
        const m = kind === "mha" ? new MultiheadAttention(16, 4, opts) : new GroupedQueryAttention(16, 4, 2, opts);
        if (m.sinks) m.sinks.values.set([0.9, -0.4, 0.2, 1.3]); // away from their initial 0, so that they matter
        m.eval();
        const x = cast(randn([2, 10, 16], { seed: 31 }), "float64");
        noGrad(() => {
          const [full] = m.forward(x, x, x, { isCausal: true, needWeights: false }); // [N, 10, C]: the whole sequence, recomputed
          const cache = new KVCache();
          m.forward(slice(x, 1, 0, 3), slice(x, 1, 0, 3), slice(x, 1, 0, 3), { isCausal: true, needWeights: false, cache: cache.layer(0) });
          for (let t = 3; t < 10; t++) {
            const step = slice(x, 1, t, t + 1); // [N, 1, C]
            fused = 0;
            const [y] = m.forward(step, step, step, { isCausal: true, needWeights: false, cache: cache.layer(0) });
            assert.equal(fused, 0, `step ${t}: the decode loop, not the kernels`);
            assert.ok(relError(y, slice(full, 1, t, t + 1)) < 1e-12, `step ${t}: ${relError(y, slice(full, 1, t, t + 1))}`);
          }
        });
      });
    }
  }

  const GPTS: [string, Partial<GPTConfig>][] = [
    ["slidingWindow 3", { slidingWindow: 3 }],
    ["positional alibi", { positional: "alibi" }],
    ["softcap 2", { softcap: 2 }],
    ["sinks", { sinks: true }],
    ["everything, grouped-query", { positional: "alibi", slidingWindow: [4, 0], softcap: 3, sinks: true, numKvHeads: 2 }],
  ];
  for (const [name, over] of GPTS) {
    test(`GPT, ${name}: each cached step's logits equal the full recomputation's last row (contiguous and paged, rows of different lengths)`, () => {
      const m = new GPT(gptConfig("tiny", { ...over, numLayers: 2 }), { seed: 5 });
      m.eval();
      for (const p of m.parameters()) if (p.shape.length === 1 && p.shape[0] === m.config.numHeads) p.values.set(p.values.map((_, h) => 0.7 - 0.4 * h)); // sinks away from 0
      const V = m.config.vocabSize;
      noGrad(() => {
        // contiguous: one sequence
        const seq = [5, 1, 7];
        const cache = m.newCache();
        let logits = m.forward([seq], { cache });
        for (let t = 0; t < 8; t++) {
          const next = (seq[seq.length - 1] * 3 + t) % V;
          seq.push(next);
          fused = 0;
          logits = m.forward([[next]], { cache }); // [1, 1, V]
          assert.equal(fused, 0, `step ${t}: the decode loop`);
          const full = m.forward([seq]); // [1, T, V]
          const want = full.values.subarray(full.values.length - V);
          let worst = 0;
          for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(logits.values[i] - want[i]));
          assert.ok(worst <= 1e-5, `step ${t}: max |diff| ${worst}`);
        }
        // paged: two prompts of different lengths stepping together, each row as if alone
        const rows = [[2, 9, 4, 4, 1], [6]];
        const paged = new PagedKVCache({ blockSize: 2 });
        rows.forEach((r, n) => {
          paged.select([n]);
          m.forward([r], { cache: paged });
        });
        paged.select([0, 1]);
        for (let t = 0; t < 5; t++) {
          const next = rows.map((r) => (r[r.length - 1] * 5 + t) % V);
          rows.forEach((r, n) => r.push(next[n]));
          fused = 0;
          const step = m.forward(next.map((x) => [x]), { cache: paged }); // [2, 1, V]
          assert.equal(fused, 0, `paged step ${t}: the decode loop`);
          rows.forEach((r, n) => {
            const full = m.forward([r]);
            const want = full.values.subarray(full.values.length - V);
            let worst = 0;
            for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(step.values[n * V + i] - want[i]));
            assert.ok(worst <= 1e-5, `paged step ${t}, row ${n}: max |diff| ${worst}`);
          });
        }
      });
    });
  }
});

describe("MultiheadAttention self-attention: q, k, v from one in_proj product", () => {
  /** The three products apart, written out with public ops: q, k, v = linear(x, thirds of in_proj), then the module's attention. */
  function apart(m: MultiheadAttention, x: Tensor): Tensor {
    const E = m.embedDim, w = m.in_proj_weight!, b = m.in_proj_bias!;
    const [N, L] = x.shape;
    const heads = (t: Tensor): Tensor => permute(reshape(t, [N, L, m.numHeads, E / m.numHeads]), [0, 2, 1, 3]); // [N, L, E] -> [N, H, L, hd]
    const [q, k, v] = [0, 1, 2].map((i) => heads(linear(x, slice(w, 0, i * E, (i + 1) * E), slice(b, 0, i * E, (i + 1) * E))));
    const y = scaledDotProductAttention(q, k, v, { isCausal: true }); // [N, H, L, hd]
    return m.out_proj.forward(reshape(permute(y, [0, 2, 1, 3]), [N, L, E])); // -> [N, L, H, hd] -> [N, L, E]
  }

  test("with and without a gradient equals the three separate products, values and gradients: batched rows, one row, float32 and float64", () => {
    for (const dtype of ["float32", "float64"] as const) {
      for (const [N, L] of [[2, 5], [1, 1], [3, 1]]) {
        const m = new MultiheadAttention(12, 3, { batchFirst: true, seed: 9, dtype });
        m.in_proj_bias!.values.set(Array.from({ length: 36 }, (_, i) => 0.05 * i - 0.6)); // a bias that matters
        const x = randn([N, L, 12], { seed: N * 10 + L, dtype, requiresGrad: true });
        const g = randn([N, L, 12], { seed: 77, dtype });
        const what = `${dtype}, N ${N}, L ${L}`;
        const tol = dtype === "float32" ? 1e-6 : 1e-14;
        const leaves = [x, m.in_proj_weight!, m.in_proj_bias!, m.out_proj.weight];
        const run = (f: () => Tensor): [Tensor, Tensor[]] => {
          for (const t of leaves) t.grad = null;
          const y = f();
          y.backward(g);
          return [y.detach(), leaves.map((t) => t.grad!)];
        };
        const one = (m as unknown as { projectSelf(t: Tensor): Tensor | null }).projectSelf(x);
        assert.deepEqual(one?.shape, [N, L, 36], `${what}: with a gradient, self-attention takes q, k, v from one product`);
        const [fused, fusedGrads] = run(() => m.forward(x, x, x, { isCausal: true, needWeights: false })[0]);
        const [want, wantGrads] = run(() => apart(m, x));
        const [noGradFused] = noGrad(() => m.forward(x, x, x, { isCausal: true, needWeights: false }));
        assertClose(fused, want, tol, `${what}: output`);
        assertClose(noGradFused, want, tol, `${what}: output without a gradient`);
        // dx sums over all 3E columns at once (apart: three sums of E, then added): equal up to rounding
        ["x", "in_proj_weight", "in_proj_bias", "out_proj.weight"].forEach((name, i) => assertClose(fusedGrads[i], wantGrads[i], dtype === "float32" ? 1e-5 : 1e-13, `${what}: d${name}`));
      }
    }
  });
});

describe("TransformerBlock.decodeInPlace (a one-token step without the op layer)", () => {
  const base = gptConfig("tiny");
  const cases: [string, Partial<GPTConfig>, number, "plain" | "window", boolean][] = [
    ["tiny, one row", {}, 1, "plain", false],
    ["tiny, two rows", {}, 2, "plain", false],
    ["relu, no biases, rmsnorm, softcap and sinks", { activation: "relu", bias: false, norm: "rmsnorm", softcap: 2, sinks: true }, 2, "plain", false],
    ["gelu-tanh, a streaming cache (window 4, 1 sink) that wraps", { activation: "gelu-tanh" }, 1, "window", false],
    ["multi-head attention with RoPE, two rows", {}, 2, "plain", true],
    ["grouped-query attention (4 heads, 2 kv heads) with RoPE and biases", { numKvHeads: 2 }, 2, "plain", true],
    ["grouped-query attention (4 heads, 1 kv head), no RoPE, rmsnorm, a streaming cache", { numKvHeads: 1, norm: "rmsnorm", bias: false }, 1, "window", false],
  ];
  for (const [name, over, N, kind, rope] of cases) {
    test(`${name}: the same bits as forward() with the cache, step after step`, () => {
      const c = { ...base, ...over };
      const rotary = rope ? new RotaryEmbedding(c.dModel / c.numHeads) : null;
      const block = new TransformerBlock(c, { generator: new Generator(5), dtype: "float32", rotary });
      block.eval();
      if (block.self_attn.sinks) block.self_attn.sinks.values.set([0.5, -1, 2, 0]);
      const layer = (): KVCacheLayer => (kind === "window" ? new KVCache({ window: 4, sinkTokens: 1 }).layer(0) : new KVCacheLayer("self", "test", 2));
      const [viaForward, inPlace] = [layer(), layer()];
      const C = c.dModel;
      const buf = new DecodeBuffers(N, C, c.numKvHeads * (C / c.numHeads), c.dFF);
      noGrad(() => {
        const prompt = randn([N, 3, C], { generator: new Generator(6) });
        block.forward(prompt, { isCausal: true, cache: viaForward });
        block.forward(prompt, { isCausal: true, cache: inPlace });
        const g = new Generator(7);
        for (let s = 0; s < 9; s++) {
          const x = randn([N, 1, C], { generator: g });
          assert.ok(decodesInPlace(block, inPlace), "the block takes the in-place step");
          const want = block.forward(x, { isCausal: true, cache: viaForward }).out;
          const got = Float32Array.from(x.values);
          block.decodeInPlace(got, N, inPlace, buf);
          assert.deepEqual(got, want.values, `step ${s}`);
        }
        assert.equal(inPlace.length, viaForward.length);
      });
    });
  }

  test("blocks it does not cover take forward(): a window, ALiBi, gradients, dropout, a cross cache", () => {
    const make = (over: Partial<GPTConfig>): TransformerBlock => {
      const m = new GPT({ ...base, ...over }, { seed: 1 });
      m.eval();
      return m.blocks.at(0);
    };
    const cache = (): KVCacheLayer => new KVCacheLayer("self", "test", 2);
    noGrad(() => {
      assert.equal(decodesInPlace(make({}), cache()), true);
      assert.equal(decodesInPlace(make({}), null), false);
      assert.equal(decodesInPlace(make({}), new KVCacheLayer("cross", "test", 2)), false);
      assert.equal(decodesInPlace(make({ positional: "rope", numKvHeads: 2 }), cache()), true);
      assert.equal(decodesInPlace(make({ slidingWindow: 3 }), cache()), false);
      assert.equal(decodesInPlace(make({ positional: "alibi" }), cache()), false);
    });
    assert.equal(decodesInPlace(make({}), cache()), false, "gradients on");
    const train = make({ dropout: 0.1 });
    train.train();
    noGrad(() => assert.equal(decodesInPlace(train, cache()), false, "dropout while training"));
  });

  test("a one-token step makes one decode call and builds storage() once per layer: the module's decodeCached, in place or not", () => {
    for (const paged of [false, true]) {
      const m = new GPT("tiny", { seed: 3 }); // 2 layers, width 32
      m.eval();
      const cache = paged ? new PagedKVCache({ blockSize: 4 }) : m.newCache();
      noGrad(() => m.forward([[1, 2, 3], [4, 5, 6]], { cache })); // prefill (fills both layers)
      const counts = { storage: 0, decode: 0 };
      for (let i = 0; i < 2; i++) {
        const layer = cache.layer(i);
        const storage = layer.storage.bind(layer);
        layer.storage = () => (counts.storage++, storage());
        const attn = m.blocks.at(i).self_attn;
        const decode = attn.decodeCached.bind(attn);
        attn.decodeCached = (...args) => (counts.decode++, decode(...args));
      }
      const want = noGrad(() => m.forward([[1, 2, 3, 7], [4, 5, 6, 8]])); // the whole sequence, no cache
      const step = noGrad(() => m.forward([[7], [8]], { cache })); // in place (decodeInPlace)
      assert.deepEqual(counts, { storage: 2, decode: 2 }, `paged ${paged}: one of each per layer`);
      assertClose(step, slice(want, 1, 3, 4), 1e-5, `paged ${paged}: the cached step against the whole sequence`);
      // the module's own cached step (no in-place block): the same call, storage() once
      const attn = m.blocks.at(0).self_attn;
      const layer = cache.layer(0);
      const x = randn([2, 1, 32], { generator: new Generator(9) });
      counts.storage = counts.decode = 0;
      noGrad(() => attn.forward(x, x, x, { isCausal: true, cache: layer, needWeights: false }));
      assert.deepEqual(counts, { storage: 1, decode: 1 }, `paged ${paged}: the module's step`);
    }
  });
});
