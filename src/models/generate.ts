/**
 * Autoregressive generation. The prompt is run once (prefill), filling a KV cache; then one token
 * at a time: pick the next token from the last position's logits, feed only that token, repeat.
 * With useCache: false every step re-runs the whole sequence instead (the O(T²) baseline the cache
 * removes; the two give the same logits, see test/generate.test.ts).
 *
 * Picking a token from logits z [V]:
 *   greedy (temperature 0, the default)   argmax z: the same output every run, as `attend sample`
 *                                         and PyTorch / Hugging Face generate() (do_sample=False) give
 *   temperature τ > 0                     sample from softmax(z / τ)    τ < 1 sharpens, τ > 1 flattens
 *   topK k (with τ > 0)                   ... keeping only the k largest logits (ties with the k-th kept)
 *   topP p (with τ > 0)                   ... then only the most likely tokens whose probabilities, largest
 *                                         first, first reach p (nucleus sampling; at least one is kept), as
 *                                         Hugging Face's TopPLogitsWarper after its top-k
 *   repetitionPenalty r (generate's option, before all of the above, greedy too)
 *                                         each token already in the row (prompt and new tokens) has its
 *                                         logit divided by r when positive, multiplied by r when negative
 *                                         (CTRL's penalty, as Hugging Face's RepetitionPenaltyLogitsProcessor;
 *                                         r > 1 discourages repeats, 1 is off)
 * Sampling draws from a seeded Generator, so a seed reproduces a run.
 */
import { noGrad } from "../autograd/tape.js";
import { withFrozenWeights } from "../kernels/dispatch.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Generator, checkGenerator } from "../tensor/random.js";
import { type OptionTable, checkOptions, optionKeys } from "../tensor/validate.js";
import type { Tensor } from "../tensor/tensor.js";
import { assertTensor } from "../ops/util.js";
import type { Module } from "../nn/module.js";
import type { EncoderDecoder } from "./encoderDecoder.js";
import { KVCache } from "../attention/kvcache.js";
import { PagedKVCache, type PagedKVCacheOptions } from "../attention/kvpaged.js";
import { type TokenInput, tokenTensor } from "./tokens.js";

export interface SamplingOptions {
  /** always take the most likely token, whatever the temperature */
  greedy?: boolean;
  /** 0 (the default): greedy, the most likely token; > 0: sample from softmax(logits / temperature) (1 = the model's own distribution) */
  temperature?: number;
  /** when sampling (temperature > 0): among the k most likely tokens only */
  topK?: number;
  /** when sampling: among the most likely tokens whose probabilities add up to p (0 < p <= 1; 1 keeps all) */
  topP?: number;
  /** seed for a fresh Generator (default 0) */
  seed?: number;
  /** or the generator to draw from (advanced by each draw) */
  generator?: Generator;
}
const SAMPLING_TABLE: OptionTable<SamplingOptions> = { greedy: true, temperature: true, topK: true, topP: true, seed: true, generator: true };
export const SAMPLING_OPTION_KEYS = optionKeys<SamplingOptions>(SAMPLING_TABLE);

export interface GenerateOptions extends SamplingOptions {
  /** tokens to add at most */
  maxNewTokens: number;
  /** stop a row once it produces this token (or any of these); the stop token is kept */
  stopToken?: number | readonly number[];
  /** cap on the whole sequence (prompt + new; default and upper bound: the model's maxSeqLen) */
  maxLength?: number;
  /** decode with a KV cache (default true); false re-runs the whole sequence each step */
  useCache?: boolean;
  /**
   * > 0; 1 (the default) is off. Before each pick, every token already in the row (the prompt and the
   * new tokens) has its logit divided by this when positive and multiplied by it when negative, so
   * values > 1 make repeats less likely (see applyRepetitionPenalty)
   */
  repetitionPenalty?: number;
  /**
   * called with each new token as soon as it is picked (row n of the batch), for streaming; it must
   * not write the model's parameters (they are frozen while decoding: see withFrozenWeights)
   */
  onToken?: (token: number, row: number) => void;
  /**
   * streaming: the cache keeps only the last `window` positions (and the first sinkTokens), so memory
   * stays flat however long the generation; with rotary or sinusoidal positions it may run past the
   * model's maxSeqLen (maxLength then has no default cap)
   */
  window?: number;
  /** streaming: positions kept forever at the start (StreamingLLM's attention sinks; default 0; needs window) */
  sinkTokens?: number;
  /**
   * a paged KV cache (fixed-size blocks, a block table per row): rows of different lengths generate
   * together without padding. Used (with blockSize 16) whenever the prompt rows differ in length;
   * with window / sinkTokens each row streams in its own ring of blocks (PagedKVCache's window).
   */
  paged?: Pick<PagedKVCacheOptions, "blockSize">;
}
const GENERATE_TABLE: OptionTable<GenerateOptions> = {
  ...SAMPLING_TABLE, maxNewTokens: true, stopToken: true, maxLength: true, useCache: true, repetitionPenalty: true, window: true, sinkTokens: true, paged: true, onToken: true,
};
export const GENERATE_OPTION_KEYS = optionKeys<GenerateOptions>(GENERATE_TABLE);

export interface Seq2SeqGenerateOptions extends GenerateOptions {
  /** the token the decoder starts from (BOS) */
  startToken: number;
  /** [N, S] bool, true = padding in the source */
  srcPaddingMask?: Tensor | null;
}
export const SEQ2SEQ_GENERATE_OPTION_KEYS = optionKeys<Seq2SeqGenerateOptions>({ ...GENERATE_TABLE, startToken: true, srcPaddingMask: true })
  .filter((k) => k !== "window" && k !== "sinkTokens" && k !== "paged") as readonly (keyof Seq2SeqGenerateOptions & string)[];

/** generate's options object is required (it holds maxNewTokens); unknown keys are rejected. */
function checkRequiredOptions(fn: string, opts: unknown, keys: readonly string[]): void {
  if (opts === undefined) throw new ArgumentError(`${fn}: needs an options object with maxNewTokens, e.g. { maxNewTokens: 20 }`);
  checkOptions(fn, "options", opts, keys);
}

/** The temperature when none is given: 0, greedy (see the file comment). */
const DEFAULT_TEMPERATURE = 0;

function checkSampling(fn: string, opts: SamplingOptions & { repetitionPenalty?: number }): void {
  checkRepetitionPenalty(fn, opts.repetitionPenalty);
  const t = opts.temperature ?? DEFAULT_TEMPERATURE;
  if (typeof t !== "number" || !(t >= 0) || !Number.isFinite(t)) throw new ArgumentError(`${fn}: temperature must be a finite number >= 0, got ${String(t)}`);
  if (opts.topK !== undefined && (!Number.isInteger(opts.topK) || opts.topK <= 0)) {
    throw new ArgumentError(`${fn}: topK must be a positive integer, got ${String(opts.topK)}`);
  }
  if (opts.topP !== undefined && !(typeof opts.topP === "number" && opts.topP > 0 && opts.topP <= 1)) {
    throw new ArgumentError(`${fn}: topP must be a number in (0, 1], got ${String(opts.topP)}`);
  }
  checkGenerator(fn, "generator", opts.generator);
}

/**
 * The options every decoding loop checks once, up front, naming fn: the sampling options (temperature,
 * topK, topP, generator, repetitionPenalty), maxNewTokens and onToken (generate's loops and
 * generateText's padded batch).
 */
export function checkDecodeOptions(
  fn: string, opts: SamplingOptions & { repetitionPenalty?: number; maxNewTokens: number; onToken?: unknown },
): void {
  checkSampling(fn, opts);
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw new ArgumentError(`${fn}: maxNewTokens must be a non-negative integer, got ${String(opts.maxNewTokens)}`);
  }
  if (opts.onToken !== undefined && typeof opts.onToken !== "function") throw new ArgumentError(`${fn}: onToken must be a function (token, row) => void`);
}

/** repetitionPenalty: undefined, or a finite number > 0. */
export function checkRepetitionPenalty(fn: string, r: unknown): void {
  if (r !== undefined && !(typeof r === "number" && r > 0 && Number.isFinite(r))) {
    throw new ArgumentError(`${fn}: repetitionPenalty must be a finite number > 0 (1: off; > 1 discourages repeats), got ${String(r)}`);
  }
}

/**
 * A row of logits z [V] with the repetition penalty r applied to every token id in `tokens` (the row
 * so far, or a Set of the ids in it): z / r where z > 0, z · r where z < 0, in the logits' precision
 * as Hugging Face's RepetitionPenaltyLogitsProcessor computes it (float32 logits, a Float32Array:
 * float32; anything else: float64). A token counts once however often it occurs. Returns a new array;
 * logits is not written. Ids outside 0..V-1 are an error.
 */
export function applyRepetitionPenalty(logits: ArrayLike<number>, tokens: Iterable<number>, penalty: number): Float32Array | Float64Array {
  const fn = "applyRepetitionPenalty";
  if (penalty === undefined) throw new ArgumentError(`${fn}: penalty must be a finite number > 0, got undefined`);
  checkRepetitionPenalty(fn, penalty);
  const single = logits instanceof Float32Array;
  const z = single ? Float32Array.from(logits) : Float64Array.from(logits);
  const r = single ? Math.fround(penalty) : penalty;
  const seen = new Set<number>();
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t >= z.length) throw new ArgumentError(`${fn}: token ids must be integers in 0..${z.length - 1}, got ${String(t)}`);
    if (seen.has(t)) continue;
    seen.add(t);
    z[t] = z[t] < 0 ? z[t] * r : z[t] / r; // stored in z's precision: torch.where(score < 0, score * r, score / r)
  }
  return z;
}

/** The first index of the largest value. */
function argmaxOf(z: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < z.length; i++) if (z[i] > z[best]) best = i;
  return best;
}

/** Pick one token from a row of logits [V] (see the file comment). */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions = {}, generator?: Generator): number {
  const fn = "sampleToken";
  checkOptions(fn, "options", opts, SAMPLING_OPTION_KEYS);
  checkSampling(fn, opts);
  checkGenerator(fn, "generator", generator);
  return pickToken(fn, logits, opts, generator);
}

/** sampleToken after its options are checked (the decoding loop checks them once). */
function pickToken(
  fn: string, logits: ArrayLike<number>, opts: SamplingOptions & { repetitionPenalty?: number }, generator?: Generator, history?: readonly number[],
): number {
  const V = logits.length;
  if (V === 0) throw new ArgumentError(`${fn}: logits must hold at least one value`);
  for (let i = 0; i < V; i++) if (Number.isNaN(logits[i])) throw new ArgumentError(`${fn}: logits[${i}] is NaN`);
  const r = opts.repetitionPenalty;
  if (r !== undefined && r !== 1 && history !== undefined) logits = applyRepetitionPenalty(logits, history, r);
  const temperature = opts.temperature ?? DEFAULT_TEMPERATURE;
  if (opts.greedy || temperature === 0 || opts.topK === 1) return argmaxOf(logits);
  const z = Float64Array.from(logits, (v) => v / temperature);
  if (opts.topK !== undefined && opts.topK < V) {
    const kth = Float64Array.from(z).sort().reverse()[opts.topK - 1]; // the k-th largest
    for (let i = 0; i < V; i++) if (z[i] < kth) z[i] = -Infinity;
  }
  // softmax, stable, in float64
  const m = z[argmaxOf(z)];
  let total = 0;
  for (let i = 0; i < V; i++) total += z[i] = Math.exp(z[i] - m);
  if (opts.topP !== undefined && opts.topP < 1) total = keepNucleus(z, total, opts.topP);
  const g = generator ?? opts.generator ?? new Generator(opts.seed ?? 0);
  const u = g.nextFloat64() * total;
  let acc = 0;
  let last = 0;
  for (let i = 0; i < V; i++) {
    if (z[i] === 0) continue;
    acc += z[i];
    last = i;
    if (u < acc) return i;
  }
  return last; // rounding left u just past the total
}

/**
 * Nucleus: zero every weight of e (unnormalised probabilities, sum total) outside the smallest set of
 * largest ones whose share reaches p; returns the kept total. Ties at the boundary are kept together.
 */
function keepNucleus(e: Float64Array, total: number, p: number): number {
  const order = Array.from(e.keys()).sort((a, b) => e[b] - e[a]);
  let acc = 0;
  let cut = e[order[0]];
  for (const i of order) {
    if (e[i] === 0) break;
    acc += e[i];
    cut = e[i];
    if (acc >= p * total) break;
  }
  let kept = 0;
  for (let i = 0; i < e.length; i++) {
    if (e[i] < cut) e[i] = 0;
    else kept += e[i];
  }
  return kept;
}

/**
 * Row n of the last position of logits [N, T, V]: T is whatever the model gave (1 when it honours
 * logitsToKeep: 1, every position when it ignores it).
 */
function lastRow(fn: string, logits: Tensor, n: number): ArrayLike<number> {
  if (logits.shape.length !== 3 || logits.shape[1] < 1 || n >= logits.shape[0]) {
    throw new ShapeError(`${fn}: the model's forward returned logits ${fmtShape(logits.shape)}; expected [N, T, V] with a row for each of the batch's rows (row ${n} read) and T >= 1`);
  }
  const [, T, V] = logits.shape;
  const at = (n * T + T - 1) * V;
  return logits.values.subarray(at, at + V);
}

interface Loop {
  fn: string;
  model: Module;
  /** rows so far (prompt or start token, then new tokens) */
  rows: number[][];
  maxLength: number;
  opts: GenerateOptions;
  /** logits [N, T, V] of the given tokens (only the new ones with a cache) */
  step: (tokens: number[][]) => Tensor;
  useCache: boolean;
}

function stopSet(fn: string, stop: number | readonly number[] | undefined): Set<number> {
  const list = stop === undefined ? [] : typeof stop === "number" ? [stop] : [...stop];
  for (const s of list) if (!Number.isInteger(s) || s < 0) throw new ArgumentError(`${fn}: stopToken must be a non-negative integer token id, got ${s}`);
  return new Set(list);
}

/** The shared decoding loop: prefill, then one token per step for every unfinished row. */
function decodeLoop(l: Loop): number[][] {
  const { fn, opts } = l;
  checkDecodeOptions(fn, opts);
  const stops = stopSet(fn, opts.stopToken);
  const g = opts.generator ?? new Generator(opts.seed ?? 0);
  const rows = l.rows;
  const done = rows.map(() => false);
  const steps = Math.min(opts.maxNewTokens, l.maxLength - rows[0].length);
  if (steps <= 0) return rows;
  const wasTraining = l.model.training;
  l.model.eval();
  try {
    // nothing writes the parameters while decoding: the backend may keep them prepared between steps
    withFrozenWeights(l.model.parameters(), () => noGrad(() => {
      let logits = l.step(rows); // prefill: the whole prompt
      for (let s = 0; s < steps; s++) {
        const next = rows.map((r, n) => pickToken(fn, lastRow(fn, logits, n), opts, g, r)); // r: the row so far, for repetitionPenalty
        next.forEach((t, n) => {
          if (done[n]) return;
          rows[n].push(t);
          if (stops.has(t)) done[n] = true;
          opts.onToken?.(t, n);
        });
        if (done.every(Boolean) || s === steps - 1) break;
        // finished rows keep feeding their last token so the batch stays rectangular; their output is not kept
        logits = l.useCache ? l.step(next.map((t) => [t])) : l.step(rows.map((r, n) => (done[n] ? padTo(r, rows) : r)));
      }
    }));
  } finally {
    l.model.train(wasTraining);
  }
  return rows;
}

/** A finished row, repeated at its end to the length of the longest row (uncached decoding only). */
function padTo(r: number[], rows: number[][]): number[] {
  const T = Math.max(...rows.map((x) => x.length));
  return [...r, ...new Array<number>(T - r.length).fill(r[r.length - 1])];
}

/** opts.maxLength checked against the model's limit (`limit` names it in the error), or that limit when not given. */
function maxLengthOf(fn: string, requested: number | undefined, modelMax: number, limit = `maxSeqLen ${modelMax}`): number {
  if (requested === undefined) return modelMax;
  if (!Number.isInteger(requested) || requested <= 0) throw new ArgumentError(`${fn}: maxLength must be a positive integer, got ${requested}`);
  if (requested > modelMax) throw new ArgumentError(`${fn}: maxLength ${requested} exceeds the model's ${limit}`);
  return requested;
}

/**
 * What generate() needs of a model: GPT, a PretrainedLM loaded from a Hugging Face folder, or a class
 * of your own. forward is passed logitsToKeep: 1 for the prefill (models/logitsToKeep.ts: GPT and
 * PretrainedLM then skip the head on the other positions); a model may ignore it and return every
 * position's logits [N, T, V]: generate() reads the last position of whatever it gets.
 */
export interface CausalLM extends Module {
  /** vocabSize: the logits' V; maxSeqLen: the default (and largest) maxLength, unless a streaming cache lifts it (see maxPositions) */
  readonly config: { readonly vocabSize: number; readonly maxSeqLen: number };
  /**
   * The most positions forward can compute at all: the rows of learned position embeddings (GPT with
   * positional "learned"; GPT-2's wpe, n_positions). undefined (or absent): no such limit (rotary,
   * sinusoidal or no positions), so with a streaming cache ({ window, sinkTokens }) generate() may run
   * past config.maxSeqLen. Without streaming, config.maxSeqLen caps a row either way.
   */
  readonly maxPositions?: number;
  /**
   * true: forward places tokens through the cache's positionOffset() including PackedPositions (several
   * prompts back to back in one row, each from position 0, PagedKVCache.selectPacked), as GPT and
   * PretrainedLM do, so a paged batch may prefill its prompts packed. Absent: prompts of equal length
   * are prefilled together and the rest one length at a time (never a packed row).
   */
  readonly packedPrefill?: boolean;
  newCache(): KVCache;
  forward(idx: TokenInput, opts?: { cache?: KVCache | null; logitsToKeep?: number }): Tensor;
}

/** Whether the prompt is rows of token ids of different lengths (generated with a paged cache). */
function isRagged(prompt: TokenInput): prompt is readonly (readonly number[])[] {
  if (!Array.isArray(prompt) || prompt.length < 2 || !prompt.every((r) => Array.isArray(r))) return false;
  const rows = prompt as readonly (readonly number[])[];
  return rows.some((r) => r.length !== rows[0].length);
}

/** The cache generate() decodes with: a windowed one for { window, sinkTokens }, else the model's own (none with useCache: false). */
function streamingSetup(fn: string, model: CausalLM, opts: GenerateOptions): { cache: KVCache | null; maxLength: number } {
  const useCache = opts.useCache ?? true;
  const maxLength = maxLengthFor(fn, model, opts);
  if (!streams(opts)) return { cache: useCache ? model.newCache() : null, maxLength };
  if (!useCache) throw new ArgumentError(`${fn}: window and sinkTokens configure the KV cache; they cannot be combined with useCache: false`);
  return { cache: new KVCache({ initialCapacity: 64, window: opts.window, sinkTokens: opts.sinkTokens }), maxLength };
}

/** Whether opts asks for a streaming cache. */
function streams(opts: GenerateOptions): boolean {
  return opts.window !== undefined || opts.sinkTokens !== undefined;
}

/**
 * The cap on a row (prompt + new tokens): opts.maxLength, at most the model's config.maxSeqLen; with a
 * streaming cache at most model.maxPositions instead (none when it is undefined: computed positions).
 */
function maxLengthFor(fn: string, model: CausalLM, opts: GenerateOptions): number {
  if (!streams(opts)) return maxLengthOf(fn, opts.maxLength, model.config.maxSeqLen);
  const limit = model.maxPositions;
  if (limit === undefined) return maxLengthOf(fn, opts.maxLength, Infinity);
  if (!Number.isInteger(limit) || limit <= 0) throw new ArgumentError(`${fn}: the model's maxPositions must be a positive integer or undefined (no limit), got ${String(limit)}`);
  return maxLengthOf(fn, opts.maxLength, limit, `${limit} positions (its maxPositions)`);
}

/**
 * Continue each prompt row ([N, T] ids, one row, or rows of different lengths): returns every row as
 * prompt + new tokens (stopping after a stop token, at maxNewTokens, or at maxLength). Rows of
 * different lengths (or opts.paged) decode with a PagedKVCache: the prompts are prefilled together
 * without padding (prefillBatched), then every unfinished row takes one step per batch; each row's
 * tokens equal those of generating it alone (greedy; sampled rows share one generator, drawn in row
 * order). With { window, sinkTokens } the cache streams (KVCache's window; rows of different lengths,
 * or paged, stream in a PagedKVCache, each row in its own ring of blocks).
 */
export function generate(model: CausalLM, prompt: TokenInput, opts: GenerateOptions): number[][] {
  const fn = "generate";
  checkRequiredOptions(fn, opts, GENERATE_OPTION_KEYS);
  const c = model.config;
  if (opts.paged !== undefined || isRagged(prompt)) return generatePaged(fn, model, prompt, opts, null);
  const tokens = tokenTensor(fn, "prompt", prompt, c.vocabSize);
  const [N, T] = tokens.shape;
  const { cache, maxLength } = streamingSetup(fn, model, opts);
  if (T > maxLength) throw new ArgumentError(`${fn}: the prompt has ${T} tokens, more than maxLength ${maxLength}`);
  const rows = Array.from({ length: N }, (_, n) => Array.from(tokens.values.subarray(n * T, (n + 1) * T)));
  const useCache = opts.useCache ?? true;
  // only the last position's logits are read (lastRow): the prefill computes no others
  return decodeLoop({ fn, model, rows, maxLength, opts, useCache, step: (x) => model.forward(x, { cache, logitsToKeep: 1 }) });
}

/** What each row of generateRows gets of its own: a budget of new tokens and a generator. */
export interface RowSettings {
  maxNewTokens: readonly number[];
  generators: readonly Generator[];
}

/**
 * Rows of token ids of any lengths over a PagedKVCache, as generate() runs ragged rows, but each row
 * with its own budget of new tokens (at most opts.maxNewTokens still counts as given) and its own
 * generator, so that each row's tokens are those of its prompt alone, sampled as well as greedy (a
 * row's picks never draw from another's generator). generateText's path for several prompts with
 * paged or window / sinkTokens; generate() itself keeps one generator for the batch.
 */
export function generateRows(fn: string, model: CausalLM, rows: readonly (readonly number[])[], opts: GenerateOptions, perRow: RowSettings): number[][] {
  const N = rows.length;
  if (perRow.maxNewTokens.length !== N || perRow.generators.length !== N) {
    throw new ArgumentError(`${fn}: ${N} rows but ${perRow.maxNewTokens.length} budgets and ${perRow.generators.length} generators; give one of each per row`);
  }
  perRow.maxNewTokens.forEach((b, n) => {
    if (!Number.isInteger(b) || b < 0) throw new ArgumentError(`${fn}: row ${n}'s maxNewTokens must be a non-negative integer, got ${String(b)}`);
  });
  perRow.generators.forEach((g, n) => checkGenerator(fn, `generators[${n}]`, g));
  return generatePaged(fn, model, rows.map((r) => [...r]), opts, perRow);
}

/**
 * The paged prefill, the readable form: prompt n alone, [1, T_n] -> [1, 1, V], for each n of ids;
 * returns each one's last-position logits [V], in the order of ids. prefillBatched computes the same.
 */
export function prefillEachAlone(model: CausalLM, cache: PagedKVCache, prompts: readonly (readonly number[])[], ids: readonly number[], fn = "generate"): ArrayLike<number>[] {
  return ids.map((n) => {
    cache.select([n]);
    return lastRow(fn, model.forward([prompts[n]], { cache, logitsToKeep: 1 }), 0); // [1, T_n] -> [1, 1, V]
  });
}

/** The most prompt tokens one packed prefill forward takes (its attention is dense over them: T² scores). */
export const PACKED_PREFILL_TOKENS = 512;

/**
 * The paged prefill in few forwards: prefillEachAlone's logits, within float32 rounding (the same
 * positions, keys and masks; only the batching differs). Whichever takes fewer forwards (ties: the first;
 * always the first for a model without packedPrefill):
 *   by length     the prompts of each length as one forward [G, T] -> [G, 1, V] (one prompt: itself alone)
 *   packed        every prompt but its last token, back to back in one row (PagedKVCache.selectPacked:
 *                 each from position 0, a block-diagonal causal mask; at most PACKED_PREFILL_TOKENS a
 *                 forward), then one step of every prompt's last token at its own position, [A, 1] ->
 *                 [A, 1, V]: the last positions' logits, the LM head run on one position per prompt
 *                 (and one discarded per packed forward, logitsToKeep: 1)
 */
export function prefillBatched(model: CausalLM, cache: PagedKVCache, prompts: readonly (readonly number[])[], ids: readonly number[], fn = "generate"): ArrayLike<number>[] {
  const logits: ArrayLike<number>[] = [];
  const lengths = [...new Set(ids.map((n) => prompts[n].length))];
  const packs = packInOrder(ids.filter((n) => prompts[n].length > 1), (n) => prompts[n].length - 1, PACKED_PREFILL_TOKENS);
  if (model.packedPrefill !== true || lengths.length <= packs.length + 1) {
    for (const T of lengths) {
      const group = ids.map((_, i) => i).filter((i) => prompts[ids[i]].length === T); // indices into ids
      cache.select(group.map((i) => ids[i]));
      const out = model.forward(group.map((i) => prompts[ids[i]]), { cache, logitsToKeep: 1 }); // [G, T] -> [G, 1, V]
      group.forEach((i, g) => (logits[i] = lastRow(fn, out, g)));
    }
    return logits;
  }
  for (const pack of packs) {
    const heads = pack.map((n) => prompts[n].slice(0, -1)); // all but the last token
    if (pack.length === 1) cache.select(pack);
    else cache.selectPacked(pack, heads.map((h) => h.length));
    model.forward([heads.flat()], { cache, logitsToKeep: 1 }); // [1, sum] -> [1, 1, V], not read
  }
  cache.select(ids);
  const out = model.forward(ids.map((n) => [prompts[n][prompts[n].length - 1]]), { cache }); // [A, 1] -> [A, 1, V]
  return ids.map((_, i) => lastRow(fn, out, i));
}

/** ids in order, cut into runs whose sizes add up to at most `most` (an id larger than that alone). */
function packInOrder(ids: readonly number[], size: (id: number) => number, most: number): number[][] {
  const packs: number[][] = [];
  let total = Infinity;
  for (const id of ids) {
    if (total + size(id) > most) {
      packs.push([]);
      total = 0;
    }
    packs[packs.length - 1].push(id);
    total += size(id);
  }
  return packs;
}

/**
 * generate() over a PagedKVCache: prefill the rows together (prefillBatched), then one batch of
 * one-token rows per step (streaming in each row's ring of blocks with window / sinkTokens). All rows
 * draw from one generator, in row order, unless perRow gives each its own.
 */
function generatePaged(fn: string, model: CausalLM, prompt: TokenInput, opts: GenerateOptions, perRow: RowSettings | null): number[][] {
  const c = model.config;
  checkOptions(fn, "paged", opts.paged, ["blockSize"]);
  if (opts.useCache === false) throw new ArgumentError(`${fn}: a paged KV cache (prompt rows of different lengths, or paged) needs useCache: true`);
  let rows: number[][];
  if (isRagged(prompt)) rows = prompt.map((r, n) => Array.from(tokenTensor(fn, `prompt[${n}]`, r, c.vocabSize).values));
  else {
    const tokens = tokenTensor(fn, "prompt", prompt, c.vocabSize); // [N, T]
    const [N, T] = tokens.shape;
    rows = Array.from({ length: N }, (_, n) => Array.from(tokens.values.subarray(n * T, (n + 1) * T)));
  }
  const maxLength = maxLengthFor(fn, model, opts);
  rows.forEach((r, n) => {
    if (r.length > maxLength) throw new ArgumentError(`${fn}: prompt row ${n} has ${r.length} tokens, more than maxLength ${maxLength}`);
  });
  checkDecodeOptions(fn, opts);
  const stops = stopSet(fn, opts.stopToken);
  const g = opts.generator ?? new Generator(opts.seed ?? 0);
  const generators = perRow?.generators ?? rows.map(() => g);
  const cache = new PagedKVCache({ ...opts.paged, ...(streams(opts) && { window: opts.window, sinkTokens: opts.sinkTokens }) });
  const budget = rows.map((r, n) => Math.min(opts.maxNewTokens, perRow?.maxNewTokens[n] ?? Infinity, maxLength - r.length)); // new tokens each row may add
  const wasTraining = model.training;
  model.eval();
  try {
    // nothing writes the parameters while decoding: the backend may keep them prepared between steps
    withFrozenWeights(model.parameters(), () => noGrad(() => {
      let active = rows.map((_, n) => n).filter((n) => budget[n] > 0);
      const logits: ArrayLike<number>[] = rows.map(() => []);
      if (active.length > 0) prefillBatched(model, cache, rows, active, fn).forEach((z, i) => (logits[active[i]] = z)); // each row's last position
      while (active.length > 0) {
        for (const n of active) {
          const t = pickToken(fn, logits[n], opts, generators[n], rows[n]);
          rows[n].push(t);
          opts.onToken?.(t, n);
          budget[n]--;
          if (stops.has(t)) budget[n] = 0;
          if (budget[n] === 0) cache.free(n); // its blocks go back to the pool
        }
        active = active.filter((n) => budget[n] > 0);
        if (active.length === 0) break;
        cache.select(active);
        const out = model.forward(active.map((n) => [rows[n][rows[n].length - 1]]), { cache }); // [A, 1] -> [A, 1, V]
        active.forEach((n, i) => (logits[n] = lastRow(fn, out, i)));
      }
    }));
  } finally {
    model.train(wasTraining);
  }
  return rows;
}

/**
 * Translate each source row: encode once, then decode from startToken. Returns the generated target
 * rows without the start token (stopping after a stop token, at maxNewTokens, or at maxLength).
 */
export function generateSeq2Seq(model: EncoderDecoder, src: TokenInput, opts: Seq2SeqGenerateOptions): number[][] {
  const fn = "generateSeq2Seq";
  checkRequiredOptions(fn, opts, SEQ2SEQ_GENERATE_OPTION_KEYS);
  const c = model.config;
  if (!Number.isInteger(opts.startToken) || opts.startToken < 0 || opts.startToken >= c.tgtVocabSize) {
    throw new ArgumentError(`${fn}: startToken must be a target token id in 0..${c.tgtVocabSize - 1}, got ${String(opts.startToken)}`);
  }
  if (opts.srcPaddingMask) assertTensor(fn, "srcPaddingMask", opts.srcPaddingMask);
  const source = tokenTensor(fn, "src", src, c.srcVocabSize);
  const N = source.shape[0];
  const maxLength = maxLengthOf(fn, opts.maxLength, c.maxSeqLen);
  const rows = Array.from({ length: N }, () => [opts.startToken]);
  const useCache = opts.useCache ?? true;
  const cache = useCache ? model.newCache() : null;
  const srcPaddingMask = opts.srcPaddingMask ?? null;
  const wasTraining = model.training;
  model.eval();
  const memory = noGrad(() => model.encode(source, { srcPaddingMask }));
  model.train(wasTraining);
  const out = decodeLoop({ fn, model, rows, maxLength, opts, useCache, step: (x) => model.decode(x, memory, { srcPaddingMask, cache }) });
  return out.map((r) => r.slice(1));
}
