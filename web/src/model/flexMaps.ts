/**
 * Lesson 10's numbers, computed with the library (run in flexMaps.worker.ts, off the page's thread):
 * for the chosen option of scaledDotProductAttention, the bool mask [N, N] it amounts to, that mask's
 * kinds of 64 × 64 tiles against createBlockMask's, a timed call with and without the option, and the
 * weights of R rows of one head from the fused path (attentionWeights with rows and heads).
 */
import {
  type BlockMask, type FlexOptions, type MaskMod, type Tensor, Generator, attentionWeights, createBlockMask, documentMask, mul, randn,
  scaledDotProductAttentionWithLse, tensor, windowMask,
} from "attend";
import { E, type FlexRows, type FlexSettings, type FlexTiles, H, N, type Pattern, R, T, TILE, type TileCounts, optionKey } from "./flexProtocol.js";

/** The maskMod of a block-mask pattern (true = may attend). */
function patternMod(p: Pattern): MaskMod {
  if (p === "causal") return (_b, _h, q, k) => k <= q;
  if (p === "prefix") return (_b, _h, q, k) => k < 128 || k <= q;
  return (_b, _h, q, k) => Math.abs(q - k) < 64 || k % 128 === 0;
}

/** Document ids [N]: `docs` documents of random lengths (from the seed), in order. */
function documentIds(docs: number, g: Generator): Int32Array {
  const cuts = new Set<number>();
  while (cuts.size < docs - 1) cuts.add(1 + g.nextInt(N - 1)); // distinct, so there are exactly `docs` documents
  const ids = new Int32Array(N);
  for (const c of cuts) for (let i = c; i < N; i++) ids[i]++;
  return ids;
}

export interface Inputs {
  seed: number;
  /** [H, N, E] each */
  q: Tensor;
  k: Tensor;
  v: Tensor;
}

export function makeInputs(seed: number): Inputs {
  const g = new Generator(seed);
  const q = mul(randn([H, N, E], { generator: g }), 1.5);
  const k = mul(randn([H, N, E], { generator: g }), 1.5);
  const v = randn([H, N, E], { generator: g });
  return { seed, q, k, v };
}

/** The option as the library takes it, and the bool mask [N, N] it amounts to (1 = may attend). */
function optionAndMask(s: FlexSettings): { opts: FlexOptions; mask: Uint8Array; call: string; block?: BlockMask; ids?: Int32Array } {
  const all = new Uint8Array(N * N).fill(1);
  if (s.opt === "window") {
    return { opts: { slidingWindow: [s.wl, s.wr] }, mask: windowMask(N, N, [s.wl, s.wr]).values as Uint8Array, call: `slidingWindow: [${s.wl}, ${s.wr}]` };
  }
  if (s.opt === "alibi") {
    const slopes = s.alibi === "default" ? "default" : Array.from({ length: H }, () => Number(s.alibi));
    return { opts: { alibiSlopes: slopes }, mask: all, call: `alibiSlopes: ${JSON.stringify(slopes)}` };
  }
  if (s.opt === "softcap") return { opts: { softcap: s.cap }, mask: all, call: `softcap: ${s.cap}` };
  if (s.opt === "sinks") return { opts: { sinks: tensor(Array.from({ length: H }, () => s.sink)) }, mask: all, call: `sinks: tensor([${Array(H).fill(s.sink).join(", ")}])` };
  if (s.opt === "documents") {
    const ids = documentIds(s.docs, new Generator(s.seed + 7));
    const t = tensor(ids, { dtype: "int32" });
    return { opts: { documents: { query: t, key: t } }, mask: documentMask(t, t).values as Uint8Array, call: `documents: { query: ids, key: ids } (${s.docs} documents)`, ids };
  }
  const block = createBlockMask(patternMod(s.pattern), { batch: 1, heads: 1, L: N, S: N, blockSize: TILE });
  return { opts: { blockMask: block }, mask: block.toMask().values as Uint8Array, call: `blockMask: createBlockMask(${s.pattern}, { batch: 1, heads: 1, L: ${N}, S: ${N} })`, block };
}

/** The option's tiles and timed call, and what the rows need of it: the option and each query's lse [H, N]. */
export interface OptionResult {
  /** all but the painted mask, which the worker adds */
  tiles: Omit<FlexTiles, "maskImage">;
  opts: FlexOptions;
  lse: Tensor;
}

export function computeOption(s: FlexSettings, inputs: Inputs): OptionResult {
  const made = optionAndMask(s);
  const mask = made.mask;
  // the tile kinds, counted here from the mask, and as the library's createBlockMask classifies them
  const block = made.block ?? createBlockMask((_b, _h, qi, ki) => mask[qi * N + ki] === 1, { batch: 1, heads: 1, L: N, S: N, blockSize: TILE });
  const kinds: number[] = new Array(T * T);
  const mine: TileCounts = { empty: 0, partial: 0, full: 0 };
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      let seen = 0;
      for (let a = i * TILE; a < (i + 1) * TILE; a++) for (let b = j * TILE; b < (j + 1) * TILE; b++) seen += mask[a * N + b];
      const kind = seen === 0 ? 0 : seen === TILE * TILE ? 2 : 1;
      kinds[i * T + j] = kind;
      mine[kind === 0 ? "empty" : kind === 1 ? "partial" : "full"]++;
    }
  }
  // a real call, timed (shown, not a promise): the option against the same call without it
  const { q, k, v } = inputs;
  const tDense = performance.now();
  scaledDotProductAttentionWithLse(q, k, v, {});
  const t0 = performance.now();
  const [, lse] = scaledDotProductAttentionWithLse(q, k, v, made.opts);
  const t1 = performance.now();
  const tiles: OptionResult["tiles"] = {
    key: optionKey(s), call: made.call, mask, kinds, mine, counts: block.counts(), density: block.density(),
    ms: t1 - t0, msWithout: t0 - tDense, documentIds: made.ids ? Array.from(made.ids) : null,
  };
  return { tiles, opts: made.opts, lse };
}

/** Rows [row, row + R) of one head from the fused path, their sums, and what each should sum to. */
export function computeRows(s: FlexSettings, inputs: Inputs, option: OptionResult): FlexRows {
  const w = attentionWeights(inputs.q, inputs.k, { ...option.opts, rows: [s.row, s.row + R], heads: [s.head] }); // [1, R, N]
  const weights = Float32Array.from(w.values);
  const sums = Array.from({ length: R }, (_, r) => { let t = 0; for (let c = 0; c < N; c++) t += weights[r * N + c]; return t; });
  const lse = Array.from({ length: R }, (_, r) => option.lse.values[s.head * N + s.row + r]); // lse is [H, N]
  const expected = lse.map((l) => (s.opt === "sinks" ? 1 - Math.exp(s.sink - l) : 1));
  return { weights, sums, lse, expected };
}
