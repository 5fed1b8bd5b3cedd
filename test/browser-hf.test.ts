/**
 * Lesson 9's Hugging Face part in Chromium: a GPT-2 twin's folder (test/fixtures/hf/gpt2 plus a
 * tokenizer.json made here) picked in the page, a typed text, and the numbers the page draws checked
 * against the library in Node for the same text: the head view's lines against
 * forwardWithAttention's weights, the model view's thumbnails and the enlarged map likewise, and the
 * score table against the scores computed here again from those weights. Then the folders the
 * loader must refuse, and the page at 390 px. Every wait is for a condition (no suite time limit).
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { serve } from "../web/server.mjs";
import { fromPretrained, fromPretrainedFiles, headScores, noGrad } from "../src/index.js";
import {
  PATIENCE_MS, REPO, assertLocalOnly, buildExplorer, checkExports, contrastProblems, exportFile, laidOut, launch, maxNestedDiff, openLesson, requireChromium, screenshot,
} from "./browser-helpers.js";

const FIXTURE = join(REPO, "test", "fixtures", "hf", "gpt2");
const PHONE = 390;
/** A word-level tokenizer.json over the twin's 40 ids: "[UNK]" is 0, then 39 words. */
const WORDS = "the cat sat on mat because was tired a dog ran after ball it and then slept in sun big red house door open window bird sang song tree green grass fast slow quick brown fox jumps over lazy".split(" ");
const TEXT = "the cat sat on the mat because the cat was tired";

function tokenizerJson(): string {
  const vocab: Record<string, number> = { "[UNK]": 0 };
  WORDS.forEach((w, i) => { vocab[w] = i + 1; });
  assert.equal(Object.keys(vocab).length, 40, "one id per word, as many as the twin's vocabulary");
  return JSON.stringify({
    version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null,
    model: { type: "WordLevel", vocab, unk_token: "[UNK]" },
  });
}

/** A folder as a user has it: the twin's files, tokenizer.json, and files the page should not read. */
function makeFolder(root: string, name: string, files: { config?: boolean; weights?: boolean; tokenizer?: boolean; modelType?: string } = {}): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  if (files.config ?? true) {
    if (files.modelType) writeFileSync(join(dir, "config.json"), JSON.stringify({ model_type: files.modelType, vocab_size: 40 }));
    else copyFileSync(join(FIXTURE, "config.json"), join(dir, "config.json"));
  }
  if (files.weights ?? true) copyFileSync(join(FIXTURE, "model.safetensors"), join(dir, "model.safetensors"));
  if (files.tokenizer ?? true) writeFileSync(join(dir, "tokenizer.json"), tokenizerJson());
  writeFileSync(join(dir, "README.md"), "# a model card the page does not read\n");
  return dir;
}

/** The library in Node on the same folder and text: the tokens and maps[layer][head][query][key]. */
function reference(dir: string, text: string): { ids: number[]; tokens: string[]; maps: number[][][][]; parameters: number } {
  const { model, tokenizer } = fromPretrained(dir);
  assert.ok(tokenizer);
  const enc = tokenizer.encode(text);
  const { attention } = noGrad(() => model.forwardWithAttention([enc.ids]));
  const T = enc.ids.length;
  const maps = attention.map((a) => {
    const [, H] = a.weights.shape; // [1, H, T, T]
    const w = Array.from(a.weights.values);
    return Array.from({ length: H }, (_, h) => Array.from({ length: T }, (_, q) => w.slice((h * T + q) * T, (h * T + q + 1) * T)));
  });
  return { ids: enc.ids, tokens: enc.tokens, maps, parameters: model.parameters().reduce((n, p) => n + p.size, 0) };
}

/**
 * The scores as the page's table defines them, computed here again in float64 from Node's weights:
 * means over the rows 1 … T−1 of w[l, l−1] (previous token), −Σ w ln w (entropy) and w[l, 0] (first token).
 */
function referenceScores(maps: number[][][][]): { previousToken: number[][]; entropy: number[][]; firstToken: number[][] } {
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const per = (f: (m: number[][], l: number) => number) => maps.map((layer) => layer.map((m) => mean(m.slice(1).map((_, i) => f(m, i + 1)))));
  return {
    previousToken: per((m, l) => m[l][l - 1]),
    entropy: per((m, l) => -m[l].reduce((a, w) => a + (w > 0 ? w * Math.log(w) : 0), 0)),
    firstToken: per((m, l) => m[l][0]),
  };
}

let server: Server;
let base = "";
let browser: Browser;
let desktop: BrowserContext;
let phone: BrowserContext;
let folders = "";

/** Pick a folder (or files) and wait until the page has answered: loaded it or refused it. */
async function pickFolder(page: Page, dir: string | string[], input = Array.isArray(dir) ? "hf-files" : "hf-folder"): Promise<void> {
  const picks = Number((await page.locator("[data-testid=hf-status]").getAttribute("data-picks")) ?? 0);
  await page.setInputFiles(`[data-testid=${input}]`, dir);
  await page.waitForFunction((n) => Number(document.querySelector<HTMLElement>("[data-testid=hf-status]")?.dataset.picks ?? 0) > n, picks);
}

/** Type a text and wait until the page has drawn its attention. */
async function typeText(page: Page, text: string): Promise<void> {
  await page.fill("[data-testid=hf-text]", text);
  await page.locator("[data-testid=hf-text]").press("Enter");
  await page.waitForFunction((t) => document.querySelector<HTMLElement>("[data-testid=hf-next]")?.dataset.text === t, text);
}

/** The head view's lines: [head, query, key, weight]. */
async function drawnLines(page: Page): Promise<[number, number, number, number][]> {
  return page.locator("[data-testid=hf-head-view] line[data-w]").evaluateAll((ls) => ls.map((l) => {
    const d = (l as SVGElement).dataset;
    return [Number(d.head), Number(d.q), Number(d.k), Number(d.w)] as [number, number, number, number];
  }));
}

/** The drawn lines are Node's weights, and every weight of a shown head above the threshold is drawn. */
function checkLines(lines: [number, number, number, number][], maps: number[][][][], layer: number, heads: number[], minWeight: number): void {
  for (const [h, q, k, w] of lines) {
    assert.ok(heads.includes(h), `a line of head ${h}, which is hidden`);
    assert.ok(Math.abs(w - maps[layer][h][q][k]) < 1e-5, `layer ${layer} head ${h} (${q} → ${k}): page ${w}, Node ${maps[layer][h][q][k]}`);
    assert.ok(w >= minWeight, `a line of weight ${w} under the threshold`);
  }
  const drawn = new Set(lines.map(([h, q, k]) => `${h},${q},${k}`));
  for (const h of heads) {
    maps[layer][h].forEach((row, q) => row.forEach((w, k) => {
      if (w >= minWeight + 1e-5) assert.ok(drawn.has(`${h},${q},${k}`), `layer ${layer} head ${h}: no line ${q} → ${k} of weight ${w}`);
    }));
  }
}

describe("explorer lesson 9: a Hugging Face folder in Chromium", () => {
  let dist = "";
  before(async () => {
    requireChromium();
    dist = mkdtempSync(join(tmpdir(), "attend-explorer-hf-dist-"));
    folders = mkdtempSync(join(tmpdir(), "attend-explorer-hf-"));
    buildExplorer(dist);
    ({ server, url: base } = await serve({ root: dist, port: 0 }));
    browser = await launch();
    desktop = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    phone = await browser.newContext({ viewport: { width: PHONE, height: 844 }, acceptDownloads: true });
    desktop.setDefaultTimeout(PATIENCE_MS);
    phone.setDefaultTimeout(PATIENCE_MS);
  });

  after(async () => {
    await browser?.close();
    server?.close();
    for (const d of [dist, folders]) if (d) rmSync(d, { recursive: true, force: true });
  });

  test("head view, model view and score table equal the library's forwardWithAttention in Node", async () => {
    const dir = makeFolder(folders, "gpt2-twin");
    const ref = reference(dir, TEXT);
    const { page, errors, requests } = await openLesson(desktop, base, "inspect");
    try {
      await pickFolder(page, dir);
      assert.equal(await page.locator("[data-testid=hf-status]").getAttribute("data-loaded"), "true", (await page.locator("[data-testid=hf-load-error]").textContent())!);
      // what was loaded: the model, its size, the files read and the one not read
      const summary = (await page.locator("[data-testid=hf-summary]").textContent())!;
      assert.match(summary, /gpt2 \(GPT2LMHeadModel\)/);
      assert.match(summary, /2 layers, 4 heads of 16, width 64, vocabulary 40, 32 positions/);
      assert.equal(Number(await page.locator("[data-testid=hf-size]").getAttribute("data-parameters")), ref.parameters, "the parameter count is the library's");
      assert.match(summary, /tokenizer\.json \(WordLevel\)/);
      assert.match(summary, /not read: gpt2-twin\/README\.md/);

      await typeText(page, TEXT);
      assert.match((await page.locator("[data-testid=hf-next]").textContent())!, new RegExp(`^${ref.ids.length} tokens`));
      const heads = await checkExports(page, "hf-heads");
      assert.deepEqual(heads.tokens, ref.tokens, "the folder's tokenizer, as in Node");
      assert.deepEqual(heads.ids, ref.ids);
      assert.ok(maxNestedDiff(heads.weights, ref.maps[0]) < 1e-5, "the head view's layer 0 = Node's");
      const minWeight = Number(await page.locator("[data-testid=hf-head-view]").getAttribute("data-min-weight"));
      checkLines(await drawnLines(page), ref.maps, 0, [0, 1, 2, 3], minWeight);
      // another layer, and a head switched off
      await page.selectOption("[data-testid=hf-layer]", "1");
      await page.uncheck("[data-testid=hf-head-1]");
      checkLines(await drawnLines(page), ref.maps, 1, [0, 2, 3], minWeight);
      assert.match(page.url(), /hflayer=1/);
      // hovering a query token leaves only its lines
      await page.locator("[data-testid=hf-head-view] text.token-q[data-i='5']").hover();
      const visible = await page.locator("[data-testid=hf-head-view] line[data-w]").evaluateAll((ls) => ls.filter((l) => l.getAttribute("visibility") !== "hidden").map((l) => (l as SVGElement).dataset.q));
      assert.ok(visible.length > 0 && visible.every((q) => q === "5"), `lines left on hover: queries ${[...new Set(visible)]}`);
      await page.click("[data-testid=hf-all-heads]");
      checkLines(await drawnLines(page), ref.maps, 1, [0, 1, 2, 3], minWeight);

      // the model view: a thumbnail per layer × head, their numbers Node's; a click enlarges one
      assert.equal(await page.locator("[data-testid^=hf-thumb-]").count(), 2 * 4);
      const model = await checkExports(page, "hf-model");
      assert.deepEqual(model.names, ["transformer.h.0.attn", "transformer.h.1.attn"]);
      assert.ok(maxNestedDiff(model.maps, ref.maps) < 1e-5, "model view = Node's maps");
      // the thumbnails' cells, painted in the worker: the centre of each cell on the canvas is YlGnBu's
      // colour at the exported weight's step of 256
      const { interpolateYlGnBu } = await import("d3-scale-chromatic");
      const drawn = await page.locator("[data-testid^=hf-thumb-] canvas.hm-base").evaluateAll((cs) => cs.map((c) => {
        const canvas = c as HTMLCanvasElement;
        const el = canvas.parentElement!;
        return { layer: Number(el.dataset.layer), head: Number(el.dataset.head), width: canvas.width, height: canvas.height, rgba: Array.from(canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data) };
      }));
      assert.equal(drawn.length, 2 * 4);
      const T = ref.ids.length;
      for (const d of drawn) {
        const cell = d.width / T; // canvas pixels per cell (the thumbnails have no labels or legend)
        for (let q = 0; q < T; q++) {
          for (let k = 0; k < T; k++) {
            const x = Math.floor((k + 0.5) * cell), y = Math.floor((q + 0.5) * cell);
            const got = d.rgba.slice((y * d.width + x) * 4, (y * d.width + x) * 4 + 3);
            const w: number = model.maps[d.layer][d.head][q][k];
            const want = interpolateYlGnBu(Math.round(Math.min(1, Math.max(0, w)) * 255) / 255).match(/\d+/g)!.map(Number);
            assert.deepEqual(got, want, `thumbnail ${d.layer}.${d.head}, query ${q}, key ${k} (weight ${w})`);
          }
        }
      }
      await page.click("[data-testid=hf-thumb-1-2]");
      assert.equal(await page.locator("[data-testid=hf-thumb-1-2]").getAttribute("data-selected"), "true");
      const enlarged = await checkExports(page, "hf-map");
      assert.deepEqual([enlarged.layer, enlarged.head], [1, 2]);
      assert.ok(maxNestedDiff(enlarged.weights, ref.maps[1][2]) < 1e-5, "the enlarged map = Node's layer 1 head 2");
      assert.match(page.url(), /hfl=1&hfh=2/);

      // the score table: the same numbers computed here from Node's weights
      const want = referenceScores(ref.maps);
      for (const key of ["previousToken", "entropy", "firstToken"] as const) {
        for (let l = 0; l < 2; l++) {
          for (let h = 0; h < 4; h++) {
            const v = Number(await page.locator(`[data-testid=hf-score-${key}-${l}-${h}]`).getAttribute("data-value"));
            assert.ok(Math.abs(v - want[key][l][h]) < 1e-5, `${key} of ${l}.${h}: page ${v}, Node ${want[key][l][h]}`);
          }
        }
      }
      // the induction column: the library's headScores (a repeated random sequence, its defaults), as in Node
      await page.locator("[data-figure=hf-scores] .fig-body[data-library=true]").waitFor();
      const induction = headScores(fromPretrained(dir).model).induction;
      for (let l = 0; l < 2; l++) {
        for (let h = 0; h < 4; h++) {
          const v = Number(await page.locator(`[data-testid=hf-score-induction-${l}-${h}]`).getAttribute("data-value"));
          assert.ok(Math.abs(v - induction[l][h]) < 1e-5, `induction of ${l}.${h}: page ${v}, Node ${induction[l][h]}`);
        }
      }
      const scores = await checkExports(page, "hf-scores");
      assert.ok(maxNestedDiff(scores.text.entropy, want.entropy) < 1e-5);
      assert.ok(maxNestedDiff(scores.library.induction, induction) < 1e-5);
      assert.ok(want.entropy.flat().some((e) => e > 0.1) && want.previousToken.flat().some((p) => p > 0.05), "scores that a wrong definition would miss");

      // too long a text for the page: its message, no maps
      await typeText(page, Array.from({ length: 130 }, () => "cat").join(" "));
      assert.match((await page.locator("[data-testid=hf-text-error]").textContent())!, /130 tokens; this page draws at most 128/);
      await screenshot(page, "explorer-9-inspect-hf");
      assert.deepEqual(errors, [], "console errors");
      assert.deepEqual(await contrastProblems(page), [], "text under 4.5:1 contrast");
      assertLocalOnly(requests);
    } catch (err) {
      await screenshot(page, "explorer-9-inspect-hf-failed").catch(() => {});
      throw err;
    } finally {
      await page.close();
    }
  });

  test("folders the loader refuses get the library's message; a folder without tokenizer.json takes token ids", async () => {
    const { page, errors } = await openLesson(desktop, base, "inspect");
    try {
      const expectError = async (dir: string, files: Record<string, string | Uint8Array>): Promise<void> => {
        let message = "";
        try {
          fromPretrainedFiles(files);
        } catch (e) {
          message = (e as Error).message;
        }
        assert.notEqual(message, "", `${dir}: the library refuses it in Node`);
        await pickFolder(page, dir);
        const shown = (await page.locator("[data-testid=hf-load-error]").textContent())!;
        assert.ok(shown.includes(message), `${dir}: the page says "${shown}", the library "${message}"`);
        assert.equal(await page.locator("[data-testid=hf-status]").getAttribute("data-loaded"), "false");
      };
      const tok = tokenizerJson();
      await expectError(makeFolder(folders, "no-config", { config: false }), { "tokenizer.json": tok });
      assert.match((await page.locator("[data-testid=hf-load-error]").textContent())!, /no config\.json/);
      await expectError(makeFolder(folders, "no-weights", { weights: false }), { "config.json": JSON.stringify({ model_type: "gpt2", vocab_size: 40 }), "tokenizer.json": tok });
      assert.match((await page.locator("[data-testid=hf-load-error]").textContent())!, /neither model\.safetensors nor model\.safetensors\.index\.json/);
      await expectError(makeFolder(folders, "bert", { modelType: "bert" }), { "config.json": JSON.stringify({ model_type: "bert" }) });
      assert.match((await page.locator("[data-testid=hf-load-error]").textContent())!, /model_type "bert" is not supported/);
      // nothing the loader reads
      await pickFolder(page, [join(makeFolder(folders, "card-only", { config: false, weights: false, tokenizer: false }), "README.md")]);
      assert.match((await page.locator("[data-testid=hf-load-error]").textContent())!, /None of the 1 file picked is a \.json or \.safetensors file/);
      // the fixture as it is (no tokenizer.json), picked as plain files: it loads, says so, and reads typed ids
      await pickFolder(page, [join(FIXTURE, "config.json"), join(FIXTURE, "model.safetensors")]);
      assert.equal(await page.locator("[data-testid=hf-status]").getAttribute("data-loaded"), "true");
      assert.equal(await page.locator("[data-testid=hf-no-tokenizer]").isVisible(), true);
      await typeText(page, "1 7 3 22 9");
      const heads = JSON.parse((await exportFile(page, "hf-heads", "json")).toString());
      assert.deepEqual(heads.ids, [1, 7, 3, 22, 9]);
      const { model } = fromPretrained(FIXTURE);
      const { attention } = noGrad(() => model.forwardWithAttention([[1, 7, 3, 22, 9]]));
      const w = Array.from(attention[0].weights.values);
      assert.ok(maxNestedDiff(heads.weights, Array.from({ length: 4 }, (_, h) => Array.from({ length: 5 }, (_, q) => w.slice((h * 5 + q) * 5, (h * 5 + q + 1) * 5)))) < 1e-5);
      // longer than the model's 32 positions: the library's message
      await typeText(page, Array.from({ length: 40 }, (_, i) => i % 40).join(" "));
      assert.match((await page.locator("[data-testid=hf-text-error]").textContent())!, /go past the model's 32 positions/);
      await typeText(page, "1 7 x");
      assert.match((await page.locator("[data-testid=hf-text-error]").textContent())!, /no tokenizer\.json, so type token ids .* "x" is not one/);
      // files dropped on the box load as picked ones do
      const dropped = ["config.json", "model.safetensors"].map((name) => ({ name, bytes: [...readFileSync(join(FIXTURE, name))] }));
      dropped.push({ name: "tokenizer.json", bytes: [...Buffer.from(tokenizerJson())] });
      const picks = Number(await page.locator("[data-testid=hf-status]").getAttribute("data-picks"));
      await page.locator("[data-testid=hf-dropzone]").evaluate((zone, files) => {
        const dt = new DataTransfer();
        for (const f of files) dt.items.add(new File([new Uint8Array(f.bytes)], f.name));
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
      }, dropped);
      await page.waitForFunction((n) => Number(document.querySelector<HTMLElement>("[data-testid=hf-status]")?.dataset.picks) > n, picks);
      assert.equal(await page.locator("[data-testid=hf-status]").getAttribute("data-loaded"), "true");
      assert.match((await page.locator("[data-testid=hf-summary]").textContent())!, /tokenizer\.json \(WordLevel\)/);
      assert.deepEqual(errors, [], "console errors");
    } finally {
      await page.close();
    }
  });

  test("the Llama family: grouped-query heads (llama, F16) and a sliding window over two shards (mistral) show Node's maps", async () => {
    const ids = [1, 7, 3, 22, 9, 30, 5, 12];
    const { page, errors } = await openLesson(desktop, base, "inspect");
    try {
      for (const name of ["llama", "mistral"]) {
        const dir = join(REPO, "test", "fixtures", "hf", name);
        await pickFolder(page, dir);
        assert.equal(await page.locator("[data-testid=hf-status]").getAttribute("data-loaded"), "true", `${name}: ${await page.locator("[data-testid=hf-load-error]").textContent()}`);
        const summary = (await page.locator("[data-testid=hf-summary]").textContent())!;
        assert.match(summary, /4 heads of 16, 2 key\/value heads \(grouped-query\)/, `${name}: GQA named`);
        assert.match(summary, /config\.json says float16, computed in float32/);
        if (name === "mistral") assert.match(summary, /model-00001-of-00002\.safetensors .*, model-00002-of-00002\.safetensors/, "both shards read");
        await typeText(page, ids.join(" "));
        const { model } = fromPretrained(dir);
        const { attention } = noGrad(() => model.forwardWithAttention([ids]));
        const T = ids.length;
        const maps = attention.map((a) => {
          const w = Array.from(a.weights.values);
          return Array.from({ length: 4 }, (_, h) => Array.from({ length: T }, (_, q) => w.slice((h * T + q) * T, (h * T + q + 1) * T)));
        });
        const shown = JSON.parse((await exportFile(page, "hf-model", "json")).toString());
        assert.deepEqual(shown.names, ["model.layers.0.self_attn", "model.layers.1.self_attn"]);
        assert.ok(maxNestedDiff(shown.maps, maps) < 1e-5, `${name}: model view = Node's maps`);
        const minWeight = Number(await page.locator("[data-testid=hf-head-view]").getAttribute("data-min-weight"));
        const lines = await drawnLines(page);
        checkLines(lines, maps, Number(await page.locator("[data-testid=hf-layer]").inputValue()), [0, 1, 2, 3], minWeight);
        if (name === "mistral") {
          // sliding_window 3: a query sees itself and the two keys before it, so no line reaches further back
          assert.ok(lines.every(([, q, k]) => k <= q && k >= q - 2), "lines only within the window");
        }
      }
      assert.deepEqual(errors, [], "console errors");
    } finally {
      await page.close();
    }
  });

  test("at 390 px the page with a loaded folder fits without sideways scroll", async () => {
    const dir = makeFolder(folders, "gpt2-phone");
    const { page, errors } = await openLesson(phone, base, "inspect");
    try {
      await pickFolder(page, dir);
      await typeText(page, TEXT);
      await page.locator("[data-figure=hf-scores] .fig-body[data-library=true]").waitFor(); // the table at its widest
      await page.locator("[data-testid=prediction][data-step]").waitFor(); // the lesson's own model, made in its worker meanwhile
      await laidOut(page);
      const width = await page.evaluate(() => document.scrollingElement!.scrollWidth);
      assert.ok(width <= PHONE, `the page is ${width} px wide on a ${PHONE} px screen`);
      const silent = await page.locator(".fig").evaluateAll((figs) => figs.filter((f) => {
        const body = f.querySelector(".fig-body")!;
        return body.scrollWidth > body.clientWidth + 1 && (f.querySelector(".scroll-hint") as HTMLElement).hidden;
      }).map((f) => f.getAttribute("data-figure")));
      assert.deepEqual(silent, [], "figures that scroll sideways without saying so");
      const wide = await page.locator("[data-figure^=hf-] .fig-body, .hf-table-scroll").evaluateAll((bs) => bs.filter((b) => b.scrollWidth > b.clientWidth + 1).map((b) => b.closest(".fig")!.getAttribute("data-figure")));
      assert.deepEqual(wide, [], "the head view, model view, map and table are drawn at the phone's width");
      await screenshot(page, "explorer-phone-9-inspect-hf");
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
});
