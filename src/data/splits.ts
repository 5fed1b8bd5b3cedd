/**
 * Fixed train/validation generation. The validation set comes from the stream "validation" of the
 * run seed; training examples come from other streams and are redrawn whenever they equal a
 * validation example, so the two never share an example (disjoint by content, not just by seed).
 *
 * A DataSource is what the training loop needs: a validation set and the training batch of any
 * step as a pure function of (seed, step), so a resumed run sees exactly the batches it would have.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import { streamOf } from "./seeds.js";
import type { Example, Task } from "./tasks.js";
import type { Vocab } from "./vocab.js";

export interface SplitOptions {
  seed?: number;
  trainSize?: number;
  validationSize?: number;
}

export interface Splits {
  train: Example[];
  validation: Example[];
}

/** A string key that identifies an example's content. */
export function exampleKey(e: Example): string {
  return `${e.source.join(",")}|${e.target.join(",")}`;
}

function count(fn: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new ArgumentError(`${fn}: ${name} must be an integer >= 0, got ${String(v)}`);
  return v;
}

/** `size` distinct examples from g that are not in `exclude` (fails clearly if the task has too few). */
function drawDistinct(fn: string, task: Task, g: Generator, size: number, exclude: Set<string>): Example[] {
  const out: Example[] = [];
  const seen = new Set<string>();
  let misses = 0;
  while (out.length < size) {
    const e = task.sample(g);
    const k = exampleKey(e);
    if (exclude.has(k) || seen.has(k)) {
      if (++misses > 1000 + 20 * size) {
        throw new ArgumentError(`${fn}: could only find ${out.length} of ${size} distinct ${task.name} examples; the task has too few (lengthen the sequences or ask for fewer)`);
      }
      continue;
    }
    seen.add(k);
    out.push(e);
  }
  return out;
}

/** A fixed validation set, then a fixed training set disjoint from it (each without repeats). */
export function makeSplits(task: Task, opts: SplitOptions = {}): Splits {
  const fn = "makeSplits";
  const seed = opts.seed ?? 0;
  const validation = drawDistinct(fn, task, streamOf(seed, "validation"), count(fn, "validationSize", opts.validationSize ?? 256), new Set());
  const exclude = new Set(validation.map(exampleKey));
  const train = drawDistinct(fn, task, streamOf(seed, "train"), count(fn, "trainSize", opts.trainSize ?? 4096), exclude);
  return { train, validation };
}

export interface DataSource {
  readonly name: string;
  readonly vocab: Vocab;
  readonly validation: readonly Example[];
  /** the examples of training step `step` (a pure function of the seed and the step) */
  trainBatch(step: number, batchSize: number): Example[];
}

/**
 * Fresh training examples every step, for a synthetic task. The validation set is the task itself
 * (`task.sample`); training examples come from `task.sampleTraining` where the task has one (extra
 * supervision, a curriculum) and are redrawn when any question they answer (`task.questionsOf`) is a
 * validation example.
 */
export function taskSource(task: Task, opts: { seed?: number; validationSize?: number } = {}): DataSource {
  const seed = opts.seed ?? 0;
  const { validation } = makeSplits(task, { seed, trainSize: 0, validationSize: opts.validationSize ?? 256 });
  const exclude = new Set(validation.map(exampleKey));
  const sampleTraining = (g: Generator, step: number): Example => (task.sampleTraining ? task.sampleTraining(g, step) : task.sample(g));
  const leaks = (e: Example): boolean => (task.questionsOf ? task.questionsOf(e) : [e]).some((q) => exclude.has(exampleKey(q)));
  return {
    name: task.name,
    vocab: task.vocab,
    validation,
    trainBatch(step, batchSize) {
      const g = streamOf(seed, `train/${step}`);
      const out: Example[] = [];
      for (let misses = 0; out.length < batchSize; ) {
        const e = sampleTraining(g, step);
        if (!leaks(e)) out.push(e);
        else if (++misses > 1000 + 20 * batchSize) throw new ArgumentError(`taskSource: the ${task.name} task has too few examples outside the validation set`);
      }
      return out;
    },
  };
}

/** Training batches drawn (with replacement) from a fixed training set. */
export function fixedSource(name: string, vocab: Vocab, splits: Splits, seed = 0): DataSource {
  if (splits.train.length === 0) throw new ArgumentError(`fixedSource: ${name} has an empty training set`);
  return {
    name,
    vocab,
    validation: splits.validation,
    trainBatch(step, batchSize) {
      const g = streamOf(seed, `train/${step}`);
      return Array.from({ length: batchSize }, () => splits.train[g.nextInt(splits.train.length)]);
    },
  };
}
