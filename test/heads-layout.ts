/**
 * Shared by the tests of the interleaved-heads paths (modules-layout, rope-layout): the readable
 * head split and merge those paths skip, a bit-for-bit comparison, a gradient helper, and a backend that records the layouts the kernels get.
 */
import assert from "node:assert/strict";
import type { Tensor } from "../src/index.js";
import { type AttentionParams, type Backend, findBackend, getBackendName, permute, registerBackend, reshape, setBackend } from "../src/index.js";

/** [N, T, heads*hd] -> [N, heads, T, hd] */
export const split = (t: Tensor, heads: number): Tensor => {
  const [N, T, X] = t.shape;
  return permute(reshape(t, [N, T, heads, X / heads]), [0, 2, 1, 3]);
};
/** [N, H, L, hd] -> [N, L, H*hd] */
export const merge = (y: Tensor): Tensor => {
  const [N, H, L, hd] = y.shape;
  return reshape(permute(y, [0, 2, 1, 3]), [N, L, H * hd]);
};

export function sameBits(a: Tensor | null, b: Tensor | null, what: string): void {
  assert.ok(a !== null && b !== null, `${what}: missing`);
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const [x, y] = [a.values, b.values];
  for (let i = 0; i < x.length; i++) {
    if (!Object.is(x[i], y[i])) assert.fail(`${what}: element ${i} is ${x[i]}, the readable steps give ${y[i]}`);
  }
}

/** Runs f with requiresGrad leaves, backward with g; returns the output and the leaves' gradients (then cleared). */
export function withGrads(leaves: Tensor[], g: Tensor, f: () => Tensor): [Tensor, (Tensor | null)[]] {
  for (const t of leaves) t.grad = null;
  const y = f();
  y.backward(g);
  const grads = leaves.map((t) => t.grad);
  for (const t of leaves) t.grad = null;
  return [y, grads];
}

/**
 * Runs fn with a backend selected that records each attention call's p.layout in `seen` (forward and
 * backward alike) and computes with ref's kernels; registered as `name`, the previous backend restored after.
 */
export function withLayoutSpy(name: string, fn: (seen: Array<AttentionParams["layout"]>) => void): void {
  const ref = findBackend("ref")!;
  const seen: Array<AttentionParams["layout"]> = [];
  const spy: Backend = {
    name,
    attentionLayout: true,
    matmul: (out, a, b, p) => ref.matmul(out, a, b, p),
    attentionForward(p, q, k, v, out, lse, lseLo) { seen.push(p.layout); ref.attentionForward(p, q, k, v, out, lse, lseLo); },
    attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo) { seen.push(p.layout); ref.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo); },
  };
  registerBackend(name, () => spy, { priority: -1 });
  const saved = getBackendName();
  setBackend(name);
  try {
    fn(seen);
  } finally {
    setBackend(saved);
  }
}
