/**
 * Kernel benchmarks: the wasm matmul ceiling and the fused attention, ref / wasm 1 thread / wasm all threads.
 *
 *   node --import tsx bench/kernels.ts                   full table (N = 128 ... 16384)
 *   node --import tsx bench/kernels.ts --sizes 1024,4096 --threads 2 --passes fwd
 *   node --import tsx bench/kernels.ts --rss 16384       one fwd+bwd case in a fresh process: peak RSS
 *   node --import tsx bench/kernels.ts --huge 65536      one forward at N = 65536 (minutes)
 *   node --import tsx bench/kernels.ts --flex 4096       the flexible options on wasm (2 threads unless
 *                                                        --threads): causal vs causal + window 256, no
 *                                                        documents vs 16 packed, built-in window vs the
 *                                                        same window as a createBlockMask predicate,
 *                                                        softcap / ALiBi / sinks on vs off; fwd and fwd+bwd
 *                                                        (--flex 4096,16384 --flex-cases window,docs)
 *   ... --variant relaxed | simd                         force a wasm variant ("relaxed": fused multiply-add;
 *                                                        on Node 20 the command reruns itself with
 *                                                        --experimental-wasm-relaxed-simd)
 *
 * Times are medians over repetitions (at least one; as many as fit --budget-ms per case, at most
 * --max-reps) after an untimed warm-up call (several when a call is short); a case whose first call
 * takes over 15 s is timed by that call alone. Flop counts: forward 4·B·H·N²·E,
 * forward+backward 12·B·H·N²·E, causal counted the same as non-causal. Peak RSS is the process's
 * maximum resident set so far (for a per-case figure use --rss, which runs the case in a child process).
 *
 * The measuring functions are exported for bench/main.ts.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createBlockMask } from "../src/index.js";
import type { AttentionBlockMask, AttentionParams, Backend, MatmulParams } from "../src/kernels/backend.js";
import {
  refBackend, relaxedSimdSupported, setNumThreads, setWasmVariant, wasmBackend, wasmVariant,
} from "../src/kernels/index.js";
import { hardwareThreads } from "../src/kernels/wasm/runtime.js";

export type KernelBackendName = "ref" | "wasm";
export type AttentionPass = "fwd" | "fwd+bwd";

export interface AttentionCase {
  N: number;
  causal: boolean;
  pass: AttentionPass;
  B?: number;
  H?: number;
  E?: number;
  /** flexible options (AttentionParams), all off by default */
  flex?: FlexBenchOptions;
}

/** The flexible options of a benchmark case, as the kernels take them. */
export interface FlexBenchOptions {
  /** a causal sliding window of this many keys ([w - 1, 0]) */
  window?: number;
  /** N / docs packed documents of equal length (ids per query and key position) */
  docs?: number;
  /** a block mask from a createBlockMask predicate, made once per case (not timed) */
  blockMask?: AttentionBlockMask;
  softcap?: number;
  /** ALiBi with the paper's slopes 2^-(8(h+1)/H) */
  alibi?: boolean;
  /** sink logits (0.5 per head) */
  sinks?: boolean;
}

/** AttentionParams fields for the flexible options of a case. */
function flexFields(c: AttentionCase, H: number): Partial<AttentionParams> {
  const f = c.flex ?? {}, N = c.N, B = c.B ?? 1;
  const out: Partial<AttentionParams> = {};
  if (f.window !== undefined) out.window = { left: f.window - 1, right: 0 };
  if (f.docs !== undefined) {
    const len = Math.ceil(N / f.docs);
    const ids = Int32Array.from({ length: B * N }, (_, i) => Math.floor((i % N) / len));
    out.documents = { query: ids, key: ids };
  }
  if (f.blockMask !== undefined) out.blockMask = f.blockMask;
  if (f.softcap !== undefined) out.softcap = f.softcap;
  if (f.alibi) out.alibiSlopes = Float64Array.from({ length: H }, (_, h) => 2 ** (-8 * (h + 1) / H));
  if (f.sinks) out.sinks = new Float64Array(H).fill(0.5);
  return out;
}

/** A block mask of a causal window of w keys over N x N (the same rule as window: w), from a predicate. */
export function windowBlockMask(N: number, w: number): AttentionBlockMask {
  return createBlockMask((b, h, q, k) => k <= q && q - k < w, { batch: 1, heads: 1, L: N, S: N }).blocks;
}

export interface Measurement {
  /** e.g. "wasm x2" */
  impl: string;
  /** median milliseconds per call (forward, or forward then backward) */
  ms: number;
  gflops: number;
  reps: number;
  times: number[];
  /** process peak resident set so far, MiB */
  peakRssMiB: number;
}

export interface MeasureOptions {
  /** time to spend per case once warm (default 3000 ms) */
  budgetMs?: number;
  maxReps?: number;
  /** a first (cold) call longer than this is the only measurement (default 15000 ms) */
  coldLimitMs?: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

function backendOf(name: KernelBackendName): Backend {
  return name === "ref" ? refBackend : wasmBackend;
}

/**
 * Times fn: an untimed warm-up call (V8 moves wasm functions to its optimising tier after their first
 * calls, and the first multi-threaded call starts the workers), a few more when a call is short, then
 * timed calls until the budget is spent (at least one). A first call longer than `coldLimitMs` is
 * taken as the measurement itself.
 */
function timeIt(fn: () => void, opts: MeasureOptions): number[] {
  const budget = opts.budgetMs ?? 3000;
  const maxReps = opts.maxReps ?? 15;
  let t0 = performance.now();
  fn();
  const first = performance.now() - t0;
  if (first > (opts.coldLimitMs ?? 15000)) return [first];
  for (let w = 0; w < 2 && first < budget / 8; w++) fn();
  const times: number[] = [];
  let spent = 0;
  while (times.length < maxReps && (times.length < 1 || spent < budget)) {
    t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    times.push(dt);
    spent += dt;
    if (spent + dt > budget && times.length >= 1) break;
  }
  return times;
}

function fillRandom(a: Float32Array, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

export function attentionFlops(c: AttentionCase): number {
  const B = c.B ?? 1, H = c.H ?? 8, E = c.E ?? 64;
  return (c.pass === "fwd" ? 4 : 12) * B * H * c.N * c.N * E;
}

/** Fused attention (our kernels) on one case. */
export function measureAttention(
  backend: KernelBackendName, threads: number, c: AttentionCase, opts: MeasureOptions = {},
): Measurement {
  setNumThreads(threads);
  const times = timeIt(attentionCall(backend, c), opts);
  return measurement(backend, threads, c, times);
}

function measurement(backend: KernelBackendName, threads: number, c: AttentionCase, times: number[]): Measurement {
  const ms = median(times);
  return {
    impl: backend === "ref" ? "ref" : `wasm x${threads}`,
    ms, gflops: attentionFlops(c) / (ms * 1e6), reps: times.length, times, peakRssMiB: peakRssMiB(),
  };
}

/**
 * Two attention cases timed in turns (a, b, a, b, ... after a warm-up call of each), so that a loaded
 * machine's drift falls on both alike: for ratios such as window on / off. Stops after `maxReps`
 * pairs or once the budget is spent (at least one pair; a first call over `coldLimitMs` is the only one).
 */
export function measureAttentionPair(
  backend: KernelBackendName, threads: number, a: AttentionCase, b: AttentionCase, opts: MeasureOptions = {},
): [Measurement, Measurement] {
  setNumThreads(threads);
  const fa = attentionCall(backend, a), fb = attentionCall(backend, b);
  const ta: number[] = [], tb: number[] = [];
  const time = (fn: () => void): number => { const t0 = performance.now(); fn(); return performance.now() - t0; };
  const first = time(fa) + time(fb); // warm-up (V8 tiers up, workers start)
  const cold = first > 2 * (opts.coldLimitMs ?? 15000);
  let spent = 0;
  while (ta.length < (cold ? 1 : opts.maxReps ?? 15) && (ta.length < 1 || spent < (opts.budgetMs ?? 3000))) {
    const x = time(fa), y = time(fb);
    ta.push(x);
    tb.push(y);
    spent += x + y;
  }
  return [measurement(backend, threads, a, ta), measurement(backend, threads, b, tb)];
}

/** One call (forward, or forward then backward) of a case on its own inputs. */
function attentionCall(backend: KernelBackendName, c: AttentionCase): () => void {
  const B = c.B ?? 1, H = c.H ?? 8, E = c.E ?? 64, N = c.N;
  const be = backendOf(backend);
  const p: AttentionParams = {
    B, H, Hkv: H, L: N, S: N, E, Ev: E, scale: 1 / Math.sqrt(E),
    causal: c.causal ? "top-left" : "none", mask: null, dropoutP: 0, dropoutSeed: 0, ...flexFields(c, H),
  };
  const size = B * H * N * E;
  const q = fillRandom(new Float32Array(size), 1), k = fillRandom(new Float32Array(size), 2), v = fillRandom(new Float32Array(size), 3);
  const out = new Float32Array(size), lse = new Float64Array(B * H * N); // as the op layer allocates it
  let dout: Float32Array | null = null, dq: Float32Array | null = null, dk: Float32Array | null = null, dv: Float32Array | null = null;
  if (c.pass === "fwd+bwd") {
    dout = fillRandom(new Float32Array(size), 4);
    dq = new Float32Array(size); dk = new Float32Array(size); dv = new Float32Array(size);
  }
  return (): void => {
    be.attentionForward(p, q, k, v, out, lse);
    if (dout !== null) be.attentionBackward(p, q, k, v, out, dout, lse, dq!, dk!, dv!);
  };
}

/** out[n x n] = a[n x n] . b[n x n] on the wasm kernels (default n = 1024). */
export function measureMatmul(threads: number, n = 1024, opts: MeasureOptions = {}, backend: KernelBackendName = "wasm"): Measurement {
  setNumThreads(threads);
  const a = fillRandom(new Float32Array(n * n), 5), b = fillRandom(new Float32Array(n * n), 6), out = new Float32Array(n * n);
  const p: MatmulParams = { batch: 1, m: n, n, k: n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, accumulate: false };
  const be = backendOf(backend);
  const times = timeIt(() => be.matmul(out, a, b, p), opts);
  const ms = median(times);
  return {
    impl: backend === "ref" ? "ref" : `wasm x${threads}`,
    ms, gflops: (2 * n * n * n) / (ms * 1e6), reps: times.length, times, peakRssMiB: peakRssMiB(),
  };
}

/** Runs one attention case in a fresh Node process; returns its measurement (peak RSS of that process alone). */
export function measureAttentionIsolated(
  backend: KernelBackendName, threads: number, c: AttentionCase, opts: MeasureOptions = {},
): Measurement {
  const self = fileURLToPath(import.meta.url);
  const child = JSON.stringify({ backend, threads, c, opts, variant: wasmVariant() });
  const r = spawnSync(process.execPath, [...process.execArgv, self, "--child", child], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  const line = r.stdout.trim().split("\n").pop()!;
  return JSON.parse(line) as Measurement;
}

// ----------------------------------------------------------------------------------------------
// command line
// ----------------------------------------------------------------------------------------------

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function fmt(m: Measurement | null): string {
  if (m === null) return "-".padStart(22);
  return `${m.ms.toFixed(m.ms < 10 ? 2 : 1).padStart(9)} ms ${m.gflops.toFixed(1).padStart(6)} GF/s`;
}

/**
 * The flexible options' benchmark (--flex): pairs of cases on wasm, each pair's median ms and their
 * ratio, for fwd+bwd and fwd, at each N. Returns the rows printed.
 */
export function flexBenchmark(
  sizes: number[], threads: number, opts: MeasureOptions, only: string[] | null = null, log: (s: string) => void = console.log,
): { name: string; N: number; pass: AttentionPass; a: Measurement; b: Measurement; ratio: number }[] {
  const rows: { name: string; N: number; pass: AttentionPass; a: Measurement; b: Measurement; ratio: number }[] = [];
  log(`flexible options, wasm x${threads}, B=1 H=8 E=64 float32 (median ms of calls taken in turns; ratio = first / second)`);
  log(`${"pair".padEnd(44)}${"pass".padEnd(9)}${"N".padStart(6)}${"first".padStart(12)}${"second".padStart(12)}${"ratio".padStart(9)}`);
  for (const N of sizes) {
    const pairs: [string, string, AttentionCase, AttentionCase][] = [];
    const base = (causal: boolean, flex?: FlexBenchOptions): AttentionCase => ({ N, causal, pass: "fwd", flex });
    pairs.push(["window", "causal / causal + window 256", base(true), base(true, { window: 256 })]);
    pairs.push(["docs", "no documents / 16 packed documents", base(false), base(false, { docs: 16 })]);
    if (only === null || only.includes("block")) {
      const bm = windowBlockMask(N, 256); // maskMod runs N² times here, once
      pairs.push(["block", "block mask of window 256 / built-in window", base(false, { blockMask: bm }), base(true, { window: 256 })]);
    }
    pairs.push(["softcap", "softcap 30 / off", base(false, { softcap: 30 }), base(false)]);
    pairs.push(["alibi", "ALiBi / off", base(false, { alibi: true }), base(false)]);
    pairs.push(["sinks", "sinks / off", base(false, { sinks: true }), base(false)]);
    pairs.push(["all3", "softcap + ALiBi + sinks / off", base(false, { softcap: 30, alibi: true, sinks: true }), base(false)]);
    for (const pass of ["fwd+bwd", "fwd"] as AttentionPass[]) {
      for (const [key, name, x, y] of pairs) {
        if (only !== null && !only.includes(key)) continue;
        const [a, b] = measureAttentionPair("wasm", threads, { ...x, pass }, { ...y, pass }, opts);
        const ratio = a.ms / b.ms;
        rows.push({ name, N, pass, a, b, ratio });
        const ms = (m: Measurement): string => `${m.ms.toFixed(1)}`.padStart(12);
        log(`${name.padEnd(44)}${pass.padEnd(9)}${String(N).padStart(6)}${ms(a)}${ms(b)}${ratio.toFixed(2).padStart(9)}`);
      }
    }
  }
  return rows;
}

function main(): void {
  const child = arg("--child");
  if (child !== undefined) {
    const { backend, threads, c, opts, variant } = JSON.parse(child);
    setWasmVariant(variant);
    console.log(JSON.stringify(measureAttention(backend, threads, c, opts)));
    return;
  }
  const variant = arg("--variant");
  if (variant === "relaxed" && !relaxedSimdSupported()) {
    // Node 20 has relaxed SIMD behind a flag: rerun this command with it
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", ...process.execArgv, self, ...process.argv.slice(2)], { stdio: "inherit" });
    process.exit(r.status ?? 1);
  }
  if (variant === "simd" || variant === "relaxed") setWasmVariant(variant);
  console.log(`wasm variant: ${wasmVariant()}, Node ${process.version}`);
  const all = Number(arg("--threads") ?? hardwareThreads());
  const budgetMs = Number(arg("--budget-ms") ?? 3000);
  const opts: MeasureOptions = { budgetMs, maxReps: Number(arg("--max-reps") ?? 15) };

  const rss = arg("--rss");
  if (rss !== undefined) {
    const c: AttentionCase = { N: Number(rss), causal: false, pass: "fwd+bwd" };
    const m = measureAttentionIsolated("wasm", all, c, { budgetMs: 0, maxReps: 1, coldLimitMs: 0 });
    console.log(`fused attention fwd+bwd B=1 H=8 E=64 N=${c.N}, wasm x${all}, fresh process: ${fmt(m)}, peak RSS ${m.peakRssMiB.toFixed(0)} MiB`);
    return;
  }
  const huge = arg("--huge");
  if (huge !== undefined) {
    for (const causal of (arg("--causal") ?? "false,true").split(",").map((s) => s === "true")) {
      const c: AttentionCase = { N: Number(huge), causal, pass: "fwd" };
      const m = measureAttentionIsolated("wasm", all, c, { budgetMs: 0, maxReps: 1, coldLimitMs: 0 });
      console.log(`fused attention fwd B=1 H=8 E=64 N=${c.N} ${causal ? "causal" : "non-causal"}, wasm x${all}: ${fmt(m)}, peak RSS ${m.peakRssMiB.toFixed(0)} MiB`);
    }
    return;
  }

  const flex = arg("--flex");
  if (flex !== undefined) {
    const only = arg("--flex-cases");
    flexBenchmark(flex.split(",").map(Number), Number(arg("--threads") ?? 2), opts, only === undefined ? null : only.split(","));
    return;
  }

  const threadSet = [...new Set([1, all])];
  if (!process.argv.includes("--no-matmul")) {
    console.log("matmul 1024^3 float32 (wasm)");
    for (const t of threadSet) console.log(`  wasm x${t}: ${fmt(measureMatmul(t, 1024, opts))}`);
  }
  const sizes = (arg("--sizes") ?? "128,256,512,1024,2048,4096,8192,16384").split(",").map(Number);
  const passes = (arg("--passes") ?? "fwd,fwd+bwd").split(",") as AttentionPass[];
  const causals = (arg("--causal") ?? "false,true").split(",").map((s) => s === "true");
  const refMax = Number(arg("--ref-max-n") ?? 512);
  const singleMax = Number(arg("--single-max-n") ?? 8192);
  console.log(`\nfused attention B=1 H=8 E=64 float32 (median ms, GFLOP/s; fwd 4BHN²E, fwd+bwd 12BHN²E, causal counted as non-causal)`);
  const impls = ["ref", ...threadSet.map((t) => `wasm x${t}`)];
  console.log(`${"case".padEnd(26)}${impls.map((s) => s.padStart(24)).join("")}   peak RSS`);
  for (const pass of passes) {
    for (const causal of causals) {
      for (const N of sizes) {
        const c: AttentionCase = { N, causal, pass };
        const cells: (Measurement | null)[] = [];
        cells.push(N <= refMax ? measureAttention("ref", 1, c, opts) : null);
        for (const t of threadSet) cells.push(t === 1 && all > 1 && N > singleMax ? null : measureAttention("wasm", t, c, opts));
        const label = `${pass} ${causal ? "causal" : "full"} N=${N}`;
        console.log(`${label.padEnd(26)}${cells.map((m) => fmt(m).padStart(24)).join("")}   ${peakRssMiB().toFixed(0)} MiB`);
      }
    }
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
