/**
 * Text in, text out: a prompt is tokenized with the folder's tokenizer.json, continued by generate()
 * (KV cache; greedy, temperature, top-k, top-p, a seed; stop at the model's end-of-sequence token),
 * and the new tokens are decoded, streamed piece by piece as they come.
 *
 * Several prompts of different lengths: each row is generated on its own (its own cache, its own
 * Generator from the same seed), so a batch gives exactly what each prompt gives alone. (A single
 * padded batch would need per-row positions and a padding mask in PretrainedLM; not done.)
 *
 * Streaming decodes the prompt and all new tokens so far together (so the joining space or word piece
 * comes out as in the whole text) and hands on the part of the new text not yet handed on,
 * holding back while the text ends in an incomplete character (a byte-level token may carry half of
 * one), so the pieces always join to the final text.
 */
import { ArgumentError } from "../tensor/errors.js";
import { checkOptions } from "../tensor/validate.js";
import { GENERATE_OPTION_KEYS, type SamplingOptions, generate } from "../models/generate.js";
import type { Tokenizer } from "@huggingface/tokenizers";
import type { HFConfig } from "./config.js";
import type { PretrainedLM } from "./model.js";

export interface GenerateTextOptions extends SamplingOptions {
  /** tokens to add at most (default 50) */
  maxNewTokens?: number;
  /** stop after this token (or any of these); default the config's eos_token_id; null: never stop early */
  stopToken?: number | readonly number[] | null;
  /** decode with the KV cache (default true); false re-runs the whole sequence each step */
  useCache?: boolean;
  /** each new token as it is picked (row: which prompt) */
  onToken?: (token: number, row: number) => void;
  /** each new piece of text as it is complete (row: which prompt); the pieces join to `text` */
  onText?: (piece: string, row: number) => void;
}
const TEXT_OPTION_KEYS = [...GENERATE_OPTION_KEYS.filter((k) => k !== "maxLength"), "onText"];

/** One prompt's continuation. */
export interface TextGeneration {
  /** the prompt's token ids (with the tokenizer's special tokens, e.g. Llama's BOS) */
  promptIds: number[];
  /** the new tokens (the stop token included when it was produced) */
  tokens: number[];
  /** the new tokens as text (special tokens left out); null without a tokenizer */
  text: string | null;
  /** why it ended: the stop token, maxNewTokens, or the model's last position */
  finish: "stop" | "length";
}

/** What generateText needs: fromPretrained's result (the tokenizer may be null when prompts are ids). */
export interface TextModel {
  model: PretrainedLM;
  tokenizer: Tokenizer | null;
  config: HFConfig;
}

/** transformers' defaults where config.json has no eos_token_id. */
const DEFAULT_EOS: Record<string, number> = { gpt2: 50256, llama: 2, mistral: 2 };

/** The end-of-sequence token(s) of config.json (eos_token_id, a number or a list), or transformers' default. */
export function eosTokenIds(config: HFConfig): number[] {
  const v = config.eos_token_id ?? DEFAULT_EOS[String(config.model_type)] ?? null;
  const list = v === null ? [] : Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => Number.isInteger(x) && (x as number) >= 0);
}

const FN = "generateText";

function promptIds(m: TextModel, prompt: string | readonly number[], i: number): number[] {
  if (typeof prompt === "string") {
    if (m.tokenizer === null) throw new ArgumentError(`${FN}: prompt ${i} is text but the folder has no tokenizer.json; give token ids (number[]) instead`);
    const ids = m.tokenizer.encode(prompt).ids;
    if (ids.length === 0) throw new ArgumentError(`${FN}: prompt ${i} is ${JSON.stringify(prompt)}, which encodes to no tokens (this tokenizer adds no BOS); give text with at least one token`);
    return ids;
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
  const stops = stopToken === null ? [] : stopToken ?? eosTokenIds(m.config);
  const stopSet = new Set(typeof stops === "number" ? [stops] : stops);
  const maxNewTokens = opts.maxNewTokens ?? 50;
  const ids = list.map((p, i) => promptIds(m, p, i));
  const out = ids.map((prompt, row) => {
    const tokens: number[] = [];
    const stream = m.tokenizer ? new TextStream(m.tokenizer, prompt) : null;
    const onToken = (t: number): void => {
      tokens.push(t);
      opts.onToken?.(t, row);
      if (onText && stream) {
        const piece = stream.next(tokens);
        if (piece !== "") onText(piece, row);
      }
    };
    generate(m.model, [prompt], { ...rest, maxNewTokens, stopToken: [...stopSet], onToken });
    if (onText && stream) {
      const piece = stream.rest(tokens);
      if (piece !== "") onText(piece, row);
    }
    const finish: TextGeneration["finish"] = tokens.length > 0 && stopSet.has(tokens[tokens.length - 1]) ? "stop" : "length";
    return { promptIds: prompt, tokens, text: stream ? stream.text(tokens) : null, finish };
  });
  return single ? out[0] : out;
}
