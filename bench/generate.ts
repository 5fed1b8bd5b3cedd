/**
 * Cached vs uncached generation: the KV cache's speed-up.
 *
 *   node --import tsx bench/generate.ts [--preset small] [--tokens 256] [--prompt 8] [--runs 3] [--cached-only]
 *
 * Generates `tokens` new tokens greedily after a `prompt`-token prompt, once with the KV cache
 * (each step projects one token and attends over the cache: O(T) per step) and once re-running the
 * whole sequence every step (O(T²) per step with attention, O(T) for the projections), and prints
 * the median wall time of `runs` runs of each, ms per new token (prefill included), tokens/s, the
 * speed-up and the cache's size. --cached-only skips the uncached runs (most of the bench's time) and
 * prints the cached rows alone, with the fastest run beside the median (on a shared, loaded machine
 * the fastest says more about the code than the median does).
 * Both runs must produce the same tokens (greedy decoding; the logits agree to float32 rounding).
 *
 *   node --import tsx bench/generate.ts --stream [--preset small-gqa] [--tokens 4096] [--window 256] [--sinks 4]
 *
 * Streaming generation (issue 12's row): a windowed KV cache ({ window, sinkTokens }) over `tokens`
 * tokens, greedy, one token per step; prints the cache's bytes at sinkTokens + window tokens and at
 * the end (they must be equal: memory flat), and ms/token over the run and over its first and last
 * quarters (flat speed too). streamingGeneration() is exported for bench/main.ts.
 *
 *   node --import tsx bench/generate.ts --ragged [--preset small | --gpt2] [--tokens 32] [--runs 5]
 *
 * Prompts of different lengths generated together over a PagedKVCache (8 prompts of lengths 5, 13,
 * .., 60), greedy, no stop token: time to first token (the prefill and the first picks) and total,
 * with the prompts prefilled each alone (prefillEachAlone: one forward per prompt, generate()'s way
 * before prefillBatched) and batched (prefillBatched: generate()'s way), runs alternating, median
 * and fastest of each, wall and process CPU time (all threads; steadier than wall time on a shared
 * machine); both must give generate()'s tokens. The decode loop after the prefill is
 * generate()'s over the paged cache (select the rows, one token each). --gpt2: a random GPT-2 small
 * (124M parameters, vocab 50257; bench/pretrained.ts's writeRandomGpt2) instead of the preset.
 */
import { fileURLToPath } from "node:url";
import { rmSync } from "node:fs";
import { GPT, type GPTPresetName, GPT_PRESETS, generate } from "../src/models/index.js";
import { type CausalLM, prefillBatched, prefillEachAlone } from "../src/models/generate.js";
import { KVCache } from "../src/attention/kvcache.js";
import { PagedKVCache } from "../src/attention/kvpaged.js";
import { noGrad } from "../src/autograd/tape.js";
import { withFrozenWeights } from "../src/kernels/dispatch.js";
import { fromPretrained } from "../src/index.js";
import { writeRandomGpt2 } from "./pretrained.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The cached vs uncached table (the default run). */
function cachedVsUncached(): void {
  const preset = arg("preset", "small") as GPTPresetName;
  if (!(preset in GPT_PRESETS)) throw new Error(`bench/generate.ts: unknown preset ${preset} (presets: ${Object.keys(GPT_PRESETS).join(", ")})`);
  const tokens = Number(arg("tokens", "256"));
  const promptLength = Number(arg("prompt", "8"));
  const runs = Number(arg("runs", "3"));
  const cachedOnly = process.argv.includes("--cached-only");

  const model = new GPT(preset, { seed: 0 });
  const c = model.config;
  const prompt = [Array.from({ length: promptLength }, (_, i) => (i * 7 + 3) % c.vocabSize)];

  function time(useCache: boolean): { ms: number; out: number[] } {
    const t0 = performance.now();
    const out = generate(model, prompt, { maxNewTokens: tokens, greedy: true, useCache })[0];
    return { ms: performance.now() - t0, out };
  }

  console.log(`preset ${preset}: ${model.numParameters()} parameters, dModel ${c.dModel}, ${c.numLayers} layers, ${c.numHeads} heads (${c.numKvHeads} kv), vocab ${c.vocabSize}`);
  console.log(`prompt ${promptLength} tokens, ${tokens} new tokens, greedy, median of ${runs} runs, node ${process.version}`);
  time(true); // warm up the JIT
  const cached: number[] = [];
  const uncached: number[] = [];
  let reference: number[] | null = null;
  for (let r = 0; r < runs; r++) {
    for (const useCache of cachedOnly ? [true] : [true, false]) {
      const { ms, out } = time(useCache);
      (useCache ? cached : uncached).push(ms);
      if (reference === null) reference = out;
      else if (out.join() !== reference.join()) throw new Error("bench/generate.ts: cached and uncached generation produced different tokens");
      console.log(`  run ${r + 1} ${useCache ? "cached  " : "uncached"} ${ms.toFixed(0)} ms`);
    }
  }
  const mc = median(cached);
  const cache = model.newCache();
  model.forward(prompt, { cache });
  const perToken = cache.bytesPerToken();
  console.log("");
  if (cachedOnly) {
    const fastest = Math.min(...cached);
    console.log("| mode | median ms | ms/token | tokens/s | fastest ms/token |");
    console.log("|---|---:|---:|---:|---:|");
    console.log(`| cached | ${mc.toFixed(0)} | ${(mc / tokens).toFixed(3)} | ${((tokens * 1000) / mc).toFixed(1)} | ${(fastest / tokens).toFixed(3)} |`);
  } else {
    const mu = median(uncached);
    console.log("| mode | median ms | ms/token | tokens/s |");
    console.log("|---|---:|---:|---:|");
    console.log(`| cached | ${mc.toFixed(0)} | ${(mc / tokens).toFixed(2)} | ${((tokens * 1000) / mc).toFixed(1)} |`);
    console.log(`| uncached | ${mu.toFixed(0)} | ${(mu / tokens).toFixed(2)} | ${((tokens * 1000) / mu).toFixed(1)} |`);
    console.log("");
    console.log(`speed-up (uncached / cached): ${(mu / mc).toFixed(1)}x`);
  }
  console.log(`KV cache: ${perToken} bytes per token (${c.numLayers} layers × 2 × ${c.numKvHeads} kv heads × ${c.dModel / c.numHeads} dims × 4 bytes), ${((perToken * (promptLength + tokens)) / 1024).toFixed(0)} KiB at ${promptLength + tokens} tokens`);
}

export interface StreamingResult {
  preset: string;
  tokens: number;
  window: number;
  sinkTokens: number;
  /** KVCache.bytes() (in use) and allocatedBytes() after each checkpoint's number of tokens */
  bytes: { tokens: number; used: number; allocated: number }[];
  /** bytes per token of an unbounded cache (what a plain KVCache would hold at `tokens`: × tokens) */
  bytesPerToken: number;
  msPerToken: number;
  /** ms/token over the first and the last quarter of the run */
  msPerTokenFirstQuarter: number;
  msPerTokenLastQuarter: number;
}

/**
 * Streaming generation with a windowed cache: a `prompt`-token prompt, then greedy one-token steps
 * until `tokens` tokens, reading the cache's bytes at each checkpoint (default sinkTokens + window
 * and the end). The preset must compute its positions (rope) to run past its maxSeqLen.
 */
export function streamingGeneration(opts: { preset?: GPTPresetName; tokens?: number; window?: number; sinkTokens?: number; prompt?: number; checkpoints?: number[] } = {}): StreamingResult {
  const preset = opts.preset ?? "small-gqa";
  const tokens = opts.tokens ?? 4096;
  const window = opts.window ?? 256;
  const sinkTokens = opts.sinkTokens ?? 4;
  const promptLength = opts.prompt ?? 4;
  const checkpoints = opts.checkpoints ?? [sinkTokens + window, tokens];
  const model = new GPT(preset, { seed: 0 });
  model.eval();
  const V = model.config.vocabSize;
  const cache = new KVCache({ window, sinkTokens });
  const bytes: StreamingResult["bytes"] = [];
  const stamps: number[] = []; // performance.now() after each token count t (index t)
  const row = Array.from({ length: promptLength }, (_, i) => (i * 7 + 3) % V);
  const t0 = performance.now();
  noGrad(() => {
    let logits = model.forward([row], { cache }); // [1, T, V]
    for (let t = row.length; ; t++) {
      stamps[t] = performance.now();
      if (checkpoints.includes(t)) bytes.push({ tokens: t, used: cache.bytes(), allocated: cache.allocatedBytes() });
      if (t === tokens) break;
      const last = logits.values.subarray(logits.values.length - V);
      let best = 0;
      for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
      row.push(best);
      logits = model.forward([[best]], { cache }); // [1, 1] -> [1, 1, V]
    }
  });
  const q = Math.floor(tokens / 4);
  return {
    preset, tokens, window, sinkTokens, bytes, bytesPerToken: cache.bytesPerToken(),
    msPerToken: (stamps[tokens] - t0) / (tokens - promptLength),
    msPerTokenFirstQuarter: (stamps[q] - stamps[promptLength]) / (q - promptLength),
    msPerTokenLastQuarter: (stamps[tokens] - stamps[tokens - q]) / q,
  };
}

function streamingMain(): void {
  const r = streamingGeneration({
    preset: arg("preset", "small-gqa") as GPTPresetName, tokens: Number(arg("tokens", "4096")),
    window: Number(arg("window", "256")), sinkTokens: Number(arg("sinks", "4")),
  });
  console.log(`streaming generation: preset ${r.preset}, window ${r.window}, sinkTokens ${r.sinkTokens}, ${r.tokens} tokens, greedy, node ${process.version}`);
  console.log("");
  console.log("| tokens | KV bytes in use | KV bytes allocated | unbounded cache would hold |");
  console.log("|---:|---:|---:|---:|");
  for (const b of r.bytes) console.log(`| ${b.tokens} | ${b.used} | ${b.allocated} | ${b.tokens * r.bytesPerToken} |`);
  console.log("");
  console.log(`ms/token: ${r.msPerToken.toFixed(2)} overall, ${r.msPerTokenFirstQuarter.toFixed(2)} first quarter, ${r.msPerTokenLastQuarter.toFixed(2)} last quarter`);
  const flat = r.bytes.every((b) => b.used === r.bytes[0].used && b.allocated === r.bytes[0].allocated);
  console.log(`KV memory flat after ${r.sinkTokens + r.window} tokens: ${flat ? "yes" : "NO"}`);
  if (!flat) process.exitCode = 1;
}

type Prefill = typeof prefillEachAlone;

/**
 * Greedy generation of `tokens` new tokens for every prompt over a PagedKVCache, as generate() runs
 * it, with the given prefill: ms to the first tokens (every row's first pick) and in all, and the rows.
 */
interface PagedTimes { ttft: number; total: number; ttftCpu: number; totalCpu: number }

function pagedGreedy(model: CausalLM, prompts: number[][], tokens: number, prefill: Prefill): PagedTimes & { rows: number[][] } {
  const rows = prompts.map((p) => [...p]);
  const ids = rows.map((_, n) => n);
  const V = model.config.vocabSize;
  const argmax = (z: ArrayLike<number>): number => {
    let best = 0;
    for (let i = 1; i < z.length; i++) if (z[i] > z[best]) best = i;
    return best;
  };
  const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
  let ttft = 0;
  let ttftCpu = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  model.eval();
  withFrozenWeights(model.parameters(), () => noGrad(() => {
    const cache = new PagedKVCache();
    let logits = prefill(model, cache, rows, ids); // each row's last position [V]
    for (let s = 0; s < tokens; s++) {
      rows.forEach((r, n) => r.push(argmax(logits[n])));
      if (s === 0) [ttft, ttftCpu] = [performance.now() - t0, cpuMs(process.cpuUsage(c0))];
      if (s === tokens - 1) break;
      cache.select(ids);
      const out = model.forward(rows.map((r) => [r[r.length - 1]]), { cache }); // [N, 1] -> [N, 1, V]
      logits = ids.map((n) => out.values.subarray(n * V, (n + 1) * V));
    }
  }));
  return { ttft, total: performance.now() - t0, ttftCpu, totalCpu: cpuMs(process.cpuUsage(c0)), rows };
}

/** The --ragged table: prefill each alone vs batched, time to first token and total. */
function raggedMain(): void {
  const tokens = Number(arg("tokens", "32"));
  const runs = Number(arg("runs", "5"));
  const lengths = [5, 13, 21, 29, 37, 45, 53, 60];
  let model: CausalLM;
  let name: string;
  if (process.argv.includes("--gpt2")) {
    const dir = writeRandomGpt2(1);
    try {
      model = fromPretrained(dir).model;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    name = "random GPT-2 small (124M, vocab 50257)";
  } else {
    const preset = arg("preset", "small") as GPTPresetName;
    if (!(preset in GPT_PRESETS)) throw new Error(`bench/generate.ts: unknown preset ${preset} (presets: ${Object.keys(GPT_PRESETS).join(", ")})`);
    model = new GPT(preset, { seed: 0 });
    name = `GPT("${preset}")`;
  }
  const V = model.config.vocabSize;
  const prompts = lengths.map((len, n) => Array.from({ length: len }, (_, i) => (i * 7919 + n * 31 + 3) % V));
  console.log(`${name}: ${prompts.length} prompts of lengths ${lengths.join(", ")} over a PagedKVCache, ${tokens} new tokens each, greedy; median (fastest) of ${runs} runs, alternating; node ${process.version}`);
  const want = generate(model, prompts, { maxNewTokens: tokens, paged: {} });
  const ways: [string, Prefill][] = [["each alone (before)", prefillEachAlone], ["batched (prefillBatched)", prefillBatched]];
  const times = ways.map(() => ({ ttft: [] as number[], total: [] as number[], ttftCpu: [] as number[], totalCpu: [] as number[] }));
  for (const [, f] of ways) pagedGreedy(model, prompts, 2, f); // warm up
  for (let r = 0; r < runs; r++) {
    ways.forEach(([way, f], i) => {
      const { rows, ...t } = pagedGreedy(model, prompts, tokens, f);
      if (JSON.stringify(rows) !== JSON.stringify(want)) throw new Error(`bench/generate.ts: prefill ${way} gave other tokens than generate()`);
      for (const k of ["ttft", "total", "ttftCpu", "totalCpu"] as const) times[i][k].push(t[k]);
    });
  }
  console.log("");
  console.log("| prefill | time to first token ms | total ms | CPU ms to first token | CPU ms in all |");
  console.log("|---|---:|---:|---:|---:|");
  const cell = (xs: number[]): string => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)})`;
  ways.forEach(([way], i) => console.log(`| ${way} | ${cell(times[i].ttft)} | ${cell(times[i].total)} | ${cell(times[i].ttftCpu)} | ${cell(times[i].totalCpu)} |`));
  const ratio = (k: keyof PagedTimes): string => (median(times[0][k]) / median(times[1][k])).toFixed(2);
  console.log("");
  console.log(`speed-up of the medians (alone / batched): time to first token ${ratio("ttft")}x, total ${ratio("total")}x; CPU time ${ratio("ttftCpu")}x, ${ratio("totalCpu")}x`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes("--ragged")) raggedMain();
  else if (process.argv.includes("--stream")) streamingMain();
  else cachedVsUncached();
}
