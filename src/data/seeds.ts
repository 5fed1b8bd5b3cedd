/**
 * Seeds for independent random streams. Everything random in data/ comes from a Generator seeded by
 * deriveSeed(seed, label), so "validation" and "train/17" are different streams of one run seed and
 * a batch is a pure function of (seed, step).
 */
import { Generator } from "../tensor/random.js";

/** FNV-1a over the label's UTF-16 units, mixed with the seed: a 32-bit seed per (seed, label). */
export function deriveSeed(seed: number, label: string): number {
  let h = 0x811c9dc5 ^ Math.imul(Math.floor(seed) | 0, 0x9e3779b1);
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= Math.floor(seed / 4294967296);
  return h >>> 0;
}

export function streamOf(seed: number, label: string): Generator {
  return new Generator(deriveSeed(seed, label));
}

/** Fisher-Yates shuffle in place, driven by g. */
export function shuffleInPlace<T>(items: T[], g: Generator): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = g.nextInt(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** k distinct indices from [0, n), in random order. */
export function sampleDistinct(n: number, k: number, g: Generator): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + g.nextInt(n - i);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, k);
}
