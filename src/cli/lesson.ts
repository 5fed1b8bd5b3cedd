/** attend lookup-vs-soft: lesson 1 with options. */
import { lookupVsSoft, LOOKUP_VS_SOFT_DEFAULTS, type RunResult } from "../lessons/lookupVsSoft.js";
import { explainLookupVsSoft, formatLookupVsSoft } from "../lessons/report.js";
import { type OptionSpec, flag, int, num, parse } from "./args.js";
import { type Io, emitJson, say } from "./io.js";

export const LESSON_OPTIONS: OptionSpec = {
  pairs: { type: "string" },
  steps: { type: "string" },
  seed: { type: "string" },
  lr: { type: "string" },
  "batch-size": { type: "string" },
};

const D = LOOKUP_VS_SOFT_DEFAULTS;

export const LESSON_HELP = `attend lookup-vs-soft [options]

Lesson 1: train a lookup-table attention block and a softmax attention block on
associative recall, side by side, and show that no gradient reaches the lookup
table's query/key projections.

Options:
  --pairs N        key-value pairs per example (default ${D.pairs})
  --steps N        training steps for each block (default ${D.steps})
  --seed N         seed for weights and data (default ${D.seed})
  --lr X           AdamW learning rate (default ${D.lr})
  --batch-size N   examples per step (default ${D.batchSize})
  --json           print one JSON object: { lookup: { accuracy, qkGradNorm, ... }, soft: { ... } }`;

function summary(r: RunResult): Record<string, unknown> {
  return {
    accuracy: r.accuracy,
    qkGradNorm: r.qkGradNorm,
    keyAccuracy: r.keyAccuracy,
    keyAccuracyBefore: r.keyAccuracyBefore,
    seconds: r.seconds,
    curve: r.curve,
  };
}

export function lessonCommand(args: string[], io: Io): number {
  const cmd = "lookup-vs-soft";
  const v = parse(cmd, args, LESSON_OPTIONS);
  if (flag(v, "help")) {
    say(io, LESSON_HELP);
    return 0;
  }
  const opts = {
    pairs: int(cmd, v, "pairs", D.pairs, 2, 26),
    steps: int(cmd, v, "steps", D.steps),
    seed: int(cmd, v, "seed", D.seed, 0),
    lr: num(cmd, v, "lr", D.lr, 0, true),
    batchSize: int(cmd, v, "batch-size", D.batchSize),
  };
  const json = flag(v, "json");
  if (!json) {
    for (const line of explainLookupVsSoft(opts)) say(io, line);
    say(io);
  }
  const r = lookupVsSoft(opts);
  if (json) {
    emitJson(io, { pairs: r.pairs, steps: r.steps, seed: opts.seed, chance: r.chance, validationSize: r.validationSize, lookup: summary(r.lookup), soft: summary(r.soft) });
  } else for (const line of formatLookupVsSoft(r)) say(io, line);
  return 0;
}
