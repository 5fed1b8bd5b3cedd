/**
 * Checkpoints as safetensors bytes (the library's serializeSafetensors / deserializeSafetensors).
 * The page's own checkpoints carry their config in the metadata. A file without it is read by its
 * tensor names and shapes when those are the tiny transformer's; anything else is listed, with an
 * explanation, but not run. When `attend train` settles its checkpoint format, its reader goes here.
 */
import { type Tensor, deserializeSafetensors, serializeSafetensors } from "attend";
import { type TinyConfig, TinyTransformer } from "./tiny.js";

export const FORMAT = "attend-explorer/tiny-transformer@1";

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
}

export interface LoadedCheckpoint {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** null when the file is not a model this page can run; `reason` says why */
  model: TinyTransformer | null;
  reason: string;
}

export function saveCheckpoint(model: TinyTransformer, extra: Record<string, string>): Uint8Array {
  return serializeSafetensors(model.stateDict(), { format: FORMAT, config: JSON.stringify(model.config), ...extra });
}

/** The tiny transformer's config read off its tensors: tok_emb [V, C], pos_emb [Lmax, C], blocks.N.*. */
function inferConfig(t: Record<string, Tensor>, metadata: Record<string, string>): TinyConfig | string {
  const emb = t.tok_emb, pos = t.pos_emb;
  if (!emb || !pos || emb.ndim !== 2 || pos.ndim !== 2) return "it has no tok_emb / pos_emb matrices";
  let layers = 0;
  while (t[`blocks.${layers}.attn.in_proj_weight`]) layers++;
  if (layers === 0) return "it has no blocks.0.attn.in_proj_weight";
  const heads = Number(metadata.heads ?? NaN);
  return { vocab: emb.shape[0], width: emb.shape[1], maxLen: pos.shape[0], layers, heads: Number.isInteger(heads) && heads > 0 ? heads : 1, causal: metadata.causal === "true" };
}

export function loadCheckpoint(bytes: Uint8Array): LoadedCheckpoint {
  const { tensors, metadata } = deserializeSafetensors(bytes);
  const infos = Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }));
  let config: TinyConfig | string;
  if (metadata.format === FORMAT) {
    try {
      config = JSON.parse(metadata.config) as TinyConfig;
    } catch {
      config = "its config metadata is not valid JSON";
    }
  } else config = inferConfig(tensors, metadata);
  if (typeof config === "string") {
    return { tensors: infos, metadata, model: null, reason: `This page cannot run this checkpoint: ${config}. It runs the tiny transformer trained here (format ${FORMAT}); other architectures will follow the library's models.` };
  }
  try {
    const model = new TinyTransformer(config);
    model.loadStateDict(tensors);
    model.eval();
    return { tensors: infos, metadata, model, reason: "" };
  } catch (err) {
    return { tensors: infos, metadata, model: null, reason: `The tensors do not fit the tiny transformer: ${(err as Error).message}` };
  }
}
