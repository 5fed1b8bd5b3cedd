/**
 * Module: a named tree of parameters, buffers and submodules, with PyTorch's names and state-dict
 * layout, so a PyTorch state dict loads unchanged ("out_proj.weight", "in_proj_bias", ...).
 */
import { noGrad } from "../autograd/tape.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { sameShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";

export type StateDict = Record<string, Tensor>;

export class StateDictError extends ArgumentError {}

export interface LoadStateDictOptions {
  /** every parameter and buffer must be given, and nothing else (default true) */
  strict?: boolean;
}
export const LOAD_STATE_DICT_OPTION_KEYS = optionKeys<LoadStateDictOptions>({ strict: true });

export class Module {
  /** train() / eval() switch: dropout is active only while training */
  training = true;
  private readonly _parameters = new Map<string, Tensor | null>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _modules = new Map<string, Module | null>();

  /** Register a trainable tensor (it is marked requiresGrad) and return it. */
  protected registerParameter<T extends Tensor | null>(name: string, t: T): T {
    if (t !== null) t.requiresGrad = true;
    this._parameters.set(name, t);
    return t;
  }

  /** Register state that is saved and loaded but not trained. */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this._buffers.set(name, t);
    return t;
  }

  protected registerModule<M extends Module | null>(name: string, m: M): M {
    this._modules.set(name, m);
    return m;
  }

  /** Replace a registered parameter's tensor (used by loadStateDict-style code and tests). */
  protected setParameter(name: string, t: Tensor): void {
    if (!this._parameters.has(name)) throw new ArgumentError(`${this.constructor.name}: no parameter named ${name}`);
    t.requiresGrad = true;
    this._parameters.set(name, t);
    (this as unknown as Record<string, Tensor>)[name] = t;
  }

  /** Parameters by dotted name, own first, then each submodule's in registration order. */
  namedParameters(prefix = ""): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, p] of this._parameters) if (p !== null) out.set(prefix + n, p);
    for (const [n, m] of this._modules) if (m !== null) for (const [k, v] of m.namedParameters(`${prefix}${n}.`)) out.set(k, v);
    return out;
  }

  namedBuffers(prefix = ""): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, b] of this._buffers) out.set(prefix + n, b);
    for (const [n, m] of this._modules) if (m !== null) for (const [k, v] of m.namedBuffers(`${prefix}${n}.`)) out.set(k, v);
    return out;
  }

  parameters(): Tensor[] {
    return [...this.namedParameters().values()];
  }

  namedModules(prefix = ""): Map<string, Module> {
    const out = new Map<string, Module>([[prefix.replace(/\.$/, ""), this]]);
    for (const [n, m] of this._modules) if (m !== null) for (const [k, v] of m.namedModules(`${prefix}${n}.`)) out.set(k, v);
    return out;
  }

  /** Total number of trainable scalars. */
  numParameters(): number {
    let n = 0;
    for (const p of this.parameters()) n += p.size;
    return n;
  }

  /** Parameters and buffers by name (tensors detached from the graph, sharing storage). */
  stateDict(): StateDict {
    const out: StateDict = {};
    const own = (m: Module, prefix: string): void => {
      for (const [n, p] of m._parameters) if (p !== null) out[prefix + n] = p.detach();
      for (const [n, b] of m._buffers) out[prefix + n] = b.detach();
      for (const [n, c] of m._modules) if (c !== null) own(c, `${prefix}${n}.`);
    };
    own(this, "");
    return out;
  }

  /**
   * Copy values in by name. Every entry must exist with the same shape, and (strict, the default)
   * every parameter and buffer must be given. Values are converted to each parameter's dtype.
   * Nothing is changed unless the whole dict fits.
   */
  loadStateDict(state: StateDict | Map<string, Tensor>, opts: LoadStateDictOptions = {}): void {
    const fn = `${this.constructor.name}.loadStateDict`;
    if (state === null || typeof state !== "object") throw new StateDictError(`${fn}: expected a record of tensors, got ${state === null ? "null" : typeof state}`);
    checkOptions(fn, "options", opts, LOAD_STATE_DICT_OPTION_KEYS);
    const strict = opts.strict ?? true;
    const given = state instanceof Map ? state : new Map(Object.entries(state));
    const targets = new Map<string, Tensor>([...this.namedParameters(), ...this.namedBuffers()]);
    const missing = [...targets.keys()].filter((k) => !given.has(k));
    const extra = [...given.keys()].filter((k) => !targets.has(k));
    if (strict && (missing.length > 0 || extra.length > 0)) {
      const parts: string[] = [];
      if (missing.length > 0) parts.push(`missing ${missing.join(", ")}`);
      if (extra.length > 0) parts.push(`unexpected ${extra.join(", ")}`);
      throw new StateDictError(`${fn}: the state dict does not match the module: ${parts.join("; ")} (expected keys: ${[...targets.keys()].join(", ")})`);
    }
    for (const [k, v] of given) {
      const t = targets.get(k);
      if (t === undefined) continue;
      if (!(v instanceof Tensor)) throw new StateDictError(`${fn}: entry ${k} is not a Tensor`);
      if (!sameShape(v.shape, t.shape)) {
        throw new ShapeError(`${fn}: entry ${k} has shape ${fmtShape(v.shape)} but the module's ${k} has shape ${fmtShape(t.shape)}`);
      }
    }
    noGrad(() => {
      for (const [k, v] of given) {
        const t = targets.get(k);
        if (t !== undefined) t.values.set(v.values);
      }
    });
  }

  train(mode = true): this {
    for (const m of this.namedModules().values()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Clear every parameter's .grad. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }
}
