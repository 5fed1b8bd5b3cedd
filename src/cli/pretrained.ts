/**
 * attend generate | heads | attn-map --model: commands over a Hugging Face model folder (config.json,
 * model.safetensors or shards, tokenizer.json), loaded with fromPretrained.
 */
import { existsSync, statSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { Tensor } from "../tensor/tensor.js";
import { fromPretrained } from "../pretrained/node.js";
import type { Pretrained } from "../pretrained/load.js";
import { SUPPORTED_MODEL_TYPES } from "../pretrained/config.js";
import { headScores, layerAttentionMaps } from "../pretrained/heads.js";
import { type TextGeneration, generateText } from "../pretrained/text.js";
import { formatRate } from "../train/progress.js";
import { heatmapPng } from "../viz/png.js";
import { heatmapSvg } from "../viz/svg.js";
import { UsageError, type Values, flag, int, num, optStr, parse, str, strs } from "./args.js";
import { type Io, emitJson, note, say } from "./io.js";
import { checkOutputPath } from "./output.js";

const FOLDER = "a Hugging Face model folder: config.json, model.safetensors (or shards with model.safetensors.index.json), tokenizer.json";

export const GENERATE_HELP = `attend generate --model DIR --prompt TEXT [--prompt TEXT …] [options]

Continue a prompt (or several, as one batch) with a Hugging Face checkpoint
(GPT-2, Llama, Mistral, Qwen2), printing the text as it is generated (KV cache).
Stops at the model's end-of-sequence token (eos_token_id of generation_config.json
when the folder has one, else of config.json).

Defaults come from the folder's generation_config.json as transformers reads it:
do_sample false or absent: greedy; do_sample true: sampling with its temperature,
top_k, top_p (else 1.0, 50, 1.0); max_new_tokens, else max_length (prompt + new
tokens), else 50 new tokens; repetition_penalty. The options below win over the
file. Settings of the file that attend does not implement (num_beams,
no_repeat_ngram_size, …) are named in a note on stderr.

Options:
  --model DIR            ${FOLDER}
  --prompt TEXT          the text to continue (tokenized with the folder's tokenizer.json);
                         repeat it for several prompts, run as one batch
  --ids 1,2,3            or token ids (for a folder without tokenizer.json); repeatable too
  --max-tokens N, -n N   new tokens at most (default: the file's, else 50)
  --temperature X        0 = the most likely token (greedy); > 0 samples (default: the file's, else 0)
  --top-k K              sample among the K most likely tokens only
  --top-p P              sample among the most likely tokens that add up to P (0 < P <= 1)
  --repetition-penalty R  > 1 makes tokens already in the text less likely, greedy or sampling
                         (transformers' repetition_penalty; 1 = off; default: the file's, else 1)
  --seed N               seed for sampling (default 0; each prompt of a batch draws from its own)
  --ignore-eos           do not stop at the end-of-sequence token (for timing)
  --json                 print one JSON object: { model, promptIds, tokens, text, finish, seconds, tokensPerSecond };
                         with several prompts an array of them (seconds and tokensPerSecond: the whole batch's)

One prompt streams as it is generated; several print when the batch is done,
each under a line "--- prompt i of n ---". On stderr: loading progress for
large weights, then the speed.`;

export const HEADS_HELP = `attend heads --model DIR [options]

Per-head scores of a Hugging Face checkpoint on a repeated random token
sequence r r (r: T tokens), for every layer and head:
  prev-token   mean weight on the previous position
  induction    mean weight from the second copy's position t to t - T + 1,
               the token after the previous occurrence (induction heads copy it)
  entropy      mean entropy of a row's weights, in nats (low = focused)
  first-token  mean weight on position 0 (attention sinks)

Options:
  --model DIR        ${FOLDER} (no tokenizer needed)
  --length T         length of the random half (default min(50, max positions / 2))
  --batch N          random sequences averaged over (default 4)
  --seed N           seed for the random tokens (default 0)
  --json             print one JSON object: { model, length, batch, seed, numLayers, numHeads, heads: [{ layer, head, previousToken, induction, entropy, firstToken }] }`;

export const MODEL_ATTN_MAP_HELP = `attend attn-map --model DIR --text TEXT [options]

A Hugging Face checkpoint's attention weights for a text, through the fused
path (only the heads drawn are computed): a grid of every layer x head, or all
heads of --layer, or one head.

Options:
  --model DIR        ${FOLDER}
  --text TEXT        the text (or --prompt; tokenized with tokenizer.json)
  --ids 1,2,3        or token ids (for a folder without tokenizer.json)
  --layer N          only this layer (default: every layer)
  --head N           only this head (of each layer drawn)
  --out FILE         .svg or .png (default attention.svg; its directory must exist)
  --json             print one JSON object: { out, format, layers, heads, tokens }`;

export const MODEL_OPTIONS = { model: { type: "string" }, ids: { type: "string" } } as const;

/** The folder, checked before anything is read: a missing folder or config.json is named in one line. */
function checkFolder(cmd: string, dir: string): void {
  if (!existsSync(dir)) throw new UsageError(`${cmd}: --model ${dir}: no such folder; expected ${FOLDER}`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`${cmd}: --model ${dir} is a file; expected ${FOLDER}`);
  if (!existsSync(join(dir, "config.json"))) {
    throw new UsageError(`${cmd}: --model ${dir} has no config.json; expected ${FOLDER} (model_type one of ${SUPPORTED_MODEL_TYPES.join(", ")})`);
  }
}

/** Weights this large get a progress line even when stderr is not a terminal. */
const LARGE = 256 * 2 ** 20;

const mb = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GB` : `${(bytes / 2 ** 20).toFixed(1)} MB`);

/**
 * fromPretrained with progress on stderr, as attend train shows it: on a terminal one line redrawn
 * per weights file read; elsewhere a plain line per file, and only when the files are large.
 */
export function loadFolder(cmd: string, dir: string, io: Io): Pretrained {
  checkFolder(cmd, dir);
  const tty = io.stderr.isTTY === true;
  const started = performance.now();
  let shown = false;
  let total = 0;
  const onRead = (name: string, bytes: number): void => {
    if (!name.endsWith(".safetensors")) return;
    total += bytes;
    if (!tty && bytes < LARGE) return;
    shown = true;
    const line = `loading ${name} (${mb(bytes)})…`;
    if (tty) io.stderr.write(`\r\x1b[2K${line}`);
    else note(io, line);
  };
  const loaded = fromPretrained(dir, { onRead });
  if (shown) {
    const done = `loaded ${dir}: ${mb(total)} of weights in ${((performance.now() - started) / 1000).toFixed(1)} s`;
    if (tty) io.stderr.write(`\r\x1b[2K${done}\n`);
    else note(io, done);
  }
  return loaded;
}

/** --ids' value: token ids in the vocabulary. */
function idList(cmd: string, p: Pretrained, idsText: string): number[] {
  const parts = idsText.split(/[\s,]+/).filter((s) => s !== "");
  const ids = parts.map(Number);
  if (ids.length === 0 || ids.some((x) => !Number.isInteger(x) || x < 0)) throw new UsageError(`${cmd}: --ids expects token ids like 1,2,3, got ${JSON.stringify(idsText)}`);
  const V = p.model.config.vocabSize;
  const bad = ids.find((x) => x >= V);
  if (bad !== undefined) throw new UsageError(`${cmd}: --ids holds ${bad}, outside the vocabulary 0..${V - 1}`);
  return ids;
}

/** A text option's value through the folder's tokenizer. */
function textIds(cmd: string, p: Pretrained, option: string, text: string): number[] {
  if (p.tokenizer === null) throw new UsageError(`${cmd}: the model folder has no tokenizer.json; give token ids with --ids 1,2,3`);
  const ids = p.tokenizer.encode(text).ids;
  if (ids.length === 0) throw new UsageError(`${cmd}: --${option} ${JSON.stringify(text)} has no tokens`);
  return ids;
}

/** --prompt / --text through the tokenizer, or --ids; exactly one of them. */
function promptIds(cmd: string, v: Values, p: Pretrained, textOption: string, alias?: string): { ids: number[]; fromText: boolean } {
  const a = optStr(v, textOption);
  const b = alias === undefined ? undefined : optStr(v, alias);
  if (a !== undefined && b !== undefined && a !== b) throw new UsageError(`${cmd}: --${textOption} and --${alias} are the same option; give one`);
  const text = a ?? b;
  const idsText = optStr(v, "ids");
  if (text !== undefined && idsText !== undefined) throw new UsageError(`${cmd}: give --${textOption} or --ids, not both`);
  if (idsText !== undefined) return { ids: idList(cmd, p, idsText), fromText: false };
  if (text === undefined) throw new UsageError(`${cmd}: --${textOption} is required (or --ids; see attend ${cmd} --help)`);
  return { ids: textIds(cmd, p, textOption, text), fromText: true };
}

/** Why a continuation ended, for the note on stderr ("" when it used up its tokens). */
function ending(r: TextGeneration, positions: number): string {
  if (r.finish === "stop") return "stopped at the end-of-sequence token";
  return r.promptIds.length + r.tokens.length >= positions ? `stopped at the model's last position (${positions})` : "";
}

export function generateCommand(args: string[], io: Io): number {
  const cmd = "generate";
  const v = parse(cmd, args, {
    ...MODEL_OPTIONS, ids: { type: "string", multiple: true }, prompt: { type: "string", multiple: true }, "max-tokens": { type: "string", short: "n" },
    temperature: { type: "string" }, "top-k": { type: "string" }, "top-p": { type: "string" }, seed: { type: "string" }, "ignore-eos": { type: "boolean" },
    "repetition-penalty": { type: "string" },
  });
  if (flag(v, "help")) {
    say(io, GENERATE_HELP);
    return 0;
  }
  // every option is checked before the weights are read; those not given are left to generation_config.json
  const dir = str(cmd, v, "model");
  const maxNewTokens = v["max-tokens"] === undefined ? undefined : int(cmd, v, "max-tokens", 50, 0);
  const temperature = v.temperature === undefined ? undefined : num(cmd, v, "temperature", 0, 0);
  const topK = v["top-k"] === undefined ? undefined : int(cmd, v, "top-k", 1);
  const topP = v["top-p"] === undefined ? undefined : num(cmd, v, "top-p", 1, 0, true);
  if (topP !== undefined && topP > 1) throw new UsageError(`${cmd}: --top-p expects a number in (0, 1], got ${topP}`);
  const repetitionPenalty = v["repetition-penalty"] === undefined ? undefined : num(cmd, v, "repetition-penalty", 1, 0, true);
  const seed = int(cmd, v, "seed", 0, 0);
  const texts = strs(v, "prompt");
  const idTexts = strs(v, "ids");
  if (texts.length === 0 && idTexts.length === 0) throw new UsageError(`${cmd}: --prompt is required (or --ids; see attend ${cmd} --help)`);
  if (texts.length > 0 && idTexts.length > 0) throw new UsageError(`${cmd}: give --prompt or --ids, not both`);
  const p = loadFolder(cmd, dir, io);
  const fromText = texts.length > 0;
  const prompts = fromText ? texts.map((t) => textIds(cmd, p, "prompt", t)) : idTexts.map((t) => idList(cmd, p, t));
  const N = prompts.length;
  const positions = p.model.config.maxSeqLen;
  prompts.forEach((ids, i) => {
    if (ids.length > positions) throw new UsageError(`${cmd}: the prompt${N > 1 ? ` ${i + 1}` : ""} has ${ids.length} tokens, more than the model's ${positions} positions`);
  });
  const gen = p.generation; // read once, by fromPretrained
  if (gen?.doSample && temperature === undefined) {
    const k = topK ?? gen.topK;
    note(io, `sampling, as generation_config.json sets do_sample: temperature ${gen.temperature}, top-k ${k ?? "none"}, top-p ${topP ?? gen.topP} (--temperature 0 for greedy)`);
  }
  const json = flag(v, "json");
  const stream = !json && N === 1; // several prompts print when the batch is done, not interleaved
  const shown = (i: number): string => (fromText ? texts[i] : prompts[i].join(" "));
  if (stream) io.stdout.write(shown(0));
  // decode speed: the tokens after the first step (which pays for the prompts) over the time they took
  let count = 0;
  let firstStep = 0;
  let firstEnd = 0;
  let last = 0;
  let prevRow = -1;
  const started = performance.now();
  const results = generateText(p, prompts, {
    maxNewTokens, temperature, topK, topP, seed, repetitionPenalty, ...(flag(v, "ignore-eos") ? { stopToken: null } : {}),
    onToken: (t, row) => {
      last = performance.now();
      if (count === firstStep && row > prevRow) [firstStep, firstEnd] = [firstStep + 1, last]; // still the first step (rows come in order)
      prevRow = row;
      count++;
      if (stream && !fromText) io.stdout.write(` ${t}`);
    },
    ...(stream && fromText ? { onText: (piece: string) => io.stdout.write(piece) } : {}),
  });
  const seconds = (performance.now() - started) / 1000;
  const tokensPerSecond = count > firstStep ? (count - firstStep) / ((last - firstEnd) / 1000) : null;
  const unsupported = [...new Set(results.flatMap((r) => r.unsupported))];
  if (unsupported.length > 0) note(io, `note: generation_config.json sets ${unsupported.join(", ")}, which attend does not implement; this output is without ${unsupported.length === 1 ? "it" : "them"}`);
  const entry = (r: TextGeneration) => ({ model: dir, promptIds: r.promptIds, tokens: r.tokens, text: fromText ? r.text : null, finish: r.finish, seconds, tokensPerSecond });
  const speed = `in ${seconds.toFixed(2)} s${tokensPerSecond === null ? "" : ` (${formatRate(tokensPerSecond)} tokens/s after the first${N > 1 ? " step" : ""})`}`;
  if (json) {
    emitJson(io, N === 1 ? entry(results[0]) : results.map(entry));
  } else if (N === 1) {
    say(io);
    const why = ending(results[0], positions);
    note(io, `${results[0].tokens.length} tokens ${speed}${why === "" ? "" : `, ${why}`}`);
  } else {
    results.forEach((r, i) => {
      say(io, `--- prompt ${i + 1} of ${N} ---`);
      say(io, shown(i) + (fromText ? r.text : r.tokens.map((t) => ` ${t}`).join("")));
    });
    const whys = results.map((r, i) => [i, ending(r, positions)] as const).filter(([, w]) => w !== "").map(([i, w]) => `prompt ${i + 1} ${w}`);
    note(io, `${N} prompts: ${results.map((r) => r.tokens.length).join(" + ")} tokens ${speed}${whys.length === 0 ? "" : `; ${whys.join(", ")}`}`);
  }
  return 0;
}

export function headsCommand(args: string[], io: Io): number {
  const cmd = "heads";
  const v = parse(cmd, args, { model: { type: "string" }, length: { type: "string" }, batch: { type: "string" }, seed: { type: "string" } });
  if (flag(v, "help")) {
    say(io, HEADS_HELP);
    return 0;
  }
  const dir = str(cmd, v, "model");
  const length = v.length === undefined ? undefined : int(cmd, v, "length", 1);
  const batch = int(cmd, v, "batch", 4);
  const seed = int(cmd, v, "seed", 0, 0);
  const p = loadFolder(cmd, dir, io);
  const maxT = Math.floor(p.model.config.maxSeqLen / 2);
  if (length !== undefined && length > maxT) throw new UsageError(`${cmd}: --length ${length} repeats to ${2 * length} positions; the model has ${p.model.config.maxSeqLen} (at most --length ${maxT})`);
  const s = headScores(p.model, { ...(length === undefined ? {} : { length }), batch, seed });
  const T = s.tokens[0].length;
  const heads: { layer: number; head: number; previousToken: number; induction: number; entropy: number; firstToken: number }[] = [];
  for (let layer = 0; layer < s.numLayers; layer++) {
    for (let head = 0; head < s.numHeads; head++) {
      heads.push({
        layer, head, previousToken: s.previousToken[layer][head], induction: s.induction[layer][head], entropy: s.entropy[layer][head], firstToken: s.firstToken[layer][head],
      });
    }
  }
  if (flag(v, "json")) {
    emitJson(io, { model: dir, length: T, batch, seed, numLayers: s.numLayers, numHeads: s.numHeads, heads });
    return 0;
  }
  say(io, `${dir}: ${s.numLayers} layers x ${s.numHeads} heads, on ${batch} random sequence(s) of ${T} tokens repeated (seed ${seed})`);
  say(io, "layer  head  prev-token  induction  entropy  first-token");
  for (const h of heads) {
    say(io, `${String(h.layer).padStart(5)}  ${String(h.head).padStart(4)}  ${h.previousToken.toFixed(3).padStart(10)}  ${h.induction.toFixed(3).padStart(9)}  ${h.entropy.toFixed(3).padStart(7)}  ${h.firstToken.toFixed(3).padStart(11)}`);
  }
  const top = (key: "previousToken" | "induction" | "firstToken"): string => {
    const best = heads.reduce((a, b) => (b[key] > a[key] ? b : a));
    return `L${best.layer}H${best.head} (${best[key].toFixed(3)})`;
  };
  say(io, `highest: prev-token ${top("previousToken")}, induction ${top("induction")}, first-token ${top("firstToken")}`);
  return 0;
}

/** A token as a label: its text, with spaces and line breaks made visible. */
function tokenLabel(p: Pretrained, id: number): string {
  if (p.tokenizer === null) return String(id);
  const t = p.tokenizer.decode([id]);
  return t === "" ? `<${id}>` : t.replace(/\n/g, "\\n").replace(/ /g, "_");
}

/** attend attn-map --model DIR: the Hugging Face side of attn-map (inspect.ts hands over when --model is given). */
export function modelAttnMapCommand(cmd: string, v: Values, io: Io): number {
  for (const o of ["checkpoint", "ckpt", "map"]) if (v[o] !== undefined) throw new UsageError(`${cmd}: --${o} is for attend's own checkpoints; with --model use --layer and --head`);
  const dir = str(cmd, v, "model");
  const out = str(cmd, v, "out", "attention.svg");
  const format = out.toLowerCase().endsWith(".png") ? ".png" : out.toLowerCase().endsWith(".svg") ? ".svg" : null;
  if (format === null) throw new UsageError(`${cmd}: --out must end in .svg or .png, got ${JSON.stringify(out)}`);
  checkOutputPath(cmd, "out", out, false);
  const layer = v.layer === undefined ? undefined : int(cmd, v, "layer", 0, 0);
  const head = v.head === undefined ? undefined : int(cmd, v, "head", 0, 0);
  if (optStr(v, "text") === undefined && optStr(v, "prompt") === undefined && optStr(v, "input") === undefined && optStr(v, "ids") === undefined) {
    throw new UsageError(`${cmd}: --text is required with --model (or --ids; see attend ${cmd} --help)`);
  }
  const p = loadFolder(cmd, dir, io);
  const { numLayers, numHeads, maxSeqLen } = p.model.config;
  if (layer !== undefined && layer >= numLayers) throw new UsageError(`${cmd}: --layer ${layer} is out of range; the model has ${numLayers} layers (0 to ${numLayers - 1})`);
  if (head !== undefined && head >= numHeads) throw new UsageError(`${cmd}: --head ${head} is out of range; the model has ${numHeads} heads (0 to ${numHeads - 1})`);
  if (optStr(v, "prompt") !== undefined && optStr(v, "input") !== undefined) throw new UsageError(`${cmd}: --prompt and --input are the same option; give one`);
  if (v.prompt !== undefined || v.input !== undefined) v = { ...v, text: optStr(v, "text") ?? optStr(v, "prompt") ?? optStr(v, "input") };
  const { ids } = promptIds(cmd, v, p, "text");
  if (ids.length > maxSeqLen) throw new UsageError(`${cmd}: the text has ${ids.length} tokens, more than the model's ${maxSeqLen} positions`);
  const layers = layer === undefined ? Array.from({ length: numLayers }, (_, l) => l) : [layer];
  const heads = head === undefined ? Array.from({ length: numHeads }, (_, h) => h) : [head];
  const maps = layerAttentionMaps(p.model, [ids], { layers, heads }); // per layer [1, heads, T, T]
  const T = ids.length;
  const data = new Float32Array(layers.length * heads.length * T * T);
  maps.forEach((m, i) => data.set(m.values, i * heads.length * T * T));
  const weights = new Tensor(data, [layers.length * heads.length, T, T], "float32"); // panels in layer-major order
  const labels = ids.map((id) => tokenLabel(p, id));
  const headLabels = layers.flatMap((l) => heads.map((h) => `layer ${l} head ${h}`));
  const opts = { rowLabels: labels, colLabels: labels, headLabels, columns: heads.length, title: `${basename(resolve(dir))}: ${layer === undefined ? "every layer" : `layer ${layer}`}, ${head === undefined ? "every head" : `head ${head}`}` };
  if (format === ".svg") writeFileSync(out, heatmapSvg(weights, opts));
  else writeFileSync(out, heatmapPng(weights, opts));
  if (flag(v, "json")) emitJson(io, { out, format: format.slice(1), layers, heads, tokens: labels, ids });
  else say(io, `wrote ${out}: ${layers.length} layer(s) x ${heads.length} head(s), ${T} x ${T} (${labels.join(" ")})`);
  return 0;
}
