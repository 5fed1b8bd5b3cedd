/**
 * Helpers for the explorer's browser tests: build the app, serve it, drive Debian's Chromium through
 * playwright-core (never a downloaded browser), and read what the pages export.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, type Page, chromium } from "playwright-core";
import { decode as decodePng } from "fast-png";
import { Tensor, loadTrainingCheckpoint, noGrad, restoreRun, sampleTokens } from "../src/index.js";

export const REPO = fileURLToPath(new URL("..", import.meta.url));
/** Debian's Chromium; ATTEND_CHROMIUM may name another system browser binary (nothing is ever downloaded). */
export const CHROMIUM = process.env.ATTEND_CHROMIUM ?? "/usr/bin/chromium";
export const RESULTS = join(REPO, "test-results");

/** Fail (not skip) when the browser is missing, and say how to get it. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`browser tests: ${CHROMIUM} not found. Install Debian's Chromium with \`apt-get install chromium\` (CI's .ci/run does this); the tests never download a browser.`);
  }
}

/**
 * How long any one wait in the browser tests may take: long enough that no machine, however busy,
 * reaches it while the work goes on (the waits are for conditions, not for time); it only turns a
 * page that has hung into a failure instead of a test run that never ends.
 */
export const PATIENCE_MS = 10 * 60_000;

/**
 * vite build of web/ into `outDir` (a folder of the test's own, so that a build of web/dist by
 * `npm start` or another test cannot change the files under a running test).
 */
export function buildExplorer(outDir: string): void {
  const vite = join(REPO, "node_modules", "vite", "bin", "vite.js");
  const r = spawnSync(process.execPath, [vite, "build", "--config", join(REPO, "web", "vite.config.ts"), "--logLevel", "warn", "--outDir", outDir, "--emptyOutDir"], { cwd: REPO, encoding: "utf8" });
  assert.equal(r.status, 0, `vite build failed:\n${r.stdout}\n${r.stderr}`);
}

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: PATIENCE_MS,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/** What web/src/main.ts publishes for tests. */
type ExplorerWindow = { __explorer?: { page: string; mounted: number; error: string | null } };

export interface Opened {
  page: Page;
  /** console errors and uncaught exceptions */
  errors: string[];
  /** every URL the page requested */
  requests: string[];
}

/** Open one lesson in a fresh page and wait until it has mounted. */
export async function openLesson(context: BrowserContext, base: string, id: string, query = ""): Promise<Opened> {
  const page = await context.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(`${base}#/${id}${query}`);
  await page.waitForFunction((pid) => {
    const e = (window as unknown as ExplorerWindow).__explorer;
    return e?.page === pid && e.mounted > 0;
  }, id);
  const err = await page.evaluate(() => (window as unknown as ExplorerWindow).__explorer?.error);
  assert.equal(err, null, `${id}: mount failed: ${err}`);
  return { page, errors, requests };
}

/**
 * Resolve once the page has laid out what it has drawn so far and its ResizeObservers have run (they
 * run after a frame's layout; two frames cover a change made just before the first). A figure's
 * scroll hint is set by one, so a check of it right after a worker's reply was drawn could see the
 * hint of the page before the reply.
 */
export async function laidOut(page: Page): Promise<void> {
  await page.evaluate(() => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))));
}

/** Nothing but the local server (and in-page data:/blob: URLs). */
export function assertLocalOnly(requests: string[]): void {
  for (const u of requests) {
    const url = new URL(u);
    if (url.protocol === "data:" || url.protocol === "blob:") continue;
    assert.equal(url.hostname, "127.0.0.1", `a request left 127.0.0.1: ${u}`);
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(RESULTS, { recursive: true });
  await page.screenshot({ path: join(RESULTS, `${name}.png`), fullPage: true });
}

/** Click an export button and return the downloaded bytes. */
export async function exportFile(page: Page, figure: string, kind: "png" | "svg" | "json"): Promise<Buffer> {
  const arrival = page.waitForEvent("download");
  arrival.catch(() => {}); // reported below, after the click's own error if the click fails
  await page.click(`[data-testid=export-${figure}-${kind}]`);
  const download = await arrival;
  assert.match(download.suggestedFilename(), new RegExp(`\\.${kind}$`));
  return readFileSync((await download.path())!);
}

/**
 * The pixels of the first heat map in an exported SVG that embeds its cells as a PNG (a map of more
 * than 4096 cells: one pixel per cell, as on the page's canvas), as RGB bytes row by row.
 */
export function embeddedMapPixels(svg: string): { width: number; height: number; rgb: Uint8Array } {
  const m = /href="data:image\/png;base64,([A-Za-z0-9+/=]+)"/.exec(svg);
  assert.ok(m, "the SVG embeds a map's cells as a PNG");
  const png = decodePng(Buffer.from(m[1], "base64"));
  const { width, height, channels } = png;
  assert.ok(channels === 3 || channels === 4, `PNG channels ${channels}`);
  assert.equal(png.depth, 8, "8-bit PNG");
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = png.data[i * channels + c];
  return { width, height, rgb };
}

/** Width and height from a PNG's IHDR chunk, after checking the signature. */
export function pngSize(png: Buffer): { width: number; height: number } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "PNG signature");
  assert.equal(png.subarray(12, 16).toString("latin1"), "IHDR", "first chunk is IHDR");
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/**
 * Export a figure three ways and check each file: the PNG decodes to the figure's size at 2× scale,
 * the SVG parses (in the browser's XML parser) with an <svg> root, the JSON parses. Returns the JSON.
 */
export async function checkExports(page: Page, figure: string): Promise<any> {
  const expected = await page.evaluate((id) => {
    const body = document.querySelector(`[data-figure="${id}"] .fig-body`) as HTMLElement;
    const r = body.getBoundingClientRect();
    return { width: Math.ceil(Math.max(body.scrollWidth, r.width)), height: Math.ceil(Math.max(body.scrollHeight, r.height)) };
  }, figure);
  const size = pngSize(await exportFile(page, figure, "png"));
  assert.deepEqual(size, { width: expected.width * 2, height: expected.height * 2 }, `${figure}: PNG size`);
  const svg = (await exportFile(page, figure, "svg")).toString("utf8");
  const parsed = await page.evaluate((text) => {
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    return { root: doc.documentElement.nodeName, error: doc.getElementsByTagName("parsererror").length, shapes: doc.querySelectorAll("rect, path, line, circle, image, text").length };
  }, svg);
  assert.equal(parsed.error, 0, `${figure}: SVG does not parse`);
  assert.equal(parsed.root, "svg");
  assert.ok(parsed.shapes > 3, `${figure}: SVG has ${parsed.shapes} shapes`);
  return JSON.parse((await exportFile(page, figure, "json")).toString("utf8"));
}

/** The state a check line reports (data-ok) and its text. */
export async function readCheck(page: Page, id: string): Promise<{ ok: boolean; text: string }> {
  const el = page.locator(`[data-testid="${id}"]`);
  return { ok: (await el.getAttribute("data-ok")) === "true", text: (await el.textContent()) ?? "" };
}

export const maxAbs = (xs: number[]): number => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
export const rowSums = (m: number[][]): number[] => m.map((r) => r.reduce((a, b) => a + b, 0));

/**
 * Visible HTML text whose contrast with its background is under WCAG AA's 4.5:1 (disabled controls
 * and SVG text excluded). Returns "text (ratio)" for each offender. (Plain JavaScript in a string:
 * tsx would wrap named functions in a helper the page does not have.)
 */
const CONTRAST_SCRIPT = `(() => {
  const rgba = (c) => (c.match(/[\\d.]+/g) || ["0", "0", "0", "0"]).map(Number);
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => { const x = v / 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0.5) return c;
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg, [hidden], .katex") || el.disabled || el.offsetParent === null) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join("").trim();
    if (!text) continue;
    const a = lum(rgba(getComputedStyle(el).color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) out.push(text.slice(0, 30) + " (" + ratio.toFixed(2) + ")");
  }
  return out;
})()`;

export async function contrastProblems(page: Page): Promise<string[]> {
  return (await page.evaluate(CONTRAST_SCRIPT)) as string[];
}

/** The attend CLI as a user runs it (src/cli/main.ts through tsx); resolves with its exit code and output. */
export function attend(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: REPO });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The one JSON object a --json command prints last. */
export function lastJson(stdout: string): any {
  return JSON.parse(stdout.trimEnd().split("\n").at(-1)!);
}

/**
 * What `attend attn-map` computes for a checkpoint and a task prompt, in Node: the model's greedy
 * answer and every attention module's weights over the prompt and that answer, as
 * maps[module][head][row][col]. The explorer's page 9 must show the same numbers.
 */
export function referenceMaps(file: string, prompt: string): { answer: string; names: string[]; maps: number[][][][] } {
  const { data, model } = restoreRun(loadTrainingCheckpoint(file), file);
  const { vocab } = data;
  const source = vocab.encode(prompt);
  const ids = (xs: number[]): Tensor => new Tensor(Int32Array.from(xs), [1, xs.length], "int32");
  model.eval?.();
  return noGrad(() => {
    let tokens: number[];
    let generated: number[];
    let context;
    if (model.layout === "encoder-decoder") {
      const src = [...source, vocab.eos];
      generated = sampleTokens(model, [vocab.bos], vocab, { maxTokens: 32 }, src);
      tokens = [vocab.bos, ...generated];
      context = { source: ids(src), sourcePadding: new Tensor(new Uint8Array(src.length), [1, src.length], "bool") };
    } else {
      const prefix = [vocab.bos, ...source, vocab.sep];
      generated = sampleTokens(model, prefix, vocab, { maxTokens: 32 });
      tokens = [...prefix, ...generated];
    }
    const views = model.attentionMaps!(ids(tokens), context);
    const maps = views.map((v) => {
      const [H, R, C] = v.weights.shape;
      const w = Array.from(v.weights.values);
      return Array.from({ length: H }, (_, hh) => Array.from({ length: R }, (_, r) => w.slice((hh * R + r) * C, (hh * R + r + 1) * C)));
    });
    return { answer: vocab.decode(generated), names: views.map((v) => v.name), maps };
  });
}

/** Largest |a - b| over two nested arrays of the same shape (fails on a shape mismatch). */
export function maxNestedDiff(a: unknown, b: unknown, where = "maps"): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    assert.equal(a.length, b.length, `${where}: lengths differ`);
    return a.reduce((m: number, x, i) => Math.max(m, maxNestedDiff(x, b[i], `${where}[${i}]`)), 0);
  }
  assert.equal(typeof a, "number", `${where}: not a number`);
  return Math.abs((a as number) - (b as number));
}

/**
 * Pairs of texts (and dashed reference lines, class "ref-line") in an SVG document whose boxes
 * overlap by more than `tolerance` px, rotation included: the page draws the SVG offscreen, maps each
 * text's box through its transform, and tests the rotated boxes with the separating-axis test.
 * Returns '"a" / "b"' for each pair. (A string script: see CONTRAST_SCRIPT.)
 */
const OVERLAP_SCRIPT = `((svgText, tolerance) => {
  const doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
  const host = document.createElement("div");
  host.style.cssText = "position:absolute;left:0;top:0;visibility:hidden";
  host.append(document.importNode(doc.documentElement, true));
  document.body.append(host);
  const shapes = [...host.querySelectorAll("text, line.ref-line")].filter((el) => el.tagName !== "text" || el.textContent.trim()).map((el) => {
    const b = el.getBBox();
    const m = el.getScreenCTM();
    const h = Math.max(b.height, 1), w = Math.max(b.width, 1);
    const pts = [[b.x, b.y], [b.x + w, b.y], [b.x + w, b.y + h], [b.x, b.y + h]].map(([x, y]) => {
      const p = new DOMPoint(x, y).matrixTransform(m);
      return [p.x, p.y];
    });
    return { name: el.tagName === "text" ? JSON.stringify(el.textContent) : "reference line", pts };
  });
  host.remove();
  const axes = (s) => [0, 1].map((i) => {
    const [a, b] = [s.pts[i], s.pts[i + 1]];
    const n = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
    return [-(b[1] - a[1]) / n, (b[0] - a[0]) / n];
  });
  const extent = (s, ax) => {
    const v = s.pts.map((p) => p[0] * ax[0] + p[1] * ax[1]);
    return [Math.min(...v), Math.max(...v)];
  };
  const overlap = (a, b) => [...axes(a), ...axes(b)].every((ax) => {
    const [a0, a1] = extent(a, ax), [b0, b1] = extent(b, ax);
    return Math.min(a1, b1) - Math.max(a0, b0) > tolerance;
  });
  const out = [];
  for (let i = 0; i < shapes.length; i++) {
    for (let j = i + 1; j < shapes.length; j++) if (overlap(shapes[i], shapes[j])) out.push(shapes[i].name + " / " + shapes[j].name);
  }
  return out;
})`;

export async function svgOverlaps(page: Page, svg: string, tolerance = 2): Promise<string[]> {
  return (await page.evaluate(`${OVERLAP_SCRIPT}(${JSON.stringify(svg)}, ${tolerance})`)) as string[];
}

/** Horizontal extent of each element matching `selector` that lies partly outside the viewport: "text [left, right]". */
export async function outsideViewportX(page: Page, selector: string): Promise<string[]> {
  return page.locator(selector).evaluateAll((els) => els.flatMap((el) => {
    const r = el.getBoundingClientRect();
    return r.left < 0 || r.right > window.innerWidth ? [`${(el.textContent ?? "").trim().slice(0, 30)} [${Math.round(r.left)}, ${Math.round(r.right)}]`] : [];
  }));
}

/** What a line chart shows: its x tick labels, its marker label and whether that lies inside the chart, and its drawn / natural width. */
export async function chartFacts(page: Page, figure: string): Promise<{ xTicks: string[]; marker: string | null; markerInside: boolean; scale: number }> {
  return page.locator(`[data-figure="${figure}"] svg.chart`).evaluate((svg) => {
    const box = svg.getBoundingClientRect();
    const marker = svg.querySelector(".marker-label");
    const m = marker?.getBoundingClientRect();
    return {
      xTicks: [...svg.querySelectorAll(".tick-x")].map((t) => t.textContent ?? ""),
      marker: marker?.textContent ?? null,
      markerInside: !m || (m.left >= box.left - 0.5 && m.right <= box.right + 0.5),
      scale: box.width / (svg as SVGSVGElement).width.baseVal.value,
    };
  });
}
