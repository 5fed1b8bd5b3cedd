/**
 * generation_config.json's decoding settings, read as transformers' GenerationConfig reads them, so
 * generateText (and `attend generate`) take a model folder's own defaults:
 *
 *   do_sample        false or absent: greedy, and temperature / top_k / top_p are ignored (transformers
 *                    adds its sampling warpers only when sampling); true: sample with
 *   temperature      default 1.0
 *   top_k            default 50; 0 or null: no top-k
 *   top_p            default 1.0 (keep all); null: 1.0
 *   max_new_tokens   new tokens at most; wins over max_length when both are set
 *   max_length       prompt + new tokens at most (transformers' count); a prompt of max_length tokens
 *                    or more is an error, as transformers' generate() raises one
 *   repetition_penalty  default 1.0 (off); greedy or sampling, each token already in the row has its
 *                    logit divided by it (positive) or multiplied by it (negative): generateText's
 *                    repetitionPenalty
 *
 * The defaults are GenerationConfig's: "temperature (`float`, *optional*, defaults to 1.0)", "top_k
 * (`int`, *optional*, defaults to 50)", "top_p (`float`, *optional*, defaults to 1.0)", "do_sample
 * (`bool`, *optional*, defaults to `False`)" in the GenerationConfig docstring of transformers'
 * src/transformers/generation/configuration_utils.py (huggingface/transformers at 008f5c8c). Its
 * max_length default (20) is not taken: without max_new_tokens or max_length, generateText adds 50.
 *
 * Settings that change transformers' output and that generateText does not implement (beam search,
 * repetition penalties, minimum lengths, …) are never dropped in silence: they are listed in
 * `unsupported` ("key = value"), each generateText result carries those that applied to it, and
 * `attend generate` prints them in one note on stderr.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { HFConfig } from "./config.js";

/** A generation_config.json setting generateText does not implement. */
export interface UnsupportedSetting {
  key: string;
  value: unknown;
  /** whether it acts only when sampling (a sampling warper such as typical_p); greedy output is then unchanged */
  samplingOnly: boolean;
}

/** generation_config.json's decoding settings, with transformers' defaults for absent keys. */
export interface GenerationDefaults {
  /** the parsed generation_config.json these were read from (generateText uses them only for that same object) */
  file: HFConfig;
  /** do_sample: sample (true) or greedy (false, the default) */
  doSample: boolean;
  /** temperature when sampling (default 1) */
  temperature: number;
  /** top_k when sampling (default 50); null: no top-k (top_k 0 or null) */
  topK: number | null;
  /** top_p when sampling (default 1: keep all) */
  topP: number;
  /** max_new_tokens, or null when not set */
  maxNewTokens: number | null;
  /** max_length (prompt + new tokens), or null when not set */
  maxLength: number | null;
  /** repetition_penalty, or null when not set (or 1, off) */
  repetitionPenalty: number | null;
  /** settings that would change transformers' output and that generateText does not implement */
  unsupported: UnsupportedSetting[];
}

/** GenerationConfig's defaults (see the file comment). */
const TRANSFORMERS_DEFAULTS = { temperature: 1, topK: 50, topP: 1 } as const;

/**
 * The settings generateText does not implement, each with the values at which it does nothing
 * (transformers' default, and null / an empty list where that means "off").
 */
const UNSUPPORTED: readonly { key: string; inert: (v: unknown) => boolean; samplingOnly?: boolean }[] = [
  { key: "num_beams", inert: (v) => v === 1 },
  { key: "num_beam_groups", inert: (v) => v === 1 },
  { key: "penalty_alpha", inert: (v) => v === 0 },
  { key: "dola_layers", inert: () => false },
  { key: "encoder_repetition_penalty", inert: (v) => v === 1 },
  { key: "no_repeat_ngram_size", inert: (v) => v === 0 },
  { key: "encoder_no_repeat_ngram_size", inert: (v) => v === 0 },
  { key: "bad_words_ids", inert: () => false },
  { key: "force_words_ids", inert: () => false },
  { key: "constraints", inert: () => false },
  { key: "sequence_bias", inert: () => false },
  { key: "min_length", inert: (v) => v === 0 },
  { key: "min_new_tokens", inert: (v) => v === 0 },
  { key: "exponential_decay_length_penalty", inert: () => false },
  { key: "suppress_tokens", inert: () => false },
  { key: "begin_suppress_tokens", inert: () => false },
  { key: "forced_bos_token_id", inert: () => false },
  { key: "forced_eos_token_id", inert: () => false },
  { key: "forced_decoder_ids", inert: () => false },
  { key: "guidance_scale", inert: (v) => v === 1 },
  { key: "watermarking_config", inert: () => false },
  { key: "stop_strings", inert: () => false },
  { key: "max_time", inert: () => false },
  { key: "num_return_sequences", inert: (v) => v === 1 },
  { key: "token_healing", inert: (v) => v === false },
  { key: "typical_p", inert: (v) => v === 1, samplingOnly: true },
  { key: "epsilon_cutoff", inert: (v) => v === 0, samplingOnly: true },
  { key: "eta_cutoff", inert: (v) => v === 0, samplingOnly: true },
  { key: "min_p", inert: (v) => v === 0, samplingOnly: true },
];

/** A setting as the notes show it: key = value (the value as JSON). */
export function formatSetting(s: UnsupportedSetting): string {
  return `${s.key} = ${JSON.stringify(s.value)}`;
}

/** Its token ids must be ids: a non-negative integer, or (eos_token_id) a list of them. */
function checkTokenIds(fn: string, g: HFConfig): void {
  for (const key of ["eos_token_id", "bos_token_id", "pad_token_id"]) {
    const v = g[key];
    if (v === undefined || v === null) continue;
    const ok = (x: unknown): boolean => Number.isInteger(x) && (x as number) >= 0;
    if (ok(v) || (key === "eos_token_id" && Array.isArray(v) && v.every(ok))) continue;
    throw new ArgumentError(`${fn}: generation_config.json ${key} must be a token id (a non-negative integer)${key === "eos_token_id" ? " or a list of them" : ""}, got ${JSON.stringify(v)}`);
  }
}

/**
 * Read a parsed generation_config.json (null: the folder has none, and so no defaults). A value of the
 * wrong type or out of range (a token id included) is an ArgumentError naming fn, the file, the key,
 * the value and what is expected. fromPretrained reads the file with it once, when loading (so a bad
 * file fails there), and hands the result on as its `generation`.
 */
export function generationDefaults(g: HFConfig | null, fn = "generationDefaults"): GenerationDefaults | null {
  if (g === null || g === undefined) return null;
  if (typeof g !== "object" || Array.isArray(g)) throw new ArgumentError(`${fn}: generation_config.json must hold a JSON object, got ${JSON.stringify(g)}`);
  checkTokenIds(fn, g);
  const bad = (key: string, expected: string): never => {
    throw new ArgumentError(`${fn}: generation_config.json ${key} = ${JSON.stringify(g[key])}; expected ${expected}`);
  };
  const given = (key: string): boolean => g[key] !== undefined && g[key] !== null;
  const doSample = g.do_sample ?? false;
  if (typeof doSample !== "boolean") bad("do_sample", "true or false");
  const number = (key: string, ok: (x: number) => boolean, expected: string): number | null => {
    if (!given(key)) return null;
    const v = g[key];
    if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) bad(key, expected);
    return v as number;
  };
  // each is checked whether or not it is used: a broken value is a broken file either way
  const temperature = number("temperature", (x) => x >= 0, "a number >= 0 (> 0 when do_sample is true)");
  if (doSample && temperature === 0) bad("temperature", "a number > 0 with do_sample true (transformers refuses 0 when sampling; set do_sample to false for greedy)");
  const topK = number("top_k", (x) => Number.isInteger(x) && x >= 0, "an integer >= 0 (0 or null: no top-k)");
  const topP = number("top_p", (x) => x > 0 && x <= 1, "a number in (0, 1] (1: keep all)");
  const maxNewTokens = number("max_new_tokens", (x) => Number.isInteger(x) && x > 0, "a positive integer (new tokens at most)");
  const maxLength = number("max_length", (x) => Number.isInteger(x) && x > 0, "a positive integer (prompt + new tokens at most)");
  const repetitionPenalty = number("repetition_penalty", (x) => x > 0, "a number > 0 (1: off; > 1 discourages repeats)");
  const unsupported: UnsupportedSetting[] = [];
  for (const u of UNSUPPORTED) {
    const v = g[u.key];
    if (v === undefined || v === null || (Array.isArray(v) && v.length === 0) || u.inert(v)) continue;
    unsupported.push({ key: u.key, value: v, samplingOnly: u.samplingOnly === true });
  }
  return {
    file: g,
    doSample: doSample as boolean,
    temperature: temperature ?? TRANSFORMERS_DEFAULTS.temperature,
    // absent: 50; null or 0: no top-k (transformers adds its top-k warper only for a top_k that is set and not 0)
    topK: g.top_k === undefined ? TRANSFORMERS_DEFAULTS.topK : topK === null || topK === 0 ? null : topK,
    topP: topP ?? TRANSFORMERS_DEFAULTS.topP,
    maxNewTokens,
    maxLength,
    repetitionPenalty: repetitionPenalty === 1 ? null : repetitionPenalty,
    unsupported,
  };
}
