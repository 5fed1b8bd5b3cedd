/**
 * A heat map's cells as pixels: one RGBA pixel per cell, coloured through a 256-entry table sampled
 * from the scale's interpolator, masked cells grey. No DOM here, so a worker can paint a large map
 * (a 512 × 512 mask, a 1024 × 1024 weight map) with the very function the page uses for small ones,
 * and transfer the bytes: the page then only copies them onto a canvas (HeatMapData.image), and the
 * per-cell loop, hundreds of thousands of cells, never runs on the page's thread. The same pass
 * notes what the legend says: values below or above the scale, masked cells.
 */
import type { ColourScale } from "./colors.js";

/** A map's cells painted by paintCells: rows × cols RGBA bytes (row-major) and what the legend needs. */
export interface PaintedCells {
  rows: number;
  cols: number;
  /** rows · cols · 4 bytes, opaque (an ArrayBuffer's, not shared memory: ImageData takes no other) */
  rgba: Uint8ClampedArray<ArrayBuffer>;
  /** some unmasked value lies below the scale's first value / above its last */
  below: boolean;
  above: boolean;
  /** some cell is masked */
  anyMasked: boolean;
}

/** Masked cells' colour, MASKED_FILL (#d4d4d8) as bytes. */
const MASKED_RGB = [0xd4, 0xd4, 0xd8] as const;

/** The colour of each of 256 steps along an interpolator, as r, g, b (each interpolator's table is made once). */
const colourTables = new WeakMap<(t: number) => string, Uint8ClampedArray>();
export function colourTable(scale: ColourScale): Uint8ClampedArray {
  let lut = colourTables.get(scale.interpolator);
  if (lut) return lut;
  lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const m = scale.interpolator(i / 255).match(/\d+(\.\d+)?/g) ?? ["0", "0", "0"];
    lut.set([Number(m[0]), Number(m[1]), Number(m[2])], i * 3);
  }
  colourTables.set(scale.interpolator, lut);
  return lut;
}

/**
 * Paint rows × cols cells (row-major `values`, nonzero `masked` = masked) with `scale`: a cell's
 * colour is the table's step round(scale.t(v) · 255); a value that is not finite takes step 0.
 */
export function paintCells(
  rows: number, cols: number, values: ArrayLike<number>, scale: ColourScale, masked?: ArrayLike<number> | null,
): PaintedCells {
  const n = rows * cols;
  if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0) || values.length < n || (masked && masked.length < n)) {
    throw new Error(`paintCells: rows and cols must be positive integers with rows · cols values${masked ? " and mask entries" : ""}; got rows ${rows}, cols ${cols}, ${values.length} values${masked ? `, ${masked.length} mask entries` : ""}`);
  }
  const lut = colourTable(scale);
  const d = scale.domain;
  const lo = d[0], hi = d[d.length - 1];
  const px = new Uint8ClampedArray(n * 4);
  let below = false, above = false, anyMasked = false;
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    if (masked && masked[i]) {
      anyMasked = true;
      px[o] = MASKED_RGB[0]; px[o + 1] = MASKED_RGB[1]; px[o + 2] = MASKED_RGB[2];
    } else {
      const v = values[i];
      if (v < lo) below = true;
      else if (v > hi) above = true;
      const k = Number.isFinite(v) ? Math.round(scale.t(v) * 255) * 3 : 0;
      px[o] = lut[k]; px[o + 1] = lut[k + 1]; px[o + 2] = lut[k + 2];
    }
    px[o + 3] = 255;
  }
  return { rows, cols, rgba: px, below, above, anyMasked };
}
