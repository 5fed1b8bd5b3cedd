/**
 * Inside the heads of a pretrained model: the weights of any layer's heads for a prompt, and the
 * per-head scores interpretability work uses to find previous-token, induction and sink heads.
 *
 * Both read the weights through the fused path (attentionWeights with rows and heads): the chosen
 * rows of the chosen heads are replayed from the fused kernel's row statistics, so no L × S map is
 * formed for the others, and a head scan holds one block of rows of one layer at a time.
 *
 * The scores, for one layer and head, on a repeated random sequence x = r ++ r (r: T tokens drawn
 * uniformly from the vocabulary, positions 0 … 2T − 1), w[l, s] the weight of query l on key s:
 *   previousToken   mean over l = 1 … 2T−1 of w[l, l − 1]
 *   induction       mean over l = T … 2T−1 of w[l, l − T + 1]: from a token of the second copy to the
 *                   token that followed its previous occurrence (what an induction head copies)
 *   entropy         mean over l = 1 … 2T−1 of −Σ_s w[l, s] ln w[l, s] (nats; 0 = one key, ln(l+1) = uniform)
 *   firstToken      mean over l = 1 … 2T−1 of w[l, 0] (attention sinks)
 * Row 0, which can only see itself, is left out of every mean; each is also averaged over the batch.
 */
import { noGrad } from "../autograd/tape.js";
import { ArgumentError } from "../tensor/errors.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { checkOptions } from "../tensor/validate.js";
import { attentionWeights } from "../attention/sdpa.js";
import { type TokenInput, tokenTensor } from "../models/tokens.js";
import type { LayerAttentionOptions, PretrainedLM } from "./model.js";

export interface AttentionMapsOptions {
  /** which layer, counting from 0 */
  layer: number;
  /** query heads, in this order (default all) */
  heads?: readonly number[];
  /** query positions start <= l < end (default all) */
  rows?: readonly [number, number];
}

/** Thrown by a visitor to end the forward pass once it has what it came for. */
const STOP = Symbol("stop after the layer");

function checkModel(fn: string, model: unknown): asserts model is PretrainedLM {
  const m = model as PretrainedLM | null;
  if (m === null || typeof m !== "object" || typeof m.forwardVisitingAttention !== "function") {
    throw new ArgumentError(`${fn}: model must be a PretrainedLM (fromPretrained(dir).model)`);
  }
}

/**
 * One layer's attention weights for a prompt: ids [N, T] (or one row) -> [N, heads.length, R, T]
 * (R = end - start rows), from the fused path; the layers after the chosen one are not run.
 */
export function attentionMaps(model: PretrainedLM, ids: TokenInput, opts: AttentionMapsOptions): Tensor {
  checkOptions("attentionMaps", "options", opts, ["layer", "heads", "rows"]);
  const { layer, ...rest } = opts ?? {};
  return layerMaps("attentionMaps", model, ids, [layer], rest)[0];
}

export interface LayerAttentionMapsOptions {
  /** which layers (default all), counting from 0 */
  layers?: readonly number[];
  heads?: readonly number[];
  rows?: readonly [number, number];
}

/** attentionMaps of several layers from one forward pass: one [N, heads.length, R, T] per layer asked for, in that order. */
export function layerAttentionMaps(model: PretrainedLM, ids: TokenInput, opts: LayerAttentionMapsOptions = {}): Tensor[] {
  checkOptions("layerAttentionMaps", "options", opts, ["layers", "heads", "rows"]);
  const { layers, ...rest } = opts;
  return layerMaps("layerAttentionMaps", model, ids, layers ?? null, rest);
}

function layerMaps(fn: string, model: PretrainedLM, ids: TokenInput, layers: readonly number[] | null, opts: Omit<AttentionMapsOptions, "layer">): Tensor[] {
  checkModel(fn, model);
  const { numLayers, numHeads } = model.config;
  const wanted = layers ?? Array.from({ length: numLayers }, (_, l) => l);
  if (!Array.isArray(wanted) || wanted.length === 0) throw new ArgumentError(`${fn}: layers must be a non-empty array of layer indices`);
  for (const layer of wanted) {
    if (!Number.isInteger(layer) || layer < 0 || layer >= numLayers) {
      throw new ArgumentError(`${fn}: layer must be an integer from 0 to ${numLayers - 1} (the model has ${numLayers} layers), got ${String(layer)}`);
    }
  }
  const heads = opts.heads ?? Array.from({ length: numHeads }, (_, h) => h);
  const last = Math.max(...wanted);
  const maps = new Map<number, Tensor>();
  noGrad(() => {
    try {
      model.forwardVisitingAttention(ids, (l, q, k, o) => {
        // heads given explicitly: always the fused path's rows, never the full [N, H, T, S] of the math path
        if (wanted.includes(l)) maps.set(l, attentionWeights(q, k, { ...o, heads, ...(opts.rows === undefined ? {} : { rows: opts.rows }) })); // [N, heads, R, S]
        if (l === last) throw STOP;
      });
    } catch (e) {
      if (e !== STOP) throw e;
    }
  });
  return wanted.map((l) => maps.get(l)!);
}

export interface HeadScoresOptions {
  /** T, the length of the random half (default min(50, maxSeqLen / 2)) */
  length?: number;
  /** random sequences averaged over (default 4) */
  batch?: number;
  /** seed for the random tokens (default 0) */
  seed?: number;
  /** or the random halves themselves, [batch, T] token ids (length, batch and seed are then unused) */
  tokens?: readonly (readonly number[])[];
}

/** Per layer and head: [layer][head]. */
export interface HeadScores {
  numLayers: number;
  numHeads: number;
  /** the random halves r [batch, T]; the model read r ++ r */
  tokens: number[][];
  previousToken: number[][];
  induction: number[][];
  entropy: number[][];
  firstToken: number[][];
}

/** Rows of weights read per block: at most about this many values at once. */
const BLOCK_VALUES = 1 << 22;

function randomHalves(fn: string, model: PretrainedLM, opts: HeadScoresOptions): number[][] {
  const { vocabSize, maxSeqLen } = model.config;
  if (opts.tokens !== undefined) {
    const t = opts.tokens;
    if (!Array.isArray(t) || t.length === 0 || !t.every((r) => Array.isArray(r) && r.length === t[0].length) || t[0].length < 1) {
      throw new ArgumentError(`${fn}: tokens must be a non-empty [batch, T] array of token id rows of one length`);
    }
    tokenTensor(fn, "tokens", t as number[][], vocabSize); // checks the ids
    if (2 * t[0].length > maxSeqLen) throw new ArgumentError(`${fn}: tokens rows of ${t[0].length} repeat to ${2 * t[0].length} positions, more than the model's ${maxSeqLen}`);
    return t.map((r) => [...r]);
  }
  const T = opts.length ?? Math.min(50, Math.floor(maxSeqLen / 2));
  if (!Number.isInteger(T) || T < 1 || 2 * T > maxSeqLen) throw new ArgumentError(`${fn}: length must be an integer from 1 to ${Math.floor(maxSeqLen / 2)} (2 × length <= the model's ${maxSeqLen} positions), got ${String(T)}`);
  const B = opts.batch ?? 4;
  if (!Number.isInteger(B) || B < 1) throw new ArgumentError(`${fn}: batch must be a positive integer, got ${String(B)}`);
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new ArgumentError(`${fn}: seed must be an integer, got ${String(seed)}`);
  const g = new Generator(seed);
  return Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(g.nextFloat64() * vocabSize)));
}

/** Previous-token, induction, entropy and first-token scores of every layer × head (see the file comment). */
export function headScores(model: PretrainedLM, opts: HeadScoresOptions = {}): HeadScores {
  const fn = "headScores";
  checkModel(fn, model);
  checkOptions(fn, "options", opts, ["length", "batch", "seed", "tokens"]);
  const halves = randomHalves(fn, model, opts);
  const [B, T] = [halves.length, halves[0].length];
  const L = 2 * T;
  const { numLayers, numHeads: H } = model.config;
  const table = (): number[][] => Array.from({ length: numLayers }, () => new Array<number>(H).fill(0));
  const s = { previousToken: table(), induction: table(), entropy: table(), firstToken: table() };
  const heads = Array.from({ length: H }, (_, h) => h);
  const block = Math.max(1, Math.floor(BLOCK_VALUES / (B * H * L)));
  const visit = (layer: number, q: Tensor, k: Tensor, o: LayerAttentionOptions): void => {
    for (let r0 = 1; r0 < L; r0 += block) {
      const r1 = Math.min(L, r0 + block);
      const w = attentionWeights(q, k, { ...o, heads, rows: [r0, r1] }).values; // [B, H, R, L]
      const R = r1 - r0;
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          for (let i = 0; i < R; i++) {
            const l = r0 + i;
            const row = ((b * H + h) * R + i) * L; // w[b, h, i, :]
            s.previousToken[layer][h] += w[row + l - 1];
            s.firstToken[layer][h] += w[row];
            if (l >= T) s.induction[layer][h] += w[row + l - T + 1];
            let ent = 0;
            for (let j = 0; j <= l; j++) if (w[row + j] > 0) ent -= w[row + j] * Math.log(w[row + j]);
            s.entropy[layer][h] += ent;
          }
        }
      }
    }
  };
  const ids = halves.map((r) => [...r, ...r]); // [B, 2T]
  noGrad(() => model.forwardVisitingAttention(ids, visit));
  const mean = (t: number[][], n: number): number[][] => t.map((r) => r.map((v) => v / n));
  return {
    numLayers, numHeads: H, tokens: halves,
    previousToken: mean(s.previousToken, B * (L - 1)), induction: mean(s.induction, B * T),
    entropy: mean(s.entropy, B * (L - 1)), firstToken: mean(s.firstToken, B * (L - 1)),
  };
}
