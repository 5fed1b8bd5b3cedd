/**
 * Block masks, as FlexAttention's create_block_mask: any JavaScript predicate
 * maskMod(b, h, q, k) => boolean (true = query q of head h of batch element b may see key k) turned
 * into blocks of blockSize × blockSize that the fused kernels read instead of a [L, S] mask.
 *
 *   const bm = createBlockMask((b, h, q, k) => k <= q && q - k < 128, { batch: 1, heads: 1, L, S });
 *   scaledDotProductAttention(q, k, v, { blockMask: bm });   // empty blocks are never computed
 *
 * maskMod runs exactly once per element, here, at creation (as FlexAttention, which must look at
 * every element to tell an empty or full block from a partial one). Each block is stored as its kind,
 * empty (nothing visible: the kernels skip the tile), full (everything visible: the kernels read no
 * mask) or partial (its bits are kept, one per element). The kernels take any blockSize: a tile that
 * straddles blocks is skipped only if every block it touches is empty, and reads no bits only if every
 * one is full, so a blockSize equal to the kernel tile (64, the default) skips the most.
 */
import type { AttentionBlockMask } from "../kernels/backend.js";
import { BLOCK_EMPTY, BLOCK_FULL, BLOCK_PARTIAL, blockAllows } from "../kernels/causal.js";
import { FLASH_BR } from "../kernels/ref/flash.js";
import { ArgumentError } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, checkPositiveInt, describeValue } from "../tensor/validate.js";

/** true = query q (of head h, batch element b) may see key k. */
export type MaskMod = (b: number, h: number, q: number, k: number) => boolean;

export interface BlockMaskOptions {
  /** batch elements (the product of the batch dims N..), or 1: the same mask for every one (maskMod gets b = 0) */
  batch: number;
  /** query heads, or 1: the same mask for every head (maskMod gets h = 0) */
  heads: number;
  /** query length */
  L: number;
  /** key length */
  S: number;
  /** rows and keys per block; default 64, the kernels' tile */
  blockSize?: number;
}

const OPTIONS = ["batch", "heads", "L", "S", "blockSize"];

/** A block-sparse attention mask made by createBlockMask; pass it as the blockMask option. */
export class BlockMask {
  readonly batch: number;
  readonly heads: number;
  readonly L: number;
  readonly S: number;
  readonly blockSize: number;
  /** the kernels' view (see AttentionBlockMask in kernels/backend.ts) */
  readonly blocks: AttentionBlockMask;

  constructor(blocks: AttentionBlockMask) {
    this.blocks = blocks;
    this.batch = blocks.B;
    this.heads = blocks.H;
    this.L = blocks.L;
    this.S = blocks.S;
    this.blockSize = blocks.blockSize;
  }

  /** How many blocks are empty, partial and full. */
  counts(): { empty: number; partial: number; full: number } {
    const n = [0, 0, 0];
    for (const kind of this.blocks.kinds) n[kind]++;
    return { empty: n[BLOCK_EMPTY], partial: n[BLOCK_PARTIAL], full: n[BLOCK_FULL] };
  }

  /** The fraction of blocks computed (partial or full): with blockSize = the kernel tile, of tiles. */
  density(): number {
    const { empty, partial, full } = this.counts();
    const total = empty + partial + full;
    return total === 0 ? 0 : (partial + full) / total;
  }

  /** The mask drawn out, [batch, heads, L, S] bool (true = may attend): for the textbook path and pictures. */
  toMask(): Tensor {
    const { B, H, L, S } = this.blocks;
    const m = new Uint8Array(B * H * L * S);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let l = 0; l < L; l++) {
          const row = ((b * H + h) * L + l) * S;
          for (let s = 0; s < S; s++) m[row + s] = blockAllows(this.blocks, b, h, l, s) ? 1 : 0;
        }
      }
    }
    return new Tensor(m, [B, H, L, S], "bool");
  }

  toString(): string {
    const { empty, partial, full } = this.counts();
    return `BlockMask([${this.batch}, ${this.heads}, ${this.L}, ${this.S}], blockSize ${this.blockSize}: ${full} full, ${partial} partial, ${empty} empty blocks)`;
  }
}

/**
 * Evaluates maskMod once for every (b, h, q, k) of [batch, heads, L, S] and keeps, per block, whether
 * it is empty, full or partial, and the bits of the partial ones.
 */
export function createBlockMask(maskMod: MaskMod, opts: BlockMaskOptions): BlockMask {
  const fn = "createBlockMask";
  if (typeof maskMod !== "function") throw new ArgumentError(`${fn}: maskMod must be a function (b, h, q, k) => boolean, got ${describeValue(maskMod)}`);
  checkOptions(fn, "opts", opts, OPTIONS);
  if (opts === undefined) throw new ArgumentError(`${fn}: opts must give { batch, heads, L, S }`);
  const B = checkPositiveInt(fn, "batch", opts.batch);
  const H = checkPositiveInt(fn, "heads", opts.heads);
  const L = checkPositiveInt(fn, "L", opts.L);
  const S = checkPositiveInt(fn, "S", opts.S);
  const bs = checkPositiveInt(fn, "blockSize", opts.blockSize ?? FLASH_BR);
  const nRows = Math.ceil(L / bs), nCols = Math.ceil(S / bs);
  const kinds = new Uint8Array(B * H * nRows * nCols);
  const bitStart = new Int32Array(kinds.length).fill(-1);
  const perBlock = bs * bs; // bits; edge blocks leave the bits past L or S at 0
  const tile = new Uint8Array(perBlock);
  const chunks: Uint8Array[] = [];
  let partial = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < nRows; i++) {
        for (let j = 0; j < nCols; j++) {
          tile.fill(0);
          let seen = 0, elems = 0;
          for (let q = i * bs; q < Math.min(L, (i + 1) * bs); q++) {
            for (let k = j * bs; k < Math.min(S, (j + 1) * bs); k++) {
              const ok = maskMod(b, h, q, k);
              if (typeof ok !== "boolean") {
                throw new ArgumentError(`${fn}: maskMod must return a boolean (true = may attend), got ${describeValue(ok)} for (b, h, q, k) = (${b}, ${h}, ${q}, ${k})`);
              }
              elems++;
              if (ok) { seen++; tile[(q - i * bs) * bs + (k - j * bs)] = 1; }
            }
          }
          const at = ((b * H + h) * nRows + i) * nCols + j;
          kinds[at] = seen === 0 ? BLOCK_EMPTY : seen === elems ? BLOCK_FULL : BLOCK_PARTIAL;
          if (kinds[at] !== BLOCK_PARTIAL) continue;
          const packed = new Uint8Array(Math.ceil(perBlock / 8));
          for (let e = 0; e < perBlock; e++) packed[e >> 3] |= tile[e] << (e & 7);
          bitStart[at] = partial * packed.length * 8; // each partial block starts on a byte
          chunks.push(packed);
          partial++;
        }
      }
    }
  }
  const bits = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.forEach((c, i) => bits.set(c, i * c.length));
  return new BlockMask({ B, H, L, S, blockSize: bs, nRows, nCols, kinds, bitStart, bits });
}
