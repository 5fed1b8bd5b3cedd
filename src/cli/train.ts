/** attend train: train a model on a task, with progress, validation, checkpoints and Ctrl-C. */
import { TASK_NAMES } from "../data/tasks.js";
import { loadTrainingCheckpoint } from "../train/checkpoint.js";
import { trainModel } from "../train/loop.js";
import { DATA_NAMES, type RunConfig, makeData, makeModel, modelKinds } from "../train/registry.js";
import { type OptionSpec, UsageError, flag, int, num, optStr, parse, str } from "./args.js";
import { type Io, emitJson, note, pct, say } from "./io.js";

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

export const TRAIN_HELP = `attend train --task NAME [options]

Train a model on a task, showing progress (a live bar on a terminal), a
validation line at intervals, and saving a checkpoint at the end. Ctrl-C stops
after the current step and saves a checkpoint (exit code 130); --resume
continues it exactly. The same seed gives the same run, bit for bit.

Tasks: ${DATA_NAMES.join(", ")}

Options:
  --task NAME            what to learn (required unless --resume)
  --model KIND           tiny (one attention block, the default), gpt (decoder-only
                         transformer) or encdec (encoder-decoder); registered: ${modelKinds().join(", ")}
  --steps N              total training steps (default 300)
  --batch-size N         examples per step (default 32)
  --lr X                 peak AdamW learning rate (default 0.003; warm-up, then cosine decay)
  --seed N               seed for the weights and the data (default 0)
  --d-model N            model width (default 32)
  --heads N              attention heads (default 4)
  --layers N             layers (gpt, encdec; default 2)
  --eval-every N         validate every N steps (default steps / 5)
  --validation-size N    held-out examples (default 256; names: 10% of the names)
  --out PATH             checkpoint file (default checkpoints/TASK.safetensors)
  --resume PATH          continue from a checkpoint (its task, model and seeds)
  --min-length N, --max-length N   sequence lengths (copy, reverse, sort)
  --digits N             operand digits (addition)
  --pairs N              key-value pairs (recall)
  --json                 print one JSON object of results as the last line`;

function taskOptions(cmd: string, v: Record<string, string | boolean | undefined>): Record<string, number> {
  const o: Record<string, number> = {};
  if (v["min-length"] !== undefined) o.minLength = int(cmd, v, "min-length", 1);
  if (v["max-length"] !== undefined) o.maxLength = int(cmd, v, "max-length", 8);
  if (v.digits !== undefined) o.digits = int(cmd, v, "digits", 3, 1, 15);
  if (v.pairs !== undefined) o.pairs = int(cmd, v, "pairs", 8, 1);
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
  let config: RunConfig & { steps?: number; batchSize?: number; lr?: number; seed?: number };
  if (resume) {
    config = resume.config as unknown as typeof config;
    if (typeof config.task !== "string" || typeof config.model !== "string") throw new UsageError(`${cmd}: ${resumePath} has no task or model in its config (was it written by attend train?)`);
    const task = optStr(v, "task");
    if (task !== undefined && task !== config.task) throw new UsageError(`${cmd}: --task ${task} differs from the checkpoint's task ${config.task}`);
  } else {
    const task = str(cmd, v, "task");
    if (!(DATA_NAMES as readonly string[]).includes(task)) throw new UsageError(`${cmd}: unknown task ${JSON.stringify(task)} (tasks: ${DATA_NAMES.join(", ")})`);
    const model = str(cmd, v, "model", "tiny");
    if (!modelKinds().includes(model)) throw new UsageError(`${cmd}: unknown model ${JSON.stringify(model)} (models: ${modelKinds().join(", ")})`);
    const seed = int(cmd, v, "seed", 0, 0);
    config = {
      task,
      taskOptions: (TASK_NAMES as readonly string[]).includes(task) ? taskOptions(cmd, v) : {},
      dataSeed: seed,
      validationSize: int(cmd, v, "validation-size", 256),
      model,
      modelConfig: {
        ...(v["d-model"] !== undefined ? { dModel: int(cmd, v, "d-model", 64) } : {}),
        ...(v.heads !== undefined ? { heads: int(cmd, v, "heads", 4) } : {}),
        ...(v.layers !== undefined ? { layers: int(cmd, v, "layers", 2) } : {}),
        seed,
      },
      seed,
    };
  }
  const steps = int(cmd, v, "steps", config.steps ?? 300);
  const batchSize = int(cmd, v, "batch-size", config.batchSize ?? 32);
  const lr = num(cmd, v, "lr", config.lr ?? 3e-3, 0, true);
  const out = str(cmd, v, "out", resumePath ?? `checkpoints/${config.task}.safetensors`);
  const data = makeData(config);
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
    evalEvery: v["eval-every"] === undefined ? undefined : int(cmd, v, "eval-every", 100, 0),
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
