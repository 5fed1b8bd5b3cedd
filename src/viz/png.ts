/**
 * Attention heat maps as PNG: the same layout as the SVG, rasterised here into an RGBA buffer
 * (labels in the built-in bitmap font) and encoded with fast-png. No browser, no canvas library.
 */
import { encode } from "fast-png";
import { type RGB, viridis } from "./colormap.js";
import { GLYPH_HEIGHT, textWidth } from "./font.js";
import { type HeatmapInput, type HeatmapOptions, type Layout, fmtValue, layoutHeatmap, unit } from "./layout.js";
import { Canvas } from "./raster.js";

const INK: RGB = [34, 34, 34];

export interface HeatmapImage {
  width: number;
  height: number;
  /** width × height × 4 bytes, row-major RGBA */
  rgba: Uint8Array;
  layout: Layout;
}

function drawPanel(c: Canvas, L: Layout, h: number): void {
  const { maps, cell, font } = L;
  const p = L.panels[h];
  if (p.title) c.drawText(p.titleX, p.titleY, p.title, INK, font);
  for (let l = 0; l < maps.L; l++) {
    for (let s = 0; s < maps.S; s++) {
      const v = maps.data[(h * maps.L + l) * maps.S + s];
      c.fillRect(p.gridX + s * cell, p.gridY + l * cell, cell, cell, viridis(unit(L, v)));
    }
  }
  const capHeight = (GLYPH_HEIGHT - 1) * font;
  for (let l = 0; l < maps.L; l++) {
    const label = L.rowLabels[l];
    c.drawText(p.gridX - 4 - textWidth(label, font), p.gridY + l * cell + Math.round((cell - capHeight) / 2), label, INK, font);
  }
  for (let s = 0; s < maps.S; s++) {
    const label = L.colLabels[s];
    const cx = p.gridX + s * cell + cell / 2;
    if (L.colLabelsVertical) c.drawText(Math.round(cx - capHeight / 2), p.gridY - 4, label, INK, font, true);
    else c.drawText(Math.round(cx - textWidth(label, font) / 2), p.gridY - 4 - capHeight, label, INK, font);
  }
}

function drawColorbar(c: Canvas, L: Layout): void {
  const { x, y, width, height } = L.colorbar;
  for (let i = 0; i < height; i++) c.fillRect(x, y + i, width, 1, viridis(1 - i / Math.max(height - 1, 1)));
  c.drawText(x + width + 4, y, fmtValue(L.vmax), INK, L.font);
  c.drawText(x + width + 4, y + height - (GLYPH_HEIGHT - 1) * L.font, fmtValue(L.vmin), INK, L.font);
}

/** Rasterise the heat map of weights [L, S] or [H, L, S] to RGBA pixels. */
export function heatmapImage(weights: HeatmapInput, opts: HeatmapOptions = {}): HeatmapImage {
  const L = layoutHeatmap("heatmapPng", weights, opts);
  const c = new Canvas(L.width, L.height);
  if (L.title) c.drawText(10, 10, L.title, INK, L.font);
  for (let h = 0; h < L.maps.H; h++) drawPanel(c, L, h);
  drawColorbar(c, L);
  return { width: L.width, height: L.height, rgba: c.data, layout: L };
}

/** The heat map as PNG file bytes (RGBA, 8 bits per channel). */
export function heatmapPng(weights: HeatmapInput, opts: HeatmapOptions = {}): Uint8Array {
  const img = heatmapImage(weights, opts);
  return encode({ width: img.width, height: img.height, data: img.rgba, channels: 4, depth: 8 });
}
