/**
 * Stochastic gradient descent with momentum, torch.optim.SGD's update:
 *   d = g + weightDecay · p                          (L2 penalty folded into the gradient)
 *   b = d (first step),  b = momentum · b + (1 - dampening) · d
 *   d = nesterov ? d + momentum · b : b
 *   p = p - lr · d                                   (maximize: ascend, d starts from -g)
 */
import { ArgumentError } from "../tensor/errors.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { type ParamsInput, type UpdateContext, Optimizer, checkBool, checkNonNegative } from "./optimizer.js";

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}
export const SGD_OPTION_KEYS = optionKeys<SGDOptions>({ lr: true, momentum: true, dampening: true, weightDecay: true, nesterov: true, maximize: true });

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsInput<SGDOptions>, opts: Partial<SGDOptions> & { lr: number }) {
    if (opts !== null && typeof opts === "object") checkOptions("SGD", "options", opts, SGD_OPTION_KEYS);
    if (opts === null || typeof opts !== "object" || opts.lr === undefined) {
      throw new ArgumentError("SGD: needs a learning rate, e.g. new SGD(model.parameters(), { lr: 0.1 })");
    }
    super("SGD", params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false, ...opts }, SGD_OPTION_KEYS);
  }

  protected validate(g: SGDOptions, gi: number): void {
    checkNonNegative(this.fn, "lr", g.lr, gi);
    checkNonNegative(this.fn, "momentum", g.momentum, gi);
    checkNonNegative(this.fn, "dampening", g.dampening, gi);
    checkNonNegative(this.fn, "weightDecay", g.weightDecay, gi);
    checkBool(this.fn, "nesterov", g.nesterov, gi);
    checkBool(this.fn, "maximize", g.maximize, gi);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) {
      throw new ArgumentError(`${this.fn}: nesterov needs momentum > 0 and dampening 0, got momentum ${g.momentum}, dampening ${g.dampening} (param group ${gi})`);
    }
  }

  protected update(ctx: UpdateContext, g: SGDOptions): void {
    const { param: p, grad } = ctx;
    const { lr, momentum: mu, dampening, weightDecay: wd, nesterov, maximize } = g;
    const first = !ctx.hasBuffer("momentum_buffer");
    const buf = mu !== 0 ? ctx.buffer("momentum_buffer") : null;
    for (let i = 0; i < p.length; i++) {
      let d = maximize ? -grad[i] : grad[i];
      if (wd !== 0) d += wd * p[i];
      if (buf !== null) {
        buf[i] = first ? d : mu * buf[i] + (1 - dampening) * d;
        d = nesterov ? d + mu * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
}
