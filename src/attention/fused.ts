/**
 * The fused path of scaledDotProductAttention: the selected backend's attentionForward /
 * attentionBackward (FlashAttention-2 style: SIMD tiles on wasm, plain tiles in ref/flash.ts),
 * recorded on the tape as one op. It keeps the output and the per-row log-sum-exp only (and lse's
 * rounding residual); backward recomputes the scores tile by tile, so no [L, S] matrix is allocated
 * on either pass.
 *
 * It computes exactly what the materialising path in sdpa.ts computes (same masks, same causal
 * alignment, same counter-based dropout mask, zeros for fully masked rows, and the flexible options of
 * flexPlan.ts, which reach the kernels as parameters, never as an [L, S] mask); test/sdpa-fused.test.ts
 * and test/flex.test.ts prove the two equal, and the PyTorch fixtures run through both. The sinks'
 * gradient is formed here from the kernels' lse (sinkGrad); every other gradient comes from the kernel.
 *
 * Shape letters as in sdpa.ts; B is the product of the batch dims N.. (flattened).
 */
import type { AttentionLayout, AttentionMask, AttentionParams, RowStrides } from "../kernels/backend.js";
import { attentionKernels } from "../kernels/dispatch.js";
import { flashAttentionRows } from "../kernels/ref/flash.js";
import { type FloatArray, allocate } from "../tensor/dtype.js";
import { broadcastStrides, sameShape, sizeOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { cast } from "../ops/elementwise.js";
import { expand } from "../ops/shape.js";
import { result } from "../ops/util.js";
import type { HeadColumns, SdpaPlan } from "./plan.js";

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
    ? { kind: "bool", data: m.values as Uint8Array, strides }
    : { kind: "float", data: m.values as Float32Array | Float64Array, strides };
}

/** The call's parameters for the kernels, H query heads over Hkv kv heads (the op layer's arrays: no layout yet). */
function attentionParams(p: SdpaPlan, H: number, Hkv: number, dropoutSeed: number): AttentionParams {
  const dtype = p.dtype;
  return {
    B: sizeOf(p.batch), H, Hkv, L: p.L, S: p.S, E: p.E, Ev: p.Ev, scale: p.scale,
    causal: p.causal ?? "none",
    mask: p.mask === null ? null : maskView(p.mask, p, dtype),
    dropoutP: p.dropoutP, dropoutSeed,
    alignment: p.alignment,
    window: p.window,
    alibiSlopes: p.alibiSlopes,
    softcap: p.softcap ?? 0,
    sinks: p.sinks === null ? null : Float64Array.from(p.sinks.values),
    documents: p.documents,
    blockMask: p.blockMask === null ? null : p.blockMask.blocks,
  };
}

/** q, k, v as the kernels read them ([B, H, L, E], [B, Hkv, S, E], [B, Hkv, S, Ev], the plan's dtype) and the call's parameters. */
function kernelCall(query: Tensor, key: Tensor, value: Tensor, p: SdpaPlan, dropoutSeed: number): { q: Tensor; k: Tensor; v: Tensor; params: AttentionParams } {
  const dtype = p.dtype;
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
  return { q: prep(query, qShape), k: prep(key, kShape), v: prep(value, vShape), params: attentionParams(p, H, Hk, dropoutSeed) };
}

/**
 * q [N.., H, L, E], k [N.., Hkv, S, E], v [N.., Hkv, S, Ev] (after the plan's broadcasting) ->
 * [N.., H, L, Ev], through the backend's fused kernels; and the row log-sum-exp lse [B, H, L].
 */
export function fusedAttention(query: Tensor, key: Tensor, value: Tensor, p: SdpaPlan, dropoutSeed: number): { out: Tensor; lse: Float64Array } {
  const dtype = p.dtype;
  const { q, k, v, params } = kernelCall(query, key, value, p, dropoutSeed);
  const { B, H, L, Ev } = params;
  const kernels = attentionKernels();
  const out = allocate(dtype, B * H * L * Ev) as FloatArray;
  const lse = new Float64Array(B * H * L); // per query row: log of the softmax denominator (float64 whatever dtype)
  const lseLo = new Float64Array(B * H * L); // what lse's rounding dropped (see Backend.attentionForward)
  kernels.forward(params, q.values as FloatArray, k.values as FloatArray, v.values as FloatArray, out, lse, lseLo);

  const outShape = p.hasHeads ? [...p.batch, H, L, Ev] : [...p.batch, L, Ev];
  const sinks = p.sinks === null ? [] : [p.sinks.dtype === dtype ? p.sinks : cast(p.sinks, dtype)];
  // backward: the kernel recomputes P from q, k, lse and lseLo tile by tile, and regenerates the dropout mask
  const y = result("scaledDotProductAttention", out, outShape, dtype, [q, k, v, ...sinks], (g) => {
    const dq = allocate(dtype, q.size) as FloatArray;
    const dk = allocate(dtype, k.size) as FloatArray;
    const dv = allocate(dtype, v.size) as FloatArray;
    const gd = (g.dtype === dtype ? g.values : cast(g, dtype).values) as FloatArray;
    kernels.backward(params, q.values as FloatArray, k.values as FloatArray, v.values as FloatArray, out, gd, lse, dq, dk, dv, lseLo);
    const grads = [new Tensor(dq, q.shape, dtype), new Tensor(dk, k.shape, dtype), new Tensor(dv, v.shape, dtype)];
    if (params.sinks) grads.push(new Tensor(sinkGrad(params, params.sinks, out, gd, lse, lseLo, dtype, headsFirst(H, L, Ev)), [H], dtype));
    return grads;
  });
  return { out: y, lse };
}

/** Rows of a contiguous [B, heads, T, D]. */
function headsFirst(heads: number, T: number, D: number): RowStrides {
  return { offset: 0, sb: heads * T * D, sh: T * D, sl: D };
}

/** Rows of heads interleaved, [N, T, X] with the heads in columns offset.. (HeadColumns). */
function interleaved(c: HeadColumns): RowStrides {
  const [, T, X] = c.t.shape;
  return { offset: c.offset, sb: T * X, sh: c.dim, sl: X };
}

/**
 * Whether fusedAttentionInterleaved takes these: one float dtype (the plan's), one batch size, no
 * broadcast heads, and columns that stay apart where two of them share a tensor (each gradient is
 * written into its own columns).
 */
export function interleavedEligible(q: HeadColumns, k: HeadColumns, v: HeadColumns, p: SdpaPlan): boolean {
  const cs = [q, k, v];
  if (!fusedEligible(p) || p.batch.length !== 1 || k.heads !== v.heads) return false;
  if (!cs.every((c) => c.t.dtype === p.dtype && c.t.ndim === 3 && c.t.shape[0] === p.batch[0] && c.offset >= 0 && c.offset + c.heads * c.dim <= c.t.shape[2])) return false;
  for (let i = 0; i < 3; i++) {
    for (let j = i + 1; j < 3; j++) {
      const [a, b] = [cs[i], cs[j]];
      if (a.t === b.t && a.offset < b.offset + b.heads * b.dim && b.offset < a.offset + a.heads * a.dim) return false;
    }
  }
  return true;
}

/**
 * fusedAttention on the modules' projections as they come (HeadColumns, heads interleaved):
 * q [N, L, ..H·E..], k [N, S, ..Hkv·E..], v [N, S, ..Hkv·Ev..] -> [N, L, H·Ev], the merged heads.
 * The same kernels and the same arithmetic as splitting the heads ([N, T, H·D] -> [N, H, T, D]),
 * fusedAttention and merging them back; the kernels read and write the rows where they are
 * (AttentionParams.layout), so the three split copies and the merge copy, forward and backward, are
 * not made. Callers check interleavedEligible first.
 */
export function fusedAttentionInterleaved(q: HeadColumns, k: HeadColumns, v: HeadColumns, p: SdpaPlan, dropoutSeed: number): Tensor {
  const dtype = p.dtype;
  const { L, Ev } = p;
  const N = p.batch[0], H = q.heads;
  const layout: AttentionLayout = { q: interleaved(q), k: interleaved(k), v: interleaved(v), out: { offset: 0, sb: L * H * Ev, sh: Ev, sl: H * Ev } };
  const params: AttentionParams = { ...attentionParams(p, H, k.heads, dropoutSeed), layout };
  const kernels = attentionKernels();
  const out = allocate(dtype, N * L * H * Ev) as FloatArray;
  const lse = new Float64Array(N * H * L);
  const lseLo = new Float64Array(N * H * L);
  const [qa, ka, va] = [q, k, v].map((c) => c.t.values as FloatArray);
  kernels.forward(params, qa, ka, va, out, lse, lseLo);
  const inputs = [...new Set([q.t, k.t, v.t])]; // self-attention without gradient: one tensor holds all three
  const sinks = p.sinks === null ? [] : [p.sinks.dtype === dtype ? p.sinks : cast(p.sinks, dtype)];
  return result("scaledDotProductAttention", out, [N, L, H * Ev], dtype, [...inputs, ...sinks], (g) => {
    // one gradient per input tensor, each of the three written into its own columns (zeros elsewhere)
    const grads = inputs.map((t) => allocate(dtype, t.size) as FloatArray);
    const [dq, dk, dv] = [q, k, v].map((c) => grads[inputs.indexOf(c.t)]);
    const gd = (g.dtype === dtype ? g.values : cast(g, dtype).values) as FloatArray;
    kernels.backward(params, qa, ka, va, out, gd, lse, dq, dk, dv, lseLo);
    const res = inputs.map((t, i) => new Tensor(grads[i], t.shape, dtype));
    if (params.sinks) res.push(new Tensor(sinkGrad(params, params.sinks, out, gd, lse, lseLo, dtype, layout.out), [H], dtype));
    return res;
  });
}

/**
 * dsink_h. The sink is one more softmax column of row r, logit sink_h and value 0, so its probability
 * is P_sink = exp(sink_h − lse_r) and out_r = Σ_s P_s v_s has no term from it: dP_sink = dO_r · 0 = 0.
 * The softmax backward, dS_j = P_j (dP_j − Σ_i P_i dP_i), with Σ_i P_i dP_i = dO_r · out_r = D_r (the
 * sink adds 0 to it), gives for the sink's column dS = P_sink (0 − D_r); summed over every row of
 * head h (each batch element and query position):
 *   dsink_h = −Σ_r P_sink,r · D_r,   D_r = rowsum(dO ∘ out)
 * A row that sees no key has out = 0, so D = 0 and it adds nothing.
 */
function sinkGrad(
  p: AttentionParams, sinks: Float64Array, out: FloatArray, dout: FloatArray, lse: Float64Array, lseLo: Float64Array, dtype: "float32" | "float64",
  rows: RowStrides,
): FloatArray {
  const { B, H, L, Ev } = p;
  const ds = new Float64Array(H);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let l = 0; l < L; l++) {
        const row = (b * H + h) * L + l;
        if (lse[row] === -Infinity) continue;
        const at = rows.offset + b * rows.sb + h * rows.sh + l * rows.sl; // out's row (b, h, l), and dout's
        let D = 0;
        for (let e = 0; e < Ev; e++) D += dout[at + e] * out[at + e];
        ds[h] -= Math.exp((sinks[h] - lse[row]) - lseLo[row]) * D;
      }
    }
  }
  return dtype === "float64" ? ds : Float32Array.from(ds);
}

/**
 * The weights of query rows r0 <= l < r1 of the given heads, [N.., heads.length, r1 - r0, S] (before
 * dropout), computed tile by tile from those rows' own forward statistics (flashAttentionRows of
 * ref/flash.ts, the readable kernel, in float64 whatever the backend): never an L × S matrix.
 */
export function fusedWeightRows(query: Tensor, key: Tensor, p: SdpaPlan, r0: number, r1: number, heads: readonly number[]): Tensor {
  const shape = [...p.batch, heads.length, r1 - r0, p.S];
  const w = new Float64Array(sizeOf(shape));
  if (w.length > 0) {
    const { q, k, params } = kernelCall(query, key, key, p, 0);
    flashAttentionRows(params, q.values as FloatArray, k.values as FloatArray, r0, r1, heads, w);
  }
  return new Tensor(p.dtype === "float64" ? w : Float32Array.from(w), shape, p.dtype);
}
