/**
 * Padding in a batch of token rows, as transformers' attention_mask: [N, S] with 1 for a token and 0
 * for padding, over the cached positions and the new ones (S = cache.length + T). From it, for
 * PretrainedLM.forward:
 *
 *   positions  each row counts its own tokens: position = cumsum(mask) - 1, so a left-padded prompt
 *              starts at 0 at its first token (GPT-2's learned positions, the Llama family's RoPE);
 *              padding gets 0 (it is never attended to, so its value is never read)
 *   key mask   [N, 1, 1, S] bool, true = a token; broadcast over heads and queries, it reaches the
 *              attention kernels as strides (0 on H and L), never as an [N, H, L, S] tensor. With the
 *              causal mask (bottom-right) and a sliding window, a query sees the tokens at or before
 *              it in its own row; a padding query sees nothing and its output is 0 (never NaN).
 *
 *   prompts of lengths 1 and 3, left-padded (· = padding), then one decoding step:
 *     ids   · · a   x        mask  0 0 1   1        positions  0 0 0   1
 *           b c d   y              1 1 1   1                   0 1 2   3
 */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { concat, slice } from "../ops/shape.js";
import { type RotaryEmbedding, applyRotary } from "../attention/rope.js";

/** What forward's attentionMask takes: [N, S] of 0 and 1 (a bool, int32 or float Tensor, or rows of numbers or booleans). */
export type AttentionMaskInput = Tensor | readonly (readonly (number | boolean)[])[];

/** The padding of one forward call. */
export interface Padding {
  /** [N, 1, 1, S] bool, true = a token (may be attended to) */
  keyMask: Tensor;
  /** the new tokens' positions, [N][T] */
  positions: number[][];
  /** the largest position of a new token (checked against the model's positions) */
  maxPosition: number;
  /** offset when every row's positions are offset .. offset + T - 1 (nothing padded: RoPE rotates the batch at once), else null */
  uniform: number | null;
}

/** Read and check an attention mask for N rows of T new tokens after `offset` cached ones. */
export function paddingOf(fn: string, mask: AttentionMaskInput, N: number, offset: number, T: number): Padding {
  const S = offset + T;
  const want = `[N, S] = [${N}, ${S}] (N rows; S = ${offset} cached + ${T} new positions)`;
  let values: ArrayLike<unknown>;
  if (mask instanceof Tensor) {
    if (mask.ndim !== 2 || mask.shape[0] !== N || mask.shape[1] !== S) throw new ShapeError(`${fn}: attentionMask has shape ${fmtShape(mask.shape)}, expected ${want}`);
    values = mask.values as ArrayLike<number>; // a bool tensor holds 0 and 1 bytes
  } else if (Array.isArray(mask)) {
    if (mask.length !== N || mask.some((r) => !Array.isArray(r) || r.length !== S)) {
      const seen = `${mask.length} rows of lengths ${mask.map((r) => (Array.isArray(r) ? r.length : "?")).join(", ")}`;
      throw new ShapeError(`${fn}: attentionMask has ${seen}, expected ${want}`);
    }
    values = (mask as readonly (readonly (number | boolean)[])[]).flat();
  } else {
    throw new ArgumentError(`${fn}: attentionMask must be a Tensor [N, S] or rows of 0 and 1 (or booleans), got ${mask === null ? "null" : typeof mask}`);
  }
  const data = new Uint8Array(N * S);
  for (let i = 0; i < data.length; i++) {
    const raw: unknown = values[i];
    const v = typeof raw === "boolean" ? Number(raw) : raw;
    if (v !== 0 && v !== 1) throw new ArgumentError(`${fn}: attentionMask[${Math.floor(i / S)}][${i % S}] = ${String(values[i])}; expected 1 (a token) or 0 (padding)`);
    data[i] = v as number;
  }
  const positions: number[][] = [];
  let maxPosition = 0;
  let uniform: number | null = offset; // stays so while every row is offset, offset + 1, … (no padding)
  for (let n = 0; n < N; n++) {
    let count = 0; // tokens so far in row n: position = count - 1
    const row: number[] = [];
    for (let s = 0; s < S; s++) {
      count += data[n * S + s];
      if (s >= offset) row.push(data[n * S + s] === 1 ? count - 1 : 0);
    }
    positions.push(row);
    maxPosition = Math.max(maxPosition, ...row);
    if (uniform !== null && row.some((p, t) => p !== (uniform as number) + t)) uniform = null;
  }
  return { keyMask: new Tensor(data, [N, 1, 1, S], "bool"), positions, maxPosition, uniform };
}

/**
 * RoPE at each row's own positions: x [N, h, T, E], positions [N][T] -> x rotated. The readable form is
 * one rotation per row, rotary.forward(x[n], p) for positions p, p + 1, …; rows are rotated with the
 * same cos/sin table rotary.forward uses, so a row's values are exactly those of its prompt alone.
 */
export function rotateAt(rotary: RotaryEmbedding, x: Tensor, padding: Padding): Tensor {
  if (padding.uniform !== null) return rotary.forward(x, padding.uniform);
  const [N, , T] = x.shape;
  const half = rotary.dim / 2;
  const table = rotary.angles(padding.maxPosition + 1, 0); // positions 0 .. max, [max + 1, E/2]
  const rows: Tensor[] = [];
  for (let n = 0; n < N; n++) {
    const cos = new Float64Array(T * half);
    const sin = new Float64Array(T * half);
    padding.positions[n].forEach((p, t) => {
      cos.set(table.cos.subarray(p * half, (p + 1) * half), t * half);
      sin.set(table.sin.subarray(p * half, (p + 1) * half), t * half);
    });
    rows.push(applyRotary(slice(x, 0, n, n + 1), cos, sin)); // [1, h, T, E]
  }
  return concat(rows, 0); // N × [1, h, T, E] -> [N, h, T, E]
}
