/**
 * Frozen weights: a scope in which the caller promises that the given tensors' values are not
 * written, so a backend may keep what it derived from them (the wasm backend: a weight matrix copied
 * into its memory and packed into panels) and reuse it on the next call that reads the same values,
 * instead of preparing them again. Generation runs its decoding loop in one over the model's
 * parameters (src/models/generate.ts): each step is a one-row product with every weight matrix, where
 * preparing the matrix cost several times the arithmetic.
 *
 * Only the named tensors are kept, and only inside a scope: outside one, tensors are written in place
 * by optimizers, loadStateDict, gradcheck and users (`t.values[i] = x`), and no write is tracked, so
 * a kept copy could go stale; other arrays inside one (activations, which an allocator may reuse) are
 * prepared per call as always. Writing a frozen tensor inside its scope gives stale results until the
 * scope ends. Leaving the outermost scope (normally or by an exception) drops everything kept.
 */
import type { FloatArray } from "../tensor/dtype.js";
import type { Tensor } from "../tensor/tensor.js";

/** Byte ranges [start, end) of frozen values, by the buffer they lie in. */
const frozen = new Map<ArrayBufferLike, [number, number][]>();
let depth = 0;
const releasers: (() => void)[] = [];

/**
 * Runs fn with `weights` frozen (see above) and returns its result. Scopes nest: weights named by a
 * nested scope stay frozen until the outermost scope ends, which drops everything kept.
 */
export function withFrozenWeights<T>(weights: readonly Tensor[], fn: () => T): T {
  depth++;
  try {
    for (const w of weights) {
      if (w.isOnDevice) continue; // a device backend keeps its own copies
      const v = w.values;
      let ranges = frozen.get(v.buffer);
      if (ranges === undefined) frozen.set(v.buffer, (ranges = []));
      ranges.push([v.byteOffset, v.byteOffset + v.byteLength]);
    }
    return fn();
  } finally {
    if (--depth === 0) {
      frozen.clear();
      for (const release of releasers) release();
    }
  }
}

/** Whether all of `x` lies in the values of a tensor frozen by an open scope. */
export function isFrozen(x: FloatArray): boolean {
  if (depth === 0) return false;
  const ranges = frozen.get(x.buffer);
  if (ranges === undefined) return false;
  const start = x.byteOffset, end = start + x.byteLength;
  for (const [s, e] of ranges) if (s <= start && end <= e) return true;
  return false;
}

/** A backend registers how to drop what it kept; called whenever the outermost scope ends. */
export function onFrozenScopeEnd(release: () => void): void {
  releasers.push(release);
}
