// Shared pieces of the peer benchmarks: problem shape, flop counts, seeded
// inputs, the float64 reference attention (forward and backward) that every
// peer is checked against, timing, and memory readings.
//
// Layout convention: every Float32Array handed between modules here is
// [B, H, N, E] row-major ("BHNE"). A peer that wants another layout converts
// outside the timed region.

import { readFileSync } from "node:fs";

export const B = 1;
export const H = 8;
export const E = 64;
/** Sequence length at which each peer's output is compared with the reference. */
export const CHECK_N = 64;

export type Pass = "fwd" | "fwd+bwd";

/** One measurement: a peer, one of its forms, a size, a mask, a pass. */
export interface PeerCase {
  form: string;
  N: number;
  causal: boolean;
  pass: Pass;
}

export interface PeerResult {
  medianMs: number;
  gflops: number;
  ok: boolean;
  note?: string;
  /** Timed repetitions behind the median (warm-up runs excluded). */
  reps?: number;
}

export interface CheckResult {
  ok: boolean;
  /** Largest |peer - reference| over the compared tensors, scaled by max(1, max|reference|). */
  maxErr: number;
  note?: string;
}

/** What every peer module exports (as named exports and as `peer`). */
export interface PeerModule {
  /** Short name used in the `peer` column. */
  name: string;
  /** The ways of writing attention this peer is timed in. */
  forms: readonly string[];
  /** Which passes the peer can run at all (others are reported as not available). */
  passes: readonly Pass[];
  /** Why a pass is not available, for the note. */
  unavailable?: Partial<Record<Pass, string>>;
  /** Loads the library; returns a one-line description (threads, backend). */
  setup(): Promise<string>;
  /** Rough peak bytes the case needs, so runners can skip before a crash. */
  estimateBytes(c: PeerCase): number;
  /** A hard cap on addressable memory (wasm32 heaps), if the peer has one. */
  heapLimitBytes?: number;
  /** Compares the peer's output (and gradients for fwd+bwd) at N = CHECK_N. */
  check(c: Omit<PeerCase, "N">): Promise<CheckResult>;
  /** Times the case without checking (see benchChecked). */
  time(c: PeerCase, t: TimingOptions): Promise<PeerResult>;
}

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** Flops counted for a pass: 4·B·H·N²·E forward, 12·B·H·N²·E forward+backward (causal counted the same). */
export function flopCount(N: number, pass: Pass): number {
  return (pass === "fwd" ? 4 : 12) * B * H * N * N * E;
}

export function gflopsOf(N: number, pass: Pass, ms: number): number {
  return flopCount(N, pass) / (ms * 1e-3) / 1e9;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "object" && e !== null && "message" in e) return String((e as { message: unknown }).message);
  return String(e);
}

/** First line of an error message, trimmed for a table cell. */
export function shortError(e: unknown, max = 160): string {
  const line = errorMessage(e).split("\n")[0]!.trim();
  return line.length > max ? line.slice(0, max - 1) + "…" : line;
}

// ---------------------------------------------------------------------------
// Seeded inputs

/** mulberry32: small, fast, deterministic. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n standard-normal float32 values (Box–Muller). */
export function randn(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - r();
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export interface Inputs {
  N: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** Upstream gradient dL/dO used for the backward pass (loss = sum(O ⊙ g)). */
  g: Float32Array;
}

/** q, k, v, g in [B, H, N, E], standard normal, fixed seeds. */
export function makeInputs(N: number): Inputs {
  const n = B * H * N * E;
  return { N, q: randn(n, 1 + N), k: randn(n, 2 + N), v: randn(n, 3 + N), g: randn(n, 4 + N) };
}

/** [B, H, N, E] -> [B, N, H, E] (what onnxruntime's MultiHeadAttention and jax-js want). */
export function bhneToBnhe(x: Float32Array, N: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let n = 0; n < N; n++) {
        const src = ((b * H + h) * N + n) * E;
        const dst = ((b * N + n) * H + h) * E;
        out.set(x.subarray(src, src + E), dst);
      }
  return out;
}

/** [B, N, H, E] -> [B, H, N, E]. */
export function bnheToBhne(x: ArrayLike<number>, N: number): Float32Array {
  const out = new Float32Array(B * H * N * E);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++) {
        const src = ((b * N + n) * H + h) * E;
        const dst = ((b * H + h) * N + n) * E;
        for (let e = 0; e < E; e++) out[dst + e] = x[src + e]!;
      }
  return out;
}

// ---------------------------------------------------------------------------
// Float64 reference: O = softmax(Q Kᵀ / √E [+ causal mask]) V, per (b, h).

export interface Reference {
  o: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/**
 * Plain float64 attention on float32 inputs. With `withGrad`, also the
 * gradients of loss = Σ O ⊙ g:
 *   dV = Pᵀ g,  dP = g Vᵀ,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),  dQ = s·dS K,  dK = s·dSᵀ Q.
 */
export function referenceAttention(inp: Inputs, causal: boolean, withGrad: boolean): Reference {
  const { N, q, k, v, g } = inp;
  const s = 1 / Math.sqrt(E);
  const total = B * H * N * E;
  const o = new Float64Array(total);
  const dq = new Float64Array(withGrad ? total : 0);
  const dk = new Float64Array(withGrad ? total : 0);
  const dv = new Float64Array(withGrad ? total : 0);
  const P = new Float64Array(N * N);
  const dS = new Float64Array(N * N);
  for (let bh = 0; bh < B * H; bh++) {
    const base = bh * N * E;
    for (let i = 0; i < N; i++) {
      let mx = -Infinity;
      for (let j = 0; j < N; j++) {
        let x: number;
        if (causal && j > i) x = -Infinity;
        else {
          x = 0;
          for (let e = 0; e < E; e++) x += q[base + i * E + e]! * k[base + j * E + e]!;
          x *= s;
        }
        P[i * N + j] = x;
        if (x > mx) mx = x;
      }
      let sum = 0;
      for (let j = 0; j < N; j++) {
        const p = Math.exp(P[i * N + j]! - mx);
        P[i * N + j] = p;
        sum += p;
      }
      for (let j = 0; j < N; j++) P[i * N + j]! /= sum;
      for (let e = 0; e < E; e++) {
        let acc = 0;
        for (let j = 0; j < N; j++) acc += P[i * N + j]! * v[base + j * E + e]!;
        o[base + i * E + e] = acc;
      }
    }
    if (!withGrad) continue;
    for (let i = 0; i < N; i++) {
      let rowDot = 0;
      for (let j = 0; j < N; j++) {
        let dp = 0;
        for (let e = 0; e < E; e++) dp += g[base + i * E + e]! * v[base + j * E + e]!;
        dS[i * N + j] = dp;
        rowDot += dp * P[i * N + j]!;
      }
      for (let j = 0; j < N; j++) dS[i * N + j] = P[i * N + j]! * (dS[i * N + j]! - rowDot);
    }
    for (let i = 0; i < N; i++)
      for (let e = 0; e < E; e++) {
        let aq = 0;
        let ak = 0;
        let av = 0;
        for (let j = 0; j < N; j++) {
          aq += dS[i * N + j]! * k[base + j * E + e]!;
          ak += dS[j * N + i]! * q[base + j * E + e]!;
          av += P[j * N + i]! * g[base + j * E + e]!;
        }
        dq[base + i * E + e] = s * aq;
        dk[base + i * E + e] = s * ak;
        dv[base + i * E + e] = av;
      }
  }
  return { o, dq, dk, dv };
}

/** max |a − b| / max(1, max |b|); NaN anywhere in a counts as infinite error. */
export function scaledMaxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let err = 0;
  let mag = 1;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= err)) err = Number.isNaN(d) ? Infinity : d;
    const m = Math.abs(b[i]!);
    if (m > mag) mag = m;
  }
  return err / mag;
}

export const FWD_TOL = 1e-4;
export const GRAD_TOL = 1e-3;

export interface PeerOutputs {
  o: ArrayLike<number>;
  dq?: ArrayLike<number>;
  dk?: ArrayLike<number>;
  dv?: ArrayLike<number>;
}

/** Compares a peer's BHNE outputs with the float64 reference. */
export function compareWithReference(inp: Inputs, causal: boolean, pass: Pass, got: PeerOutputs): CheckResult {
  const withGrad = pass === "fwd+bwd";
  const ref = referenceAttention(inp, causal, withGrad);
  const errs: Array<[string, number, number]> = [["O", scaledMaxErr(got.o, ref.o), FWD_TOL]];
  if (withGrad) {
    if (!got.dq || !got.dk || !got.dv) return { ok: false, maxErr: Infinity, note: "check failed: gradients missing" };
    errs.push(["dQ", scaledMaxErr(got.dq, ref.dq), GRAD_TOL]);
    errs.push(["dK", scaledMaxErr(got.dk, ref.dk), GRAD_TOL]);
    errs.push(["dV", scaledMaxErr(got.dv, ref.dv), GRAD_TOL]);
  }
  const bad = errs.filter(([, e, tol]) => !(e <= tol));
  const maxErr = Math.max(...errs.map(([, e]) => e));
  if (bad.length === 0) return { ok: true, maxErr };
  const what = bad.map(([name, e, tol]) => `${name} err ${e.toExponential(2)} > ${tol}`).join(", ");
  return { ok: false, maxErr, note: `check failed at N=${inp.N}: ${what}` };
}

// ---------------------------------------------------------------------------
// Timing

export interface TimingOptions {
  /** Wall time to spend on timed repetitions after warm-up (default 4 s). */
  budgetMs?: number;
  minReps?: number;
  maxReps?: number;
}

export interface Timing {
  medianMs: number;
  reps: number;
  samples: number[];
  firstMs: number;
}

/**
 * Warm up (one run, a second one if the first took under 2 s, since the first
 * includes compilation / allocation), then time repetitions until the budget is
 * spent: at least minReps (3) when a rep takes under 10 s, a single timed rep
 * beyond that; the median is reported.
 */
/**
 * Untimed warm-up for short calls, the same rule for attend and every peer: after the first call,
 * more calls until WARM_UP_MS have passed (at most WARM_UP_CALLS). A call of a few ms is timed
 * otherwise while V8 and the wasm engines are still tiering up (Liftoff -> TurboFan; a fresh worker
 * as well): at N = 128 attend's first 15 calls in a fresh process ran 1.5-2x slower than the calls
 * after them (bench/main.ts --only attention --sizes 128).
 */
export const WARM_UP_MS = 300;
export const WARM_UP_CALLS = 30;

export async function timeReps(run: () => unknown, opts: TimingOptions = {}): Promise<Timing> {
  const budgetMs = opts.budgetMs ?? 4000;
  const minReps = opts.minReps ?? 3;
  const maxReps = opts.maxReps ?? 15;
  let t = performance.now();
  await run();
  const firstMs = performance.now() - t;
  let warmMs = firstMs;
  if (firstMs < 2000) {
    const w0 = performance.now();
    for (let i = 0; i < WARM_UP_CALLS && (i === 0 || performance.now() - w0 < WARM_UP_MS); i++) {
      t = performance.now();
      await run();
      warmMs = performance.now() - t;
    }
  }
  const reps = warmMs > 10_000 ? 1 : Math.max(minReps, Math.min(maxReps, Math.floor(budgetMs / Math.max(warmMs, 1e-3))));
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    t = performance.now();
    await run();
    samples.push(performance.now() - t);
  }
  return { medianMs: median(samples), reps, samples, firstMs };
}

/**
 * Median wall time of a synchronous call after untimed warm-up calls (one, then more for short calls
 * up to WARM_UP_MS; skipped when the call is slow: its time then counts): at least 3 timed calls, then more until budgetMs is spent, at most
 * maxReps. attend's own rows (bench/main.ts, bench/training.ts) use it.
 */
export function timeCalls(run: () => void, budgetMs: number, maxReps: number): { ms: number; reps: number; samples: number[] } {
  let t0 = performance.now();
  run();
  const first = performance.now() - t0;
  if (first > 10_000 || budgetMs <= 0) return { ms: first, reps: 1, samples: [first] };
  if (first < 2000) { // short calls: warm up as timeReps does (WARM_UP_MS)
    const w0 = performance.now();
    for (let i = 0; i < WARM_UP_CALLS - 1 && performance.now() - w0 < WARM_UP_MS; i++) run();
  }
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxReps && (times.length < 3 || performance.now() - start < budgetMs)) {
    t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  return { ms: median(times), reps: times.length, samples: times };
}

/** Times a prepared case's run() and turns it into a result; release() runs whatever happens. */
export async function timePrepared(
  c: PeerCase, p: { run(): unknown; release(): unknown }, opts: TimingOptions = {},
): Promise<PeerResult> {
  try {
    const tm = await timeReps(() => p.run(), opts);
    return { medianMs: tm.medianMs, gflops: gflopsOf(c.N, c.pass, tm.medianMs), ok: true, reps: tm.reps };
  } finally {
    await p.release();
  }
}

/** Runs the N = CHECK_N check first; a failed check means no timing at all. */
export async function benchChecked(peer: PeerModule, c: PeerCase, t: TimingOptions = {}): Promise<PeerResult> {
  if (!peer.passes.includes(c.pass)) {
    return { medianMs: NaN, gflops: NaN, ok: false, note: peer.unavailable?.[c.pass] ?? `${c.pass} not available` };
  }
  let chk: CheckResult;
  try {
    chk = await peer.check({ form: c.form, causal: c.causal, pass: c.pass });
  } catch (e) {
    return { medianMs: NaN, gflops: NaN, ok: false, note: `check threw: ${shortError(e)}` };
  }
  if (!chk.ok) return { medianMs: NaN, gflops: NaN, ok: false, note: chk.note ?? "check failed" };
  try {
    return await peer.time(c, t);
  } catch (e) {
    return { medianMs: NaN, gflops: NaN, ok: false, note: classifyError(e) };
  }
}

/** Turns allocation failures into a recognisable note. */
export function classifyError(e: unknown): string {
  const msg = shortError(e);
  if (/out of memory|oom|allocat|memory access out of bounds|Array buffer allocation|Invalid typed array length|RangeError|bad_alloc|grow/i.test(msg)) {
    return `out of memory: ${msg}`;
  }
  return `error: ${msg}`;
}

// ---------------------------------------------------------------------------
// Memory

/** Peak resident set size of this process in MiB (VmHWM; falls back to maxRSS). */
export function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

export interface CpuSnapshot {
  total: number;
  busy: number;
  self: number;
}

/** Machine-wide and this-process CPU ticks (Linux /proc; null elsewhere). */
export function cpuSnapshot(): CpuSnapshot | null {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = f[3]! + f[4]!;
    const st = readFileSync("/proc/self/stat", "utf8");
    const fields = st.slice(st.lastIndexOf(")") + 2).split(" ");
    const self = Number(fields[11]) + Number(fields[12]); // utime + stime, all threads
    return { total, busy: total - idle, self };
  } catch {
    return null;
  }
}

export interface CpuShare {
  /** Percent of the machine's CPU time used by other processes. */
  othersPct: number;
  /** Percent of the machine's CPU time that was busy (anyone). */
  busyPct: number;
}

/** CPU shares between two snapshots (NaN when unknown). */
export function cpuShare(a: CpuSnapshot | null, b: CpuSnapshot | null): CpuShare {
  if (!a || !b || b.total <= a.total) return { othersPct: NaN, busyPct: NaN };
  const total = b.total - a.total;
  const busy = b.busy - a.busy;
  return { othersPct: (100 * Math.max(0, busy - (b.self - a.self))) / total, busyPct: (100 * busy) / total };
}

/**
 * Contended: other processes took over 10 % of the machine while it was
 * saturated (≥ 90 % busy), so they took cores this run could have used. A
 * one-thread peer beside a one-core neighbour on two cores is not flagged.
 */
export function contentionNote(s: CpuShare | undefined): string {
  if (!s || !(s.othersPct > 10 && s.busyPct >= 90)) return "";
  return `busy machine: others used ${Math.round(s.othersPct)}% of CPU`;
}

/** Bytes for `count` float32 [N, N] score matrices per head, all heads. */
export function scoreBytes(N: number, count: number): number {
  return count * B * H * N * N * 4;
}

// ---------------------------------------------------------------------------
// Parent ↔ child protocol (see child.ts)

export const RESULT_MARK = "@@attend-peer-result ";

export interface ChildSpec {
  peer: string;
  case: PeerCase;
  timing?: TimingOptions;
}

export interface ChildResult extends PeerResult {
  peakRssMiB: number;
  info?: string;
  /** CPU use of the machine while the row ran. */
  cpu?: CpuShare;
}

/** JSON turns NaN into null; this undoes it. */
export function reviveResult(r: ChildResult): ChildResult {
  const num = (x: unknown) => (typeof x === "number" ? x : NaN);
  return { ...r, medianMs: num(r.medianMs), gflops: num(r.gflops), peakRssMiB: num(r.peakRssMiB) };
}
