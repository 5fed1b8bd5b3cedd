/**
 * Recall as `attend train --task recall` trains it: the held-out set is the real task (8 pairs, one
 * question, an exact answer), training examples (several questions, a curriculum of fewer pairs)
 * are well formed, score only what is predicted, and never ask a held-out question. Answers are
 * checked against an oracle written here from the strings, not against the task's own solve.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Generator } from "../src/index.js";
import { IGNORE_INDEX, type Example, type Task, collate, makeSplits, recallTask, taskSource } from "../src/data/index.js";
import { TASK_DEFAULTS } from "../src/train/defaults.js";
import { checkRunConfig, makeData, makeModel } from "../src/train/registry.js";
import { evaluateModel } from "../src/train/evaluate.js";
import { trainModel } from "../src/train/loop.js";

const D = TASK_DEFAULTS.recall;
const KEYS = "abcdefghijklmnop";
const VALUES = "0123456789";

/** The oracle: "a3c7e1" and "c" -> "7", by reading the pairs of the string. */
function valueOf(pairs: string, key: string): string {
  assert.match(pairs, /^([a-p][0-9])+$/, `pairs ${pairs}`);
  const table = new Map<string, string>();
  for (let i = 0; i < pairs.length; i += 2) {
    assert.ok(!table.has(pairs[i]), `key ${pairs[i]} repeated in ${pairs}`);
    table.set(pairs[i], pairs[i + 1]);
  }
  const v = table.get(key);
  assert.ok(v !== undefined, `key ${key} not among ${pairs}`);
  return v;
}

/** A held-out question as text: "a3c7e1?c" (source) and "c7" (target). */
const text = (task: Task, e: Example) => ({ source: task.vocab.decode(e.source), target: task.vocab.decode(e.target) });

/**
 * A training example read by hand: its pairs and its questions [key, answer] in order.
 * Layout: source "PAIRS?k", target "kv" then, per further question, "?", k, <sep>, "kv".
 */
function readTraining(task: Task, e: Example): { pairs: string; questions: Array<[string, string]> } {
  const tok = (ids: number[]) => ids.map((i) => task.vocab.tokens[i]);
  const src = tok(e.source);
  assert.equal(src[src.length - 2], "?");
  const pairs = src.slice(0, -2).join("");
  const questions: Array<[string, string]> = [[src[src.length - 1], tok(e.target.slice(0, 2)).join("")]];
  const rest = tok(e.target.slice(2));
  assert.equal(rest.length % 5, 0, `target ${tok(e.target).join(" ")}`);
  for (let j = 0; j < rest.length; j += 5) {
    assert.equal(rest[j], "?");
    assert.equal(rest[j + 2], "<sep>");
    questions.push([rest[j + 1], rest.slice(j + 3, j + 5).join("")]);
  }
  return { pairs, questions };
}

describe("recall: the held-out set is the real task", () => {
  test("hand-worked answers: the value alone, or the key then its value (echoKey)", () => {
    const plain = recallTask();
    const echo = recallTask({ echoKey: true });
    assert.equal(plain.vocab.decode(plain.solve(plain.vocab.encode("a3c7e1?c"))), "7");
    assert.equal(echo.vocab.decode(echo.solve(echo.vocab.encode("a3c7e1?c"))), "c7");
    assert.equal(echo.vocab.decode(echo.solve(echo.vocab.encode("a3c7e1?e"))), "e1");
  });

  test("the defaults' validation set: 8 distinct keys and values, one question, key + its value, all scored", () => {
    assert.equal(D.taskOptions.pairs, 8);
    const data = makeData({ task: "recall", taskOptions: D.taskOptions, model: D.model, dataSeed: 0, validationSize: 256 });
    const task = recallTask(D.taskOptions);
    assert.equal(data.validation.length, 256);
    assert.equal(new Set(data.validation.map((e) => text(task, e).source)).size, 256, "no repeated question");
    for (const e of data.validation) {
      const { source, target } = text(task, e);
      const m = /^((?:[a-p][0-9]){8})\?([a-p])$/.exec(source);
      assert.ok(m, `source ${source}`);
      assert.equal(new Set(m[1].replace(/[0-9]/g, "")).size, 8);
      assert.equal(new Set(m[1].replace(/[a-p]/g, "")).size, 8);
      assert.equal(target, m[2] + valueOf(m[1], m[2]));
      assert.equal(e.unscored, undefined);
    }
    // every target token and the end are scored: an exact answer needs the value
    const b = collate(data.validation.slice(0, 4), data.vocab);
    const T = b.tokens.shape[1];
    for (let r = 0; r < 4; r++) {
      const scored = [...b.targets.values.slice(r * T, (r + 1) * T)].filter((y) => y !== IGNORE_INDEX);
      assert.deepEqual(scored, [...data.validation[r].target, data.vocab.eos]);
    }
  });

  test("the validation set is the one the plain task draws (training options do not change it)", () => {
    const { echoKey, pairs } = D.taskOptions;
    const a = makeSplits(recallTask(D.taskOptions), { seed: 3, trainSize: 0, validationSize: 64 }).validation;
    const b = makeSplits(recallTask({ pairs, echoKey }), { seed: 3, trainSize: 0, validationSize: 64 }).validation;
    assert.deepEqual(a, b);
  });
});

describe("recall: training examples", () => {
  const task = recallTask(D.taskOptions);
  const data = taskSource(task, { seed: 0, validationSize: 256 });
  const heldOut = new Set(data.validation.map((e) => { const t = text(task, e); return `${t.source}|${t.target}`; }));
  const { trainingMinPairs, curriculumSteps, trainingQueries, pairs } = D.taskOptions as Required<typeof D.taskOptions>;

  test("well formed, answers right, distinct questions, the curriculum's pair counts", () => {
    const seenPairs = new Map<number, Set<number>>();
    for (const step of [0, 1, 75, 150, 225, 300, 449, 450, 599]) {
      const most = Math.min(pairs, trainingMinPairs + 1 + Math.floor(((pairs - trainingMinPairs) * step) / curriculumSteps));
      const counts = new Set<number>();
      for (const e of data.trainBatch(step, 64)) {
        const { pairs: kv, questions } = readTraining(task, e);
        const n = kv.length / 2;
        counts.add(n);
        assert.ok(n >= trainingMinPairs && n <= most, `step ${step}: ${n} pairs, expected ${trainingMinPairs}-${most}`);
        assert.equal(new Set(kv.replace(/[0-9]/g, "")).size, n);
        assert.equal(new Set(kv.replace(/[a-p]/g, "")).size, n, "distinct values");
        assert.equal(questions.length, Math.min(trainingQueries, n));
        assert.equal(new Set(questions.map(([k]) => k)).size, questions.length, "each question asks another key");
        for (const [k, answer] of questions) assert.equal(answer, k + valueOf(kv, k));
      }
      seenPairs.set(step, counts);
    }
    assert.deepEqual([...seenPairs.get(0)!].sort(), [trainingMinPairs, trainingMinPairs + 1], "the curriculum starts at its fewest pairs and one more");
    assert.ok(seenPairs.get(599)!.has(8) && seenPairs.get(599)!.has(trainingMinPairs), "and widens to all 8");
    assert.ok(trainingMinPairs < 8 && curriculumSteps > 0, "the defaults have a curriculum");
  });

  test("only the answers and the end are scored; the given ?, key and <sep> are not", () => {
    const examples = data.trainBatch(500, 16);
    const b = collate(examples, task.vocab);
    const T = b.tokens.shape[1];
    examples.forEach((e, r) => {
      const { questions } = readTraining(task, e);
      const scored = [...b.targets.values.slice(r * T, (r + 1) * T)].filter((y) => y !== IGNORE_INDEX).map((y) => task.vocab.tokens[y]);
      assert.deepEqual(scored, [...questions.flatMap(([, a]) => [...a]), "</s>"]);
    });
  });

  test("no training example asks a held-out question (first or later)", () => {
    let asked = 0;
    for (let step = 0; step < 600; step += 3) {
      for (const e of data.trainBatch(step, 32)) {
        const { pairs: kv, questions } = readTraining(task, e);
        for (const [k, answer] of questions) {
          asked++;
          assert.ok(!heldOut.has(`${kv}?${k}|${answer}`), `step ${step} asks held-out ${kv}?${k}`);
        }
      }
    }
    assert.ok(asked > 10_000);
  });

  test("a training example whose later question is held out is redrawn", () => {
    const base = recallTask(D.taskOptions);
    const validation = makeSplits(base, { seed: 0, trainSize: 0, validationSize: 8 }).validation;
    const v = validation[0];
    const key = v.source[v.source.length - 1];
    const other = v.source.find((id, i) => i % 2 === 0 && i < v.source.length - 2 && id !== key)!;
    const sep = base.vocab.sep;
    const ask = base.vocab.id("?");
    const valueAfter = (k: number) => v.source[v.source.indexOf(k) + 1];
    // the held-out pairs, asked first about another key, then about the held-out one
    const leaking: Example = {
      source: [...v.source.slice(0, -1), other],
      target: [other, valueAfter(other), ask, key, sep, key, valueAfter(key)],
      unscored: [2, 3, 4],
    };
    let calls = 0;
    const stub: Task = { ...base, sampleTraining: (g, step) => (calls++ % 2 === 0 ? leaking : base.sampleTraining!(g, step)) };
    const batch = taskSource(stub, { seed: 0, validationSize: 8 }).trainBatch(0, 4);
    assert.equal(calls, 8, "each leaking draw was thrown away");
    assert.ok(batch.every((e) => e !== leaking));
  });
});

describe("recall: without training options", () => {
  test("training draws the task's own examples (8 pairs, one question, the value alone)", () => {
    const task = recallTask();
    assert.equal(task.sampleTraining, undefined);
    for (const e of taskSource(task, { seed: 1, validationSize: 16 }).trainBatch(0, 64)) {
      const { source, target } = text(task, e);
      const m = /^((?:[a-p][0-9]){8})\?([a-p])$/.exec(source);
      assert.ok(m, `source ${source}`);
      assert.equal(target, valueOf(m[1], m[2]));
      assert.equal(e.unscored, undefined);
    }
  });
});

describe("recall: the defaults", () => {
  test("a checkpoint's config with the recall options is accepted; bad ones are named", () => {
    const good = { task: "recall", model: "gpt", taskOptions: D.taskOptions };
    assert.deepEqual(checkRunConfig(good).taskOptions, D.taskOptions);
    assert.throws(() => checkRunConfig({ ...good, taskOptions: { ...D.taskOptions, trainingQueries: 0 } }), /taskOptions.trainingQueries is 0; expected an integer from 1/);
    assert.throws(() => checkRunConfig({ ...good, taskOptions: { ...D.taskOptions, curriculumSteps: -1 } }), /taskOptions.curriculumSteps is -1; expected an integer >= 0/);
    assert.throws(() => checkRunConfig({ ...good, taskOptions: { ...D.taskOptions, echoKey: "yes" } }), /taskOptions.echoKey is "yes"; expected true or false/);
    assert.throws(() => recallTask({ trainingQueries: 0 }), /recallTask: trainingQueries must be an integer >= 1, got 0/);
  });

  test("smoke: 25 steps of the default model lower the held-out loss", async () => {
    const config = { task: "recall", taskOptions: D.taskOptions, model: D.model, dataSeed: 0, validationSize: 64, modelConfig: { ...D.modelConfig, seed: 0 } };
    const data = makeData(config);
    const model = makeModel(config, data);
    const before = evaluateModel(model, data.validation, data.vocab).loss;
    const r = await trainModel(model, data, { steps: 25, batchSize: D.batchSize, lr: D.lr, evalEvery: 0 });
    assert.ok(r.valLoss < 0.7 * before, `loss ${before} -> ${r.valLoss}`);
  });
});
