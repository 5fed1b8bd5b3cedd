/**
 * Which keys a query may see: the causal rule and the sliding-window rule beside it, and how a block
 * mask is read, each defined once. Every backend, the masks of src/attention and the textbook path
 * derive from these (the AssemblyScript kernels, which cannot import TypeScript, receive
 * visibleOffsets as the job parameters firstOff, lastOff from wasm/backend.ts).
 *
 *   query row l (of L) may see key s (of S)  iff  s <= l + causalOffset(alignment, L, S)
 *
 *   top-left      offset 0      PyTorch's is_causal: query l sees keys 0..l
 *   bottom-right  offset S - L  the last query lines up with the last key (a query appended to a KV
 *                               cache sees every cached key); with L > S the first L - S rows see none
 *   none          offset S      every key
 *
 * A sliding window [left, right] measures from the query's position among the keys,
 * l' = l + positionShift(alignment, L, S) (0 top-left, S - L bottom-right), the same shift causality
 * uses, so a causal window of w keys is [w - 1, 0] (Mistral's):
 *
 *   query row l may see key s  iff  l' - left <= s <= l' + right
 */
import type { AttentionBlockMask, AttentionWindow, CausalKind, PositionAlignment } from "./backend.js";

export function causalOffset(alignment: CausalKind, L: number, S: number): number {
  if (alignment === "top-left") return 0;
  if (alignment === "bottom-right") return S - L;
  return S;
}

/** The last key query row l may see (keys 0..limit; negative: none). */
export function causalLimit(alignment: CausalKind, l: number, L: number, S: number): number {
  return Math.min(S - 1, l + causalOffset(alignment, L, S));
}

/** l' - l: where query row l sits among the keys (windows and ALiBi measure |l' - s| from there). */
export function positionShift(alignment: PositionAlignment, L: number, S: number): number {
  return alignment === "bottom-right" ? S - L : 0;
}

/**
 * Causality and a sliding window as two offsets: query row l may see keys
 * max(0, l + firstOff) .. min(S - 1, l + lastOff) (visibleKeys). firstOff is −Infinity without a
 * window (or with left = Infinity).
 */
export function visibleOffsets(
  causal: CausalKind, alignment: PositionAlignment, window: AttentionWindow | null, L: number, S: number,
): [number, number] {
  let firstOff = -Infinity, lastOff = causalOffset(causal, L, S);
  if (window !== null) {
    const shift = positionShift(alignment, L, S); // l' - l
    firstOff = shift - window.left; // l' − left
    lastOff = Math.min(lastOff, shift + window.right); // l' + right
  }
  return [firstOff, lastOff];
}

/**
 * The keys query row l may see under causality and a sliding window: first..last (last < first:
 * none). Both ends never decrease as l grows, which is what lets the kernels skip whole tiles.
 */
export function visibleKeys(
  causal: CausalKind, alignment: PositionAlignment, window: AttentionWindow | null, l: number, L: number, S: number,
): [number, number] {
  const [firstOff, lastOff] = visibleOffsets(causal, alignment, window, L, S);
  return [Math.max(0, l + firstOff), Math.min(S - 1, l + lastOff)];
}

/** Block kinds of an AttentionBlockMask. */
export const BLOCK_EMPTY = 0, BLOCK_PARTIAL = 1, BLOCK_FULL = 2;

/** The index of block (row block i, column block j) of head (b, h) in kinds and bitStart (B, H of 1 broadcast). */
export function blockIndex(m: AttentionBlockMask, b: number, h: number, i: number, j: number): number {
  return (((m.B === 1 ? 0 : b) * m.H + (m.H === 1 ? 0 : h)) * m.nRows + i) * m.nCols + j;
}

/** Whether the block mask lets query row l of head (b, h) see key s. */
export function blockAllows(m: AttentionBlockMask, b: number, h: number, l: number, s: number): boolean {
  const bs = m.blockSize;
  const at = blockIndex(m, b, h, Math.floor(l / bs), Math.floor(s / bs));
  const kind = m.kinds[at];
  if (kind !== BLOCK_PARTIAL) return kind === BLOCK_FULL;
  const bit = m.bitStart[at] + (l % bs) * bs + (s % bs);
  return ((m.bits[bit >> 3] >> (bit & 7)) & 1) === 1;
}

/**
 * What the block mask says of the rectangle of rows r0..r1 and keys c0..c1 (inclusive) of head (b, h),
 * whatever its size against blockSize: BLOCK_EMPTY if every block it touches is empty, BLOCK_FULL if
 * every one is full, else BLOCK_PARTIAL (look at each element).
 */
export function blockKind(m: AttentionBlockMask, b: number, h: number, r0: number, r1: number, c0: number, c1: number): number {
  const bs = m.blockSize;
  let empty = true, full = true;
  for (let i = Math.floor(r0 / bs); i <= Math.floor(r1 / bs); i++) {
    for (let j = Math.floor(c0 / bs); j <= Math.floor(c1 / bs); j++) {
      const kind = m.kinds[blockIndex(m, b, h, i, j)];
      if (kind !== BLOCK_EMPTY) empty = false;
      if (kind !== BLOCK_FULL) full = false;
    }
  }
  return empty ? BLOCK_EMPTY : full ? BLOCK_FULL : BLOCK_PARTIAL;
}

/**
 * [min, max] document id of each run of `size` positions of each row of ids [B, n], `tiles` runs per
 * row (default: enough to cover n; runs past n are empty: [2^31 - 1, -2^31], which overlaps nothing).
 * Two tiles can share a document only if their ranges overlap, so disjoint ranges skip a tile.
 */
export function documentRanges(ids: Int32Array, B: number, n: number, size: number, tiles = Math.ceil(n / size)): Int32Array {
  const r = new Int32Array(2 * B * tiles);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < tiles; t++) {
      let lo = 2147483647, hi = -2147483648;
      for (let i = t * size; i < Math.min(n, (t + 1) * size); i++) {
        lo = Math.min(lo, ids[b * n + i]);
        hi = Math.max(hi, ids[b * n + i]);
      }
      r[2 * (b * tiles + t)] = lo;
      r[2 * (b * tiles + t) + 1] = hi;
    }
  }
  return r;
}
