/** attend train: train a model on a task, with progress, validation, checkpoints and Ctrl-C. */
import { TASK_NAMES, type TaskOptions } from "../data/tasks.js";
import { loadTrainingCheckpoint } from "../train/checkpoint.js";
import { TASK_DEFAULTS, type TaskDefaults, taskDefaults } from "../train/defaults.js";
import { trainModel } from "../train/loop.js";
import {
  DATA_NAMES, RUN_LIMITS, type StoredRunConfig, checkRunConfig, checkRunState, currentModelKind, makeData, makeModel, modelKinds,
} from "../train/registry.js";
import { type OptionSpec, UsageError, type Values, flag, int, num, optStr, parse, str } from "./args.js";
import { type Io, emitJson, note, pct, say } from "./io.js";
import { checkOutputPath } from "./output.js";

export const TRAIN_OPTIONS: OptionSpec = {
  task: { type: "string" },
  model: { type: "string" },
  steps: { type: "string" },
  "batch-size": { type: "string" },
  lr: { type: "string" },
  seed: { type: "string" },
  "d-model": { type: "string" },
  heads: { type: "string" },
  layers: { type: "string" },
  "eval-every": { type: "string" },
  "validation-size": { type: "string" },
  out: { type: "string" },
  resume: { type: "string" },
  "min-length": { type: "string" },
  "max-length": { type: "string" },
  digits: { type: "string" },
  pairs: { type: "string" },
};

/**
 * Held-out examples of the validation at intervals (the final validation uses them all): a look at
 * progress that costs a quarter of the full 256, labelled "(64 of 256 examples)".
 */
const INTERVAL_VALIDATION = 64;

/** Other names a task answers to on the command line. */
const TASK_ALIASES: Record<string, string> = { add: "addition" };

function describeDefaults(d: TaskDefaults): string {
  const o = d.taskOptions;
  const data = o.minLength !== undefined ? (o.minLength === o.maxLength ? `length ${o.minLength}` : `lengths ${o.minLength}-${o.maxLength}`)
    : o.digits !== undefined ? `${o.digits} digits` : o.pairs !== undefined ? `${o.pairs} pairs` : "";
  const m = d.modelConfig as { dModel?: number; heads?: number; layers?: number };
  const model = `${d.model}${m.layers !== undefined ? ` ${m.layers}x` : " "}${m.dModel ?? ""}/${m.heads ?? ""}h`;
  return `${data.padEnd(12)}${model.padEnd(13)}${`${d.steps} x ${d.batchSize}, lr ${d.lr}`.padEnd(23)}${d.target}`;
}

const R = TASK_DEFAULTS.recall.taskOptions;

export const TRAIN_HELP = `attend train --task NAME [options]

Train a model on a task, showing progress (a live bar on a terminal), a
validation line at intervals, and saving a checkpoint at the end. Ctrl-C stops
after the current step and saves a checkpoint (exit code 130); --resume
continues it exactly. The same seed gives the same run, bit for bit.

Tasks: ${DATA_NAMES.join(", ")}   (add = addition)

Each task has its own defaults, chosen so that the plain command reaches the
target on held-out data in well under 3 minutes on a 2-core machine:
  task      data        model        steps x batch, lr      target
${Object.entries(TASK_DEFAULTS).map(([name, d]) => `  ${name.padEnd(10)}${describeDefaults(d)}`).join("\n")}
(model: kind, layers x width / heads; block is one attention block)
recall ("a3c7e1?c": ${R.pairs} key-value pairs, "?", a key) answers with the key,
then its value: "c7". An exact answer (sequence accuracy) needs the right value;
the echoed key lets a 2-layer model find the induction circuit (find the
earlier "c", copy what follows) in a few hundred steps instead of thousands.
Held-out examples are the task itself (--pairs pairs, one question each).
Training examples ask ${R.trainingQueries} of their keys each ("a3c7e1?c" -> "c7?a<sep>a3?e<sep>e1",
the given "?a<sep>" not scored), and a curriculum starts them at ${R.trainingMinPairs}-${R.trainingMinPairs! + 1} pairs,
widening to ${R.trainingMinPairs}-${R.pairs} by step ${R.curriculumSteps}. The model is the GPT, Llama-style
(rotary positions, RMSNorm, no biases), with one head of width 32.

Options:
  --task NAME            what to learn (required unless --resume)
  --model KIND           block (one attention block), gpt (decoder-only transformer,
                         2 layers by default: the library's GPT_PRESETS.tiny, for
                         recall its Llama-style variant) or encdec (encoder-decoder);
                         default per task (above);
                         registered: ${modelKinds().join(", ")}
  --steps N              total training steps (default per task)
  --batch-size N         examples per step (default per task)
  --lr X                 peak AdamW learning rate (default per task; warm-up, then cosine decay)
  --seed N               seed for the weights and the data (default 0)
  --d-model N            model width, up to ${RUN_LIMITS.dModel} (default per task, or the model's own)
  --heads N              attention heads, up to ${RUN_LIMITS.heads} (default per task, or the model's own)
  --layers N             layers, up to ${RUN_LIMITS.layers} (gpt, encdec; default per task, or 2)
  --eval-every N         validate every N steps (default steps / 5) on the first
                         ${INTERVAL_VALIDATION} held-out examples; the final validation uses all
  --validation-size N    held-out examples, up to ${RUN_LIMITS.validationSize} (default 256; names: 10% of the names)
  --out PATH             checkpoint file (default checkpoints/TASK.safetensors; checked
                         before training starts; missing directories are made)
  --resume PATH          continue from a checkpoint (its task, model and seeds)
  --min-length N, --max-length N   sequence lengths up to ${RUN_LIMITS.sequenceLength} (copy, reverse, sort);
                         one given alone pairs with the task's own default (1 or 8), widened to fit
  --digits N             operand digits (addition)
  --pairs N              key-value pairs (recall)
  --json                 print one JSON object of results as the last line`;

/**
 * The task's options: its defaults, then what the command line gives. Lengths go as a pair: with
 * one bound given, the other is the generator's own default (1 to 8), moved to make a valid range.
 */
function taskOptions(cmd: string, v: Values, defaults: TaskOptions): TaskOptions {
  const o: TaskOptions = { ...defaults };
  const min = v["min-length"] === undefined ? undefined : int(cmd, v, "min-length", 1, 1, RUN_LIMITS.sequenceLength);
  const max = v["max-length"] === undefined ? undefined : int(cmd, v, "max-length", 8, 1, RUN_LIMITS.sequenceLength);
  if (min !== undefined || max !== undefined) {
    o.minLength = min ?? 1;
    o.maxLength = max ?? Math.max(8, min!);
  }
  if (v.digits !== undefined) o.digits = int(cmd, v, "digits", 3, 1, 15);
  if (v.pairs !== undefined) o.pairs = int(cmd, v, "pairs", 8, 1, RUN_LIMITS.alphabet);
  return o;
}

export async function trainCommand(args: string[], io: Io): Promise<number> {
  const cmd = "train";
  const v = parse(cmd, args, TRAIN_OPTIONS);
  if (flag(v, "help")) {
    say(io, TRAIN_HELP);
    return 0;
  }
  const resumePath = optStr(v, "resume");
  const resume = resumePath === undefined ? undefined : loadTrainingCheckpoint(resumePath);
  let config: StoredRunConfig;
  if (resume) {
    config = checkRunConfig(resume.config, resumePath);
    const given = optStr(v, "task");
    const task = given === undefined ? undefined : (TASK_ALIASES[given] ?? given);
    if (task !== undefined && task !== config.task) throw new UsageError(`${cmd}: --task ${task} differs from the checkpoint's task ${config.task}`);
  } else {
    const given = str(cmd, v, "task");
    const task = TASK_ALIASES[given] ?? given;
    if (!(DATA_NAMES as readonly string[]).includes(task)) throw new UsageError(`${cmd}: unknown task ${JSON.stringify(given)} (tasks: ${DATA_NAMES.join(", ")})`);
    const defaults = taskDefaults(task);
    const model = str(cmd, v, "model", defaults.model);
    if (model !== currentModelKind(model)) {
      throw new UsageError(`${cmd}: --model ${model} is now called --model ${currentModelKind(model)} (one attention block); for the 2-layer GPT that the library calls "tiny" (GPT_PRESETS.tiny) use --model gpt`);
    }
    if (!modelKinds().includes(model)) throw new UsageError(`${cmd}: unknown model ${JSON.stringify(model)} (models: ${modelKinds().join(", ")})`);
    const seed = int(cmd, v, "seed", 0, 0);
    config = {
      task,
      taskOptions: (TASK_NAMES as readonly string[]).includes(task) ? taskOptions(cmd, v, defaults.taskOptions) : {},
      dataSeed: seed,
      validationSize: int(cmd, v, "validation-size", 256, 1, RUN_LIMITS.validationSize),
      model,
      modelConfig: {
        ...(model === defaults.model ? defaults.modelConfig : {}),
        ...(v["d-model"] !== undefined ? { dModel: int(cmd, v, "d-model", 64, 1, RUN_LIMITS.dModel) } : {}),
        ...(v.heads !== undefined ? { heads: int(cmd, v, "heads", 4, 1, RUN_LIMITS.heads) } : {}),
        ...(v.layers !== undefined ? { layers: int(cmd, v, "layers", 2, 1, RUN_LIMITS.layers) } : {}),
        seed,
      },
      seed,
      steps: defaults.steps,
      batchSize: defaults.batchSize,
      lr: defaults.lr,
    };
  }
  const steps = int(cmd, v, "steps", config.steps ?? 300);
  const batchSize = int(cmd, v, "batch-size", config.batchSize ?? 32, 1, RUN_LIMITS.batchSize);
  const lr = num(cmd, v, "lr", config.lr ?? 3e-3, 0, true);
  const evalEvery = v["eval-every"] === undefined ? undefined : int(cmd, v, "eval-every", 100, 0);
  const out = str(cmd, v, "out", resumePath ?? `checkpoints/${config.task}.safetensors`);
  checkOutputPath(cmd, "out", out, true); // before any work: a run must not be lost at the end
  const data = makeData(config);
  if (resume) checkRunState(config, data, resume.model, resumePath);
  const model = makeModel(config, data);
  // store the model's resolved sizes (defaults filled in), so the checkpoint does not depend on them
  const fullConfig = { ...config, modelConfig: model.toConfig?.() ?? config.modelConfig, steps, batchSize, lr };
  const json = flag(v, "json");
  if (!json) say(io, `training ${config.model} on ${data.name}: ${steps} steps of ${batchSize}, lr ${lr}, seed ${config.dataSeed ?? 0}${resume ? `, resuming at step ${resume.step}` : ""}`);
  const r = await trainModel(model, data, {
    steps,
    batchSize,
    lr,
    seed: config.dataSeed ?? 0,
    evalEvery,
    evalExamples: INTERVAL_VALIDATION,
    checkpointPath: out,
    config: fullConfig,
    resume,
    signal: io.signal,
    progress: io.stderr,
  });
  if (r.interrupted) note(io, `interrupted at step ${r.steps} of ${steps}; checkpoint saved to ${r.checkpoint} (continue with: attend train --resume ${r.checkpoint})`);
  const result = {
    task: r.task, steps: r.steps, seconds: r.seconds, valLoss: r.valLoss, valAccuracy: r.valAccuracy, seqAccuracy: r.seqAccuracy,
    tokensPerSecond: r.tokensPerSecond, checkpoint: r.checkpoint, interrupted: r.interrupted,
  };
  if (json) emitJson(io, result);
  else {
    say(io, `${r.task}: ${r.steps} steps in ${r.seconds.toFixed(1)} s (${Math.round(r.tokensPerSecond)} tokens/s)`);
    say(io, `validation: loss ${r.valLoss.toFixed(4)}, token accuracy ${pct(r.valAccuracy)}, sequence accuracy ${pct(r.seqAccuracy)}`);
    say(io, `checkpoint: ${r.checkpoint}`);
  }
  return r.interrupted ? 130 : 0;
}
