/** Heat maps: SVG is well-formed XML with one cell per weight; PNG decodes with the right pixels. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { interpolateViridis } from "d3-scale-chromatic";
import { rgb } from "d3-color";
import { tensor, softmax, randn, scaledDotProductAttentionWithWeights } from "../src/index.js";
import { Canvas, cellRect, heatmapImage, heatmapPng, heatmapSvg, layoutHeatmap, textWidth, viridis } from "../src/viz/index.js";
import { allElements, parseXml } from "./xml.js";

describe("colour scale", () => {
  test("ends and middle of viridis; within 6/255 of d3's everywhere", () => {
    assert.deepEqual(viridis(0), [68, 1, 84]);
    assert.deepEqual(viridis(1), [253, 231, 37]);
    assert.deepEqual(viridis(-3), viridis(0)); // clamped
    assert.deepEqual(viridis(NaN), [128, 128, 128]);
    let worst = 0;
    for (let k = 0; k <= 500; k++) {
      const c = rgb(interpolateViridis(k / 500));
      const m = viridis(k / 500);
      worst = Math.max(worst, Math.abs(m[0] - c.r), Math.abs(m[1] - c.g), Math.abs(m[2] - c.b));
    }
    assert.ok(worst <= 6, `worst channel difference ${worst}`);
  });
});

describe("SVG", () => {
  test("parses as XML with H·L·S cells, labels on both axes, escaped tokens", () => {
    const w = softmax(randn([3, 4, 5], { seed: 2 }), -1); // [H, L, S]
    const rows = ["<s>", "a", "&", "?"];
    const cols = ["<s>", "a", "&", "?", "<sep>"];
    const svg = heatmapSvg(w, { rowLabels: rows, colLabels: cols, title: 'weights "q" & k' });
    const root = parseXml(svg);
    assert.equal(root.name, "svg");
    const els = allElements(root);
    const cells = els.filter((e) => e.name === "rect" && e.attrs.class === "cell");
    assert.equal(cells.length, 3 * 4 * 5);
    assert.ok(cells.every((c) => /^#[0-9a-f]{6}$/.test(c.attrs.fill)));
    assert.equal(els.filter((e) => e.name === "g" && e.attrs.class === "head").length, 3);
    const rowLabels = els.filter((e) => e.attrs.class === "row-label").map((e) => e.text);
    assert.deepEqual(rowLabels, [...rows, ...rows, ...rows]);
    const colLabels = els.filter((e) => e.attrs.class === "col-label").map((e) => e.text);
    assert.deepEqual(colLabels.slice(0, 5), cols);
    assert.equal(els.find((e) => e.attrs.class === "title")!.text, 'weights "q" & k');
    assert.equal(Number(root.attrs.width), layoutHeatmap("t", w, { rowLabels: rows, colLabels: cols, title: 'weights "q" & k' }).width);
  });

  test("a cell's colour is its weight's colour; [L, S] gives one panel without a head title", () => {
    const svg = heatmapSvg([[1, 0], [0.5, 0.25]]);
    const cells = allElements(parseXml(svg)).filter((e) => e.attrs.class === "cell");
    assert.deepEqual(cells.map((c) => c.attrs.fill), ["#fde725", "#440154", "#21918c", "#3b528b"]); // 1, 0, 0.5, 0.25: table samples 16, 0, 8, 4
    assert.ok(!svg.includes("head-title"));
  });

  test("the weights sdpa returns can be drawn directly", () => {
    const q = randn([1, 2, 3, 4], { seed: 1 });
    const [, weights] = scaledDotProductAttentionWithWeights(q, q, q, { isCausal: true }); // [1, H, L, S]
    const cells = allElements(parseXml(heatmapSvg(weights))).filter((e) => e.attrs.class === "cell");
    assert.equal(cells.length, 2 * 3 * 3);
  });

  test("errors name the argument and the shapes", () => {
    assert.throws(() => heatmapSvg(randn([2, 2, 2, 2])), /heatmapSvg: weights must be a float tensor \[L, S\], \[H, L, S\] or \[1, H, L, S\], got float32 \[2, 2, 2, 2\]/);
    assert.throws(() => heatmapSvg([[1, 0]], { colLabels: ["a"] }), /heatmapSvg: colLabels has 1 labels but the weights have 2 columns \(S\)/);
    assert.throws(() => heatmapSvg([[1, 0]], { vmin: 1, vmax: 1 }), /needs finite vmin < vmax/);
  });
});

describe("PNG", () => {
  test("decodes to the layout's size; a known weight has its known colour", () => {
    const w = tensor([[1, 0, 0.5], [0.25, 0.75, 0]]); // [L, S]
    const opts = { rowLabels: ["x", "y"], colLabels: ["a", "b", "c"], cellSize: 20 };
    const bytes = heatmapPng(w, opts);
    const png = decode(bytes);
    const layout = layoutHeatmap("t", w, opts);
    assert.equal(png.width, layout.width);
    assert.equal(png.height, layout.height);
    assert.equal(png.channels, 4);
    const at = (x: number, y: number) => Array.from(png.data.slice((y * png.width + x) * 4, (y * png.width + x) * 4 + 4));
    const centre = (l: number, s: number) => {
      const r = cellRect(layout, 0, l, s);
      return at(r.x + r.size / 2, r.y + r.size / 2);
    };
    assert.deepEqual(centre(0, 0), [253, 231, 37, 255]); // weight 1: viridis yellow
    assert.deepEqual(centre(0, 1), [68, 1, 84, 255]); // weight 0: viridis purple
    assert.deepEqual(centre(1, 0), [...viridis(0.25), 255]);
    assert.deepEqual(at(0, 0), [255, 255, 255, 255]); // background
  });

  test("multi-head maps get one panel per head; labels leave ink beside the grid", () => {
    const w = softmax(randn([2, 3, 3], { seed: 5 }), -1);
    const img = heatmapImage(w, { rowLabels: ["p", "q", "r"], colLabels: ["p", "q", "r"] });
    assert.equal(img.layout.panels.length, 2);
    const { gridX, gridY } = img.layout.panels[1];
    let ink = 0;
    for (let y = gridY; y < gridY + 3 * img.layout.cell; y++) {
      for (let x = gridX - textWidth("q", img.layout.font) - 6; x < gridX; x++) if (img.rgba[(y * img.width + x) * 4] < 128) ink++;
    }
    assert.ok(ink > 10, "row labels are drawn left of the second panel");
  });

  test("bitmap text: 'I' at scale 1 draws its known pixels", () => {
    const c = new Canvas(8, 10);
    c.drawText(1, 1, "I", [0, 0, 0]);
    // glyph I: ".###." then "..#.." rows
    assert.deepEqual([1, 2, 3, 4, 5].map((x) => c.pixel(x, 1)[0]), [255, 0, 0, 0, 255]);
    assert.deepEqual([1, 2, 3, 4, 5].map((x) => c.pixel(x, 2)[0]), [255, 255, 0, 255, 255]);
  });
});
