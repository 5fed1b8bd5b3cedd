/** Small helpers between attend tensors and pictures. Only the public API is imported. */
import { Generator, Tensor } from "attend";

/** A 2-D tensor as rows of numbers. */
export function rowsOf(t: Tensor): number[][] {
  const [r, c] = t.shape.length === 2 ? t.shape : [1, t.size];
  return Array.from({ length: r }, (_, i) => Array.from(t.values.subarray(i * c, (i + 1) * c)));
}

/** Largest |a - b| over two tensors of the same size. */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.size !== b.size) throw new Error(`maxAbsDiff: sizes differ (${a.shape} vs ${b.shape})`);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.values[i] - b.values[i]));
  return m;
}

/** A plain number array (for JSON export). */
export function arr(t: Tensor | ArrayLike<number>): number[] {
  return Array.from(t instanceof Tensor ? t.values : t);
}

/** Word tokens from a sentence (lower-case, split on spaces). */
export function tokens(text: string, max = 24): string[] {
  return text.trim().toLowerCase().split(/\s+/).filter(Boolean).slice(0, max);
}

/** A deterministic pseudo-random embedding per word: the same word (and seed) always gives the same vector. */
export function wordVector(word: string, dim: number, seed: number): Float64Array {
  let hsh = seed | 0;
  for (let i = 0; i < word.length; i++) hsh = Math.imul(hsh ^ word.charCodeAt(i), 0x01000193);
  const g = new Generator(hsh >>> 0);
  return Float64Array.from({ length: dim }, () => g.nextNormal());
}
