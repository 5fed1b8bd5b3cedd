/**
 * One soak process (run by kernels-soak.test.ts, usually under `node --liftoff-only`): threaded fused
 * attention, forward and backward, on sizes that grow from call to call, so that the shared memory
 * grows while the pool's workers are still starting. Exits 0 when every call returned and the
 * threaded results of a few steps equal the 1-thread bits; prints the reason and exits 1 otherwise.
 *
 *   node --liftoff-only --import tsx test/kernels-soak-child.ts <threads> <seed>
 */
import type { AttentionParams } from "../src/kernels/backend.js";
import { setNumThreads, wasmBackend, wasmRuntimeInfo, wasmTuning } from "../src/kernels/index.js";
import { uniformArray } from "./kernel-inputs.js";

const threads = Number(process.argv[2] ?? 2);
const seed = Number(process.argv[3] ?? 1);
const STEPS = 32;

interface Step { p: AttentionParams; q: Float32Array; k: Float32Array; v: Float32Array; dout: Float32Array }

/** Step i: an attention problem that needs more staging memory than step i - 1. */
function step(i: number): Step {
  // many query rows against few keys: staging memory grows by a few pages per step at little cost
  const B = 1, H = 8, Hkv = 2, E = 64, Ev = 32;
  const L = 240 + 16 * i + (seed % 7), S = 8 + (i % 4) + (seed % 5);
  const p: AttentionParams = {
    B, H, Hkv, L, S, E, Ev, scale: 0.2, causal: i % 3 === 0 ? "none" : i % 3 === 1 ? "top-left" : "bottom-right",
    mask: null, dropoutP: 0, dropoutSeed: 0,
  };
  const s = seed * 1000 + i * 10;
  return {
    p, q: uniformArray(B * H * L * E, s + 1), k: uniformArray(B * Hkv * S * E, s + 2),
    v: uniformArray(B * Hkv * S * Ev, s + 3), dout: uniformArray(B * H * L * Ev, s + 4),
  };
}

function attention(st: Step): Float32Array[] {
  const { p, q, k, v, dout } = st;
  const out = new Float32Array(dout.length), lse = new Float32Array(p.B * p.H * p.L);
  wasmBackend.attentionForward(p, q, k, v, out, lse);
  const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
  wasmBackend.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
  return [out, lse, dq, dk, dv];
}

function sameBits(a: Float32Array[], b: Float32Array[]): boolean {
  return a.every((x, i) => Buffer.from(x.buffer).equals(Buffer.from(b[i].buffer)));
}

wasmTuning.minParallelAttentionFlops = 0;
setNumThreads(threads);
const kept: [number, Float32Array[]][] = [];
for (let i = 0; i < STEPS; i++) {
  const r = attention(step(i));
  if (i % 8 === 7) kept.push([i, r]);
}
setNumThreads(1);
for (const [i, r] of kept) {
  if (!sameBits(attention(step(i)), r)) {
    console.log(`soak child: step ${i}: ${threads} threads differ from 1 thread`);
    process.exit(1);
  }
}
const info = wasmRuntimeInfo()!;
console.log(`soak child ok: threads ${threads}, workers ready ${info.workersReady}, worker tasks ${info.workerTasks}, memory ${info.memoryBytes}`);
