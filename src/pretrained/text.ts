/**
 * Text in, text out: a prompt is tokenized with the folder's tokenizer.json, continued by generate()
 * (KV cache; greedy, temperature, top-k, top-p, a seed; stop at the model's end-of-sequence token),
 * and the new tokens are decoded, streamed piece by piece as they come.
 *
 * Several prompts: one padded batch (batch.ts: left padding, per-row positions, a key padding mask;
 * a row that stops is padded while the others go on). Each row samples from its own Generator(seed),
 * so a row's tokens are what its prompt gives alone (and its logits agree to rounding). Streaming in a
 * batch: onToken(token, row) and onText(piece, row) are called as each step's tokens are picked, the
 * rows still going in row order; a row's pieces join to its text. With window, sinkTokens or paged
 * the batch runs over a PagedKVCache instead (generate.ts's generateRows): no padding, the prompts
 * prefilled together (prefillBatched), then one step for every row still going, each row in its own blocks (a ring of
 * them with a window), with its own generator as well.
 *
 * Options not passed take generation_config.json's values as transformers reads them (genconfig.ts):
 * do_sample true samples with its temperature, top_k and top_p (else 1.0, 50, 1.0), otherwise greedy;
 * max_new_tokens, else max_length (prompt + new tokens, each prompt its own), else 50 new tokens. Its
 * settings that generateText does not implement are named in each result's `unsupported`.
 *
 * The stop tokens default to generation_config.json's eos_token_id when the folder has one, else
 * config.json's (eosTokenIds). A text prompt that encodes to no tokens starts from bos_token_id
 * (generation_config.json's, else config.json's), as transformers' generate() does without inputs.
 *
 * Streaming decodes the prompt and all new tokens so far together (so the joining space or word piece
 * comes out as in the whole text) and hands on the part of the new text not yet handed on,
 * holding back while the text ends in an incomplete character (a byte-level token may carry half of
 * one), so the pieces always join to the final text.
 */
import { ArgumentError } from "../tensor/errors.js";
import { checkOptions, optionKeys } from "../tensor/validate.js";
import { Generator } from "../tensor/random.js";
import { type SamplingOptions, checkRepetitionPenalty, generate, generateRows } from "../models/generate.js";
import type { PagedKVCacheOptions } from "../attention/kvpaged.js";
import type { Tokenizer } from "@huggingface/tokenizers";
import type { HFConfig } from "./config.js";
import type { PretrainedLM } from "./model.js";
import { generatePadded } from "./batch.js";
import { type GenerationDefaults, formatSetting, generationDefaults } from "./genconfig.js";

export interface GenerateTextOptions extends SamplingOptions {
  /** tokens to add at most (default generation_config.json's max_new_tokens, else what its max_length leaves after the prompt, else 50) */
  maxNewTokens?: number;
  /** stop after this token (or any of these); default the config's eos_token_id; null: never stop early */
  stopToken?: number | readonly number[] | null;
  /** decode with the KV cache (default true); false re-runs the whole sequence each step */
  useCache?: boolean;
  /**
   * generate()'s repetitionPenalty (> 0; 1 is off; default generation_config.json's repetition_penalty):
   * each token already in the row, prompt included, has its logit divided by it when positive and
   * multiplied by it when negative, greedy or sampling, as transformers' repetition_penalty
   */
  repetitionPenalty?: number;
  /** each new token as it is picked (row: which prompt) */
  onToken?: (token: number, row: number) => void;
  /** each new piece of text as it is complete (row: which prompt); the pieces join to `text` */
  onText?: (piece: string, row: number) => void;
  /**
   * a streaming KV cache that keeps only the last `window` positions (and the first sinkTokens), as
   * generate()'s window; several prompts then stream together in a paged cache, each in its own ring
   */
  window?: number;
  /** with window: positions kept forever at the start (attention sinks; default 0) */
  sinkTokens?: number;
  /** a paged KV cache (generate()'s paged, e.g. { blockSize: 16 }); several prompts then run as one unpadded batch */
  paged?: Pick<PagedKVCacheOptions, "blockSize">;
}
const TEXT_OPTION_KEYS = optionKeys<GenerateTextOptions>({
  greedy: true, temperature: true, topK: true, topP: true, seed: true, generator: true,
  maxNewTokens: true, stopToken: true, useCache: true, repetitionPenalty: true, onToken: true, onText: true, window: true, sinkTokens: true, paged: true,
});

/** One prompt's continuation. */
export interface TextGeneration {
  /** the prompt's token ids (with the tokenizer's special tokens, e.g. Llama's BOS) */
  promptIds: number[];
  /** the new tokens (the stop token included when it was produced) */
  tokens: number[];
  /** the new tokens as text (special tokens left out); null without a tokenizer */
  text: string | null;
  /** why it ended: the stop token, maxNewTokens (or max_length), or the model's last position */
  finish: "stop" | "length";
  /**
   * generation_config.json settings that transformers would apply to this call and generateText does
   * not implement, as "key = value" (e.g. "repetition_penalty = 1.05"); [] when there are none
   */
  unsupported: string[];
}

/** What generateText needs: fromPretrained's result (the tokenizer may be null when prompts are ids). */
export interface TextModel {
  model: PretrainedLM;
  tokenizer: Tokenizer | null;
  config: HFConfig;
  /** generation_config.json (null or absent when the folder has none) */
  generationConfig?: HFConfig | null;
  /**
   * generationConfig as fromPretrained read it (generationDefaults): used when it was read from this
   * very generationConfig (its `file`); otherwise (absent, or generationConfig replaced) generateText
   * reads generationConfig itself
   */
  generation?: GenerationDefaults | null;
}

/** transformers' defaults where config.json has no eos_token_id. */
const DEFAULT_EOS: Record<string, number> = { gpt2: 50256, llama: 2, mistral: 2 };

/**
 * The end-of-sequence token(s): generation_config.json's eos_token_id (a number or a list) when given,
 * else config.json's, else transformers' default for the model type.
 */
export function eosTokenIds(config: HFConfig, generationConfig: HFConfig | null = null): number[] {
  const v = generationConfig?.eos_token_id ?? config.eos_token_id ?? DEFAULT_EOS[String(config.model_type)] ?? null;
  const list = v === null ? [] : Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => Number.isInteger(x) && (x as number) >= 0);
}

/** The beginning-of-sequence token: generation_config.json's bos_token_id, else config.json's, else null. */
export function bosTokenId(config: HFConfig, generationConfig: HFConfig | null = null): number | null {
  const v = generationConfig?.bos_token_id ?? config.bos_token_id ?? null;
  return Number.isInteger(v) && (v as number) >= 0 ? (v as number) : null;
}

const FN = "generateText";

/** The defaults of generateText's options: m's reading of its generation_config.json when it has one for that file, else the file read now. */
function defaultsOf(m: TextModel): GenerationDefaults | null {
  const file = m.generationConfig ?? null;
  if (m.generation !== undefined && (m.generation === null ? null : m.generation.file) === file) return m.generation;
  return generationDefaults(file, FN);
}

function promptIds(m: TextModel, prompt: string | readonly number[], i: number): number[] {
  if (typeof prompt === "string") {
    if (m.tokenizer === null) throw new ArgumentError(`${FN}: prompt ${i} is text but the folder has no tokenizer.json; give token ids (number[]) instead`);
    const ids = m.tokenizer.encode(prompt).ids;
    if (ids.length > 0) return ids;
    const bos = bosTokenId(m.config, m.generationConfig ?? null);
    if (bos !== null) return [bos]; // nothing to continue: start from BOS, as transformers' generate() without inputs
    throw new ArgumentError(`${FN}: prompt ${i} is ${JSON.stringify(prompt)}, which encodes to no tokens, and neither generation_config.json nor config.json has a bos_token_id to start from; give text with at least one token`);
  }
  if (!Array.isArray(prompt) || prompt.length === 0) throw new ArgumentError(`${FN}: prompt ${i} must be text or a non-empty array of token ids`);
  return [...prompt];
}

/** Decodes a row's tokens so far; returns the text not yet handed on, once its last character is whole. */
class TextStream {
  private sent = 0;
  private readonly before: string;
  constructor(private readonly tokenizer: Tokenizer, private readonly prompt: number[]) {
    this.before = this.decode(prompt);
  }
  private decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: true });
  }
  /** The new tokens' text as it reads after the prompt (decoded together, so a joining space or a word piece comes out right). */
  text(tokens: number[]): string {
    const all = this.decode([...this.prompt, ...tokens]);
    return all.startsWith(this.before) ? all.slice(this.before.length) : this.decode(tokens);
  }
  next(tokens: number[]): string {
    const t = this.text(tokens);
    if (t.endsWith("\uFFFD")) return ""; // half a character: wait for the rest
    const piece = t.slice(this.sent);
    this.sent = t.length;
    return piece;
  }
  rest(tokens: number[]): string {
    const piece = this.text(tokens).slice(this.sent);
    this.sent += piece.length;
    return piece;
  }
}

/**
 * Continue a prompt (text, or token ids) or several: one TextGeneration per prompt (a single object
 * for a single prompt). See the file comment for streaming and batches.
 */
export function generateText(m: TextModel, prompt: string | readonly number[], opts?: GenerateTextOptions): TextGeneration;
export function generateText(m: TextModel, prompts: readonly (string | readonly number[])[], opts?: GenerateTextOptions): TextGeneration[];
export function generateText(m: TextModel, prompts: string | readonly number[] | readonly (string | readonly number[])[], opts: GenerateTextOptions = {}): TextGeneration | TextGeneration[] {
  if (m === null || typeof m !== "object" || !m.model) throw new ArgumentError(`${FN}: the first argument must be fromPretrained(dir)'s result { model, tokenizer, config }`);
  checkOptions(FN, "options", opts, TEXT_OPTION_KEYS);
  const single = typeof prompts === "string" || (Array.isArray(prompts) && prompts.length > 0 && typeof prompts[0] === "number");
  const list = (single ? [prompts] : prompts) as readonly (string | readonly number[])[];
  if (!Array.isArray(list) || list.length === 0) throw new ArgumentError(`${FN}: prompts must be text, token ids, or a non-empty array of them`);
  const { onText, stopToken, ...rest } = opts;
  if (onText !== undefined && typeof onText !== "function") throw new ArgumentError(`${FN}: onText must be a function (piece, row) => void`);
  if (onText !== undefined && m.tokenizer === null) throw new ArgumentError(`${FN}: onText needs a tokenizer; the folder has no tokenizer.json (use onToken)`);
  const stops = stopToken === null ? [] : stopToken ?? eosTokenIds(m.config, m.generationConfig ?? null);
  const stopSet = new Set(typeof stops === "number" ? [stops] : stops);
  for (const t of stopSet) if (!Number.isInteger(t) || t < 0) throw new ArgumentError(`${FN}: stopToken must be a non-negative integer token id (or a list of them, or null), got ${String(t)}`);
  if (opts.onToken !== undefined && typeof opts.onToken !== "function") throw new ArgumentError(`${FN}: onToken must be a function (token, row) => void`);
  const ids = list.map((p, i) => promptIds(m, p, i));
  // generation_config.json's defaults for the options not passed (genconfig.ts): its temperature, top_k
  // and top_p count only when its do_sample is true; max_new_tokens wins over max_length
  const gen = defaultsOf(m);
  const fromFile = gen?.doSample ? { temperature: gen.temperature, topK: gen.topK ?? undefined, topP: gen.topP } : {};
  const sampling: SamplingOptions = { greedy: opts.greedy, temperature: opts.temperature ?? fromFile.temperature, topK: opts.topK ?? fromFile.topK, topP: opts.topP ?? fromFile.topP };
  // repetition_penalty acts on greedy decoding too (a logits processor in transformers, not a sampling warper)
  checkRepetitionPenalty(FN, opts.repetitionPenalty);
  const repetitionPenalty = opts.repetitionPenalty ?? gen?.repetitionPenalty ?? undefined;
  const maxLength = opts.maxNewTokens === undefined && gen?.maxNewTokens === null ? gen.maxLength : null; // prompt + new tokens
  const maxNewTokens = opts.maxNewTokens ?? gen?.maxNewTokens ?? maxLength ?? 50; // with maxLength: an upper bound, each row gets maxLength - its length
  if (maxLength !== null) {
    ids.forEach((p, i) => {
      if (p.length >= maxLength) throw new ArgumentError(`${FN}: prompt ${i} has ${p.length} tokens, but generation_config.json max_length is ${maxLength} (prompt + new tokens, as transformers counts them), which leaves no room for new tokens; pass maxNewTokens`);
    });
  }
  const sampled = sampling.greedy !== true && (sampling.temperature ?? 0) > 0;
  const unsupported = (gen?.unsupported ?? []).filter((u) => sampled || !u.samplingOnly).map(formatSetting);
  // each row's tokens so far and its text stream; onToken hands a picked token on to both
  const tokens = ids.map((): number[] => []);
  const streams = ids.map((prompt) => (m.tokenizer ? new TextStream(m.tokenizer, prompt) : null));
  const onToken = (t: number, row: number): void => {
    tokens[row].push(t);
    opts.onToken?.(t, row);
    const stream = streams[row];
    if (onText && stream) {
      const piece = stream.next(tokens[row]);
      if (piece !== "") onText(piece, row);
    }
  };
  const { window, sinkTokens, paged } = rest;
  const budgets = ids.map((prompt) => (maxLength === null ? maxNewTokens : maxLength - prompt.length));
  if (ids.length === 1) {
    // one prompt: generate()'s loop (with its streaming or paged cache when asked)
    generate(m.model, [ids[0]], { ...rest, ...sampling, repetitionPenalty, maxNewTokens: budgets[0], stopToken: [...stopSet], onToken: (t) => onToken(t, 0) });
  } else if (window !== undefined || sinkTokens !== undefined || paged !== undefined) {
    // a streaming or paged cache: one unpadded batch over a PagedKVCache, a generator per row
    const generators = ids.map(() => rest.generator ?? new Generator(rest.seed ?? 0));
    generateRows(FN, m.model, ids, { ...rest, ...sampling, paged: paged ?? {}, repetitionPenalty, maxNewTokens, stopToken: [...stopSet], onToken }, { maxNewTokens: budgets, generators });
  } else {
    const { seed, generator, useCache } = rest;
    generatePadded(FN, m.model, ids, { ...sampling, seed, generator, useCache, repetitionPenalty, maxNewTokens, ...(maxLength === null ? {} : { maxLength }), stopTokens: stopSet, onToken });
  }
  const out = ids.map((prompt, row): TextGeneration => {
    const stream = streams[row];
    if (onText && stream) {
      const piece = stream.rest(tokens[row]);
      if (piece !== "") onText(piece, row);
    }
    const r = tokens[row];
    const finish: TextGeneration["finish"] = r.length > 0 && stopSet.has(r[r.length - 1]) ? "stop" : "length";
    return { promptIds: prompt, tokens: r, text: stream ? stream.text(r) : null, finish, unsupported: [...unsupported] };
  });
  return single ? out[0] : out;
}
