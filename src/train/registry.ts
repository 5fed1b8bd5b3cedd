/**
 * Runs described by plain JSON (stored in every checkpoint): which data, which model, which seeds.
 * makeData / makeModel rebuild them, so `eval`, `sample` and `attn-map` need only the checkpoint.
 * Model kinds are registered by name: "tiny" (one attention block, for tests), "gpt" and "encdec"
 * (src/models' GPT and EncoderDecoder through adapters.ts); registerModelKind adds more.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { TASK_NAMES, type TaskOptions, makeTask } from "../data/tasks.js";
import { type DataSource, taskSource } from "../data/splits.js";
import { namesSource } from "../data/names.js";
import type { Vocab } from "../data/vocab.js";
import type { SequenceModel } from "./model.js";
import { TinyAttentionModel } from "./tiny.js";
import { EncoderDecoderSequenceModel, type FullModelOptions, GPTSequenceModel } from "./adapters.js";

export const DATA_NAMES = [...TASK_NAMES, "names"] as const;

export interface RunConfig {
  /** a task name or "names" */
  task: string;
  taskOptions?: TaskOptions;
  /** seeds the data (validation set and training batches) */
  dataSeed?: number;
  validationSize?: number;
  /** a registered model kind ("tiny", ...) */
  model: string;
  /** the model's own options (vocabSize is filled in from the data) */
  modelConfig?: Record<string, unknown>;
}

export type ModelFactory = (vocab: Vocab, config: Record<string, unknown>, data: DataSource) => SequenceModel;

const kinds = new Map<string, ModelFactory>();

export function registerModelKind(name: string, factory: ModelFactory): void {
  kinds.set(name, factory);
}

export function modelKinds(): string[] {
  return [...kinds.keys()];
}

/** The longest decoder-layout sequence of the data, with room to spare for typed prompts. */
function longestSequence(data: DataSource): number {
  let n = 0;
  for (const e of data.validation) n = Math.max(n, e.source.length + e.target.length + 3);
  return n;
}

registerModelKind("tiny", (vocab, config, data) => {
  const c = config as { dModel?: number; heads?: number; maxLength?: number; seed?: number; layers?: number };
  if (c.layers !== undefined && c.layers !== 1) throw new ArgumentError(`model tiny has exactly one layer, got layers ${c.layers}`);
  return new TinyAttentionModel({ vocabSize: vocab.size, dModel: c.dModel, heads: c.heads, maxLength: c.maxLength ?? Math.max(32, 2 * longestSequence(data)), seed: c.seed });
});
registerModelKind("gpt", (vocab, config, data) => new GPTSequenceModel(vocab.size, Math.max(32, 2 * longestSequence(data)), config as FullModelOptions));
registerModelKind("encdec", (vocab, config, data) => new EncoderDecoderSequenceModel(vocab.size, Math.max(32, 2 * longestSequence(data)), config as FullModelOptions));

export function makeData(config: RunConfig): DataSource {
  const seed = config.dataSeed ?? 0;
  if (config.task === "names") return namesSource({ seed });
  if (!(TASK_NAMES as readonly string[]).includes(config.task)) {
    throw new ArgumentError(`unknown task ${JSON.stringify(config.task)} (tasks: ${DATA_NAMES.join(", ")})`);
  }
  return taskSource(makeTask(config.task, config.taskOptions ?? {}), { seed, validationSize: config.validationSize ?? 256 });
}

export function makeModel(config: RunConfig, data: DataSource): SequenceModel {
  const factory = kinds.get(config.model);
  if (factory === undefined) throw new ArgumentError(`unknown model ${JSON.stringify(config.model)} (models: ${modelKinds().join(", ")})`);
  return factory(data.vocab, config.modelConfig ?? {}, data);
}

export interface RestoredRun {
  config: RunConfig;
  data: DataSource;
  model: SequenceModel;
}

/** Rebuild a checkpoint's data and model and load its weights. */
export function restoreRun(ckpt: { config: Record<string, unknown>; model: Record<string, Tensor> }, where = "checkpoint"): RestoredRun {
  const config = ckpt.config as unknown as RunConfig;
  if (typeof config.task !== "string" || typeof config.model !== "string") {
    throw new ArgumentError(`${where}: its config names no task or model (was it written by attend train?)`);
  }
  const data = makeData(config);
  const model = makeModel(config, data);
  if (!model.loadStateDict) throw new ArgumentError(`${where}: model ${config.model} cannot load weights`);
  model.loadStateDict(ckpt.model);
  return { config, data, model };
}
