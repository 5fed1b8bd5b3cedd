/**
 * Examples to int32 token tensors.
 *
 * Decoder-only layout (one sequence, a GPT-style model predicts the next token everywhere):
 *   sequence = <s> source <sep> target </s>          (<sep> left out when the source is empty)
 *   tokens   = sequence[0 .. n-2]                    [B, T]   padded with <pad>
 *   targets  = sequence[1 .. n-1]                    [B, T]   IGNORE_INDEX except where the next
 *                                                              token is part of target </s>
 *                                                              (and not in the example's `unscored`)
 * so the loss and accuracy count only the answer. promptLengths[b] = tokens up to and including
 * <sep>: what a model is given at generation time.
 *
 * Encoder-decoder layout: source = source </s> [B, S] (sourcePadding true at padding),
 * tokens = <s> target [B, T], targets = target </s> [B, T].
 */
import { ArgumentError } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";
import { streamOf, shuffleInPlace } from "./seeds.js";
import type { Example } from "./tasks.js";
import { IGNORE_INDEX, type Vocab } from "./vocab.js";

export type BatchLayout = "decoder" | "encoder-decoder";

export interface Batch {
  /** [B, T] int32: the (decoder) input */
  tokens: Tensor;
  /** [B, T] int32: the next token to predict, IGNORE_INDEX where not scored */
  targets: Tensor;
  /** [B, S] int32: the encoder input (encoder-decoder layout only) */
  source?: Tensor;
  /** [B, S] bool: true where source is padding (encoder-decoder layout only) */
  sourcePadding?: Tensor;
  /** decoder layout: how many leading tokens of each row are the prompt */
  promptLengths: number[];
  examples: Example[];
}

/** The decoder-layout sequence of one example and the index of its first scored prediction. */
export function decoderSequence(e: Example, vocab: Vocab): { sequence: number[]; promptLength: number } {
  const prompt = e.source.length > 0 ? [vocab.bos, ...e.source, vocab.sep] : [vocab.bos];
  return { sequence: [...prompt, ...e.target, vocab.eos], promptLength: prompt.length };
}

export function collate(examples: readonly Example[], vocab: Vocab, layout: BatchLayout = "decoder"): Batch {
  const fn = "collate";
  if (examples.length === 0) throw new ArgumentError(`${fn}: needs at least one example`);
  if (layout !== "decoder" && layout !== "encoder-decoder") throw new ArgumentError(`${fn}: layout must be "decoder" or "encoder-decoder", got ${JSON.stringify(layout)}`);
  const B = examples.length;
  if (layout === "decoder") {
    const seqs = examples.map((e) => decoderSequence(e, vocab));
    const T = Math.max(...seqs.map((s) => s.sequence.length)) - 1;
    const tokens = new Int32Array(B * T).fill(vocab.pad);
    const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
    seqs.forEach(({ sequence, promptLength }, b) => {
      const unscored = new Set(examples[b].unscored ?? []);
      for (let t = 0; t < sequence.length - 1; t++) {
        tokens[b * T + t] = sequence[t];
        if (t + 1 >= promptLength && !unscored.has(t + 1 - promptLength)) targets[b * T + t] = sequence[t + 1];
      }
    });
    return {
      tokens: new Tensor(tokens, [B, T], "int32"),
      targets: new Tensor(targets, [B, T], "int32"),
      promptLengths: seqs.map((s) => s.promptLength),
      examples: [...examples],
    };
  }
  const S = Math.max(...examples.map((e) => e.source.length)) + 1;
  const T = Math.max(...examples.map((e) => e.target.length)) + 1;
  const source = new Int32Array(B * S).fill(vocab.pad);
  const padding = new Uint8Array(B * S).fill(1);
  const tokens = new Int32Array(B * T).fill(vocab.pad);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  examples.forEach((e, b) => {
    [...e.source, vocab.eos].forEach((id, s) => {
      source[b * S + s] = id;
      padding[b * S + s] = 0;
    });
    [vocab.bos, ...e.target].forEach((id, t) => (tokens[b * T + t] = id));
    const unscored = new Set(e.unscored ?? []);
    [...e.target, vocab.eos].forEach((id, t) => {
      if (!unscored.has(t)) targets[b * T + t] = id;
    });
  });
  return {
    tokens: new Tensor(tokens, [B, T], "int32"),
    targets: new Tensor(targets, [B, T], "int32"),
    source: new Tensor(source, [B, S], "int32"),
    sourcePadding: new Tensor(padding, [B, S], "bool"),
    promptLengths: examples.map(() => 1),
    examples: [...examples],
  };
}

export interface BatchIteratorOptions {
  batchSize: number;
  /** reshuffle each epoch from this seed (default 0); shuffle: false keeps the order */
  seed?: number;
  shuffle?: boolean;
  /** passes over the data (default 1; Infinity for an endless stream) */
  epochs?: number;
  /** drop a last batch smaller than batchSize */
  dropLast?: boolean;
  layout?: BatchLayout;
}

/** Batches over a fixed list of examples; the same options always give the same batches. */
export function* batchIterator(examples: readonly Example[], vocab: Vocab, opts: BatchIteratorOptions): Generator<Batch> {
  const fn = "batchIterator";
  const { batchSize } = opts;
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new ArgumentError(`${fn}: batchSize must be a positive integer, got ${String(batchSize)}`);
  const epochs = opts.epochs ?? 1;
  if (!(epochs >= 0)) throw new ArgumentError(`${fn}: epochs must be >= 0, got ${epochs}`);
  if (examples.length === 0) return;
  const seed = opts.seed ?? 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = examples.map((_, i) => i);
    if (opts.shuffle ?? true) shuffleInPlace(order, streamOf(seed, `epoch/${epoch}`));
    for (let i = 0; i < order.length; i += batchSize) {
      const idx = order.slice(i, i + batchSize);
      if (idx.length < batchSize && opts.dropLast) break;
      yield collate(idx.map((j) => examples[j]), vocab, opts.layout ?? "decoder");
    }
  }
}
