/**
 * The full models of src/models as SequenceModels, so the training loop, evaluation, sampling and
 * attention maps work with them unchanged. Generation goes through src/models' KV-cached generate.
 *   GPTSequenceModel:            tokens [B, T] -> GPT -> logits [B, T, V]
 *   EncoderDecoderSequenceModel: (source [B, S], tokens [B, T]) -> EncoderDecoder -> logits [B, T, V]
 */
import type { StateDict } from "../nn/module.js";
import { ArgumentError } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { type EncoderDecoderConfig, type GPTConfig, encoderDecoderConfig, gptConfig, validateEncoderDecoderConfig, validateGPTConfig } from "../models/config.js";
import { EncoderDecoder } from "../models/encoderDecoder.js";
import { GPT } from "../models/gpt.js";
import { generate, generateSeq2Seq } from "../models/generate.js";
import type { AttentionView, GenerateHook, SequenceModel, SourceContext } from "./model.js";
import { reshape } from "../ops/shape.js";

/** Options a run may give either model: a preset and a few sizes, or a complete config. */
export interface FullModelOptions {
  preset?: string;
  dModel?: number;
  heads?: number;
  layers?: number;
  seed?: number;
  /** a complete config (as stored in a checkpoint); overrides everything above */
  config?: Record<string, unknown>;
}

function sizes(o: FullModelOptions): { dModel?: number; numHeads?: number; numKvHeads?: number; dFF?: number } {
  const s: { dModel?: number; numHeads?: number; numKvHeads?: number; dFF?: number } = {};
  if (o.dModel !== undefined) {
    s.dModel = o.dModel;
    s.dFF = 4 * o.dModel;
  }
  if (o.heads !== undefined) s.numHeads = s.numKvHeads = o.heads;
  return s;
}

/** [1, H, T, T] -> [H, T, T] */
const firstRow = (w: Tensor): Tensor => reshape(w, w.shape.slice(1));

export class GPTSequenceModel implements SequenceModel {
  readonly layout = "decoder" as const;
  readonly gpt: GPT;

  constructor(vocabSize: number, maxLength: number, o: FullModelOptions = {}) {
    this.gpt = new GPT(GPTSequenceModel.resolveConfig(vocabSize, maxLength, o), { seed: o.seed ?? 0 });
    this.seed = o.seed ?? 0;
  }

  /** The GPT config these options describe (what the constructor builds), checked against the data's vocabulary. */
  static resolveConfig(vocabSize: number, maxLength: number, o: FullModelOptions = {}): GPTConfig {
    const config = o.config
      ? validateGPTConfig(o.config)
      : gptConfig((o.preset ?? "tiny") as "tiny", { vocabSize, maxSeqLen: maxLength, ...sizes(o), ...(o.layers ? { numLayers: o.layers } : {}) });
    if (config.vocabSize !== vocabSize) throw new ArgumentError(`gpt: the config's vocabSize ${config.vocabSize} differs from the data's ${vocabSize}`);
    return config;
  }

  private readonly seed: number;

  get maxLength(): number {
    return this.gpt.config.maxSeqLen;
  }

  forward(tokens: Tensor): Tensor {
    return this.gpt.forward(tokens);
  }

  parameters(): Tensor[] {
    return this.gpt.parameters();
  }

  stateDict(): StateDict {
    return this.gpt.stateDict();
  }

  loadStateDict(state: StateDict): void {
    this.gpt.loadStateDict(state);
  }

  train(mode = true): this {
    this.gpt.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  get training(): boolean {
    return this.gpt.training;
  }

  attentionMaps(tokens: Tensor): AttentionView[] {
    return this.gpt.forwardWithAttention(tokens).attention.map((a) => ({ name: a.name, weights: firstRow(a.weights), rows: "tokens", cols: "tokens" }));
  }

  generate: GenerateHook = (prefix, o) => {
    const rows = generate(this.gpt, [prefix], {
      maxNewTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, generator: o.generator, stopToken: o.stopToken, maxLength: Math.min(o.maxLength ?? Infinity, this.maxLength),
    });
    return rows[0].slice(prefix.length);
  };

  toConfig(): Record<string, unknown> {
    return { seed: this.seed, config: { ...this.gpt.config } as GPTConfig };
  }
}

export class EncoderDecoderSequenceModel implements SequenceModel {
  readonly layout = "encoder-decoder" as const;
  readonly model: EncoderDecoder;
  private readonly seed: number;

  constructor(vocabSize: number, maxLength: number, o: FullModelOptions = {}) {
    this.model = new EncoderDecoder(EncoderDecoderSequenceModel.resolveConfig(vocabSize, maxLength, o), { seed: o.seed ?? 0 });
    this.seed = o.seed ?? 0;
  }

  /** The encoder-decoder config these options describe (what the constructor builds), checked against the data's vocabulary. */
  static resolveConfig(vocabSize: number, maxLength: number, o: FullModelOptions = {}): EncoderDecoderConfig {
    const layers = o.layers ? { numEncoderLayers: o.layers, numDecoderLayers: o.layers } : {};
    const config = o.config
      ? validateEncoderDecoderConfig(o.config)
      : encoderDecoderConfig((o.preset ?? "tiny") as "tiny", { srcVocabSize: vocabSize, tgtVocabSize: vocabSize, maxSeqLen: maxLength, ...sizes(o), ...layers });
    if (config.srcVocabSize !== vocabSize || config.tgtVocabSize !== vocabSize) {
      throw new ArgumentError(`encdec: the config's vocabulary sizes ${config.srcVocabSize}/${config.tgtVocabSize} differ from the data's ${vocabSize}`);
    }
    return config;
  }

  get maxLength(): number {
    return this.model.config.maxSeqLen;
  }

  forward(tokens: Tensor, context?: SourceContext): Tensor {
    if (context === undefined) throw new ArgumentError("EncoderDecoderSequenceModel.forward: needs the source (context.source) for the encoder");
    return this.model.forward(context.source, tokens, { srcPaddingMask: context.sourcePadding });
  }

  parameters(): Tensor[] {
    return this.model.parameters();
  }

  stateDict(): StateDict {
    return this.model.stateDict();
  }

  loadStateDict(state: StateDict): void {
    this.model.loadStateDict(state);
  }

  train(mode = true): this {
    this.model.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  get training(): boolean {
    return this.model.training;
  }

  attentionMaps(tokens: Tensor, context?: SourceContext): AttentionView[] {
    if (context === undefined) throw new ArgumentError("EncoderDecoderSequenceModel.attentionMaps: needs the source (context.source)");
    const { attention } = this.model.forwardWithAttention(context.source, tokens, { srcPaddingMask: context.sourcePadding });
    const side = (kind: string, end: "rows" | "cols"): "tokens" | "source" => (kind === "encoder" || (kind === "cross" && end === "cols") ? "source" : "tokens");
    return attention.map((a) => ({ name: a.name, weights: firstRow(a.weights), rows: side(a.kind, "rows"), cols: side(a.kind, "cols") }));
  }

  generate: GenerateHook = (prefix, o, source) => {
    if (source === undefined || prefix.length !== 1) throw new ArgumentError("EncoderDecoderSequenceModel.generate: needs a source and a one-token (start) prefix");
    const rows = generateSeq2Seq(this.model, [source], {
      startToken: prefix[0], maxNewTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, generator: o.generator, stopToken: o.stopToken,
      maxLength: Math.min(o.maxLength ?? Infinity, this.maxLength),
    });
    return rows[0];
  };

  toConfig(): Record<string, unknown> {
    return { seed: this.seed, config: { ...this.model.config } as EncoderDecoderConfig };
  }
}
