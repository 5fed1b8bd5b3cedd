/**
 * ModuleList: an indexed list of submodules registered as "0", "1", ..., so their parameters are
 * named "blocks.0.attn.in_proj_weight" as in torch.nn.ModuleList.
 */
import { ArgumentError } from "../tensor/errors.js";
import { Module } from "./module.js";

export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    if (!(m instanceof Module)) throw new ArgumentError(`ModuleList.append: expected a Module, got ${m === null ? "null" : typeof m}`);
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i < 0 ? this.items.length + i : i];
    if (m === undefined) throw new ArgumentError(`ModuleList.at: index ${i} is out of range for ${this.items.length} modules`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
