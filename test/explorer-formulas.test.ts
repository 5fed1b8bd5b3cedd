/**
 * The explorer's formulas, typeset at build time (web/typeset.ts, a Vite plugin) instead of by
 * KaTeX in the browser: every formula each lesson shows is, node for node, what
 * katex.renderToString makes of its TeX with the options the page used to give katex.render; the
 * TeX of a formula() call must be written out, or the build says where it is not.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import katex from "katex";
import type { Browser, BrowserContext } from "playwright-core";
import { parseAst } from "vite";
import { serve } from "../web/server.mjs";
import { typesetFormulas } from "../web/typeset.js";
import { PATIENCE_MS, REPO, buildExplorer, launch, openLesson, requireChromium } from "./browser-helpers.js";

/** What the page's formula() showed before: katex.render(tex, el, these options). */
const reference = (tex: string, display: boolean): string =>
  katex.renderToString(tex, { displayMode: display, throwOnError: true, output: "htmlAndMathml" });

/** Run the plugin's transform on a module of web/src/pages that imports formula. */
async function transform(body: string): Promise<string> {
  const id = join(REPO, "web", "src", "pages", "example.ts");
  const hook = typesetFormulas().transform as (this: unknown, code: string, id: string) => Promise<{ code: string } | null>;
  const context = {
    parse: (code: string) => parseAst(code),
    resolve: async (source: string) => ({ id: source === "../ui/math.js" ? join(REPO, "web", "src", "ui", "math.ts") : source }),
    error: (message: string) => { throw new Error(message); },
  };
  const out = await hook.call(context, `import { formula } from "../ui/math.js";\n${body}`, id);
  return out?.code ?? "";
}

test("typesetFormulas: each formula() call's TeX is typeset by KaTeX and handed to typeset() when the module loads", async () => {
  const code = await transform("export const f = () => [formula([String.raw`\\frac{a}{b}`, 'x^2']), formula(`y`, false)];");
  const handed = JSON.parse(code.match(/__typesetFormulas\((.*)\);\n$/)![1]) as [string, boolean, string][];
  assert.deepEqual(handed, [
    [String.raw`\frac{a}{b}`, true, reference(String.raw`\frac{a}{b}`, true)],
    ["x^2", true, reference("x^2", true)],
    ["y", false, reference("y", false)],
  ]);
  assert.match(code, /import \{ typeset as __typesetFormulas \} from "\.\.\/ui\/math\.js";/);
  assert.equal(await transform("export const f = () => 1;"), "", "a module that calls no formula() is left alone");
});

test("typesetFormulas: TeX that is computed, or a display flag that is, fails the build and says where", async () => {
  await assert.rejects(transform("const t = 'a';\nexport const f = () => formula(t);"), /typesetFormulas: the TeX of formula\(\) at .*example\.ts:3 must be written out .*this is Identifier/);
  await assert.rejects(transform("export const f = (n) => formula([String.raw`a_${n}`]);"), /the TeX of formula\(\) at .*example\.ts:2 must be written out .*TaggedTemplateExpression/);
  await assert.rejects(transform("export const f = (d) => formula('a', d);"), /display argument at .*example\.ts:2 must be written out as true or false/);
  await assert.rejects(transform("export const f = () => formula('\\\\frac{a}');"), /KaTeX parse error/, "TeX that KaTeX cannot read fails the build, not the page");
});

describe("explorer formulas in Chromium", () => {
  let dist = "";
  let server: Server;
  let base = "";
  let browser: Browser;
  let context: BrowserContext;
  before(async () => {
    requireChromium();
    dist = mkdtempSync(join(tmpdir(), "attend-explorer-formulas-"));
    buildExplorer(dist);
    ({ server, url: base } = await serve({ root: dist, port: 0 }));
    browser = await launch();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(PATIENCE_MS);
  });
  after(async () => {
    await browser?.close();
    server?.close();
    if (dist) rmSync(dist, { recursive: true, force: true });
  });

  test("every formula every lesson shows is katex.renderToString of its TeX", async () => {
    const first = await openLesson(context, base, "lookup");
    const lessons = await first.page.locator("nav a[data-page]").evaluateAll((as) => as.map((a) => (a as HTMLElement).dataset.page!));
    await first.page.close();
    assert.equal(lessons.length, 10);
    for (const id of lessons) {
      const { page, errors } = await openLesson(context, base, id);
      // one KaTeX rendering per .formula (or per part of a formula in parts) and per .formula-inline
      const shown = await page.locator(".formula:not(.formula-parts), .formula-part, .formula-inline").evaluateAll((es) => es.map((e) => ({
        tex: e.querySelector("annotation[encoding='application/x-tex']")?.textContent ?? null,
        display: e.querySelector(":scope > .katex-display") !== null,
        text: e.textContent ?? "",
      })));
      assert.ok(shown.length > 0, `${id}: shows no formula`);
      for (const f of shown) assert.notEqual(f.tex, null, `${id}: a formula without KaTeX's MathML (raw TeX?): ${f.text.slice(0, 80)}`);
      const want = shown.map((f) => reference(f.tex!, f.display));
      // compared as DOM nodes: the reference parsed by the browser against what the page shows
      const unequal = await page.locator(".formula:not(.formula-parts), .formula-part, .formula-inline").evaluateAll((es, html) => es.flatMap((e, i) => {
        const t = document.createElement("template");
        t.innerHTML = html[i];
        const same = e.childNodes.length === t.content.childNodes.length && [...e.childNodes].every((c, j) => c.isEqualNode(t.content.childNodes[j]));
        return same ? [] : [e.querySelector("annotation")?.textContent ?? `#${i}`];
      }), want);
      assert.deepEqual(unequal, [], `${id}: formulas unlike katex.renderToString of their TeX`);
      assert.deepEqual(errors, [], `${id}: console errors`);
      await page.close();
    }
  });
});
