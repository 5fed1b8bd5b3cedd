/**
 * scaledDotProductAttention's two implementations give the same numbers: the fused kernels (what
 * "auto" runs) against the materialising textbook path ("math"), on every registered kernel backend, forward
 * and backward, through the op layer's flattening of batch dims, broadcasting of heads and of masks.
 * (The kernels themselves are compared with the reference loops in kernels.test.ts; the PyTorch
 * fixtures run through both implementations in fixtures.test.ts.)
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ArgumentError, type SdpaImplementation, type SdpaOptions, Tensor, cast, randn, rand,
  scaledDotProductAttention, tensor, gt, noGrad,
} from "../src/index.js";
import { conformanceBackends, onBackend } from "./backends.js";
import { relError } from "./harness.js";

interface Case {
  name: string;
  q: number[];
  k: number[];
  v: number[];
  opts?: (dtype: "float32" | "float64") => SdpaOptions;
}

/** A bool mask of `shape`, about 70% true, seeded. */
function boolMask(shape: number[], seed: number): Tensor {
  return gt(rand(shape, { seed }), 0.3);
}

const CASES: Case[] = [
  { name: "odd sizes, batch dims [2, 3]", q: [2, 3, 2, 17, 24], k: [2, 3, 2, 33, 24], v: [2, 3, 2, 33, 8] },
  { name: "unbatched [L, E]", q: [5, 8], k: [7, 8], v: [7, 3] },
  { name: "batch broadcast: key and value shared by the batch", q: [3, 2, 9, 8], k: [1, 2, 11, 8], v: [1, 2, 11, 8] },
  { name: "heads broadcast without enableGqa (key/value with 1 head)", q: [2, 4, 6, 8], k: [2, 1, 10, 8], v: [2, 1, 10, 5] },
  { name: "query with 1 head against 3 key heads", q: [2, 1, 6, 8], k: [2, 3, 10, 8], v: [2, 3, 10, 8] },
  { name: "key 1 head, value 3 heads", q: [2, 3, 6, 8], k: [2, 1, 10, 8], v: [2, 3, 10, 8] },
  { name: "GQA 6 query heads over 2", q: [2, 6, 9, 8], k: [2, 2, 13, 8], v: [2, 2, 13, 8], opts: () => ({ enableGqa: true }) },
  { name: "causal top-left, L < S", q: [2, 2, 5, 8], k: [2, 2, 9, 8], v: [2, 2, 9, 8], opts: () => ({ isCausal: true }) },
  { name: "causal bottom-right, L < S", q: [2, 2, 5, 8], k: [2, 2, 9, 8], v: [2, 2, 9, 8], opts: () => ({ isCausal: true, causalAlignment: "bottom-right" }) },
  { name: "causal top-left, L > S (rows past S see all keys)", q: [1, 2, 9, 8], k: [1, 2, 4, 8], v: [1, 2, 4, 8], opts: () => ({ isCausal: true }) },
  { name: "causal bottom-right, L > S (first rows see nothing: zeros)", q: [1, 2, 9, 8], k: [1, 2, 4, 8], v: [1, 2, 4, 8], opts: () => ({ isCausal: true, causalAlignment: "bottom-right" }) },
  {
    name: "bool mask [L, S] broadcast over batch and heads, with causal", q: [2, 3, 7, 8], k: [2, 3, 7, 8], v: [2, 3, 7, 8],
    opts: () => ({ attnMask: boolMask([7, 7], 11), isCausal: true }),
  },
  {
    name: "bool mask with fully masked rows", q: [2, 2, 4, 8], k: [2, 2, 5, 8], v: [2, 2, 5, 8],
    opts: () => ({ attnMask: tensor([[true, true, false, false, true], [false, false, false, false, false], [true, false, true, false, true], [false, false, false, false, false]], undefined, { dtype: "bool" }) }),
  },
  {
    name: "float mask per batch element and head [2, 3, L, S]", q: [2, 3, 6, 8], k: [2, 3, 9, 8], v: [2, 3, 9, 8],
    opts: (dt) => ({ attnMask: cast(randn([2, 3, 6, 9], { seed: 12 }), dt) }),
  },
  {
    name: "padding-style mask [N, 1, 1, S]", q: [3, 2, 6, 8], k: [3, 2, 9, 8], v: [3, 2, 9, 8],
    opts: () => ({ attnMask: boolMask([3, 1, 1, 9], 13) }),
  },
  {
    name: "mask over batch dims [2, 3] varying only in the first (batch dims not mergeable)", q: [2, 3, 2, 5, 8], k: [2, 3, 2, 6, 8], v: [2, 3, 2, 6, 8],
    opts: (dt) => ({ attnMask: cast(randn([2, 1, 1, 5, 6], { seed: 14 }), dt) }),
  },
  {
    name: "GQA with a bool mask per query head", q: [1, 4, 6, 8], k: [1, 2, 7, 8], v: [1, 2, 7, 8],
    opts: () => ({ enableGqa: true, attnMask: boolMask([1, 4, 6, 7], 15), isCausal: true, causalAlignment: "bottom-right" }),
  },
  { name: "scale and dropout (seeded: the same mask on both paths)", q: [2, 2, 17, 8], k: [2, 2, 19, 8], v: [2, 2, 19, 8], opts: () => ({ scale: 0.3, dropoutP: 0.25, dropoutSeed: 77 }) },
  { name: "L = 1 (decoding)", q: [2, 4, 1, 16], k: [2, 4, 33, 16], v: [2, 4, 33, 16], opts: () => ({ isCausal: true, causalAlignment: "bottom-right" }) },
];

function run(c: Case, dtype: "float32" | "float64", implementation: SdpaImplementation): { out: Tensor; grads: Tensor[] } {
  const mk = (shape: number[], seed: number): Tensor => {
    const x = cast(randn(shape, { seed }), dtype);
    x.requiresGrad = true;
    return x;
  };
  const q = mk(c.q, 1), k = mk(c.k, 2), v = mk(c.v, 3);
  const out = scaledDotProductAttention(q, k, v, { ...(c.opts?.(dtype) ?? {}), implementation });
  out.backward(cast(randn(out.shape, { seed: 4 }), dtype));
  return { out, grads: [q.grad!, k.grad!, v.grad!] };
}

for (const backend of conformanceBackends()) {
  describe(`fused sdpa equals the materialising path [${backend}]`, () => {
    onBackend(backend);
    for (const c of CASES) {
      for (const dtype of ["float64", "float32"] as const) {
        test(`${c.name} (${dtype})`, () => {
          const tol = dtype === "float64" ? 1e-12 : 2e-5;
          const fused = run(c, dtype, "fused");
          const math = run(c, dtype, "math");
          assert.deepEqual(fused.out.shape, math.out.shape);
          assert.ok(relError(fused.out, math.out) <= tol, `out: ${relError(fused.out, math.out)}`);
          ["dq", "dk", "dv"].forEach((n, i) => {
            const e = relError(fused.grads[i], math.grads[i]);
            assert.ok(e <= tol * 5, `${n}: relative error ${e}`);
          });
        });
      }
    }
  });
}

describe("implementation option", () => {
  test("a float mask that requires grad: auto falls back to the weights and gives the mask its gradient; fused refuses", () => {
    const q = randn([1, 2, 3, 4], { seed: 1 }), k = randn([1, 2, 5, 4], { seed: 2 }), v = randn([1, 2, 5, 4], { seed: 3 });
    const m = randn([3, 5], { seed: 4 });
    m.requiresGrad = true;
    scaledDotProductAttention(q, k, v, { attnMask: m }).backward(randn([1, 2, 3, 4], { seed: 5 }));
    assert.ok(m.grad !== null && m.grad.dataSync().some((x) => x !== 0));
    assert.throws(() => scaledDotProductAttention(q, k, v, { attnMask: m, implementation: "fused" }), (e: unknown) => e instanceof ArgumentError && /float attnMask a gradient/.test(String(e)));
  });
  test("an unknown implementation is a clear error", () => {
    const x = randn([2, 4], { seed: 1 });
    // @ts-expect-error: checking the runtime error for plain-JavaScript callers
    assert.throws(() => scaledDotProductAttention(x, x, x, { implementation: "flash" }), /implementation must be "auto", "fused" or "math", got "flash"/);
  });
  test("empty inputs (S = 0) give zeros on the default path", () => {
    const out = noGrad(() => scaledDotProductAttention(randn([2, 3, 4]), randn([2, 0, 4]), randn([2, 0, 5])));
    assert.deepEqual(out.shape, [2, 3, 5]);
    assert.ok(out.dataSync().every((x) => x === 0));
  });
});
