/**
 * What `attend train --task NAME` trains when given nothing else: per task, the data, the model and
 * the optimiser settings, chosen so that the plain command reaches the task's target (`target`, on
 * held-out data) in well under three minutes on a 2-core machine. Options given on the command line
 * override these one by one; the sizes in `modelConfig` apply only to the task's own `model`.
 *
 * Why each choice (measured with `attend train --json`; see the README's CLI section):
 *   copy, reverse  one attention block (model "block") over learned positions: with every sequence 16 long,
 *                  answer token i reads source position i (copy) or 15 - i (reverse): a fixed
 *                  positional pattern that one layer learns in a few hundred steps.
 *                  reverse: 80 steps of 16 at lr 1e-2 (was 400 of 32 at 3e-3, which reached 100% by
 *                  step ~60 and spent the rest there). Seeds 0-15 all reach 100% exact sequences,
 *                  each by step 70 (most by 50); a step of 16 costs about two thirds of one of 32
 *                  (per-op overhead dominates at these shapes). Batch 8 (100 steps) lost seed 11
 *                  (35%), lr 2e-2 stayed near chance, 60 steps of 32 left seed 3 at 86%. The plain
 *                  command: 1.5-4 s of training on the 2-core machine at load 6-8 (was 10-21 s).
 *                  copy: the same 80 steps of 16 at lr 1e-2 (was 400 of 32 at 3e-3); seeds 0-11 reach
 *                  100% exact sequences, about 1 s of training at load 2-4 (was about 19 s).
 *   sort           content, not position: the one-block model, more steps.
 *   addition       the carry needs the digits of both operands lined up by place value, two hops of
 *                  attention (find "+", then the digits), so a 2-layer GPT; 2-digit operands, since
 *                  3 digits took 2000 steps of 64 (over 5 minutes here) to reach 91%.
 *   recall         needs an induction circuit (layer 1: each value takes in the key before it; layer 2:
 *                  the query finds that key and copies its value), which a plain 2-layer GPT finds only
 *                  after a long plateau at chance (8 pairs: at chance for 6000 steps, d 32, lr 3e-3).
 *                  Four changes find it in a few hundred steps, and evaluation stays the real task
 *                  (held-out examples of 8 pairs, one question each, an exact answer):
 *                  - the answer repeats the query key ("a3c7e1?c" -> "c7", echoKey): the value is
 *                    then predicted where the model reads the key, the plain induction step; without
 *                    it 3 pairs stayed at chance for 300 steps, with it 100% by step 200;
 *                  - a curriculum (trainingMinPairs 1, curriculumSteps 450): training examples have
 *                    1-2 pairs at first, widening to 1-8 by step 450; with 8 pairs from the start it
 *                    stayed at chance for 400 steps (4 or 8 questions per example alike);
 *                  - 4 questions per training example (trainingQueries): 4 answers per sequence;
 *                  - one head of width 32 with rotary positions (preset tiny-gqa: RoPE, RMSNorm):
 *                    4 heads of width 8 stayed at chance on 3 pairs where 1 head reached 100%.
 *                  Seeds 0-11, 600 steps: lr 5e-3 with the curriculum from 1 pair reached >= 95.7%
 *                  with 11 of 12 (10 of them 100%; the circuit at step ~240, seed 6 at ~480); seed 9
 *                  stayed at chance. Starting it at 2 pairs lost seeds 2 and 6 (at chance), lr 1e-2
 *                  lost seed 0. The plain command (seed 0): 100% in 20-36 s on the loaded 2-core machine.
 *   names          a character model; the one-block model is enough for 2.1 nats/char.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { TaskOptions } from "../data/tasks.js";

export interface TaskDefaults {
  /** options of the task's generator: lengths, digits, pairs */
  taskOptions: TaskOptions;
  /** a registered model kind */
  model: string;
  /** that model's sizes (dModel, heads, layers, preset), used only when the model is `model` */
  modelConfig: Record<string, unknown>;
  steps: number;
  batchSize: number;
  /** peak AdamW learning rate (warm-up, then cosine decay) */
  lr: number;
  /** what the defaults reach on the validation set, in words */
  target: string;
}

export const TASK_DEFAULTS: Readonly<Record<string, Readonly<TaskDefaults>>> = {
  copy: {
    taskOptions: { minLength: 16, maxLength: 16 }, model: "block", modelConfig: { dModel: 32, heads: 4 },
    steps: 80, batchSize: 16, lr: 1e-2, target: ">= 99% exact sequences",
  },
  reverse: {
    taskOptions: { minLength: 16, maxLength: 16 }, model: "block", modelConfig: { dModel: 32, heads: 4 },
    steps: 80, batchSize: 16, lr: 1e-2, target: ">= 99% exact sequences",
  },
  sort: {
    taskOptions: { minLength: 1, maxLength: 8 }, model: "block", modelConfig: { dModel: 32, heads: 4 },
    steps: 2000, batchSize: 32, lr: 3e-3, target: ">= 98% exact sequences",
  },
  addition: {
    taskOptions: { digits: 2 }, model: "gpt", modelConfig: { dModel: 32, heads: 4, layers: 2 },
    steps: 1500, batchSize: 32, lr: 1e-2, target: ">= 95% exact sums",
  },
  recall: {
    taskOptions: { pairs: 8, echoKey: true, trainingQueries: 4, trainingMinPairs: 1, curriculumSteps: 450 },
    model: "gpt", modelConfig: { preset: "tiny-gqa", dModel: 32, heads: 1, layers: 2 },
    steps: 600, batchSize: 32, lr: 5e-3, target: ">= 95% exact answers",
  },
  names: {
    taskOptions: {}, model: "block", modelConfig: { dModel: 32, heads: 4 },
    steps: 3000, batchSize: 32, lr: 3e-3, target: "validation loss < 2.1 nats/char",
  },
};

/** The defaults of one task (see TASK_DEFAULTS). */
export function taskDefaults(task: string): Readonly<TaskDefaults> {
  const d = Object.hasOwn(TASK_DEFAULTS, task) ? TASK_DEFAULTS[task] : undefined;
  if (d === undefined) throw new ArgumentError(`taskDefaults: unknown task ${JSON.stringify(task)} (tasks: ${Object.keys(TASK_DEFAULTS).join(", ")})`);
  return d;
}
