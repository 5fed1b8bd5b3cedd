/**
 * The attend CLI, spawned as a user would run it (through tsx): help, --json results, checkpoints
 * through train / eval / sample / attn-map, Ctrl-C, and one-line errors with exit code 2.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { parseXml } from "./xml.js";
import { deserializeTrainingCheckpoint, serializeTrainingCheckpoint } from "../src/train/checkpointFormat.js";
import { assertUsageError } from "./cli-helpers.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(join(tmpdir(), "attend-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** How long one command may run: only a hung one reaches it, however busy the machine (as the browser tests' PATIENCE_MS). */
const PATIENCE_MS = 10 * 60_000;

function attend(...args: string[]): Run {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, encoding: "utf8", timeout: PATIENCE_MS });
  assert.equal(r.signal, null, `attend ${args.join(" ")} was stopped by ${r.signal}${r.error ? ` (${r.error.message})` : ""}:\n${r.stderr}`);
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
      // the issue's spellings: --ckpt, -n, --top-k, --input, --head
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
      attendAsync("train", "--task", "add", "--model", "block", ...small, "--out", join(dir, "add.safetensors")),
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
      [["train", "--task", "copy", "--steps", "ten"], /--steps expects a positive integer, got ten$/],
      [["lookup-vs-soft", "--colour"], /lookup-vs-soft: unknown option --colour; the options of attend lookup-vs-soft: --pairs, --steps, --seed, --lr, --batch-size, --json, --help$/],
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

describe("arguments: what each option expects, the command's options, the closest one", () => {
  test("a negative number is a value, and the error says what the option expects", async () => {
    const cases: [string[], RegExp][] = [
      [["train", "--task", "copy", "--steps", "-5"], /^attend: train: --steps expects a positive integer, got -5$/],
      [["train", "--task", "copy", "--lr", "-0.1"], /^attend: train: --lr expects a number > 0, got -0\.1$/],
      [["sample", "--checkpoint", "x.safetensors", "-n", "-3"], /^attend: sample: --count expects a positive integer, got -3$/],
      [["train", "--task", "copy", "--steps"], /^attend: train: --steps expects a value, got nothing/],
      [["train", "--task", "--json"], /^attend: train: --task expects a value, got the option --json/],
      [["train", "--task", "copy", "--json=yes"], /^attend: train: --json takes no value, got "yes"$/],
      [["train", "reverse"], /^attend: train: unexpected argument "reverse"; options come as --name value/],
    ];
    const runs = await Promise.all(cases.map(([args]) => attendAsync(...args)));
    runs.forEach((r, i) => assertUsageError(r, cases[i][1]));
  });

  test("an unknown option lists the command's options and suggests the closest", async () => {
    const trainOptions = "--task, --model, --steps, --batch-size, --lr, --seed, --d-model, --heads, --layers, --eval-every, --validation-size, --out, --resume, --min-length, --max-length, --digits, --pairs, --json, --help";
    const cases: [string[], RegExp][] = [
      [["train", "--task", "copy", "--bogus"], new RegExp(`^attend: train: unknown option --bogus; the options of attend train: ${trainOptions}$`)],
      [["train", "--task", "copy", "--step", "3"], /^attend: train: unknown option --step \(did you mean --steps\?\); the options of attend train: --task/],
      [["train", "--task", "copy", "--d_model", "8"], /unknown option --d_model \(did you mean --d-model\?\)/],
      [["eval", "--chekpoint", "x"], /^attend: eval: unknown option --chekpoint \(did you mean --checkpoint\?\); the options of attend eval: --checkpoint, --ckpt, --batch-size, --json, --help$/],
      [["sample", "-x"], /^attend: sample: unknown option -x; the options of attend sample: --checkpoint/],
    ];
    const runs = await Promise.all(cases.map(([args]) => attendAsync(...args)));
    runs.forEach((r, i) => assertUsageError(r, cases[i][1]));
  });

  test("--model block is the one-block model; --model tiny says what to use", async () => {
    const r = await attendAsync("train", "--task", "copy", "--model", "tiny");
    assertUsageError(r, /--model tiny is now called --model block \(one attention block\); for the 2-layer GPT that the library calls "tiny" \(GPT_PRESETS\.tiny\) use --model gpt$/);
    const help = await attendAsync("train", "--help");
    assert.match(help.stdout, /--model KIND +block \(one attention block\), gpt/);
    assert.match(help.stdout, /^ {2}copy +length 16 +block 32\/4h/m);
    assert.ok(!/\btiny\b(?! \(GPT_PRESETS)/.test(help.stdout.replace("GPT_PRESETS.tiny", "")), "no other tiny in the help");
  });
});

describe("output paths are checked before any work", () => {
  test("train --out where no file can be made fails at once (exit 2), before training", async () => {
    const [devNull, isDir] = await Promise.all([
      attendAsync("train", "--task", "copy", "--steps", "5", "--out", "/dev/null/x.safetensors"),
      attendAsync("train", "--task", "copy", "--steps", "5", "--out", dir),
    ]);
    assertUsageError(devNull, /^attend: train: --out \/dev\/null\/x\.safetensors: \/dev\/null is not a directory$/);
    assertUsageError(isDir, /^attend: train: --out .*: is a directory; expected a file name$/);
  });

  test("attn-map --out in a directory that does not exist fails at once (exit 2); a new directory for train is made", async () => {
    const missing = join(dir, "no", "dir", "m.svg");
    const r = await attendAsync("attn-map", "--checkpoint", join(dir, "never-read.safetensors"), "--prompt", "12", "--out", missing);
    assertUsageError(r, /^attend: attn-map: --out .*no\/dir\/m\.svg: the directory .*no\/dir does not exist$/);
    assert.ok(!existsSync(join(dir, "no")));
    const fresh = join(dir, "made", "here");
    const t = await attendAsync("train", "--task", "copy", "--steps", "1", "--d-model", "8", "--heads", "2", "--batch-size", "2", "--validation-size", "4", "--max-length", "2", "--out", join(fresh, "c.safetensors"), "--json");
    assert.equal(t.code, 0, t.stderr);
    assert.deepEqual(readdirSync(fresh), ["c.safetensors"], "no probe file left behind");
  });
});

describe("hostile or damaged training checkpoints: exit 2 naming the key, nothing allocated", () => {
  let good: string;
  let gpt: string;
  before(async () => {
    good = join(dir, "hostile-base.safetensors");
    gpt = join(dir, "hostile-gpt.safetensors");
    const small = ["--steps", "1", "--d-model", "8", "--heads", "2", "--batch-size", "2", "--validation-size", "4", "--max-length", "3", "--json"];
    const runs = await Promise.all([
      attendAsync("train", "--task", "reverse", ...small, "--out", good),
      attendAsync("train", "--task", "reverse", "--model", "gpt", "--layers", "2", ...small, "--out", gpt),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
  });

  /** the checkpoint at `from` with its run config changed */
  function edited(from: string, name: string, change: (config: Record<string, any>) => void): string {
    const ckpt = deserializeTrainingCheckpoint(readFileSync(from));
    change(ckpt.config);
    const path = join(dir, name);
    writeFileSync(path, serializeTrainingCheckpoint(ckpt));
    return path;
  }

  // (validationSize 1e9 and minLength 1e8, the issue's, are checkRunConfig's tests in train.test.ts: unchecked, they hang or abort)
  test("sizes past the limits or one off the tensors, and the issue's dModel 100000", async () => {
    const cases: [string, RegExp][] = [
      [edited(good, "v1.safetensors", (c) => (c.validationSize = 20001)), /v1\.safetensors: config validationSize is 20001; expected an integer from 1 to 20000$/],
      [edited(good, "m1.safetensors", (c) => (c.taskOptions.minLength = 513)), /config taskOptions\.minLength is 513; expected an integer from 1 to 512$/],
      [edited(good, "d.safetensors", (c) => (c.modelConfig.dModel = 100000)), /d\.safetensors: modelConfig\.dModel is 100000 but model\.tok has shape \[14, 8\]; expected modelConfig\.dModel 8/],
      [edited(good, "d1.safetensors", (c) => (c.modelConfig.dModel = 16)), /modelConfig\.dModel is 16 but model\.tok has shape \[14, 8\]; expected modelConfig\.dModel 8/],
      [edited(good, "l.safetensors", (c) => (c.modelConfig.maxLength = 1e9)), /modelConfig\.maxLength is 1000000000 but model\.pos has shape \[32, 8\]/],
      [edited(good, "b.safetensors", (c) => (c.batchSize = 1e9)), /config batchSize is 1000000000; expected an integer from 1 to 1024$/],
      [edited(good, "t.safetensors", (c) => (c.task = "multiply")), /config task is "multiply"; expected one of copy, reverse, sort, addition, recall, names/],
      [edited(gpt, "g.safetensors", (c) => (c.modelConfig.config.numLayers = 3)), /g\.safetensors: modelConfig\.config numLayers is 3 but the checkpoint holds 2 layers \(blocks\.0, blocks\.1\); expected numLayers 2$/],
      [edited(gpt, "g1.safetensors", (c) => (c.modelConfig.config.dFF = 4096)), /modelConfig\.config dFF is 4096 but blocks\.0\.mlp\.fc1\.weight has shape \[32, 8\]; expected dFF 32/],
    ];
    const runs = await Promise.all(cases.map(([path]) => attendAsync("eval", "--checkpoint", path)));
    runs.forEach((r, i) => assertUsageError(r, cases[i][1]));
    // the same checks guard --resume (before the output is written or training starts)
    assertUsageError(await attendAsync("train", "--resume", cases[2][0], "--out", join(dir, "resumed.safetensors")), cases[2][1]);
    assert.ok(!existsSync(join(dir, "resumed.safetensors")));
  });

  test("a checkpoint whose config names the model by its former name (tiny) still loads", async () => {
    const old = edited(good, "old-name.safetensors", (c) => (c.model = "tiny"));
    const r = await attendAsync("eval", "--checkpoint", old, "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lastJson(r).model, "block");
  });
});

describe("a prompt longer than the model was trained on", () => {
  test("is answered with a one-line warning on stderr, or in the JSON as warnings", async () => {
    const ckpt = join(dir, "short.safetensors");
    const t = await attendAsync("train", "--task", "reverse", "--steps", "1", "--d-model", "8", "--heads", "2", "--batch-size", "2", "--validation-size", "4", "--max-length", "4", "--out", ckpt, "--json");
    assert.equal(t.code, 0, t.stderr);
    const [plain, json, ok, map] = await Promise.all([
      attendAsync("sample", "--checkpoint", ckpt, "--prompt", "1234567"),
      attendAsync("sample", "--checkpoint", ckpt, "--prompt", "1234567", "--json"),
      attendAsync("sample", "--checkpoint", ckpt, "--prompt", "1234", "--json"),
      attendAsync("attn-map", "--checkpoint", ckpt, "--prompt", "12345", "--out", join(dir, "long.svg"), "--json"),
    ]);
    const warning = 'the prompt "1234567" is 7 symbols long, longer than the model was trained on (reverse: at most 4); its answer is likely wrong';
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stderr, `attend: warning: ${warning}\n`);
    assert.match(plain.stdout, /^1234567 -> /);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stderr, "");
    assert.deepEqual(lastJson(json).warnings, [warning]);
    assert.deepEqual(lastJson(ok).warnings, []);
    assert.equal(ok.stderr, "");
    assert.equal(map.code, 0, map.stderr);
    assert.deepEqual(lastJson(map).warnings, ['the prompt "12345" is 5 symbols long, longer than the model was trained on (reverse: at most 4); its answer is likely wrong']);
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
