/**
 * Shared by the tests of the interleaved-heads paths (modules-layout, rope-layout): the readable
 * head split and merge those paths skip, a bit-for-bit comparison, and a gradient helper.
 */
import assert from "node:assert/strict";
import type { Tensor } from "../src/index.js";
import { permute, reshape } from "../src/index.js";

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
