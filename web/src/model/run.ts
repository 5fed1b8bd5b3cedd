/**
 * A training run in the page, the same run `attend train` makes: data and model from a RunConfig
 * (the library's makeData / makeModel / restoreRun), AdamW (weight decay 0.01) with linear warm-up
 * and cosine decay to 10%, the gradient norm clipped to 1, and the batch of step s a pure function
 * of (seed, s). So the page computes what `attend train` computes with the same settings, and its
 * checkpoints (checkpoint.ts) hold what `attend train` writes. It trains one step per call, so the
 * page can draw and stay responsive between steps.
 */
import {
  AdamW, LRScheduler, type RunConfig, type SequenceModel, type TrainingCheckpoint, batchLoss, clipGradNorm, data, makeData, taskDefaults,
  makeModel, restoreRun, warmupCosine,
} from "attend";

export interface TrainSettings {
  /** the run's total steps (the schedule's length) */
  steps: number;
  batchSize: number;
  /** peak learning rate */
  lr: number;
}

/** What `attend train` stores as a checkpoint's config. */
export type PageRunConfig = RunConfig & TrainSettings & { seed: number };

export interface ModelSizes {
  dModel: number;
  heads: number;
  /** gpt: blocks; encdec: encoder and decoder layers each; block: always 1 */
  layers: number;
}

export interface FreshOptions {
  task: string;
  model: string;
  sizes: ModelSizes;
  seed: number;
  train: TrainSettings;
}

/** As trainModel: warm up over 5% of the steps, then a cosine down to 10% of the peak. */
const schedule = (steps: number) => warmupCosine({ warmupSteps: Math.min(Math.ceil(steps * 0.05), steps - 1), totalSteps: steps, minFactor: 0.1 });

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Width, heads and layers from a run's model config (block: { dModel, heads }; gpt / encdec: { config: { dModel, numHeads, numLayers | numEncoderLayers } }). */
export function modelSizes(config: RunConfig): Partial<ModelSizes> {
  const mc = (config.modelConfig ?? {}) as Record<string, unknown>;
  const full = (typeof mc.config === "object" && mc.config !== null ? mc.config : {}) as Record<string, unknown>;
  return {
    dModel: num(full.dModel) ?? num(mc.dModel),
    heads: num(full.numHeads) ?? num(mc.heads),
    layers: num(full.numLayers) ?? num(full.numEncoderLayers) ?? num(mc.layers) ?? (config.model === "block" || config.model === "tiny" ? 1 : undefined),
  };
}

export class Run {
  readonly config: PageRunConfig;
  readonly data: data.DataSource;
  readonly model: SequenceModel;
  /** steps completed */
  step: number;
  /** the training loss of the last losses.length steps (those trained here, or carried in the checkpoint) */
  readonly losses: number[];
  private readonly opt: AdamW;
  private sched: LRScheduler;

  private constructor(config: PageRunConfig, source: data.DataSource, model: SequenceModel, step: number, losses: number[]) {
    this.config = config;
    this.data = source;
    this.model = model;
    this.step = step;
    this.losses = losses;
    this.opt = new AdamW(model.parameters(), { lr: config.lr, weightDecay: 0.01 });
    this.sched = new LRScheduler(this.opt, schedule(config.steps));
  }

  /** A new, untrained run, configured as `attend train --task T --model M --d-model C --heads H [--layers N] --seed S` would. */
  static fresh(o: FreshOptions): Run {
    const config: RunConfig & { seed: number } = {
      task: o.task,
      taskOptions: { ...taskDefaults(o.task).taskOptions }, // the task's data as `attend train` makes it
      dataSeed: o.seed,
      validationSize: 256,
      model: o.model,
      modelConfig: { dModel: o.sizes.dModel, heads: o.sizes.heads, ...(o.model === "block" ? {} : { layers: o.sizes.layers }), seed: o.seed },
      seed: o.seed,
    };
    const source = makeData(config);
    const model = makeModel(config, source);
    // as the CLI: store the model's resolved options, so the checkpoint does not depend on defaults
    return new Run({ ...config, modelConfig: model.toConfig?.() ?? config.modelConfig, ...o.train }, source, model, 0, []);
  }

  /** A checkpoint's run, ready to train on from its step (as `attend train --resume`). */
  static restore(ckpt: TrainingCheckpoint, name: string, losses: number[] = []): Run {
    const { config, data: source, model } = restoreRun(ckpt, name);
    const c = config as Partial<PageRunConfig>;
    const full: PageRunConfig = {
      ...config, seed: c.seed ?? config.dataSeed ?? 0, steps: c.steps ?? Math.max(ckpt.step + 1, 300), batchSize: c.batchSize ?? 32, lr: c.lr ?? 3e-3,
    };
    const run = new Run(full, source, model, ckpt.step, losses);
    if (ckpt.optimizer) run.opt.loadStateDict(ckpt.optimizer);
    if (ckpt.scheduler) run.sched.loadStateDict(ckpt.scheduler);
    return run;
  }

  /** One optimizer step on the batch of the current step; returns its loss. */
  trainStep(): number {
    const batch = data.collate(this.data.trainBatch(this.step, this.config.batchSize), this.data.vocab, this.model.layout ?? "decoder");
    this.model.train?.(true);
    const { loss } = batchLoss(this.model, batch);
    this.opt.zeroGrad();
    loss.backward();
    clipGradNorm(this.model.parameters(), 1);
    this.opt.step();
    this.sched.step();
    this.step++;
    const value = loss.item();
    this.losses.push(value);
    return value;
  }

  /** A longer or shorter run: the schedule is rebuilt for the new length, from the current step. */
  setSteps(steps: number): void {
    this.config.steps = steps;
    const state = this.sched.stateDict();
    this.sched = new LRScheduler(this.opt, schedule(steps));
    this.sched.loadStateDict(state);
  }

  /** A new peak learning rate, from the current step on. */
  setLr(lr: number): void {
    this.config.lr = lr;
    const state = this.sched.stateDict();
    this.sched.loadStateDict({ lastStep: state.lastStep, baseLrs: state.baseLrs.map(() => lr) });
  }

  setBatchSize(batchSize: number): void {
    this.config.batchSize = batchSize;
  }

  /** The learning rate of the next step. */
  get lr(): number {
    return this.opt.paramGroups[0].lr;
  }

  /** What `attend train` would save at this point. */
  checkpoint(): TrainingCheckpoint {
    return {
      step: this.step, config: { ...this.config }, model: this.model.stateDict(), optimizer: this.opt.stateDict(), scheduler: this.sched.stateDict(),
    };
  }
}
