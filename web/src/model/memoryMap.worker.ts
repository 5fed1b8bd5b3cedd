/**
 * Lesson 8's map worker: the N × N attention weights softmax(QKᵀ/4) of queries and keys with a
 * positional component, computed by the library here rather than on the page's thread (at N = 1024
 * that is a million exponentials and a 1024 × 16 × 1024 product: a few hundred ms on a slow machine,
 * which would freeze the page). The weights travel back as a transferred Float32Array, with their
 * colour scale's top and their pixels painted here (ui/pixels.ts: a million cells would be a long
 * task on the page's thread), so the page only copies the bytes onto its canvas.
 */
import { type Tensor, Generator, matmul, mul, randn, softmax, transpose } from "attend";
import { weightScale } from "../ui/colors.js";
import { type PaintedCells, paintCells } from "../ui/pixels.js";

/** What the page asks: the map of size N for a seed; `id` names the request (only the latest is drawn). */
export interface MapRequest {
  id: number;
  N: number;
  seed: number;
}

export type MapReply =
  | {
    id: number; ok: true; N: number; seed: number; weights: Float32Array; computeMs: number;
    /** the colour scale's top, weightScale(peak): the mean of the rows' largest weights */
    peak: number;
    /** the weights painted with weightScale(peak) (paintCells), so the page only copies the bytes */
    image: PaintedCells;
  }
  | { id: number; ok: false; error: string };

const AMP = 1.5;

/** Queries and keys with a positional component, so the map shows structure (a band near the diagonal). */
function positional(N: number, d: number, g: Generator): [Tensor, Tensor] {
  const q = mul(randn([N, d], { generator: g }), 0.5);
  const k = mul(randn([N, d], { generator: g }), 0.5);
  for (let i = 0; i < N; i++) {
    for (let f = 0; f < d / 2; f++) {
      const angle = i / (6 * 16 ** (f / (d / 2)));
      q.values[i * d + 2 * f] += AMP * Math.cos(angle);
      q.values[i * d + 2 * f + 1] += AMP * Math.sin(angle);
      k.values[i * d + 2 * f] += AMP * Math.cos(angle);
      k.values[i * d + 2 * f + 1] += AMP * Math.sin(angle);
    }
  }
  return [q, k];
}

/** Mean over rows of each row's largest entry. */
function meanRowMax(a: ArrayLike<number>, n: number): number {
  let total = 0;
  for (let r = 0; r < n; r++) {
    let m = 0;
    for (let c = 0; c < n; c++) m = Math.max(m, a[r * n + c]);
    total += m;
  }
  return total / n || 1;
}

interface WorkerScope {
  onmessage: ((e: MessageEvent<MapRequest>) => void) | null;
  postMessage(message: MapReply, options?: StructuredSerializeOptions): void;
}
const scope = self as unknown as WorkerScope;

scope.onmessage = (e) => {
  const { id, N, seed } = e.data;
  try {
    const t0 = performance.now();
    const [q, k] = positional(N, 16, new Generator(seed));
    const p = softmax(mul(matmul(q, transpose(k)), 1 / 4), -1); // [N, N]
    const weights = Float32Array.from(p.values); // a copy of its own, to transfer
    const computeMs = performance.now() - t0;
    // Colour tops out at the typical row peak, not the single largest weight, so the band is visible at every N.
    const peak = meanRowMax(weights, N);
    const image = paintCells(N, N, weights, weightScale(peak));
    scope.postMessage({ id, ok: true, N, seed, weights, computeMs, peak, image }, { transfer: [weights.buffer, image.rgba.buffer] });
  } catch (err) {
    scope.postMessage({ id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
};
