/** attend eval | sample | attn-map: commands that load a checkpoint and look at the model. */
import { writeFileSync } from "node:fs";
import { extname } from "node:path";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { slice } from "../ops/shape.js";
import { makeTask } from "../data/tasks.js";
import { loadTrainingCheckpoint } from "../train/checkpoint.js";
import { evaluateModel } from "../train/evaluate.js";
import { type RestoredRun, restoreRun } from "../train/registry.js";
import type { SourceContext } from "../train/model.js";
import { answer, sampleTokens } from "../train/sample.js";
import { heatmapPng } from "../viz/png.js";
import { heatmapSvg } from "../viz/svg.js";
import { type OptionSpec, UsageError, type Values, flag, int, num, optStr, parse, str } from "./args.js";
import { type Io, emitJson, note, pct, say } from "./io.js";
import { checkOutputPath } from "./output.js";
import { MODEL_ATTN_MAP_HELP, MODEL_OPTIONS, modelAttnMapCommand } from "./pretrained.js";

export const EVAL_HELP = `attend eval --checkpoint PATH [options]

Loss and accuracy of a trained model on its task's validation set.

Options:
  --checkpoint PATH   a checkpoint written by attend train (required; or --ckpt)
  --batch-size N      examples per forward pass (default 64)
  --json              print one JSON object: { task, step, valLoss, valAccuracy, seqAccuracy, examples }`;

export const SAMPLE_HELP = `attend sample --checkpoint PATH [options]

Let a trained model answer. For a task, --prompt is the input (e.g. "3141" for
reverse, "57+68" for addition, "a3c7?c" for recall) and the right answer is
shown beside the model's; without --prompt, validation examples are used. For
names, --prompt is the start of a name (may be empty) and --count names are made.

Options:
  --checkpoint PATH   a checkpoint written by attend train (required; or --ckpt)
  --prompt TEXT       the input (task) or the start of a name (names)
  --count N, -n N     how many samples (default 5)
  --temperature X     0 = most likely token (default: 0 for tasks, 0.8 for names)
  --top-k K           sample among the K most likely tokens only (default all)
  --max-tokens N      most new tokens (default 32)
  --seed N            seed for sampling (default 0)
  --json              print one JSON object: { task, samples: [{ prompt, output, expected, correct }], warnings }

A prompt longer than the sequences the model was trained on is answered, with a
warning on stderr (in --json mode, in "warnings"): the answer is likely wrong.`;

export const ATTN_MAP_HELP = `attend attn-map --checkpoint PATH --prompt TEXT [options]

Draw the attention weights of a trained model as a heat map, one panel per
head: the prompt and the model's answer on both axes (queries down, keys
across). Encoder-decoder models have encoder, decoder and cross-attention maps.

Options:
  --checkpoint PATH   a checkpoint written by attend train (required; or --ckpt)
  --prompt TEXT       the input, as for attend sample (required; or --input)
  --out FILE          .svg or .png (default attention.svg; its directory must exist)
  --layer N           which attention module, counting from 0 (default 0)
  --map NAME          or pick it by name (e.g. blocks.1.self_attn, decoder.layers.0.cross_attn)
  --head N            draw only this head, counting from 0 (default: every head)
  --json              print one JSON object: { out, format, map, maps, heads, rows, cols, warnings }

${MODEL_ATTN_MAP_HELP}`;

const CHECKPOINT: OptionSpec = { checkpoint: { type: "string" }, ckpt: { type: "string" } };

/** An option that also goes by a second name (--ckpt for --checkpoint, --input for --prompt). */
function either(cmd: string, v: Values, name: string, alias: string): string | undefined {
  const a = optStr(v, name);
  const b = optStr(v, alias);
  if (a !== undefined && b !== undefined && a !== b) throw new UsageError(`${cmd}: --${name} and --${alias} are the same option; give one`);
  return a ?? b;
}

function restore(cmd: string, v: Values): RestoredRun & { step: number } {
  const path = either(cmd, v, "checkpoint", "ckpt");
  if (path === undefined) throw new UsageError(`${cmd}: --checkpoint is required (see attend ${cmd} --help)`);
  const ckpt = loadTrainingCheckpoint(path);
  return { ...restoreRun(ckpt, path), step: ckpt.step };
}

export function evalCommand(args: string[], io: Io): number {
  const cmd = "eval";
  const v = parse(cmd, args, { ...CHECKPOINT, "batch-size": { type: "string" } });
  if (flag(v, "help")) {
    say(io, EVAL_HELP);
    return 0;
  }
  const batchSize = int(cmd, v, "batch-size", 64);
  const run = restore(cmd, v);
  const ev = evaluateModel(run.model, run.data.validation, run.data.vocab, batchSize);
  const result = { task: run.data.name, model: run.config.model, step: run.step, valLoss: ev.loss, valAccuracy: ev.tokenAccuracy, seqAccuracy: ev.sequenceAccuracy, examples: ev.examples };
  if (flag(v, "json")) emitJson(io, result);
  else {
    say(io, `${result.task} (${result.model}, step ${result.step}), ${result.examples} validation examples:`);
    say(io, `  loss ${ev.loss.toFixed(4)}, token accuracy ${pct(ev.tokenAccuracy)}, sequence accuracy ${pct(ev.sequenceAccuracy)}`);
  }
  return 0;
}

interface Sample {
  prompt: string;
  output: string;
  expected?: string;
  correct?: boolean;
}

function taskOf(run: RestoredRun) {
  return run.config.task === "names" ? null : makeTask(run.config.task, run.config.taskOptions ?? {});
}

/** A warning when a task's prompt is longer than any source the model was trained on (its answer is then a guess). */
function lengthWarning(task: ReturnType<typeof taskOf>, prompt: string, length: number): string[] {
  if (task === null || length <= task.maxSourceLength) return [];
  return [`the prompt ${JSON.stringify(prompt)} is ${length} symbols long, longer than the model was trained on (${task.name}: at most ${task.maxSourceLength}); its answer is likely wrong`];
}

/** Warnings go to stderr, one line each, or into the --json object. */
function warn(io: Io, v: Values, warnings: string[]): void {
  if (!flag(v, "json")) for (const w of warnings) note(io, `attend: warning: ${w}`);
}

export function sampleCommand(args: string[], io: Io): number {
  const cmd = "sample";
  const v = parse(cmd, args, {
    ...CHECKPOINT, prompt: { type: "string" }, count: { type: "string", short: "n" }, temperature: { type: "string" }, "top-k": { type: "string" },
    "max-tokens": { type: "string" }, seed: { type: "string" },
  });
  if (flag(v, "help")) {
    say(io, SAMPLE_HELP);
    return 0;
  }
  // every option is checked before the checkpoint is read
  const count = int(cmd, v, "count", 5);
  const prompt = optStr(v, "prompt");
  const maxTokens = int(cmd, v, "max-tokens", 32);
  const temperature = v.temperature === undefined ? undefined : num(cmd, v, "temperature", 0, 0);
  const topK = v["top-k"] === undefined ? undefined : int(cmd, v, "top-k", 1);
  const generator = new Generator(int(cmd, v, "seed", 0, 0));
  const run = restore(cmd, v);
  const { vocab } = run.data;
  const task = taskOf(run);
  const opts = { maxTokens, temperature: temperature ?? (task ? 0 : 0.8), topK, generator };
  const samples: Sample[] = [];
  const warnings: string[] = [];
  if (task) {
    const sources = prompt !== undefined ? [vocab.encode(prompt)] : run.data.validation.slice(0, count).map((e) => e.source);
    if (prompt !== undefined) warnings.push(...lengthWarning(task, prompt, sources[0].length));
    for (const source of sources) {
      let expected: string | undefined;
      try {
        expected = vocab.decode(task.solve(source));
      } catch (e) {
        throw new UsageError(`${cmd}: ${(e as Error).message}`);
      }
      const output = vocab.decode(answer(run.model, source, vocab, opts));
      samples.push({ prompt: vocab.decode(source), output, expected, correct: output === expected });
    }
  } else {
    const start = vocab.encode((prompt ?? "").toLowerCase()); // the names are lower-cased
    for (let i = 0; i < count; i++) {
      const out = sampleTokens(run.model, [vocab.bos, ...start], vocab, opts);
      samples.push({ prompt: prompt ?? "", output: vocab.decode([...start, ...out]) });
    }
  }
  warn(io, v, warnings);
  if (flag(v, "json")) emitJson(io, { task: run.data.name, samples, warnings });
  else {
    for (const s of samples) {
      if (s.expected === undefined) say(io, s.output);
      else say(io, `${s.prompt} -> ${s.output}${s.correct ? "  (right)" : `  (expected ${s.expected})`}`);
    }
  }
  return 0;
}

export function attnMapCommand(args: string[], io: Io): number {
  const cmd = "attn-map";
  const v = parse(cmd, args, {
    ...CHECKPOINT, ...MODEL_OPTIONS, prompt: { type: "string" }, input: { type: "string" }, text: { type: "string" }, out: { type: "string" }, map: { type: "string" },
    layer: { type: "string" }, head: { type: "string" },
  });
  if (flag(v, "help")) {
    say(io, ATTN_MAP_HELP);
    return 0;
  }
  if (v.model !== undefined) return modelAttnMapCommand(cmd, v, io); // a Hugging Face folder
  if (v.text !== undefined || v.ids !== undefined) throw new UsageError(`${cmd}: --${v.text !== undefined ? "text" : "ids"} goes with --model DIR (a Hugging Face folder); a checkpoint takes --prompt`);
  const out = str(cmd, v, "out", "attention.svg");
  const format = extname(out).toLowerCase();
  if (format !== ".svg" && format !== ".png") throw new UsageError(`${cmd}: --out must end in .svg or .png, got ${JSON.stringify(out)}`);
  const promptText = either(cmd, v, "prompt", "input");
  if (promptText === undefined) throw new UsageError(`${cmd}: --prompt is required (see attend ${cmd} --help)`);
  checkOutputPath(cmd, "out", out, false);
  const layer = int(cmd, v, "layer", 0, 0);
  const head = v.head === undefined ? undefined : int(cmd, v, "head", 0, 0);
  const run = restore(cmd, v);
  const { model, data } = run;
  const { vocab } = data;
  if (!model.attentionMaps) throw new UsageError(`${cmd}: model ${run.config.model} does not expose its attention weights`);
  const task = taskOf(run);
  const source = vocab.encode(task ? promptText : promptText.toLowerCase());
  const warnings = lengthWarning(task, promptText, source.length);
  // what the model sees: its prompt, then its own (greedy) answer
  let tokens: number[];
  let context: SourceContext | undefined;
  let generated: number[];
  if (model.layout === "encoder-decoder") {
    const src = [...source, vocab.eos];
    generated = sampleTokens(model, [vocab.bos], vocab, { maxTokens: 32 }, src);
    tokens = [vocab.bos, ...generated];
    context = { source: new Tensor(Int32Array.from(src), [1, src.length], "int32"), sourcePadding: new Tensor(new Uint8Array(src.length), [1, src.length], "bool") };
  } else {
    const prefix = task ? [vocab.bos, ...source, vocab.sep] : [vocab.bos, ...source];
    generated = sampleTokens(model, prefix, vocab, { maxTokens: 32 });
    tokens = [...prefix, ...generated];
  }
  const maps = model.attentionMaps(new Tensor(Int32Array.from(tokens), [1, tokens.length], "int32"), context);
  const names = maps.map((m) => m.name);
  const wanted = optStr(v, "map");
  let index: number;
  if (wanted !== undefined) {
    index = names.indexOf(wanted);
    if (index < 0) throw new UsageError(`${cmd}: no attention map named ${JSON.stringify(wanted)} (maps: ${names.join(", ")})`);
  } else {
    index = layer;
    if (index >= maps.length) throw new UsageError(`${cmd}: --layer ${index} is out of range; the model has ${maps.length} attention map(s): ${names.join(", ")}`);
  }
  const view = maps[index];
  const H = view.weights.shape[0];
  if (head !== undefined && head >= H) throw new UsageError(`${cmd}: --head ${head} is out of range; ${view.name} has ${H} heads (0 to ${H - 1})`);
  const weights = head === undefined ? view.weights : slice(view.weights, 0, head, head + 1); // [H, L, S] -> [1, L, S]
  const labelsOf = (side: "tokens" | "source"): string[] => (side === "source" ? [...source, vocab.eos] : tokens).map((id) => vocab.label(id));
  const rowLabels = labelsOf(view.rows);
  const colLabels = labelsOf(view.cols);
  const opts = {
    rowLabels, colLabels, title: `${data.name}, ${view.name}: "${promptText}" -> "${vocab.decode(generated)}"`, ...(head === undefined ? {} : { headLabels: [`head ${head}`] }),
  };
  if (format === ".svg") writeFileSync(out, heatmapSvg(weights, opts));
  else writeFileSync(out, heatmapPng(weights, opts));
  const result = { out, format: format.slice(1), map: view.name, maps: names, heads: H, ...(head === undefined ? {} : { head }), rows: rowLabels, cols: colLabels, warnings };
  warn(io, v, warnings);
  if (flag(v, "json")) emitJson(io, result);
  else say(io, `wrote ${out}: ${view.name}, ${head === undefined ? `${H} heads` : `head ${head} of ${H}`}, ${rowLabels.length} x ${colLabels.length} (${rowLabels.join(" ")}); maps: ${names.join(", ")}`);
  return 0;
}
