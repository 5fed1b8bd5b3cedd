/**
 * The pre-norm transformer block (GPT-2 and most models since): each sublayer reads a normalised
 * copy of the residual stream and adds its result back,
 *
 *   x = x + dropout(selfAttn(norm(x)))
 *   x = x + dropout(crossAttn(norm(x), memory))        decoder blocks of an encoder-decoder only
 *   x = x + dropout(mlp(norm(x)))
 *
 * so the stream x itself is never normalised (the model adds one final norm). Parameter names:
 * attn_norm, self_attn, [cross_norm, cross_attn,] mlp_norm, mlp. The attention is MultiheadAttention
 * when numKvHeads = numHeads (in_proj_weight, out_proj) and GroupedQueryAttention otherwise
 * (q_proj, k_proj, v_proj, o_proj), always batch-first [N, T, C].
 *
 * The config's attention options reach the modules as theirs: softcap and sinks in every attention,
 * slidingWindow and ALiBi (positional "alibi") in the self-attention only (a target position and a
 * source position are not on one line, so cross-attention has neither).
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { optionKeys } from "../tensor/validate.js";
import { isGradEnabled } from "../autograd/tape.js";
import { kernelMatmul } from "../kernels/dispatch.js";
import type { MatmulParams } from "../kernels/backend.js";
import { add } from "../ops/elementwise.js";
import { addRows } from "../ops/functional.js";
import { Module } from "../nn/module.js";
import { Dropout } from "../nn/dropout.js";
import { Linear } from "../nn/linear.js";
import { LayerNorm, RMSNorm } from "../nn/norm.js";
import { MLP, activate } from "../nn/mlp.js";
import { MultiheadAttention } from "../attention/multihead.js";
import { GroupedQueryAttention } from "../attention/gqa.js";
import { type KVCacheLayer, atPositions } from "../attention/kvcache.js";
import { type QKTransform, applyQKTransform } from "../attention/rope.js";
import type { BlockConfig, NormKind } from "./config.js";

export type Attention = MultiheadAttention | GroupedQueryAttention;
export type Norm = LayerNorm | RMSNorm;

export interface ModelOptions {
  /** seeds the initialisation and the dropout masks (default 0) */
  seed?: number;
  dtype?: "float32" | "float64";
}
export const MODEL_OPTION_KEYS = optionKeys<ModelOptions>({ seed: true, dtype: true });

/** Construction details a block takes besides its config. */
export interface BlockBuild {
  generator: Generator;
  dtype: "float32" | "float64";
  /** whether this block has cross-attention (a decoder block of an encoder-decoder) */
  cross?: boolean;
  /** RoPE (or another q/k transform) for the self-attention */
  rotary?: QKTransform | null;
  /** ALiBi in the self-attention (positional "alibi") */
  alibi?: boolean;
}

export function makeNorm(kind: NormKind, dModel: number, eps: number, bias: boolean, dtype: "float32" | "float64"): Norm {
  return kind === "rmsnorm" ? new RMSNorm(dModel, { eps, dtype }) : new LayerNorm(dModel, { eps, bias, dtype });
}

/**
 * numKvHeads < numHeads -> GroupedQueryAttention, else MultiheadAttention; batch-first. `self`: the
 * block's self-attention, which also gets the window and ALiBi.
 */
export function makeAttention(c: BlockConfig, b: BlockBuild, rotary: QKTransform | null, self = true): Attention {
  const common = {
    dropout: c.dropout, bias: c.bias, batchFirst: true, rotary, generator: b.generator, dtype: b.dtype,
    softcap: c.softcap ?? null, sinks: c.sinks ?? false,
    ...(self ? { slidingWindow: c.slidingWindow ?? null, alibi: b.alibi ?? false } : {}),
  };
  return c.numKvHeads < c.numHeads
    ? new GroupedQueryAttention(c.dModel, c.numHeads, c.numKvHeads, common)
    : new MultiheadAttention(c.dModel, c.numHeads, common);
}

export interface BlockForwardOptions {
  /** causal self-attention (decoders) */
  isCausal?: boolean;
  /** [N, S] bool, true = padding key, for the self-attention */
  keyPaddingMask?: Tensor | null;
  /** [N, Sm, C] encoder output, for the cross-attention */
  memory?: Tensor | null;
  /** [N, Sm] bool, true = padding, for the cross-attention */
  memoryPaddingMask?: Tensor | null;
  /** this block's self-attention cache */
  cache?: KVCacheLayer | null;
  /** this block's cross-attention cache (static) */
  crossCache?: KVCacheLayer | null;
  /** return per-head attention weights [N, H, L, S] */
  needWeights?: boolean;
}

export interface BlockOutput {
  /** [N, L, C] */
  out: Tensor;
  /** [N, H, L, S] when needWeights */
  selfWeights: Tensor | null;
  crossWeights: Tensor | null;
}

export class TransformerBlock extends Module {
  attn_norm: Norm;
  self_attn: Attention;
  cross_norm: Norm | null;
  cross_attn: Attention | null;
  mlp_norm: Norm;
  mlp: MLP;
  drop: Dropout;

  constructor(readonly config: BlockConfig, b: BlockBuild) {
    super();
    const c = config;
    const g = b.generator;
    const norm = (): Norm => makeNorm(c.norm, c.dModel, c.normEps, c.bias, b.dtype);
    this.attn_norm = this.registerModule("attn_norm", norm());
    this.self_attn = this.registerModule("self_attn", makeAttention(c, b, b.rotary ?? null));
    this.cross_norm = this.registerModule("cross_norm", b.cross ? norm() : null);
    this.cross_attn = this.registerModule("cross_attn", b.cross ? makeAttention(c, b, null, false) : null);
    this.mlp_norm = this.registerModule("mlp_norm", norm());
    this.mlp = this.registerModule("mlp", new MLP(c.dModel, c.dFF, { activation: c.activation, bias: c.bias, generator: g, dtype: b.dtype }));
    this.drop = this.registerModule("drop", new Dropout(c.dropout, { seed: g.nextUint32() }));
  }

  /** x [N, L, C] -> [N, L, C] (and the attention weights when asked). */
  forward(x: Tensor, opts: BlockForwardOptions = {}): BlockOutput {
    const needWeights = opts.needWeights ?? false;
    const attnOpts = { needWeights, averageAttnWeights: false };
    const h = this.attn_norm.forward(x);
    const [a, selfWeights] = this.self_attn.forward(h, h, h, {
      ...attnOpts, isCausal: opts.isCausal ?? false, keyPaddingMask: opts.keyPaddingMask ?? null, cache: opts.cache ?? null,
    });
    x = add(x, this.drop.forward(a));
    let crossWeights: Tensor | null = null;
    if (this.cross_attn && this.cross_norm) {
      if (!opts.memory) throw new ArgumentError("TransformerBlock.forward: this block has cross-attention and needs opts.memory (the encoder output [N, S, C])");
      const hc = this.cross_norm.forward(x);
      const [c, w] = this.cross_attn.forward(hc, opts.memory, opts.memory, {
        ...attnOpts, keyPaddingMask: opts.memoryPaddingMask ?? null, cache: opts.crossCache ?? null,
      });
      crossWeights = w;
      x = add(x, this.drop.forward(c));
    }
    x = add(x, this.drop.forward(this.mlp.forward(this.mlp_norm.forward(x))));
    return { out: x, selfWeights, crossWeights };
  }

  /**
   * One decode step of this block, in place: x [N, 1, C] (flat, float32, owned by the caller) becomes
   * the block's output, the step's key/value is pushed to `cache`, and every intermediate lands in
   * `buf` (reused from step to step). The same computation as forward(x, { isCausal: true, cache }) for
   * a block that decodesInPlace() accepts, step for step: the same kernel calls on the same operands
   * (kernelMatmul as linear calls it, addRows for the bias, the attention module's own decodeCached,
   * the call its cached step makes), the residual added in float32 as add() does, so the same bits
   * (test/decode.test.ts); without the op layer's checks, views, Tensor outputs and fresh arrays,
   * which were most of a one-token step.
   */
  decodeInPlace(x: Float32Array, N: number, cache: KVCacheLayer, buf: DecodeBuffers): void {
    const a = this.self_attn;
    const C = a.embedDim, H = a.numHeads, Hkv = a.numKvHeads, hd = a.headDim, F = this.mlp.dHidden;
    const kvC = Hkv * hd;
    const xt = new Tensor(x, [N, 1, C], "float32");
    const h = this.attn_norm.forward(xt).values as Float32Array;
    if (a instanceof MultiheadAttention) {
      // q, k, v = norm(x) in_projᵀ + b, cut into thirds                    [N, 1, C] -> [N, 1, 3C]
      project(buf.qkv, h, a.in_proj_weight!, a.in_proj_bias, N, 3 * C, C);
      for (let n = 0; n < N; n++) {
        const row = n * 3 * C;
        buf.q.set(buf.qkv.subarray(row, row + C), n * C);
        buf.k.set(buf.qkv.subarray(row + C, row + 2 * C), n * C);
        buf.v.set(buf.qkv.subarray(row + 2 * C, row + 3 * C), n * C);
      }
    } else {
      project(buf.q, h, a.q_proj.weight, a.q_proj.bias, N, C, C); // [N, 1, C] -> [N, 1, H*hd]
      project(buf.k, h, a.k_proj.weight, a.k_proj.bias, N, kvC, C); // -> [N, 1, Hkv*hd]
      project(buf.v, h, a.v_proj.weight, a.v_proj.bias, N, kvC, C);
    }
    // one position: [N, 1, H*hd] is [N, H, 1, hd] in memory
    let q = new Tensor(buf.q, [N, H, 1, hd], "float32");
    let k = new Tensor(buf.k, [N, Hkv, 1, hd], "float32");
    const rotary = a.rotary;
    if (rotary !== null) { // RoPE at the new token's position(s), before caching, as the module rotates
      const past = cache.positionOffset();
      q = atPositions(q, past, (t, o) => applyQKTransform(rotary, t, o));
      k = atPositions(k, past, (t, o) => applyQKTransform(rotary, t, o));
    }
    cache.push(k, new Tensor(buf.v, [N, Hkv, 1, hd], "float32"));
    a.decodeCached(q.values as Float32Array, cache, true, "bottom-right", buf.att); // the module's own decode call; [N, H, 1, hd] is [N, 1, C]
    const o = a instanceof MultiheadAttention ? a.out_proj : a.o_proj;
    project(buf.out, buf.att, o.weight, o.bias, N, C, C);
    addInPlace(x, buf.out, N * C); // x = x + attn
    // MLP: x = x + fc2(act(fc1(norm(x))))
    project(buf.hidden, this.mlp_norm.forward(xt).values as Float32Array, this.mlp.fc1.weight, this.mlp.fc1.bias, N, F, C);
    const act = activate(new Tensor(buf.hidden, [N, 1, F], "float32"), this.mlp.activation).values as Float32Array;
    project(buf.out, act, this.mlp.fc2.weight, this.mlp.fc2.bias, N, C, F);
    addInPlace(x, buf.out, N * C);
  }
}

/**
 * Whether decodeInPlace() computes what forward() computes for this block and step: no gradient, a
 * self-attention cache, float32 weights on the host, and nothing decodeInPlace leaves out (dropout
 * while training, a cross-attention, a sliding window or ALiBi, addBiasKv / addZeroAttn, multi-head
 * attention's separate q/k/v weights, kdim or vdim other than the model width). RoPE, softcap, sinks,
 * grouped-query attention, either norm and every activation are in. GPT.run checks the rest (one
 * token per row, no padding mask, no weights wanted, float32 activations). Anything else takes forward().
 */
export function decodesInPlace(block: TransformerBlock, cache: KVCacheLayer | null): cache is KVCacheLayer {
  if (cache === null || cache.kind !== "self" || isGradEnabled()) return false;
  if (block.cross_attn !== null || (block.training && block.drop.p > 0)) return false;
  const a = block.self_attn;
  if (a.slidingWindow !== null || a.alibiSlopes !== null || (a.training && a.dropout > 0) || !hostF32(a.sinks)) return false;
  if (a.kdim !== a.embedDim || a.vdim !== a.embedDim) return false;
  if (a instanceof MultiheadAttention) {
    if (a.in_proj_weight === null || a.bias_k !== null || a.addZeroAttn) return false;
    if (!hostF32(a.in_proj_weight) || !hostF32(a.in_proj_bias) || !hostLinear(a.out_proj)) return false;
  } else if (!hostLinear(a.q_proj) || !hostLinear(a.k_proj) || !hostLinear(a.v_proj) || !hostLinear(a.o_proj)) {
    return false;
  }
  if (!hostLinear(block.mlp.fc1) || !hostLinear(block.mlp.fc2)) return false;
  return cache.dtype === null || cache.dtype === "float32"; // storage() is built once, by the step's decodeCached
}

/** Whether t is absent or float32 values on the host. */
function hostF32(t: Tensor | null): boolean {
  return t === null || (t.dtype === "float32" && !t.isOnDevice);
}

function hostLinear(l: Linear): boolean {
  return hostF32(l.weight) && hostF32(l.bias);
}

/**
 * The arrays of one decode step (decodeInPlace), for N rows of a model of width C, key/value width
 * kvC (Hkv * headDim; C for multi-head attention) and MLP width F.
 */
export class DecodeBuffers {
  /** the residual stream [N, 1, C] */
  readonly x: Float32Array;
  readonly qkv: Float32Array;
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
  readonly att: Float32Array;
  readonly out: Float32Array;
  readonly hidden: Float32Array;
  constructor(readonly N: number, readonly C: number, readonly kvC: number, readonly F: number) {
    [this.x, this.qkv, this.q, this.k, this.v, this.att, this.out, this.hidden] = [C, 3 * C, C, kvC, kvC, C, C, F].map((w) => new Float32Array(N * w));
  }
}

/** out [R, n] = x [R, k] weightᵀ + bias: linear()'s kernel call and bias (ops/functional.ts), into out. */
function project(out: Float32Array, x: Float32Array, weight: Tensor, bias: Tensor | null, R: number, n: number, k: number): void {
  const p: MatmulParams = { batch: 1, m: R, n, k, aBatchStride: 0, bBatchStride: 0, transA: false, transB: true, accumulate: false };
  kernelMatmul(out, x, weight.values as Float32Array, p);
  if (bias !== null) addRows(out, bias.values, R, n);
}

/** x += y over the first n values, in float32 (each sum rounded as add() rounds it). */
function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}

/** One attention map for pictures: which module, and its per-head weights. */
export interface AttentionMap {
  /** the attention module's name in the state dict, e.g. "blocks.0.self_attn" */
  name: string;
  /** "self": causal decoder self-attention; "encoder": encoder self-attention; "cross": decoder -> encoder */
  kind: "self" | "encoder" | "cross";
  layer: number;
  /** [N, H, L, S]: query position l's weights over key positions s, per head */
  weights: Tensor;
}
