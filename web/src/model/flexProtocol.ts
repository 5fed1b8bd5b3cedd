/**
 * What lesson 10's page (pages/flex.ts) and its worker (flexMaps.worker.ts) say to each other. The
 * page sends the lesson's settings; the worker computes with the library (the option's mask, its
 * tiles, a timed call, the weights of the chosen rows) and replies with the numbers to draw. Every
 * request carries an id and gets one reply, unless a newer request arrives before the worker starts
 * on it; the page draws only the reply to its newest request.
 */
import { type ColourScale, weightScale } from "../ui/colors.js";
import type { PaintedCells } from "../ui/pixels.js";

/** The mask map's colour scale (0 = hidden, 1 = may attend): the worker paints with it, the page labels with it. */
export const maskScale = (): ColourScale => weightScale(1);

/** Sequence length, kernel tile, tiles per side, heads, head dim. */
export const N = 512;
export const TILE = 64;
export const T = N / TILE;
export const H = 2;
export const E = 16;
/** rows of the weights figure */
export const R = 8;

export const OPTIONS = ["window", "alibi", "softcap", "sinks", "documents", "blockmask"] as const;
export type Option = (typeof OPTIONS)[number];
export const ALIBI = ["default", "0.5", "0.125", "0.03125"] as const;
export type Alibi = (typeof ALIBI)[number];
export const PATTERNS = ["causal", "prefix", "strided"] as const;
export type Pattern = (typeof PATTERNS)[number];

/** The lesson's settings: the option and its parameters, the inputs' seed, the rows and head drawn. */
export interface FlexSettings {
  opt: Option;
  seed: number;
  /** slidingWindow's left and right reach */
  wl: number;
  wr: number;
  alibi: Alibi;
  cap: number;
  sink: number;
  docs: number;
  pattern: Pattern;
  /** the first of the R rows drawn */
  row: number;
  head: number;
}

/** What the tiles, the timed call and the lse depend on: the seed, the option and the option's own parameters. */
export function optionKey(s: FlexSettings): string {
  const own = { window: [s.wl, s.wr], alibi: [s.alibi], softcap: [s.cap], sinks: [s.sink], documents: [s.docs], blockmask: [s.pattern] }[s.opt];
  return JSON.stringify([s.seed, s.opt, ...own]);
}

export interface TileCounts {
  empty: number;
  partial: number;
  full: number;
}

/** The option's effect on the whole N × N: its mask, its tiles and a timed call. */
export interface FlexTiles {
  /** optionKey of the settings these are for */
  key: string;
  /** the option as written in the call: "slidingWindow: [127, 0]" */
  call: string;
  /** [N, N], 1 = may attend */
  mask: Uint8Array;
  /** `mask` painted with maskScale() (paintCells, in the worker): the page only copies it onto its canvas */
  maskImage: PaintedCells;
  /** [T, T] row-major: 0 skipped, 1 partial, 2 full, counted from `mask` */
  kinds: number[];
  /** the tile kinds counted from `mask` */
  mine: TileCounts;
  /** the library's createBlockMask(…).counts() and density() for the same rule */
  counts: TileCounts;
  density: number;
  /** scaledDotProductAttentionWithLse on [H, N, E] with the option, and without it, in the worker (ms) */
  ms: number;
  msWithout: number;
  /** the documents' ids [N] (documents only) */
  documentIds: number[] | null;
}

/** The weights of rows [row, row + R) of one head, from the fused path, and what they should sum to. */
export interface FlexRows {
  /** [R, N] */
  weights: Float32Array;
  sums: number[];
  /** each row's log-sum-exp, from the timed call */
  lse: number[];
  /** 1 without a sink; 1 − e^(sink − lse) with one */
  expected: number[];
}

export interface FlexRequest extends FlexSettings {
  id: number;
}

export type FlexReply =
  | {
    id: number; ok: true; settings: FlexSettings; tiles: FlexTiles; rows: FlexRows;
    /** the inputs q and k [H, N, E], for the export */
    q: Float32Array; k: Float32Array;
  }
  | { id: number; ok: false; error: string };
