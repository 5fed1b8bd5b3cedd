/**
 * Learning-rate schedules. A Schedule maps a step number (0, 1, 2, ...) to a multiplier of each
 * group's base learning rate; LRScheduler applies it to an optimizer, like torch's LambdaLR: the
 * constructor sets step 0's rate, each step() moves on one.
 */
import { ArgumentError } from "../tensor/errors.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import type { Optimizer } from "./optimizer.js";

export type Schedule = (step: number) => number;

export interface WarmupCosineOptions {
  warmupSteps: number;
  /** the step at which the cosine reaches its floor (warm-up included) */
  totalSteps: number;
  /** multiplier at step 0 (default 1 / warmupSteps), rising linearly to 1 at warmupSteps */
  startFactor?: number;
  /** the floor, as a fraction of the base rate (default 0) */
  minFactor?: number;
}
export const WARMUP_COSINE_OPTION_KEYS = optionKeys<WarmupCosineOptions>({ warmupSteps: true, totalSteps: true, startFactor: true, minFactor: true });

/** A schedule's options object is required (it holds the step counts); unknown keys are rejected. */
function checkRequiredOptions(fn: string, opts: unknown, keys: readonly string[]): void {
  if (opts === undefined) throw new ArgumentError(`${fn}: needs an options object { ${keys.join(", ")} }`);
  checkOptions(fn, "options", opts, keys);
}

function checkInt(fn: string, name: string, v: unknown, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw new ArgumentError(`${fn}: ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

function checkFactor(fn: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw new ArgumentError(`${fn}: ${name} must be in [0, 1], got ${String(v)}`);
  return v;
}

/**
 * Linear warm-up, then cosine decay (torch's LinearLR followed by CosineAnnealingLR):
 *   s < W:        start + (1 - start) · s / W
 *   W <= s <= T:  min + (1 - min) · (1 + cos(π (s - W) / (T - W))) / 2
 *   s > T:        min
 */
export function warmupCosine(opts: WarmupCosineOptions): Schedule {
  const fn = "warmupCosine";
  checkRequiredOptions(fn, opts, WARMUP_COSINE_OPTION_KEYS);
  const W = checkInt(fn, "warmupSteps", opts.warmupSteps, 0);
  const T = checkInt(fn, "totalSteps", opts.totalSteps, 1);
  if (T <= W) throw new ArgumentError(`${fn}: totalSteps (${T}) must be larger than warmupSteps (${W})`);
  const start = checkFactor(fn, "startFactor", opts.startFactor ?? (W > 0 ? 1 / W : 1));
  const floor = checkFactor(fn, "minFactor", opts.minFactor ?? 0);
  return (s) => {
    if (s < W) return start + ((1 - start) * s) / W;
    if (s >= T) return floor;
    return floor + ((1 - floor) * (1 + Math.cos((Math.PI * (s - W)) / (T - W)))) / 2;
  };
}

export interface InverseSqrtOptions {
  dModel: number;
  warmupSteps: number;
  /** scales the whole curve (the Annotated Transformer's "factor"; default 1) */
  factor?: number;
}
export const INVERSE_SQRT_OPTION_KEYS = optionKeys<InverseSqrtOptions>({ dModel: true, warmupSteps: true, factor: true });

/**
 * "Attention Is All You Need", section 5.3:  lr = dModel^-0.5 · min(s^-0.5, s · W^-1.5)
 * (step 0 counts as step 1). The formula gives the rate itself, so use a base lr of 1.
 * It rises linearly for W steps, peaks at (dModel · W)^-0.5, then falls as 1/sqrt(s).
 */
export function inverseSqrtWarmup(opts: InverseSqrtOptions): Schedule {
  const fn = "inverseSqrtWarmup";
  checkRequiredOptions(fn, opts, INVERSE_SQRT_OPTION_KEYS);
  const d = checkInt(fn, "dModel", opts.dModel, 1);
  const W = checkInt(fn, "warmupSteps", opts.warmupSteps, 1);
  const factor = opts.factor ?? 1;
  if (typeof factor !== "number" || !(factor > 0) || !Number.isFinite(factor)) throw new ArgumentError(`${fn}: factor must be a positive number, got ${String(factor)}`);
  return (step) => {
    const s = Math.max(step, 1);
    return factor * d ** -0.5 * Math.min(s ** -0.5, s * W ** -1.5);
  };
}

export const constantSchedule: Schedule = () => 1;

export interface LRSchedulerState {
  lastStep: number;
  baseLrs: number[];
}

export class LRScheduler {
  private readonly optimizer: Optimizer<{ lr: number }>;
  private readonly schedule: Schedule;
  private baseLrs: number[];
  private _lastStep = 0;

  constructor(optimizer: Optimizer<{ lr: number }>, schedule: Schedule) {
    if (typeof schedule !== "function") throw new ArgumentError("LRScheduler: schedule must be a function (step) => multiplier");
    this.optimizer = optimizer;
    this.schedule = schedule;
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }

  /** The step the current rates belong to (0 right after construction). */
  get lastStep(): number {
    return this._lastStep;
  }

  /** The current learning rate of each group. */
  lrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  /** Advance one step (call after optimizer.step()). */
  step(): void {
    this._lastStep += 1;
    this.apply();
  }

  private apply(): void {
    const f = this.schedule(this._lastStep);
    if (!Number.isFinite(f) || f < 0) throw new ArgumentError(`LRScheduler: the schedule gave ${f} at step ${this._lastStep}; it must be a finite number >= 0`);
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = this.baseLrs[i] * f;
    });
  }

  stateDict(): LRSchedulerState {
    return { lastStep: this._lastStep, baseLrs: [...this.baseLrs] };
  }

  loadStateDict(sd: LRSchedulerState): void {
    if (sd === null || typeof sd !== "object" || !Number.isInteger(sd.lastStep) || !Array.isArray(sd.baseLrs) || sd.baseLrs.length !== this.baseLrs.length) {
      throw new ArgumentError(`LRScheduler.loadStateDict: expected { lastStep, baseLrs } with ${this.baseLrs.length} base rates`);
    }
    this._lastStep = sd.lastStep;
    this.baseLrs = [...sd.baseLrs];
    this.apply();
  }
}
