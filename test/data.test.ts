/** Synthetic tasks and names: determinism, correct targets, disjoint splits, batching, accuracy. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { tensor, Generator } from "../src/index.js";
import {
  IGNORE_INDEX, OutOfVocabularyError, TASK_NAMES, Vocab, accuracy, additionTask, batchIterator, collate, combineAccuracy, copyTask,
  exampleKey, loadNames, makeSplits, makeTask, namesSource, recallTask, reverseTask, sortTask, taskSource,
} from "../src/data/index.js";

describe("vocabulary", () => {
  test("specials first, then one id per character; round trip; OOV names the character", () => {
    const v = new Vocab("abc");
    assert.deepEqual(v.tokens, ["<pad>", "<s>", "</s>", "<sep>", "a", "b", "c"]);
    assert.deepEqual(v.encode("cab"), [6, 4, 5]);
    assert.equal(v.decode([1, 6, 4, 5, 2]), "cab");
    assert.equal(v.decode([1, 6, 2], { specials: true }), "<s>c</s>");
    assert.throws(() => v.encode("abz"), (e: Error) => e instanceof OutOfVocabularyError && /character "z" at position 2 of "abz" is not in the vocabulary \(allowed: "abc"\)/.test(e.message));
    assert.throws(() => new Vocab("aa"), /Vocab: symbols must be distinct/);
  });
});

describe("tasks: targets are right", () => {
  const g = new Generator(7);
  test("copy and reverse", () => {
    const c = copyTask({ minLength: 3, maxLength: 6 });
    const r = reverseTask({ minLength: 3, maxLength: 6 });
    for (let i = 0; i < 50; i++) {
      const a = c.sample(g);
      assert.deepEqual(a.target, a.source);
      assert.ok(a.source.length >= 3 && a.source.length <= 6);
      const b = r.sample(g);
      assert.equal(r.vocab.decode(b.target), [...r.vocab.decode(b.source)].reverse().join(""));
    }
    assert.equal(r.vocab.decode(r.solve(r.vocab.encode("3141"))), "1413");
  });

  test("sort", () => {
    const s = sortTask();
    for (let i = 0; i < 50; i++) {
      const e = s.sample(g);
      const text = s.vocab.decode(e.source);
      assert.equal(s.vocab.decode(e.target), [...text].sort().join(""));
    }
  });

  test("addition: the target is the sum, in both digit orders", () => {
    for (const reverseAnswer of [false, true]) {
      const t = additionTask({ digits: 4, reverseAnswer });
      for (let i = 0; i < 100; i++) {
        const e = t.sample(g);
        const [a, b] = t.vocab.decode(e.source).split("+").map(Number);
        const sum = t.vocab.decode(e.target);
        assert.equal(Number(reverseAnswer ? [...sum].reverse().join("") : sum), a + b);
        assert.ok(a < 10000 && b < 10000);
      }
    }
    const t = additionTask({ digits: 3 });
    assert.equal(t.vocab.decode(t.solve(t.vocab.encode("57+68"))), "125"); // hand-worked
    assert.equal(t.vocab.decode(t.solve(t.vocab.encode("999+1"))), "1000");
  });

  test("recall: distinct keys, the query is one of them, the answer is its value", () => {
    const t = recallTask({ pairs: 8 });
    for (let i = 0; i < 100; i++) {
      const e = t.sample(g);
      const text = t.vocab.decode(e.source);
      assert.equal(text.length, 18);
      assert.equal(text[16], "?");
      const keys = [...text.slice(0, 16)].filter((_, j) => j % 2 === 0);
      const values = [...text.slice(0, 16)].filter((_, j) => j % 2 === 1);
      assert.equal(new Set(keys).size, 8);
      assert.equal(new Set(values).size, 8);
      const at = keys.indexOf(text[17]);
      assert.ok(at >= 0);
      assert.equal(t.vocab.decode(e.target), values[at]);
    }
    assert.equal(t.vocab.decode(t.solve(t.vocab.encode("a3c7e1?c"))), "7"); // hand-worked
    assert.throws(() => recallTask({ pairs: 11 }), /11 pairs with distinct values need at least 11 values/);
  });

  test("makeTask by name; an unknown name lists the tasks", () => {
    for (const n of TASK_NAMES) assert.equal(makeTask(n).name, n);
    assert.throws(() => makeTask("multiply"), /makeTask: unknown task "multiply" \(tasks: copy, reverse, sort, addition, recall\)/);
  });
});

describe("determinism and disjoint splits", () => {
  test("same seed, same splits and batches; another seed, others", () => {
    const t = recallTask();
    const a = makeSplits(t, { seed: 3, trainSize: 200, validationSize: 50 });
    const b = makeSplits(t, { seed: 3, trainSize: 200, validationSize: 50 });
    const c = makeSplits(t, { seed: 4, trainSize: 200, validationSize: 50 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.validation, c.validation);
    const batches = (s: typeof a) => [...batchIterator(s.train, t.vocab, { batchSize: 32, seed: 1, epochs: 2 })].map((x) => [...x.tokens.values]);
    assert.deepEqual(batches(a), batches(b));
    const src1 = taskSource(t, { seed: 5, validationSize: 20 });
    const src2 = taskSource(t, { seed: 5, validationSize: 20 });
    assert.deepEqual(src1.trainBatch(17, 8), src2.trainBatch(17, 8));
    assert.notDeepEqual(src1.trainBatch(17, 8), src1.trainBatch(18, 8));
  });

  test("train and validation never share an example, even when the task space is small", () => {
    const t = copyTask({ minLength: 1, maxLength: 3 }); // 1110 possible strings
    const s = makeSplits(t, { seed: 0, trainSize: 600, validationSize: 300 });
    const val = new Set(s.validation.map(exampleKey));
    assert.equal(val.size, 300);
    assert.ok(s.train.every((e) => !val.has(exampleKey(e))));
    const src = taskSource(t, { seed: 0, validationSize: 300 });
    for (let step = 0; step < 20; step++) assert.ok(src.trainBatch(step, 32).every((e) => !val.has(exampleKey(e))));
    assert.throws(() => makeSplits(copyTask({ maxLength: 1 }), { validationSize: 11 }), /could only find 10 of 11 distinct copy examples/);
  });
});

describe("batches", () => {
  test("decoder layout: <s> source <sep> target </s>, shifted by one, only the answer scored", () => {
    const t = reverseTask();
    const v = t.vocab;
    const b = collate([{ source: v.encode("123"), target: v.encode("321") }, { source: v.encode("9"), target: v.encode("9") }], v);
    assert.equal(b.tokens.dtype, "int32");
    assert.deepEqual(b.tokens.shape, [2, 8]);
    const row = (x: ArrayLike<number>, r: number) => Array.from(x).slice(r * 8, r * 8 + 8);
    //        <s>  1  2  3 <sep> 3  2  1       -> predicts  1 2 3 <sep> 3 2 1 </s>, scored from <sep> on
    assert.deepEqual(row(b.tokens.values, 0), [v.bos, ...v.encode("123"), v.sep, ...v.encode("321")]);
    assert.deepEqual(row(b.targets.values, 0), [-100, -100, -100, -100, ...v.encode("321"), v.eos]);
    assert.deepEqual(row(b.tokens.values, 1), [v.bos, v.id("9"), v.sep, v.id("9"), v.pad, v.pad, v.pad, v.pad]);
    assert.deepEqual(row(b.targets.values, 1), [-100, -100, v.id("9"), v.eos, -100, -100, -100, -100]);
    assert.deepEqual(b.promptLengths, [5, 3]);
  });

  test("encoder-decoder layout", () => {
    const v = reverseTask().vocab;
    const b = collate([{ source: v.encode("12"), target: v.encode("21") }, { source: v.encode("3"), target: v.encode("3") }], v, "encoder-decoder");
    assert.deepEqual([...b.source!.values], [v.id("1"), v.id("2"), v.eos, v.id("3"), v.eos, v.pad]);
    assert.deepEqual([...b.sourcePadding!.values], [0, 0, 0, 0, 0, 1]);
    assert.deepEqual([...b.tokens.values], [v.bos, v.id("2"), v.id("1"), v.bos, v.id("3"), v.pad]);
    assert.deepEqual([...b.targets.values], [v.id("2"), v.id("1"), v.eos, v.id("3"), v.eos, IGNORE_INDEX]);
  });

  test("the iterator covers every example once per epoch; dropLast", () => {
    const t = copyTask();
    const { train } = makeSplits(t, { trainSize: 10, validationSize: 1 });
    const seen = [...batchIterator(train, t.vocab, { batchSize: 4 })].flatMap((b) => b.examples.map(exampleKey));
    assert.deepEqual(seen.sort(), train.map(exampleKey).sort());
    assert.equal([...batchIterator(train, t.vocab, { batchSize: 4, dropLast: true })].length, 2);
  });
});

describe("accuracy", () => {
  test("hand-worked: token 3/4, sequence 1/2, ignored positions do not count", () => {
    // B = 2, T = 2, V = 3; argmax per position: [2, 0], [1, 1]
    const logits = tensor([[[0, 1, 5], [9, 0, 0]], [[0, 3, 1], [0, 2, 1]]]);
    const targets = tensor([[2, 0], [1, 0]], undefined, { dtype: "int32" });
    const a = accuracy(logits, targets);
    assert.deepEqual([a.correctTokens, a.tokens, a.tokenAccuracy, a.correctSequences, a.sequences], [3, 4, 0.75, 1, 2]);
    const masked = accuracy(logits, tensor([[2, -100], [-100, -100]], undefined, { dtype: "int32" }));
    assert.deepEqual([masked.tokens, masked.sequences, masked.sequenceAccuracy], [1, 1, 1]);
    const both = combineAccuracy([a, masked]);
    assert.equal(both.tokenAccuracy, 4 / 5);
  });
});

describe("names", () => {
  test("lower-cased, distinct, a fixed seeded split with no overlap, start/end/pad in the vocabulary", () => {
    const a = loadNames({ seed: 0 });
    const b = loadNames({ seed: 0 });
    const c = loadNames({ seed: 1 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.validation, c.validation);
    const all = [...a.train, ...a.validation];
    assert.ok(all.length > 8000);
    assert.equal(new Set(all).size, all.length);
    assert.ok(all.every((n) => n === n.toLowerCase() && n.length > 0));
    const val = new Set(a.validation);
    assert.ok(a.train.every((n) => !val.has(n)));
    assert.ok(Math.abs(a.validation.length / all.length - 0.1) < 0.001);
    for (const s of ["<pad>", "<s>", "</s>", "a", "z"]) assert.ok(a.vocab.has(s), s);
    assert.ok(a.train.includes("aaron") || a.validation.includes("aaron"));
    const src = namesSource({ seed: 0 });
    const batch = collate(src.trainBatch(0, 4), src.vocab);
    assert.equal(batch.tokens.values[0], src.vocab.bos);
    assert.deepEqual(src.trainBatch(3, 4), namesSource({ seed: 0 }).trainBatch(3, 4));
  });
});
