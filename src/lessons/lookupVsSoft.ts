/**
 * Lesson 1: why attention is soft. Two blocks with the same query/key projections and the same
 * value path learn associative recall ("a3c7e1?c" -> "7"), with the same optimizer, steps, seed
 * and batches. The only difference is how the query picks among the keys:
 *   lookup:  out = v[argmax_i q·k_i]                         an indicator function of q and k
 *   soft:    out = Σ_i softmax_i(q·k_i / sqrt(E)) v_i         smooth in q and k
 * The lookup's choice is piecewise constant, so the gradient reaching Wq and Wk is exactly 0: it
 * can never learn which key to look at and stays near chance (1 / pairs). Softmax attention gets a
 * gradient on every key and learns to match the query to its key.
 *
 * Shapes: B batch, n pairs, D embedding width, E query/key width, Ev value width, V vocabulary.
 */
import { noGrad } from "../autograd/tape.js";
import { lookupAttention } from "../attention/lookup.js";
import { scaledDotProductAttention } from "../attention/sdpa.js";
import { Module } from "../nn/module.js";
import { Linear } from "../nn/linear.js";
import { normal } from "../nn/init.js";
import { crossEntropy } from "../ops/loss.js";
import { argmax } from "../ops/reduce.js";
import { embedding } from "../ops/functional.js";
import { matmul } from "../ops/matmul.js";
import { reshape, transpose } from "../ops/shape.js";
import { ArgumentError } from "../tensor/errors.js";
import { Generator } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { AdamW } from "../optim/adamw.js";
import { gradNorm } from "../optim/clip.js";
import { type Example, recallTask } from "../data/tasks.js";
import { taskSource } from "../data/splits.js";
import { accuracy } from "../data/metrics.js";
import type { Vocab } from "../data/vocab.js";
import { backward } from "../autograd/backward.js";

export type AttentionKind = "lookup" | "soft";

export interface RecallBlockOptions {
  vocabSize: number;
  /** embedding width D */
  dModel: number;
  /** query/key width E */
  dKey: number;
  /** value width Ev */
  dValue: number;
  seed: number;
}

/** Embeddings (fixed) -> q, k, v projections -> lookup or softmax attention -> logits. */
export class RecallBlock extends Module {
  readonly embed: Tensor;
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly out: Linear;

  constructor(readonly kind: AttentionKind, opts: RecallBlockOptions) {
    super();
    const g = new Generator(opts.seed);
    // Fixed random token embeddings: a buffer, not a parameter, so only the projections learn.
    this.embed = this.registerBuffer("embed", normal([opts.vocabSize, opts.dModel], 1, g));
    this.query = this.registerModule("query", new Linear(opts.dModel, opts.dKey, { bias: false, generator: g }));
    this.key = this.registerModule("key", new Linear(opts.dModel, opts.dKey, { bias: false, generator: g }));
    this.value = this.registerModule("value", new Linear(opts.dModel, opts.dValue, { generator: g }));
    this.out = this.registerModule("out", new Linear(opts.dValue, opts.vocabSize, { generator: g }));
  }

  /** keys, values [B, n] int32, query [B, 1] int32 -> logits [B, V] */
  forward(keys: Tensor, values: Tensor, query: Tensor): Tensor {
    const q = this.query.forward(embedding(this.embed, query)); // [B, 1] -> [B, 1, D] -> [B, 1, E]
    const k = this.key.forward(embedding(this.embed, keys)); // [B, n, E]
    const v = this.value.forward(embedding(this.embed, values)); // [B, n, Ev]
    const attended = this.kind === "lookup"
      ? lookupAttention(q, k, v, { match: "nearest" })
      : scaledDotProductAttention(q, k, v); // [B, 1, Ev]
    const logits = this.out.forward(attended); // [B, 1, V]
    return reshape(logits, [logits.shape[0], logits.shape[2]]); // [B, 1, V] -> [B, V]
  }

  /**
   * Which key each query picks: the argmax of q·k, what the lookup uses and where softmax puts the
   * most weight. keys [B, n], query [B, 1] -> [B] pair indices.
   */
  selectedKeys(keys: Tensor, query: Tensor): Int32Array {
    return noGrad(() => {
      const q = this.query.forward(embedding(this.embed, query)); // [B, 1, E]
      const k = this.key.forward(embedding(this.embed, keys)); // [B, n, E]
      const scores = matmul(q, transpose(k, -2, -1)); // [B, 1, n]
      return argmax(reshape(scores, [scores.shape[0], scores.shape[2]]), -1).values as Int32Array; // [B]
    });
  }

  /** L2 norm of the gradients on the query and key projection weights (as one vector). */
  qkGradNorm(): number {
    return gradNorm([this.query.weight, this.key.weight]);
  }
}

/** Recall examples as tensors: keys [B, n], values [B, n], query [B, 1], answer [B]. */
export function recallTensors(examples: readonly Example[]): { keys: Tensor; values: Tensor; query: Tensor; answer: Tensor } {
  const B = examples.length;
  const n = (examples[0].source.length - 2) / 2;
  const keys = new Int32Array(B * n);
  const values = new Int32Array(B * n);
  const query = new Int32Array(B);
  const answer = new Int32Array(B);
  examples.forEach((e, b) => {
    for (let i = 0; i < n; i++) {
      keys[b * n + i] = e.source[2 * i];
      values[b * n + i] = e.source[2 * i + 1];
    }
    query[b] = e.source[2 * n + 1]; // after the "?"
    answer[b] = e.target[0];
  });
  return {
    keys: new Tensor(keys, [B, n], "int32"),
    values: new Tensor(values, [B, n], "int32"),
    query: new Tensor(query, [B, 1], "int32"),
    answer: new Tensor(answer, [B], "int32"),
  };
}

/** Share of queries whose selected pair holds the queried key. */
export function keyAccuracy(block: RecallBlock, t: ReturnType<typeof recallTensors>): number {
  const chosen = block.selectedKeys(t.keys, t.query);
  const n = t.keys.shape[1];
  let right = 0;
  chosen.forEach((i, b) => {
    if (t.keys.values[b * n + i] === t.query.values[b]) right++;
  });
  return right / chosen.length;
}

export interface LookupVsSoftOptions {
  pairs?: number;
  steps?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  logEvery?: number;
  validationSize?: number;
  dModel?: number;
  dKey?: number;
  dValue?: number;
  /** called after each logged step (e.g. to print progress) */
  onLog?: (kind: AttentionKind, point: CurvePoint) => void;
}

export interface CurvePoint {
  step: number;
  /** mean training loss over the steps since the last point */
  loss: number;
  /** training accuracy over those steps */
  accuracy: number;
  /** share of this step's queries whose argmax q·k is the queried key */
  keyAccuracy: number;
  /** L2 norm of the query/key weight gradients at this step */
  qkGradNorm: number;
}

export interface RunResult {
  kind: AttentionKind;
  curve: CurvePoint[];
  /** validation accuracy after training */
  accuracy: number;
  /** validation share of queries whose argmax q·k is the queried key, before and after training */
  keyAccuracyBefore: number;
  keyAccuracy: number;
  /** mean over every training step of the query/key gradient norm (0 only if every one was 0) */
  qkGradNorm: number;
  seconds: number;
}

export interface LookupVsSoftResult {
  pairs: number;
  steps: number;
  validationSize: number;
  /** accuracy of picking one of the pairs at random */
  chance: number;
  lookup: RunResult;
  soft: RunResult;
}

const KEYS = "abcdefghijklmnopqrstuvwxyz";
// Many possible values: with only a few (say 8 of 10 digits in every example) softmax attention can
// settle in a poor local optimum that attends *away* from the match and answers by elimination.
const VALUES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

export const LOOKUP_VS_SOFT_DEFAULTS = {
  pairs: 8, steps: 300, batchSize: 32, lr: 0.01, seed: 0, logEvery: 25, validationSize: 512, dModel: 16, dKey: 16, dValue: 16,
} as const;

function evaluate(block: RecallBlock, examples: readonly Example[]): { accuracy: number; keyAccuracy: number } {
  return noGrad(() => {
    const t = recallTensors(examples);
    return { accuracy: accuracy(block.forward(t.keys, t.values, t.query), t.answer).tokenAccuracy, keyAccuracy: keyAccuracy(block, t) };
  });
}

function trainOne(kind: AttentionKind, vocab: Vocab, data: ReturnType<typeof taskSource>, o: Required<Omit<LookupVsSoftOptions, "onLog">> & Pick<LookupVsSoftOptions, "onLog">): RunResult {
  const started = performance.now();
  const block = new RecallBlock(kind, { vocabSize: vocab.size, dModel: o.dModel, dKey: o.dKey, dValue: o.dValue, seed: o.seed });
  const opt = new AdamW(block.parameters(), { lr: o.lr });
  const before = evaluate(block, data.validation);
  const curve: CurvePoint[] = [];
  let lossSum = 0;
  let correct = 0;
  let seen = 0;
  let normSum = 0;
  for (let step = 1; step <= o.steps; step++) {
    const t = recallTensors(data.trainBatch(step, o.batchSize));
    const logits = block.forward(t.keys, t.values, t.query);
    const loss = crossEntropy(logits, t.answer);
    opt.zeroGrad();
    backward(loss);
    const qk = block.qkGradNorm();
    opt.step();
    normSum += qk;
    lossSum += loss.item() * o.batchSize;
    correct += accuracy(logits, t.answer).correctTokens;
    seen += o.batchSize;
    if (step % o.logEvery === 0 || step === o.steps) {
      const point = { step, loss: lossSum / seen, accuracy: correct / seen, keyAccuracy: keyAccuracy(block, t), qkGradNorm: qk };
      curve.push(point);
      o.onLog?.(kind, point);
      lossSum = 0;
      correct = 0;
      seen = 0;
    }
  }
  const after = evaluate(block, data.validation);
  return {
    kind,
    curve,
    accuracy: after.accuracy,
    keyAccuracyBefore: before.keyAccuracy,
    keyAccuracy: after.keyAccuracy,
    qkGradNorm: normSum / o.steps,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Train both blocks on the same batches and report their curves, gradients and accuracies. */
export function lookupVsSoft(opts: LookupVsSoftOptions = {}): LookupVsSoftResult {
  const o = { ...LOOKUP_VS_SOFT_DEFAULTS, ...opts };
  for (const k of ["pairs", "steps", "batchSize", "logEvery", "validationSize", "dModel", "dKey", "dValue"] as const) {
    const v = o[k];
    if (!Number.isInteger(v) || v <= 0) throw new ArgumentError(`lookupVsSoft: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (!(o.lr > 0)) throw new ArgumentError(`lookupVsSoft: lr must be > 0, got ${o.lr}`);
  const task = recallTask({ pairs: o.pairs, keys: KEYS, values: VALUES, distinctValues: o.pairs <= VALUES.length });
  const data = taskSource(task, { seed: o.seed, validationSize: o.validationSize });
  return {
    pairs: o.pairs,
    steps: o.steps,
    validationSize: o.validationSize,
    chance: 1 / o.pairs,
    lookup: trainOne("lookup", task.vocab, data, o),
    soft: trainOne("soft", task.vocab, data, o),
  };
}
