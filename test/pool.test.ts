/**
 * The array pool (src/tensor/pool.ts) and the rule by which backward() gives arrays back to it: only
 * arrays allocated during the pass, once no gradient entry, leaf `.grad` or user-built node holds
 * them. Each test keeps something a buggy rule would recycle, lets later work take arrays from the
 * pool (which zeroes and overwrites them), and checks that what it kept is unchanged. And training
 * with the pool gives the same bits as training without it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  AdamW, GPT, Tensor, add, crossEntropy, div, embedding, gelu, getBackendName, layerNorm, linear, listBackends, matmul, mul, randint, randn, reshape,
  setBackend, sub, sum, tanh, tensor,
} from "../src/index.js";
import { result } from "../src/ops/util.js";
import { allocate, allocateOverwritten } from "../src/tensor/dtype.js";
import { POOL_MIN_LENGTH, clearPool, giveBack, poolStats, setArrayPool } from "../src/tensor/pool.js";

const N = POOL_MIN_LENGTH; // big enough to be pooled

/** Work that allocates (and so takes from the pool) many arrays of length N, writing into them. */
function churn(): void {
  for (let r = 0; r < 4; r++) {
    const a = randn([N], { seed: 100 + r }).requiresGrad_();
    const y = sum(mul(gelu(add(a, 1)), a)); // every intermediate of length N
    y.backward();
  }
}

function snapshot(t: Tensor): number[] {
  return Array.from(t.values);
}

describe("array pool", () => {
  test("an array given back comes out zeroed, of the same type and length", () => {
    clearPool();
    const a = new Float32Array(N).fill(7);
    giveBack(a);
    assert.equal(poolStats().bytes, 4 * N);
    const b = allocate("float32", N);
    assert.equal(b, a, "the same array is reused");
    assert.ok(b.every((v) => v === 0));
    assert.ok(allocate("float64", N) instanceof Float64Array, "another type is not served from it");
    assert.equal(poolStats().bytes, 0);
  });

  test("backward gives intermediate gradients back (the pool is used at all)", () => {
    clearPool();
    const before = poolStats().reused;
    churn();
    assert.ok(poolStats().reused > before, "later backward passes reuse arrays of earlier ones");
  });

  test("leaf gradients, forward values and the seed are never recycled", () => {
    clearPool();
    const x = randn([N], { seed: 1 }).requiresGrad_();
    const w = randn([N], { seed: 2 }).requiresGrad_();
    const h = mul(gelu(x), w); // kept by the test: a forward value
    const seed = randn([N], { seed: 3 });
    h.backward(seed);
    const keep = [x.grad!, w.grad!, h, seed, x, w].map((t) => [t, snapshot(t)] as const);
    churn();
    for (const [t, before] of keep) assert.deepEqual(snapshot(t), before);
  });

  test("a node built by hand (not a library op) keeps the gradient it is given and the ones it returns", () => {
    clearPool();
    const x = randn([N], { seed: 4 }).requiresGrad_();
    const kept: Tensor[] = [];
    const y = new Tensor(x.values.slice(), x.shape, x.dtype);
    y.requiresGrad = true;
    y.gradNode = { op: "mine", inputs: [x], backward: (g) => { const gx = mul(g, 2); kept.push(g, gx); return [gx]; } };
    sum(gelu(y)).backward(); // gelu's backward makes the gradient handed to "mine"
    const before = kept.map(snapshot);
    churn();
    kept.forEach((t, i) => assert.deepEqual(snapshot(t), before[i], `kept tensor ${i}`));
  });

  test("one gradient returned for several inputs ([x, x, y] all get g) stays until the last holder is done", () => {
    clearPool();
    const x = randn([N], { seed: 5 }).requiresGrad_();
    const y = randn([N], { seed: 6 }).requiresGrad_();
    // a library node whose backward hands the same tensor to all three inputs
    const z = result("share", new Float32Array(N), [N], "float32", [x, x, y], (g) => [g, g, g]);
    const gin = randn([N], { seed: 7 });
    mul(z, 1).backward(gin); // mul's backward allocates g = gin · 1 during the pass
    assert.deepEqual(snapshot(y.grad!), snapshot(gin), "y's gradient is g");
    assert.deepEqual(snapshot(x.grad!), snapshot(gin).map((v) => Math.fround(v + v)), "x's is g + g");
    const keep = snapshot(y.grad!);
    churn();
    assert.deepEqual(snapshot(y.grad!), keep);
  });

  test("views share the count: a reshape of a gradient passed on keeps the array alive", () => {
    clearPool();
    const x = randn([N], { seed: 8 }).requiresGrad_();
    const y = reshape(gelu(x), [N / 2, 2]); // reshape's backward returns a view of its gradient
    const g = randn([N / 2, 2], { seed: 9 });
    y.backward(g);
    const keep = snapshot(x.grad!);
    churn();
    assert.deepEqual(snapshot(x.grad!), keep);
  });

  test("training GPT with the pool gives the same bits as without it", () => {
    const train = (pool: boolean): number[] => {
      const prev = setArrayPool(pool);
      try {
        const model = new GPT("tiny", { seed: 0 });
        const opt = new AdamW(model.parameters(), { lr: 1e-2 });
        const V = model.config.vocabSize;
        const idx = randint(0, V, [4, 33], { seed: 11 }).values;
        const inp = new Tensor(Int32Array.from({ length: 4 * 32 }, (_, i) => idx[Math.floor(i / 32) * 33 + (i % 32)]), [4, 32], "int32");
        const tgt = new Tensor(Int32Array.from({ length: 4 * 32 }, (_, i) => idx[Math.floor(i / 32) * 33 + (i % 32) + 1]), [4 * 32], "int32");
        const losses: number[] = [];
        for (let s = 0; s < 4; s++) {
          opt.zeroGrad();
          const loss = crossEntropy(reshape(model.forward(inp), [4 * 32, V]), tgt); // [4, 32, V] -> [128, V]
          loss.backward();
          opt.step();
          losses.push(loss.values[0]);
        }
        return [...losses, ...model.parameters().flatMap((p) => Array.from(p.values))];
      } finally {
        setArrayPool(prev);
      }
    };
    const without = train(false);
    const withPool = train(true);
    const withPoolAgain = train(true); // the second run starts with a full pool
    assert.equal(withPool.length, without.length);
    for (let i = 0; i < without.length; i++) {
      if (!Object.is(withPool[i], without[i]) || !Object.is(withPoolAgain[i], without[i])) {
        assert.fail(`value ${i}: ${withPool[i]} / ${withPoolAgain[i]} with the pool, ${without[i]} without`);
      }
    }
  });

  test("a matmul chain's gradients are right after the pool has been churned (hand-worked: d sum(a @ b) / da = rows of b's row sums)", () => {
    churn();
    const a = tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const b = tensor([5, 6, 7, 8], [2, 2]);
    sum(matmul(a, b)).backward();
    assert.deepEqual(Array.from(a.grad!.values), [11, 15, 11, 15]);
  });

  test("allocateOverwritten takes a pooled array as given back; the ops that use it write every element (a pool of NaN arrays changes nothing: elementwise ops, gelu, layerNorm, embedding, gradient sums)", () => {
    clearPool();
    const stale = new Float32Array(N).fill(7);
    giveBack(stale);
    assert.equal(allocateOverwritten("float32", N), stale, "the same array, not zeroed");
    assert.equal(stale[0], 7);
    const L = N + 3; // odd: the unrolled loops' tails run too
    const compute = (): number[][] => {
      const a = randn([L], { seed: 41 }).requiresGrad_();
      const b = randn([L], { seed: 42 }).requiresGrad_();
      const w = randn([L], { seed: 43 }).requiresGrad_();
      const e = randn([2, L], { seed: 44 }).requiresGrad_();
      // a meets itself (gradients summed), same-shape add / mul / sub / div, gelu both ways, a unary op,
      // layerNorm both ways, an embedding row
      const h = layerNorm(tanh(add(a, embedding(e, [1]).reshape([L]))), [L], w, b);
      const y = add(sum(mul(gelu(add(a, b)), sub(a, div(b, 3)))), sum(mul(h, h)));
      y.backward();
      return [[y.values[0]], snapshot(a.grad!), snapshot(b.grad!), snapshot(w.grad!), snapshot(e.grad!)];
    };
    const prev = setArrayPool(false);
    const want = compute();
    setArrayPool(true);
    for (let k = 0; k < 2 * 32; k++) giveBack(new Float32Array(L).fill(NaN));
    assert.deepEqual(compute(), want);
    setArrayPool(prev);
  });

  test("matmul and linear write every element of their product (a pool of NaN arrays of the products' sizes changes nothing): 2-D, batched, broadcast, k = 0, with and without bias, forward and backward, every backend", () => {
    const saved = getBackendName();
    try {
      for (const backend of listBackends()) {
        setBackend(backend);
        const compute = (): number[][] => {
          const x = randn([N + 4, 3], { seed: 51 }).requiresGrad_(); // [R, in]: products of N + 4 rows
          const w = randn([2, 3], { seed: 52 }).requiresGrad_(); // [out, in]
          const bias = randn([2], { seed: 53 }).requiresGrad_();
          const a = randn([2, 3, N / 2 + 1, 4], { seed: 54 }).requiresGrad_(); // batched [2, 3] @ broadcast [3]
          const b = randn([3, 4, 2], { seed: 55 }).requiresGrad_();
          const z = randn([N + 4, 0], { seed: 56 }); // k = 0: the product is zeros
          const y1 = linear(x, w, bias), y2 = linear(x, w), y3 = matmul(a, b), y4 = matmul(z, randn([0, 2], { seed: 57 }));
          sum(add(mul(y1, y1), mul(y2, 3))).backward();
          sum(mul(y3, y3)).backward();
          return [snapshot(y1), snapshot(y2), snapshot(y3), snapshot(y4), snapshot(x.grad!), snapshot(w.grad!), snapshot(bias.grad!), snapshot(a.grad!), snapshot(b.grad!)];
        };
        const prev = setArrayPool(false);
        const want = compute();
        setArrayPool(true);
        for (const len of [(N + 4) * 2, (N + 4) * 3, 2 * 3 * (N / 2 + 1) * 2, 2 * 3 * (N / 2 + 1) * 4]) {
          for (let k = 0; k < 8; k++) giveBack(new Float32Array(len).fill(NaN));
        }
        assert.deepEqual(compute(), want, backend);
        setArrayPool(prev);
      }
    } finally {
      setBackend(saved);
    }
  });

  test("gradients that meet are added in place only where nothing else sees the array: hand-worked d/dx sum(z · y), y = 3x, z = y + y + (y through two reshapes) -> 54 x", () => {
    // y's gradient is summed four times (add(y, y) gives one upstream array to both inputs; the
    // reshapes hand on views of theirs); exact in float32 for these x (small multiples of 1/8)
    for (let r = 0; r < 2; r++) {
      const L = N + 4; // a multiple of 5, not of 8
      const x = tensor(Array.from({ length: L }, (_, i) => ((i % 17) - 8) / 8), [L], { requiresGrad: true });
      const y = mul(x, 3);
      const z = add(add(y, y), reshape(reshape(y, [5, L / 5]), [L]));
      sum(mul(z, y)).backward();
      assert.deepEqual(Array.from(x.grad!.values), Array.from(x.values, (v) => 54 * v));
    }
  });

  test("one array given to two inputs (add's backward hands g to both) is not added into when one of them gets a second gradient first: d/dx of sum(s²) + sum(5p) + sum(7q), s = p + q, p = 2x, q = 3x -> 50 x + 31", () => {
    const L = N + 3;
    const x = tensor(Array.from({ length: L }, (_, i) => ((i % 13) - 6) / 8), [L], { requiresGrad: true });
    const p = mul(x, 2), q = mul(x, 3);
    const s = add(p, q);
    const terms = { a: () => sum(mul(s, s)), b: () => sum(mul(p, 5)), c: () => sum(mul(mul(q, 7), 1)) };
    // every order of the three terms: in "bca" and "cba" the graph walk gives p its second gradient
    // while q still holds the array add's backward gave them both
    for (const order of ["abc", "acb", "bac", "bca", "cab", "cba"]) {
      x.grad = null;
      const [t0, t1, t2] = [...order].map((k) => terms[k as keyof typeof terms]());
      add(add(t0, t1), t2).backward();
      assert.deepEqual(Array.from(x.grad!.values), Array.from(x.values, (v) => 50 * v + 31), order);
    }
  });
});
