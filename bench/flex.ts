/**
 * The flexible-attention rows of `npm run bench` (issue 12): each option through the public
 * scaledDotProductAttention against the same call without it, B = 1, H = 8, E = 64, wasm backend,
 * all threads, in fresh child processes (bench/main.ts --child), medians and ratios.
 *
 *   sliding window   isCausal + slidingWindow: 256 vs isCausal, fwd+bwd, N = 16384   (target ≥ 15× faster)
 *   documents        16 packed documents of N/16 vs no documents, fwd, N = 16384     (target ≥ 10× faster)
 *   block mask       the window as a createBlockMask predicate vs slidingWindow       (target ≤ 1.3× the time)
 *   softcap, ALiBi, sinks  on vs off, isCausal, fwd+bwd, N = 4096                    (target ≤ 1.25× the time)
 *
 * Options the SIMD kernels do not have yet run on the reference kernels (scalar JavaScript, one
 * thread), which can be a hundred times slower. So that such a fallback cannot stall the whole
 * bench, each option row first times one call at a small size (the probe), predicts the call at the
 * target size (linear in N for a window, quadratic otherwise), and runs at the largest power-of-two
 * N ≤ target whose predicted call fits in --flex-max-call-s (default 30); its baseline then runs
 * at that same N, and the row says so. Repetitions are capped (a call over 10 s is timed once).
 */
import { Tensor, createBlockMask, noGrad, randn, scaledDotProductAttention, setBackend, setNumThreads, zeros } from "../src/index.js";
import { timeCalls } from "./peers/common.js";

const B = 1, H = 8, E = 64;
export const WINDOW = 256;
export const DOCUMENTS = 16;
const SOFTCAP = 50;

export type FlexVariant =
  | "causal" | "window" | "blockmask" // fwd+bwd
  | "plain" | "documents" // fwd
  | "softcap" | "alibi" | "sinks"; // fwd+bwd, with isCausal

export interface FlexSpec {
  kind: "flex";
  variant: FlexVariant;
  pass: "fwd" | "fwd+bwd";
  threads: number;
  /** the size to run at; with maxCallMs, the largest size to try (see adaptN) */
  N: number;
  /** when set: probe at a small N and run at the largest N ≤ this whose predicted call fits */
  maxCallMs?: number;
  budgetMs: number;
  maxReps: number;
}

export interface FlexResult {
  N: number;
  medianMs: number;
  reps: number;
  /** createBlockMask's time for the blockmask variant (not in medianMs) */
  setupMs?: number;
  /** the probe's call (ms at probeN) when the size was chosen by prediction */
  probe?: { N: number; ms: number };
}

/** How a variant's cost grows with N (banded masks linearly, everything else quadratically). */
function growth(v: FlexVariant): number {
  return v === "window" || v === "blockmask" ? 1 : 2;
}

/** A call of the variant at size N, ready to time; setupMs is the time its inputs took (block mask). */
function prepare(spec: FlexSpec, N: number): { run: () => void; setupMs: number } {
  const shape = [B, H, N, E];
  const q = randn(shape, { seed: 1 }), k = randn(shape, { seed: 2 }), v = randn(shape, { seed: 3 });
  const g = randn(shape, { seed: 4 });
  let setupMs = 0;
  let sinks: Tensor | null = null;
  let opts: Parameters<typeof scaledDotProductAttention>[3];
  switch (spec.variant) {
    case "causal": opts = { isCausal: true }; break;
    case "window": opts = { isCausal: true, slidingWindow: WINDOW }; break;
    case "blockmask": {
      const t0 = performance.now();
      // the same band as isCausal + slidingWindow: WINDOW: WINDOW keys up to and including the query
      const blockMask = createBlockMask((_b, _h, ql, ks) => ks <= ql && ql - ks < WINDOW, { batch: 1, heads: 1, L: N, S: N });
      setupMs = performance.now() - t0;
      opts = { blockMask };
      break;
    }
    case "plain": opts = {}; break;
    case "documents": {
      const ids = Int32Array.from({ length: N }, (_, i) => Math.floor((i * DOCUMENTS) / N)); // DOCUMENTS runs of N / DOCUMENTS
      opts = { documents: { query: new Tensor(ids, [B, N], "int32"), key: new Tensor(ids, [B, N], "int32") } };
      break;
    }
    case "softcap": opts = { isCausal: true, softcap: SOFTCAP }; break;
    case "alibi": opts = { isCausal: true, alibiSlopes: "default" }; break;
    case "sinks": sinks = zeros([H]); opts = { isCausal: true, sinks }; break;
  }
  if (spec.pass === "fwd") return { run: () => { noGrad(() => scaledDotProductAttention(q, k, v, opts)); }, setupMs };
  const leaves = sinks ? [q, k, v, sinks] : [q, k, v];
  return {
    run: () => {
      for (const x of leaves) { x.requiresGrad = true; x.grad = null; }
      scaledDotProductAttention(q, k, v, opts).backward(g);
    },
    setupMs,
  };
}

/**
 * The size to run at: spec.N, or with maxCallMs the largest N = spec.N / 2^j (not below the probe's
 * size) whose call, predicted from one probe call, fits in maxCallMs.
 */
function adaptN(spec: FlexSpec): { N: number; probe?: { N: number; ms: number } } {
  if (spec.maxCallMs === undefined) return { N: spec.N };
  const probeN = Math.min(spec.N, 1024);
  const p = prepare(spec, probeN);
  let ms = Infinity;
  for (let i = 0; i < 2; i++) { // the second call when the first (which includes warm-up) was short
    const t0 = performance.now();
    p.run();
    ms = Math.min(ms, performance.now() - t0);
    if (ms > 2000) break;
  }
  let N = spec.N;
  while (N > probeN && ms * (N / probeN) ** growth(spec.variant) > spec.maxCallMs) N /= 2;
  return { N, probe: { N: probeN, ms } };
}

/** The child side: one variant, timed. */
export function runFlexCase(spec: FlexSpec): FlexResult {
  setBackend("wasm");
  setNumThreads(spec.threads);
  const { N, probe } = adaptN(spec);
  // a probe over 10 s at the chosen size is that size's one timed call already (timeCalls would time just one)
  if (probe && probe.N === N && probe.ms > 10_000) return { N, medianMs: probe.ms, reps: 1, probe };
  const { run, setupMs } = prepare(spec, N);
  const { ms, reps } = timeCalls(run, spec.budgetMs, spec.maxReps);
  return { N, medianMs: ms, reps, ...(spec.variant === "blockmask" ? { setupMs } : {}), ...(probe ? { probe } : {}) };
}

// ---------------------------------------------------------------------------------------------
// The parent side: the rows

export type ChildRunner = (spec: object, timeoutMs: number) => Promise<FlexResult | { error: string }>;

export interface FlexOptionsForRun {
  threads: number;
  /** the window and documents rows' N (16384) */
  longN: number;
  /** the softcap / ALiBi / sinks rows' N (4096) */
  optN: number;
  maxCallMs: number;
  budgetMs: number;
}

const fmt = (x: number, d: number): string => (Number.isFinite(x) ? x.toFixed(d) : "—");

/** Visible (query, key) pairs: causal N(N+1)/2; causal with a window of w keys; d equal documents. */
function pairs(kind: "causal" | "window" | "full" | "documents", N: number): number {
  if (kind === "causal") return (N * (N + 1)) / 2;
  if (kind === "window") return WINDOW * N - (WINDOW * (WINDOW - 1)) / 2;
  if (kind === "full") return N * N;
  return N * N / DOCUMENTS;
}

/**
 * Runs the flex rows and returns the markdown lines of their table: case, N, median ms with and
 * without the option, the ratio (time without / time with for the "faster" rows, time with / time
 * without for the overhead rows), the ideal and the target.
 */
export async function flexRows(runChild: ChildRunner, o: FlexOptionsForRun, log: (s: string) => void): Promise<string[]> {
  const base = { kind: "flex", threads: o.threads, budgetMs: o.budgetMs, maxReps: 5 };
  const cache = new Map<string, FlexResult | { error: string }>();
  const run = async (variant: FlexVariant, pass: "fwd" | "fwd+bwd", N: number, adapt: boolean): Promise<FlexResult | { error: string }> => {
    const key = `${variant}|${pass}|${N}|${adapt}`;
    const hit = cache.get(key);
    if (hit) return hit;
    log(`bench: flex ${variant} ${pass} N=${N}${adapt ? " (size chosen by a probe)" : ""}`);
    const spec: FlexSpec = { ...base, kind: "flex", variant, pass, N, ...(adapt ? { maxCallMs: o.maxCallMs } : {}) };
    // a call may take maxCallMs (and the warm-up another), so the child's limit is generous
    const r = await runChild(spec, Math.max(10 * 60_000, 6 * o.maxCallMs));
    cache.set(key, r);
    return r;
  };
  const lines = [
    `| case (B = ${B}, H = ${H}, E = ${E}, wasm x${o.threads}) | N | pass | with option ms | without ms | ratio | ideal | target | note |`,
    "|---|---:|---|---:|---:|---:|---:|---|---|",
  ];
  const note = (w: FlexResult, target: number): string => {
    const parts: string[] = [`${w.reps} rep${w.reps === 1 ? "" : "s"}`];
    if (w.N < target) parts.push(`run at N = ${w.N}, not ${target}: the probe (${fmt(w.probe?.ms ?? NaN, 0)} ms at N = ${w.probe?.N}) predicts over ${o.maxCallMs / 1000} s a call at ${target} (--flex-max-call-s)`);
    if (w.setupMs !== undefined) parts.push(`createBlockMask ${fmt(w.setupMs, 0)} ms, not timed`);
    return parts.join("; ");
  };
  const row = (label: string, pass: string, w: FlexResult | { error: string }, wo: FlexResult | { error: string } | null, mode: "speedup" | "overhead", ideal: number, target: string, targetN: number): void => {
    if ("error" in w) { lines.push(`| ${label} | ${targetN} | ${pass} | — | — | — | ${fmt(ideal, 1)} | ${target} | ${w.error.replace(/\|/g, "\\|")} |`); return; }
    if (wo === null || "error" in wo) { lines.push(`| ${label} | ${w.N} | ${pass} | ${fmt(w.medianMs, 1)} | — | — | ${fmt(ideal, 1)} | ${target} | baseline: ${wo ? wo.error.replace(/\|/g, "\\|") : "not run"} |`); return; }
    const ratio = mode === "speedup" ? wo.medianMs / w.medianMs : w.medianMs / wo.medianMs;
    const label2 = mode === "speedup" ? `**${fmt(ratio, ratio < 10 ? 2 : 1)}× faster**` : `**${fmt(ratio, 2)}× the time**`;
    lines.push(`| ${label} | ${w.N} | ${pass} | ${fmt(w.medianMs, 1)} | ${fmt(wo.medianMs, 1)} | ${label2} | ${fmt(ideal, mode === "speedup" ? 1 : 2)} | ${target} | ${note(w, targetN)} |`);
  };

  // sliding window vs causal
  const win = await run("window", "fwd+bwd", o.longN, true);
  const winN = "error" in win ? o.longN : win.N;
  const causal = "error" in win ? null : await run("causal", "fwd+bwd", winN, false);
  row(`isCausal + slidingWindow: ${WINDOW} vs isCausal`, "fwd+bwd", win, causal, "speedup", pairs("causal", winN) / pairs("window", winN), "≥ 15× (at 16384)", o.longN);

  // the same window as a block mask vs the built-in window, at the window row's N
  const bm = "error" in win ? win : await run("blockmask", "fwd+bwd", winN, false);
  row(`createBlockMask window predicate vs slidingWindow: ${WINDOW}`, "fwd+bwd", bm, "error" in win ? null : win, "overhead", 1, "≤ 1.3×", winN);

  // packed documents vs the same call without them
  const docs = await run("documents", "fwd", o.longN, true);
  const docsN = "error" in docs ? o.longN : docs.N;
  const plain = "error" in docs ? null : await run("plain", "fwd", docsN, false);
  row(`${DOCUMENTS} packed documents of N/${DOCUMENTS} vs none`, "fwd", docs, plain, "speedup", pairs("full", docsN) / pairs("documents", docsN), "≥ 10×", o.longN);

  // per-score options: on vs off
  for (const [variant, label] of [["softcap", `softcap: ${SOFTCAP}`], ["alibi", `alibiSlopes: "default"`], ["sinks", "sinks (zeros [H], with grad)"]] as const) {
    const on = await run(variant, "fwd+bwd", o.optN, true);
    const off = "error" in on ? null : await run("causal", "fwd+bwd", on.N, false);
    row(`isCausal + ${label} vs isCausal`, "fwd+bwd", on, off, "overhead", 1, "≤ 1.25×", o.optN);
  }
  return lines;
}
