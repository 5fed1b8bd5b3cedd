/**
 * Thread determinism under stress: the wasm attention backward (whose key-block tasks hand dQ tiles
 * to each other through counters) repeated many times with 2 threads must give the bits of 1 thread
 * every time, in V8's default tiering and with baseline (Liftoff) code only, where an earlier design
 * that slept in memory.atomic.wait32 lost dQ updates about once in a few thousand calls.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { AttentionParams, CausalKind } from "../src/kernels/backend.js";
import { setNumThreads, wasmAvailable, wasmBackend, wasmRuntimeInfo, wasmTuning } from "../src/kernels/index.js";
import { uniformArray } from "./kernel-inputs.js";

const CHILD = process.env.ATTEND_STRESS_CHILD === "1";

const rand = uniformArray;

interface Shape { B: number; H: number; Hkv: number; L: number; S: number; E: number; Ev: number; causal: CausalKind; Br: number; Bc: number; reps: number }

const shapes: Shape[] = [
  { B: 2, H: 2, Hkv: 2, L: 1, S: 33, E: 80, Ev: 24, causal: "none", Br: 8, Bc: 8, reps: 400 },
  { B: 1, H: 4, Hkv: 1, L: 150, S: 100, E: 24, Ev: 16, causal: "none", Br: 16, Bc: 16, reps: 40 },
  { B: 1, H: 6, Hkv: 2, L: 77, S: 200, E: 40, Ev: 24, causal: "bottom-right", Br: 8, Bc: 8, reps: 30 },
];

async function stress(): Promise<void> {
  wasmTuning.minParallelAttentionFlops = 0;
  for (const c of shapes) {
    wasmTuning.Br = c.Br;
    wasmTuning.Bc = c.Bc;
    const S = c.S, L = c.L;
    const mask = new Uint8Array(c.B * S);
    for (let i = 0; i < mask.length; i++) mask[i] = i % 7 === 3 ? 0 : 1;
    const p: AttentionParams = {
      B: c.B, H: c.H, Hkv: c.Hkv, L, S, E: c.E, Ev: c.Ev, scale: 0.3, causal: c.causal,
      mask: { kind: "bool", data: mask, strides: [S, 0, 0, 1] }, dropoutP: 0.2, dropoutSeed: 17,
    };
    const q = rand(c.B * c.H * L * c.E, 1), k = rand(c.B * c.Hkv * S * c.E, 2), v = rand(c.B * c.Hkv * S * c.Ev, 3);
    const dout = rand(c.B * c.H * L * c.Ev, 4);
    const out = new Float32Array(dout.length), lse = new Float32Array(c.B * c.H * L);
    setNumThreads(1);
    wasmBackend.attentionForward(p, q, k, v, out, lse);
    const backward = (): Buffer => {
      const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
      wasmBackend.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
      return Buffer.concat([dq, dk, dv].map((a) => Buffer.from(a.buffer)));
    };
    const want = backward();
    setNumThreads(2);
    backward();
    for (let i = 0; i < 24_000 && wasmRuntimeInfo()!.workersStarted > 0 && wasmRuntimeInfo()!.workersReady < 1; i++) { // a spawned worker: up to 10 minutes on a loaded machine
      await new Promise((r) => setTimeout(r, 25));
    }
    for (let r = 0; r < c.reps; r++) {
      assert.ok(backward().equals(want), `${JSON.stringify(c)}: repetition ${r} differs from 1 thread`);
    }
  }
}

test("backward with 2 threads is bitwise stable over many repetitions", { skip: !wasmAvailable() && "no wasm" }, async () => {
  await stress();
  const info = wasmRuntimeInfo()!;
  if (info.threaded) assert.ok(info.workerTasks > 0);
});

test("... and with V8's baseline (Liftoff) code only", { skip: (CHILD || !wasmAvailable()) && "child run / no wasm" }, () => {
  const env: NodeJS.ProcessEnv = { ...process.env, ATTEND_STRESS_CHILD: "1" };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ["--liftoff-only", "--import", "tsx", fileURLToPath(import.meta.url)], { encoding: "utf8", env });
  assert.equal(r.status, 0, `child failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /# pass 1/);
});
