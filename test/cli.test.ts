/**
 * The attend CLI, spawned as a user would run it (through tsx): help, --json results, checkpoints
 * through train / eval / sample / attn-map, Ctrl-C, and one-line errors with exit code 2.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { parseXml } from "./xml.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(join(tmpdir(), "attend-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function attend(...args: string[]): Run {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lastJson(r: Run): Record<string, any> {
  const lines = r.stdout.trimEnd().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** The same, without blocking: independent runs go in parallel. */
function attendAsync(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A user error: exit code 2, one line on stderr naming the problem, no stack trace. */
function assertUsageError(r: Run, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^attend: /);
  assert.match(lines[0], pattern);
  assert.ok(!/\n\s+at /.test(r.stderr));
}

describe("attend --help", () => {
  test("lists every command; each command has its own help", async () => {
    const [r, t, h] = await Promise.all([attendAsync("--help"), attendAsync("train", "--help"), attendAsync("help", "attn-map")]);
    assert.equal(r.code, 0);
    for (const c of ["lookup-vs-soft", "train", "eval", "sample", "attn-map"]) assert.match(r.stdout, new RegExp(`^  ${c} +\\S`, "m"));
    assert.match(r.stdout, /--json/);
    assert.equal(t.code, 0);
    assert.match(t.stdout, /^attend train --task NAME/);
    assert.match(t.stdout, /Tasks: copy, reverse, sort, addition, recall, names/);
    // each task's defaults and the target they reach, one line per task
    for (const task of ["copy", "reverse", "sort", "addition", "recall", "names"]) assert.match(t.stdout, new RegExp(`^  ${task} +\\S.* x \\d+, lr `, "m"));
    assert.match(t.stdout, /^ {2}reverse +length 16 /m);
    assert.equal(h.stdout.split("\n")[0], "attend attn-map --checkpoint PATH --prompt TEXT [options]");
  });
});

describe("attend lookup-vs-soft --json", () => {
  test("lookup: q/k gradient exactly 0; soft: > 0 and well above chance", () => {
    const r = attend("lookup-vs-soft", "--json");
    assert.equal(r.code, 0, r.stderr);
    const res = lastJson(r);
    assert.equal(res.lookup.qkGradNorm, 0);
    assert.ok(res.soft.qkGradNorm > 0);
    assert.ok(res.soft.accuracy > res.chance);
    assert.ok(res.soft.accuracy >= 0.95, `soft accuracy ${res.soft.accuracy}`);
    assert.ok(typeof res.lookup.accuracy === "number");
    assert.equal(r.stdout.trimEnd().split("\n").length, 1, "--json prints only the JSON line");
  });
});

describe("train, eval, sample, attn-map through a checkpoint", () => {
  const ckpt = join(dir, "reverse.safetensors");
  let trained: Run;
  before(() => {
    trained = attend("train", "--task", "reverse", "--steps", "20", "--d-model", "16", "--heads", "2", "--batch-size", "8", "--max-length", "4", "--out", ckpt, "--json");
  });

  test("train --json ends with the results object; progress goes to stderr as plain lines", () => {
    assert.equal(trained.code, 0, trained.stderr);
    const res = lastJson(trained);
    assert.deepEqual(Object.keys(res).slice(0, 8), ["task", "steps", "seconds", "valLoss", "valAccuracy", "seqAccuracy", "tokensPerSecond", "checkpoint"]);
    assert.equal(res.task, "reverse");
    assert.equal(res.steps, 20);
    assert.equal(res.checkpoint, ckpt);
    assert.ok(existsSync(ckpt));
    assert.match(trained.stderr, /^step {2}1\/20 {2}loss/m);
    assert.ok(!trained.stderr.includes("\r"));
  });

  test("eval, sample and attn-map --json", async () => {
    const svgPath = join(dir, "map.svg");
    const pngPath = join(dir, "map.png");
    const onePath = join(dir, "head1.svg");
    const [e, sm, mp, png, sk, one] = await Promise.all([
      attendAsync("eval", "--checkpoint", ckpt, "--json"),
      attendAsync("sample", "--checkpoint", ckpt, "--prompt", "1234", "--json"),
      attendAsync("attn-map", "--checkpoint", ckpt, "--prompt", "12", "--out", svgPath, "--json"),
      attendAsync("attn-map", "--checkpoint", ckpt, "--prompt", "12", "--out", pngPath),
      // the spellings: --ckpt, -n, --top-k, --input, --head
      attendAsync("sample", "--ckpt", ckpt, "-n", "3", "--temperature", "1", "--top-k", "2", "--json"),
      attendAsync("attn-map", "--ckpt", ckpt, "--input", "12", "--head", "1", "--out", onePath, "--json"),
    ]);
    const ev = lastJson(e);
    assert.equal(ev.task, "reverse");
    assert.equal(ev.step, 20);
    assert.equal(ev.valAccuracy, lastJson(trained).valAccuracy); // the same model on the same data
    const s = lastJson(sm);
    assert.equal(s.samples.length, 1);
    assert.equal(s.samples[0].expected, "4321");
    assert.match(s.samples[0].output, /^[0-9]*$/);
    const m = lastJson(mp);
    assert.equal(m.heads, 2);
    assert.deepEqual(m.maps, ["attn"]);
    assert.deepEqual(m.rows.slice(0, 4), ["<s>", "1", "2", "<sep>"]);
    assert.deepEqual(m.cols, m.rows);
    const svg = readFileSync(svgPath, "utf8");
    parseXml(svg);
    assert.equal(svg.match(/class="cell"/g)!.length, 2 * m.rows.length * m.cols.length);
    assert.equal(png.code, 0, png.stderr);
    assert.ok(decode(readFileSync(pngPath)).width > 100);
    assert.equal(sk.code, 0, sk.stderr);
    assert.equal(lastJson(sk).samples.length, 3);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(lastJson(one).head, 1);
    const oneSvg = readFileSync(onePath, "utf8");
    assert.equal(oneSvg.match(/class="cell"/g)!.length, m.rows.length * m.cols.length, "one panel");
    assert.match(oneSvg, />head 1</);
  });

  test("--task add is addition; a length given alone pairs with the generator's default", async () => {
    const small = ["--steps", "2", "--d-model", "16", "--heads", "2", "--batch-size", "4", "--validation-size", "8", "--json"];
    const [add, rev] = await Promise.all([
      attendAsync("train", "--task", "add", "--model", "tiny", ...small, "--out", join(dir, "add.safetensors")),
      attendAsync("train", "--task", "reverse", "--min-length", "20", ...small, "--out", join(dir, "rev20.safetensors")),
    ]);
    assert.equal(add.code, 0, add.stderr);
    assert.equal(lastJson(add).task, "addition");
    assert.equal(rev.code, 0, rev.stderr);
    const ev = lastJson(attend("sample", "--checkpoint", join(dir, "rev20.safetensors"), "-n", "1", "--json"));
    assert.equal(ev.samples[0].prompt.length, 20); // --min-length 20 alone: lengths 20 to 20
  });

  test("bad arguments: one line on stderr, exit code 2", async () => {
    const corrupt = join(dir, "corrupt.safetensors");
    writeFileSync(corrupt, readFileSync(ckpt).subarray(0, 200)); // a checkpoint cut short
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /unknown command "frobnicate"/],
      [["train", "--task", "multiply"], /unknown task "multiply" \(tasks: copy, reverse, sort, addition, recall, names\)/],
      [["train"], /--task is required/],
      [["train", "--task", "copy", "--steps", "ten"], /--steps must be an integer >= 1, got "ten"/],
      [["lookup-vs-soft", "--colour"], /Unknown option '--colour'/],
      [["eval", "--checkpoint", join(dir, "missing.safetensors")], /no checkpoint at .*missing\.safetensors/],
      [["eval", "--checkpoint", corrupt], /corrupt\.safetensors is not a valid checkpoint/],
      [["sample", "--checkpoint", ckpt, "--prompt", "12x4"], /character "x" at position 2 of "12x4" is not in the vocabulary/],
      [["attn-map", "--checkpoint", ckpt, "--prompt", "12", "--out", join(dir, "map.jpg")], /--out must end in \.svg or \.png/],
      [["attn-map", "--checkpoint", ckpt, "--prompt", "12", "--head", "2"], /--head 2 is out of range; attn has 2 heads \(0 to 1\)/],
      [["sample", "--checkpoint", ckpt, "--ckpt", corrupt], /--checkpoint and --ckpt are the same option; give one/],
    ];
    const runs = await Promise.all(cases.map(([args]) => attendAsync(...args)));
    runs.forEach((r, i) => assertUsageError(r, cases[i][1]));
  });
});

describe("Ctrl-C", () => {
  test("SIGINT stops training, saves a checkpoint atomically and exits with 130", async () => {
    const ckpt = join(dir, "interrupted.safetensors");
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "train", "--task", "copy", "--steps", "100000", "--d-model", "16", "--heads", "2", "--batch-size", "4", "--max-length", "3", "--out", ckpt, "--json"], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      if (/^step /m.test(stderr) && !child.killed) child.kill("SIGINT"); // training has started
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    assert.equal(code, 130, stderr);
    const res = JSON.parse(stdout.trimEnd().split("\n").pop()!);
    assert.equal(res.interrupted, true);
    assert.ok(res.steps >= 1 && res.steps < 100000);
    assert.match(stderr, /interrupted at step \d+ of 100000; checkpoint saved to/);
    const ev = lastJson(attend("eval", "--checkpoint", ckpt, "--json"));
    assert.equal(ev.step, res.steps);
  });
});
