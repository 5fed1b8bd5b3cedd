/**
 * The explorer's main thread: the longest task the page's thread runs (Chromium's Long Tasks API:
 * every task over 50 ms) while
 * - lesson 9 trains a gpt (the default, --lesson inspect): between pressing Train and pressing Pause;
 * - lesson 10's options change (--lesson flex): each option in turn with a slider moved for each,
 *   every change drawn before the next, then a drag of a slider (--changes input events 30 ms apart,
 *   not waiting for the picture). Before that, the lesson is opened from lesson 1 (as from the menu)
 *   and the long tasks of its mount and first draw are reported apart ("opening");
 * - any other lesson (--lesson sdpa, gqa, …), or lesson 10 with --opening-only: only its opening,
 *   from lesson 1 (lesson 1 itself from lesson 2), until it has mounted and a second has passed.
 * Run by hand, after `npm run explorer:build` (it serves web/dist; --root DIR serves another build):
 *
 *   node --import tsx bench/page.ts [--lesson inspect|flex|<lesson id>] [--opening-only] [--runs 3] [--seconds 8] [--changes 20] [--profile out.cpuprofile] [--cpu-throttle 4]
 *
 * Prints, per run, the long tasks seen (count, longest, total) and the steps trained or the changes
 * made, then the median over the runs of the longest. With --profile, the last run also records a CPU profile of
 * the page's main thread (CDP Profiler; open it in Chrome's DevTools, Performance panel) and prints
 * the functions that took the most self time. Times depend on the machine and its load: quote them
 * with the load. --cpu-throttle N slows the page's CPU N times (Chromium's CPU throttling), a
 * repeatable stand-in for a machine under heavy load.
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
const lesson = arg("lesson", "inspect");
const LESSONS = ["lookup", "mixing", "sdpa", "selfcross", "multihead", "masks", "gqa", "memory", "inspect", "flex"];
if (!LESSONS.includes(lesson)) throw new Error(`bench/page.ts: --lesson must be one of ${LESSONS.join(", ")}, not ${JSON.stringify(lesson)}`);
/** measure only the lesson's opening (always so for lessons other than inspect and flex) */
const openingOnly = argv.includes("--opening-only") || (lesson !== "inspect" && lesson !== "flex");
const changes = Number(arg("changes", "20"));
/** slow the page's CPU this many times (CDP Emulation.setCPUThrottlingRate), as a machine under heavy load would */
const throttle = Number(arg("cpu-throttle", "1"));
const query = arg("query", lesson === "flex" ? "?opt=window&wl=127&wr=0&seed=3" : lesson === "inspect" ? "?task=reverse&model=gpt&steps=2000&batch=64&input=1234" : "");
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

interface Run { tasks: number[]; work: string; opening?: number[]; profile?: Profile }

/** Lesson 9: train for `seconds`; the work done is the steps trained. */
async function training(page: Page): Promise<string> {
  const first = Number(await page.locator("[data-testid=train-status]").getAttribute("data-step"));
  await page.click("[data-testid=train]");
  await page.waitForTimeout(seconds * 1000);
  await page.click("[data-testid=train]");
  await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=train-status]")?.dataset.running === "false");
  await page.waitForTimeout(500); // the maps of the last step
  const steps = Number(await page.locator("[data-testid=train-status]").getAttribute("data-step")) - first;
  return `${steps} steps in ${seconds} s`;
}

/**
 * Lesson 10 is drawn for its current options: no request is out (data-state is not "pending"; a page
 * that computes on its own thread has drawn by the time the event returns and sets no data-state).
 */
const flexDrawn = (page: Page) => page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=tile-note]")?.dataset.state !== "pending");

/** Set a range input or select to `value` as a user would (its input or change event). */
async function setControl(page: Page, testid: string, value: string): Promise<void> {
  await page.locator(`[data-testid=${testid}]`).evaluate((e, v) => {
    (e as HTMLInputElement).value = v;
    e.dispatchEvent(new Event(e.tagName === "SELECT" ? "change" : "input", { bubbles: true }));
  }, value);
}

/** Lesson 10: every option, a parameter of each, the first row and the head, then a drag of the window's left edge. */
async function flexChanges(page: Page): Promise<string> {
  const params: [string, string, string][] = [
    ["window", "wl", "60"], ["alibi", "alibi", "0.125"], ["softcap", "cap", "1.5"], ["sinks", "sink", "3"], ["documents", "docs", "7"], ["blockmask", "pattern", "strided"],
  ];
  let made = 0;
  for (const [opt, testid, value] of params) {
    await setControl(page, "option", opt);
    await flexDrawn(page);
    await setControl(page, testid, value);
    await flexDrawn(page);
    await setControl(page, "row", String(40 + 50 * made));
    await flexDrawn(page);
    made += 3;
  }
  await setControl(page, "head", "1");
  await flexDrawn(page);
  await setControl(page, "option", "window");
  await flexDrawn(page);
  made += 2;
  for (let i = 0; i < changes; i++) { // a drag: input events 30 ms apart, not waiting for the picture
    await setControl(page, "wl", String(20 + 10 * i));
    await page.waitForTimeout(30);
  }
  await flexDrawn(page);
  made += changes;
  return `${made} changes`;
}

/** Start collecting the page's long tasks (durations, ms) into window.longTasks. */
const observeLongTasks = (page: Page) => page.evaluate(() => {
  const w = window as unknown as { longTasks: number[] };
  w.longTasks = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) w.longTasks.push(e.duration); }).observe({ type: "longtask" });
});
/** The long tasks collected so far, and a fresh start. */
const takeLongTasks = (page: Page) => page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks.splice(0));

async function once(page: Page, base: string, profile: boolean): Promise<Run> {
  const cdp = profile || throttle !== 1 ? await page.context().newCDPSession(page) : null;
  if (cdp && throttle !== 1) await cdp.send("Emulation.setCPUThrottlingRate", { rate: throttle });
  const startProfile = async (): Promise<void> => {
    if (!cdp || !profile) return;
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
    await cdp.send("Profiler.start");
  };
  let opening: number[] | undefined;
  if (lesson === "inspect") {
    await page.goto(`${base}#/${lesson}${query}`);
    await page.locator("[data-testid=train-status][data-step]").waitFor(); // the worker has made the model
    await page.waitForFunction(() => document.querySelector<HTMLElement>("[data-testid=prediction]")?.dataset.step !== undefined);
    await observeLongTasks(page);
    await startProfile();
  } else {
    // opened from lesson 1, as from the menu: the page's code is loaded, so the long tasks are the
    // lesson's mount and its first draw (for lesson 10, the 512 × 512 mask map's first paint among them)
    const from = lesson === "lookup" ? "mixing" : "lookup";
    await page.goto(`${base}#/${from}`);
    await page.waitForFunction((id) => (window as unknown as { __explorer?: { page: string } }).__explorer?.page === id, from);
    await page.waitForTimeout(500);
    await observeLongTasks(page);
    await startProfile();
    await page.evaluate((hash) => { location.hash = hash; }, `#/${lesson}${query}`);
    if (lesson === "flex") {
      await page.locator("[data-testid=tile-note][data-ms]").waitFor();
      await flexDrawn(page);
      await page.waitForTimeout(300); // the resize observer's redraw and the observer's last entries
    } else {
      await page.waitForFunction((id) => (window as unknown as { __explorer?: { page: string } }).__explorer?.page === id, lesson);
      await page.waitForTimeout(1000); // its first draws and the observer's last entries
    }
    opening = await takeLongTasks(page);
  }
  if (openingOnly) {
    const out: Run = { tasks: [], work: "opening only", opening };
    if (cdp && profile) out.profile = ((await cdp.send("Profiler.stop")) as unknown as { profile: Profile }).profile;
    return out;
  }
  const work = lesson === "inspect" ? await training(page) : await flexChanges(page);
  await page.waitForTimeout(200); // the long-task observer's last entries
  const out: Run = { tasks: await takeLongTasks(page), work, opening };
  if (cdp && profile) out.profile = ((await cdp.send("Profiler.stop")) as unknown as { profile: Profile }).profile;
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
  const longestOpening: number[] = [];
  const countOpening: number[] = [];
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
    if (r.opening) {
      const open = Math.max(0, ...r.opening);
      longestOpening.push(open);
      countOpening.push(r.opening.length);
      console.log(`run ${i + 1}: opening the lesson: ${r.opening.length} long tasks, longest ${open.toFixed(0)} ms [${r.opening.map((t) => t.toFixed(0)).join(", ")}]`);
    }
    if (!openingOnly) console.log(`run ${i + 1}: ${r.work}; ${r.tasks.length} long tasks, longest ${max.toFixed(0)} ms, total ${r.tasks.reduce((a, b) => a + b, 0).toFixed(0)} ms [${r.tasks.map((t) => t.toFixed(0)).join(", ")}]`);
    if (r.profile) {
      writeFileSync(profileFile, JSON.stringify(r.profile));
      console.log(`CPU profile of the main thread: ${profileFile}; most self time:\n${topSelf(r.profile).join("\n")}`);
    }
    await page.close();
  }
  if (longestOpening.length) {
    console.log(`longest main-thread task while opening lesson ${LESSONS.indexOf(lesson) + 1} (median of ${runs}): ${median(longestOpening).toFixed(0)} ms; long tasks (median): ${median(countOpening)}`);
  }
  if (!openingOnly) console.log(`longest main-thread task while ${lesson === "inspect" ? "training" : "changing lesson 10's options"} (median of ${runs}): ${median(longest).toFixed(0)} ms`);
} finally {
  await browser.close();
  server.close();
}
