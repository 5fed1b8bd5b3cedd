/** Loss and accuracy of a model on a list of examples (teacher forcing, no gradients). */
import { noGrad } from "../autograd/tape.js";
import { crossEntropy } from "../ops/loss.js";
import { reshape } from "../ops/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { type Batch, collate } from "../data/batch.js";
import { type Accuracy, accuracy, combineAccuracy } from "../data/metrics.js";
import type { Example } from "../data/tasks.js";
import type { Vocab } from "../data/vocab.js";
import type { SequenceModel } from "./model.js";

export interface Evaluation extends Accuracy {
  /** mean cross-entropy per scored token */
  loss: number;
  examples: number;
}

/** logits [B, T, V] for a batch, whatever the model's layout. */
export function forwardBatch(model: SequenceModel, batch: Batch): Tensor {
  if (model.layout === "encoder-decoder") return model.forward(batch.tokens, { source: batch.source!, sourcePadding: batch.sourcePadding! });
  return model.forward(batch.tokens);
}

/** Mean cross-entropy over the scored positions of a batch, and the logits. */
export function batchLoss(model: SequenceModel, batch: Batch): { loss: Tensor; logits: Tensor } {
  const logits = forwardBatch(model, batch);
  const [B, T, V] = logits.shape;
  const loss = crossEntropy(reshape(logits, [B * T, V]), reshape(batch.targets, [B * T])); // [B, T, V] -> [B·T, V]
  return { loss, logits };
}

export function evaluateModel(model: SequenceModel, examples: readonly Example[], vocab: Vocab, batchSize = 64): Evaluation {
  const wasTraining = (model as { training?: boolean }).training;
  model.eval?.();
  try {
    return noGrad(() => {
      let lossSum = 0;
      const parts: Accuracy[] = [];
      for (let i = 0; i < examples.length; i += batchSize) {
        const batch = collate(examples.slice(i, i + batchSize), vocab, model.layout ?? "decoder");
        const { loss, logits } = batchLoss(model, batch);
        const acc = accuracy(logits, batch.targets);
        lossSum += loss.item() * acc.tokens;
        parts.push(acc);
      }
      const acc = combineAccuracy(parts);
      return { ...acc, loss: acc.tokens > 0 ? lossSum / acc.tokens : 0, examples: examples.length };
    });
  } finally {
    if (wasTraining !== false) model.train?.(true);
  }
}
