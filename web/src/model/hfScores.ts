/**
 * Per-head scores over the attention weights of one typed text, the numbers interpretability work
 * uses to name heads. The library's `headScores` reads the same scores (and the induction score) on
 * a repeated random sequence r ++ r; a typed text is no such sequence, so the page scores the text
 * with this function and takes only the induction column from the library. The definitions are the
 * library's, so the two agree on a repeated sequence.
 *
 * For one layer and head, w[l, s] the weight of query l on key s, T tokens:
 *   previousToken   mean over l = 1 … T−1 of w[l, l − 1]
 *   entropy         mean over l = 1 … T−1 of −Σ_s w[l, s] ln w[l, s]   (nats; 0 = one key, ln(l+1) = uniform)
 *   firstToken      mean over l = 1 … T−1 of w[l, 0]                   (attention sinks)
 * Row 0, which can only see itself, is left out of every mean, as the library's headScores does.
 * With one token there are no rows to average: every score is null.
 */

/** [layer][head] tables; null where the text is too short to score. */
export interface TextHeadScores {
  numLayers: number;
  numHeads: number;
  /** the rows averaged over (T − 1) */
  rows: number;
  previousToken: (number | null)[][];
  entropy: (number | null)[][];
  firstToken: (number | null)[][];
}

/** layers[l]: the weights of layer l, [H, T, T] row-major. */
export function textHeadScores(layers: readonly ArrayLike<number>[], numHeads: number, T: number): TextHeadScores {
  const H = numHeads;
  const table = (): (number | null)[][] => layers.map(() => new Array<number | null>(H).fill(null));
  const s = { previousToken: table(), entropy: table(), firstToken: table() };
  if (T >= 2) {
    layers.forEach((w, layer) => {
      for (let h = 0; h < H; h++) {
        let prev = 0, ent = 0, first = 0;
        for (let l = 1; l < T; l++) {
          const row = (h * T + l) * T; // w[h, l, :]
          prev += w[row + l - 1];
          first += w[row];
          for (let j = 0; j < T; j++) if (w[row + j] > 0) ent -= w[row + j] * Math.log(w[row + j]);
        }
        s.previousToken[layer][h] = prev / (T - 1);
        s.entropy[layer][h] = ent / (T - 1);
        s.firstToken[layer][h] = first / (T - 1);
      }
    });
  }
  return { numLayers: layers.length, numHeads: H, rows: Math.max(0, T - 1), ...s };
}
