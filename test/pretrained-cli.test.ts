/**
 * attend generate | heads | attn-map --model on the Hugging Face fixture folders: the CLI's tokens
 * equal the library's greedy generation (and the twin's argmax), heads --json equals headScores,
 * the SVG grid has a panel per layer × head with the weights of attentionMaps, and broken folders
 * are one line on stderr with exit code 2. Most runs call runCli in this process (as main.ts does);
 * one spawns the real command.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { parseXml, type XmlElement } from "./xml.js";
import { WORDS, wordTokenizer } from "./hf-helpers.js";
import { runCli } from "../src/cli/run.js";
import { attentionMaps, fromPretrained, generate, generateText, headScores } from "../src/index.js";
import { assertUsageError } from "./cli-helpers.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const HF = join(ROOT, "test", "fixtures", "hf");
const dir = mkdtempSync(join(tmpdir(), "attend-hf-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of a fixture folder with the word-level tokenizer.json added. */
function withTokenizer(name: string): string {
  const to = join(dir, `${name}-tok`);
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(join(HF, name))) if (f !== "expected.json") copyFileSync(join(HF, name, f), join(to, f));
  writeFileSync(join(to, "tokenizer.json"), wordTokenizer());
  return to;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function attend(...args: string[]): Promise<Run> {
  return attendOn(false, ...args);
}

/** With tty, stderr claims to be a terminal (as process.stderr on one). */
async function attendOn(tty: boolean, ...args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s), isTTY: tty }, signal: new AbortController().signal };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

const lastJson = (r: Run): Record<string, any> => JSON.parse(r.stdout.trimEnd().split("\n").at(-1)!);


describe("attend generate --model", () => {
  test("--ids --json: the tokens of the library's greedy generate, the first one the twin's argmax", async () => {
    const e = JSON.parse(readFileSync(join(HF, "llama", "expected.json"), "utf8")) as { ids: number[][]; shape: number[]; logits: number[] };
    const prompt = e.ids[1];
    const r = await attend("generate", "--model", join(HF, "llama"), "--ids", prompt.join(","), "-n", "12", "--json");
    assert.equal(r.code, 0, r.stderr);
    const out = lastJson(r);
    const { model } = fromPretrained(join(HF, "llama"));
    const lib = generate(model, [prompt], { maxNewTokens: 12, stopToken: 2 })[0].slice(prompt.length);
    assert.deepEqual(out.tokens, lib);
    assert.deepEqual(out.promptIds, prompt);
    const [, T, V] = e.shape;
    const last = e.logits.slice((2 * T - 1) * V, 2 * T * V); // row 1, its last position
    assert.equal(out.tokens[0], last.indexOf(Math.max(...last)));
    assert.equal(out.text, null);
    assert.equal(out.finish, "stop"); // at token 2, LlamaConfig's default eos_token_id
    assert.ok(out.tokensPerSecond > 0);
  });

  test("--prompt: the text streams to stdout after the prompt; sampling options reach generateText", async () => {
    const folder = withTokenizer("gpt2");
    const r = await attend("generate", "--model", folder, "--prompt", "the cat sat on", "-n", "7");
    assert.equal(r.code, 0, r.stderr);
    const p = fromPretrained(folder);
    const lib = generateText(p, "the cat sat on", { maxNewTokens: 7 });
    assert.equal(r.stdout, `the cat sat on${lib.text}\n`);
    assert.equal(lib.text, lib.tokens.map((t) => ` ${WORDS[t]}`).join(""));
    assert.match(r.stderr, /^7 tokens in [\d.]+ s \([\d.k]+ tokens\/s after the first\)\n$/);
    const opts = ["--temperature", "1.2", "--top-k", "9", "--top-p", "0.8", "--seed", "4"];
    const s = lastJson(await attend("generate", "--model", folder, "--prompt", "the cat", "-n", "9", ...opts, "--json"));
    assert.deepEqual(s.tokens, generateText(p, "the cat", { maxNewTokens: 9, temperature: 1.2, topK: 9, topP: 0.8, seed: 4 }).tokens);
    assert.equal(s.text, generateText(p, "the cat", { maxNewTokens: 9, temperature: 1.2, topK: 9, topP: 0.8, seed: 4 }).text);
  });

  test("several --prompt: one batch, each continuation under its label; --json an array; --ids repeat too", async () => {
    const folder = withTokenizer("gpt2");
    const prompts = ["the cat sat on", "a big red"];
    const r = await attend("generate", "--model", folder, "--prompt", prompts[0], "--prompt", prompts[1], "-n", "5", "--ignore-eos");
    assert.equal(r.code, 0, r.stderr);
    const p = fromPretrained(folder);
    const lib = generateText(p, prompts, { maxNewTokens: 5, stopToken: null });
    prompts.forEach((q, i) => assert.deepEqual(lib[i].tokens, generateText(p, q, { maxNewTokens: 5, stopToken: null }).tokens));
    assert.equal(r.stdout, `--- prompt 1 of 2 ---\nthe cat sat on${lib[0].text}\n--- prompt 2 of 2 ---\na big red${lib[1].text}\n`);
    assert.match(r.stderr, /^2 prompts: 5 \+ 5 tokens in [\d.]+ s \([\d.k]+ tokens\/s after the first step\)\n$/);
    const j = await attend("generate", "--model", folder, "--prompt", prompts[0], "--prompt", prompts[1], "-n", "5", "--ignore-eos", "--json", "--temperature", "1", "--seed", "3");
    assert.equal(j.code, 0, j.stderr);
    const arr = lastJson(j) as unknown as Record<string, any>[];
    assert.ok(Array.isArray(arr) && arr.length === 2);
    const sampled = generateText(p, prompts, { maxNewTokens: 5, stopToken: null, temperature: 1, seed: 3 });
    arr.forEach((e, i) => {
      assert.deepEqual(Object.keys(e), ["model", "promptIds", "tokens", "text", "finish", "seconds", "tokensPerSecond"]);
      assert.deepEqual([e.promptIds, e.tokens, e.text, e.finish], [sampled[i].promptIds, sampled[i].tokens, sampled[i].text, "length"]);
    });
    const ids = await attend("generate", "--model", join(HF, "llama"), "--ids", "1,7,3", "--ids", "9", "-n", "6");
    assert.equal(ids.code, 0, ids.stderr);
    const { model } = fromPretrained(join(HF, "llama"));
    const alone = [[1, 7, 3], [9]].map((q) => generate(model, [q], { maxNewTokens: 6, stopToken: 2 })[0]);
    assert.equal(ids.stdout, `--- prompt 1 of 2 ---\n${alone[0].join(" ")}\n--- prompt 2 of 2 ---\n${alone[1].join(" ")}\n`);
    assertUsageError(await attend("generate", "--model", folder, "--prompt", "a", "--ids", "1"), /generate: give --prompt or --ids, not both/);
    assertUsageError(await attend("generate", "--model", join(HF, "llama"), "--ids", "1", "--ids", "1,40"), /--ids holds 40, outside the vocabulary 0\.\.39/);
  });

  test("generation_config.json: its sampling and length defaults, the options winning, a note for what attend does not implement", async () => {
    const folder = withTokenizer("qwen2");
    writeFileSync(join(folder, "generation_config.json"), JSON.stringify({ do_sample: true, temperature: 1.3, top_k: 9, top_p: 0.9, max_new_tokens: 6, repetition_penalty: 1.05, num_beams: 2 }));
    const p = fromPretrained(folder);
    const r = await attend("generate", "--model", folder, "--prompt", "the cat", "--ignore-eos", "--seed", "4", "--json");
    assert.equal(r.code, 0, r.stderr);
    const explicit = generateText({ ...p, generationConfig: null }, "the cat", { maxNewTokens: 6, stopToken: null, temperature: 1.3, topK: 9, topP: 0.9, seed: 4, repetitionPenalty: 1.05 });
    assert.deepEqual(lastJson(r).tokens, explicit.tokens);
    assert.equal(r.stderr, "sampling, as generation_config.json sets do_sample: temperature 1.3, top-k 9, top-p 0.9 (--temperature 0 for greedy)\n" +
      "note: generation_config.json sets num_beams = 2, which attend does not implement; this output is without it\n");
    const greedy = await attend("generate", "--model", folder, "--prompt", "the cat", "--ignore-eos", "--temperature", "0", "-n", "8", "--json");
    assert.deepEqual(lastJson(greedy).tokens, generateText({ ...p, generationConfig: null }, "the cat", { maxNewTokens: 8, stopToken: null, repetitionPenalty: 1.05 }).tokens); // the file's repetition_penalty acts on greedy decoding too
    assert.doesNotMatch(greedy.stderr, /sampling/);
    // --repetition-penalty wins over the file's 1.05 (greedy here, where the penalty still acts)
    const pen = await attend("generate", "--model", folder, "--prompt", "the cat", "--ignore-eos", "--temperature", "0", "-n", "8", "--repetition-penalty", "1.5", "--json");
    assert.deepEqual(lastJson(pen).tokens, generateText({ ...p, generationConfig: null }, "the cat", { maxNewTokens: 8, stopToken: null, repetitionPenalty: 1.5 }).tokens);
    assertUsageError(await attend("generate", "--model", folder, "--prompt", "a", "--repetition-penalty", "0"), /generate: --repetition-penalty expects a number > 0, got 0/);
    writeFileSync(join(folder, "generation_config.json"), JSON.stringify({ do_sample: true, top_p: 2 }));
    assertUsageError(await attend("generate", "--model", folder, "--prompt", "the cat"), /fromPretrained: generation_config\.json top_p = 2; expected a number in \(0, 1\]/);
  });

  test("bad folders and options: one line, exit code 2", async () => {
    const noConfig = join(dir, "empty");
    mkdirSync(noConfig, { recursive: true });
    const noWeights = join(dir, "config-only");
    mkdirSync(noWeights, { recursive: true });
    copyFileSync(join(HF, "gpt2", "config.json"), join(noWeights, "config.json"));
    const bert = join(dir, "bert");
    mkdirSync(bert, { recursive: true });
    writeFileSync(join(bert, "config.json"), JSON.stringify({ model_type: "bert" }));
    copyFileSync(join(HF, "gpt2", "model.safetensors"), join(bert, "model.safetensors"));
    const runs = await Promise.all([
      attend("generate", "--model", join(dir, "nope"), "--prompt", "hi"),
      attend("generate", "--model", noConfig, "--prompt", "hi"),
      attend("generate", "--model", noWeights, "--ids", "1"),
      attend("generate", "--model", bert, "--ids", "1"),
      attend("generate", "--model", join(HF, "gpt2"), "--prompt", "hi"),
      attend("generate", "--model", join(HF, "gpt2"), "--ids", "1,40"),
      attend("generate", "--model", join(HF, "gpt2"), "--ids", "1", "--top-p", "1.5"),
      attend("generate", "--model", join(HF, "gpt2")),
    ]);
    assertUsageError(runs[0], /generate: --model .*nope: no such folder; expected a Hugging Face model folder/);
    assertUsageError(runs[1], /has no config\.json/);
    assertUsageError(runs[2], /neither model\.safetensors nor model\.safetensors\.index\.json/);
    assertUsageError(runs[3], /model_type "bert" is not supported; supported: gpt2, llama, mistral, qwen2/);
    assertUsageError(runs[4], /no tokenizer\.json; give token ids with --ids/);
    assertUsageError(runs[5], /--ids holds 40, outside the vocabulary 0\.\.39/);
    assertUsageError(runs[6], /--top-p expects a number in \(0, 1\], got 1\.5/);
    assertUsageError(runs[7], /--prompt is required/);
  });

  test("the real command: tokens on stdout, exit 0; a missing folder exits 2", () => {
    const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, encoding: "utf8" });
    const ok = run("generate", "--model", join(HF, "mistral"), "--ids", "1,7,3", "-n", "5");
    assert.equal(ok.status, 0, ok.stderr);
    const lib = generate(fromPretrained(join(HF, "mistral")).model, [[1, 7, 3]], { maxNewTokens: 5, stopToken: 2 })[0];
    assert.equal(ok.stdout, `${lib.join(" ")}\n`);
    const bad = run("generate", "--model", join(dir, "missing"), "--ids", "1");
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^attend: generate: --model .*missing: no such folder/);
  });
});

describe("loading progress", () => {
  test("on a terminal: each weights file as it is read, redrawn in place, then the total; elsewhere nothing for small files", async () => {
    const tty = await attendOn(true, "heads", "--model", join(HF, "mistral"), "--length", "2", "--batch", "1");
    assert.equal(tty.code, 0, tty.stderr);
    const shown = tty.stderr.split("\r\x1b[2K").filter((s) => s !== "");
    assert.match(shown[0], /^loading model-00001-of-00002\.safetensors \(0\.1 MB\)…$/);
    assert.match(shown[1], /^loading model-00002-of-00002\.safetensors \(0\.0 MB\)…$/);
    assert.match(shown[2], /^loaded .*mistral: 0\.1 MB of weights in [\d.]+ s\n$/);
    const pipe = await attendOn(false, "heads", "--model", join(HF, "mistral"), "--length", "2", "--batch", "1");
    assert.equal(pipe.stderr, "");
    assert.equal(pipe.stdout, tty.stdout);
  });
});

describe("attend heads --model", () => {
  test("--json equals headScores; the table has a row per layer × head", async () => {
    const r = await attend("heads", "--model", join(HF, "qwen2"), "--length", "6", "--batch", "2", "--seed", "3", "--json");
    assert.equal(r.code, 0, r.stderr);
    const out = lastJson(r);
    const s = headScores(fromPretrained(join(HF, "qwen2")).model, { length: 6, batch: 2, seed: 3 });
    assert.equal(out.heads.length, 8);
    for (const h of out.heads) {
      for (const k of ["previousToken", "induction", "entropy", "firstToken"] as const) assert.equal(h[k], s[k][h.layer][h.head], `${k} L${h.layer}H${h.head}`);
    }
    const table = await attend("heads", "--model", join(HF, "qwen2"), "--length", "6", "--batch", "2", "--seed", "3");
    const rows = table.stdout.split("\n").filter((l) => /^\s+\d+\s+\d+\s/.test(l));
    assert.equal(rows.length, 8);
    const [layer, head, prev] = rows[5].trim().split(/\s+/).map(Number);
    assert.equal(prev, Number(s.previousToken[layer][head].toFixed(3)));
    assertUsageError(await attend("heads", "--model", join(HF, "qwen2"), "--length", "40"), /--length 40 repeats to 80 positions; the model has 64 \(at most --length 32\)/);
  });
});

function all(e: XmlElement, name: string, out: XmlElement[] = []): XmlElement[] {
  if (e.name === name) out.push(e);
  for (const c of e.children) all(c, name, out);
  return out;
}

describe("attend attn-map --model", () => {
  test("no --layer, no --head: a grid of every layer × head, each panel T × T", async () => {
    const folder = withTokenizer("llama");
    const out = join(dir, "grid.svg");
    const r = await attend("attn-map", "--model", folder, "--text", "the cat sat on the mat", "--out", out, "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lastJson(r).tokens, ["the", "cat", "sat", "on", "the", "mat"]);
    const svg = parseXml(readFileSync(out, "utf8"));
    const panels = all(svg, "g").filter((g) => g.attrs.class === "head");
    assert.equal(panels.length, 2 * 4);
    for (const p of panels) assert.equal(all(p, "rect").filter((c) => c.attrs.class === "cell").length, 36);
    assert.deepEqual(panels.map((p) => all(p, "text").find((t) => t.attrs.class === "head-title")!.text), [0, 1].flatMap((l) => [0, 1, 2, 3].map((h) => `layer ${l} head ${h}`)));
  });

  test("--layer 1 --head 2: one panel whose cells hold attentionMaps' weights; --layer alone: its heads; PNG too", async () => {
    const folder = withTokenizer("mistral");
    const svgPath = join(dir, "one.svg");
    const r = await attend("attn-map", "--model", folder, "--text", "a dog ran to the big red house", "--layer", "1", "--head", "2", "--out", svgPath);
    assert.equal(r.code, 0, r.stderr);
    const p = fromPretrained(folder);
    const ids = p.tokenizer!.encode("a dog ran to the big red house").ids;
    const w = attentionMaps(p.model, [ids], { layer: 1, heads: [2] });
    const cells = all(parseXml(readFileSync(svgPath, "utf8")), "rect").filter((c) => c.attrs.class === "cell");
    assert.equal(cells.length, 64);
    cells.forEach((c, i) => {
      const shown = Number(c.children[0].text.split(": ").at(-1));
      assert.ok(Math.abs(shown - w.values[i]) <= 5e-3 * Math.max(1e-3, w.values[i]) + 1e-12, `cell ${i}: ${shown} vs ${w.values[i]}`);
    });
    const layer = await attend("attn-map", "--model", folder, "--text", "a dog", "--layer", "0", "--out", join(dir, "layer.svg"));
    assert.equal(layer.code, 0, layer.stderr);
    assert.equal(all(parseXml(readFileSync(join(dir, "layer.svg"), "utf8")), "g").filter((g) => g.attrs.class === "head").length, 4);
    const png = await attend("attn-map", "--model", folder, "--text", "a dog ran", "--out", join(dir, "grid.png"));
    assert.equal(png.code, 0, png.stderr);
    const img = decode(readFileSync(join(dir, "grid.png")));
    assert.ok(img.width > 4 * 3 * 24 && img.height > 2 * 3 * 24);
    assertUsageError(await attend("attn-map", "--model", folder, "--text", "a", "--layer", "2"), /--layer 2 is out of range; the model has 2 layers/);
    assertUsageError(await attend("attn-map", "--model", folder, "--text", "a", "--map", "x"), /--map is for attend's own checkpoints/);
    assertUsageError(await attend("attn-map", "--text", "a"), /--text goes with --model DIR/);
  });
});
