/**
 * npm run bench: attend's attention beside its peers, in one run on this machine, printed as one
 * table and written to bench/RESULTS.md.
 *
 *   npm run bench                                  everything (about 25 minutes on 2 quiet cores)
 *   options: --threads N, --budget-ms MS, --ref-max-n N (1024), --single-max-n N (4096), --max-rep-s S (60, peers), --attend-max-rep-s S (300)
 *   npm run bench -- --quick                       N ∈ {128, 1024}, shorter timing budgets
 *   npm run bench -- --sizes 1024,4096 --modes fwd,causal-fwd --no-peers --no-training --no-write
 *   npm run bench -- --only matmul,flex,gpt2        some sections (ceiling, attention, matmul, flex, gpt2,
 *                                                  training); prints only, unless --write
 *   flex: --flex-n N (16384), --flex-opt-n N (4096); gpt2: --gpt2-runs R (1)
 *
 * Problem: B = 1, H = 8, E = 64, float32, N = L = S; non-causal and causal; forward, and forward +
 * backward (dQ, dK, dV for an upstream gradient). Flops: forward 4·B·H·N²·E, forward + backward
 * 12·B·H·N²·E, causal counted the same as non-causal (so skipped tiles show as speed).
 *
 * attend rows go through the public API: scaledDotProductAttention (fused kernels; noGrad for the
 * forward, requiresGrad inputs and out.backward(g) for forward + backward), with setBackend("ref")
 * or setBackend("wasm") and setNumThreads(1 | all cores). Every attend case runs in a fresh child
 * process, so "peak RSS" is that case's whole-process peak (VmHWM): runtime, inputs, outputs,
 * gradients and the kernels' staging memory together. Peers (bench/peers/) run the same way, each
 * checked against a float64 reference at N = 64 before it is timed.
 *
 * Also printed: the wasm matmul at 1024³ (the ceiling the attention kernel is measured against),
 * causal attention through MultiheadAttention against scaledDotProductAttention alone (module
 * overhead), training throughput of the `small` GPT preset (tokens/s of forward + backward + AdamW;
 * bench/trainingStep.ts) over its PyTorch twin's (bench/torch_twin.py in /usr/bin/python3, skipped
 * without torch; --no-torch), the KV cache's speed-up when generating 256 tokens with `small`, and
 * cached greedy decoding's ms/token.
 *
 * And the issues' comparison rows: matmul per core against tfjs-wasm's 2-D matMul (XNNPACK), the
 * flexible-attention options against the same calls without them (bench/flex.ts), and GPT-2 small
 * loaded with fromPretrained against a PyTorch twin: prefill (all logits, and the last position only
 * as generate runs it), KV-cache decode, peak RSS of loading
 * (bench/pretrained.ts, bench/gpt2_twin.py). bench/README.md describes each.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  GPT, MultiheadAttention, Tensor, generate, getBackendName, linear, noGrad, permute, randn, reshape,
  scaledDotProductAttention, setBackend, setNumThreads, slice, matmul,
} from "../src/index.js";
import { hardwareThreads } from "../src/kernels/wasm/runtime.js";
import { type PeerRow, runPeers, parseMode, modeLabel, type Mode, DEFAULT_SIZES } from "./peers/index.js";
import { median, peakRssMiB, randn as randnF32, timeCalls } from "./peers/common.js";
import { torchTwinThroughput, trainingThroughput } from "./trainingStep.js";
import { type FlexPairSpec, flexRows, runFlexPair } from "./flex.js";
import { pretrainedRows } from "./pretrained.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const B = 1, H = 8, E = 64;

// ---------------------------------------------------------------------------------------------
// One attend case, in this process (the child side)

interface AttendCase {
  backend: "ref" | "wasm";
  threads: number;
  N: number;
  causal: boolean;
  pass: "fwd" | "fwd+bwd";
  budgetMs: number;
  maxReps: number;
}

interface Timed {
  medianMs: number;
  reps: number;
  peakRssMiB: number;
}

function flops(N: number, pass: "fwd" | "fwd+bwd"): number {
  return (pass === "fwd" ? 4 : 12) * B * H * N * N * E;
}

function runAttendCase(c: AttendCase): Timed {
  setBackend(c.backend);
  setNumThreads(c.threads);
  const shape = [B, H, c.N, E];
  const q = randn(shape, { seed: 1 }), k = randn(shape, { seed: 2 }), v = randn(shape, { seed: 3 });
  const g = randn(shape, { seed: 4 });
  const opts = { isCausal: c.causal };
  let run: () => void;
  if (c.pass === "fwd") {
    run = () => { noGrad(() => scaledDotProductAttention(q, k, v, opts)); };
  } else {
    run = () => {
      for (const x of [q, k, v]) { x.requiresGrad = true; x.grad = null; }
      scaledDotProductAttention(q, k, v, opts).backward(g);
    };
  }
  const { ms, reps } = timeCalls(run, c.budgetMs, c.maxReps);
  return { medianMs: ms, reps, peakRssMiB: peakRssMiB() };
}

// ---------------------------------------------------------------------------------------------
// Child processes

const MARK = "@@attend-bench ";

function runChild<T = Timed>(spec: object, timeoutMs: number): Promise<T | { error: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--child", JSON.stringify(spec)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "", err = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { err += d; });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith(MARK));
      if (line) resolve(JSON.parse(line.slice(MARK.length)));
      else resolve({ error: signal ? `killed (${signal}${signal === "SIGKILL" ? ", over the time limit" : ""})` : `exit ${code}: ${err.trim().split("\n").pop() ?? ""}` });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Extras: matmul ceiling, training throughput, KV-cache speed-up (run in this process)

function matmulGflops(threads: number, quick: boolean): number {
  setBackend("wasm");
  setNumThreads(threads);
  const n = 1024;
  const a = randn([n, n], { seed: 1 }), b = randn([n, n], { seed: 2 });
  const { ms } = timeCalls(() => { noGrad(() => matmul(a, b)); }, quick ? 1000 : 3000, 30);
  return (2 * n ** 3) / (ms * 1e-3) / 1e9;
}

interface MatmulPerCore { n: number; attendMs: number; tfjsMs: number; reps: number; maxDiff: number; refDiff: number; tfjs: string }

/**
 * The child side of the matmul-per-core rows: attend's matmul (wasm, setNumThreads(1)) against
 * tfjs-wasm's 2-D tf.matMul (XNNPACK; one thread, as it runs in Node) on the same n × n × n float32
 * inputs, interleaved rep by rep, medians; both include reading the product on the host. Checked
 * first: the two products agree, and 64 of attend's entries equal a float64 dot product.
 */
async function runMatmulCase(spec: { sizes: number[]; budgetMs: number; maxReps: number }): Promise<MatmulPerCore[]> {
  setBackend("wasm");
  setNumThreads(1);
  const { prepareMatmul2d, setup } = await import("./peers/tfjs.js");
  const tfjs = await setup();
  const out: MatmulPerCore[] = [];
  for (const n of spec.sizes) {
    const av = randnF32(n * n, 11), bv = randnF32(n * n, 12);
    const a = new Tensor(av, [n, n]), b = new Tensor(bv, [n, n]);
    const tf = await prepareMatmul2d(av, bv, n, n, n);
    const ours = (): Float32Array => noGrad(() => matmul(a, b)).values as Float32Array;
    const c1 = ours(), c2 = tf.run(); // warm-up and check
    let maxDiff = 0, refDiff = 0;
    for (let i = 0; i < n * n; i++) maxDiff = Math.max(maxDiff, Math.abs(c1[i] - c2[i]));
    for (let t = 0; t < 64; t++) {
      const i = (t * 7919) % n, j = (t * 104729) % n;
      let dot = 0;
      for (let p = 0; p < n; p++) dot += av[i * n + p] * bv[p * n + j];
      refDiff = Math.max(refDiff, Math.abs(c1[i * n + j] - dot));
    }
    if (!(maxDiff < 1e-3 * Math.sqrt(n)) || !(refDiff < 1e-3 * Math.sqrt(n))) throw new Error(`bench: matmul ${n}³ check failed: attend vs tfjs ${maxDiff}, attend vs float64 ${refDiff}`);
    const ta: number[] = [], tt: number[] = [];
    const start = performance.now();
    while (ta.length < spec.maxReps && (ta.length < 5 || performance.now() - start < spec.budgetMs)) {
      let t0 = performance.now();
      ours();
      ta.push(performance.now() - t0);
      t0 = performance.now();
      tf.run();
      tt.push(performance.now() - t0);
    }
    tf.dispose();
    out.push({ n, attendMs: median(ta), tfjsMs: median(tt), reps: ta.length, maxDiff, refDiff, tfjs });
  }
  return out;
}

interface ModuleOverhead { moduleMs: number; sdpaMs: number; projMs: number; handMs: number; reps: number }

/**
 * Causal self-attention through MultiheadAttention (needWeights: false: the fused kernels, causality
 * as a flag) against scaledDotProductAttention(isCausal) on the same [N, H, L, E] = [2, 4, 2048, 64]
 * (embed 256, 4 heads); against the module's projections alone as it runs them (in_proj as one
 * [4096, 256] x [256, 768] product, then out_proj: 2.1 GFLOP), so that module / (projections + sdpa)
 * is what the module costs beyond its arithmetic; and against its steps written out by hand (three
 * projections, head split, sdpa, merge, out_proj: the copies the module no longer makes).
 * Interleaved repetitions, medians.
 */
function moduleOverhead(threads: number, reps: number): ModuleOverhead {
  setBackend("wasm");
  setNumThreads(threads);
  const N = 2, Hm = 4, L = 2048, Em = 64, C = Hm * Em;
  const mha = new MultiheadAttention(C, Hm, { batchFirst: true, seed: 0 });
  const x = randn([N, L, C], { seed: 1 }); // [N, L, C]
  const [q, k, v] = [2, 3, 4].map((seed) => randn([N, Hm, L, Em], { seed })); // [N, H, L, E]
  const y = randn([N, L, C], { seed: 5 }); // [N, L, C]: what out_proj reads
  const heads = (t: Tensor): Tensor => permute(reshape(t, [N, L, Hm, Em]), [0, 2, 1, 3]); // [N, L, C] -> [N, H, L, E]
  const runs = {
    module: () => { noGrad(() => mha.forward(x, x, x, { isCausal: true, needWeights: false })); },
    sdpa: () => { noGrad(() => scaledDotProductAttention(q, k, v, { isCausal: true })); },
    proj: () => {
      noGrad(() => {
        linear(x, mha.in_proj_weight!, mha.in_proj_bias); // [N, L, C] -> [N, L, 3C]
        mha.out_proj.forward(y); // [N, L, C] -> [N, L, C]
      });
    },
    hand: () => {
      noGrad(() => {
        const w = mha.in_proj_weight!, b = mha.in_proj_bias!;
        const [qh, kh, vh] = [0, 1, 2].map((i) => heads(linear(x, slice(w, 0, i * C, (i + 1) * C), slice(b, 0, i * C, (i + 1) * C))));
        const y = scaledDotProductAttention(qh, kh, vh, { isCausal: true }); // [N, H, L, E]
        mha.out_proj.forward(reshape(permute(y, [0, 2, 1, 3]), [N, L, C])); // [N, H, L, E] -> [N, L, C]
      });
    },
  };
  const times: Record<keyof typeof runs, number[]> = { module: [], sdpa: [], proj: [], hand: [] };
  for (const run of Object.values(runs)) run(); // warm-up
  for (let r = 0; r < reps; r++) {
    for (const [name, run] of Object.entries(runs) as Array<[keyof typeof runs, () => void]>) {
      const t0 = performance.now();
      run();
      times[name].push(performance.now() - t0);
    }
  }
  return { moduleMs: median(times.module), sdpaMs: median(times.sdpa), projMs: median(times.proj), handMs: median(times.hand), reps };
}

interface GenerationSpeed { cachedMs: number; uncachedMs: number; speedup: number; tokens: number }

function generationSpeedup(threads: number, tokens: number): GenerationSpeed {
  setBackend("wasm");
  setNumThreads(threads);
  const model = new GPT("small", { seed: 0 });
  model.eval();
  const prompt = [[3, 10, 17, 24, 31, 38, 45, 52]];
  const t0 = performance.now();
  const a = generate(model, prompt, { maxNewTokens: tokens, useCache: true });
  const cachedMs = performance.now() - t0;
  const t1 = performance.now();
  const b = generate(model, prompt, { maxNewTokens: tokens, useCache: false });
  const uncachedMs = performance.now() - t1;
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error("bench: cached and uncached greedy generation disagree");
  return { cachedMs, uncachedMs, speedup: uncachedMs / cachedMs, tokens };
}

/** Cached greedy decoding with `small` (the KV cache's one-token steps): median ms per new token. */
function cachedDecodeMsPerToken(threads: number, tokens: number, quick: boolean): { msPerToken: number; reps: number } {
  setBackend("wasm");
  setNumThreads(threads);
  const model = new GPT("small", { seed: 0 });
  const prompt = [[3, 10, 17, 24, 31, 38, 45, 52]];
  const { ms, reps } = timeCalls(() => { generate(model, prompt, { maxNewTokens: tokens, greedy: true }); }, quick ? 3000 : 10_000, quick ? 3 : 9);
  return { msPerToken: ms / tokens, reps };
}

// ---------------------------------------------------------------------------------------------
// The run

function parseArgs(argv: readonly string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`bench: unexpected argument "${a}" (options start with --; see the top of bench/main.ts)`);
    const [key, val] = a.slice(2).split("=", 2);
    if (val !== undefined) out[key] = val;
    else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) out[key] = argv[++i];
    else out[key] = true;
  }
  return out;
}

/** What --only can select (default: all of them, in this order). */
const SECTIONS = ["ceiling", "attention", "matmul", "flex", "gpt2", "training"] as const;
type Section = (typeof SECTIONS)[number];

const fmt = (x: number, d: number): string => (Number.isFinite(x) ? x.toFixed(d) : "—");

interface Row {
  impl: string;
  form: string;
  N: number;
  mode: string;
  medianMs: number;
  gflops: number;
  peakRssMiB: number;
  note: string;
}

function rowLine(r: Row): string {
  return `| ${r.impl} | ${r.form} | ${r.N} | ${r.mode} | ${fmt(r.medianMs, 2)} | ${fmt(r.gflops, 1)} | ${fmt(r.peakRssMiB, 0)} | ${r.note.replace(/\|/g, "\\|")} |`;
}
const HEAD = "| impl | form | N | mode | median ms | GFLOP/s | peak RSS MiB | note |\n|---|---|---:|---|---:|---:|---:|---|";

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (typeof a.child === "string") {
    const spec = JSON.parse(a.child) as { kind?: string };
    const result = spec.kind === "flexpair" ? runFlexPair(spec as FlexPairSpec)
      : spec.kind === "matmul" ? await runMatmulCase(spec as Parameters<typeof runMatmulCase>[0])
      : runAttendCase(spec as AttendCase);
    process.stdout.write(MARK + JSON.stringify(result) + "\n", () => process.exit(0)); // tfjs may hold the loop open
    return;
  }
  const quick = a.quick === true;
  const list = (v: string | true | undefined): string[] | undefined => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : undefined);
  const sizes = (list(a.sizes)?.map(Number) ?? (quick ? [128, 1024] : [...DEFAULT_SIZES])).sort((x, y) => x - y);
  const modes: Mode[] = (list(a.modes) ?? ["fwd", "causal-fwd", "fwd+bwd", "causal-fwd+bwd"]).map(parseMode);
  const all = Number(a.threads ?? hardwareThreads());
  const budgetMs = Number(a["budget-ms"] ?? (quick ? 1500 : 4000));
  const refMaxN = Number(a["ref-max-n"] ?? 1024);
  const maxRepMs = Number(a["max-rep-s"] ?? 60) * 1000;
  const singleMaxN = Number(a["single-max-n"] ?? 4096);
  // attend's own rows may take longer than a peer's: N = 16384 forward + backward is a target (memory)
  const attendMaxRepMs = Number(a["attend-max-rep-s"] ?? 300) * 1000;
  const only = list(a.only);
  for (const o of only ?? []) if (!(SECTIONS as readonly string[]).includes(o)) throw new Error(`bench: unknown section "${o}" in --only (sections: ${SECTIONS.join(", ")})`);
  const want = (s: Section): boolean => only === undefined || only.includes(s);
  const lines: string[] = [];
  const say = (l = ""): void => { console.log(l); lines.push(l); };
  const log = (l: string): void => { process.stderr.write(l + "\n"); };

  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  say(`# attend benchmark`);
  say();
  say(`${new Date().toISOString().slice(0, 10)} · Node ${process.version} · ${cpu} · ${hardwareThreads()} hardware threads · load average at start ${os.loadavg()[0].toFixed(2)}`);
  say();
  say(`Scaled dot-product attention, B = ${B}, H = ${H}, E = ${E}, float32, N = L = S. GFLOP/s counts 4·B·H·N²·E (fwd) or 12·B·H·N²·E (fwd+bwd); causal is counted as non-causal, so skipped tiles show as speed. Median of repeated calls after a warm-up; each attend case in a fresh process (peak RSS = that process's VmHWM). Reproduce: \`npm run bench\` (\`node --import tsx bench/main.ts\`).`);
  say();

  if (a["no-extras"] !== true && want("ceiling")) {
    const mm1 = matmulGflops(1, quick), mmAll = all > 1 ? matmulGflops(all, quick) : mm1;
    say(`**Ceiling**: wasm matmul 1024³ float32: ${fmt(mm1, 1)} GFLOP/s on 1 thread, ${fmt(mmAll, 1)} GFLOP/s on ${all} threads.`);
    say();
    const mo = moduleOverhead(all, 5);
    say(`**Attention module** (causal forward, [N, H, L, E] = [2, 4, 2048, 64], embed 256, wasm x${all}, median of ${mo.reps}): ` +
      `MultiheadAttention(isCausal, needWeights: false) ${fmt(mo.moduleMs, 0)} ms, scaledDotProductAttention(isCausal) ${fmt(mo.sdpaMs, 0)} ms: ` +
      `**module / sdpa ${fmt(mo.moduleMs / mo.sdpaMs, 2)}** (target ≤ 1.15; the module also runs its q, k, v and out projections, 2.1 GFLOP beside the attention's 4.3); ` +
      `its projections alone ${fmt(mo.projMs, 0)} ms: **module / (projections + sdpa) ${fmt(mo.moduleMs / (mo.projMs + mo.sdpaMs), 2)}** (what the module costs beyond its arithmetic); ` +
      `the steps by hand with the head split/merge copies ${fmt(mo.handMs, 0)} ms: module / by hand ${fmt(mo.moduleMs / mo.handMs, 2)}.`);
    say();
  }

  if (want("attention")) {
    const rows: Row[] = [];
    const attendImpls: Array<{ backend: "ref" | "wasm"; threads: number; impl: string }> = [
      { backend: "ref", threads: 1, impl: "attend ref" },
      { backend: "wasm", threads: 1, impl: "attend wasm x1" },
      ...(all > 1 ? [{ backend: "wasm" as const, threads: all, impl: `attend wasm x${all}` }] : []),
    ];
    for (const m of modes) {
      for (const im of attendImpls) {
        let tooSlow = false;
        for (const N of sizes) {
          const mode = modeLabel(m);
          const base = { impl: im.impl, form: "scaledDotProductAttention", N, mode };
          if (im.backend === "ref" && N > refMaxN) { rows.push({ ...base, medianMs: NaN, gflops: NaN, peakRssMiB: NaN, note: `not run above N = ${refMaxN} (--ref-max-n)` }); continue; }
          if (im.backend === "wasm" && im.threads === 1 && all > 1 && N > singleMaxN) { rows.push({ ...base, medianMs: NaN, gflops: NaN, peakRssMiB: NaN, note: `not run above N = ${singleMaxN} (--single-max-n)` }); continue; }
          if (tooSlow) { rows.push({ ...base, medianMs: NaN, gflops: NaN, peakRssMiB: NaN, note: `skipped: a call would take over ${attendMaxRepMs / 1000} s` }); continue; }
          log(`bench: ${im.impl} ${mode} N=${N}`);
          const r = await runChild({ backend: im.backend, threads: im.threads, N, causal: m.causal, pass: m.pass, budgetMs, maxReps: 15 }, 15 * 60_000);
          if ("error" in r) { rows.push({ ...base, medianMs: NaN, gflops: NaN, peakRssMiB: NaN, note: r.error }); tooSlow = true; continue; }
          rows.push({ ...base, medianMs: r.medianMs, gflops: flops(N, m.pass) / (r.medianMs * 1e-3) / 1e9, peakRssMiB: r.peakRssMiB, note: `${r.reps} reps` });
          if (r.medianMs * 4 > attendMaxRepMs) tooSlow = true; // the next size is ~4x the work
        }
      }
    }

    const peerRows: PeerRow[] = [];
    if (a["no-peers"] !== true) {
      for await (const r of runPeers({ sizes, modes, log, maxRepMs, timing: { budgetMs } })) peerRows.push(r);
      for (const r of peerRows) {
        rows.push({ impl: r.peer, form: r.form, N: r.N, mode: modeLabel(r), medianMs: r.ok ? r.medianMs : NaN, gflops: r.ok ? r.gflops : NaN, peakRssMiB: r.peakRssMiB, note: r.note || (r.reps ? `${r.reps} reps` : "") });
      }
    }

    say(`## Attention`);
    say();
    say(HEAD);
    const order = (r: Row): string => `${modes.findIndex((m) => modeLabel(m) === r.mode)}|${String(r.N).padStart(6, "0")}`;
    for (const r of [...rows].sort((x, y) => (order(x) < order(y) ? -1 : order(x) > order(y) ? 1 : 0))) say(rowLine(r));
    say();

    // Ratios the issue asks about: attend (all threads) against the best JavaScript peer, and onnxruntime-node.
    const best = `attend wasm x${all}`;
    say(`## Ratios (attend wasm x${all} over the peer; > 1 means attend is faster)`);
    say();
    say("| mode | N | attend GFLOP/s | best JS peer | its GFLOP/s | ratio | onnxruntime-node best | ratio |");
    say("|---|---:|---:|---|---:|---:|---:|---:|");
    for (const m of modes) {
      const mode = modeLabel(m);
      for (const N of sizes) {
        const ours = rows.find((r) => r.impl === best && r.N === N && r.mode === mode);
        if (!ours || !Number.isFinite(ours.gflops)) continue;
        const js = rows.filter((r) => r.N === N && r.mode === mode && (r.impl === "tfjs-wasm" || r.impl === "jax-js") && Number.isFinite(r.gflops));
        const top = js.sort((x, y) => y.gflops - x.gflops)[0];
        const ort = rows.filter((r) => r.N === N && r.mode === mode && r.impl === "onnxruntime-node" && Number.isFinite(r.gflops)).sort((x, y) => y.gflops - x.gflops)[0];
        say(`| ${mode} | ${N} | ${fmt(ours.gflops, 1)} | ${top ? `${top.impl} (${top.form})` : "—"} | ${top ? fmt(top.gflops, 1) : "—"} | ${top ? fmt(ours.gflops / top.gflops, 2) : "—"} | ${ort ? `${fmt(ort.gflops, 1)} (${ort.form})` : "—"} | ${ort ? fmt(ours.gflops / ort.gflops, 2) : "—"} |`);
      }
    }
    say();
    const causalRatio = (N: number, pass: string): string => {
      const full = rows.find((r) => r.impl === best && r.N === N && r.mode === pass);
      const causal = rows.find((r) => r.impl === best && r.N === N && r.mode === `causal-${pass}`);
      return full && causal && Number.isFinite(full.medianMs) && Number.isFinite(causal.medianMs) ? fmt(causal.medianMs / full.medianMs, 2) : "—";
    };
    if (sizes.includes(4096)) say(`Causal / non-causal time at N = 4096 (attend wasm x${all}): forward ${causalRatio(4096, "fwd")}, forward + backward ${causalRatio(4096, "fwd+bwd")}.`);
    say();
  }

  if (want("matmul")) {
    say(`## Matmul per core (attend wasm x1 vs tfjs-wasm's 2-D tf.matMul, XNNPACK, 1 thread)`);
    say();
    const r = await runChild<MatmulPerCore[]>({ kind: "matmul", sizes: [512, 1024], budgetMs: quick ? 1500 : 4000, maxReps: 30 }, 10 * 60_000);
    if ("error" in r) say(`skipped: ${r.error}`);
    else {
      say("| n × n × n | attend ms | attend GFLOP/s | tfjs-wasm ms | tfjs-wasm GFLOP/s | attend ÷ tfjs-wasm (rate) | target | note |");
      say("|---:|---:|---:|---:|---:|---:|---|---|");
      for (const m of r) {
        const gf = (ms: number): number => (2 * m.n ** 3) / (ms * 1e-3) / 1e9;
        say(`| ${m.n} | ${fmt(m.attendMs, 2)} | ${fmt(gf(m.attendMs), 1)} | ${fmt(m.tfjsMs, 2)} | ${fmt(gf(m.tfjsMs), 1)} | **${fmt(m.tfjsMs / m.attendMs, 2)}** | ≥ 0.9 | median of ${m.reps} interleaved reps, product read on the host both ways; max \\|attend − tfjs\\| ${m.maxDiff.toExponential(1)} |`);
      }
      say();
      say(`tfjs-wasm: ${r[0]?.tfjs ?? "?"}.`);
    }
    say();
  }

  if (want("flex")) {
    say(`## Flexible attention (scaledDotProductAttention options vs the same call without them)`);
    say();
    const flex = await flexRows(runChild, {
      threads: all, longN: Number(a["flex-n"] ?? 16384), optN: Number(a["flex-opt-n"] ?? 4096),
      budgetMs: quick ? 1500 : budgetMs,
    }, log);
    for (const l of flex) say(l);
    say();
    say(`Ratios: "faster" = time without ÷ time with the option; "the time" = time with ÷ time without. Ideal = the ratio of visible (query, key) pairs. Each row's two calls run in one process, in turns (A, B, A, B, …), so a busy machine's drift falls on both.`);
    say();
  }

  if (want("gpt2")) {
    say(`## GPT-2 small through fromPretrained`);
    say();
    for (const l of pretrainedRows({ threads: all, runs: Number(a["gpt2-runs"] ?? 1), torch: a["no-torch"] !== true }, log)) say(l);
    say();
  }

  if (a["no-training"] !== true && want("training")) {
    say(`## Training and generation (GPT preset \`small\`, wasm x${all})`);
    say();
    const t = trainingThroughput(all, quick);
    say(`Training throughput: **${fmt(t.tokensPerSecond, 0)} tokens/s** (${t.params} parameters; batch ${t.batch} × ${t.T} tokens; forward + cross-entropy + backward + AdamW, median ${fmt(t.msPerStep, 0)} ms per step).`);
    const twin = a["no-torch"] === true ? { skipped: "--no-torch" } : torchTwinThroughput(all, quick);
    say("skipped" in twin
      ? `PyTorch twin (bench/torch_twin.py): skipped (${twin.skipped}).`
      : `PyTorch twin (bench/torch_twin.py, torch ${twin.torch}, ${twin.threads} thread${twin.threads === 1 ? "" : "s"}, same model and step): ${fmt(twin.tokensPerSecond, 0)} tokens/s; **attend / PyTorch = ${fmt(t.tokensPerSecond / twin.tokensPerSecond, 2)}**.`);
    const tokens = Number(a["gen-tokens"] ?? 256);
    const gsp = generationSpeedup(all, tokens);
    const dec = cachedDecodeMsPerToken(all, tokens, quick);
    say(`Cached greedy decoding (${tokens} tokens after an 8-token prompt, median of ${dec.reps} runs, prefill included): **${fmt(dec.msPerToken, 2)} ms/token** (target ≤ 0.5).`);
    say(`Generation of ${tokens} tokens after an 8-token prompt (greedy, same tokens both ways): KV cache ${fmt(gsp.cachedMs, 0)} ms, recomputing the whole sequence each step ${fmt(gsp.uncachedMs, 0)} ms: **${fmt(gsp.speedup, 1)}× faster with the cache**.`);
    say();
  }
  say(`Backend after the run: ${getBackendName()}. Load average at the end: ${os.loadavg()[0].toFixed(2)}.`);

  if (a["no-write"] !== true && (only === undefined || a.write === true)) {
    writeFileSync(join(HERE, "RESULTS.md"), lines.join("\n") + "\n");
    log("bench: wrote bench/RESULTS.md");
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
