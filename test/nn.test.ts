/**
 * Modules: Embedding, LayerNorm, RMSNorm, Dropout, MLP, ModuleList, positional encodings
 * (sinusoidal, learned, rotary), the KV cache, and the attention modules' new options (rotary,
 * cache): shapes, names, hand-worked numbers and equality with the functional ops.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Generator, Tensor, gelu, gradcheck, layerNorm, linear, noGrad, randn, rmsNorm, tensor, sum, mul,
} from "../src/index.js";
import {
  Dropout, Embedding, GroupedQueryAttention, KVCache, LayerNorm, LearnedPositionalEmbedding, Linear, MLP, Module, ModuleList,
  MultiheadAttention, RMSNorm, RotaryEmbedding, SinusoidalPositionalEncoding, applyRotary, kvCacheBytesPerToken, rotaryReference,
} from "../src/nnNamespace.js";

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape], "shape");
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.values[i] - b.values[i]));
  return m;
}

function names(m: Module): string[] {
  return [...m.namedParameters().keys()];
}

describe("Embedding", () => {
  test("[N, T] ids -> [N, T, C], rows of weight; N(0, 1) init; gradient scatters back", () => {
    const e = new Embedding(50, 6, { seed: 1 });
    assert.deepEqual(names(e), ["weight"]);
    const ids = new Tensor(Int32Array.from([3, 7, 3, 0]), [2, 2], "int32");
    const y = e.forward(ids);
    assert.deepEqual([...y.shape], [2, 2, 6]);
    assert.deepEqual([...y.values.subarray(0, 6)], [...e.weight.values.subarray(18, 24)]);
    // init statistics of 300 N(0, 1) draws
    const w = [...e.weight.values];
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    assert.ok(Math.abs(mean) < 0.15 && Math.abs(std - 1) < 0.15, `mean ${mean}, std ${std}`);
    sum(y).backward();
    assert.equal(e.weight.grad!.values[3 * 6], 2); // id 3 used twice
    assert.equal(e.weight.grad!.values[1 * 6], 0);
  });
});

describe("LayerNorm and RMSNorm", () => {
  test("LayerNorm equals layerNorm with its weight and bias; names weight, bias", () => {
    const ln = new LayerNorm(8, { eps: 1e-6 });
    assert.deepEqual(names(ln), ["weight", "bias"]);
    ln.weight!.values.set(randn([8], { seed: 2 }).values);
    ln.bias!.values.set(randn([8], { seed: 3 }).values);
    const x = randn([2, 3, 8], { seed: 4 });
    assert.equal(maxAbsDiff(ln.forward(x), layerNorm(x, 8, ln.weight, ln.bias, 1e-6)), 0);
    assert.deepEqual(names(new LayerNorm(8, { bias: false })), ["weight"]);
    assert.deepEqual(names(new LayerNorm([2, 4], { elementwiseAffine: false })), []);
  });

  test("RMSNorm equals rmsNorm; a hand-worked row", () => {
    const rms = new RMSNorm(4, { eps: 0 });
    assert.deepEqual(names(rms), ["weight"]);
    // x = [1, 2, 2, 4]: mean(x²) = 25/4, rms = 2.5 -> [0.4, 0.8, 0.8, 1.6]
    const y = rms.forward(tensor([[1, 2, 2, 4]]));
    [0.4, 0.8, 0.8, 1.6].forEach((v, i) => assert.ok(Math.abs(y.values[i] - v) < 1e-6));
    rms.weight!.values.set([1, -1, 2, 0.5]);
    const x = randn([3, 4], { seed: 5 });
    assert.equal(maxAbsDiff(rms.forward(x), rmsNorm(x, 4, rms.weight, 0)), 0);
  });

  test("errors name the module and the argument", () => {
    assert.throws(() => new LayerNorm(0), /LayerNorm: normalizedShape\[0\] must be a positive integer, got 0/);
    assert.throws(() => new LayerNorm(4).forward(randn([2, 5])), /layerNorm: normalizedShape \[4\] must match the last dims of x \[2, 5\]/);
  });
});

describe("Dropout", () => {
  test("identity in eval; in training zeroes about p and scales the rest by 1/(1-p); seeded", () => {
    const x = randn([2000], { seed: 6 }).add(3);
    const d = new Dropout(0.25, { seed: 9 });
    const y = d.forward(x);
    let zeros = 0;
    for (let i = 0; i < x.size; i++) {
      if (y.values[i] === 0) zeros++;
      else assert.ok(Math.abs(y.values[i] - x.values[i] / 0.75) < 1e-5);
    }
    assert.ok(Math.abs(zeros / x.size - 0.25) < 0.04, `dropped ${zeros / x.size}`);
    assert.deepEqual([...new Dropout(0.25, { seed: 9 }).forward(x).values], [...y.values], "same seed, same mask");
    d.eval();
    assert.equal(d.forward(x), x);
    assert.equal(new Dropout(0).forward(x), x);
    assert.throws(() => new Dropout(1), /Dropout: p must be in \[0, 1\), got 1/);
  });
});

describe("MLP and ModuleList", () => {
  test("MLP = fc2(gelu(fc1(x))), names fc1/fc2, [.., C] -> [.., C]", () => {
    const m = new MLP(6, 10, { seed: 1 });
    assert.deepEqual(names(m), ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    const x = randn([2, 3, 6], { seed: 2 });
    const want = linear(gelu(linear(x, m.fc1.weight, m.fc1.bias)), m.fc2.weight, m.fc2.bias);
    assert.equal(maxAbsDiff(m.forward(x), want), 0);
    assert.throws(() => new MLP(4, 8, { activation: "swish" as "gelu" }), /MLP: activation must be one of "gelu", "gelu-tanh", "relu", got "swish"/);
  });

  test("ModuleList registers children as 0, 1, ... (PyTorch's names)", () => {
    class Net extends Module {
      layers = this.registerModule("layers", new ModuleList([new Linear(2, 3), new Linear(3, 1, { bias: false })]));
    }
    const net = new Net();
    assert.deepEqual(names(net), ["layers.0.weight", "layers.0.bias", "layers.1.weight"]);
    assert.equal(net.layers.length, 2);
    assert.equal(net.layers.at(-1), [...net.layers][1]);
  });
});

describe("sinusoidal and learned positions", () => {
  test("sinusoidal: P[pos, 2i] = sin(pos / 10000^(2i/C)), P[pos, 2i+1] = cos(..); offset continues", () => {
    const pe = new SinusoidalPositionalEncoding(4);
    const P = pe.encoding(3, 0, "float64");
    // pos 0: [sin 0, cos 0, sin 0, cos 0]; pos 1: [sin 1, cos 1, sin 0.01, cos 0.01] (10000^(2/4) = 100)
    assert.deepEqual([...P.values.subarray(0, 4)], [0, 1, 0, 1]);
    const want1 = [Math.sin(1), Math.cos(1), Math.sin(0.01), Math.cos(0.01)];
    want1.forEach((v, i) => assert.ok(Math.abs(P.values[4 + i] - v) < 1e-15));
    const x = randn([2, 2, 4], { seed: 1, dtype: "float64" });
    const y = pe.forward(x, 1); // positions 1, 2
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(y.values[i] - x.values[i] - P.values[4 + i]) < 1e-15);
    assert.equal(names(pe).length, 0, "fixed: nothing to learn or save");
  });

  test("learned: x + weight[offset .. offset + T); an error past maxPositions", () => {
    const pe = new LearnedPositionalEmbedding(5, 3, { seed: 2 });
    assert.deepEqual(names(pe), ["weight"]);
    const x = randn([1, 2, 3], { seed: 3 });
    const y = pe.forward(x, 3);
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(y.values[i] - x.values[i] - pe.weight.values[9 + i]) < 1e-6);
    assert.throws(() => pe.forward(x, 4), /positions 4\.\.5 go past the 5 learned positions/);
  });
});

describe("RoPE", () => {
  test("hand-worked 2-D rotation: [1, 0] at position 1 -> [cos 1, sin 1]; [0, 1] at 2 -> [-sin 2, cos 2]", () => {
    const rope = new RotaryEmbedding(2);
    const x = tensor([[1, 0], [0, 1], [0, 1]], undefined, { dtype: "float64" }); // [T = 3, E = 2], positions 0, 1, 2
    const y = rope.forward(x);
    const want = [1, 0, -Math.sin(1), Math.cos(1), -Math.sin(2), Math.cos(2)];
    want.forEach((v, i) => assert.ok(Math.abs(y.values[i] - v) < 1e-15, `${i}: ${y.values[i]} vs ${v}`));
    const z = rope.forward(tensor([[1, 0]], undefined, { dtype: "float64" }), 1); // offset 1
    assert.ok(Math.abs(z.values[0] - Math.cos(1)) < 1e-15 && Math.abs(z.values[1] - Math.sin(1)) < 1e-15);
  });

  test("half-split pairs: E = 4 rotates dims (0, 2) by p·1 and (1, 3) by p·0.01", () => {
    const rope = new RotaryEmbedding(4);
    const x = tensor([[[0, 0, 0, 0], [1, 1, 0, 0]]], undefined, { dtype: "float64" }); // position 1 in row 1
    const y = rope.forward(x);
    const want = [Math.cos(1), Math.cos(0.01), Math.sin(1), Math.sin(0.01)];
    want.forEach((v, i) => assert.ok(Math.abs(y.values[4 + i] - v) < 1e-15));
  });

  test("q_m · k_n depends only on m - n (and norms are kept)", () => {
    const E = 8;
    const rope = new RotaryEmbedding(E);
    const q = randn([1, E], { seed: 1, dtype: "float64" });
    const k = randn([1, E], { seed: 2, dtype: "float64" });
    const dot = (m: number, n: number): number => {
      const a = rope.forward(q, m).values;
      const b = rope.forward(k, n).values;
      let s = 0;
      for (let i = 0; i < E; i++) s += a[i] * b[i];
      return s;
    };
    const d3 = dot(3, 0);
    for (const [m, n] of [[5, 2], [13, 10], [103, 100]]) assert.ok(Math.abs(dot(m, n) - d3) < 1e-12, `(${m}, ${n})`);
    assert.ok(Math.abs(dot(4, 0) - d3) > 1e-3, "another distance gives another score");
    const norm = (t: Tensor): number => Math.hypot(...t.values);
    assert.ok(Math.abs(norm(rope.forward(q, 7)) - norm(q)) < 1e-12);
  });

  test("the fused op equals the textbook form (odd sizes), its gradient passes gradcheck", () => {
    const rope = new RotaryEmbedding(6);
    for (const T of [1, 3, 17]) {
      const x = randn([2, 3, T, 6], { seed: T, dtype: "float64" });
      assert.ok(maxAbsDiff(rope.forward(x, 5), rotaryReference(x, 5)) < 1e-14, `T = ${T}`);
    }
    const x = randn([2, 3, 6], { seed: 9, dtype: "float64", requiresGrad: true });
    const { cos, sin } = rope.angles(3, 2);
    const r = gradcheck((a) => applyRotary(a, cos, sin), [x]);
    assert.ok(r.ok, `gradcheck worst ${r.worst}`);
  });

  test("errors: odd dim, a dim that is not the head dim", () => {
    assert.throws(() => new RotaryEmbedding(5), /RotaryEmbedding: dim must be even/);
    assert.throws(() => new RotaryEmbedding(4).forward(randn([2, 6])), /x must be \[\.\., T, E\] with head dim E = 4, got \[2, 6\]/);
    assert.throws(() => new MultiheadAttention(8, 2, { rotary: new RotaryEmbedding(8) }), /rotary has dim 8 but each head has 4 dims/);
    assert.throws(() => new MultiheadAttention(8, 2, { rotary: new RotaryEmbedding(4), addZeroAttn: true }), /rotary cannot be combined/);
  });
});

describe("KVCache", () => {
  test("appends grow the storage geometrically and return every cached position in order", () => {
    const cache = new KVCache({ initialCapacity: 2 });
    const layer = cache.layer(0);
    const ks: Tensor[] = [];
    const vs: Tensor[] = [];
    for (const T of [3, 1, 1, 4]) {
      const k = randn([2, 3, T, 4], { seed: ks.length });
      const v = randn([2, 3, T, 5], { seed: 100 + ks.length });
      ks.push(k);
      vs.push(v);
      const [K, V] = layer.append(k, v);
      const total = ks.reduce((s, t) => s + t.shape[2], 0);
      assert.deepEqual([...K.shape], [2, 3, total, 4]);
      assert.deepEqual([...V.shape], [2, 3, total, 5]);
      // row (n, h) of K is the time-concatenation of the appended rows
      let t0 = 0;
      for (const piece of ks) {
        const T1 = piece.shape[2];
        for (let r = 0; r < 6; r++) {
          for (let t = 0; t < T1; t++) {
            for (let e = 0; e < 4; e++) assert.equal(K.values[(r * total + t0 + t) * 4 + e], piece.values[(r * T1 + t) * 4 + e]);
          }
        }
        t0 += T1;
      }
    }
    assert.equal(cache.length, 9);
    assert.equal(layer.capacity, 16); // 2 -> 4 -> 8 -> 16
    assert.equal(layer.bytesPerToken(), 2 * 3 * (4 + 5) * 4);
    assert.equal(cache.bytes(), 9 * layer.bytesPerToken());
  });

  test("a mismatched append is refused with both layouts; a cross layer is static", () => {
    const layer = new KVCache().layer(0);
    layer.append(randn([1, 2, 1, 4]), randn([1, 2, 1, 4]));
    assert.throws(() => layer.append(randn([1, 3, 1, 4]), randn([1, 3, 1, 4])), /layer 0 holds keys \[N=1, Hkv=2, T, E=4\].*got keys \[1, 3, 1, 4\]/);
    const cross = new KVCache().cross(0);
    cross.append(randn([1, 2, 5, 4]), randn([1, 2, 5, 4]));
    assert.throws(() => cross.append(randn([1, 2, 5, 4]), randn([1, 2, 5, 4])), /already filled/);
    assert.equal(kvCacheBytesPerToken({ numLayers: 2, numKvHeads: 2, headDim: 8 }), 256);
  });
});

/** Causal self-attention of x [N, T, C], all at once and one token at a time through a cache. */
function fullVsCached(m: MultiheadAttention | GroupedQueryAttention, x: Tensor, prefill: number): number {
  return noGrad(() => {
    const [full] = m.forward(x, x, x, { isCausal: true, needWeights: false });
    const cache = new KVCache();
    const pieces: Tensor[] = [];
    const T = x.shape[1];
    const steps = [[0, prefill], ...Array.from({ length: T - prefill }, (_, i) => [prefill + i, prefill + i + 1])];
    for (const [a, b] of steps) {
      const xs = x.slice(1, a, b);
      pieces.push(m.forward(xs, xs, xs, { isCausal: true, needWeights: false, cache: cache.layer(0) })[0]);
    }
    let worst = 0;
    let t0 = 0;
    for (const p of pieces) {
      const L = p.shape[1];
      worst = Math.max(worst, maxAbsDiff(p, full.slice(1, t0, t0 + L)));
      t0 += L;
    }
    return worst;
  });
}

describe("attention modules with a KV cache and RoPE", () => {
  test("MultiheadAttention: prefill + one token at a time equals the full causal pass (bottom-right)", () => {
    const m = new MultiheadAttention(8, 2, { batchFirst: true, seed: 1, dtype: "float64" });
    const x = randn([2, 7, 8], { seed: 2, dtype: "float64" });
    assert.ok(fullVsCached(m, x, 3) < 1e-12);
  });

  test("GroupedQueryAttention with RoPE: the same, and only Hkv heads are cached", () => {
    const m = new GroupedQueryAttention(16, 4, 2, { batchFirst: true, seed: 3, dtype: "float64", rotary: new RotaryEmbedding(4) });
    const x = randn([1, 9, 16], { seed: 4, dtype: "float64" });
    assert.ok(fullVsCached(m, x, 4) < 1e-12);
    const cache = new KVCache();
    noGrad(() => m.forward(x, x, x, { isCausal: true, cache: cache.layer(0) }));
    assert.equal(cache.bytesPerToken(), 1 * 2 * (4 + 4) * 8, "[N=1, Hkv=2, T, hd=4] keys and values, float64");
  });

  test("RoPE through the attention module: scores see relative positions (a function hook works too)", () => {
    const calls: number[] = [];
    const rope = new RotaryEmbedding(4);
    const hook = (t: Tensor, offset: number): Tensor => {
      calls.push(offset);
      return rope.forward(t, offset);
    };
    const a = new MultiheadAttention(8, 2, { batchFirst: true, seed: 5, rotary: rope });
    const b = new MultiheadAttention(8, 2, { batchFirst: true, seed: 5, rotary: hook });
    const x = randn([1, 4, 8], { seed: 6 });
    assert.equal(maxAbsDiff(a.forward(x, x, x)[0], b.forward(x, x, x)[0]), 0);
    assert.deepEqual(calls, [0, 0], "q and k, both from position 0");
    assert.deepEqual(names(a), names(new MultiheadAttention(8, 2)), "RoPE adds no parameters");
  });

  test("gradients flow through a cached step into the new token's keys and values", () => {
    const m = new MultiheadAttention(4, 1, { batchFirst: true, seed: 7 });
    const cache = new KVCache();
    const x = randn([1, 3, 4], { seed: 8 });
    noGrad(() => m.forward(x, x, x, { cache: cache.layer(0), isCausal: true }));
    const y = randn([1, 1, 4], { seed: 9 });
    const [out] = m.forward(y, y, y, { cache: cache.layer(0), isCausal: true });
    sum(mul(out, out)).backward();
    assert.ok(m.in_proj_weight!.grad!.values.some((v) => v !== 0));
    assert.equal(cache.length, 4);
  });

  test("a cache with addBiasKv is refused", () => {
    const m = new MultiheadAttention(4, 1, { addBiasKv: true });
    const x = randn([2, 1, 4]);
    assert.throws(() => m.forward(x, x, x, { cache: new KVCache().layer(0) }), /a KV cache cannot be combined with addBiasKv or addZeroAttn/);
  });
});

/** FNV-1a over the bytes of float32 arrays: a fingerprint of initial weights. */
function fnv(arrays: ArrayLike<number>[]): string {
  let h = 0x811c9dc5;
  for (const a of arrays) {
    const u = new Uint8Array(Float32Array.from(a).buffer);
    for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i], 0x01000193) >>> 0;
  }
  return h.toString(16);
}

describe("skipInit", () => {
  test("Linear and Embedding with skipInit: zeros, shapes and dtype as usual, nothing drawn from the generator", () => {
    const g = new Generator(5);
    const lin = new Linear(5, 3, { skipInit: true, generator: g, dtype: "float64" });
    assert.deepEqual([...lin.weight.shape], [3, 5]);
    assert.deepEqual([...(lin.bias as Tensor).shape], [3]);
    assert.equal(lin.weight.dtype, "float64");
    assert.ok([...lin.weight.values, ...(lin.bias as Tensor).values].every((v) => v === 0));
    const emb = new Embedding(6, 4, { skipInit: true, generator: g });
    assert.deepEqual([...emb.weight.shape], [6, 4]);
    assert.ok(emb.weight.values.every((v) => v === 0));
    assert.equal(g.nextFloat64(), new Generator(5).nextFloat64(), "skipInit draws nothing");
    assert.equal(new Linear(2, 2, { skipInit: true, bias: false }).bias, null);
    // the parameters are ordinary: trainable, and a later load fills them
    assert.equal(lin.weight.requiresGrad, true);
  });

  test("default init unchanged: the same seeded weights as before skipInit existed", () => {
    // fingerprints recorded from the library before the skipInit option was added (same seeds)
    assert.equal(fnv([new Linear(5, 3, { seed: 7 }).weight.values, (new Linear(5, 3, { seed: 7 }).bias as Tensor).values]), "a1a456e6");
    assert.equal(fnv([new Embedding(6, 4, { seed: 3 }).weight.values]), "a0f35fc9");
    assert.equal(fnv([new Linear(5, 3, { seed: 7, skipInit: false }).weight.values, (new Linear(5, 3, { seed: 7 }).bias as Tensor).values]), "a1a456e6");
  });

  test("errors: skipInit must be a boolean", () => {
    assert.throws(() => new Linear(2, 2, { skipInit: 1 as unknown as boolean }), /Linear: skipInit must be true or false, got 1/);
    assert.throws(() => new Embedding(2, 2, { skipInit: "yes" as unknown as boolean }), /Embedding: skipInit must be true or false, got "yes"/);
  });
});
