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
 * Each row runs in one child process that times the call with the option and the call without it
 * in turns (a warm-up of each, then A, B, A, B, ...), so a shared machine's drift falls on both
 * sides of the ratio. A call over 10 s is timed once per side (its warm-up counts as the timing).
 */
import { Tensor, createBlockMask, noGrad, randn, scaledDotProductAttention, setBackend, setNumThreads, zeros } from "../src/index.js";

const B = 1, H = 8, E = 64;
export const WINDOW = 256;
export const DOCUMENTS = 16;
const SOFTCAP = 50;

export type FlexVariant =
  | "causal" | "window" | "blockmask" // fwd+bwd
  | "plain" | "documents" // fwd
  | "softcap" | "alibi" | "sinks"; // fwd+bwd, with isCausal

/** What prepare() needs of a case. */
interface CaseSpec {
  variant: FlexVariant;
  pass: "fwd" | "fwd+bwd";
}

/** A call of the variant at size N, ready to time; setupMs is the time its inputs took (block mask). */
function prepare(spec: CaseSpec, N: number): { run: () => void; setupMs: number } {
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

export interface FlexPairSpec {
  kind: "flexpair";
  /** the call with the option, and the call it is compared with */
  a: FlexVariant;
  b: FlexVariant;
  pass: "fwd" | "fwd+bwd";
  threads: number;
  N: number;
  budgetMs: number;
  maxReps: number;
}

export interface FlexPairResult {
  N: number;
  aMs: number;
  bMs: number;
  reps: number;
  /** createBlockMask's time when a side is the blockmask variant (not in the medians) */
  setupMs?: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The child side: two variants at one size, timed in turns. */
export function runFlexPair(spec: FlexPairSpec): FlexPairResult {
  setBackend("wasm");
  setNumThreads(spec.threads);
  const pa = prepare({ ...spec, variant: spec.a }, spec.N), pb = prepare({ ...spec, variant: spec.b }, spec.N);
  const time = (run: () => void): number => { const t0 = performance.now(); run(); return performance.now() - t0; };
  const wa = time(pa.run), wb = time(pb.run); // warm-up: V8 tiers up, workers start
  const ta: number[] = [], tb: number[] = [];
  if (wa > 10_000 || wb > 10_000) { ta.push(wa); tb.push(wb); } // long calls: the warm-up is the timing
  const start = performance.now();
  while (ta.length < spec.maxReps && (ta.length < 3 || performance.now() - start < spec.budgetMs)) {
    ta.push(time(pa.run));
    tb.push(time(pb.run));
    if (wa > 10_000 || wb > 10_000) break;
  }
  const setupMs = pa.setupMs + pb.setupMs;
  return { N: spec.N, aMs: median(ta), bMs: median(tb), reps: ta.length, ...(setupMs > 0 ? { setupMs } : {}) };
}

// ---------------------------------------------------------------------------------------------
// The parent side: the rows

export type ChildRunner = (spec: object, timeoutMs: number) => Promise<FlexPairResult | { error: string }>;

export interface FlexOptionsForRun {
  threads: number;
  /** the window and documents rows' N (16384) */
  longN: number;
  /** the softcap / ALiBi / sinks rows' N (4096) */
  optN: number;
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
 * without the option (timed in turns in one process), the ratio (time without / time with for the
 * "faster" rows, time with / time without for the overhead rows), the ideal and the target.
 */
export async function flexRows(runChild: ChildRunner, o: FlexOptionsForRun, log: (s: string) => void): Promise<string[]> {
  const lines = [
    `| case (B = ${B}, H = ${H}, E = ${E}, wasm x${o.threads}) | N | pass | with option ms | without ms | ratio | ideal | target | note |`,
    "|---|---:|---|---:|---:|---:|---:|---|---|",
  ];
  const row = async (label: string, a: FlexVariant, b: FlexVariant, pass: "fwd" | "fwd+bwd", N: number, mode: "speedup" | "overhead", ideal: number, target: string): Promise<void> => {
    log(`bench: flex ${a} vs ${b} ${pass} N=${N}`);
    const spec: FlexPairSpec = { kind: "flexpair", a, b, pass, N, threads: o.threads, budgetMs: o.budgetMs, maxReps: 5 };
    const r = await runChild(spec, 20 * 60_000);
    if ("error" in r) { lines.push(`| ${label} | ${N} | ${pass} | — | — | — | ${fmt(ideal, 1)} | ${target} | ${r.error.replace(/\|/g, "\\|")} |`); return; }
    const ratio = mode === "speedup" ? r.bMs / r.aMs : r.aMs / r.bMs;
    const shown = mode === "speedup" ? `**${fmt(ratio, ratio < 10 ? 2 : 1)}× faster**` : `**${fmt(ratio, 2)}× the time**`;
    const note = [`${r.reps} rep${r.reps === 1 ? "" : "s"} each, in turns`];
    if (r.setupMs !== undefined) note.push(`createBlockMask ${fmt(r.setupMs, 0)} ms, not timed`);
    lines.push(`| ${label} | ${N} | ${pass} | ${fmt(r.aMs, 1)} | ${fmt(r.bMs, 1)} | ${shown} | ${fmt(ideal, mode === "speedup" ? 1 : 2)} | ${target} | ${note.join("; ")} |`);
  };
  await row(`isCausal + slidingWindow: ${WINDOW} vs isCausal`, "window", "causal", "fwd+bwd", o.longN, "speedup", pairs("causal", o.longN) / pairs("window", o.longN), "≥ 15×");
  await row(`createBlockMask window predicate vs slidingWindow: ${WINDOW}`, "blockmask", "window", "fwd+bwd", o.longN, "overhead", 1, "≤ 1.3×");
  await row(`${DOCUMENTS} packed documents of N/${DOCUMENTS} vs none`, "documents", "plain", "fwd", o.longN, "speedup", pairs("full", o.longN) / pairs("documents", o.longN), "≥ 10×");
  for (const [variant, label] of [["softcap", `softcap: ${SOFTCAP}`], ["alibi", `alibiSlopes: "default"`], ["sinks", "sinks (zeros [H], with grad)"]] as const) {
    await row(`isCausal + ${label} vs isCausal`, variant, "causal", "fwd+bwd", o.optN, "overhead", 1, "≤ 1.25×");
  }
  return lines;
}
