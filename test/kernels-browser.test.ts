/**
 * The wasm kernels in Chromium (Debian's, driven by playwright-core; skipped when it is not installed):
 *   - a plain page (not cross-origin isolated: no SharedArrayBuffer) runs them on an unshared memory,
 *   - a cross-origin isolated page's main thread has shared memory but may not block: one thread,
 *   - a module worker of that page may block: it spawns workers and really uses 2 threads.
 * Every context must produce the same bits as Node for the same inputs (the "simd" variant), and match
 * the reference kernels.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CHROMIUM = process.env.ATTEND_CHROMIUM ?? "/usr/bin/chromium";

/** Runs in Node and in the browser: the same inputs, digests of the outputs. */
const CHECK = `
import * as K from "./kernels.js";

function rand(n, seed) {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; a[i] = 2 * (s / 4294967296) - 1; }
  return a;
}
function digest(arrays) {
  let h = 0x811c9dc5;
  for (const a of arrays) {
    const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i], 0x01000193) >>> 0;
  }
  return h.toString(16);
}
function maxRelErr(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const e = Math.abs(a[i] - b[i]) / (3e-5 + 3e-4 * Math.abs(b[i]));
    m = Math.max(m, Number.isNaN(e) ? Infinity : e);
  }
  return m;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function run() {
  K.setWasmVariant("simd");
  K.wasmTuning.minParallelFlops = 0;
  K.wasmTuning.minParallelAttentionFlops = 0;
  const L = 150, S = 200;
  const maskData = new Uint8Array(L * S);
  for (let i = 0; i < maskData.length; i++) maskData[i] = (i * 7919) % 11 === 0 ? 0 : 1;
  const p = {
    B: 1, H: 4, Hkv: 2, L, S, E: 40, Ev: 24, scale: 0.2, causal: "bottom-right",
    mask: { kind: "bool", data: maskData, strides: [0, 0, S, 1] }, dropoutP: 0.15, dropoutSeed: 11,
  };
  const q = rand(4 * L * 40, 1), k = rand(2 * S * 40, 2), v = rand(2 * S * 24, 3), dout = rand(4 * L * 24, 4);
  const attn = (be) => {
    const out = new Float32Array(4 * L * 24), lse = new Float32Array(4 * L);
    be.attentionForward(p, q, k, v, out, lse);
    const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
    be.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
    return [out, lse, dq, dk, dv];
  };
  const a = rand(97 * 130, 5), b = rand(130 * 75, 6);
  const mp = { batch: 1, m: 97, n: 75, k: 130, aBatchStride: 0, bBatchStride: 0, transA: true, transB: false, accumulate: false };
  const mm = (be) => { const o = new Float32Array(97 * 75); be.matmul(o, a, b, mp); return o; };

  const want = attn(K.refBackend);
  K.setNumThreads(1);
  const one = attn(K.wasmBackend);
  const mm1 = mm(K.wasmBackend);
  K.setNumThreads(2);
  attn(K.wasmBackend); // starts the workers where there can be any
  for (let i = 0; i < 24000; i++) { // up to 10 minutes for a worker to start on a loaded machine
    const info = K.wasmRuntimeInfo();
    if (!info.threaded || info.workersStarted === 0 || info.workersReady >= 1) break; // none spawned: nothing to wait for
    await sleep(25);
  }
  const before = K.wasmRuntimeInfo().workerTasks;
  let two = attn(K.wasmBackend);
  let mm2 = mm(K.wasmBackend);
  // On a busy machine the calling thread may finish every task before a worker wakes: run again
  // (up to 3000 times: a loaded machine may schedule the worker late) until a worker has taken part; every run must give the same bits.
  for (let i = 0; i < 3000 && K.wasmRuntimeInfo().threaded && K.wasmRuntimeInfo().workerTasks === before; i++) {
    await sleep(20);
    const t = attn(K.wasmBackend), m = mm(K.wasmBackend);
    if (digest(t) !== digest(two)) two = t;
    if (digest([m]) !== digest([mm2])) mm2 = m;
  }
  const info = K.wasmRuntimeInfo();
  let err = 0;
  for (let i = 0; i < 5; i++) err = Math.max(err, maxRelErr(one[i], want[i]));
  err = Math.max(err, maxRelErr(mm1, mm(K.refBackend)) / 10);
  return {
    sab: typeof SharedArrayBuffer !== "undefined",
    isolated: typeof crossOriginIsolated === "boolean" ? crossOriginIsolated : null,
    info, workerTasksInTwoThreadRuns: info.workerTasks - before, maxErr: err,
    digest1: digest(one), digest2: digest(two), mmDigest1: digest([mm1]), mmDigest2: digest([mm2]),
  };
}
`;

const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
import { run } from "./check.js";
run().then((r) => { window.__result = r; }, (e) => { window.__result = { error: String(e && e.stack || e) }; });
</script>`;
const WORKER_PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
const w = new Worker("./worker.js", { type: "module" });
w.onmessage = (e) => { window.__result = e.data; };
w.onerror = (e) => { window.__result = { error: "worker error: " + e.message }; };
</script>`;
const WORKER = `import { run } from "./check.js";
run().then((r) => postMessage(r), (e) => postMessage({ error: String(e && e.stack || e) }));`;

interface CheckResult {
  error?: string;
  sab: boolean;
  isolated: boolean | null;
  info: { variant: string; threaded: boolean; workersReady: number };
  workerTasksInTwoThreadRuns: number;
  maxErr: number;
  digest1: string;
  digest2: string;
  mmDigest1: string;
  mmDigest2: string;
}

/** How long a launch or a wait may take: only a hung browser or page reaches it, however busy the machine (as in browser-helpers.ts). */
const PATIENCE_MS = 10 * 60_000;

describe("wasm kernels in Chromium", { skip: !existsSync(CHROMIUM) && `${CHROMIUM} not installed` }, () => {
  let dir = "";
  let server: Server;
  let base = "";
  let node: CheckResult;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "attend-kernels-browser-"));
    const { build } = await import("esbuild");
    await build({
      entryPoints: [join(REPO, "src", "kernels", "index.ts")], bundle: true, format: "esm", platform: "browser",
      target: "es2022", outfile: join(dir, "kernels.js"), logLevel: "warning",
    });
    writeFileSync(join(dir, "check.js"), CHECK);
    writeFileSync(join(dir, "index.html"), PAGE);
    writeFileSync(join(dir, "worker.html"), WORKER_PAGE);
    writeFileSync(join(dir, "worker.js"), WORKER);
    node = await (await import(pathToFileURL(join(dir, "check.js")).href)).run();
    server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      const [, scope, file] = url.pathname.split("/");
      const path = join(dir, file ?? "");
      if ((scope !== "plain" && scope !== "iso") || !file || !existsSync(path)) {
        res.writeHead(404).end();
        return;
      }
      const headers: Record<string, string> = { "content-type": file.endsWith(".html") ? "text/html" : "text/javascript" };
      if (scope === "iso") {
        headers["cross-origin-opener-policy"] = "same-origin";
        headers["cross-origin-embedder-policy"] = "require-corp";
      }
      res.writeHead(200, headers).end(readFileSync(path));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => {
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function inChromium(path: string): Promise<CheckResult> {
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, timeout: PATIENCE_MS,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(PATIENCE_MS);
      await page.goto(`${base}${path}`);
      await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result !== undefined);
      return await page.evaluate(() => (window as unknown as { __result: CheckResult }).__result);
    } finally {
      await browser.close();
    }
  }

  function sameBitsAsNode(r: CheckResult, where: string): void {
    assert.equal(r.error, undefined, `${where}: ${r.error}`);
    assert.ok(r.maxErr <= 1, `${where}: wasm vs ref error ${r.maxErr}x tolerance`);
    assert.equal(r.digest1, node.digest1, `${where}: attention bits differ from Node's`);
    assert.equal(r.digest2, node.digest1, `${where}: 2-thread attention bits differ from Node's`);
    assert.equal(r.mmDigest1, node.mmDigest1, `${where}: matmul bits differ from Node's`);
    assert.equal(r.mmDigest2, node.mmDigest1, `${where}: 2-thread matmul bits differ from Node's`);
  }

  test("Node reference run is self-consistent and threaded", () => {
    assert.equal(node.error, undefined);
    assert.ok(node.maxErr <= 1);
    assert.equal(node.digest2, node.digest1);
    assert.equal(node.info.threaded, true);
    assert.ok(node.workerTasksInTwoThreadRuns > 0);
  });

  test("plain page (no SharedArrayBuffer): unshared memory, one thread, Node's bits", async () => {
    const r = await inChromium("/plain/index.html");
    sameBitsAsNode(r, "plain page");
    assert.equal(r.isolated, false);
    assert.equal(r.sab, false);
    assert.equal(r.info.threaded, false);
  });

  test("isolated page, main thread (may not block): one thread, Node's bits", async () => {
    const r = await inChromium("/iso/index.html");
    sameBitsAsNode(r, "isolated main thread");
    assert.equal(r.isolated, true);
    assert.equal(r.sab, true);
    assert.equal(r.info.threaded, false);
  });

  test("isolated page, module worker: 2 threads through nested workers, Node's bits", async () => {
    const r = await inChromium("/iso/worker.html");
    sameBitsAsNode(r, "worker");
    assert.equal(r.info.threaded, true);
    assert.ok(r.workerTasksInTwoThreadRuns > 0, "nested workers took tasks");
  });
});
