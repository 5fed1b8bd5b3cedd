/**
 * Colour scales (d3-scale + d3-scale-chromatic). Weights in [0, 1] use a sequential scale that is
 * pale at 0 and dark at 1, like ink; signed numbers (scores, values, gradients) use a diverging scale
 * centred on 0 (blue negative, red positive). Both stay readable for the common colour-vision
 * deficiencies, and text on a cell picks black or white by the cell's luminance.
 */
import { scaleDiverging, scaleSequential } from "d3-scale";
import { interpolateRdBu, interpolateYlGnBu } from "d3-scale-chromatic";

/**
 * A colour scale: call it for a CSS colour; `t` maps a value to [0, 1] along `interpolator`, which
 * heat maps sample once into a 256-entry table (a 1024 × 1024 map is a million lookups, not a million
 * d3 calls).
 */
export interface ColourScale {
  (v: number): string;
  readonly domain: readonly number[];
  t(v: number): number;
  interpolator(t: number): string;
}

function makeScale(lo: number, hi: number, interpolator: (t: number) => string, centre?: number): ColourScale {
  const d3s = centre === undefined
    ? scaleSequential(interpolator).domain([lo, hi]).clamp(true)
    : scaleDiverging(interpolator).domain([lo, centre, hi]).clamp(true);
  const t = centre === undefined
    ? (v: number) => Math.min(1, Math.max(0, (v - lo) / (hi - lo)))
    : (v: number) => Math.min(1, Math.max(0, v < centre ? 0.5 * (v - lo) / (centre - lo) : 0.5 + 0.5 * (v - centre) / (hi - centre)));
  const scale = ((v: number) => d3s(v)) as ColourScale;
  return Object.assign(scale, { domain: centre === undefined ? [lo, hi] : [lo, centre, hi], t, interpolator });
}

export function weightScale(max = 1): ColourScale {
  return makeScale(0, max || 1, interpolateYlGnBu);
}

/** Diverging scale on [-m, m] with m = the largest finite |value| (or the given bound). */
export function signedScale(values: ArrayLike<number>, bound?: number): ColourScale {
  let m = bound ?? 0;
  if (bound === undefined) for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) m = Math.max(m, Math.abs(values[i]));
  if (m === 0) m = 1;
  return makeScale(-m, m, (t) => interpolateRdBu(1 - t), 0);
}

/** [r, g, b] in 0..255 from "rgb(r, g, b)" or "#rrggbb". */
export function rgbOf(colour: string): [number, number, number] {
  const m = colour.match(/\d+(\.\d+)?/g);
  if (colour.startsWith("#") && colour.length === 7) {
    return [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16)) as [number, number, number];
  }
  if (!m || m.length < 3) return [0, 0, 0];
  return [Number(m[0]), Number(m[1]), Number(m[2])];
}

/** Relative luminance (WCAG) of a colour. */
export function luminance(colour: string): number {
  const lin = rgbOf(colour).map((c) => {
    const x = c / 255;
    return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}

/** Black or white, whichever contrasts more with the background colour. */
export function textOn(colour: string): string {
  const L = luminance(colour);
  return (L + 0.05) / 0.05 >= 1.05 / (L + 0.05) ? "#000000" : "#ffffff";
}

/** rgb in 0..1 -> "#rrggbb" */
export function hexOf(rgb: ArrayLike<number>): string {
  const c = (x: number): string => Math.round(Math.min(1, Math.max(0, x)) * 255).toString(16).padStart(2, "0");
  return `#${c(rgb[0])}${c(rgb[1])}${c(rgb[2])}`;
}

/** Distinct, dark-enough colours for heads and groups (readable on white). */
export const HEAD_COLOURS = ["#1f6fb2", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d"];
/** Masked cells: light grey with a dark diagonal stroke, so "removed" reads differently from "weight 0". */
export const MASKED_FILL = "#d4d4d8";
export const MASKED_LINE = "#52525b";
