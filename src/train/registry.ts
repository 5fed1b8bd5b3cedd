/**
 * Runs described by plain JSON (stored in every checkpoint): which data, which model, which seeds.
 * makeData / makeModel rebuild them, so `eval`, `sample` and `attn-map` need only the checkpoint.
 * Model kinds are registered by name: "block" (one attention block, TinyAttentionModel), "gpt" and
 * "encdec" (src/models' GPT and EncoderDecoder through adapters.ts); registerModelKind adds more.
 *
 * A checkpoint's config is data like any other in the file: restoreRun checks it (checkRunConfig:
 * types and RUN_LIMITS) and checks the model's sizes against the tensors stored beside it
 * (checkRunState) before building anything, so a damaged or hostile file is an ArgumentError naming
 * the key, never a process out of memory.
 */
import { ArgumentError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { TASK_NAMES, type TaskOptions, makeTask } from "../data/tasks.js";
import { type DataSource, taskSource } from "../data/splits.js";
import { namesSource } from "../data/names.js";
import type { Vocab } from "../data/vocab.js";
import { checkConfigAgainstTensors } from "../models/checkpoint.js";
import type { SequenceModel } from "./model.js";
import { TinyAttentionModel, type TinyConfig } from "./tiny.js";
import { EncoderDecoderSequenceModel, type FullModelOptions, GPTSequenceModel } from "./adapters.js";

export const DATA_NAMES = [...TASK_NAMES, "names"] as const;

export interface RunConfig {
  /** a task name or "names" */
  task: string;
  taskOptions?: TaskOptions;
  /** seeds the data (validation set and training batches) */
  dataSeed?: number;
  validationSize?: number;
  /** a registered model kind ("block", "gpt", "encdec", ...) */
  model: string;
  /** the model's own options (vocabSize is filled in from the data) */
  modelConfig?: Record<string, unknown>;
}

export type ModelFactory = (vocab: Vocab, config: Record<string, unknown>, data: DataSource) => SequenceModel;

/**
 * Checks, before a model is built, that its config agrees with the state dict it will load (throw
 * an ArgumentError naming the key otherwise): what keeps a checkpoint from sizing the allocation.
 * `where` begins each message.
 */
export type ModelStateCheck = (vocab: Vocab, config: Record<string, unknown>, data: DataSource, state: Record<string, Tensor>, where: string) => void;

const kinds = new Map<string, { factory: ModelFactory; check?: ModelStateCheck }>();

/** Model kinds under their former names, as checkpoints written before a rename store them. */
const RENAMED_KINDS: Readonly<Record<string, string>> = { tiny: "block" };

/** Register a model kind; without `check`, restoreRun builds it from any config a checkpoint holds. */
export function registerModelKind(name: string, factory: ModelFactory, check?: ModelStateCheck): void {
  kinds.set(name, { factory, check });
}

export function modelKinds(): string[] {
  return [...kinds.keys()];
}

/** A model kind's current name ("tiny", the one-block model's former name, is "block"). */
export function currentModelKind(name: string): string {
  return Object.hasOwn(RENAMED_KINDS, name) ? RENAMED_KINDS[name] : name;
}

/**
 * Bounds on what a run may ask for, from the command line or a checkpoint: generous for these tasks
 * on a CPU, and small enough that the data and model they describe fit in memory.
 */
export const RUN_LIMITS = {
  /** minLength / maxLength of copy, reverse and sort */
  sequenceLength: 512,
  validationSize: 20_000,
  batchSize: 1024,
  /** --d-model, --heads and --layers of a new model (a checkpoint's sizes are checked against its tensors instead) */
  dModel: 4096,
  heads: 256,
  layers: 64,
  /** symbols, keys, values of a task */
  alphabet: 256,
} as const;

/** The longest decoder-layout sequence of the data, with room to spare for typed prompts. */
function longestSequence(data: DataSource): number {
  let n = 0;
  for (const e of data.validation) n = Math.max(n, e.source.length + e.target.length + 3);
  return n;
}

/** The longest sequence a new model is built for: twice the data's, at least 32. */
const modelLength = (data: DataSource): number => Math.max(32, 2 * longestSequence(data));

/** The one-block model's options, as its factory resolves them. */
function blockConfig(vocab: Vocab, config: Record<string, unknown>, data: DataSource): TinyConfig {
  const c = config as { dModel?: number; heads?: number; maxLength?: number; seed?: number; layers?: number };
  if (c.layers !== undefined && c.layers !== 1) throw new ArgumentError(`model block has exactly one layer, got layers ${c.layers}`);
  return { vocabSize: vocab.size, dModel: c.dModel, heads: c.heads, maxLength: c.maxLength ?? modelLength(data), seed: c.seed };
}

registerModelKind(
  "block",
  (vocab, config, data) => new TinyAttentionModel(blockConfig(vocab, config, data)),
  (vocab, config, data, state, where) => {
    const c = TinyAttentionModel.resolveConfig(blockConfig(vocab, config, data));
    const rows = (name: string, field: string, value: unknown, dim: 0 | 1, what: string): void => {
      const t = Object.hasOwn(state, name) ? state[name] : undefined;
      if (t === undefined) throw new ArgumentError(`${where}: the checkpoint has no model.${name} (${what}); expected one for model block`);
      if (t.shape.length !== 2 || t.shape[dim] !== value) {
        throw new ArgumentError(`${where}: ${field} is ${JSON.stringify(value)} but model.${name} has shape ${fmtShape(t.shape)}; expected ${field} ${t.shape.length === 2 ? t.shape[dim] : "to match it"} (${what})`);
      }
    };
    rows("tok", "the task's vocabulary size", c.vocabSize, 0, "tok is [vocabulary, dModel]");
    rows("tok", "modelConfig.dModel", c.dModel, 1, "tok is [vocabulary, dModel]");
    rows("pos", "modelConfig.maxLength", c.maxLength, 0, "pos is [maxLength, dModel]");
    checkSize(where, "modelConfig", TinyAttentionModel.parameterCount(c), state);
  },
);
registerModelKind(
  "gpt",
  (vocab, config, data) => new GPTSequenceModel(vocab.size, modelLength(data), config as FullModelOptions),
  (vocab, config, data, state, where) => {
    checkConfigAgainstTensors(where, "gpt", GPTSequenceModel.resolveConfig(vocab.size, modelLength(data), config as FullModelOptions), state, "modelConfig.config");
  },
);
registerModelKind(
  "encdec",
  (vocab, config, data) => new EncoderDecoderSequenceModel(vocab.size, modelLength(data), config as FullModelOptions),
  (vocab, config, data, state, where) => {
    const c = EncoderDecoderSequenceModel.resolveConfig(vocab.size, modelLength(data), config as FullModelOptions);
    checkConfigAgainstTensors(where, "encoder-decoder", c, state, "modelConfig.config");
  },
);

/** A model of `count` parameters must not be larger than the state it loads. */
function checkSize(where: string, label: string, count: number, state: Record<string, Tensor>): void {
  let held = 0;
  for (const t of Object.values(state)) held += t.size;
  if (count > held) throw new ArgumentError(`${where}: the ${label} describes a model of ${count} parameters but the checkpoint holds ${held} values; expected a ${label} that matches its tensors`);
}

export function makeData(config: RunConfig): DataSource {
  const seed = config.dataSeed ?? 0;
  if (config.task === "names") return namesSource({ seed });
  if (!(TASK_NAMES as readonly string[]).includes(config.task)) {
    throw new ArgumentError(`unknown task ${JSON.stringify(config.task)} (tasks: ${DATA_NAMES.join(", ")})`);
  }
  return taskSource(makeTask(config.task, config.taskOptions ?? {}), { seed, validationSize: config.validationSize ?? 256 });
}

function kindOf(name: string): { factory: ModelFactory; check?: ModelStateCheck } {
  const kind = kinds.get(currentModelKind(name));
  if (kind === undefined) throw new ArgumentError(`unknown model ${JSON.stringify(name)} (models: ${modelKinds().join(", ")})`);
  return kind;
}

export function makeModel(config: RunConfig, data: DataSource): SequenceModel {
  return kindOf(config.model).factory(data.vocab, config.modelConfig ?? {}, data);
}

/** What a checkpoint's run config may hold besides RunConfig: what `attend train` stores. */
export interface StoredRunConfig extends RunConfig {
  steps?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
}

/**
 * A checkpoint's run config, checked field by field against its type and RUN_LIMITS before any of
 * it is used (the model kind under its current name). Errors name `where`, the key, the value and
 * what was expected. Fields it does not know are kept as they are.
 */
export function checkRunConfig(raw: unknown, where = "checkpoint"): StoredRunConfig {
  const bad = (key: string, value: unknown, expected: string): never => {
    throw new ArgumentError(`${where}: config ${key} is ${JSON.stringify(value) ?? String(value)}; expected ${expected}`);
  };
  const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isRecord(raw)) throw new ArgumentError(`${where}: its config is ${JSON.stringify(raw) ?? String(raw)}; expected an object (was the file written by attend train?)`);
  const c = raw as Record<string, unknown>;
  const int = (obj: Record<string, unknown>, prefix: string, key: string, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    const v = obj[key];
    if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)) {
      bad(`${prefix}${key}`, v, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`);
    }
  };
  if (typeof c.task !== "string" || !(DATA_NAMES as readonly string[]).includes(c.task)) bad("task", c.task, `one of ${DATA_NAMES.join(", ")} (was the file written by attend train?)`);
  if (typeof c.model !== "string") bad("model", c.model, `a model kind (${modelKinds().join(", ")})`);
  const model = currentModelKind(c.model as string);
  if (!kinds.has(model)) bad("model", c.model, `one of ${modelKinds().join(", ")}`);
  if (c.taskOptions !== undefined) {
    if (!isRecord(c.taskOptions)) bad("taskOptions", c.taskOptions, "an object");
    const o = c.taskOptions as Record<string, unknown>;
    int(o, "taskOptions.", "minLength", 1, RUN_LIMITS.sequenceLength);
    int(o, "taskOptions.", "maxLength", 1, RUN_LIMITS.sequenceLength);
    int(o, "taskOptions.", "digits", 1, 15);
    int(o, "taskOptions.", "pairs", 1, RUN_LIMITS.alphabet);
    int(o, "taskOptions.", "trainingQueries", 1, RUN_LIMITS.alphabet);
    int(o, "taskOptions.", "trainingMinPairs", 1, RUN_LIMITS.alphabet);
    int(o, "taskOptions.", "curriculumSteps", 0);
    for (const key of ["symbols", "keys", "values"]) {
      const v = o[key];
      if (v !== undefined && (typeof v !== "string" || v.length > RUN_LIMITS.alphabet)) bad(`taskOptions.${key}`, typeof v === "string" ? `${v.slice(0, 20)}...` : v, `a string of at most ${RUN_LIMITS.alphabet} characters`);
    }
    for (const key of ["reverseAnswer", "distinctValues", "echoKey"]) if (o[key] !== undefined && typeof o[key] !== "boolean") bad(`taskOptions.${key}`, o[key], "true or false");
  }
  if (c.modelConfig !== undefined && !isRecord(c.modelConfig)) bad("modelConfig", c.modelConfig, "an object");
  int(c, "", "dataSeed", 0);
  int(c, "", "validationSize", 1, RUN_LIMITS.validationSize);
  int(c, "", "steps", 1);
  int(c, "", "batchSize", 1, RUN_LIMITS.batchSize);
  int(c, "", "seed", 0);
  if (c.lr !== undefined && (typeof c.lr !== "number" || !(c.lr > 0) || !Number.isFinite(c.lr))) bad("lr", c.lr, "a finite number > 0");
  return { ...(c as unknown as StoredRunConfig), model };
}

/**
 * Before a checkpoint's model is built: its config must agree with the state dict it will load
 * (the kind's ModelStateCheck: sizes against the tensors' shapes, the model's size against the
 * values present).
 */
export function checkRunState(config: RunConfig, data: DataSource, state: Record<string, Tensor>, where = "checkpoint"): void {
  kindOf(config.model).check?.(data.vocab, config.modelConfig ?? {}, data, state, where);
}

export interface RestoredRun {
  config: RunConfig;
  data: DataSource;
  model: SequenceModel;
}

/**
 * Rebuild a checkpoint's data and model and load its weights: the config is checked (checkRunConfig),
 * then the model's sizes against the weights (checkRunState), before anything is built from them.
 */
export function restoreRun(ckpt: { config: Record<string, unknown>; model: Record<string, Tensor> }, where = "checkpoint"): RestoredRun {
  const config = checkRunConfig(ckpt.config, where);
  const data = makeData(config);
  checkRunState(config, data, ckpt.model, where);
  const model = makeModel(config, data);
  if (!model.loadStateDict) throw new ArgumentError(`${where}: model ${config.model} cannot load weights`);
  model.loadStateDict(ckpt.model);
  return { config, data, model };
}
