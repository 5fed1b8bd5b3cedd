/** Seeded inputs for the kernel tests: n floats uniform in [-1, 1) from a xorshift32 stream (the same numbers in every runtime). */
export function uniformArray(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = 2 * (s / 4294967296) - 1;
  }
  return a;
}
