/**
 * The explorer's main thread while lesson 9 trains a gpt: the longest task the page's thread runs
 * (Chromium's Long Tasks API: every task over 50 ms) between pressing Train and pressing Pause.
 * Run by hand, after `npm run explorer:build` (it serves web/dist):
 *
 *   node --import tsx bench/page.ts [--runs 3] [--seconds 8] [--profile out.cpuprofile]
 *
 * Prints, per run, the long tasks seen (count, longest, total) and the steps trained, then the
 * median over the runs of the longest. With --profile, the last run also records a CPU profile of
 * the page's main thread (CDP Profiler; open it in Chrome's DevTools, Performance panel) and prints
 * the functions that took the most self time. Times depend on the machine and its load: quote them
 * with the load.
 */
import { writeFileSync } from "node:fs";
import { type Page, chromium } from "playwright-core";
import { serve } from "../web/server.mjs";

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};
const runs = Number(arg("runs", "3"));
const seconds = Number(arg("seconds", "8"));
const profileFile = arg("profile", "");
const traceFile = arg("trace", "");
const root = arg("root", "");
const query = arg("query", "?task=reverse&model=gpt&steps=2000&batch=64&input=1234");
const CHROMIUM = process.env.ATTEND_CHROMIUM ?? "/usr/bin/chromium";

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** The functions with the most self time in a CPU profile, "ms name (file:line)". */
function topSelf(p: Profile, n = 15): string[] {
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    const key = `${f.functionName || "(anonymous)"} (${f.url.split("/").at(-1)}:${f.lineNumber + 1})`;
    self.set(key, (self.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  });
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, ms]) => `${ms.toFixed(0).padStart(6)} ms  ${k}`);
}

async function once(page: Page, base: string, profile: boolean): Promise<{ tasks: number[]; steps: number; profile?: Profile }> {
  await page.goto(`${base}#/inspect${query}`);
  await page.locator("[data-testid=train-status][data-step]").waitFor(); // the worker has made the model
  await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=prediction]")?.dataset.step !== undefined);
  await page.evaluate(() => {
    const w = window as unknown as { longTasks: number[] };
    w.longTasks = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) w.longTasks.push(e.duration); }).observe({ type: "longtask" });
  });
  const cdp = profile ? await page.context().newCDPSession(page) : null;
  if (cdp) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
    await cdp.send("Profiler.start");
  }
  const first = Number(await page.locator("[data-testid=train-status]").getAttribute("data-step"));
  await page.click("[data-testid=train]");
  await page.waitForTimeout(seconds * 1000);
  await page.click("[data-testid=train]");
  await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=train-status]")?.dataset.running === "false");
  await page.waitForTimeout(500); // the maps of the last step
  const out: { tasks: number[]; steps: number; profile?: Profile } = {
    tasks: await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks),
    steps: Number(await page.locator("[data-testid=train-status]").getAttribute("data-step")) - first,
  };
  if (cdp) out.profile = ((await cdp.send("Profiler.stop")) as unknown as { profile: Profile }).profile;
  return out;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const { server, url } = await serve(root ? { root, port: 0 } : { port: 0 });
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--no-first-run"] });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const longest: number[] = [];
  for (let i = 0; i < runs; i++) {
    const page = await context.newPage();
    const tracing = traceFile !== "" && i === runs - 1;
    if (tracing) await browser.startTracing(page, { path: traceFile, categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute", "blink.user_timing"] });
    const r = await once(page, url, profileFile !== "" && i === runs - 1);
    if (tracing) {
      await browser.stopTracing();
      console.log(`trace of the last run: ${traceFile} (open it in DevTools' Performance panel)`);
    }
    const max = Math.max(0, ...r.tasks);
    longest.push(max);
    console.log(`run ${i + 1}: ${r.steps} steps in ${seconds} s; ${r.tasks.length} long tasks, longest ${max.toFixed(0)} ms, total ${r.tasks.reduce((a, b) => a + b, 0).toFixed(0)} ms [${r.tasks.map((t) => t.toFixed(0)).join(", ")}]`);
    if (r.profile) {
      writeFileSync(profileFile, JSON.stringify(r.profile));
      console.log(`CPU profile of the main thread: ${profileFile}; most self time:\n${topSelf(r.profile).join("\n")}`);
    }
    await page.close();
  }
  console.log(`longest main-thread task while training (median of ${runs}): ${median(longest).toFixed(0)} ms`);
} finally {
  await browser.close();
  server.close();
}
