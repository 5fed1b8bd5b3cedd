// Peer benchmarks: scaled dot-product attention (B = 1, H = 8, E = 64, float32)
// in TensorFlow.js (wasm), onnxruntime-node and jax-js (wasm), as rows that
// bench/main.ts can print beside the library's own.
//
//   for await (const row of runPeers({ sizes: [128, 512, 1024] })) …
//
// CLI (prints a markdown table on stdout, progress on stderr):
//   node --import tsx bench/peers/index.ts --sizes 128,512,1024
//        [--peers tfjs,ort,jax] [--forms per-head-2d,std-ops,...]
//        [--modes fwd,causal-fwd,fwd+bwd,causal-fwd+bwd]
//        [--budget-ms 4000] [--max-rep-s 60] [--max-gib 8] [--in-process] [--json]
//
// By default every row runs in its own child process (see child.ts).

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  type ChildResult,
  type ChildSpec,
  type Pass,
  type PeerCase,
  type PeerModule,
  type TimingOptions,
  GiB,
  RESULT_MARK,
  benchChecked,
  type CpuShare,
  contentionNote,
  cpuShare,
  cpuSnapshot,
  peakRssMiB,
  reviveResult,
  shortError,
} from "./common.js";
import { PEER_NAMES, loadPeer, peerName } from "./registry.js";

export { PEER_NAMES } from "./registry.js";
export type { Pass, PeerCase, PeerResult } from "./common.js";

export const DEFAULT_SIZES = [128, 512, 1024, 2048, 4096, 8192, 16384] as const;

export interface Mode {
  causal: boolean;
  pass: Pass;
}

export const ALL_MODES: readonly Mode[] = [
  { causal: false, pass: "fwd" },
  { causal: true, pass: "fwd" },
  { causal: false, pass: "fwd+bwd" },
  { causal: true, pass: "fwd+bwd" },
];

export interface PeerRow {
  peer: string;
  form: string;
  N: number;
  causal: boolean;
  pass: Pass;
  /** Median wall time of one rep (NaN when not ok). */
  medianMs: number;
  /** 4·B·H·N²·E (fwd) or 12·B·H·N²·E (fwd+bwd) flops / median time; causal counted the same. */
  gflops: number;
  /** Peak RSS of the process that ran the row (NaN when skipped; whole process when in-process). */
  peakRssMiB: number;
  ok: boolean;
  note: string;
  /** Timed repetitions behind the median. */
  reps?: number;
  /** The peer's setup line (threads / workers used). */
  info?: string;
  /** CPU use of the machine while the row ran: others' share and total busy share, in percent. */
  cpu?: CpuShare;
}

export interface RunPeersOptions {
  /** Sequence lengths, run in ascending order per series (default DEFAULT_SIZES). */
  sizes?: readonly number[];
  /** {causal, pass} pairs, or strings "fwd" | "fwd+bwd" | "causal-fwd" | "causal-fwd+bwd" (default all four). */
  modes?: ReadonlyArray<Mode | string>;
  /** Peer names or aliases (tfjs, ort, jax); default all. */
  peers?: readonly string[];
  /** Only these forms (default: every form of each peer). */
  forms?: readonly string[];
  /** One child process per row (default true). */
  isolate?: boolean;
  /** Skip a size whose estimated peak memory exceeds this (default 8 GiB). */
  maxBytes?: number;
  /** Skip larger sizes once a rep takes, or is predicted (∝ N²) to take, longer than this (default 60 s). */
  maxRepMs?: number;
  /** Kill a child whose RSS passes this (default 12 GiB). */
  maxRssBytes?: number;
  /** Kill a child after this long (default 10 min). */
  childTimeoutMs?: number;
  timing?: TimingOptions;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export function parseMode(m: Mode | string): Mode {
  if (typeof m !== "string") return m;
  const s = m.trim().toLowerCase();
  const causal = s.startsWith("causal");
  const pass = s.replace(/^causal[-_: ]?/, "");
  if (pass !== "fwd" && pass !== "fwd+bwd") throw new Error(`unknown mode "${m}" (fwd, fwd+bwd, causal-fwd, causal-fwd+bwd)`);
  return { causal, pass };
}

export function modeLabel(m: Mode): string {
  return (m.causal ? "causal-" : "") + m.pass;
}

const fmtGiB = (b: number) => `${(b / GiB).toFixed(b < GiB ? 2 : 1)} GiB`;

/** Runs the peers and yields one row per (peer, form, mode, N), series by series. */
export async function* runPeers(opts: RunPeersOptions = {}): AsyncGenerator<PeerRow> {
  const sizes = [...(opts.sizes ?? DEFAULT_SIZES)].sort((a, b) => a - b);
  const modes = (opts.modes ?? ALL_MODES).map(parseMode);
  const names = (opts.peers ?? PEER_NAMES).map(peerName);
  const maxBytes = opts.maxBytes ?? 8 * GiB;
  const maxRepMs = opts.maxRepMs ?? 60_000;
  const isolate = opts.isolate ?? true;
  const log = opts.log ?? (() => {});

  for (const name of names) {
    const peer = await loadPeer(name);
    const forms = peer.forms.filter((f) => !opts.forms || opts.forms.includes(f));
    for (const form of forms) {
      for (const mode of modes) {
        let stop: string | null = null;
        let last: { N: number; ms: number } | null = null;
        for (const N of sizes) {
          const c: PeerCase = { form, N, causal: mode.causal, pass: mode.pass };
          const row = (r: Partial<PeerRow> & { ok: boolean; note: string }): PeerRow => ({
            peer: peer.name,
            form,
            N,
            causal: mode.causal,
            pass: mode.pass,
            medianMs: NaN,
            gflops: NaN,
            peakRssMiB: NaN,
            ...r,
          });
          if (!peer.passes.includes(mode.pass)) {
            yield row({ ok: false, note: peer.unavailable?.[mode.pass] ?? `${mode.pass} not available` });
            continue;
          }
          if (stop) {
            yield row({ ok: false, note: stop });
            continue;
          }
          const need = peer.estimateBytes(c);
          const heap = peer.heapLimitBytes ?? Infinity;
          if (need > Math.min(maxBytes, heap)) {
            const why = heap < maxBytes ? `the ${fmtGiB(heap)} wasm32 heap limit` : `the ${fmtGiB(maxBytes)} cap`;
            yield row({ ok: false, note: `skipped: needs ~${fmtGiB(need)}, over ${why}` });
            continue;
          }
          if (last) {
            const predicted = last.ms * (N / last.N) ** 2;
            if (predicted > maxRepMs) {
              stop = `skipped: ~${Math.round(predicted / 1000)} s/rep predicted from N=${last.N} (limit ${maxRepMs / 1000} s)`;
              yield row({ ok: false, note: stop });
              continue;
            }
          }
          log(`${peer.name} ${form} ${modeLabel(mode)} N=${N} (load ${os.loadavg()[0]!.toFixed(1)}) …`);
          const r = isolate ? await runChild(peer.name, c, opts) : await runInProcess(peer, c, opts.timing);
          const busy = r.ok ? contentionNote(r.cpu) : "";
          const out = row({
            medianMs: r.medianMs,
            gflops: r.gflops,
            peakRssMiB: r.peakRssMiB,
            ok: r.ok,
            note: [r.note, busy].filter(Boolean).join("; "),
            reps: r.reps,
            info: r.info,
            cpu: r.cpu,
          });
          log(`  ${out.ok ? `${out.medianMs.toFixed(2)} ms, ${out.gflops.toFixed(2)} GFLOP/s, ${out.peakRssMiB.toFixed(0)} MiB` : out.note}`);
          yield out;
          if (!r.ok) stop = `skipped: N=${N} failed`;
          else if (r.medianMs > maxRepMs) stop = `skipped: N=${N} took ${(r.medianMs / 1000).toFixed(0)} s/rep`;
          else last = { N, ms: r.medianMs };
        }
      }
    }
  }
}

async function runInProcess(peer: PeerModule, c: PeerCase, timing?: TimingOptions): Promise<ChildResult> {
  let info: string | undefined;
  try {
    info = await peer.setup();
    const before = cpuSnapshot();
    const r = await benchChecked(peer, c, timing);
    return { ...r, peakRssMiB: peakRssMiB(), info, cpu: cpuShare(before, cpuSnapshot()) };
  } catch (e) {
    return { medianMs: NaN, gflops: NaN, ok: false, note: `error: ${shortError(e)}`, peakRssMiB: peakRssMiB(), info };
  }
}

function childEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), "child" + path.extname(here));
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Last short, non-empty stderr line (Emscripten echoes whole minified sources on crashes). */
function lastErrLine(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && l.length < 300 && !l.startsWith("at ") && l !== "^" && !/^Node\.js v/.test(l));
  return lines.at(-1) ?? "";
}

function runChild(peer: string, c: PeerCase, opts: RunPeersOptions): Promise<ChildResult> {
  const maxRss = opts.maxRssBytes ?? 12 * GiB;
  const timeoutMs = opts.childTimeoutMs ?? 600_000;
  const spec: ChildSpec = { peer, case: c, timing: opts.timing };
  const execArgv = process.execArgv.filter((a) => !a.startsWith("--inspect") && !a.startsWith("--test"));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...execArgv, childEntry(), JSON.stringify(spec)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let killedFor = "";
    let peakSeen = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000);
    });
    const kill = (why: string) => {
      if (killedFor) return;
      killedFor = why;
      child.kill("SIGKILL");
    };
    const poll = setInterval(() => {
      if (child.pid === undefined) return;
      const rss = rssBytes(child.pid);
      peakSeen = Math.max(peakSeen, rss);
      if (rss > maxRss) kill(`killed: RSS ${fmtGiB(rss)} passed the ${fmtGiB(maxRss)} cap`);
    }, 200);
    const timer = setTimeout(() => kill(`killed: no result after ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
    child.on("close", (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      const line = stdout.split("\n").find((l) => l.startsWith(RESULT_MARK));
      if (line) {
        try {
          resolve(reviveResult(JSON.parse(line.slice(RESULT_MARK.length)) as ChildResult));
          return;
        } catch {
          // fall through
        }
      }
      const why =
        killedFor ||
        (signal === "SIGKILL"
          ? "crashed: SIGKILL (out of memory?)"
          : `crashed: exit ${code ?? signal}${lastErrLine(stderr) ? ` — ${classifyCrash(lastErrLine(stderr))}` : ""}`);
      resolve({ medianMs: NaN, gflops: NaN, ok: false, note: why, peakRssMiB: peakSeen / 1024 ** 2 });
    });
  });
}

function classifyCrash(line: string): string {
  return /memory|alloc|heap/i.test(line) ? `out of memory: ${line}` : line;
}

// ---------------------------------------------------------------------------
// Table

function num(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "—";
}

export function markdownTable(rows: readonly PeerRow[]): string {
  const head = "| peer | form | N | causal | pass | median ms | GFLOP/s | peak RSS MiB | ok | note |";
  const sep = "|---|---|---:|---|---|---:|---:|---:|---|---|";
  const body = rows.map(
    (r) =>
      `| ${r.peer} | ${r.form} | ${r.N} | ${r.causal ? "yes" : "no"} | ${r.pass} | ${num(r.medianMs, 2)} | ${num(r.gflops, 2)} | ` +
      `${num(r.peakRssMiB, 0)} | ${r.ok ? "yes" : "no"} | ${(r.note ?? "").replace(/\|/g, "\\|")} |`,
  );
  return [head, sep, ...body].join("\n");
}

// ---------------------------------------------------------------------------
// CLI

function parseArgs(argv: readonly string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (v !== undefined) out[k] = v;
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith("--")) out[k] = argv[++i]!;
    else out[k] = true;
  }
  return out;
}

const list = (v: string | true | undefined) => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : undefined);

async function cli(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.help) {
    process.stdout.write(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(0, 14).join("\n") + "\n");
    return;
  }
  const opts: RunPeersOptions = {
    sizes: list(a.sizes)?.map(Number),
    modes: list(a.modes),
    peers: list(a.peers),
    forms: list(a.forms),
    isolate: !a["in-process"],
    maxBytes: typeof a["max-gib"] === "string" ? Number(a["max-gib"]) * GiB : undefined,
    maxRepMs: typeof a["max-rep-s"] === "string" ? Number(a["max-rep-s"]) * 1000 : undefined,
    timing: typeof a["budget-ms"] === "string" ? { budgetMs: Number(a["budget-ms"]) } : undefined,
    log: (l) => process.stderr.write(l + "\n"),
  };
  const rows: PeerRow[] = [];
  const infos = new Map<string, string>();
  const loadStart = os.loadavg()[0]!;
  for await (const r of runPeers(opts)) {
    rows.push(r);
    if (r.info && !infos.has(r.peer)) infos.set(r.peer, r.info);
    if (a.json) process.stdout.write(JSON.stringify(r) + "\n");
  }
  if (!a.json) {
    process.stdout.write(markdownTable(rows) + "\n\n");
    for (const [p, i] of infos) process.stdout.write(`- ${p}: ${i}\n`);
    const cores = os.availableParallelism();
    process.stdout.write(`- machine: ${cores} cores, 1-min load average ${loadStart.toFixed(2)} at start, ${os.loadavg()[0]!.toFixed(2)} at end\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  cli().then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`${shortError(e, 1000)}\n`);
      process.exit(1);
    },
  );
}
