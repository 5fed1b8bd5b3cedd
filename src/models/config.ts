/**
 * Model configs: plain JSON-able objects with named presets, validated with errors that name the
 * field, the value seen and what was expected. A model keeps its config (model.config) and a
 * checkpoint stores it, so a checkpoint can rebuild its model.
 *
 * Architecture choices a config makes:
 *   numKvHeads      = numHeads: multi-head attention (MultiheadAttention, PyTorch's names);
 *                   < numHeads: grouped-query attention (GroupedQueryAttention, Llama's names)
 *   positional      "learned" (GPT-2), "rope" (rotary q/k, GPT-NeoX/Llama), "sinusoidal" (fixed, AIAYN),
 *                   "alibi" (no position embedding: an ALiBi bias in every self-attention, Press et al.)
 *   norm            "layernorm" or "rmsnorm", applied before each sublayer (pre-norm) and at the end
 *   tieWeights      the output head reuses the (target) token embedding matrix
 *
 * and, optionally (absent = off, so configs and checkpoints from before them read unchanged):
 *   slidingWindow   self-attention sees a window of keys: w (the query's own and the w - 1 before it,
 *                   Mistral) or [left, right] (for a bidirectional encoder)
 *   softcap         every attention's scores become softcap · tanh(scores / softcap) (Gemma 2)
 *   sinks           every attention learns one sink logit per head, `sinks` [numHeads] (gpt-oss)
 * A validated config holds only the options that are on (sinks: false and null are dropped).
 */
import { ArgumentError } from "../tensor/errors.js";
import { closestName } from "../tensor/validate.js";
import { ACTIVATIONS, type Activation } from "../nn/mlp.js";
import { checkWindow } from "../attention/masks.js";

export type PositionalKind = "learned" | "rope" | "sinusoidal" | "alibi";
export type NormKind = "layernorm" | "rmsnorm";

/** What every transformer block needs. */
export interface BlockConfig {
  dModel: number;
  numHeads: number;
  /** key/value heads: numHeads for multi-head attention, a divisor of it for grouped-query */
  numKvHeads: number;
  /** hidden width of the MLP */
  dFF: number;
  norm: NormKind;
  normEps: number;
  activation: Activation;
  /** dropout on embeddings, attention weights and residual branches while training */
  dropout: number;
  /** biases in the attention projections, MLP and LayerNorm */
  bias: boolean;
  /** self-attention window: w keys up to the query's own ([w - 1, 0]) or [left, right]; absent: every key */
  slidingWindow?: number | [number, number];
  /** scores become softcap · tanh(scores / softcap) in every attention; absent: no cap */
  softcap?: number;
  /** a learnable sink logit per head in every attention (parameter `sinks` [numHeads], initialised to 0) */
  sinks?: boolean;
}

/** A decoder-only language model (GPT). */
export interface GPTConfig extends BlockConfig {
  vocabSize: number;
  /** longest sequence (prompt + generated) the model accepts */
  maxSeqLen: number;
  numLayers: number;
  positional: PositionalKind;
  /** RoPE's base (used when positional = "rope") */
  ropeBase: number;
  /** lm_head shares tok_emb.weight (no lm_head.weight in the state dict) */
  tieWeights: boolean;
}

/** An encoder-decoder model ("Attention Is All You Need", pre-norm). */
export interface EncoderDecoderConfig extends BlockConfig {
  srcVocabSize: number;
  tgtVocabSize: number;
  maxSeqLen: number;
  numEncoderLayers: number;
  numDecoderLayers: number;
  /** "sinusoidal" or "learned" (absolute positions added to the embeddings), or "alibi" (a bias in the encoder's and decoder's self-attention; none in cross-attention) */
  positional: "sinusoidal" | "learned" | "alibi";
  /** lm_head shares tgt_emb.weight (no lm_head.weight in the state dict) */
  tieWeights: boolean;
}

const BLOCK_DEFAULTS = { norm: "layernorm", normEps: 1e-5, activation: "gelu", dropout: 0, bias: true } as const;

export const GPT_PRESETS = {
  /** 2 layers of width 32: for tests, lessons and the PyTorch fixture (about 30k parameters) */
  tiny: {
    vocabSize: 64, maxSeqLen: 64, dModel: 32, numLayers: 2, numHeads: 4, numKvHeads: 4, dFF: 128,
    positional: "learned", ropeBase: 10000, tieWeights: false, ...BLOCK_DEFAULTS,
  },
  /** tiny, Llama-style: grouped-query attention (2 kv heads), RoPE, RMSNorm, no biases */
  "tiny-gqa": {
    vocabSize: 64, maxSeqLen: 64, dModel: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, dFF: 128,
    positional: "rope", ropeBase: 10000, tieWeights: false, ...BLOCK_DEFAULTS, norm: "rmsnorm", bias: false,
  },
  /** 4 layers of width 128, byte vocabulary: trains on a laptop CPU (about 0.9M parameters) */
  small: {
    vocabSize: 256, maxSeqLen: 512, dModel: 128, numLayers: 4, numHeads: 4, numKvHeads: 4, dFF: 512,
    positional: "learned", ropeBase: 10000, tieWeights: false, ...BLOCK_DEFAULTS,
  },
  /** small, Llama-style: 8 query heads sharing 2 kv heads, RoPE, RMSNorm */
  "small-gqa": {
    vocabSize: 256, maxSeqLen: 512, dModel: 128, numLayers: 4, numHeads: 8, numKvHeads: 2, dFF: 512,
    positional: "rope", ropeBase: 10000, tieWeights: false, ...BLOCK_DEFAULTS, norm: "rmsnorm", bias: false,
  },
} as const satisfies Record<string, GPTConfig>;

export const ENCODER_DECODER_PRESETS = {
  /** 2 + 2 layers of width 32, sinusoidal positions */
  tiny: {
    srcVocabSize: 32, tgtVocabSize: 32, maxSeqLen: 64, dModel: 32, numEncoderLayers: 2, numDecoderLayers: 2,
    numHeads: 4, numKvHeads: 4, dFF: 128, positional: "sinusoidal", tieWeights: false, ...BLOCK_DEFAULTS,
  },
  /** 3 + 3 layers of width 128 */
  small: {
    srcVocabSize: 256, tgtVocabSize: 256, maxSeqLen: 256, dModel: 128, numEncoderLayers: 3, numDecoderLayers: 3,
    numHeads: 4, numKvHeads: 4, dFF: 512, positional: "sinusoidal", tieWeights: false, ...BLOCK_DEFAULTS,
  },
} as const satisfies Record<string, EncoderDecoderConfig>;

export type GPTPresetName = keyof typeof GPT_PRESETS;
export type EncoderDecoderPresetName = keyof typeof ENCODER_DECODER_PRESETS;

// ---------------------------------------------------------------------------------------------
// Validation

type FieldKind = "posint" | "eps" | "prob" | "bool" | "base" | "window" | "softcap" | { oneOf: readonly string[] };

const BLOCK_FIELDS: Record<keyof BlockConfig, FieldKind> = {
  dModel: "posint", numHeads: "posint", numKvHeads: "posint", dFF: "posint", norm: { oneOf: ["layernorm", "rmsnorm"] },
  normEps: "eps", activation: { oneOf: ACTIVATIONS }, dropout: "prob", bias: "bool",
  slidingWindow: "window", softcap: "softcap", sinks: "bool",
};

/** Fields a config may leave out, and the value that means "off" (dropped from a validated config). */
const OPTIONAL_FIELDS: Record<string, unknown> = { slidingWindow: null, softcap: null, sinks: false };

const GPT_FIELDS: Record<keyof GPTConfig, FieldKind> = {
  vocabSize: "posint", maxSeqLen: "posint", numLayers: "posint", ...BLOCK_FIELDS,
  positional: { oneOf: ["learned", "rope", "sinusoidal", "alibi"] }, ropeBase: "base", tieWeights: "bool",
};

const ENCODER_DECODER_FIELDS: Record<keyof EncoderDecoderConfig, FieldKind> = {
  srcVocabSize: "posint", tgtVocabSize: "posint", maxSeqLen: "posint", numEncoderLayers: "posint", numDecoderLayers: "posint",
  ...BLOCK_FIELDS, positional: { oneOf: ["sinusoidal", "learned", "alibi"] }, tieWeights: "bool",
};

function checkField(fn: string, name: string, v: unknown, kind: FieldKind): void {
  const bad = (want: string): never => {
    throw new ArgumentError(`${fn}: ${name} must be ${want}, got ${JSON.stringify(v) ?? String(v)}`);
  };
  if (typeof kind === "object") {
    if (typeof v !== "string" || !kind.oneOf.includes(v)) bad(`one of ${kind.oneOf.map((k) => JSON.stringify(k)).join(", ")}`);
    return;
  }
  switch (kind) {
    case "posint": if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) bad("a positive integer"); break;
    case "eps": if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) bad("a small positive number (e.g. 1e-5)"); break;
    case "prob": if (typeof v !== "number" || !(v >= 0 && v < 1)) bad("a probability in [0, 1)"); break;
    case "bool": if (typeof v !== "boolean") bad("true or false"); break;
    case "base": if (typeof v !== "number" || !(v > 1) || !Number.isFinite(v)) bad("a finite number > 1 (RoPE uses 10000)"); break;
    case "softcap": if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) bad("a positive finite number (scores become softcap · tanh(scores / softcap), Gemma 2 uses 50)"); break;
    case "window": {
      const sides = Array.isArray(v) ? v : [];
      if (sides.some((x) => x === Infinity)) bad("a positive integer w or [left, right] of non-negative integers (a config is JSON, which cannot hold Infinity: leave the field out for no window)");
      checkWindow(fn, v);
      break;
    }
  }
}

function checkFields<T>(fn: string, cfg: unknown, fields: Record<string, FieldKind>): T {
  if (cfg === null || typeof cfg !== "object" || Array.isArray(cfg)) {
    throw new ArgumentError(`${fn}: expected a config object, got ${cfg === null ? "null" : Array.isArray(cfg) ? "an array" : typeof cfg}`);
  }
  const rec = cfg as Record<string, unknown>;
  const names = Object.keys(fields);
  for (const k of Object.keys(rec)) {
    if (Object.hasOwn(fields, k)) continue;
    const near = closestName(k, names);
    throw new ArgumentError(`${fn}: unknown field ${JSON.stringify(k)}${near !== null ? `; did you mean ${JSON.stringify(near)}?` : ""} (the fields are ${names.join(", ")})`);
  }
  const out: Record<string, unknown> = { ...rec };
  for (const k of names) {
    const optional = Object.hasOwn(OPTIONAL_FIELDS, k);
    if (optional && (rec[k] === undefined || rec[k] === null || rec[k] === OPTIONAL_FIELDS[k])) {
      delete out[k]; // off: left out, so the config reads as one written before the option existed
      continue;
    }
    if (!(k in rec) || rec[k] === undefined) throw new ArgumentError(`${fn}: missing field ${JSON.stringify(k)} (start from a preset)`);
    checkField(fn, k, rec[k], fields[k]);
  }
  if (Array.isArray(out.slidingWindow)) out.slidingWindow = [...out.slidingWindow]; // a copy, not the caller's array
  return out as T;
}

function checkHeads(fn: string, c: BlockConfig, rope: boolean): void {
  if (c.dModel % c.numHeads !== 0) {
    throw new ArgumentError(`${fn}: numHeads ${c.numHeads} must divide dModel ${c.dModel} (each head gets dModel / numHeads dims)`);
  }
  if (c.numKvHeads > c.numHeads || c.numHeads % c.numKvHeads !== 0) {
    throw new ArgumentError(
      `${fn}: numKvHeads ${c.numKvHeads} must divide numHeads ${c.numHeads} (numKvHeads = numHeads is multi-head attention, fewer is grouped-query)`,
    );
  }
  if (rope && (c.dModel / c.numHeads) % 2 !== 0) {
    throw new ArgumentError(`${fn}: positional "rope" rotates pairs of dims, so the head dim dModel / numHeads = ${c.dModel / c.numHeads} must be even`);
  }
}

/** Check every field of a GPT config (e.g. one read from a checkpoint); returns a copy. */
export function validateGPTConfig(cfg: unknown): GPTConfig {
  const fn = "GPTConfig";
  const c = checkFields<GPTConfig>(fn, cfg, GPT_FIELDS);
  checkHeads(fn, c, c.positional === "rope");
  return c;
}

/** Check every field of an encoder-decoder config; returns a copy. */
export function validateEncoderDecoderConfig(cfg: unknown): EncoderDecoderConfig {
  const fn = "EncoderDecoderConfig";
  const c = checkFields<EncoderDecoderConfig>(fn, cfg, ENCODER_DECODER_FIELDS);
  checkHeads(fn, c, false);
  return c;
}

function preset<T>(fn: string, table: Record<string, T>, name: string): T {
  const p = table[name];
  if (p === undefined) throw new ArgumentError(`${fn}: unknown preset ${JSON.stringify(name)} (presets: ${Object.keys(table).join(", ")})`);
  return p;
}

/** A preset with some fields changed: gptConfig("small", { vocabSize: 65 }). */
export function gptConfig(name: GPTPresetName = "tiny", overrides: Partial<GPTConfig> = {}): GPTConfig {
  return validateGPTConfig({ ...preset("gptConfig", GPT_PRESETS as Record<string, GPTConfig>, name), ...overrides });
}

export function encoderDecoderConfig(name: EncoderDecoderPresetName = "tiny", overrides: Partial<EncoderDecoderConfig> = {}): EncoderDecoderConfig {
  return validateEncoderDecoderConfig({ ...preset("encoderDecoderConfig", ENCODER_DECODER_PRESETS as Record<string, EncoderDecoderConfig>, name), ...overrides });
}

/** Fields whose values differ between two configs of the same family, in field order. */
export function configDifferences(a: object, b: object): { field: string; a: unknown; b: unknown }[] {
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(ra), ...Object.keys(rb)])];
  return keys.filter((k) => JSON.stringify(ra[k]) !== JSON.stringify(rb[k])).map((k) => ({ field: k, a: ra[k], b: rb[k] }));
}
