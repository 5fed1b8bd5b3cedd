/**
 * A viridis-like colour scale: dark purple (0) through blue and green to yellow (1), perceptually
 * even and readable in grey. Seventeen samples of matplotlib's viridis, linearly interpolated
 * (within 6/255 of the full map per channel).
 */
export type RGB = readonly [number, number, number];

const VIRIDIS: readonly RGB[] = [
  [68, 1, 84], [72, 24, 106], [71, 45, 123], [66, 64, 134], [59, 82, 139], [51, 99, 141], [44, 114, 142], [38, 130, 142],
  [33, 145, 140], [31, 160, 136], [40, 174, 128], [63, 188, 115], [94, 201, 98], [132, 212, 75], [173, 220, 48], [216, 226, 25],
  [253, 231, 37],
];

/** t in [0, 1] (clamped; NaN gives mid grey) -> integer RGB in 0..255. */
export function viridis(t: number): RGB {
  if (Number.isNaN(t)) return [128, 128, 128];
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
}

export function toHex([r, g, b]: RGB): string {
  return `#${[r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

/** Black or white, whichever reads better on this background. */
export function textColorOn([r, g, b]: RGB): RGB {
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? [0, 0, 0] : [255, 255, 255];
}
