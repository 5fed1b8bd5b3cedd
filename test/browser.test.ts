/**
 * The explorer in a real browser (Debian's Chromium via playwright-core). For every lesson: it
 * renders without console errors, requests nothing outside 127.0.0.1, an interaction changes the
 * picture the way the maths says, its figures export as a decodable PNG, a parseable SVG and JSON,
 * and a screenshot lands in test-results/.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Browser, BrowserContext, Page, Route } from "playwright-core";
import { spawnSync } from "node:child_process";
import { serve } from "../web/server.mjs";
import { loadTrainingCheckpoint } from "../src/index.js";
import {
  PATIENCE_MS, REPO, type Opened, assertLocalOnly, attend, chartFacts, contrastProblems, buildExplorer, checkExports, embeddedMapPixels, exportFile, lastJson, launch, maxAbs, maxNestedDiff,
  laidOut, openLesson, outsideViewportX, readCheck, referenceMaps, requireChromium, rowSums, screenshot, svgOverlaps,
} from "./browser-helpers.js";

let server: Server;
let base = "";
let browser: Browser;
let context: BrowserContext;
/** A phone's width: every lesson must fit it without scrolling the page sideways. */
const PHONE = 390;
let phone: BrowserContext;

/** Open a lesson, run the body, then require no errors, local requests only, and save a screenshot. */
async function lesson(n: number, id: string, query: string, body: (page: Page) => Promise<void>, shot = `explorer-${n}-${id}`, ctx = context): Promise<void> {
  const opened: Opened = await openLesson(ctx, base, id, query);
  try {
    await body(opened.page).catch(async (err) => {
      await screenshot(opened.page, `${shot}-failed`).catch(() => {});
      throw err;
    });
    await screenshot(opened.page, shot);
    assert.deepEqual(opened.errors, [], `${id}: console errors`);
    assert.deepEqual(await contrastProblems(opened.page), [], `${id}: text under 4.5:1 contrast`);
    assertLocalOnly(opened.requests);
  } finally {
    await opened.page.close();
  }
}

/** Lessons whose weights are random say so, and point to lesson 9's trained model. */
async function untrainedSaidSo(page: Page): Promise<void> {
  const note = page.locator("[data-testid=untrained-note]");
  assert.equal(await note.isVisible(), true, "the untrained-weights note is shown");
  assert.match((await note.textContent())!, /random.*not learned/i);
  assert.equal(await note.locator("a").getAttribute("href"), "#/inspect");
}

test("the explorer type-checks against the library's public API", () => {
  const tsc = join(REPO, "node_modules", "typescript", "bin", "tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(REPO, "web", "tsconfig.json")], { cwd: REPO, encoding: "utf8" });
  assert.equal(r.status, 0, `tsc -p web/tsconfig.json:\n${r.stdout}${r.stderr}`);
});

// No time limit on the suite: each wait is for a condition (PATIENCE_MS only turns a hang into a failure).
describe("explorer in Chromium", () => {
  let dist = "";
  before(async () => {
    requireChromium();
    dist = mkdtempSync(join(tmpdir(), "attend-explorer-dist-"));
    buildExplorer(dist);
    ({ server, url: base } = await serve({ root: dist, port: 0 }));
    browser = await launch();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    phone = await browser.newContext({ viewport: { width: PHONE, height: 844 }, acceptDownloads: true });
    context.setDefaultTimeout(PATIENCE_MS);
    phone.setDefaultTimeout(PATIENCE_MS);
  });

  after(async () => {
    await browser?.close();
    server?.close();
    if (dist) rmSync(dist, { recursive: true, force: true });
  });

  test("the page is cross-origin isolated and every lesson is in the menu, in order", async () => {
    const { page, errors } = await openLesson(context, base, "lookup");
    assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, "COOP/COEP reach the page");
    const links = await page.locator("#nav a").evaluateAll((as) => as.map((a) => a.getAttribute("data-page")));
    assert.deepEqual(links, ["lookup", "mixing", "sdpa", "selfcross", "multihead", "masks", "gqa", "memory", "inspect", "flex"]);
    await page.keyboard.press("Tab"); // the skip link comes first
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to the lesson");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
    assert.match(page.url(), /#\/lookup/, "skipping keeps the page state in the URL");
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("1 lookup table: training moves V while the gradients on q and K stay exactly 0", () =>
    lesson(1, "lookup", "", async (page) => {
      const before = await checkExports(page, "table");
      assert.equal(before.chosen, 2, "query [1, 1] matches key 2");
      await page.click("[data-testid=train]");
      await page.waitForFunction(() => document.querySelector("[data-testid=train-status]")?.textContent?.startsWith("done"));
      const grads = await checkExports(page, "grads");
      assert.ok(grads.loss.length >= 20 && grads.loss.at(-1) < grads.loss[0], "the loss falls");
      assert.ok(grads.grad_q.flat().every((g: number) => g === 0), "∇q is exactly 0");
      assert.ok(grads.grad_K.flat().every((g: number) => g === 0), "∇K is exactly 0");
      assert.ok(grads.grad_V[2].some((g: number) => g !== 0) && [0, 1, 3].every((r) => grads.grad_V[r].every((g: number) => g === 0)), "only V[2] gets a gradient");
      const afterTraining = JSON.parse((await exportFile(page, "table", "json")).toString());
      assert.deepEqual(afterTraining.q, before.q);
      assert.deepEqual(afterTraining.K, before.K);
      assert.notDeepEqual(afterTraining.V[2], before.V[2], "the chosen value moved");
      assert.deepEqual(afterTraining.V[0], before.V[0], "other values did not");
      assert.equal((await readCheck(page, "zero-grads")).ok, true);
      assert.match(page.url(), /V=/, "the trained values are in the URL");
      // the trained values fit their boxes, and the editor and the figure show the same digits
      const cut = await page.locator(".matrix-editor input").evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth).map((e) => (e as HTMLInputElement).value));
      assert.deepEqual(cut, [], "editor values wider than their boxes");
      const edited = await page.locator("[data-testid^=edit-V-2-]").evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
      const drawn = await page.locator("[data-figure=table] g[data-row='2'] g[data-matrix=V] text").allTextContents();
      assert.ok(afterTraining.V[2].some((v: number) => String(v).length > 6), "training left values with many digits");
      assert.deepEqual(drawn.map((t) => t.replace(/−/g, "-")), edited, "V[2] in the figure and in the editor");
    }));

  test("2 paint mixing: the query's gradient vanishes as the temperature falls to a lookup", () =>
    lesson(2, "mixing", "?T=1", async (page) => {
      const warm = Number(await page.locator("[data-testid=grad-norm]").getAttribute("data-value"));
      assert.ok(warm > 0.05, `gradient at T = 1 is ${warm}`);
      const colour = await page.locator("[data-testid=mixed-colour]").evaluate((e) => getComputedStyle(e).backgroundColor);
      await page.focus("[data-testid=query-handle]");
      await page.keyboard.press("ArrowLeft");
      await page.keyboard.press("ArrowLeft");
      const moved = await page.locator("[data-testid=mixed-colour]").evaluate((e) => getComputedStyle(e).backgroundColor);
      assert.notEqual(moved, colour, "moving the query with the keyboard changes the mix");
      // dragging the query with the mouse moves it by as much as the pointer moved (q = (0.5, 0.3) after two key presses)
      const plane = page.locator("[data-testid=query-plane]");
      await plane.scrollIntoViewIfNeeded();
      const handle = (await page.locator("[data-testid=query-handle] circle").boundingBox())!;
      const planeBox = (await plane.boundingBox())!;
      const [x0, y0] = [handle.x + handle.width / 2, handle.y + handle.height / 2];
      await page.mouse.move(x0, y0);
      await page.mouse.down();
      for (let i = 1; i <= 12; i++) await page.mouse.move(x0 - 10 * i, y0 + 5 * i);
      await page.mouse.up();
      const unitsPerPx = (1.6 / 170) * (380 / planeBox.width); // the plane: ±1.6 over 170 of its 380 viewBox units
      const dragged = new URLSearchParams(page.url().split("?")[1]);
      assert.ok(Math.abs(Number(dragged.get("qx")) - (0.5 - 120 * unitsPerPx)) < 0.02, `qx after dragging 120 px left: ${dragged.get("qx")}`);
      assert.ok(Math.abs(Number(dragged.get("qy")) - (0.3 - 60 * unitsPerPx)) < 0.02, `qy after dragging 60 px down: ${dragged.get("qy")}`);
      // every arrow's colour has a name in the key
      const key = await page.locator("[data-testid=arrow-key] text").evaluateAll((ts) => ts.map((t) => `${t.getAttribute("fill")} ${t.textContent}`));
      const arrows = await page.locator("[data-testid=query-plane] line[data-arrow]").evaluateAll((ls) => ls.map((l) => `${l.getAttribute("stroke")} ${l.getAttribute("data-arrow")}`));
      assert.equal(arrows.length, 3, "three gradient arrows at T = 1");
      assert.deepEqual(arrows, key, "the key names each arrow's colour");
      await page.focus("[data-testid=temperature]");
      await page.keyboard.press("Home"); // T = 0.01
      const cold = Number(await page.locator("[data-testid=grad-norm]").getAttribute("data-value"));
      assert.ok(cold < 1e-6, `gradient at T = 0.01 is ${cold}`);
      const data = await checkExports(page, "mix");
      assert.ok(Math.max(...data.weights) > 0.999, "one pot pours everything");
      assert.ok(Math.abs(data.weights.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-12);
      assert.match(page.url(), /T=0\.01/);
    }));

  test("3 scaled dot-product attention: rows sum to 1; without ÷√d the softmax saturates", () =>
    lesson(3, "sdpa", "?d=256&seed=1", async (page) => {
      const scaled = await checkExports(page, "chain");
      assert.ok(maxAbs(scaled.rowSums.map((s: number) => s - 1)) < 1e-12, "row sums are 1");
      assert.equal((await readCheck(page, "matches-library")).ok, true);
      // Numbers on hover: the tooltip names the cell and its value.
      const map = page.locator(".heatmap").nth(4);
      await map.scrollIntoViewIfNeeded();
      const box = (await map.boundingBox())!;
      await page.mouse.move(box.x + box.width - 10, box.y + box.height / 2); // a cell of the last column (the colour legend is under the cells)
      assert.match((await page.locator("#tip").textContent()) ?? "", /P = softmax\nquery \d+ \(q\d+\), key \d+ \(k\d+\): \d/);
      await page.click("[data-testid=scaled]");
      const unscaled = JSON.parse((await exportFile(page, "chain", "json")).toString());
      const rowMax = (P: number[][]): number => P.reduce((a, r) => a + Math.max(...r), 0) / P.length;
      assert.ok(rowMax(unscaled.P) > rowMax(scaled.P) + 0.1, `mean row max ${rowMax(unscaled.P)} vs ${rowMax(scaled.P)}`);
      assert.ok(rowMax(unscaled.P) > 0.95, "nearly one-hot without scaling at d = 256");
      assert.ok(maxAbs(rowSums(unscaled.P).map((s) => s - 1)) < 1e-12);
      assert.match(page.url(), /scaled=0/);
      // every map but the one-column row sums has a colour legend, and no label overlaps another (d = 16: Q's 16 column labels)
      await page.selectOption("[data-testid=d]", "16");
      const svg = (await exportFile(page, "chain", "svg")).toString("utf8");
      assert.equal(svg.match(/<linearGradient/g)?.length, 7, "colour legends in the exported figure");
      assert.deepEqual(await svgOverlaps(page, svg), [], "overlapping texts in the chain");
    }));

  test("4 self- and cross-attention: L × L and L × S maps whose rows sum to 1", () =>
    lesson(4, "selfcross", "", async (page) => {
      await untrainedSaidSo(page);
      // the maps follow the typing, with no Enter or leaving the box
      await page.fill("[data-testid=query-text]", "where is the red ball");
      await page.fill("[data-testid=memory-text]", "the ball is under the big red chair");
      await page.waitForFunction(() => document.querySelector("[data-testid=row-sums]")?.textContent?.includes("self map 5 × 5, cross map 5 × 8"));
      assert.equal(await page.locator("[data-testid=empty-note]").isVisible(), false);
      const self = await checkExports(page, "self");
      const cross = await checkExports(page, "cross");
      assert.equal(self.weights.length, 5);
      assert.equal(self.weights[0].length, 5, "self-attention is L × L");
      assert.deepEqual([cross.weights.length, cross.weights[0].length], [5, 8], "cross-attention is L × S");
      assert.ok(maxAbs([...rowSums(self.weights), ...rowSums(cross.weights)].map((s) => s - 1)) < 1e-12);
      // a long input: no token label overlaps another, in the map or in the lines
      await page.fill("[data-testid=query-text]", "the quick brown fox jumps over the lazy dog and then runs far away into the deep dark forest");
      await page.waitForFunction(() => document.querySelector("[data-testid=row-sums]")?.textContent?.includes("self map 19 × 19"));
      assert.deepEqual(await svgOverlaps(page, (await exportFile(page, "self", "svg")).toString("utf8")), [], "overlapping texts, self-attention");
      assert.deepEqual(await svgOverlaps(page, (await exportFile(page, "cross", "svg")).toString("utf8")), [], "overlapping texts, cross-attention");
      // an empty sentence is one placeholder token, and the page says so
      await page.fill("[data-testid=query-text]", "");
      await page.locator("[data-testid=empty-note]").waitFor({ state: "visible" });
      assert.match((await page.locator("[data-testid=empty-note]").textContent())!, /Sequence X is empty.*placeholder token "…"/);
      assert.deepEqual((JSON.parse((await exportFile(page, "self", "json")).toString())).tokens, ["…"]);
    }));

  test("5 multi-head attention: the parameter count is the same for every head count", () =>
    lesson(5, "multihead", "", async (page) => {
      await untrainedSaidSo(page);
      const counts = new Set<string>();
      for (const H of ["1", "2", "3", "4", "6", "8"]) {
        await page.selectOption("[data-testid=heads]", H);
        counts.add((await page.locator("[data-testid=param-count]").getAttribute("data-value"))!);
        assert.equal((await readCheck(page, "matches-module")).ok, true, `H = ${H}: the drawn steps equal MultiheadAttention.forward`);
        assert.equal(await page.locator("[data-figure=heads] .heatmap").count(), Number(H), "one map per head");
      }
      assert.deepEqual([...counts], [String(4 * 24 * 24 + 4 * 24)]);
      const data = await checkExports(page, "concat");
      assert.equal(data.concat[0].length, 24);
      const heads = await checkExports(page, "heads");
      assert.equal(heads.H, 8);
      assert.deepEqual(await svgOverlaps(page, (await exportFile(page, "heads", "svg")).toString("utf8")), [], "overlapping texts in the 8 head maps");
      // the maps follow the typing; an empty sentence is said to be a placeholder
      await page.fill("[data-testid=text]", "it was tired");
      await page.waitForFunction(() => document.querySelector("[data-testid=shape-output]")?.textContent === "[3 × 24]");
      await page.fill("[data-testid=text]", "   ");
      await page.locator("[data-testid=empty-note]").waitFor({ state: "visible" });
      assert.match((await page.locator("[data-testid=empty-note]").textContent())!, /placeholder token "…"/);
    }));

  test("6 masked attention: masked weights are 0, and a new query sees only the past", () =>
    lesson(6, "masks", "", async (page) => {
      const data = await checkExports(page, "masked");
      // the mask's colours are named on the picture (dark = may attend, unlike torch's nn.MultiheadAttention)
      const maskedSvg = (await exportFile(page, "masked", "svg")).toString("utf8");
      assert.match(maskedSvg, />0 = masked</);
      assert.match(maskedSvg, />1 = may attend</);
      assert.deepEqual(await svgOverlaps(page, maskedSvg), [], "overlapping texts in the masked maps");
      data.weights.forEach((row: number[], l: number) => row.forEach((w, s) => {
        if (!data.allowed[l][s]) assert.equal(w, 0, `masked (${l}, ${s})`);
        if (s > l) assert.equal(w, 0, "causal: no weight on the future");
      }));
      assert.ok(maxAbs(rowSums(data.weights).map((s) => s - 1)) < 1e-12);
      for (let i = 0; i < 3; i++) await page.click("[data-testid=gen-next]");
      assert.match((await page.locator("[data-testid=gen-sentence]").textContent())!, /^step 3: the cat sat on/);
      assert.equal((await readCheck(page, "kv-cache")).ok, true);
      const gen = await checkExports(page, "generate");
      assert.equal(gen.weights.length, 4, "step 3 attends over 4 keys");
      assert.ok(maxAbs(gen.weights.map((w: number, i: number) => w - gen.fullRow[i])) < 1e-12);
      await page.click("[data-testid=causal]");
      const open = JSON.parse((await exportFile(page, "masked", "json")).toString());
      assert.ok(open.weights[0][1] > 0, "without the causal mask the first query sees the future");
      assert.equal(open.weights[0].at(-1), 0, "padding stays masked");
    }));

  test("7 grouped-query attention: H_kv = H equals MHA; the KV cache shrinks with H_kv", () =>
    lesson(7, "gqa", "", async (page) => {
      await untrainedSaidSo(page);
      const bytes: number[] = [];
      for (const kv of ["8", "4", "2", "1"]) {
        await page.selectOption("[data-testid=kv-heads]", kv);
        assert.equal((await readCheck(page, "gqa-equals-mha")).ok, true);
        assert.equal((await readCheck(page, "gqa-equals-repeated")).ok, true, `H_kv = ${kv}`);
        bytes.push(Number(await page.locator("[data-testid=kv-bytes]").getAttribute("data-value")));
      }
      assert.deepEqual(bytes, [8, 4, 2, 1].map((kv) => 2 * 32 * kv * 128 * 2), "2 · layers · H_kv · d · bytes");
      const groups = await checkExports(page, "groups");
      assert.deepEqual(groups.groupOf, [0, 0, 0, 0, 0, 0, 0, 0]);
      await checkExports(page, "kvcache");
      // the log x axis has numbers, and nothing crosses the legend (the 80 GB line struck through it)
      assert.deepEqual((await chartFacts(page, "kvcache")).xTicks, ["256", "1k", "4k", "16k", "64k", "256k", "1M"]);
      assert.deepEqual(await svgOverlaps(page, (await exportFile(page, "kvcache", "svg")).toString("utf8")), [], "overlaps in the KV-cache chart");
    }));

  test("8 memory: the tiled online softmax equals the materialised result; a 1024² map stays responsive", () =>
    lesson(8, "memory", "", async (page) => {
      assert.equal((await readCheck(page, "tiled-equals-materialised")).ok, false, "no ✓ before any tile is done");
      await page.click("[data-testid=tile-next]");
      assert.match((await page.locator("[data-testid=tile-step]").textContent())!, /^step 1 of 9/);
      const partial = await readCheck(page, "tiled-equals-materialised");
      assert.equal(partial.ok, false, "no ✓ while the result is incomplete");
      assert.doesNotMatch(partial.text, /✓/);
      await page.click("[data-testid=tile-run]");
      const tiles = await checkExports(page, "tiles");
      assert.equal(tiles.step, tiles.totalSteps);
      assert.ok(tiles.maxAbsDiff < 1e-12, `tiled vs materialised: ${tiles.maxAbsDiff}`);
      assert.equal((await readCheck(page, "tiled-equals-materialised")).ok, true);
      const chart = await checkExports(page, "bytes");
      assert.equal(chart.materialised[1] / chart.materialised[0], 4, "twice the context, four times the bytes");
      // the log x axis has numbers; at N = 2^20 the marker's label is whole and inside the chart
      await page.locator("[data-testid=logN]").evaluate((e) => {
        (e as HTMLInputElement).value = "20";
        e.dispatchEvent(new Event("input", { bubbles: true }));
      });
      const facts = await chartFacts(page, "bytes");
      assert.deepEqual(facts.xTicks, ["64", "256", "1k", "4k", "16k", "64k", "256k", "1M"]);
      assert.equal(facts.marker, "N = 1,048,576");
      assert.ok(facts.markerInside, "the marker label lies inside the chart");
      assert.deepEqual(await svgOverlaps(page, (await exportFile(page, "bytes", "svg")).toString("utf8")), [], "overlaps in the memory chart");
      // the 256 × 256 map, painted in its worker: every pixel is YlGnBu's colour at the weight's step along
      // [0, peak], peak = the mean of the rows' largest weights, all worked out here from the exported weights
      await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=map-note]")?.dataset.n === "256");
      const shownMap = JSON.parse((await exportFile(page, "map", "json")).toString("utf8"));
      const weights: number[][] = shownMap.weights;
      assert.equal(weights.length, 256);
      const peak = weights.reduce((a, row) => a + Math.max(...row), 0) / 256;
      const { interpolateYlGnBu } = await import("d3-scale-chromatic");
      const pixels = embeddedMapPixels((await exportFile(page, "map", "svg")).toString("utf8"));
      assert.deepEqual([pixels.width, pixels.height], [256, 256], "one pixel per weight");
      let wrong = 0, firstWrong = "";
      for (let r = 0; r < 256; r++) {
        for (let c = 0; c < 256; c++) {
          const want = interpolateYlGnBu(Math.round(Math.min(1, weights[r][c] / peak) * 255) / 255).match(/\d+/g)!.map(Number);
          const i = (r * 256 + c) * 3;
          const got = [pixels.rgb[i], pixels.rgb[i + 1], pixels.rgb[i + 2]];
          if (got.some((x, j) => x !== want[j]) && wrong++ === 0) firstWrong = `(${r}, ${c}): weight ${weights[r][c]}, pixel ${got}, expected ${want}`;
        }
      }
      assert.equal(wrong, 0, `pixels of the 256² map that are not the weight's colour; the first: ${firstWrong}`);
      // The 1024² map stays responsive. Not timed (a loaded machine is slow at anything): what makes it
      // slow is checked instead. The page paints none of its million cells: the pixels it puts on the
      // canvas are the very bytes the worker painted and sent. And a hover repaints no cells (only the
      // overlay's outline and the tooltip). Spies on the page's thread: every buffer a worker's reply
      // brings (a MessageEvent's data), and each putImageData / drawImage.
      await page.evaluate(() => {
        const w = window as unknown as { fromWorker: WeakSet<ArrayBuffer>; puts: { width: number; worker: boolean }[]; drawImages: number };
        w.fromWorker = new WeakSet();
        w.puts = [];
        w.drawImages = 0;
        const data = Object.getOwnPropertyDescriptor(MessageEvent.prototype, "data")!;
        Object.defineProperty(MessageEvent.prototype, "data", {
          configurable: true,
          get() {
            const v = data.get!.call(this);
            const rgba = v?.image?.rgba;
            if (rgba instanceof Uint8ClampedArray) w.fromWorker.add(rgba.buffer as ArrayBuffer);
            return v;
          },
        });
        const ctx = CanvasRenderingContext2D.prototype;
        const put = ctx.putImageData;
        ctx.putImageData = function (this: CanvasRenderingContext2D, img: ImageData, ...rest: number[]) {
          w.puts.push({ width: img.width, worker: w.fromWorker.has(img.data.buffer as ArrayBuffer) });
          return (put as (...a: unknown[]) => void).call(this, img, ...rest);
        };
        const draw = ctx.drawImage;
        ctx.drawImage = function (this: CanvasRenderingContext2D, ...args: unknown[]) {
          w.drawImages++;
          return (draw as (...a: unknown[]) => void).apply(this, args);
        };
      });
      await page.selectOption("[data-testid=map-size]", "1024");
      await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=map-note]")?.dataset.n === "1024"); // computed in a worker
      const spied = () => page.evaluate(() => {
        const w = window as unknown as { puts: { width: number; worker: boolean }[]; drawImages: number };
        return { puts: [...w.puts], drawImages: w.drawImages };
      });
      const drawn = await spied();
      assert.deepEqual(drawn.puts, [{ width: 1024, worker: true }], "the 1024² map's pixels: one copy of the worker's painted bytes");
      const map = page.locator("[data-figure=map] .heatmap");
      await map.scrollIntoViewIfNeeded();
      const box = (await map.boundingBox())!;
      const beforeHover = await spied();
      for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + (box.width * i) / 11, box.y + (box.height * i) / 11);
      assert.match((await page.locator("#tip").textContent())!, /query \d+, key \d+: /);
      assert.deepEqual(await spied(), beforeHover, "hovering the 1024² map repainted its cells");
      const png = await exportFile(page, "map", "png");
      assert.ok(png.length > 1000);
    }));

  test("every lesson fits a 390 px phone: no sideways page scroll, its key numbers on screen, charts at full size", async () => {
    const ids = ["lookup", "mixing", "sdpa", "selfcross", "multihead", "masks", "gqa", "memory", "inspect"];
    for (const [i, id] of ids.entries()) {
      await lesson(i + 1, id, id === "memory" ? "?logN=20" : "", async (page) => {
        // what a worker computes is on the page before it is measured (else a slow machine measures the
        // page without it, and a reply landing between two reads changes it under the test)
        if (id === "memory") await page.locator("[data-testid=map-note][data-n]").waitFor();
        if (id === "inspect") await page.locator("[data-testid=prediction][data-step]").waitFor();
        await laidOut(page);
        const width = await page.evaluate(() => document.scrollingElement!.scrollWidth);
        assert.ok(width <= PHONE, `${id}: the page is ${width} px wide on a ${PHONE} px screen`);
        if (id === "lookup") {
          // the point of lesson 1 is on screen: the values, the output, and ∂out/∂q = 0
          assert.deepEqual(await outsideViewportX(page, "[data-figure=table] g[data-matrix=V], [data-testid=lookup-output]"), [], "values and output off screen");
          const dq = page.locator(".formula-part", { has: page.locator("annotation", { hasText: String.raw`\frac{\partial\,\mathrm{out}}{\partial q}` }) });
          assert.equal(await dq.count(), 1, "one formula part holds ∂out/∂q = 0");
          assert.deepEqual(await outsideViewportX(page, ".formula-part:has(annotation) .katex-html"), [], "formula parts off screen");
        }
        // a formula in parts wraps instead of hiding its end
        const cutFormulas = await page.locator(".formula-part").evaluateAll((ps) => ps.filter((p) => p.scrollWidth > p.clientWidth + 1).map((p) => p.querySelector("annotation")?.textContent));
        assert.deepEqual(cutFormulas, [], `${id}: formula parts wider than the screen`);
        if (id === "gqa" || id === "memory") {
          const facts = await chartFacts(page, id === "gqa" ? "kvcache" : "bytes");
          assert.ok(facts.scale > 0.99, `${id}: the chart is drawn at ${facts.scale.toFixed(2)}× its size, shrinking its text`);
          assert.ok(facts.xTicks.length >= 3, `${id}: x ticks ${facts.xTicks}`);
          assert.ok(facts.markerInside);
        }
        // a figure still wider than the screen says that it scrolls
        const silent = await page.locator(".fig").evaluateAll((figs) => figs.filter((f) => {
          const body = f.querySelector(".fig-body")!;
          return body.scrollWidth > body.clientWidth + 1 && (f.querySelector(".scroll-hint") as HTMLElement).hidden;
        }).map((f) => f.getAttribute("data-figure")));
        assert.deepEqual(silent, [], `${id}: figures that scroll sideways without saying so`);
      }, `explorer-phone-${i + 1}-${id}`, phone);
    }
  });

  test("9 inspect a model: train in the page, save a checkpoint attend reads, load it back", async () => {
    // the training worker's script is held back, so the page opens before its first model exists: Train
    // must wait for that model (a click before it used to be dropped, and the run never started)
    let release = (): void => {};
    const held = new Promise<void>((resolve) => { release = resolve; });
    const hold = async (route: Route): Promise<void> => { await held; await route.continue(); };
    await context.route(/trainer\.worker/, hold);
    try {
      await lesson(9, "inspect", "?steps=40&task=reverse&input=31415926", async (page) => trainInThePage(page, release));
    } finally {
      release();
      await context.unroute(/trainer\.worker/, hold);
    }
  });

  async function trainInThePage(page: Page, release: () => void): Promise<void> {
    const train = page.locator("[data-testid=train]");
    assert.equal(await train.isDisabled(), true, "Train waits while the worker makes the first model");
    assert.match((await page.locator("[data-testid=train-status]").textContent())!, /making a block model/);
    release();
    await page.click("[data-testid=train]"); // waits for the button to be enabled
    await page.waitForFunction(() => {
      const s = document.querySelector<HTMLElement>("[data-testid=train-status]");
      return s?.dataset.running === "false" && s.dataset.step === "40";
    });
    // the maps drawn once training has stopped are those of step 40
    await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=prediction]")?.dataset.step === "40");
    const loss = await checkExports(page, "loss");
    assert.equal(loss.losses.length, 40);
    assert.ok(loss.losses.at(-1) < loss.losses[0] - 0.3, `loss ${loss.losses[0]} -> ${loss.losses.at(-1)}`);
    const maps = await checkExports(page, "maps");
    assert.deepEqual(maps.names, ["attn"], "the tiny model: one attention module");
    assert.equal(maps.maps[0].length, 2, "two heads");
    assert.deepEqual(maps.tokens.slice(0, 10), ["<s>", "3", "1", "4", "1", "5", "9", "2", "6", "<sep>"], "the prompt, then the model's answer");
    assert.ok(maxAbs(maps.maps[0].flatMap((m: number[][]) => rowSums(m)).map((s: number) => s - 1)) < 1e-5);
    await checkExports(page, "focus");
    await page.click("[data-testid=evaluate]");
    const pageValLoss = Number(await page.locator("[data-testid=evaluation]").getAttribute("data-loss"));
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("[data-testid=save-checkpoint]")]);
    const file = join(tmpdir(), `attend-explorer-${process.pid}.safetensors`);
    const cliFile = join(tmpdir(), `attend-explorer-cli-${process.pid}.safetensors`);
    await download.saveAs(file);
    try {
      // the CLI reads what the page wrote, and finds the same model; with the same settings it trains the same run
      const [ev, sample, cli] = await Promise.all([
        attend("eval", "--checkpoint", file, "--json"),
        attend("sample", "--checkpoint", file, "--prompt", "31415926", "--json"),
        attend("train", "--task", "reverse", "--model", "block", "--d-model", "32", "--heads", "2", "--steps", "40", "--seed", "0", "--out", cliFile, "--json"),
      ]);
      assert.equal(ev.code, 0, ev.stderr);
      assert.equal(lastJson(ev.stdout).step, 40);
      assert.ok(Math.abs(lastJson(ev.stdout).valLoss - pageValLoss) < 1e-4, `attend eval ${lastJson(ev.stdout).valLoss} vs the page's ${pageValLoss}`);
      assert.equal(sample.code, 0, sample.stderr);
      assert.equal(lastJson(sample.stdout).samples[0].output, maps.answer, "attend sample answers as the page does");
      assert.equal(cli.code, 0, cli.stderr);
      assert.deepEqual(loadTrainingCheckpoint(file).config, loadTrainingCheckpoint(cliFile).config, "the page's run is configured as attend train's");
      // float32 sums in another order (browser vs Node kernels) differ in the last bits, so not bit for bit
      assert.ok(Math.abs(lastJson(cli.stdout).valLoss - pageValLoss) < 1e-3, `attend train ${lastJson(cli.stdout).valLoss} vs the page's ${pageValLoss}`);
      await page.setInputFiles("[data-testid=load-file]", file);
      await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=train-status]")?.dataset.loaded === "true");
      const reloaded = JSON.parse((await exportFile(page, "maps", "json")).toString());
      assert.match(reloaded.origin, /checkpoint attend-explorer-\d+\.safetensors \(step 40\)/);
      assert.deepEqual(reloaded.maps, maps.maps, "the loaded checkpoint gives the same maps");
      const reloadedLoss = JSON.parse((await exportFile(page, "loss", "json")).toString());
      assert.equal(reloadedLoss.losses.length, 40, "the loss curve travels in the checkpoint's metadata");
      assert.match((await page.locator("[data-testid=checkpoint-info]").textContent())!, /attn\.in_proj_weight/);
    } finally {
      rmSync(file, { force: true });
      rmSync(cliFile, { force: true });
    }
  }

  test("9 inspect a model: a gpt trains in a worker; the page answers Pause in the click's own task, and training stops within a step or two", () =>
    lesson(9, "inspect", "?task=reverse&model=gpt&steps=2000&batch=64&input=1234", async (page) => {
      const status = page.locator("[data-testid=train-status]");
      await status.and(page.locator("[data-step]")).waitFor(); // the worker has made the model
      await page.click("[data-testid=train]");
      await page.waitForFunction(() => Number(document.querySelector<HTMLElement>("[data-testid=train-status]")?.dataset.step) >= 3);
      // the steps are the worker's: a module worker from the page's own origin, on the library's thread pool
      const workers = page.workers().map((w) => w.url());
      assert.ok(workers.some((u) => u.startsWith(base) && /trainer\.worker/.test(u)), `the training worker: ${workers.join(", ")}`);
      assert.doesNotMatch((await status.getAttribute("data-threads")) ?? "", /not threaded/, "the worker's kernels may use threads");
      // The worker notes when it posts each step's report. The page's step at the click is no measure of
      // the worker's: on a busy machine reports queue up on the page's thread, and Chromium runs the
      // click before them. (The page and its worker share a clock: performance.timeOrigin + now().)
      const trainer = page.workers().find((w) => /trainer\.worker/.test(w.url()))!;
      await trainer.evaluate(() => {
        const g = self as unknown as { posted: [number, number][]; postMessage: (m: { kind?: string; step?: number }, o?: unknown) => void };
        const post = g.postMessage.bind(g);
        g.posted = [];
        g.postMessage = (m, o) => {
          if (m.kind === "progress") g.posted.push([m.step!, performance.timeOrigin + performance.now()]);
          post(m, o);
        };
      });
      // what the page shows right after its click handler has run (a listener added after the page's own runs after it)
      await page.evaluate(() => {
        const b = document.querySelector<HTMLElement>("[data-testid=train]")!;
        const s = document.querySelector<HTMLElement>("[data-testid=train-status]")!;
        b.addEventListener("click", () => {
          (window as unknown as { atPause: unknown }).atPause = { step: Number(s.dataset.step), label: b.textContent, text: s.textContent, at: performance.timeOrigin + performance.now() };
        }, { once: true });
      });
      await page.click("[data-testid=train]");
      await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=train-status]")?.dataset.running === "false");
      const atPause = await page.evaluate(() => (window as unknown as { atPause: { step: number; label: string; text: string; at: number } }).atPause);
      assert.equal(atPause.label, "Train", "the button has turned back in the click's own task");
      assert.match(atPause.text, /^pausing: step \d+ of 2000/);
      const stopped = Number(await status.getAttribute("data-step"));
      const posted = await trainer.evaluate(() => (self as unknown as { posted: [number, number][] }).posted);
      assert.equal(posted.at(-1)?.[0], stopped, "the page shows the last step the worker reported");
      assert.ok(atPause.step <= stopped, `the page showed step ${atPause.step} at the click, beyond the worker's last (${stopped})`);
      // after the click the worker finishes the step in progress, and at most one more (begun before
      // the message arrived: the worker's next step and the message are two tasks in no fixed order)
      const late = posted.filter(([, t]) => t > atPause.at).map(([s]) => s);
      assert.ok(late.length <= 2, `the worker reported steps ${late.join(", ")} after the click (the page showed step ${atPause.step} then)`);
      assert.match((await status.textContent())!, new RegExp(`^stopped: step ${stopped} of 2000`));
      assert.equal(JSON.parse((await exportFile(page, "loss", "json")).toString()).losses.length, stopped, "every step's loss reached the page");
    }, "explorer-9-inspect-pause"));

  test("9 inspect a model: while a gpt trains, the page's thread runs no kernel and only draws: the maps in place, the loss and maps no more often than their intervals", async () => {
    // counts every wasm compile on the page's own thread (init scripts do not run in workers), before the app's code
    const counting = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    counting.setDefaultTimeout(PATIENCE_MS);
    // (a string: tsx would wrap named functions in a helper the page does not have)
    await counting.addInitScript(`(() => {
      window.wasmCompiles = 0;
      const Module = WebAssembly.Module;
      WebAssembly.Module = new Proxy(Module, { construct(target, args) { window.wasmCompiles++; return Reflect.construct(target, args); } });
      for (const name of ["compile", "instantiate", "compileStreaming", "instantiateStreaming"]) {
        const f = WebAssembly[name].bind(WebAssembly);
        WebAssembly[name] = (...args) => { window.wasmCompiles++; return f(...args); };
      }
    })()`);
    try {
      // the counter works: it counts a module made the way the library makes its kernels' (new WebAssembly.Module, src/kernels/wasm/runtime.ts)
      const control = await openLesson(counting, base, "lookup");
      await control.page.evaluate(() => void new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))); // "\0asm", version 1: an empty module
      assert.equal(await control.page.evaluate(() => (window as unknown as { wasmCompiles: number }).wasmCompiles), 1, "the counter saw the module");
      await control.page.close();
      await lesson(9, "inspect", "?task=reverse&model=gpt&steps=2000&batch=64&input=1234", async (page) => {
        await page.locator("[data-testid=train-status][data-step]").waitFor();
        await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=prediction]")?.dataset.step !== undefined);
        // mark the maps on show, and count the loss curve's and the maps' redraws from here on
        await page.evaluate(() => {
          const w = window as unknown as { marked: Element[]; lossDraws: number; mapDraws: number; t0: number };
          w.marked = [...document.querySelectorAll("[data-figure=maps] .heatmap, [data-figure=focus] .heatmap")];
          w.lossDraws = 0;
          w.mapDraws = 0;
          const lossBody = document.querySelector("[data-figure=loss] .fig-body")!;
          new MutationObserver((rs) => { w.lossDraws += rs.filter((r) => r.target === lossBody && r.addedNodes.length > 0).length; }).observe(lossBody, { childList: true });
          new MutationObserver(() => { w.mapDraws++; }).observe(document.querySelector("[data-testid=prediction]")!, { attributes: true, attributeFilter: ["data-step"] });
          w.t0 = performance.now();
        });
        await page.click("[data-testid=train]");
        // three redraws of the maps while training (each at a later step)
        await page.waitForFunction(() => (window as unknown as { mapDraws: number }).mapDraws >= 3);
        const seen = await page.evaluate(() => {
          const w = window as unknown as { marked: Element[]; lossDraws: number; mapDraws: number; t0: number; wasmCompiles: number };
          const now = [...document.querySelectorAll("[data-figure=maps] .heatmap, [data-figure=focus] .heatmap")];
          return {
            elapsed: performance.now() - w.t0, lossDraws: w.lossDraws, mapDraws: w.mapDraws, wasmCompiles: w.wasmCompiles,
            maps: now.length, same: now.filter((e, i) => e === w.marked[i]).length, marked: w.marked.length,
            step: Number(document.querySelector<HTMLElement>("[data-testid=train-status]")!.dataset.step),
          };
        });
        await page.click("[data-testid=train]");
        await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=train-status]")?.dataset.running === "false");
        assert.equal(seen.wasmCompiles, 0, "the page's thread compiled the kernels: some model call ran there, not in the worker");
        assert.equal(seen.marked, 5, "2 modules × 2 heads, and the enlarged map");
        assert.equal(seen.same, seen.maps, "the maps are redrawn in place, not made anew");
        assert.ok(seen.step > 0, "training went on");
        // upper bounds only (a slow machine draws less often, never more): inspect.ts's LOSS_EVERY_MS = 250, MAPS_EVERY_MS = 1000
        assert.ok(seen.lossDraws <= Math.floor(seen.elapsed / 250) + 2, `${seen.lossDraws} loss curves drawn in ${seen.elapsed.toFixed(0)} ms`);
        assert.ok(seen.mapDraws <= Math.floor(seen.elapsed / 1000) + 2, `${seen.mapDraws} sets of maps drawn in ${seen.elapsed.toFixed(0)} ms`);
      }, "explorer-9-inspect-main-thread", counting);
    } finally {
      await counting.close();
    }
  });

  test("9 inspect a model: checkpoints from attend train (block, gpt, encdec) show their config and the library's maps", () =>
    lesson(9, "inspect", "?task=reverse&input=1234", async (page) => {
      const dir = mkdtempSync(join(tmpdir(), "attend-explorer-"));
      const steps = 4; // any number will do: the page must show the step, and the maps of the model as it is
      try {
        const kinds = [
          { kind: "block", modules: 1 },
          { kind: "gpt", modules: 2 },
          { kind: "encdec", modules: 6 }, // 2 encoder self, 2 decoder self, 2 cross
        ];
        const runs = await Promise.all(kinds.map(({ kind }) => attend(
          "train", "--task", "reverse", "--model", kind, "--steps", String(steps), "--d-model", "16", "--heads", "2", ...(kind === "block" ? [] : ["--layers", "2"]),
          "--seed", "3", "--out", join(dir, `${kind}.safetensors`), "--json")));
        for (const r of runs) assert.equal(r.code, 0, r.stderr);
        for (const { kind, modules } of kinds) {
          const file = join(dir, `${kind}.safetensors`);
          await page.setInputFiles("[data-testid=load-file]", file);
          await page.waitForFunction((k) => document.querySelector<HTMLElement>("[data-testid=train-status]")?.textContent?.includes(`loaded ${k}.safetensors`), kind);
          const info = (await page.locator("[data-testid=checkpoint-info]").textContent())!;
          assert.match(info, new RegExp(`reverse: reverse a string`), `${kind}: the task`);
          assert.match(info, new RegExp(`${kind}: width 16, 2 heads, ${kind === "block" ? 1 : 2} layers?`), `${kind}: the config`);
          assert.match(info, new RegExp(`step\\s*${steps}\\b`), `${kind}: the step`);
          assert.equal(await page.locator("[data-testid=model]").inputValue(), kind);
          // a typed input: the page's maps are the library's, number for number
          const prompt = kind === "gpt" ? "90210" : "1234";
          await page.fill("[data-testid=input]", prompt);
          await page.waitForFunction((p) => document.querySelector<HTMLElement>("[data-testid=prediction]")?.dataset.input === p, prompt);
          const shown = await checkExports(page, "maps");
          const ref = referenceMaps(file, prompt);
          assert.deepEqual(shown.names, ref.names, `${kind}: the attention modules`);
          assert.equal(shown.maps.length, modules);
          assert.equal(shown.answer, ref.answer, `${kind}: the model's answer`);
          const diff = maxNestedDiff(shown.maps, ref.maps);
          assert.ok(diff < 1e-5, `${kind}: page vs library maps differ by ${diff}`);
          for (let l = 0; l < modules; l++) {
            for (let hh = 0; hh < 2; hh++) assert.equal(await page.locator(`[data-testid=map-${l}-${hh}]`).count(), 1, `${kind}: a panel for module ${l}, head ${hh}`);
          }
          if (kind === "encdec") {
            const cross = shown.names.indexOf("decoder.layers.0.cross_attn");
            assert.deepEqual(shown.axes[cross], { rows: "tokens", cols: "source" });
            assert.equal(shown.maps[cross][0][0].length, prompt.length + 1, "cross-attention keys: the source and </s>");
          }
        }
        // a character outside the vocabulary: the library's message, inline, and no maps
        await page.fill("[data-testid=input]", "12a4");
        const error = page.locator("[data-testid=input-error]");
        await error.waitFor({ state: "visible" });
        assert.equal(await error.textContent(), 'Vocab.encode: character "a" at position 2 of "12a4" is not in the vocabulary (allowed: "0123456789")');
        assert.equal(await page.locator("[data-testid=input]").getAttribute("aria-invalid"), "true");
        assert.equal(await page.locator("[data-testid=map-0-0]").count(), 0);
        await page.fill("[data-testid=input]", "4321");
        await error.waitFor({ state: "hidden" });
        // the view is in the URL; a foreign file is refused with a message
        await page.click("[data-testid=map-1-1]");
        assert.match(page.url(), /[?&]layer=1&head=1|[?&]head=1.*layer=1|[?&]layer=1.*head=1/);
        assert.match(page.url(), /input=4321/);
        assert.match(page.url(), /model=encdec/);
        const bad = join(dir, "not-a-checkpoint.safetensors");
        writeFileSync(bad, "this is not a safetensors file");
        await page.setInputFiles("[data-testid=load-file]", bad);
        await page.locator("[data-testid=load-error]").waitFor();
        assert.match((await page.locator("[data-testid=load-error]").textContent())!, /not-a-checkpoint\.safetensors is not a valid checkpoint/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, "explorer-9-inspect-checkpoints"));

  /** Lesson 10 has drawn the worker's reply to its newest request. */
  const flexDrawn = (page: Page) => page.locator("[data-testid=tile-note][data-state=ready]").waitFor();
  /** Set a range input or select to `value` as a user would. */
  const setControl = (page: Page, testid: string, value: string) => page.locator(`[data-testid=${testid}]`).evaluate((e, v) => {
    (e as HTMLInputElement).value = v;
    e.dispatchEvent(new Event(e.tagName === "SELECT" ? "change" : "input", { bubbles: true }));
  }, value);

  test("10 flexible attention: the library runs in a worker, never on the page's thread; a burst of changes ends on the last one; leaving the lesson ends the worker", async () => {
    const counting = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    counting.setDefaultTimeout(PATIENCE_MS);
    await counting.addInitScript(`(() => {
      window.wasmCompiles = 0;
      const Module = WebAssembly.Module;
      WebAssembly.Module = new Proxy(Module, { construct(target, args) { window.wasmCompiles++; return Reflect.construct(target, args); } });
    })()`);
    try {
      await lesson(10, "flex", "?opt=window&wl=100&wr=0", async (page) => {
        await flexDrawn(page);
        const worker = page.workers().find((w) => /flexMaps\.worker/.test(w.url()));
        assert.ok(worker, `lesson 10's worker: ${page.workers().map((w) => w.url()).join(", ")}`);
        // a drag: many values, no waiting; the picture ends on the last value, not on one before it
        for (let wl = 10; wl <= 200; wl += 10) await setControl(page, "wl", String(wl));
        await setControl(page, "option", "sinks");
        await setControl(page, "option", "window");
        await flexDrawn(page);
        const tiles = JSON.parse((await exportFile(page, "tiles", "json")).toString("utf8"));
        assert.equal(tiles.call, "slidingWindow: [200, 0]");
        assert.match((await page.locator("[data-testid=tile-note]").textContent())!, /^slidingWindow: \[200, 0\]/);
        assert.equal(await page.evaluate(() => (window as unknown as { wasmCompiles: number }).wasmCompiles), 0, "the page's thread made the kernels: a library call ran there, not in the worker");
        const closed = new Promise<void>((resolve) => worker.once("close", () => resolve()));
        await page.evaluate(() => { location.hash = "#/lookup"; });
        await closed; // terminated when the page left the lesson
      }, "explorer-10-flex-worker-then-1-lookup", counting);
    } finally {
      await counting.close();
    }
  });

  test("10 flexible attention: tile density, fused-path rows and sink row sums agree with the library in Node; fits 390 px", async () => {
    const lib = await import("../src/index.js");
    const N = 512, tile = 64;
    // a sliding window [100, 20]: the page's density and tile counts are createBlockMask's for the same rule
    await lesson(10, "flex", "?opt=window&wl=100&wr=20&row=300&head=1", async (page) => {
      await flexDrawn(page);
      const tiles = await checkExports(page, "tiles");
      const bm = lib.createBlockMask((_b, _h, q, k) => k >= q - 100 && k <= q + 20, { batch: 1, heads: 1, L: N, S: N, blockSize: tile });
      assert.equal(tiles.density, bm.density(), "density of the window's tiles");
      assert.deepEqual(tiles.counts, bm.counts());
      assert.equal((await readCheck(page, "tiles-agree")).ok, true);
      assert.ok(Number(await page.locator("[data-testid=tile-note]").getAttribute("data-ms")) >= 0, "a time is shown");
      const rows = await checkExports(page, "rows");
      assert.deepEqual(rows.rows, [300, 308]);
      const q = lib.tensor(rows.q.flat(), [2, N, 16]), k = lib.tensor(rows.k.flat(), [2, N, 16]);
      const w = lib.attentionWeights(q, k, { slidingWindow: [100, 20], rows: [300, 308], heads: [1] });
      assert.ok(maxNestedDiff(rows.weights, Array.from({ length: 8 }, (_, r) => Array.from(w.values.subarray(r * N, (r + 1) * N)))) < 1e-5, "window rows = attentionWeights in Node");
      assert.ok(rows.weights.every((r: number[], i: number) => r.every((x, s) => (s >= 300 + i - 100 && s <= 300 + i + 20) || x === 0)), "keys outside the window get exactly 0");
      // the 512 × 512 mask map, painted in the worker: ColorBrewer YlGnBu's last colour (#081d58) where
      // the window lets a query see a key, its first (#ffffd9) elsewhere, for every cell
      const pixels = embeddedMapPixels((await exportFile(page, "tiles", "svg")).toString("utf8"));
      assert.deepEqual([pixels.width, pixels.height], [N, N], "one pixel per cell of the mask");
      let wrong = 0, firstWrong = "";
      for (let qi = 0; qi < N; qi++) {
        for (let ki = 0; ki < N; ki++) {
          const want = ki >= qi - 100 && ki <= qi + 20 ? [0x08, 0x1d, 0x58] : [0xff, 0xff, 0xd9];
          const i = (qi * N + ki) * 3;
          const got = [pixels.rgb[i], pixels.rgb[i + 1], pixels.rgb[i + 2]];
          if (got.some((x, j) => x !== want[j]) && wrong++ === 0) firstWrong = `query ${qi}, key ${ki}: ${got}`;
        }
      }
      assert.equal(wrong, 0, `mask pixels of the wrong colour; the first: ${firstWrong}`);
      // the tooltip still reads the cells' values (the page keeps the mask itself, not only its picture)
      const maskMap = page.locator("[data-figure=tiles] .heatmap").first();
      await maskMap.focus();
      assert.match((await page.locator("#tip").textContent())!, /query 0, key 0: 1$/);
      await page.keyboard.press("End");
      assert.match((await page.locator("#tip").textContent())!, /query 0, key 511: 0$/);
      await page.keyboard.press("PageDown");
      assert.match((await page.locator("#tip").textContent())!, /query 511, key 511: 1$/);
      // moving the sliders writes the URL
      await setControl(page, "wr", "0");
      assert.match(page.url(), /[?&]wr=0(&|$)/);
      await flexDrawn(page);
      const causalWindow = JSON.parse((await exportFile(page, "tiles", "json")).toString("utf8"));
      assert.equal(causalWindow.density, lib.createBlockMask((_b, _h, q2, k2) => k2 >= q2 - 100 && k2 <= q2, { batch: 1, heads: 1, L: N, S: N }).density());
    });
    // a sink: each row sums to 1 − e^(sink − lse) < 1, checked against a float64 computation from the exported q and k
    await lesson(10, "flex", "?opt=sinks&sink=3&row=40&head=0", async (page) => {
      await flexDrawn(page);
      const rows = await checkExports(page, "rows");
      assert.equal(rows.sink, 3);
      const q = lib.tensor(rows.q.flat(), [2, N, 16]), k = lib.tensor(rows.k.flat(), [2, N, 16]);
      const sinks = lib.tensor([3, 3]);
      const w = lib.attentionWeights(q, k, { sinks, rows: [40, 48], heads: [0] });
      assert.ok(maxNestedDiff(rows.weights, Array.from({ length: 8 }, (_, r) => Array.from(w.values.subarray(r * N, (r + 1) * N)))) < 1e-5, "sink rows = attentionWeights in Node");
      const [, lse] = lib.scaledDotProductAttentionWithLse(q, k, k, { sinks });
      for (let r = 0; r < 8; r++) {
        // independent float64: scores q·k/√16 over all 512 keys plus the sink's e^3
        const l = 40 + r;
        const scores = Array.from({ length: N }, (_, s) => rows.q[l].reduce((a: number, x: number, e: number) => a + x * rows.k[s][e], 0) / 4);
        const m = Math.max(3, ...scores);
        const denom = scores.reduce((a, x) => a + Math.exp(x - m), 0) + Math.exp(3 - m);
        const sum = scores.reduce((a, x) => a + Math.exp(x - m), 0) / denom; // = 1 − e^(sink − lse)
        assert.ok(rows.rowSums[r] < 1, `row ${l} sums to ${rows.rowSums[r]}`);
        assert.ok(Math.abs(rows.rowSums[r] - sum) < 1e-5, `row ${l}: page ${rows.rowSums[r]}, float64 ${sum}`);
        assert.ok(Math.abs(rows.lse[r] - (m + Math.log(denom))) < 1e-4, `row ${l}: lse ${rows.lse[r]} vs ${m + Math.log(denom)}`);
        assert.ok(Math.abs(lse.values[l] - rows.lse[r]) < 1e-5, "the page's lse is the library's in Node");
        assert.ok(Math.abs(rows.expectedSums[r] - (1 - Math.exp(3 - lse.values[l]))) < 1e-6);
      }
      assert.equal((await readCheck(page, "row-sums")).ok, true);
      const cap = await checkExports(page, "softcap");
      assert.ok(Math.abs(cap.capped.at(-1) - cap.cap * Math.tanh(cap.x.at(-1) / cap.cap)) < 1e-12);
    });
    // ALiBi, softcap and documents: the rows equal attentionWeights in Node with the same option; documents' density is createBlockMask's
    for (const [query, option] of [
      ["?opt=alibi&alibi=default&row=100&head=1", { alibiSlopes: "default" as const }],
      ["?opt=softcap&cap=1.5&row=100&head=1", { softcap: 1.5 }],
      ["?opt=documents&docs=5&row=100&head=1", null],
    ] as const) {
      await lesson(10, "flex", query, async (page) => {
        await flexDrawn(page);
        const tiles = JSON.parse((await exportFile(page, "tiles", "json")).toString("utf8"));
        const rows = JSON.parse((await exportFile(page, "rows", "json")).toString("utf8"));
        const q = lib.tensor(rows.q.flat(), [2, N, 16]), k = lib.tensor(rows.k.flat(), [2, N, 16]);
        let opts: object = option ?? {};
        if (option === null) {
          const ids: number[] = tiles.documentIds;
          assert.equal(new Set(ids).size, 5, "five documents");
          assert.equal(tiles.density, lib.createBlockMask((_b, _h, qi, ki) => ids[qi] === ids[ki], { batch: 1, heads: 1, L: N, S: N }).density());
          const t = lib.tensor(ids, { dtype: "int32" });
          opts = { documents: { query: t, key: t } };
        } else assert.equal(tiles.density, 1, "ALiBi and softcap hide no key");
        const w = lib.attentionWeights(q, k, { ...opts, rows: [100, 108], heads: [1] });
        assert.ok(maxNestedDiff(rows.weights, Array.from({ length: 8 }, (_, r) => Array.from(w.values.subarray(r * N, (r + 1) * N)))) < 1e-5, `${query}: rows = attentionWeights in Node`);
        assert.equal((await readCheck(page, "tiles-agree")).ok, true);
        assert.equal((await readCheck(page, "row-sums")).ok, true);
      }, `explorer-10-flex-${query.slice(5, query.indexOf("&"))}`);
    }
    // a block mask (prefix LM): density equals createBlockMask's in Node; the page fits a phone
    await lesson(10, "flex", "?opt=blockmask&pattern=prefix", async (page) => {
      await flexDrawn(page);
      await laidOut(page);
      const width = await page.evaluate(() => document.scrollingElement!.scrollWidth);
      assert.ok(width <= PHONE, `flex: the page is ${width} px wide on a ${PHONE} px screen`);
      const tiles = JSON.parse((await exportFile(page, "tiles", "json")).toString("utf8"));
      assert.equal(tiles.density, lib.createBlockMask((_b, _h, q, k) => k < 128 || k <= q, { batch: 1, heads: 1, L: N, S: N, blockSize: tile }).density());
      const silent = await page.locator(".fig").evaluateAll((figs) => figs.filter((f) => {
        const body = f.querySelector(".fig-body")!;
        return body.scrollWidth > body.clientWidth + 1 && (f.querySelector(".scroll-hint") as HTMLElement).hidden;
      }).map((f) => f.getAttribute("data-figure")));
      assert.deepEqual(silent, [], "flex: figures that scroll sideways without saying so");
    }, "explorer-phone-10-flex", phone);
  });
});
