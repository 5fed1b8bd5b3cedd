/** A tiny RGBA canvas: filled rectangles and bitmap-font text, nothing anti-aliased. */
import type { RGB } from "./colormap.js";
import { ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, glyph } from "./font.js";

export class Canvas {
  readonly data: Uint8Array;

  constructor(readonly width: number, readonly height: number, background: RGB = [255, 255, 255]) {
    this.data = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) this.data.set([background[0], background[1], background[2], 255], i * 4);
  }

  /** Fill [x, x+w) × [y, y+h), clipped to the canvas. */
  fillRect(x: number, y: number, w: number, h: number, [r, g, b]: RGB): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let yy = y0; yy < y1; yy++) {
      for (let xx = x0; xx < x1; xx++) {
        const i = (yy * this.width + xx) * 4;
        this.data[i] = r;
        this.data[i + 1] = g;
        this.data[i + 2] = b;
        this.data[i + 3] = 255;
      }
    }
  }

  /** The colour at (x, y). */
  pixel(x: number, y: number): [number, number, number, number] {
    const i = (y * this.width + x) * 4;
    return [this.data[i], this.data[i + 1], this.data[i + 2], this.data[i + 3]];
  }

  /**
   * Text with its top-left corner at (x, y), each font pixel `scale` pixels wide.
   * vertical: turned 90° counter-clockwise (reads upwards), (x, y) is then its bottom-left corner.
   */
  drawText(x: number, y: number, text: string, color: RGB, scale = 1, vertical = false): void {
    let i = 0;
    for (const ch of text) {
      const g = glyph(ch);
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
        for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
          if (g[gy * GLYPH_WIDTH + gx] === 0) continue;
          const along = (i * ADVANCE + gx) * scale;
          if (vertical) this.fillRect(x + gy * scale, y - along - scale, scale, scale, color);
          else this.fillRect(x + along, y + gy * scale, scale, scale, color);
        }
      }
      i++;
    }
  }
}
