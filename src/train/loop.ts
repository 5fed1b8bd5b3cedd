/**
 * The training loop: AdamW with linear warm-up and cosine decay, gradient clipping, a validation
 * pass at intervals, progress on a terminal, and checkpoints.
 *
 * Reproducible bit for bit: the batch of step s is a pure function of (data seed, s) and the model is
 * initialised from its own seed, so two runs with the same seeds compute the same numbers, and a run
 * resumed from a checkpoint continues exactly as if it had not stopped.
 *
 * Interrupting: when `signal` aborts (the CLI wires Ctrl-C to it), the loop stops after the current
 * step, writes a checkpoint atomically and returns with interrupted: true. It yields to the event
 * loop after every step so the signal can arrive.
 */
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { ArgumentError } from "../tensor/errors.js";
import { AdamW } from "../optim/adamw.js";
import { clipGradNorm } from "../optim/clip.js";
import { LRScheduler, warmupCosine } from "../optim/schedules.js";
import { collate } from "../data/batch.js";
import { accuracy } from "../data/metrics.js";
import type { DataSource } from "../data/splits.js";
import { type TrainingCheckpoint, saveTrainingCheckpoint } from "./checkpoint.js";
import { type Evaluation, batchLoss, evaluateModel } from "./evaluate.js";
import type { SequenceModel } from "./model.js";
import { Progress, type ProgressStream } from "./progress.js";
import { backward } from "../autograd/backward.js";

export interface TrainOptions {
  /** total steps of the run (a resumed run continues up to this) */
  steps: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  /** default: 5% of the steps */
  warmupSteps?: number;
  /** clip the global gradient norm to this (default 1; 0 = no clipping) */
  clipNorm?: number;
  /** seeds the training batches */
  seed?: number;
  /** validate every this many steps (default steps / 5; 0 = only at the end) */
  evalEvery?: number;
  /**
   * validation examples used at intervals: the first this many (default all), a cheaper look at
   * progress, its line labelled "(N of M examples)"; the final validation always uses all
   */
  evalExamples?: number;
  /** where checkpoints go (at the end, on interrupt, and every checkpointEvery steps) */
  checkpointPath?: string;
  checkpointEvery?: number;
  /** stored in the checkpoint: what rebuilds the model and data */
  config?: Record<string, unknown>;
  /** continue from this checkpoint (model weights, optimizer, scheduler, step) */
  resume?: TrainingCheckpoint;
  /** stop early (Ctrl-C), saving a checkpoint */
  signal?: AbortSignal;
  /** where progress goes (default none); a TTY gets a live bar */
  progress?: ProgressStream;
  /** non-TTY progress: a line every this many steps (default 50) */
  logEvery?: number;
}

export interface TrainResult {
  task: string;
  /** steps completed (including those before a resume) */
  steps: number;
  seconds: number;
  trainLoss: number;
  valLoss: number;
  valAccuracy: number;
  seqAccuracy: number;
  tokensPerSecond: number;
  checkpoint: string | null;
  interrupted: boolean;
  /** validation results along the way */
  history: Array<{ step: number } & Evaluation>;
}

function positiveInt(name: string, v: unknown, allowZero = false): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < (allowZero ? 0 : 1)) {
    throw new ArgumentError(`train: ${name} must be an integer >= ${allowZero ? 0 : 1}, got ${String(v)}`);
  }
  return v;
}

export async function trainModel(model: SequenceModel, data: DataSource, opts: TrainOptions): Promise<TrainResult> {
  const steps = positiveInt("steps", opts.steps);
  const batchSize = positiveInt("batchSize", opts.batchSize ?? 32);
  const seed = opts.seed ?? 0;
  const evalEvery = positiveInt("evalEvery", opts.evalEvery ?? Math.max(1, Math.floor(steps / 5)), true);
  const clipNorm = opts.clipNorm ?? 1;
  const warmup = Math.min(opts.warmupSteps ?? Math.ceil(steps * 0.05), steps - 1);
  const opt = new AdamW(model.parameters(), { lr: opts.lr ?? 3e-3, weightDecay: opts.weightDecay ?? 0.01 });
  const sched = new LRScheduler(opt, warmupCosine({ warmupSteps: warmup, totalSteps: steps, minFactor: 0.1 }));
  let step = 0;
  if (opts.resume) {
    if (!model.loadStateDict) throw new ArgumentError("train: this model has no loadStateDict, so it cannot resume from a checkpoint");
    model.loadStateDict(opts.resume.model);
    if (opts.resume.optimizer) opt.loadStateDict(opts.resume.optimizer);
    if (opts.resume.scheduler) sched.loadStateDict(opts.resume.scheduler);
    step = opts.resume.step;
    if (step > steps) throw new ArgumentError(`train: the checkpoint is at step ${step}, past the ${steps} steps asked for`);
  }
  const vocab = data.vocab;
  const validation = data.validation;
  const evalSubset = validation.slice(0, positiveInt("evalExamples", opts.evalExamples ?? Math.max(1, validation.length)));
  const subsetNote = evalSubset.length < validation.length ? ` (${evalSubset.length} of ${validation.length} examples)` : "";
  const params = model.parameters();
  const progress = opts.progress ? new Progress(opts.progress, steps, step, opts.logEvery ?? 50) : null;
  const history: TrainResult["history"] = [];
  const started = performance.now();
  let tokens = 0;
  let trainLoss = NaN;
  let interrupted = false;
  let checkpoint: string | null = null;

  const save = (): void => {
    if (!opts.checkpointPath) return;
    saveTrainingCheckpoint(opts.checkpointPath, {
      step, config: opts.config ?? {}, model: model.stateDict(), optimizer: opt.stateDict(), scheduler: sched.stateDict(),
    });
    checkpoint = opts.checkpointPath;
  };

  model.train?.(true);
  while (step < steps) {
    if (opts.signal?.aborted) {
      interrupted = true;
      break;
    }
    const batch = collate(data.trainBatch(step, batchSize), vocab, model.layout ?? "decoder");
    const { loss, logits } = batchLoss(model, batch);
    opt.zeroGrad();
    backward(loss);
    if (clipNorm > 0) clipGradNorm(params, clipNorm);
    opt.step();
    sched.step();
    step++;
    trainLoss = loss.item();
    tokens += batch.tokens.size;
    const seconds = (performance.now() - started) / 1000;
    progress?.update(step, { loss: trainLoss, accuracy: accuracy(logits, batch.targets).tokenAccuracy, tokensPerSecond: tokens / seconds });
    if (evalEvery > 0 && step % evalEvery === 0 && step < steps) {
      const ev = evaluateModel(model, evalSubset, vocab);
      history.push({ step, ...ev });
      progress?.line(`validation @ ${step}${subsetNote}: loss ${ev.loss.toFixed(4)}  token acc ${(100 * ev.tokenAccuracy).toFixed(1)}%  sequence acc ${(100 * ev.sequenceAccuracy).toFixed(1)}%`);
    }
    if (opts.checkpointEvery && step % opts.checkpointEvery === 0 && step < steps) save();
    await yieldToEventLoop();
  }
  progress?.done();
  const seconds = (performance.now() - started) / 1000;
  save();
  const final = evaluateModel(model, validation, vocab);
  if (!interrupted) history.push({ step, ...final });
  progress?.line(`${interrupted ? "interrupted" : "done"} at step ${step}: validation loss ${final.loss.toFixed(4)}  token acc ${(100 * final.tokenAccuracy).toFixed(1)}%  sequence acc ${(100 * final.sequenceAccuracy).toFixed(1)}%${checkpoint ? `  checkpoint ${checkpoint}` : ""}`);
  return {
    task: data.name,
    steps: step,
    seconds,
    trainLoss,
    valLoss: final.loss,
    valAccuracy: final.tokenAccuracy,
    seqAccuracy: final.sequenceAccuracy,
    tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
    checkpoint,
    interrupted,
    history,
  };
}
