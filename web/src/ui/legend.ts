/**
 * A heat map's colour legend: a small colour bar under the map with the values at its ends (and 0 in
 * the middle of a diverging scale), plus a swatch for masked cells when the map has any. The same
 * spec draws on the map's canvas and into its exported SVG.
 */
import type { ColourScale } from "./colors.js";
import { MASKED_FILL, MASKED_LINE } from "./colors.js";
import { xmlEscape } from "./dom.js";
import { fmt } from "./format.js";
import type { PaintedCells } from "./pixels.js";

/** Height the legend adds under a map (gap, bar, labels), in CSS px. */
export const LEGEND_HEIGHT = 30;
const BAR_H = 8;
const MIN_BAR = 80;
const MAX_BAR = 160;
const MASK_KEY = 72;
const STOPS = 11;

export interface LegendSpec {
  /** left end and top of the bar */
  x: number;
  y: number;
  barWidth: number;
  lo: string;
  /** the centre value of a diverging scale, when the bar is long enough to show it */
  mid: string | null;
  hi: string;
  masked: boolean;
}

/**
 * Where the legend goes and what it says. Ends read "≤ lo" / "≥ hi" when some values lie beyond the
 * scale (their cells have the end colour; `seen` is what paintCells noted while painting them);
 * `labels` replaces the end texts.
 */
export function legendSpec(
  scale: ColourScale, seen: Pick<PaintedCells, "below" | "above" | "anyMasked">,
  x: number, y: number, gridWidth: number, labels?: readonly [string, string],
): LegendSpec {
  const d = scale.domain;
  const lo = d[0], hi = d[d.length - 1];
  const { below, above, anyMasked } = seen;
  const barWidth = Math.max(MIN_BAR, Math.min(MAX_BAR, Math.floor(gridWidth)));
  return {
    x, y: y + 8, barWidth, masked: anyMasked,
    lo: labels?.[0] ?? `${below ? "≤ " : ""}${fmt(lo, 2)}`,
    hi: labels?.[1] ?? `${above ? "≥ " : ""}${fmt(hi, 2)}`,
    mid: !labels && d.length === 3 && barWidth >= 110 ? fmt(d[1], 2) : null,
  };
}

/** Width the legend needs from its left end. */
export function legendWidth(spec: Pick<LegendSpec, "barWidth" | "masked">): number {
  return spec.barWidth + (spec.masked ? MASK_KEY : 0);
}

const stops = (scale: ColourScale): [number, string][] => Array.from({ length: STOPS }, (_, i) => [i / (STOPS - 1), scale.interpolator(i / (STOPS - 1))]);

export function drawLegend(ctx: CanvasRenderingContext2D, spec: LegendSpec, scale: ColourScale): void {
  const { x, y, barWidth: w } = spec;
  const grad = ctx.createLinearGradient(x, 0, x + w, 0);
  for (const [t, c] of stops(scale)) grad.addColorStop(t, c);
  ctx.fillStyle = grad;
  ctx.fillRect(x, y, w, BAR_H);
  ctx.strokeStyle = "#6b7280";
  ctx.lineWidth = 1;
  ctx.strokeRect(x + 0.5, y + 0.5, w - 1, BAR_H - 1);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#374151";
  ctx.textBaseline = "alphabetic";
  const ty = y + BAR_H + 12;
  ctx.textAlign = "left";
  ctx.fillText(spec.lo, x, ty);
  ctx.textAlign = "right";
  ctx.fillText(spec.hi, x + w, ty);
  if (spec.mid !== null) {
    ctx.textAlign = "center";
    ctx.fillText(spec.mid, x + w / 2, ty);
  }
  if (spec.masked) {
    const mx = x + w + 10;
    ctx.fillStyle = MASKED_FILL;
    ctx.fillRect(mx, y - 1, 10, 10);
    ctx.strokeStyle = MASKED_LINE;
    ctx.beginPath();
    ctx.moveTo(mx + 1, y + 8);
    ctx.lineTo(mx + 9, y);
    ctx.stroke();
    ctx.fillStyle = "#374151";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText("masked", mx + 14, y + 4);
  }
}

/** The same legend as SVG markup; `hatch` is the id of the map's masked-cell pattern. */
export function legendSvg(spec: LegendSpec, scale: ColourScale, hatch: string): string {
  const { x, y, barWidth: w } = spec;
  const id = `${hatch}-legend`;
  const ty = y + BAR_H + 12;
  const text = (tx: number, anchor: string, t: string): string => `<text x="${tx}" y="${ty}" text-anchor="${anchor}" font-size="11" fill="#374151">${xmlEscape(t)}</text>`;
  const out = [
    `<defs><linearGradient id="${id}">${stops(scale).map(([t, c]) => `<stop offset="${t}" stop-color="${c}"/>`).join("")}</linearGradient></defs>`,
    `<rect x="${x}" y="${y}" width="${w}" height="${BAR_H}" fill="url(#${id})" stroke="#6b7280" stroke-width="1"/>`,
    text(x, "start", spec.lo), text(x + w, "end", spec.hi),
  ];
  if (spec.mid !== null) out.push(text(x + w / 2, "middle", spec.mid));
  if (spec.masked) {
    const mx = x + w + 10;
    out.push(`<rect x="${mx}" y="${y - 1}" width="10" height="10" fill="url(#${hatch})"/>`,
      `<text x="${mx + 14}" y="${y + 4}" dominant-baseline="central" font-size="11" fill="#374151">masked</text>`);
  }
  return out.join("");
}
