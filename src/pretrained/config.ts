/**
 * Hugging Face config.json -> the architecture a PretrainedLM builds, with transformers' defaults for
 * absent keys, and a clear error for every model_type or option this loader does not implement (so a
 * checkpoint never loads as a silently different model).
 *
 *   gpt2                       learned positions, pre-LayerNorm, fused Conv1D c_attn, gelu_new, tied head
 *   llama, mistral, qwen2      RMSNorm, rotary (rotate_half layout), GQA, SwiGLU, optional sliding window
 *
 * Both older and newer transformers' spellings are read: rope_theta or rope_parameters.rope_theta,
 * torch_dtype or dtype.
 */
import { ArgumentError } from "../tensor/errors.js";

export type PretrainedFamily = "gpt2" | "llama";

/** The architecture, in the library's words; one per model. */
export interface PretrainedArch {
  modelType: string;
  family: PretrainedFamily;
  vocabSize: number;
  /** longest sequence the model accepts (n_positions / max_position_embeddings) */
  maxSeqLen: number;
  dModel: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  dFF: number;
  normEps: number;
  /** RoPE base (llama family) */
  ropeTheta: number;
  /** biases on q/k/v and on the output projection */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /** per layer: null (full causal) or W (a query sees itself and the W - 1 keys before it) */
  slidingWindows: (number | null)[];
  tieWordEmbeddings: boolean;
  /** the dtype config.json names (informative; weights are computed in float32) */
  torchDtype: string | null;
}

export type HFConfig = Record<string, unknown>;

const FN = "fromPretrained";

function num(c: HFConfig, key: string, dflt?: number): number {
  const v = c[key] ?? dflt;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ArgumentError(`${FN}: config.json ${key} must be a number, got ${v === undefined ? "nothing" : JSON.stringify(v)}`);
  }
  return v;
}

function int(c: HFConfig, key: string, dflt?: number): number {
  const v = num(c, key, dflt);
  if (!Number.isInteger(v) || v <= 0) throw new ArgumentError(`${FN}: config.json ${key} must be a positive integer, got ${v}`);
  return v;
}

function bool(c: HFConfig, key: string, dflt: boolean): boolean {
  const v = c[key] ?? dflt;
  if (typeof v !== "boolean") throw new ArgumentError(`${FN}: config.json ${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function unsupported(key: string, v: unknown, what: string): never {
  throw new ArgumentError(`${FN}: config.json ${key} = ${JSON.stringify(v)} is not supported (${what})`);
}

function dtypeOf(c: HFConfig): string | null {
  const v = c.dtype ?? c.torch_dtype ?? null;
  return typeof v === "string" ? v : null;
}

function gpt2(c: HFConfig): PretrainedArch {
  const dModel = int(c, "n_embd", 768);
  const numHeads = int(c, "n_head", 12);
  if (dModel % numHeads !== 0) throw new ArgumentError(`${FN}: config.json n_embd ${dModel} is not a multiple of n_head ${numHeads}`);
  const act = c.activation_function ?? "gelu_new";
  if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") unsupported("activation_function", act, 'expected "gelu_new"');
  if (c.scale_attn_by_inverse_layer_idx === true) unsupported("scale_attn_by_inverse_layer_idx", true, "expected false");
  if (c.scale_attn_weights === false) unsupported("scale_attn_weights", false, "expected true");
  if (c.add_cross_attention === true) unsupported("add_cross_attention", true, "a decoder-only model is expected");
  const numLayers = int(c, "n_layer", 12);
  return {
    modelType: "gpt2", family: "gpt2", vocabSize: int(c, "vocab_size", 50257), maxSeqLen: int(c, "n_positions", 1024),
    dModel, numLayers, numHeads, numKvHeads: numHeads, headDim: dModel / numHeads,
    dFF: c.n_inner === null || c.n_inner === undefined ? 4 * dModel : int(c, "n_inner"),
    normEps: num(c, "layer_norm_epsilon", 1e-5), ropeTheta: 0, qkvBias: true, oBias: true, mlpBias: true,
    slidingWindows: new Array<null>(numLayers).fill(null), tieWordEmbeddings: bool(c, "tie_word_embeddings", true), torchDtype: dtypeOf(c),
  };
}

/** rope_theta (older transformers) or rope_parameters (newer); only the default rope type. */
function ropeTheta(c: HFConfig): number {
  const params = c.rope_parameters ?? null;
  const scaling = c.rope_scaling ?? null;
  for (const [key, p] of [["rope_parameters", params], ["rope_scaling", scaling]] as const) {
    if (p === null) continue;
    if (typeof p !== "object" || Array.isArray(p)) unsupported(key, p, "expected an object");
    const type = (p as HFConfig).rope_type ?? (p as HFConfig).type ?? "default";
    if (type !== "default") unsupported(`${key}.rope_type`, type, 'only "default" rotary embeddings are implemented');
  }
  if (params !== null && (params as HFConfig).rope_theta !== undefined) return num(params as HFConfig, "rope_theta");
  return num(c, "rope_theta", 10000);
}

function llama(c: HFConfig, modelType: string): PretrainedArch {
  // LlamaConfig, MistralConfig and Qwen2Config defaults for absent keys
  const D = {
    llama: { vocab: 32000, ff: 11008, kv: null, ctx: 2048 },
    mistral: { vocab: 32000, ff: 14336, kv: 8, ctx: 4096 * 32 },
    qwen2: { vocab: 151936, ff: 22016, kv: 32, ctx: 32768 },
  }[modelType as "llama" | "mistral" | "qwen2"];
  const dModel = int(c, "hidden_size", 4096);
  const numHeads = int(c, "num_attention_heads", 32);
  const numKvHeads = int(c, "num_key_value_heads", D.kv ?? numHeads); // null in a Llama config: multi-head
  if (numHeads % numKvHeads !== 0) {
    throw new ArgumentError(`${FN}: config.json num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  const headDim = c.head_dim === null || c.head_dim === undefined ? dModel / numHeads : int(c, "head_dim");
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new ArgumentError(`${FN}: the head dim (hidden_size / num_attention_heads or head_dim) must be an even integer, got ${headDim}`);
  const act = c.hidden_act ?? "silu";
  if (act !== "silu") unsupported("hidden_act", act, 'expected "silu"');
  const numLayers = int(c, "num_hidden_layers", 32);
  // sliding windows: Mistral whenever sliding_window is set; Qwen2 only with use_sliding_window, on layers >= max_window_layers
  let windows: (number | null)[] = new Array<null>(numLayers).fill(null);
  const sw = modelType !== "llama" && !Object.hasOwn(c, "sliding_window") ? 4096 : (c.sliding_window ?? null); // MistralConfig / Qwen2Config default
  const windowOn = modelType === "mistral" ? sw !== null : modelType === "qwen2" ? bool(c, "use_sliding_window", false) && sw !== null : false;
  if (modelType === "llama" && sw !== null) unsupported("sliding_window", sw, "Llama has no sliding window");
  if (windowOn) {
    const W = int({ sliding_window: sw }, "sliding_window");
    if (Array.isArray(c.layer_types)) {
      if (c.layer_types.length !== numLayers) throw new ArgumentError(`${FN}: config.json layer_types has ${c.layer_types.length} entries for ${numLayers} layers`);
      windows = c.layer_types.map((t, i) => {
        if (t === "sliding_attention") return W;
        if (t === "full_attention") return null;
        return unsupported(`layer_types[${i}]`, t, 'expected "full_attention" or "sliding_attention"');
      });
    } else {
      const from = modelType === "qwen2" ? num(c, "max_window_layers", 28) : 0;
      windows = windows.map((_, i) => (i >= from ? W : null));
    }
  }
  const attentionBias = bool(c, "attention_bias", false);
  return {
    modelType, family: "llama", vocabSize: int(c, "vocab_size", D.vocab), maxSeqLen: int(c, "max_position_embeddings", D.ctx),
    dModel, numLayers, numHeads, numKvHeads, headDim, dFF: int(c, "intermediate_size", D.ff),
    normEps: num(c, "rms_norm_eps", 1e-6), ropeTheta: ropeTheta(c),
    qkvBias: modelType === "qwen2" ? true : attentionBias, oBias: modelType === "qwen2" ? false : attentionBias,
    mlpBias: modelType === "llama" ? bool(c, "mlp_bias", false) : false,
    slidingWindows: windows, tieWordEmbeddings: bool(c, "tie_word_embeddings", false), torchDtype: dtypeOf(c),
  };
}

export const SUPPORTED_MODEL_TYPES = ["gpt2", "llama", "mistral", "qwen2"] as const;

/** Read a parsed config.json. */
export function archFromConfig(config: unknown): PretrainedArch {
  if (config === null || typeof config !== "object" || Array.isArray(config)) throw new ArgumentError(`${FN}: config.json must hold a JSON object`);
  const c = config as HFConfig;
  const t = c.model_type;
  if (t === "gpt2") return gpt2(c);
  if (t === "llama" || t === "mistral" || t === "qwen2") return llama(c, t);
  throw new ArgumentError(`${FN}: config.json model_type ${JSON.stringify(t)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`);
}
