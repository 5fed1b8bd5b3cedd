/** Seeded synthetic tasks, the first-names dataset, batching into int32 tensors, accuracy. */
export { Vocab, OutOfVocabularyError, PAD, BOS, EOS, SEP, IGNORE_INDEX } from "./vocab.js";
export {
  copyTask, reverseTask, sortTask, additionTask, recallTask, makeTask, TASK_NAMES,
  type Task, type TaskName, type Example, type TaskOptions, type SequenceTaskOptions, type AdditionOptions, type RecallOptions,
} from "./tasks.js";
export {
  makeSplits, taskSource, fixedSource, exampleKey, type Splits, type SplitOptions, type DataSource,
} from "./splits.js";
export { collate, batchIterator, decoderSequence, type Batch, type BatchIteratorOptions, type BatchLayout } from "./batch.js";
export { accuracy, combineAccuracy, type Accuracy, type AccuracyCounts } from "./metrics.js";
export { loadNames, allNames, nameExamples, namesSource, type Names, type NamesOptions } from "./names.js";
export { deriveSeed, streamOf } from "./seeds.js";
