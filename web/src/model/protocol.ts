/**
 * What lesson 9's page and its training worker (trainer.worker.ts) say to each other. The worker owns
 * the run (run.ts) and does everything that takes time: making the data and the model, training,
 * reading and writing checkpoints, evaluating, and an input's answer and maps (probe.ts). The page
 * only draws. Every request carries an id and gets one reply; a "train" request is answered when
 * training stops, with "progress" messages in between.
 */
import type { AttentionView, Evaluation } from "attend";
import type { TensorInfo } from "./checkpoint.js";
import type { Probe } from "./probe.js";
import type { FreshOptions, PageRunConfig } from "./run.js";

/** What the page shows of the run the worker holds. */
export interface RunInfo {
  config: PageRunConfig;
  /** steps completed */
  step: number;
  /** the loss of each of the last losses.length steps */
  losses: number[];
  /** the learning rate of the next step */
  lr: number;
  vocabSize: number;
  /** an input the task accepts (its first validation example) */
  example: string;
  taskDescription: string;
  parameters: number;
  /** the model's tensors, or the file's when the run was loaded */
  tensors: TensorInfo[];
  /** the checkpoint the run was loaded from */
  file: { name: string; format: string; step: number } | null;
  /** the wasm kernels in the worker: threads available, and whether calls may use them */
  kernels: { threads: number; threaded: boolean } | null;
}

export interface Settings {
  lr?: number;
  batchSize?: number;
  /** the run's length (the schedule is rebuilt from the current step) */
  steps?: number;
}

export type Request =
  | { op: "fresh"; options: FreshOptions }
  | { op: "load"; bytes: Uint8Array; name: string }
  | { op: "set"; settings: Settings }
  | { op: "train"; steps: number }
  | { op: "pause" }
  | { op: "probe"; text: string }
  | { op: "evaluate" }
  | { op: "checkpoint" };

/** Why a "train" request ended. */
export type Stop = "target" | "paused" | "replaced";

/** The reply each request gets. */
export interface Replies {
  fresh: RunInfo;
  load: RunInfo;
  set: { lr: number };
  train: { step: number; stop: Stop };
  pause: null;
  probe: WireProbe;
  evaluate: Evaluation;
  checkpoint: { bytes: Uint8Array; fileName: string };
}

export type ToWorker = Request & { id: number };

export type FromWorker =
  | { kind: "reply"; id: number; ok: true; value: unknown }
  | { kind: "reply"; id: number; ok: false; error: string }
  /** after every training step */
  | { kind: "progress"; step: number; loss: number; lr: number };

/** An attention view as structured clone carries it: the weights [H, rows, cols] as a typed array. */
export interface WireView extends Omit<AttentionView, "weights"> {
  data: Float32Array | Float64Array;
  shape: number[];
}

/** An input's answer and maps, and the step of the model that gave them. */
export type StepProbe = Probe & { step: number };

export type WireProbe = Omit<StepProbe, "views"> & { views: WireView[] };
