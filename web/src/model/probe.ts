/**
 * What page 9 shows for one typed input, computed as `attend attn-map` computes it: the input
 * encoded with the run's vocabulary (a character outside it is the library's OutOfVocabularyError),
 * the model's greedy answer, and every attention module's weights over the prompt and that answer.
 *   decoder models:          tokens = <s> input <sep> answer            (names: <s> start continuation)
 *   encoder-decoder models:  source = input </s>,  tokens = <s> answer
 */
import { type AttentionView, type RunConfig, type SequenceModel, type SourceContext, Tensor, data, noGrad, sampleTokens } from "attend";

export interface Probe {
  /** the source's token ids (no specials) */
  source: number[];
  /** the decoder's tokens: the prompt, then the answer */
  tokens: number[];
  /** the model's answer as text */
  answer: string;
  /** the task's right answer; null for names, or when the input is not a well-formed question (expectedError says why) */
  expected: string | null;
  expectedError: string | null;
  /** every attention module's weights [H, rows, cols] */
  views: AttentionView[];
  /** axis labels of the two kinds of sequence */
  labels: { tokens: string[]; source: string[] };
}

export interface ProbeRun {
  config: RunConfig;
  data: data.DataSource;
  model: SequenceModel;
}

const ids = (xs: number[]): Tensor => new Tensor(Int32Array.from(xs), [1, xs.length], "int32"); // [1, T]

/** Throws the library's errors as they are (out-of-vocabulary characters, a too long input). */
export function probe(run: ProbeRun, text: string, maxTokens = 32): Probe {
  const { model } = run;
  const { vocab } = run.data;
  if (!model.attentionMaps) throw new Error(`model ${run.config.model} does not expose its attention weights`);
  const task = run.config.task === "names" ? null : data.makeTask(run.config.task, run.config.taskOptions ?? {});
  const source = vocab.encode(task ? text : text.toLowerCase()); // the names are lower-cased
  let expected: string | null = null;
  let expectedError: string | null = null;
  if (task) {
    try {
      expected = vocab.decode(task.solve(source));
    } catch (e) {
      expectedError = (e as Error).message;
    }
  }
  const wasTraining = (model as { training?: boolean }).training;
  model.eval?.();
  try {
    return noGrad(() => {
      let tokens: number[];
      let generated: number[];
      let context: SourceContext | undefined;
      let encoded = source;
      if (model.layout === "encoder-decoder") {
        encoded = [...source, vocab.eos];
        generated = sampleTokens(model, [vocab.bos], vocab, { maxTokens }, encoded);
        tokens = [vocab.bos, ...generated];
        context = { source: ids(encoded), sourcePadding: new Tensor(new Uint8Array(encoded.length), [1, encoded.length], "bool") };
      } else {
        const prefix = task ? [vocab.bos, ...source, vocab.sep] : [vocab.bos, ...source];
        generated = sampleTokens(model, prefix, vocab, { maxTokens });
        tokens = [...prefix, ...generated];
      }
      const views = model.attentionMaps!(ids(tokens), context);
      const label = (xs: number[]): string[] => xs.map((id) => vocab.label(id));
      const answer = task ? vocab.decode(generated) : vocab.decode([...source, ...generated]);
      return { source, tokens, answer, expected, expectedError, views, labels: { tokens: label(tokens), source: label(encoded) } };
    });
  } finally {
    if (wasTraining) model.train?.(true);
  }
}
