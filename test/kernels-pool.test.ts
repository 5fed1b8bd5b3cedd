/**
 * The worker pool of the wasm backend, each case in a child process (a broken pool hangs, and a hang
 * is what these detect: the parent kills a child after a generous timeout and fails):
 *   - a task that fails on a worker fails the call on every thread with a clear error, instead of
 *     leaving the other threads waiting for it; the runtime stays usable;
 *   - a host with `--input-type=module` in NODE_OPTIONS still gets working workers.
 * (Races at pool start-up are soaked in kernels-soak.test.ts.)
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import type { AttentionParams } from "../src/kernels/backend.js";
import { setNumThreads, wasmAvailable, wasmBackend, wasmRuntimeInfo, wasmTuning } from "../src/kernels/index.js";
import { getRuntime } from "../src/kernels/wasm/runtime.js";
import { uniformArray } from "./kernel-inputs.js";

const CHILD = process.env.ATTEND_POOL_CHILD;
const CHILD_TIMEOUT_MS = 120_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Many key blocks (Bc = 8), so that a worker takes some of the tasks. */
function problem(): { p: AttentionParams; q: Float32Array; k: Float32Array; v: Float32Array; dout: Float32Array } {
  const B = 1, H = 2, Hkv = 1, L = 64, S = 512, E = 16, Ev = 16;
  const p: AttentionParams = {
    B, H, Hkv, L, S, E, Ev, scale: 0.25, causal: "none", mask: null, dropoutP: 0, dropoutSeed: 0,
  };
  return {
    p, q: uniformArray(B * H * L * E, 1), k: uniformArray(B * Hkv * S * E, 2), v: uniformArray(B * Hkv * S * Ev, 3),
    dout: uniformArray(B * H * L * Ev, 4),
  };
}

/** The outputs of `pass` (forward: out; backward: dq, dk, dv); that pass runs inside `during`. */
function attention(pass: "forward" | "backward", during: (run: () => void) => void = (run) => run()): Buffer {
  const { p, q, k, v, dout } = problem();
  const out = new Float32Array(dout.length), lse = new Float32Array(p.B * p.H * p.L);
  const fwd = (): void => wasmBackend.attentionForward(p, q, k, v, out, lse);
  if (pass === "forward") {
    during(fwd);
    return Buffer.from(out.buffer);
  }
  fwd();
  const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
  during(() => wasmBackend.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv));
  return Buffer.concat([dq, dk, dv].map((a) => Buffer.from(a.buffer)));
}

/** Starts the pool and waits (a while at most) until a worker is ready. */
async function warmPool(): Promise<void> {
  setNumThreads(2);
  attention("forward");
  // as long as a loaded machine needs to start a thread (the suite's 10-minute patience), not a fixed few seconds
  for (let i = 0; i < 24_000 && wasmRuntimeInfo()!.workersStarted > 0 && wasmRuntimeInfo()!.workersReady < 1; i++) await sleep(25);
}

/** Child: worker scratch out of bounds makes every task a worker takes trap; the call must throw, not hang. */
async function failingWorkerChild(): Promise<void> {
  wasmTuning.minParallelAttentionFlops = 0;
  wasmTuning.Bc = 8;
  setNumThreads(1);
  const want = { forward: attention("forward"), backward: attention("backward") };
  await warmPool();
  const rt = getRuntime()!;
  const allocScratch = rt.allocScratch.bind(rt);
  // thread t's scratch is at scratch + t * stride: 2 GiB on, a worker's is far past the memory
  const outOfBounds = (run: () => void): void => {
    rt.allocScratch = (floats: number): [number, number] => [allocScratch(floats)[0], 2 ** 31];
    try {
      run();
    } finally {
      rt.allocScratch = allocScratch;
    }
  };
  for (const pass of ["backward", "forward"] as const) {
    let error: unknown = null;
    // on a busy machine the calling thread may run every task before a worker wakes: try again
    for (let i = 0; i < 50 && error === null; i++) {
      try {
        attention(pass, outOfBounds);
      } catch (e) {
        error = e;
      }
      if (error === null) await sleep(20);
    }
    assert.ok(error instanceof Error, `${pass}: no worker took a task in 50 calls`);
    assert.match(error.message, new RegExp(`a wasm kernel task \\(attention ${pass}\\) failed in worker 0: RuntimeError: memory access out of bounds`), `${pass}: ${error.message}`);
    // the pool still works, with the same bits as 1 thread
    assert.ok(attention(pass).equals(want[pass]), `${pass}: after the failure, results differ from 1 thread`);
  }
  console.log("pool child ok");
}

/** Child: started with --input-type=module in NODE_OPTIONS; workers must take part. */
async function esmHostChild(): Promise<void> {
  wasmTuning.minParallelAttentionFlops = 0;
  setNumThreads(1);
  const want = attention("backward");
  await warmPool();
  const info = wasmRuntimeInfo()!;
  assert.equal(info.workersStarted, 1);
  assert.equal(info.workersReady, 1, "the worker did not start");
  // on a busy machine the calling thread may run every task before a worker wakes: try again
  for (let i = 0; i < 3000 && wasmRuntimeInfo()!.workerTasks === 0; i++) {
    assert.ok(attention("backward").equals(want), "2 threads differ from 1");
    await sleep(20);
  }
  assert.ok(wasmRuntimeInfo()!.workerTasks > 0, "no worker took part in 3000 calls");
  console.log("pool child ok");
}

function runChild(kind: string, nodeOptions?: string): void {
  const env: NodeJS.ProcessEnv = { ...process.env, ATTEND_POOL_CHILD: kind };
  delete env.NODE_TEST_CONTEXT;
  if (nodeOptions !== undefined) env.NODE_OPTIONS = [env.NODE_OPTIONS, nodeOptions].filter(Boolean).join(" ");
  // started from --eval, as a host with --input-type=module must be (Node refuses it with a file)
  const r = spawnSync(process.execPath, ["--import", "tsx", "--eval", `import(${JSON.stringify(import.meta.url)})`], { encoding: "utf8", env, timeout: CHILD_TIMEOUT_MS });
  assert.notEqual(r.signal, "SIGTERM", `child hung (killed after ${CHILD_TIMEOUT_MS / 1000} s):\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.status, 0, `child failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /pool child ok/);
  assert.doesNotMatch(r.stderr, /worker thread/, "the library warned about its workers");
}

const threaded = wasmAvailable() && wasmRuntimeInfo()!.threaded;

if (CHILD === "failing-worker") await failingWorkerChild();
else if (CHILD === "esm-host") await esmHostChild();
else {
  test("a task that fails on a worker fails the call on every thread with a clear error; the pool stays usable", { skip: !threaded && "no threaded wasm here" }, () => {
    runChild("failing-worker");
  });

  test("a host with --input-type=module in NODE_OPTIONS still gets working workers", { skip: !threaded && "no threaded wasm here" }, () => {
    runChild("esm-host", "--input-type=module");
  });
}
