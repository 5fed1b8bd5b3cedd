/** Attention heat maps: SVG strings and PNG bytes, one panel per head, no browser needed. */
export { heatmapSvg, escapeXml } from "./svg.js";
export { heatmapPng, heatmapImage, type HeatmapImage } from "./png.js";
export { layoutHeatmap, cellRect, toMaps, type HeatmapInput, type HeatmapOptions, type Layout, type Maps } from "./layout.js";
export { viridis, toHex, type RGB } from "./colormap.js";
export { Canvas } from "./raster.js";
export { glyph, hasGlyph, textWidth } from "./font.js";
