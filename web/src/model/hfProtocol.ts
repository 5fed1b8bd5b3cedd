/**
 * What lesson 9's page and its Hugging Face worker (hf.worker.ts) say to each other. The page picks
 * a model folder's files and hands their bytes to the worker (transferred, never copied, never
 * uploaded); the worker loads them with the library's fromPretrainedFiles and answers each typed
 * text with its tokens, every layer's attention weights (forwardWithAttention) and the per-head
 * scores. Every request carries an id and gets one reply.
 */
import type { HeadScores } from "attend";
import type { TextHeadScores } from "./hfScores.js";
import type { PaintedCells } from "../ui/pixels.js";

/** One file of the folder: its name in the folder and its bytes. */
export interface HfFile {
  name: string;
  bytes: ArrayBuffer;
}

/** What the page shows of the model the worker holds. */
export interface HfInfo {
  modelType: string;
  /** config.json's "architectures" (e.g. GPT2LMHeadModel) */
  architectures: string[];
  family: string;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  dModel: number;
  headDim: number;
  vocabSize: number;
  maxSeqLen: number;
  tieWordEmbeddings: boolean;
  /** the dtype config.json names (the weights are computed in float32) */
  torchDtype: string | null;
  /** parameters of the model as loaded (a tied head counted once) */
  parameters: number;
  /** the safetensors files read, with their sizes in bytes */
  weightFiles: { name: string; bytes: number }[];
  /** the tokenizer model named in tokenizer.json (BPE, WordLevel, …), or null without one */
  tokenizer: string | null;
  /** every file the worker was given */
  files: string[];
}

export type HfRequest =
  | { op: "load"; files: HfFile[] }
  | { op: "probe"; text: string; maxTokens: number }
  /** the library's headScores on a repeated random sequence (its defaults), for the induction column */
  | { op: "headScores" };

/** An input's tokens and every layer's weights. */
export interface HfProbe {
  ids: number[];
  /** the tokenizer's token strings (or "#id" without a tokenizer) */
  tokens: string[];
  /** the attention modules' names, one per layer */
  names: string[];
  numHeads: number;
  /** per layer: the weights [H, T, T] row-major (batch 1) */
  layers: Float32Array[];
  /** per layer and head: its weights painted with weightScale(1) (ui/pixels.ts), for the heat maps to copy */
  images: PaintedCells[][];
  scores: TextHeadScores;
  /** the model's most likely next tokens after the text, with their probabilities */
  next: { id: number; token: string; p: number }[];
}

export interface HfReplies {
  load: HfInfo;
  probe: HfProbe;
  headScores: HeadScores;
}

export type ToHfWorker = HfRequest & { id: number };

export type FromHfWorker =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: string };
