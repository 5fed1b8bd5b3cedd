/**
 * Synthetic sequence tasks: each turns a random source string into the one right target string.
 *   copy      "3141"          -> "3141"
 *   reverse   "3141"          -> "1413"
 *   sort      "3141"          -> "1134"
 *   addition  "57+68"         -> "125"        (operands of 1..digits digits)
 *   recall    "a3c7e1?c"      -> "7"          (key-value pairs, "?", a query key; answer = its value;
 *                                               with echoKey the key, then its value: "c7")
 * Examples hold token ids without special tokens; batch.ts adds start/separator/end and padding.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import { sampleDistinct } from "./seeds.js";
import { Vocab } from "./vocab.js";

export interface Example {
  source: number[];
  target: number[];
  /**
   * Indices into `target` that are not scored (neither loss nor accuracy): tokens of a training
   * example that are given, not predicted, such as the keys a multi-query recall example asks.
   * Absent (the tasks' own examples): every target token is scored.
   */
  unscored?: number[];
}

export const TASK_NAMES = ["copy", "reverse", "sort", "addition", "recall"] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export interface Task {
  readonly name: string;
  readonly description: string;
  readonly vocab: Vocab;
  /** the longest source and target, in tokens (specials not counted) */
  readonly maxSourceLength: number;
  readonly maxTargetLength: number;
  /** one random example */
  sample(g: Generator): Example;
  /** the right target for a source (also what a prompt typed by hand is checked against) */
  solve(source: number[]): number[];
  /**
   * A training example for training step `step`, when training may see more than the task itself
   * (extra supervision, a curriculum); absent: `sample`. Evaluation always uses `sample`.
   */
  sampleTraining?(g: Generator, step: number): Example;
  /**
   * The task's own examples (as `sample` makes them) that a `sampleTraining` example answers: what
   * must not be in the validation set. Absent: the example itself.
   */
  questionsOf?(e: Example): Example[];
}

export interface SequenceTaskOptions {
  minLength?: number;
  maxLength?: number;
  /** the symbols sequences are made of (default the ten digits) */
  symbols?: string;
}

export interface AdditionOptions {
  /** most digits per operand (default 3) */
  digits?: number;
  /** write the sum least-significant digit first (easier for a left-to-right model) */
  reverseAnswer?: boolean;
}

export interface RecallOptions {
  /** key-value pairs per example (default 8) */
  pairs?: number;
  keys?: string;
  values?: string;
  /** values differ within an example (default true), so a wrong pair is always a wrong answer */
  distinctValues?: boolean;
  /**
   * Training only: queries per training example (default 1; fewer when the example has fewer pairs,
   * as each asks a different key). Past the first, each is appended to the target as "?", the key and
   * <sep> (given: not scored), then its answer (scored), so one sequence answers several questions
   * about the same pairs: "a3c7e1?c" -> "7?a<sep>3?e<sep>1" (with echoKey "c7?a<sep>a3?e<sep>e1").
   */
  trainingQueries?: number;
  /**
   * Training only, a curriculum: the fewest pairs of a training example (default `pairs`: none; more
   * than `pairs` counts as `pairs`). At step s a training example has from this many to
   * min(pairs, trainingMinPairs + 1 + floor((pairs - trainingMinPairs) * s / curriculumSteps)) pairs,
   * evenly: a few pairs at first, where the induction circuit is found quickly, up to `pairs`.
   */
  trainingMinPairs?: number;
  /** Training only: the steps over which the curriculum widens to `pairs` (default 0: at once) */
  curriculumSteps?: number;
  /**
   * The answer repeats the query key before its value: "a3c7e1?c" -> "c7" (default false: "7").
   * Both are scored, so an exact answer still needs the right value; the value is then predicted
   * where the model reads the key itself, the step an induction head does (find the earlier "c",
   * copy what follows it), which two layers learn far sooner than reading the key one position back.
   */
  echoKey?: boolean;
}

export type TaskOptions = SequenceTaskOptions & AdditionOptions & RecallOptions;

const DIGITS = "0123456789";

function positiveInt(fn: string, name: string, v: unknown, min = 1): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw new ArgumentError(`${fn}: ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

function sequenceTask(name: "copy" | "reverse" | "sort", opts: SequenceTaskOptions, transform: (s: number[]) => number[], what: string): Task {
  const fn = `${name}Task`;
  const minLength = positiveInt(fn, "minLength", opts.minLength ?? 1);
  const maxLength = positiveInt(fn, "maxLength", opts.maxLength ?? 8);
  if (maxLength < minLength) throw new ArgumentError(`${fn}: maxLength (${maxLength}) must be >= minLength (${minLength})`);
  const vocab = new Vocab(opts.symbols ?? DIGITS);
  const ids = [...vocab.alphabet].map((c) => vocab.id(c));
  return {
    name,
    description: `${what} a string of ${minLength}-${maxLength} symbols from "${vocab.alphabet}"`,
    vocab,
    maxSourceLength: maxLength,
    maxTargetLength: maxLength,
    sample(g) {
      const n = minLength + g.nextInt(maxLength - minLength + 1);
      const source = Array.from({ length: n }, () => ids[g.nextInt(ids.length)]);
      return { source, target: transform(source) };
    },
    solve: transform,
  };
}

export function copyTask(opts: SequenceTaskOptions = {}): Task {
  return sequenceTask("copy", opts, (s) => [...s], "copy");
}

export function reverseTask(opts: SequenceTaskOptions = {}): Task {
  return sequenceTask("reverse", opts, (s) => [...s].reverse(), "reverse");
}

/** Symbol ids are in alphabet order, so sorting ids sorts the symbols. */
export function sortTask(opts: SequenceTaskOptions = {}): Task {
  return sequenceTask("sort", opts, (s) => [...s].sort((a, b) => a - b), "sort");
}

export function additionTask(opts: AdditionOptions = {}): Task {
  const fn = "additionTask";
  const digits = positiveInt(fn, "digits", opts.digits ?? 3);
  if (digits > 15) throw new ArgumentError(`${fn}: digits must be at most 15 (exact integers), got ${digits}`);
  const reverseAnswer = opts.reverseAnswer ?? false;
  const vocab = new Vocab(`${DIGITS}+`);
  const plus = vocab.id("+");
  const digitIds = (n: number): number[] => vocab.encode(String(n));
  const solve = (source: number[]): number[] => {
    const text = vocab.decode(source);
    const m = /^(\d+)\+(\d+)$/.exec(text);
    if (m === null) throw new ArgumentError(`${fn}: a source must look like "12+345", got ${JSON.stringify(text)}`);
    const sum = digitIds(Number(m[1]) + Number(m[2]));
    return reverseAnswer ? sum.reverse() : sum;
  };
  // a random operand: first pick its digit count, so short and long numbers are equally common
  const operand = (g: Generator): number => {
    const d = 1 + g.nextInt(digits);
    const low = d === 1 ? 0 : 10 ** (d - 1);
    return low + g.nextInt(10 ** d - low);
  };
  return {
    name: "addition",
    description: `add two numbers of 1-${digits} digits${reverseAnswer ? " (answer written least-significant digit first)" : ""}`,
    vocab,
    maxSourceLength: 2 * digits + 1,
    maxTargetLength: digits + 1,
    sample(g) {
      const source = [...digitIds(operand(g)), plus, ...digitIds(operand(g))];
      return { source, target: solve(source) };
    },
    solve,
  };
}

export function recallTask(opts: RecallOptions = {}): Task {
  const fn = "recallTask";
  const pairs = positiveInt(fn, "pairs", opts.pairs ?? 8);
  const keys = opts.keys ?? "abcdefghijklmnop";
  const values = opts.values ?? DIGITS;
  const distinctValues = opts.distinctValues ?? true;
  const echoKey = opts.echoKey ?? false;
  const trainingQueries = positiveInt(fn, "trainingQueries", opts.trainingQueries ?? 1);
  const trainingMinPairs = Math.min(positiveInt(fn, "trainingMinPairs", opts.trainingMinPairs ?? pairs), pairs);
  const curriculumSteps = positiveInt(fn, "curriculumSteps", opts.curriculumSteps ?? 0, 0);
  if (pairs > [...keys].length) throw new ArgumentError(`${fn}: ${pairs} pairs need at least ${pairs} distinct keys, got ${keys.length} ("${keys}")`);
  if (distinctValues && pairs > [...values].length) {
    throw new ArgumentError(`${fn}: ${pairs} pairs with distinct values need at least ${pairs} values, got ${values.length}; pass distinctValues: false`);
  }
  if ([...keys].some((k) => values.includes(k)) || keys.includes("?") || values.includes("?")) {
    throw new ArgumentError(`${fn}: keys and values must be disjoint and must not contain "?"`);
  }
  const vocab = new Vocab(`${keys}${values}?`);
  const keyIds = [...keys].map((c) => vocab.id(c));
  const valueIds = [...values].map((c) => vocab.id(c));
  const ask = vocab.id("?");
  /** the target for query key k whose value is v */
  const answer = (k: number, v: number): number[] => (echoKey ? [k, v] : [v]);
  const solve = (source: number[]): number[] => {
    const n = source.length;
    if (n < 4 || n % 2 !== 0 || source[n - 2] !== ask) {
      throw new ArgumentError(`${fn}: a source must look like "a3c7?c" (pairs, "?", a key), got ${JSON.stringify(vocab.decode(source))}`);
    }
    const q = source[n - 1];
    for (let i = 0; i < n - 2; i += 2) if (source[i] === q) return answer(q, source[i + 1]);
    throw new ArgumentError(`${fn}: the query key ${JSON.stringify(vocab.decode([q]))} is not among the pairs of ${JSON.stringify(vocab.decode(source))}`);
  };
  /** n random pairs (distinct keys) as [key, value, key, value, ...] */
  const randomPairs = (g: Generator, n: number): number[] => {
    const ks = sampleDistinct(keyIds.length, n, g).map((i) => keyIds[i]);
    const vs = distinctValues
      ? sampleDistinct(valueIds.length, n, g).map((i) => valueIds[i])
      : Array.from({ length: n }, () => valueIds[g.nextInt(valueIds.length)]);
    return ks.flatMap((k, i) => [k, vs[i]]);
  };
  const task: Task = {
    name: "recall",
    description: `associative recall: ${pairs} key-value pairs, then "?" and one of the keys; answer ${echoKey ? "the key, then its value" : "its value"}`,
    vocab,
    maxSourceLength: 2 * pairs + 2,
    maxTargetLength: 1,
    sample(g) {
      const source = randomPairs(g, pairs);
      const asked = g.nextInt(pairs);
      source.push(ask, source[2 * asked]);
      return { source, target: answer(source[2 * asked], source[2 * asked + 1]) };
    },
    solve,
  };
  // without training options, training draws the task's own examples (sample), as before they existed
  if (trainingQueries === 1 && trainingMinPairs === pairs) return task;
  return {
    ...task,
    sampleTraining(g, step) {
      const most = curriculumSteps > 0 ? Math.min(pairs, trainingMinPairs + 1 + Math.floor(((pairs - trainingMinPairs) * Math.max(0, step)) / curriculumSteps)) : pairs;
      const n = trainingMinPairs + g.nextInt(most - trainingMinPairs + 1);
      const kv = randomPairs(g, n);
      const asked = sampleDistinct(n, Math.min(trainingQueries, n), g);
      const source = [...kv, ask, kv[2 * asked[0]]];
      const target = answer(kv[2 * asked[0]], kv[2 * asked[0] + 1]);
      const unscored: number[] = [];
      for (const i of asked.slice(1)) {
        // "?", the key and <sep> are given (not scored), as in the first question's prompt; the answer is scored
        unscored.push(target.length, target.length + 1, target.length + 2);
        target.push(ask, kv[2 * i], vocab.sep, ...answer(kv[2 * i], kv[2 * i + 1]));
      }
      return asked.length > 1 ? { source, target, unscored } : { source, target };
    },
    questionsOf(e) {
      const pairsPart = e.source.slice(0, e.source.length - 2);
      const size = echoKey ? 2 : 1;
      const out: Example[] = [{ source: [...e.source], target: e.target.slice(0, size) }];
      // the extra questions: "?", key, <sep>, answer, from target index `size` on
      for (let j = size; j + 3 + size <= e.target.length; j += 3 + size) {
        out.push({ source: [...pairsPart, ask, e.target[j + 1]], target: e.target.slice(j + 3, j + 3 + size) });
      }
      return out;
    },
  };
}

/** A task by name, with the options that apply to it. */
export function makeTask(name: string, opts: TaskOptions = {}): Task {
  switch (name) {
    case "copy": return copyTask(opts);
    case "reverse": return reverseTask(opts);
    case "sort": return sortTask(opts);
    case "addition": return additionTask(opts);
    case "recall": return recallTask(opts);
    default: throw new ArgumentError(`makeTask: unknown task ${JSON.stringify(name)} (tasks: ${TASK_NAMES.join(", ")})`);
  }
}
