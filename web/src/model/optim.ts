/**
 * Adam (Kingma & Ba), written on the library's public tensors: parameters are updated in place
 * under noGrad, as torch.optim.Adam does. Kept here, beside the page's tiny model, until the library
 * exports its own optimizers.
 *   m = β1 m + (1 − β1) g,   v = β2 v + (1 − β2) g²,   p −= lr · m̂ / (√v̂ + ε)
 */
import { type Tensor, noGrad } from "attend";

export class Adam {
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];
  private t = 0;

  constructor(private readonly params: Tensor[], public lr = 3e-3, private readonly betas: [number, number] = [0.9, 0.98], private readonly eps = 1e-8) {
    this.m = params.map((p) => new Float64Array(p.size));
    this.v = params.map((p) => new Float64Array(p.size));
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  step(): void {
    this.t++;
    const [b1, b2] = this.betas;
    const c1 = 1 - b1 ** this.t, c2 = 1 - b2 ** this.t;
    noGrad(() => {
      this.params.forEach((p, k) => {
        if (!p.grad) return;
        const g = p.grad.data, m = this.m[k], v = this.v[k], d = p.data;
        for (let i = 0; i < d.length; i++) {
          m[i] = b1 * m[i] + (1 - b1) * g[i];
          v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
          d[i] -= (this.lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + this.eps);
        }
      });
    });
  }
}
