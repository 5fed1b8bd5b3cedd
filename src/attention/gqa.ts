/**
 * Grouped-query attention: H query heads share Hkv key/value heads in groups of G = H / Hkv, which
 * shrinks the key/value projections (and a KV cache) by G. Hkv = H is multi-head attention;
 * Hkv = 1 is multi-query attention. The attention core (attentionCore.ts) with Llama-style
 * parameters: q_proj [E, E], k_proj [Hkv*hd, kdim], v_proj [Hkv*hd, vdim], o_proj [E, E],
 * hd = E / H, no biases by default. With opts.cache only the Hkv key/value heads are cached:
 * [N, Hkv, T, hd].
 */
import type { Tensor } from "../tensor/tensor.js";
import { checkOptions } from "../tensor/validate.js";
import { Linear } from "../nn/linear.js";
import { type AttentionCoreOptions, AttentionCore, CORE_OPTIONS } from "./attentionCore.js";

export interface GroupedQueryAttentionOptions extends AttentionCoreOptions {
  bias?: boolean;
}

const OPTIONS = [...CORE_OPTIONS, "bias"];

export class GroupedQueryAttention extends AttentionCore {
  readonly numQueryHeads: number;
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;

  constructor(embedDim: number, numQueryHeads: number, numKvHeads: number, opts: GroupedQueryAttentionOptions = {}) {
    checkOptions("GroupedQueryAttention", "opts", opts, OPTIONS);
    super("GroupedQueryAttention", embedDim, { H: numQueryHeads, Hkv: numKvHeads, names: ["numQueryHeads", "numKvHeads"] }, opts);
    this.numQueryHeads = numQueryHeads;
    const lin = { bias: opts.bias ?? false, generator: this.gen, dtype: opts.dtype };
    const kv = numKvHeads * this.headDim;
    this.q_proj = this.registerModule("q_proj", new Linear(embedDim, embedDim, lin));
    this.k_proj = this.registerModule("k_proj", new Linear(this.kdim, kv, lin));
    this.v_proj = this.registerModule("v_proj", new Linear(this.vdim, kv, lin));
    this.o_proj = this.registerModule("o_proj", new Linear(embedDim, embedDim, lin));
    this.registerSinks(opts.dtype ?? "float32");
  }

  protected projectQuery(x: Tensor): Tensor {
    return this.q_proj.forward(x);
  }

  protected projectKeyValue(k: Tensor, v: Tensor): [Tensor, Tensor] {
    return [this.k_proj.forward(k), this.v_proj.forward(v)];
  }

  protected projectOut(y: Tensor): Tensor {
    return this.o_proj.forward(y);
  }
}
