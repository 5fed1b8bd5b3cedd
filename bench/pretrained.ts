/**
 * GPT-2 small through the pretrained loader (issue 13): `npm run bench` rows, and standalone
 *
 *   node --import tsx bench/pretrained.ts [--threads 2] [--runs 1] [--no-torch]
 *
 * A Hugging Face GPT-2 folder with GPT-2 small's shapes (124M parameters: vocab 50257, 1024
 * positions, 12 layers, 12 heads, width 768) and random weights is written under os.tmpdir():
 * config.json and a BF16 model.safetensors (no tokenizer.json: the loader does not need one, and
 * token ids are given directly), then deleted at the end. Measured, each in a fresh child process:
 *
 *   load     fromPretrained(dir) alone: peak RSS (process.resourceUsage().maxRSS) against the
 *            float32 weights' size (target ≤ 1.3×), and the process's RSS before loading
 *   speed    prefill of 512 tokens (model.forward under noGrad, all 512 positions' logits, as
 *            transformers computes them), median of reps, each rep on its own as a user's one prefill
 *            runs: outside withFrozenWeights, so every weight matrix is copied into the wasm memory and
 *            packed on every rep (one frozen scope around all reps would keep them packed from rep to
 *            rep, a saving a single prefill never sees; generate()'s scope gains nothing on its prefill
 *            either, which packs each matrix on first use); then, in the same process and timed the same
 *            way, the prefill as generate() runs it: forward(prompt, { logitsToKeep: 1 }), the head on the
 *            last position only (transformers' generate() passes logits_to_keep=1 for the same reason: the
 *            head over all 512 positions is a [512, 768]×[768, 50257] matmul, 39.5 of the ~127 GFLOP of matmuls);
 *            then greedy KV-cache decoding of 128 tokens
 *            after that prompt through generateText (token ids in, stop token off; the one-token steps
 *            timed, the weights frozen as generate() keeps them), tokens/s, median of runs
 *   twin     the same on bench/gpt2_twin.py (a PyTorch GPT-2 written after transformers'
 *            modeling_gpt2, eager attention, past_key_values by concatenation) reading the same
 *            file, same thread count, both prefills (all logits; the lm_head on the last position only,
 *            as transformers' generate() with logits_to_keep=1); /usr/bin/python3 with torch 1.13
 *            (skipped without).
 *
 * Both sides take the same prompt (ids (7919·i + 13) mod 50257) and the same weights, so the
 * last position's prefill logits are compared (max |attend − torch|, for each prefill) and so are
 * the greedy tokens.
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromPretrained, generateText, noGrad, setBackend, setNumThreads } from "../src/index.js";
import { median } from "./peers/common.js";
import { PYTHON } from "./trainingStep.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const MiB = 1024 ** 2;

/** GPT-2 small (the `gpt2` checkpoint's config.json, less its task-specific keys). */
export const GPT2_SMALL = {
  architectures: ["GPT2LMHeadModel"], model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768,
  n_layer: 12, n_head: 12, n_inner: null, activation_function: "gelu_new", layer_norm_epsilon: 1e-5, torch_dtype: "bfloat16",
} as const;
export const PROMPT = 512;
export const DECODE = 128;

/** The checkpoint's tensors in transformers' order and names (Conv1D weights [in, out]). */
function gpt2Tensors(): Array<{ name: string; shape: number[]; init: "normal" | "one" | "zero" }> {
  const { vocab_size: V, n_positions: P, n_embd: C, n_layer: layers } = GPT2_SMALL;
  const out: Array<{ name: string; shape: number[]; init: "normal" | "one" | "zero" }> = [
    { name: "wte.weight", shape: [V, C], init: "normal" },
    { name: "wpe.weight", shape: [P, C], init: "normal" },
  ];
  for (let i = 0; i < layers; i++) {
    const h = `h.${i}.`;
    out.push(
      { name: h + "ln_1.weight", shape: [C], init: "one" }, { name: h + "ln_1.bias", shape: [C], init: "zero" },
      { name: h + "attn.c_attn.weight", shape: [C, 3 * C], init: "normal" }, { name: h + "attn.c_attn.bias", shape: [3 * C], init: "normal" },
      { name: h + "attn.c_proj.weight", shape: [C, C], init: "normal" }, { name: h + "attn.c_proj.bias", shape: [C], init: "normal" },
      { name: h + "ln_2.weight", shape: [C], init: "one" }, { name: h + "ln_2.bias", shape: [C], init: "zero" },
      { name: h + "mlp.c_fc.weight", shape: [C, 4 * C], init: "normal" }, { name: h + "mlp.c_fc.bias", shape: [4 * C], init: "normal" },
      { name: h + "mlp.c_proj.weight", shape: [4 * C, C], init: "normal" }, { name: h + "mlp.c_proj.bias", shape: [C], init: "normal" },
    );
  }
  out.push({ name: "ln_f.weight", shape: [C], init: "one" }, { name: "ln_f.bias", shape: [C], init: "zero" });
  return out;
}

export function gpt2Params(): number {
  return gpt2Tensors().reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Writes config.json and a BF16 model.safetensors of GPT-2 small with random weights (uniform with
 * standard deviation 0.02, as GPT-2's init; LayerNorm weights 1, biases 0) into a new folder under
 * os.tmpdir(), streamed a chunk at a time. Returns the folder; the caller deletes it.
 */
export function writeRandomGpt2(seed = 1): string {
  const dir = mkdtempSync(join(os.tmpdir(), "attend-bench-gpt2-"));
  writeFileSync(join(dir, "config.json"), JSON.stringify(GPT2_SMALL, null, 2));
  const tensors = gpt2Tensors();
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of tensors) {
    const bytes = 2 * t.shape.reduce((a, b) => a * b, 1);
    header[t.name] = { dtype: "BF16", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8); // safetensors pads the header to 8 bytes
  const fd = openSync(join(dir, "model.safetensors"), "w");
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, Buffer.from(json, "ascii"));
    let state = seed >>> 0;
    const a = 0.02 * Math.sqrt(3); // uniform on [-a, a] has standard deviation 0.02
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const chunk = new Uint16Array(1 << 20);
    for (const t of tensors) {
      let left = t.shape.reduce((x, y) => x * y, 1);
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        for (let i = 0; i < n; i++) {
          if (t.init === "normal") {
            state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // LCG: plenty for random weights
            f32[0] = (state / 4294967296 * 2 - 1) * a;
          } else {
            f32[0] = t.init === "one" ? 1 : 0;
          }
          chunk[i] = u32[0] >>> 16; // float32 -> bfloat16 by truncation
        }
        writeSync(fd, new Uint8Array(chunk.buffer, 0, 2 * n));
        left -= n;
      }
    }
  } finally {
    closeSync(fd);
  }
  return dir;
}

export function promptIds(): number[] {
  return Array.from({ length: PROMPT }, (_, i) => (7919 * i + 13) % GPT2_SMALL.vocab_size);
}

// ---------------------------------------------------------------------------------------------
// Child sides

export interface LoadResult { maxRssMiB: number; rssBeforeMiB: number; loadMs: number; params: number }

/** fromPretrained(dir) and nothing else: the process's peak RSS. */
export function childLoad(dir: string): LoadResult {
  const rssBeforeMiB = process.memoryUsage().rss / MiB;
  const t0 = performance.now();
  const { model } = fromPretrained(dir);
  const loadMs = performance.now() - t0;
  let params = 0;
  for (const p of model.parameters()) params += p.size;
  return { maxRssMiB: process.resourceUsage().maxRSS / 1024, rssBeforeMiB, loadMs, params };
}

export interface SpeedResult {
  prefillMs: number;
  prefillReps: number;
  /** process CPU time (all threads) of a prefill, median: steadier than wall time on a shared machine */
  prefillCpuMs: number;
  decodeTokensPerSecond: number;
  decodeRuns: number[];
  /** process CPU time per decoded token, median over runs */
  decodeCpuMsPerToken: number;
  tokens: number[];
  /** file with the last prompt position's logits (float32) */
  logitsFile: string;
  /** the prefill as generate() runs it (forward with logitsToKeep: 1): median ms, reps, CPU ms, and its logits' file */
  prefillLastMs: number;
  prefillLastReps: number;
  prefillLastCpuMs: number;
  lastLogitsFile: string;
  loadMs: number;
  /** RSS just before the first generateText and just after the last, and the process's peak: what keeping the weights prepared costs */
  rssBeforeDecodeMiB: number;
  rssAfterDecodeMiB: number;
  maxRssMiB: number;
}

/** Prefill and cached greedy decoding with the loaded model; writes the last prefill logits beside the weights. */
export function childSpeed(dir: string, threads: number, runs: number): SpeedResult {
  setBackend("wasm");
  setNumThreads(threads);
  const t0 = performance.now();
  const { model, config } = fromPretrained(dir);
  const loadMs = performance.now() - t0;
  const V = GPT2_SMALL.vocab_size;
  const prompt = [promptIds()];
  const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
  /**
   * A warm-up, then runs + 1 timed prefills, each on its own outside a frozen scope (keep: logitsToKeep,
   * 0 = every position); wall and CPU ms, and the last position's logits written to DIR/file.
   */
  const prefills = (keep: number, file: string): { times: number[]; cpu: number[]; file: string } => {
    const times: number[] = [], cpu: number[] = [];
    let last: Float32Array | null = null;
    for (let r = 0; r < 1 + runs + 1; r++) {
      const t = performance.now(), c = process.cpuUsage();
      const logits = noGrad(() => model.forward(prompt, { logitsToKeep: keep })); // [1, PROMPT, V], or [1, keep, V]
      const ms = performance.now() - t;
      if (r > 0) { times.push(ms); cpu.push(cpuMs(process.cpuUsage(c))); }
      last ??= Float32Array.from(logits.values.subarray(logits.values.length - V));
    }
    writeFileSync(join(dir, file), new Uint8Array(last!.buffer));
    return { times, cpu, file: join(dir, file) };
  };
  const { times: prefillTimes, cpu: prefillCpu, file: logitsFile } = prefills(0, "attend_logits.f32");
  // the prefill as generate() runs it: the head on the last position only
  const { times: lastTimes, cpu: lastCpu, file: lastLogitsFile } = prefills(1, "attend_logits_last.f32");
  const decodeRuns: number[] = [], decodeCpu: number[] = [];
  let tokens: number[] = [];
  const rssBeforeDecodeMiB = process.memoryUsage().rss / MiB;
  for (let r = 0; r < runs; r++) {
    // as a user runs it: generateText (generate(): prefill, then one-token KV-cache steps, greedy, with the
    // weights frozen so the backend keeps them prepared between steps); timed from the first token (which
    // comes from the prefill's logits) to the last, so DECODE - 1 one-token steps
    let t = 0, c: NodeJS.CpuUsage = process.cpuUsage(), ms = 0, cpu = 0;
    const out: number[] = [];
    generateText({ model, tokenizer: null, config }, prompt[0], {
      maxNewTokens: DECODE, stopToken: null,
      onToken: (tok) => {
        out.push(tok);
        if (out.length === 1) { t = performance.now(); c = process.cpuUsage(); }
        if (out.length === DECODE) { ms = performance.now() - t; cpu = cpuMs(process.cpuUsage(c)); }
      },
    });
    decodeRuns.push(((DECODE - 1) * 1000) / ms);
    decodeCpu.push(cpu / (DECODE - 1));
    tokens = out;
  }
  return {
    prefillMs: median(prefillTimes), prefillReps: prefillTimes.length, prefillCpuMs: median(prefillCpu),
    prefillLastMs: median(lastTimes), prefillLastReps: lastTimes.length, prefillLastCpuMs: median(lastCpu), lastLogitsFile,
    decodeTokensPerSecond: median(decodeRuns), decodeRuns, decodeCpuMsPerToken: median(decodeCpu), tokens, logitsFile, loadMs,
    rssBeforeDecodeMiB, rssAfterDecodeMiB: process.memoryUsage().rss / MiB, maxRssMiB: process.resourceUsage().maxRSS / 1024,
  };
}

// ---------------------------------------------------------------------------------------------
// The parent side

export interface TwinResult {
  prefillMs: number; prefillReps: number; prefillCpuMs: number; decodeTokensPerSecond: number; decodeRuns: number[];
  decodeCpuMsPerToken: number; tokens: number[]; logitsFile: string; torch: string; threads: number; matmulGflops: number; blas: string;
  prefillLastMs: number; prefillLastReps: number; prefillLastCpuMs: number; lastLogitsFile: string;
}

function twin(dir: string, threads: number, runs: number): TwinResult | { skipped: string } {
  if (!existsSync(PYTHON)) return { skipped: `no ${PYTHON}` };
  const probe = spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" });
  if (probe.status !== 0) return { skipped: `${PYTHON} has no torch` };
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  const r = spawnSync(PYTHON, [join(HERE, "gpt2_twin.py"), dir, "--threads", String(threads), "--runs", String(runs), "--prompt", String(PROMPT), "--decode", String(DECODE)], { encoding: "utf8", env, timeout: 20 * 60_000 });
  const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !line.startsWith("{")) return { skipped: `twin failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split("\n").pop()}` };
  return JSON.parse(line) as TwinResult;
}

const CHILD_MARK = "@@attend-bench-pretrained ";

/** Runs childLoad / childSpeed in a fresh process (this file with --child), so peak RSS is its own. */
function runChild(spec: { kind: "load" | "speed"; dir: string; threads?: number; runs?: number }, timeoutMs: number): object | { error: string } {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--child", JSON.stringify(spec)], { encoding: "utf8", timeout: timeoutMs });
  const line = (r.stdout ?? "").split("\n").find((l) => l.startsWith(CHILD_MARK));
  if (line) return JSON.parse(line.slice(CHILD_MARK.length)) as object;
  return { error: r.signal ? `killed (${r.signal})` : `exit ${r.status}: ${(r.stderr ?? "").trim().split("\n").pop() ?? ""}` };
}

const fmt = (x: number, d: number): string => (Number.isFinite(x) ? x.toFixed(d) : "—");

/** max |a − b| and max |b| over two float32 logit files. */
function compareLogits(fileA: string, fileB: string): { diff: number; scale: number } {
  const a = new Float32Array(readFileSync(fileA).buffer.slice(0));
  const b = new Float32Array(readFileSync(fileB).buffer.slice(0));
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) { diff = Math.max(diff, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
  return { diff, scale };
}

const LAST_ONLY = `prefill ${PROMPT} tokens as generate runs it (last position's logits only)`;

/** The GPT-2 rows as markdown lines (the loader's and attend's measurements each in a fresh process). */
export function pretrainedRows(o: { threads: number; runs: number; torch: boolean }, log: (s: string) => void): string[] {
  log("bench: GPT-2 small: writing a random BF16 checkpoint");
  const dir = writeRandomGpt2();
  try {
    const params = gpt2Params();
    const f32MiB = (params * 4) / MiB;
    const lines: string[] = [];
    lines.push(`GPT-2 small shapes, ${params} parameters (random weights; config.json + BF16 model.safetensors, ${fmt((params * 2) / MiB, 0)} MiB, written under os.tmpdir() and loaded with fromPretrained), wasm x${o.threads}, PyTorch twin bench/gpt2_twin.py on the same file with ${o.threads} threads.`);
    lines.push("");
    lines.push("| case | attend | PyTorch twin | ratio | target | note |");
    lines.push("|---|---:|---:|---:|---|---|");

    log("bench: GPT-2 small: load (peak RSS)");
    const ld = runChild({ kind: "load", dir }, 10 * 60_000) as LoadResult | { error: string };
    if ("error" in ld) lines.push(`| peak RSS loading the BF16 checkpoint | — | | — | ≤ 1.3× | ${ld.error} |`);
    else {
      lines.push(`| peak RSS loading the BF16 checkpoint (MiB) ÷ float32 weights (${fmt(f32MiB, 0)} MiB) | ${fmt(ld.maxRssMiB, 0)} MiB | | **${fmt(ld.maxRssMiB / f32MiB, 2)}×** | ≤ 1.3× | ` +
        `whole process (maxRSS); ${fmt(ld.rssBeforeMiB, 0)} MiB before loading (Node, tsx, the library): ${fmt((ld.maxRssMiB - ld.rssBeforeMiB) / f32MiB, 2)}× without it; load ${fmt(ld.loadMs / 1000, 1)} s |`);
    }

    log("bench: GPT-2 small: prefill and decode (attend)");
    const sp = runChild({ kind: "speed", dir, threads: o.threads, runs: o.runs }, 20 * 60_000) as SpeedResult | { error: string };
    log("bench: GPT-2 small: prefill and decode (PyTorch twin)");
    const tw = o.torch ? twin(dir, o.threads, o.runs) : { skipped: "--no-torch" };
    if ("error" in sp) {
      lines.push(`| prefill ${PROMPT} tokens | — | | — | ≤ 1.0× | ${sp.error} |`);
    } else if ("skipped" in tw) {
      lines.push(`| prefill ${PROMPT} tokens, ms | ${fmt(sp.prefillMs, 0)} (CPU ${fmt(sp.prefillCpuMs, 0)}) | skipped | — | ≤ 1.0× the twin's time | twin ${tw.skipped} |`);
      lines.push(`| ${LAST_ONLY}, ms | ${fmt(sp.prefillLastMs, 0)} (CPU ${fmt(sp.prefillLastCpuMs, 0)}) | skipped | — | ≤ 1.0× the twin's time | twin ${tw.skipped}; ${fmt(sp.prefillLastMs / sp.prefillMs, 2)}× the all-logits prefill's time |`);
      lines.push(`| KV-cache decode of ${DECODE} tokens after it, tokens/s | ${fmt(sp.decodeTokensPerSecond, 1)} (CPU ${fmt(sp.decodeCpuMsPerToken, 0)} ms/token) | skipped | — | ≥ 0.8× the twin | twin ${tw.skipped} |`);
    } else {
      const { diff, scale } = compareLogits(sp.logitsFile, tw.logitsFile);
      const lastOnly = compareLogits(sp.lastLogitsFile, tw.lastLogitsFile);
      const firstDiff = sp.tokens.findIndex((t, i) => t !== tw.tokens[i]);
      const same = firstDiff < 0 ? `same ${DECODE} greedy tokens` : `greedy tokens differ from token ${firstDiff}`;
      lines.push(`| prefill ${PROMPT} tokens, ms (median of ${sp.prefillReps} / ${tw.prefillReps}) | ${fmt(sp.prefillMs, 0)} | ${fmt(tw.prefillMs, 0)} | **${fmt(sp.prefillMs / tw.prefillMs, 2)}× the time** | ≤ 1.0× | ` +
        `CPU time (all threads) ${fmt(sp.prefillCpuMs, 0)} / ${fmt(tw.prefillCpuMs, 0)} ms: ${fmt(sp.prefillCpuMs / tw.prefillCpuMs, 2)}×; last position's logits: max \\|attend − torch\\| ${diff.toExponential(1)} (max \\|logit\\| ${fmt(scale, 2)}); torch ${tw.torch}, ${tw.threads} threads, ${tw.blas}, its matmul 1024³ ${fmt(tw.matmulGflops, 1)} GFLOP/s |`);
      lines.push(`| ${LAST_ONLY}, ms (median of ${sp.prefillLastReps} / ${tw.prefillLastReps}) | ${fmt(sp.prefillLastMs, 0)} | ${fmt(tw.prefillLastMs, 0)} | **${fmt(sp.prefillLastMs / tw.prefillLastMs, 2)}× the time** | ≤ 1.0× | ` +
        `forward(ids, { logitsToKeep: 1 }) vs the twin's lm_head on the last position (transformers' generate(), logits_to_keep=1), same process and timing as the row above; ` +
        `${fmt(sp.prefillLastMs / sp.prefillMs, 2)}× / ${fmt(tw.prefillLastMs / tw.prefillMs, 2)}× each side's all-logits time; CPU time ${fmt(sp.prefillLastCpuMs, 0)} / ${fmt(tw.prefillLastCpuMs, 0)} ms: ${fmt(sp.prefillLastCpuMs / tw.prefillLastCpuMs, 2)}×; ` +
        `logits: max \\|attend − torch\\| ${lastOnly.diff.toExponential(1)} (max \\|logit\\| ${fmt(lastOnly.scale, 2)}) |`);
      lines.push(`| KV-cache decode of ${DECODE} tokens after it, tokens/s (median of ${sp.decodeRuns.length} run${sp.decodeRuns.length === 1 ? "" : "s"}) | ${fmt(sp.decodeTokensPerSecond, 1)} | ${fmt(tw.decodeTokensPerSecond, 1)} | **${fmt(sp.decodeTokensPerSecond / tw.decodeTokensPerSecond, 2)}×** | ≥ 0.8× | ${same}; CPU ms per token (all threads) ${fmt(sp.decodeCpuMsPerToken, 0)} / ${fmt(tw.decodeCpuMsPerToken, 0)}; through generateText (weights kept prepared): RSS ${fmt(sp.rssBeforeDecodeMiB, 0)} → ${fmt(sp.rssAfterDecodeMiB, 0)} MiB, peak ${fmt(sp.maxRssMiB, 0)} MiB |`);
    }
    return lines;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Standalone: node --import tsx bench/pretrained.ts [--threads 2] [--runs 1] [--no-torch]
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (n: string, d: string): string => { const i = process.argv.indexOf(`--${n}`); return i >= 0 ? process.argv[i + 1] : d; };
  const spec = arg("child", "");
  if (spec) {
    const s = JSON.parse(spec) as { kind: string; dir: string; threads?: number; runs?: number };
    const r = s.kind === "load" ? childLoad(s.dir) : childSpeed(s.dir, s.threads ?? 2, s.runs ?? 2);
    console.log(CHILD_MARK + JSON.stringify(r));
  } else {
    const o = { threads: Number(arg("threads", "2")), runs: Number(arg("runs", "1")), torch: !process.argv.includes("--no-torch") };
    console.log(pretrainedRows(o, (l) => process.stderr.write(l + "\n")).join("\n"));
  }
}
