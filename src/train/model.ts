/**
 * What the training loop, evaluation, sampling and attention maps need of a model, and nothing more,
 * so any model (the one-block TinyAttentionModel here, the GPT-style and encoder-decoder models of src/models) fits.
 */
import type { StateDict } from "../nn/module.js";
import type { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";

/** The encoder side of a batch, for encoder-decoder models. */
export interface SourceContext {
  /** [B, S] int32 */
  source: Tensor;
  /** [B, S] bool, true where source is padding */
  sourcePadding: Tensor;
}

/** Options of a model's own (e.g. KV-cached) generation; returns the new tokens only. */
export type GenerateHook = (
  prefix: number[],
  opts: { maxTokens: number; temperature: number; topK?: number; generator?: Generator; stopToken: number; maxLength?: number },
  source?: number[],
) => number[];

/** One attention module's weights for one sequence, and what its rows and columns are. */
export interface AttentionView {
  /** e.g. "blocks.0.self_attn", "decoder.layers.1.cross_attn" */
  name: string;
  /** [H, L, S] */
  weights: Tensor;
  /** queries (rows) and keys (columns): the decoder's tokens or the encoder's source */
  rows: "tokens" | "source";
  cols: "tokens" | "source";
}

export interface SequenceModel {
  /** tokens [B, T] int32 -> next-token logits [B, T, V]; encoder-decoder models also get the source */
  forward(tokens: Tensor, context?: SourceContext): Tensor;
  parameters(): Tensor[];
  stateDict(): StateDict;
  /** needed to resume training and to load a checkpoint */
  loadStateDict?(state: StateDict): void;
  /** "decoder" (default): one sequence, prompt then answer; "encoder-decoder": source and target apart */
  readonly layout?: "decoder" | "encoder-decoder";
  /** dropout etc. on / off */
  train?(mode?: boolean): unknown;
  eval?(): unknown;
  /** every attention module's weights for one sequence (tokens [1, T], and the source for encoder-decoders) */
  attentionMaps?(tokens: Tensor, context?: SourceContext): AttentionView[];
  /** the longest sequence the model accepts */
  readonly maxLength?: number;
  /** the model's resolved options as JSON, enough to build it again (stored in checkpoints) */
  toConfig?(): Record<string, unknown>;
  /** a faster way to continue a sequence than re-running it (a KV cache); sampleTokens uses it */
  generate?: GenerateHook;
}
