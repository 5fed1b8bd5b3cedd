/**
 * The explorer's heat-map painting (web/src/ui/pixels.ts), which the page and its workers share: each
 * cell's pixel against ColorBrewer's published end colours for named cells, and against d3's
 * interpolator at the cell's step, the step worked out here from the value and the scale's domain;
 * masked cells grey; what the legend is told. The browser tests check that the pixels painted in the
 * workers are the ones on the page's canvas.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { interpolateRdBu, interpolateYlGnBu } from "d3-scale-chromatic";
import { signedScale, weightScale } from "../web/src/ui/colors.js";
import { paintCells } from "../web/src/ui/pixels.js";

const pixel = (rgba: Uint8ClampedArray, i: number): number[] => Array.from(rgba.subarray(i * 4, i * 4 + 4));
const rgb = (css: string): number[] => css.match(/\d+/g)!.slice(0, 3).map(Number);

test("paintCells: named cells take ColorBrewer's end colours; masked cells are grey; every pixel is opaque", () => {
  // a weight map on [0, 2]: 0 is YlGnBu's first colour #ffffd9, 2 (and beyond) its last #081d58
  const w = paintCells(2, 3, [0, 2, 5, -1, 1, Number.NaN], weightScale(2), [0, 0, 0, 0, 1, 0]);
  assert.deepEqual(pixel(w.rgba, 0), [0xff, 0xff, 0xd9, 255], "0 → #ffffd9");
  assert.deepEqual(pixel(w.rgba, 1), [0x08, 0x1d, 0x58, 255], "2 → #081d58");
  assert.deepEqual(pixel(w.rgba, 2), [0x08, 0x1d, 0x58, 255], "above the scale: its last colour");
  assert.deepEqual(pixel(w.rgba, 3), [0xff, 0xff, 0xd9, 255], "below the scale: its first colour");
  assert.deepEqual(pixel(w.rgba, 4), [0xd4, 0xd4, 0xd8, 255], "masked: #d4d4d8 (MASKED_FILL)");
  assert.deepEqual(pixel(w.rgba, 5), [0xff, 0xff, 0xd9, 255], "NaN: the first colour");
  assert.deepEqual([w.below, w.above, w.anyMasked], [true, true, true]);
  // a signed map on [-3, 3]: RdBu reversed, -3 is #053061 (blue), 3 is #67001f (red)
  const s = paintCells(1, 2, [-3, 3], signedScale([-3, 1]));
  assert.deepEqual(pixel(s.rgba, 0), [0x05, 0x30, 0x61, 255]);
  assert.deepEqual(pixel(s.rgba, 1), [0x67, 0x00, 0x1f, 255]);
  assert.deepEqual([s.below, s.above, s.anyMasked], [false, false, false]);
  // a masked cell's value does not reach the legend
  const m = paintCells(1, 2, [9, 0.5], weightScale(1), [1, 0]);
  assert.deepEqual([m.below, m.above, m.anyMasked], [false, false, true]);
});

test("paintCells: every cell is d3's colour at the cell's step of 256 along the scale", () => {
  const rows = 37, cols = 53, n = rows * cols;
  const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 1.3); // in [-1.3, 1.3]
  const masked = Uint8Array.from({ length: n }, (_, i) => (i % 11 === 0 ? 1 : 0));
  const cases = [
    { scale: weightScale(0.9), step: (v: number) => Math.round(Math.min(1, Math.max(0, v / 0.9)) * 255), colour: (t: number) => interpolateYlGnBu(t) },
    // signedScale on [-m, m] with m the largest |value|: t = (v + m) / 2m, coloured by RdBu read backwards
    { scale: signedScale(values), step: (v: number) => { const m = Math.max(...Array.from(values, Math.abs)); return Math.round(((v + m) / (2 * m)) * 255); }, colour: (t: number) => interpolateRdBu(1 - t) },
  ];
  for (const { scale, step, colour } of cases) {
    const p = paintCells(rows, cols, values, scale, masked);
    assert.equal(p.rgba.length, n * 4);
    for (let i = 0; i < n; i++) {
      const want = masked[i] ? [0xd4, 0xd4, 0xd8] : rgb(colour(step(values[i]) / 255));
      assert.deepEqual(pixel(p.rgba, i), [...want, 255], `cell ${i} (value ${values[i]})`);
    }
  }
});

test("paintCells: sizes that do not fit the values are an error that names them", () => {
  assert.throws(() => paintCells(2, 2, [1, 2, 3], weightScale(1)), /paintCells: .*got rows 2, cols 2, 3 values/);
  assert.throws(() => paintCells(0, 2, [], weightScale(1)), /paintCells: rows and cols must be positive integers/);
  assert.throws(() => paintCells(1, 2, [1, 2], weightScale(1), [1]), /1 mask entries/);
});
