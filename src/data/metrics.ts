/**
 * Accuracy of next-token predictions against targets (IGNORE_INDEX positions not counted):
 *   token accuracy:    correct scored positions / scored positions
 *   sequence accuracy: rows whose every scored position is correct / rows with a scored position
 * With teacher forcing, a row that is right at every position is also what greedy decoding would
 * produce (each step is fed the token it would have predicted), so sequence accuracy is the
 * exact-match rate of greedy generation.
 */
import { ShapeError, fmtShape } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { IGNORE_INDEX } from "./vocab.js";

export interface AccuracyCounts {
  correctTokens: number;
  tokens: number;
  correctSequences: number;
  sequences: number;
}

export interface Accuracy extends AccuracyCounts {
  tokenAccuracy: number;
  sequenceAccuracy: number;
}

function ratios(c: AccuracyCounts): Accuracy {
  return {
    ...c,
    tokenAccuracy: c.tokens === 0 ? 0 : c.correctTokens / c.tokens,
    sequenceAccuracy: c.sequences === 0 ? 0 : c.correctSequences / c.sequences,
  };
}

/** logits [B, T, V] (or [B, V] with targets [B]), targets int32 of the leading shape. */
export function accuracy(logits: Tensor, targets: Tensor, ignoreIndex = IGNORE_INDEX): Accuracy {
  const fn = "accuracy";
  const lead = logits.shape.slice(0, -1);
  if (logits.ndim < 2 || targets.ndim !== lead.length || targets.shape.some((d, i) => d !== lead[i])) {
    throw new ShapeError(`${fn}: logits ${fmtShape(logits.shape)} must be targets' shape ${fmtShape(targets.shape)} plus a class dim`);
  }
  const V = logits.shape[logits.ndim - 1];
  const B = lead[0];
  const T = lead.length > 1 ? lead.slice(1).reduce((a, b) => a * b, 1) : 1;
  const c: AccuracyCounts = { correctTokens: 0, tokens: 0, correctSequences: 0, sequences: 0 };
  const x = logits.values;
  for (let b = 0; b < B; b++) {
    let scored = 0;
    let right = 0;
    for (let t = 0; t < T; t++) {
      const y = targets.values[b * T + t];
      if (y === ignoreIndex) continue;
      const base = (b * T + t) * V;
      let best = 0;
      for (let v = 1; v < V; v++) if (x[base + v] > x[base + best]) best = v;
      scored++;
      if (best === y) right++;
    }
    c.tokens += scored;
    c.correctTokens += right;
    if (scored > 0) {
      c.sequences++;
      if (right === scored) c.correctSequences++;
    }
  }
  return ratios(c);
}

/** Pool the counts of several batches. */
export function combineAccuracy(parts: readonly AccuracyCounts[]): Accuracy {
  const c: AccuracyCounts = { correctTokens: 0, tokens: 0, correctSequences: 0, sequences: 0 };
  for (const p of parts) {
    c.correctTokens += p.correctTokens;
    c.tokens += p.tokens;
    c.correctSequences += p.correctSequences;
    c.sequences += p.sequences;
  }
  return ratios(c);
}
