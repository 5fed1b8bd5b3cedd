/**
 * Several prompts of different lengths decoded as one padded batch (generateText's path for a batch):
 * the prompts are left-padded to the longest, and forward's attentionMask (padding.ts) makes each row
 * count positions from its own first token and never attend to padding. One prefill runs the whole
 * batch; then every step feeds one token per row through the KV cache (or, with useCache: false,
 * re-runs the padded sequences). A row that stops (its stop token, maxNewTokens, or its last position:
 * maxSeqLen - its prompt length) is fed padding from then on, and the others go on.
 *
 *   prompts [a] and [b c d]:   prefill   ids  · · a     mask  0 0 1       then  ids  x     mask  0 0 1 1
 *                                             b c d           1 1 1                  y           1 1 1 1
 *   (· = padding; the next steps feed only x and y, the mask growing by a column)
 *
 * Each row draws from its own Generator(seed) (or, given opts.generator, all rows from it in row
 * order at each step), so with a seed a row's tokens are those of its prompt alone, sampled or greedy.
 * This is a small loop of its own beside models/generate.ts's decodeLoop (which has no padding).
 */
import { noGrad } from "../autograd/tape.js";
import { withFrozenWeights } from "../kernels/dispatch.js";
import { ArgumentError } from "../tensor/errors.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { type SamplingOptions, applyRepetitionPenalty, checkDecodeOptions, sampleToken } from "../models/generate.js";
import type { PretrainedLM } from "./model.js";

/** The id fed at padded places: any id does, since padding is never attended to and its logits are not read. */
const PAD = 0;

export interface PaddedGenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** a row's prompt + new tokens at most (generation_config.json's max_length; the model's positions cap it anyway) */
  maxLength?: number;
  /** a row stops after any of these */
  stopTokens: ReadonlySet<number>;
  /** generate()'s repetitionPenalty: each row's own prompt and new tokens (never its padding) are penalised */
  repetitionPenalty?: number;
  /** decode with the KV cache (default true) */
  useCache?: boolean;
  /** each new token as it is picked: within a step, the rows still going, in row order */
  onToken?: (token: number, row: number) => void;
}

/** The new tokens of each prompt (the stop token included when one was produced). */
export function generatePadded(fn: string, model: PretrainedLM, prompts: readonly (readonly number[])[], opts: PaddedGenerateOptions): number[][] {
  const { greedy, temperature, topK, topP } = opts;
  const sampling: SamplingOptions = { greedy, temperature, topK, topP };
  checkDecodeOptions(fn, opts); // generate()'s checks, once, naming fn (sampleToken repeats some at each pick, naming itself)
  const penalty = opts.repetitionPenalty ?? 1;
  const { maxNewTokens } = opts;
  const N = prompts.length;
  const maxSeqLen = model.config.maxSeqLen;
  prompts.forEach((p, n) => {
    if (p.length > maxSeqLen) throw new ArgumentError(`${fn}: prompt ${n} has ${p.length} tokens, more than the model's ${maxSeqLen} positions`);
  });
  const generators = prompts.map(() => opts.generator ?? new Generator(opts.seed ?? 0));
  const budget = prompts.map((p) => Math.min(maxNewTokens, Math.min(maxSeqLen, opts.maxLength ?? maxSeqLen) - p.length)); // new tokens each row may add
  const out: number[][] = prompts.map(() => []);
  const seen = penalty === 1 ? [] : prompts.map((p) => new Set(p)); // each row's ids so far, for repetitionPenalty (never its padding)
  const T = Math.max(...prompts.map((p) => p.length));
  // the padded rows so far and their mask: [N, S], growing by one column per step
  const ids = prompts.map((p) => [...new Array<number>(T - p.length).fill(PAD), ...p]);
  const mask = prompts.map((p) => [...new Array<number>(T - p.length).fill(0), ...new Array<number>(p.length).fill(1)]);
  let padded = prompts.some((p) => p.length !== T);
  const useCache = opts.useCache ?? true;
  const cache = useCache ? model.newCache() : null;
  // [N, t] -> [N, 1, V]: only the last column's logits, which left padding makes every row's last token
  const forward = (x: number[][]): Tensor => model.forward(x, { cache, attentionMask: padded ? mask : null, logitsToKeep: 1 });
  const wasTraining = model.training;
  model.eval();
  try {
    withFrozenWeights(model.parameters(), () => noGrad(() => {
      let active = budget.map((b, n) => (b > 0 ? n : -1)).filter((n) => n >= 0);
      if (active.length === 0) return;
      let logits = forward(ids); // prefill: [N, T] -> [N, 1, V]
      for (;;) {
        const [, L, V] = logits.shape;
        for (const n of active) {
          const at = (n * L + L - 1) * V; // row n's last position
          const z = logits.values.subarray(at, at + V);
          const t = sampleToken(penalty === 1 ? z : applyRepetitionPenalty(z, seen[n], penalty), sampling, generators[n]);
          out[n].push(t);
          if (penalty !== 1) seen[n].add(t);
          opts.onToken?.(t, n);
          budget[n] = opts.stopTokens.has(t) ? 0 : budget[n] - 1;
        }
        const going = new Set(active.filter((n) => budget[n] > 0));
        if (going.size === 0) break;
        const next = ids.map((_, n) => (going.has(n) ? out[n][out[n].length - 1] : PAD)); // a stopped row is fed padding
        next.forEach((t, n) => {
          ids[n].push(t);
          mask[n].push(going.has(n) ? 1 : 0);
        });
        padded ||= going.size < N;
        active = [...going];
        logits = forward(useCache ? next.map((t) => [t]) : ids); // [N, 1] with the cache, else [N, S] -> [N, 1, V]
      }
    }));
  } finally {
    model.train(wasTraining);
  }
  return out;
}
