/**
 * Counter-based dropout bits: the keep/drop decision for one attention weight is a pure function of
 * (seed, row, col), so the forward pass, the backward pass, every thread count and every backend (the
 * reference loops here and the WebAssembly kernels) draw the same mask without storing it.
 *
 *   row = ((b * H) + h) * L + l      (flattened batch, query head, query position)
 *   col = s                          (key position)
 *   bits(seed, row, col) = fmix32(fmix32(seed ^ imul(row, 0x9E3779B1)) ^ imul(col + 1, 0x85EBCA77))
 *   keep  <=>  bits >= threshold(p) = floor(p * 2^32)   (compared as unsigned 32-bit integers)
 *
 * fmix32 is the MurmurHash3 finaliser (an avalanche mix of 32-bit integers).
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function dropoutRowState(seed: number, row: number): number {
  return fmix32((seed ^ Math.imul(row, 0x9e3779b1)) >>> 0);
}

export function dropoutBits(rowState: number, col: number): number {
  return fmix32((rowState ^ Math.imul(col + 1, 0x85ebca77)) >>> 0);
}

/** Unsigned threshold: an element is kept when its bits are >= this. p = 0 keeps everything. */
export function dropoutThreshold(p: number): number {
  return Math.min(Math.floor(p * 4294967296), 4294967295);
}
