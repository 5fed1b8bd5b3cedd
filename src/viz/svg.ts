/**
 * Attention heat maps as SVG text: one <rect class="cell"> per weight (with a <title> tooltip),
 * token labels on both axes, a colour bar. Standalone XML, no scripts, no external resources.
 */
import { toHex, viridis } from "./colormap.js";
import { GLYPH_HEIGHT } from "./font.js";
import { type HeatmapInput, type HeatmapOptions, type Layout, fmtValue, layoutHeatmap, unit } from "./layout.js";

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

const n = (v: number): string => String(Math.round(v * 100) / 100);

function text(x: number, y: number, s: string, size: number, extra = ""): string {
  return `<text x="${n(x)}" y="${n(y)}" font-size="${size}"${extra}>${escapeXml(s)}</text>`;
}

function panelSvg(L: Layout, h: number): string[] {
  const { maps, cell, font } = L;
  const p = L.panels[h];
  const size = (GLYPH_HEIGHT - 1) * font; // cap height of the bitmap font ≈ the SVG font size
  const out: string[] = [`<g class="head" data-head="${h}">`];
  if (p.title) out.push(text(p.titleX, p.titleY + size, p.title, size, ' class="head-title"'));
  for (let l = 0; l < maps.L; l++) {
    for (let s = 0; s < maps.S; s++) {
      const v = maps.data[(h * maps.L + l) * maps.S + s];
      const tip = `${L.rowLabels[l]} → ${L.colLabels[s]}: ${fmtValue(v)}`;
      out.push(
        `<rect class="cell" x="${n(p.gridX + s * cell)}" y="${n(p.gridY + l * cell)}" width="${cell}" height="${cell}" ` +
          `fill="${toHex(viridis(unit(L, v)))}"><title>${escapeXml(tip)}</title></rect>`,
      );
    }
  }
  // query labels, right-aligned against the grid
  for (let l = 0; l < maps.L; l++) {
    const y = p.gridY + l * cell + cell / 2 + size / 2;
    out.push(text(p.gridX - 4, y, L.rowLabels[l], size, ' text-anchor="end" class="row-label"'));
  }
  // key labels above the grid, turned to read upwards when wider than a cell
  for (let s = 0; s < maps.S; s++) {
    const cx = p.gridX + s * cell + cell / 2;
    const base = p.gridY - 4;
    if (L.colLabelsVertical) {
      out.push(text(cx + size / 2, base, L.colLabels[s], size, ` transform="rotate(-90 ${n(cx + size / 2)} ${n(base)})" class="col-label"`));
    } else out.push(text(cx, base, L.colLabels[s], size, ' text-anchor="middle" class="col-label"'));
  }
  out.push("</g>");
  return out;
}

function colorbarSvg(L: Layout): string[] {
  const { x, y, width, height } = L.colorbar;
  const size = (GLYPH_HEIGHT - 1) * L.font;
  const stops = Array.from({ length: 11 }, (_, i) => `<stop offset="${i * 10}%" stop-color="${toHex(viridis(1 - i / 10))}"/>`);
  return [
    `<defs><linearGradient id="attend-colorbar" x1="0" y1="0" x2="0" y2="1">${stops.join("")}</linearGradient></defs>`,
    `<rect class="colorbar" x="${n(x)}" y="${n(y)}" width="${width}" height="${height}" fill="url(#attend-colorbar)"/>`,
    text(x + width + 4, y + size, fmtValue(L.vmax), size, ' class="colorbar-label"'),
    text(x + width + 4, y + height, fmtValue(L.vmin), size, ' class="colorbar-label"'),
  ];
}

/** The heat map of weights [L, S] or [H, L, S] (one panel per head) as an SVG document string. */
export function heatmapSvg(weights: HeatmapInput, opts: HeatmapOptions = {}): string {
  const L = layoutHeatmap("heatmapSvg", weights, opts);
  const size = (GLYPH_HEIGHT - 1) * L.font;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}" viewBox="0 0 ${L.width} ${L.height}" ` +
      `font-family="ui-monospace, Menlo, Consolas, monospace">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
  ];
  if (L.title) parts.push(text(10, 10 + size, L.title, size, ' class="title" font-weight="bold"'));
  for (let h = 0; h < L.maps.H; h++) parts.push(...panelSvg(L, h));
  parts.push(...colorbarSvg(L), "</svg>");
  return `${parts.join("\n")}\n`;
}
