/**
 * Masks. Throughout this library a bool mask means true = may attend (PyTorch's
 * scaled_dot_product_attention convention); keyPaddingMask is the one exception, true = padding,
 * as in torch.nn.MultiheadAttention, because it names keys to drop.
 *
 *   causalMask(3, 5, "top-left")      causalMask(3, 5, "bottom-right")
 *     1 0 0 0 0                          1 1 1 0 0
 *     1 1 0 0 0                          1 1 1 1 0
 *     1 1 1 0 0                          1 1 1 1 1
 */
import { ArgumentError } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { causalLimit } from "../kernels/causal.js";

export type CausalAlignment = "top-left" | "bottom-right";

export function checkAlignment(fn: string, a: unknown): CausalAlignment {
  if (a === undefined) return "top-left";
  if (a !== "top-left" && a !== "bottom-right") {
    throw new ArgumentError(`${fn}: causalAlignment must be "top-left" or "bottom-right", got ${JSON.stringify(a)}`);
  }
  return a;
}

/**
 * [L, S] bool, true = may attend: the causal rule of kernels/causal.ts drawn out. top-left: query l
 * sees keys s <= l (PyTorch's is_causal); bottom-right: the last query lines up with the last key,
 * s <= l + (S - L) (a query appended to a KV cache sees every cached key). isCausal never builds it
 * on the fused path (the kernels get the rule as a flag and skip hidden tiles); the textbook path,
 * which forms the weights anyway, and pictures do.
 */
export function causalMask(L: number, S: number, alignment: CausalAlignment = "top-left"): Tensor {
  for (const [name, v] of [["L", L], ["S", S]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new ArgumentError(`causalMask: ${name} must be a non-negative integer, got ${v}`);
  }
  checkAlignment("causalMask", alignment);
  const m = new Uint8Array(L * S);
  for (let l = 0; l < L; l++) {
    const limit = causalLimit(alignment, l, L, S);
    for (let s = 0; s <= limit; s++) m[l * S + s] = 1;
  }
  return new Tensor(m, [L, S], "bool");
}

/**
 * A key padding mask from sequence lengths: [N, S] bool, true where position s >= lengths[n]
 * (padding), ready for keyPaddingMask.
 */
export function paddingMask(lengths: readonly number[], S: number): Tensor {
  const m = new Uint8Array(lengths.length * S);
  lengths.forEach((len, n) => {
    if (!Number.isInteger(len) || len < 0 || len > S) {
      throw new ArgumentError(`paddingMask: lengths[${n}] = ${len} must be an integer in [0, ${S}]`);
    }
    for (let s = len; s < S; s++) m[n * S + s] = 1;
  });
  return new Tensor(m, [lengths.length, S], "bool");
}
