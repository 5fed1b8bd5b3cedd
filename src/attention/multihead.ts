/**
 * Multi-head attention, torch.nn.MultiheadAttention's options, shapes and parameter names: the
 * attention core (attentionCore.ts) with Hkv = H, PyTorch's parameter layout and its extras.
 * Each of H heads attends in its own E/H-dim subspace; the parameter count does not depend on H
 * (the projections are [E, E] however they are cut into heads).
 *
 * Two deliberate differences from PyTorch: a bool attnMask means true = may attend (as everywhere in
 * this library; PyTorch's module uses true = masked), and isCausal works without a mask.
 * Fully masked query rows give zero attention (output = out_proj.bias) instead of NaN.
 */
import { Tensor } from "../tensor/tensor.js";
import { isGradEnabled } from "../autograd/tape.js";
import { zeros } from "../tensor/creation.js";
import { checkOptions } from "../tensor/validate.js";
import { linear } from "../ops/functional.js";
import { concat, expand, reshape, slice } from "../ops/shape.js";
import { Linear } from "../nn/linear.js";
import { xavierNormal, xavierUniform } from "../nn/init.js";
import { type AttentionCoreOptions, AttentionCore, CORE_OPTIONS } from "./attentionCore.js";

/**
 * Rows [from, to) of a parameter (a third of in_proj): a slice op when a gradient must flow back
 * into it, else a view of the same storage (rows along the first dim are contiguous), which saves
 * copying the weights at every decode step.
 */
function rows(w: Tensor, from: number, to: number): Tensor {
  if (isGradEnabled() && w.requiresGrad) return slice(w, 0, from, to);
  const inner = w.size / w.shape[0];
  return new Tensor(w.values.subarray(from * inner, to * inner), [to - from, ...w.shape.slice(1)], w.dtype);
}

export interface MultiheadAttentionOptions extends AttentionCoreOptions {
  bias?: boolean;
  /** append learned bias_k / bias_v as one extra key/value position */
  addBiasKv?: boolean;
  /** append an all-zero key/value position (after the heads are split) */
  addZeroAttn?: boolean;
}

const OPTIONS = [...CORE_OPTIONS, "bias", "addBiasKv", "addZeroAttn"];

export class MultiheadAttention extends AttentionCore {
  readonly addZeroAttn: boolean;
  /** q, k and v projections stacked [3E, E] when kdim = vdim = E */
  in_proj_weight: Tensor | null;
  q_proj_weight: Tensor | null;
  k_proj_weight: Tensor | null;
  v_proj_weight: Tensor | null;
  in_proj_bias: Tensor | null;
  bias_k: Tensor | null;
  bias_v: Tensor | null;
  out_proj: Linear;

  constructor(embedDim: number, numHeads: number, opts: MultiheadAttentionOptions = {}) {
    checkOptions("MultiheadAttention", "opts", opts, OPTIONS);
    const addBiasKv = opts.addBiasKv ?? false;
    const addZeroAttn = opts.addZeroAttn ?? false;
    super("MultiheadAttention", embedDim, { H: numHeads, Hkv: numHeads, names: ["numHeads", "numHeads"] }, opts, addBiasKv || addZeroAttn);
    this.addZeroAttn = addZeroAttn;
    const g = this.gen;
    const dtype = opts.dtype ?? "float32";
    const E = embedDim;
    const same = this.kdim === E && this.vdim === E;
    // Registration order gives PyTorch's state-dict order.
    this.in_proj_weight = this.registerParameter("in_proj_weight", same ? xavierUniform([3 * E, E], g, dtype) : null);
    this.q_proj_weight = this.registerParameter("q_proj_weight", same ? null : xavierUniform([E, E], g, dtype));
    this.k_proj_weight = this.registerParameter("k_proj_weight", same ? null : xavierUniform([E, this.kdim], g, dtype));
    this.v_proj_weight = this.registerParameter("v_proj_weight", same ? null : xavierUniform([E, this.vdim], g, dtype));
    this.in_proj_bias = this.registerParameter("in_proj_bias", opts.bias === false ? null : zeros([3 * E], { dtype }));
    this.bias_k = this.registerParameter("bias_k", addBiasKv ? xavierNormal([1, 1, E], g, dtype) : null);
    this.bias_v = this.registerParameter("bias_v", addBiasKv ? xavierNormal([1, 1, E], g, dtype) : null);
    this.out_proj = this.registerModule("out_proj", new Linear(E, E, { bias: opts.bias !== false, generator: g, dtype }));
    if (this.out_proj.bias) this.out_proj.bias.values.fill(0);
    this.registerSinks(dtype);
  }

  /** q [N, L, E] from the query (the first third of in_proj). */
  protected projectQuery(q: Tensor): Tensor {
    const E = this.embedDim;
    const bq = this.in_proj_bias && rows(this.in_proj_bias, 0, E);
    return linear(q, this.in_proj_weight ? rows(this.in_proj_weight, 0, E) : this.q_proj_weight!, bq);
  }

  /** k [N, S, E] and v [N, S, E] from key and value (the second and last thirds of in_proj). */
  protected projectKeyValue(k: Tensor, v: Tensor): [Tensor, Tensor] {
    const E = this.embedDim;
    const b = this.in_proj_bias;
    const bk = b && rows(b, E, 2 * E);
    const bv = b && rows(b, 2 * E, 3 * E);
    if (this.in_proj_weight) {
      const w = this.in_proj_weight;
      return [linear(k, rows(w, E, 2 * E), bk), linear(v, rows(w, 2 * E, 3 * E), bv)];
    }
    return [linear(k, this.k_proj_weight!, bk), linear(v, this.v_proj_weight!, bv)];
  }

  /**
   * Self-attention (query = key = value) with in_proj: q, k, v from one product with all of in_proj,
   * [N, L, E] -> [N, L, 3E], side by side: what projectQuery and projectKeyValue compute, in one
   * kernel call instead of three (PyTorch's _in_projection_packed does the same). A decode step's
   * calls are mostly overhead; a training step's backward then also takes one product for dx
   * (summing over all 3E columns at once: the three products' sum up to float rounding), one for
   * dW and one bias column sum, instead of three each and the slices' scatter into in_proj's
   * gradient (test/decode.test.ts compares both ways, values and gradients).
   */
  protected override projectSelf(x: Tensor): Tensor | null {
    const w = this.in_proj_weight;
    return w === null ? null : linear(x, w, this.in_proj_bias); // [N, L, E] -> [N, L, 3E]
  }

  protected projectOut(y: Tensor): Tensor {
    return this.out_proj.forward(y);
  }

  protected override extraKeys(): number {
    return (this.bias_k ? 1 : 0) + (this.addZeroAttn ? 1 : 0);
  }

  /** addBiasKv: one learned key/value position; addZeroAttn: one all-zero position after it. */
  protected override appendKeys(k: Tensor, v: Tensor): [Tensor, Tensor] {
    const [N, H, , hd] = k.shape;
    const heads = (b: Tensor): Tensor => expand(reshape(b, [1, H, 1, hd]), [N, H, 1, hd]); // [1, 1, E] -> [1, H, 1, hd] -> [N, H, 1, hd]
    if (this.bias_k && this.bias_v) {
      k = concat([k, heads(this.bias_k)], 2); // [N, H, S, hd] -> [N, H, S+1, hd]
      v = concat([v, heads(this.bias_v)], 2);
    }
    if (this.addZeroAttn) {
      const z = zeros([N, H, 1, hd], { dtype: k.dtype });
      k = concat([k, z], 2); // [N, H, S', hd] -> [N, H, S'+1, hd]
      v = concat([v, z], 2);
    }
    return [k, v];
  }
}
