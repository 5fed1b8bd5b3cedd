/**
 * Soak: many fresh processes run threaded fused attention on growing sizes (setNumThreads 2..4,
 * V8's baseline tier only, which widens races), each must finish and agree with 1 thread. This
 * catches what one long-lived test process cannot: races at pool start-up, such as a worker that
 * starts while the calling thread grows the shared memory and keeps seeing the older, smaller size
 * (its accesses above it trapped; a backward then left the other threads spinning forever).
 *
 * `npm test` runs 8 processes, 2 at a time; `npm run soak` runs 300 (or `node --import tsx
 * test/kernels-soak.test.ts <processes> [<parallel>]`). A child that outlives its generous timeout
 * (120 s; one takes a few seconds) is killed and counted as a hang: a hang is the bug this detects,
 * not slowness.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { wasmAvailable, wasmRuntimeInfo } from "../src/kernels/index.js";

const PROCESSES = Number(process.argv[2] ?? 8);
const PARALLEL = Number(process.argv[3] ?? 2);
const CHILD_TIMEOUT_MS = 120_000;
const CHILD = fileURLToPath(new URL("./kernels-soak-child.ts", import.meta.url));

type Outcome = { kind: "ok" } | { kind: "failed"; why: string } | { kind: "hung" };

function runChild(i: number): Promise<Outcome> {
  const threads = 2 + (i % 3);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--liftoff-only", "--import", "tsx", CHILD, String(threads), String(i + 1)], { env });
    let output = "";
    child.stdout.on("data", (d: Buffer) => { output += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { output += d.toString(); });
    let hung = false;
    const timer = setTimeout(() => { hung = true; child.kill("SIGKILL"); }, CHILD_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (hung) resolve({ kind: "hung" });
      else if (code === 0) resolve({ kind: "ok" });
      else resolve({ kind: "failed", why: `process ${i} (${threads} threads): exit ${code ?? signal}\n${output.slice(-2000)}` });
    });
  });
}

async function soak(processes: number, parallel: number): Promise<{ hung: number; failed: string[] }> {
  let next = 0, hung = 0;
  const failed: string[] = [];
  let done = 0;
  const lane = async (): Promise<void> => {
    while (next < processes) {
      const r = await runChild(next++);
      if (r.kind === "hung") hung++;
      else if (r.kind === "failed") failed.push(r.why);
      if (++done % 25 === 0) console.log(`# soak: ${done} of ${processes} processes, ${hung} hung, ${failed.length} failed`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return { hung, failed };
}

const threaded = wasmAvailable() && wasmRuntimeInfo()!.threaded;

test(`${PROCESSES} fresh processes of threaded attention on growing sizes: no hang, no failure`, { skip: !threaded && "no threaded wasm here", timeout: Infinity }, async () => {
  const { hung, failed } = await soak(PROCESSES, PARALLEL);
  console.log(`# soak: ${PROCESSES} processes, ${hung} hung, ${failed.length} failed`);
  assert.equal(hung + failed.length, 0, `${hung} hung (killed after ${CHILD_TIMEOUT_MS / 1000} s), ${failed.length} failed:\n${failed.slice(0, 3).join("\n")}`);
});
