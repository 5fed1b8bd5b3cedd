/**
 * RoPE on interleaved heads: the rotary attention modules and PretrainedLM rotate q and k where the
 * projections put them ([N, T, H*hd], heads interleaved) and hand them to the fused kernels in that
 * layout (AttentionParams.layout), instead of splitting the heads into [N, H, T, hd], rotating, and
 * merging the output back. Shown here:
 *
 *   - the op applyRotaryInterleaved: a hand-worked rotation; bit for bit equal to its readable form
 *     (split, applyRotary, merge: rotaryInterleavedReference), forward and backward, on odd sizes, in
 *     columns of a wider projection; its gradient against float64 finite differences; its errors;
 *   - the modules (GroupedQueryAttention, MultiheadAttention) with a RotaryEmbedding: the same bits,
 *     output and gradients, as the readable steps written out with public ops (split, rope.forward,
 *     scaledDotProductAttention, merge), on every registered backend; a prefill into an empty KVCache
 *     leaves the same keys in the cache and gives the same next step;
 *   - PretrainedLM (the HF llama, mistral and qwen2 fixtures; gpt2 without RoPE): forward and the cached
 *     prefill give the same logits, bit for bit, as the split path (forwardVisitingAttention takes it).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  GroupedQueryAttention, KVCache, MultiheadAttention, RotaryEmbedding, type Tensor, fromPretrained,
  gradcheck, linear, noGrad, randn, scaledDotProductAttention, slice, tensor,
} from "../src/index.js";
import { applyRotaryInterleaved, rotaryInterleavedReference } from "../src/attention/rope.js";
import { conformanceBackends, onBackend } from "./backends.js";
import { merge, sameBits, split, withGrads, withLayoutSpy } from "./heads-layout.js";

const HF = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "hf");


describe("applyRotaryInterleaved: RoPE on heads where the projection put them", () => {
  test("hand-worked: two heads of E = 2 at position 1: [1, 0 | 0, 1] -> [cos 1, sin 1 | -sin 1, cos 1]", () => {
    const rope = new RotaryEmbedding(2);
    const x = tensor([[[9, 9, 9, 9], [1, 0, 0, 1]]], undefined, { dtype: "float64" }); // [N = 1, T = 2, 2 heads * 2], positions 0, 1
    const y = rope.forwardInterleaved({ t: x, offset: 0, heads: 2, dim: 2 });
    const want = [9, 9, 9, 9, Math.cos(1), Math.sin(1), -Math.sin(1), Math.cos(1)]; // position 0 is not rotated
    want.forEach((v, i) => assert.ok(Math.abs(y.values[i] - v) < 1e-15, `${i}: ${y.values[i]} vs ${v}`));
  });

  for (const dtype of ["float32", "float64"] as const) {
    test(`equals split / applyRotary / merge bit for bit, forward and backward, in columns 4..21 of a [2, T, 25] projection (T = 1, 3, 17; ${dtype})`, () => {
      const rope = new RotaryEmbedding(6);
      for (const T of [1, 3, 17]) {
        const x = randn([2, T, 25], { seed: T, dtype, requiresGrad: true }); // 3 heads of 6 in columns 4..21
        const c = { t: x, offset: 4, heads: 3, dim: 6 };
        const { cos, sin } = rope.angles(T, 5); // positions 5 .. 5 + T - 1
        const g = randn([2, T, 18], { seed: 100 + T, dtype });
        const [got, [gotGrad]] = withGrads([x], g, () => applyRotaryInterleaved(c, cos, sin));
        const [want, [wantGrad]] = withGrads([x], g, () => rotaryInterleavedReference(c, cos, sin));
        sameBits(got, want, `output, T = ${T}`);
        sameBits(gotGrad, wantGrad, `gradient, T = ${T}`);
        for (let i = 0; i < x.size; i++) { // columns outside 4..21 get no gradient
          const col = i % 25;
          if (col < 4 || col >= 22) assert.equal(gotGrad!.values[i], 0, `column ${col}`);
        }
      }
    });
  }

  test("gradcheck (float64 finite differences), heads in the middle columns of a wider tensor", () => {
    const rope = new RotaryEmbedding(4);
    const x = randn([2, 3, 11], { seed: 9, dtype: "float64", requiresGrad: true });
    const { cos, sin } = rope.angles(3, 2);
    const r = gradcheck((a) => applyRotaryInterleaved({ t: a, offset: 2, heads: 2, dim: 4 }, cos, sin), [x]);
    assert.ok(r.ok, `gradcheck worst ${r.worst}`);
  });

  test("errors name the function, what was seen and what was expected", () => {
    const x = randn([2, 3, 8]);
    const { cos, sin } = new RotaryEmbedding(4).angles(3);
    assert.throws(() => applyRotaryInterleaved({ t: x, offset: 2, heads: 2, dim: 4 }, cos, sin), /applyRotaryInterleaved: x must be \[N, T, X\] holding 2 heads of an even head dim E = 4 in columns 2\.\.9, got \[2, 3, 8\]/);
    assert.throws(() => applyRotaryInterleaved({ t: randn([3, 8]), offset: 0, heads: 2, dim: 4 }, cos, sin), /x must be \[N, T, X\]/);
    assert.throws(() => applyRotaryInterleaved({ t: x, offset: 0, heads: 2, dim: 4 }, cos.subarray(2), sin), /cos and sin must hold T \* E\/2 = 6 angles for x \[2, 3, 8\], got 4 and 6/);
    assert.throws(() => applyRotaryInterleaved({ t: randn([2, 3, 6]), offset: 0, heads: 2, dim: 3 }, cos, sin), /even head dim E = 3/);
    assert.throws(() => new RotaryEmbedding(6).forwardInterleaved({ t: x, offset: 0, heads: 2, dim: 4 }), /RotaryEmbedding.forwardInterleaved: the heads have dim 4 but this RotaryEmbedding rotates dim 6/);
    assert.throws(() => new RotaryEmbedding(4).forwardInterleaved({ t: x, offset: 0, heads: 2, dim: 4 }, -1), /offset must be a non-negative integer, got -1/);
  });
});

const N = 2, L = 17;

for (const backend of conformanceBackends()) {
  describe(`rotary modules on interleaved heads equal split / rotate / sdpa / merge, bit for bit [${backend}]`, () => {
    onBackend(backend);

    for (const dtype of ["float32", "float64"] as const) {
      test(`GroupedQueryAttention with RoPE (4 query heads over 2, hd 6), gradients, causal (${dtype})`, () => {
        const rope = new RotaryEmbedding(6);
        const gqa = new GroupedQueryAttention(24, 4, 2, { batchFirst: true, seed: 5, bias: true, rotary: rope, dtype });
        const x = randn([N, L, 24], { seed: 1, dtype, requiresGrad: true });
        const g = randn([N, L, 24], { seed: 6, dtype });
        const leaves = [x, gqa.q_proj.weight, gqa.k_proj.weight, gqa.v_proj.weight, gqa.o_proj.weight];
        const [got, gotGrads] = withGrads(leaves, g, () => gqa.forward(x, x, x, { isCausal: true, needWeights: false })[0]);
        const [want, wantGrads] = withGrads(leaves, g, () => {
          const q = rope.forward(split(gqa.q_proj.forward(x), 4), 0); // [N, 4, L, 6]
          const k = rope.forward(split(gqa.k_proj.forward(x), 2), 0); // [N, 2, L, 6]
          const v = split(gqa.v_proj.forward(x), 2);
          return gqa.o_proj.forward(merge(scaledDotProductAttention(q, k, v, { isCausal: true, enableGqa: true })));
        });
        sameBits(got, want, "output");
        gotGrads.forEach((gr, i) => sameBits(gr, wantGrads[i], `gradient of leaf ${i}`));
      });
    }

    test("MultiheadAttention with RoPE, self-attention without gradient (the q and k thirds of one in_proj product rotated)", () => {
      const rope = new RotaryEmbedding(6);
      const mha = new MultiheadAttention(18, 3, { batchFirst: true, seed: 3, rotary: rope });
      const x = randn([N, L, 18], { seed: 1 });
      const [got] = noGrad(() => mha.forward(x, x, x, { isCausal: true, needWeights: false }));
      const want = noGrad(() => {
        const y3 = linear(x, mha.in_proj_weight!, mha.in_proj_bias); // [N, L, 54]
        const [q, k, v] = [0, 1, 2].map((i) => split(slice(y3, 2, i * 18, (i + 1) * 18), 3));
        return mha.out_proj.forward(merge(scaledDotProductAttention(rope.forward(q, 0), rope.forward(k, 0), v, { isCausal: true })));
      });
      sameBits(got, want, "output");
    });

    test("a prefill into an empty KVCache: the same output, the rotated keys and the values in the cache, and the same next step", () => {
      const rope = new RotaryEmbedding(6);
      const gqa = new GroupedQueryAttention(24, 4, 2, { batchFirst: true, seed: 7, rotary: rope });
      const x = randn([N, L, 24], { seed: 2 });
      const next = randn([N, 1, 24], { seed: 3 });
      const opts = { isCausal: true, needWeights: false } as const;
      const cache = new KVCache().layer(0);
      const got = noGrad(() => gqa.forward(x, x, x, { ...opts, cache })[0]);
      const [wk, wv] = noGrad(() => [rope.forward(split(gqa.k_proj.forward(x), 2), 0), split(gqa.v_proj.forward(x), 2)]); // [N, 2, L, 6]
      const want = noGrad(() => {
        const q = rope.forward(split(gqa.q_proj.forward(x), 4), 0);
        return gqa.o_proj.forward(merge(scaledDotProductAttention(q, wk, wv, { isCausal: true, enableGqa: true })));
      });
      sameBits(got, want, "prefill output");
      const [ck, cv] = cache.keysValues()!; // [N, 2, L, 6]
      sameBits(ck, wk, "cached keys (rotated)");
      sameBits(cv, wv, "cached values");
      const step = noGrad(() => gqa.forward(next, next, next, { ...opts, cache })[0]);
      // the next step against a cache filled by the split path (a function transform takes it)
      const slow = new GroupedQueryAttention(24, 4, 2, { batchFirst: true, seed: 7, rotary: (t, o) => rope.forward(t, o) });
      const slowCache = new KVCache().layer(0);
      const [slowPrefill, slowStep] = noGrad(() => [slow.forward(x, x, x, { ...opts, cache: slowCache })[0], slow.forward(next, next, next, { ...opts, cache: slowCache })[0]]);
      sameBits(got, slowPrefill, "prefill, against the split path");
      sameBits(step, slowStep, "next step, against the split path");
    });
  });
}

test("the kernels are handed the rotated q and k in the projections' layout [N, T, H*hd] (a rotary module, no cache or an empty one)", () => {
  withLayoutSpy("rope-layout-spy", (seen) => {
    const gqa = new GroupedQueryAttention(8, 2, 1, { batchFirst: true, rotary: new RotaryEmbedding(4) }); // hd 4, Hkv 1
    const x = randn([2, 5, 8], { seed: 1, requiresGrad: true });
    gqa.forward(x, x, x, { isCausal: true, needWeights: false })[0].sum().backward();
    const q = { offset: 0, sb: 40, sh: 4, sl: 8 }; // [2, 5, 2*4]
    const kv = { offset: 0, sb: 20, sh: 4, sl: 4 }; // [2, 5, 1*4]
    assert.deepEqual(seen.splice(0), [{ q, k: kv, v: kv, out: q }, { q, k: kv, v: kv, out: q }]); // forward, backward
    // a prefill into an empty KVCache: the same; the next step (one query) reads the cache in place (decode.ts, no kernel call)
    const cache = new KVCache().layer(0);
    noGrad(() => gqa.forward(x, x, x, { isCausal: true, needWeights: false, cache }));
    assert.deepEqual(seen.splice(0), [{ q, k: kv, v: kv, out: q }]);
    assert.equal(cache.length, 5);
  });
});

describe("PretrainedLM with RoPE: RoPE and sdpa on the projections as they come, the same bits as the split path", () => {
  for (const name of ["llama", "mistral", "qwen2", "gpt2"]) { // gpt2: no RoPE, the same interleaved sdpa
    test(`${name}: forward, and a prefill into an empty cache then one step, equal the split path (forwardVisitingAttention) bit for bit`, () => {
      const { model } = fromPretrained(join(HF, name));
      const ids = [[1, 5, 9, 2, 7, 3, 11, 4], [6, 2, 8, 1, 3, 3, 10, 12]];
      const visit = (): void => {}; // a visitor sees [N, H, T, hd] heads: the split path
      noGrad(() => {
        sameBits(model.forward(ids), model.forwardVisitingAttention(ids, visit), "forward logits");
        const [fast, slow] = [new KVCache(), new KVCache()];
        sameBits(model.forward(ids, { cache: fast }), model.forwardVisitingAttention(ids, visit, { cache: slow }), "prefill logits");
        sameBits(model.forward([[4], [5]], { cache: fast }), model.forward([[4], [5]], { cache: slow }), "the step after it");
      });
    });
  }
});
