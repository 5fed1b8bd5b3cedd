/**
 * Optimizer: what SGD and AdamW share, with torch.optim's structure. Parameters come in groups,
 * each with its own hyperparameters; per-parameter state (momentum buffers, moment estimates) is
 * kept beside them; step() updates every parameter that has a .grad, in place, under noGrad.
 *
 * The state dict has PyTorch's layout: parameters are numbered 0.. across groups in order, `state`
 * maps that number to the parameter's step count and buffers, `paramGroups` holds each group's
 * hyperparameters and the numbers of its parameters. A run resumes from it exactly.
 */
import { noGrad } from "../autograd/tape.js";
import { type FloatArray, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { sameShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions } from "../tensor/validate.js";
import { clone } from "../ops/elementwise.js";

/** One group as the caller gives it: parameters plus overrides of the optimizer's defaults. */
export type ParamGroupInput<H> = Partial<H> & {
  params: Iterable<Tensor> | Map<string, Tensor>;
  /** a label for the group (e.g. "decay" / "no_decay"); kept in the state dict */
  name?: string;
};

/** Parameters: a list (module.parameters()), a name → tensor map (namedParameters()) or groups. */
export type ParamsInput<H> = Iterable<Tensor> | Map<string, Tensor> | ParamGroupInput<H>[];

export type ParamGroup<H> = H & {
  params: Tensor[];
  name?: string;
};

/** Hyperparameter values a state dict can carry. */
export type HyperValue = number | boolean | string | readonly number[];

export interface ParamState {
  /** how many updates this parameter has received */
  step: number;
  /** PyTorch's buffer names: momentum_buffer, exp_avg, exp_avg_sq, max_exp_avg_sq */
  buffers: Record<string, Tensor>;
}

export interface OptimizerStateDict {
  state: Record<number, ParamState>;
  paramGroups: Array<Record<string, HyperValue> & { params: number[] }>;
}

/** What an update sees of one parameter: its data, its gradient and its buffers (all flat). */
export interface UpdateContext {
  param: FloatArray;
  grad: FloatArray;
  state: ParamState;
  /** a buffer of the parameter's size and dtype, created as zeros (or by init) on first use */
  buffer(name: string, init?: (b: FloatArray) => void): FloatArray;
  /** whether the buffer exists yet */
  hasBuffer(name: string): boolean;
}

function isGroupList<H>(p: ParamsInput<H>): p is ParamGroupInput<H>[] {
  return Array.isArray(p) && p.length > 0 && !(p[0] instanceof Tensor);
}

function paramList(fn: string, where: string, ps: Iterable<Tensor> | Map<string, Tensor>): Tensor[] {
  const list = ps instanceof Map ? [...ps.values()] : [...ps];
  list.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new ArgumentError(`${fn}: ${where} item ${i} is not a Tensor`);
    if (p.dtype !== "float32" && p.dtype !== "float64") throw new ArgumentError(`${fn}: ${where} item ${i} is ${p.dtype}; only float32/float64 tensors can be optimized`);
    if (!p.isLeaf) throw new ArgumentError(`${fn}: ${where} item ${i} is not a leaf tensor (it was computed by an op); optimize the leaves, e.g. module.parameters()`);
  });
  return list;
}

export abstract class Optimizer<H extends { lr: number }> {
  readonly paramGroups: ParamGroup<H>[];
  readonly defaults: Readonly<H>;
  private readonly state = new Map<Tensor, ParamState>();
  protected readonly fn: string;

  /**
   * `optionKeys` (the hyperparameter names) lets the constructor reject a misspelt key in a param
   * group; a subclass checks its own options object the same way before calling super.
   */
  constructor(fn: string, params: ParamsInput<H>, defaults: H, optionKeys?: readonly (keyof H & string)[]) {
    this.fn = fn;
    this.defaults = Object.freeze({ ...defaults });
    const inputs: ParamGroupInput<H>[] = isGroupList(params) ? params : [{ params } as ParamGroupInput<H>];
    const seen = new Set<Tensor>();
    this.paramGroups = inputs.map((g, gi) => {
      if (g === null || typeof g !== "object" || g.params === undefined) throw new ArgumentError(`${fn}: param group ${gi} must be an object with a params list`);
      if (optionKeys !== undefined) checkOptions(fn, `param group ${gi}`, g, [...optionKeys, "params", "name"]);
      const list = paramList(fn, `param group ${gi}`, g.params);
      for (const p of list) {
        if (seen.has(p)) throw new ArgumentError(`${fn}: a parameter appears twice (again in group ${gi}); each tensor may be in one group only`);
        seen.add(p);
      }
      const { params: _p, ...overrides } = g;
      const group = { ...defaults, ...overrides, params: list } as ParamGroup<H>;
      this.validate(group, gi);
      return group;
    });
    if (seen.size === 0) throw new ArgumentError(`${fn}: got an empty parameter list`);
  }

  /** Check one group's hyperparameters (throws ArgumentError naming the bad one). */
  protected abstract validate(group: H, index: number): void;

  /** Update one parameter in place from its gradient. */
  protected abstract update(ctx: UpdateContext, group: H): void;

  /** Clear every parameter's .grad (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = null;
  }

  /**
   * One update of every parameter that has a gradient; parameters without one are skipped. Every
   * gradient's shape is checked before anything is updated, so a refused step changes no parameter
   * and no state (the run can go on from where it was).
   */
  step(): void {
    noGrad(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          if (p.grad !== null && !sameShape(p.grad.shape, p.shape)) {
            throw new ShapeError(`${this.fn}.step: a gradient of shape ${fmtShape(p.grad.shape)} is attached to a parameter of shape ${fmtShape(p.shape)}`);
          }
        }
      }
      try {
        for (const group of this.paramGroups) {
          for (const p of group.params) {
            if (p.grad === null) continue;
            const st = this.stateOf(p);
            st.step += 1;
            this.update(this.context(p, st), group);
          }
        }
      } finally {
        // also when an update throws: what update() has collected is applied now (their steps were
        // counted), never left to be applied again by the next step
        this.finishStep();
      }
    });
  }

  /**
   * Called once at the end of step(), after update() has seen every parameter: an optimizer whose
   * update() only collects its parameters (AdamW, to update them all in one kernel call) does the work here.
   */
  protected finishStep(): void {}

  private stateOf(p: Tensor): ParamState {
    let st = this.state.get(p);
    if (st === undefined) {
      st = { step: 0, buffers: {} };
      this.state.set(p, st);
    }
    return st;
  }

  private context(p: Tensor, st: ParamState): UpdateContext {
    const grad = p.grad!;
    return {
      param: p.values as FloatArray,
      grad: (grad.dtype === p.dtype ? grad.values : Float64Array.from(grad.values)) as FloatArray,
      state: st,
      hasBuffer: (name) => name in st.buffers,
      buffer: (name, init) => {
        let b = st.buffers[name];
        if (b === undefined) {
          b = new Tensor(allocate(p.dtype, p.size), p.shape, p.dtype);
          if (init) init(b.values as FloatArray);
          st.buffers[name] = b;
        }
        return b.values as FloatArray;
      },
    };
  }

  /** Every parameter in group order: the numbering the state dict uses. */
  private orderedParams(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** A snapshot: buffers are copied, so later steps do not change it. */
  stateDict(): OptimizerStateDict {
    const state: Record<number, ParamState> = {};
    this.orderedParams().forEach((p, i) => {
      const st = this.state.get(p);
      if (st === undefined) return;
      const buffers: Record<string, Tensor> = {};
      for (const [k, b] of Object.entries(st.buffers)) buffers[k] = clone(b);
      state[i] = { step: st.step, buffers };
    });
    let next = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const { params, ...hyper } = g;
      const ids = params.map(() => next++);
      return { ...(structuredClone(hyper) as Record<string, HyperValue>), params: ids };
    });
    return { state, paramGroups };
  }

  /**
   * Restore a state dict from stateDict() (possibly saved and loaded). The groups must have the same
   * sizes and the buffers the parameters' shapes; hyperparameters are taken from the dict, as in
   * PyTorch. Nothing changes unless the whole dict fits.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const fn = `${this.fn}.loadStateDict`;
    if (sd === null || typeof sd !== "object" || !Array.isArray(sd.paramGroups) || sd.state === null || typeof sd.state !== "object") {
      throw new ArgumentError(`${fn}: expected { state, paramGroups } as returned by stateDict()`);
    }
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new ArgumentError(`${fn}: the state dict has ${sd.paramGroups.length} param groups, this optimizer has ${this.paramGroups.length}`);
    }
    sd.paramGroups.forEach((g, gi) => {
      const n = this.paramGroups[gi].params.length;
      if (!Array.isArray(g.params) || g.params.length !== n) {
        throw new ArgumentError(`${fn}: param group ${gi} has ${Array.isArray(g.params) ? g.params.length : "no"} parameters in the state dict, ${n} here`);
      }
    });
    const ordered = this.orderedParams();
    const byId = new Map<number, Tensor>();
    sd.paramGroups.forEach((g, gi) => g.params.forEach((id, j) => byId.set(id, this.paramGroups[gi].params[j])));
    const restored = new Map<Tensor, ParamState>();
    for (const [key, st] of Object.entries(sd.state)) {
      const p = byId.get(Number(key));
      if (p === undefined) throw new ArgumentError(`${fn}: state for parameter ${key}, which no group lists (0..${ordered.length - 1})`);
      if (st === null || typeof st !== "object" || !Number.isInteger(st.step) || st.step < 0 || typeof st.buffers !== "object") {
        throw new ArgumentError(`${fn}: state ${key} must be { step: non-negative integer, buffers }`);
      }
      const buffers: Record<string, Tensor> = {};
      for (const [name, b] of Object.entries(st.buffers)) {
        if (!(b instanceof Tensor)) throw new ArgumentError(`${fn}: state ${key}.${name} is not a Tensor`);
        if (!sameShape(b.shape, p.shape)) throw new ShapeError(`${fn}: state ${key}.${name} has shape ${fmtShape(b.shape)}, the parameter has ${fmtShape(p.shape)}`);
        const data = allocate(p.dtype, p.size);
        data.set(b.values);
        buffers[name] = new Tensor(data, p.shape, p.dtype);
      }
      restored.set(p, { step: st.step, buffers });
    }
    const hypers = sd.paramGroups.map((g, gi) => {
      const { params: _ids, ...hyper } = g;
      const merged = { ...this.paramGroups[gi], ...(structuredClone(hyper) as Partial<H>) };
      this.validate(merged, gi);
      return merged;
    });
    hypers.forEach((h, gi) => Object.assign(this.paramGroups[gi], h, { params: this.paramGroups[gi].params }));
    this.state.clear();
    for (const [p, st] of restored) this.state.set(p, st);
  }
}

// Validation helpers shared by the optimizers.

export function checkNonNegative(fn: string, name: string, v: unknown, gi: number): void {
  if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) throw new ArgumentError(`${fn}: ${name} must be a finite number >= 0, got ${String(v)} (param group ${gi})`);
}

export function checkUnit(fn: string, name: string, v: unknown, gi: number): void {
  if (typeof v !== "number" || !(v >= 0 && v < 1)) throw new ArgumentError(`${fn}: ${name} must be in [0, 1), got ${String(v)} (param group ${gi})`);
}

export function checkBool(fn: string, name: string, v: unknown, gi: number): void {
  if (typeof v !== "boolean") throw new ArgumentError(`${fn}: ${name} must be a boolean, got ${typeof v} (param group ${gi})`);
}
