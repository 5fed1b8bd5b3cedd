/**
 * Text from a trained SequenceModel: take the most likely next token (temperature 0) or sample from
 * softmax(logits / temperature), append, repeat. Models with their own generate (the GPT and
 * encoder-decoder adapters: KV-cached) use it; otherwise the whole sequence is run through the model
 * for every new token.
 */
import { noGrad } from "../autograd/tape.js";
import { ArgumentError } from "../tensor/errors.js";
import type { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { decoderSequence } from "../data/batch.js";
import type { Vocab } from "../data/vocab.js";
import type { SequenceModel } from "./model.js";

export interface SampleOptions {
  /** most new tokens (default 32) */
  maxTokens?: number;
  /** 0 (default) = greedy */
  temperature?: number;
  /** sample among the k most likely tokens only (ties with the k-th kept); default all */
  topK?: number;
  generator?: Generator;
  /** stop after this token (default: the vocabulary's end token) */
  stopToken?: number;
  /** the longest sequence, prompt included (default: the model's maxLength) */
  maxLength?: number;
}

function pick(logits: ArrayLike<number>, offset: number, V: number, temperature: number, topK: number, g: Generator | undefined): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (logits[offset + v] > logits[offset + best]) best = v;
  if (temperature === 0 || topK === 1) return best;
  if (g === undefined) throw new ArgumentError("sampleTokens: sampling with temperature > 0 needs a generator");
  // top-k: logits below the k-th largest get no weight
  const kth = topK < V ? Float64Array.from({ length: V }, (_, v) => logits[offset + v]).sort().reverse()[topK - 1] : -Infinity;
  const w = new Float64Array(V);
  let total = 0;
  for (let v = 0; v < V; v++) {
    w[v] = logits[offset + v] < kth ? 0 : Math.exp((logits[offset + v] - logits[offset + best]) / temperature);
    total += w[v];
  }
  let u = g.nextFloat64() * total;
  for (let v = 0; v < V; v++) {
    u -= w[v];
    if (u < 0) return v;
  }
  return best;
}

/**
 * Continue `prefix` (token ids, starting with <s>). Decoder models see prefix + new tokens; an
 * encoder-decoder model gets `source` for its encoder and continues the decoder prefix.
 * Returns the new tokens only (the stop token included when reached).
 */
export function sampleTokens(model: SequenceModel, prefix: readonly number[], vocab: Vocab, opts: SampleOptions = {}, source?: readonly number[]): number[] {
  const maxTokens = opts.maxTokens ?? 32;
  const temperature = opts.temperature ?? 0;
  if (!(temperature >= 0)) throw new ArgumentError(`sampleTokens: temperature must be >= 0, got ${temperature}`);
  const topK = opts.topK ?? Infinity;
  if (opts.topK !== undefined && !(Number.isInteger(topK) && topK >= 1)) throw new ArgumentError(`sampleTokens: topK must be a positive integer, got ${String(opts.topK)}`);
  const stop = opts.stopToken ?? vocab.eos;
  const maxLength = Math.min(opts.maxLength ?? Infinity, model.maxLength ?? Infinity);
  if (model.generate) {
    return model.generate([...prefix], { maxTokens, temperature, topK: opts.topK, generator: opts.generator, stopToken: stop, maxLength: Number.isFinite(maxLength) ? maxLength : undefined }, source && [...source]);
  }
  const seq = [...prefix];
  const out: number[] = [];
  model.eval?.();
  return noGrad(() => {
    const src = source === undefined ? undefined : {
      source: new Tensor(Int32Array.from(source), [1, source.length], "int32"),
      sourcePadding: new Tensor(new Uint8Array(source.length), [1, source.length], "bool"),
    };
    while (out.length < maxTokens && seq.length < maxLength) {
      const tokens = new Tensor(Int32Array.from(seq), [1, seq.length], "int32");
      const logits = model.forward(tokens, src); // [1, T, V]
      const V = logits.shape[2];
      const next = pick(logits.values, (seq.length - 1) * V, V, temperature, topK, opts.generator);
      seq.push(next);
      out.push(next);
      if (next === stop) break;
    }
    return out;
  });
}

/** The answer a decoder model gives for a task source: <s> source <sep> -> tokens up to </s>. */
export function answer(model: SequenceModel, source: readonly number[], vocab: Vocab, opts: SampleOptions = {}): number[] {
  if (model.layout === "encoder-decoder") {
    const out = sampleTokens(model, [vocab.bos], vocab, opts, [...source, vocab.eos]);
    return out[out.length - 1] === vocab.eos ? out.slice(0, -1) : out;
  }
  const { sequence, promptLength } = decoderSequence({ source: [...source], target: [] }, vocab);
  const out = sampleTokens(model, sequence.slice(0, promptLength), vocab, opts);
  return out[out.length - 1] === vocab.eos ? out.slice(0, -1) : out;
}
