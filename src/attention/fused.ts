/**
 * The fused path of scaledDotProductAttention: the selected backend's attentionForward /
 * attentionBackward (FlashAttention-2 style: SIMD tiles on wasm, plain tiles in ref/flash.ts),
 * recorded on the tape as one op. It keeps the output and the per-row log-sum-exp only (and lse's
 * rounding residual); backward recomputes the scores tile by tile, so no [L, S] matrix is allocated
 * on either pass.
 *
 * It computes exactly what the materialising path in sdpa.ts computes (same masks, same causal
 * alignment, same counter-based dropout mask, zeros for fully masked rows); test/sdpa-fused.test.ts
 * proves the two equal, and the PyTorch fixtures run through both.
 *
 * Shape letters as in sdpa.ts; B is the product of the batch dims N.. (flattened).
 */
import type { AttentionMask, AttentionParams } from "../kernels/backend.js";
import { attentionKernels } from "../kernels/dispatch.js";
import { type FloatArray, allocate } from "../tensor/dtype.js";
import { broadcastStrides, sameShape, sizeOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { cast } from "../ops/elementwise.js";
import { expand } from "../ops/shape.js";
import { result } from "../ops/util.js";
import type { SdpaPlan } from "./plan.js";

/** Whether the fused kernels can compute this call (else the materialising path does). */
export function fusedEligible(p: SdpaPlan): boolean {
  // a float mask that wants a gradient needs the weights (dmask = dscores), which the fused path never forms
  if (p.mask !== null && p.mask.requiresGrad) return false;
  return p.L > 0 && p.S > 0 && p.E > 0 && p.Ev > 0 && sizeOf(p.batch) > 0;
}

/**
 * The [B, H, L, S] strides of the mask (0 on broadcast dims), merging the batch dims N.. into B.
 * Batch dims that cannot be merged (say [2, 3] with strides [1, 0]) are first materialised over the
 * batch dims only (never over L or S).
 */
function maskView(mask: Tensor, p: SdpaPlan, dtype: "float32" | "float64"): AttentionMask {
  let m = mask.dtype === "bool" || mask.dtype === dtype ? mask : cast(mask, dtype);
  const nb = p.batch.length;
  const view = p.hasHeads ? p.scoreShape : [...p.batch, p.L, p.S]; // = scoreShape
  const stridesOver = (t: Tensor): number[] => {
    const st = broadcastStrides(t.shape, view);
    return p.hasHeads ? st : [...st.slice(0, nb), 0, ...st.slice(nb)]; // no head dim: H = 1
  };
  // One stride for the flattened batch index b works iff, over the batch dims longer than 1, each
  // dim's stride is the next one's times its length (size-1 dims never move b).
  const batchStride = (st: number[]): number | null => {
    const dims = p.batch.map((n, i) => [n, st[i]]).filter(([n]) => n > 1);
    for (let i = 0; i + 1 < dims.length; i++) if (dims[i][1] !== dims[i + 1][1] * dims[i + 1][0]) return null;
    return dims.length === 0 ? 0 : dims[dims.length - 1][1];
  };
  let st = stridesOver(m);
  let sb = batchStride(st);
  if (sb === null) {
    // e.g. a [2, 1, 1, L, S] mask over batch dims [2, 3]: copy it over the batch dims only (never over L or S)
    const trailing = m.shape.slice(Math.max(0, m.ndim - (view.length - nb)));
    const padded = [...new Array<number>(view.length - nb - trailing.length).fill(1), ...trailing];
    m = expand(m, [...p.batch, ...padded]); // [..m] -> [N.., (H|1)?, L|1, S|1]
    st = stridesOver(m);
    sb = batchStride(st) ?? 0;
  }
  const strides: [number, number, number, number] = [sb, st[nb], st[nb + 1], st[nb + 2]];
  return m.dtype === "bool"
    ? { kind: "bool", data: m.data as Uint8Array, strides }
    : { kind: "float", data: m.data as Float32Array | Float64Array, strides };
}

/**
 * q [N.., H, L, E], k [N.., Hkv, S, E], v [N.., Hkv, S, Ev] (after the plan's broadcasting) ->
 * [N.., H, L, Ev], through the backend's fused kernels.
 */
export function fusedAttention(query: Tensor, key: Tensor, value: Tensor, p: SdpaPlan, dropoutSeed: number): Tensor {
  const dtype = p.dtype;
  const B = sizeOf(p.batch);
  // Head counts as the kernel sees them: q has H heads; k and v share Hkv heads with H % Hkv == 0.
  // Without enableGqa, PyTorch broadcasts heads (1 against H), which is the Hkv = 1 case (MQA) for
  // k and v, or a copy of q's single head when q is the one with 1 head.
  const H = p.H;
  let Hk = p.hasHeads ? key.shape[key.ndim - 3] : 1;
  const Hv = p.hasHeads ? value.shape[value.ndim - 3] : 1;
  if (Hk !== Hv) Hk = H; // one of them broadcasts: give both H heads
  const qShape = p.hasHeads ? [...p.batch, H, p.L, p.E] : [...p.batch, p.L, p.E];
  const kShape = p.hasHeads ? [...p.batch, Hk, p.S, p.E] : [...p.batch, p.S, p.E];
  const vShape = p.hasHeads ? [...p.batch, Hk, p.S, p.Ev] : [...p.batch, p.S, p.Ev];
  const prep = (t: Tensor, shape: number[]): Tensor => {
    if (t.dtype !== dtype) t = cast(t, dtype);
    return sameShape(t.shape, shape) ? t : expand(t, shape); // broadcast dims become real copies (O(N), never O(N²))
  };
  const q = prep(query, qShape);
  const k = prep(key, kShape);
  const v = prep(value, vShape);

  const params: AttentionParams = {
    B, H, Hkv: Hk, L: p.L, S: p.S, E: p.E, Ev: p.Ev, scale: p.scale,
    causal: p.causal ?? "none",
    mask: p.mask === null ? null : maskView(p.mask, p, dtype),
    dropoutP: p.dropoutP, dropoutSeed,
  };
  const kernels = attentionKernels();
  const out = allocate(dtype, B * H * p.L * p.Ev) as FloatArray;
  const lse = new Float64Array(B * H * p.L); // per query row: log of the softmax denominator (float64 whatever dtype)
  const lseLo = new Float64Array(B * H * p.L); // what lse's rounding dropped (see Backend.attentionForward)
  kernels.forward(params, q.data as FloatArray, k.data as FloatArray, v.data as FloatArray, out, lse, lseLo);

  const outShape = p.hasHeads ? [...p.batch, H, p.L, p.Ev] : [...p.batch, p.L, p.Ev];
  // backward: the kernel recomputes P from q, k, lse and lseLo tile by tile, and regenerates the dropout mask
  return result("scaledDotProductAttention", out, outShape, dtype, [q, k, v], (g) => {
    const dq = allocate(dtype, q.size) as FloatArray;
    const dk = allocate(dtype, k.size) as FloatArray;
    const dv = allocate(dtype, v.size) as FloatArray;
    const gd = g.dtype === dtype ? g.data : cast(g, dtype).data;
    kernels.backward(params, q.data as FloatArray, k.data as FloatArray, v.data as FloatArray, out, gd as FloatArray, lse, dq, dk, dv, lseLo);
    return [new Tensor(dq, q.shape, dtype), new Tensor(dk, k.shape, dtype), new Tensor(dv, v.shape, dtype)];
  });
}
