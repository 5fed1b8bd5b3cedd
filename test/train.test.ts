/** The training loop with a tiny model: reproducible, resumable, interruptible; checkpoints; sampling. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ArgumentError, Tensor, saveSafetensors, tensor, sum } from "../src/index.js";
import { loadCheckpoint } from "../src/models/checkpointFile.js";
import { type DataSource, IGNORE_INDEX, copyTask, reverseTask, taskSource, collate } from "../src/data/index.js";
import {
  TrainingCheckpointError, TinyAttentionModel, type SequenceModel, evaluateModel, loadTrainingCheckpoint, sampleTokens, answer, trainModel,
  type ProgressStream, restoreRun, makeData, makeModel, TASK_DEFAULTS, DATA_NAMES, modelKinds, checkRunConfig, RUN_LIMITS,
} from "../src/train/index.js";

const dir = mkdtempSync(join(tmpdir(), "attend-train-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const task = reverseTask({ maxLength: 4 });
const tiny = (seed = 0): TinyAttentionModel => new TinyAttentionModel({ vocabSize: task.vocab.size, dModel: 16, heads: 2, maxLength: 16, seed });
const source = (seed = 0): DataSource => taskSource(task, { seed, validationSize: 32 });
const base = { batchSize: 8, lr: 3e-3, evalEvery: 0 } as const;
const bits = (m: SequenceModel): number[][] => m.parameters().map((p) => [...p.values]);
/** fn throws an ArgumentError whose message matches pattern */
const refuses = (fn: () => unknown, pattern: RegExp): void => {
  assert.throws(fn, (e: unknown) => (e instanceof ArgumentError && pattern.test(e.message) ? true : assert.fail(`got ${String(e)}; expected ${pattern}`)));
};

describe("TinyAttentionModel", () => {
  test("parameterCount(config) is the number of parameters the constructor makes", () => {
    for (const c of [{ vocabSize: 14 }, { vocabSize: 3, dModel: 8, heads: 2, maxLength: 5 }, { vocabSize: 40, dModel: 12, heads: 3, maxLength: 70 }]) {
      const real = new TinyAttentionModel(c).parameters().reduce((n, p) => n + p.size, 0);
      assert.equal(TinyAttentionModel.parameterCount(c), real, JSON.stringify(c));
    }
    // by hand, V = 3, C = 8, L = 5: tok 24 + pos 40 + norms 48 + attention 288 + MLP 552 + head 27 = 979
    assert.equal(TinyAttentionModel.parameterCount({ vocabSize: 3, dModel: 8, maxLength: 5 }), 979);
  });

  test("logits [B, T, V]; causal attention maps [H, T, T] whose rows sum to 1", () => {
    const m = tiny();
    const b = collate(source().trainBatch(0, 3), task.vocab);
    const logits = m.forward(b.tokens);
    assert.deepEqual(logits.shape, [3, b.tokens.shape[1], task.vocab.size]);
    const tokens = new Tensor(Int32Array.from([1, 4, 5, 3]), [1, 4], "int32");
    const [{ weights: w, rows, cols }] = m.attentionMaps(tokens);
    assert.deepEqual([rows, cols], ["tokens", "tokens"]);
    assert.deepEqual(w.shape, [2, 4, 4]);
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 4; l++) {
        let s = 0;
        for (let k = 0; k < 4; k++) {
          const x = w.values[(h * 4 + l) * 4 + k];
          if (k > l) assert.equal(x, 0, "no weight on future keys");
          s += x;
        }
        assert.ok(Math.abs(s - 1) < 1e-5);
      }
    }
    assert.throws(() => m.forward(new Tensor(new Int32Array(17), [1, 17], "int32")), /longer than maxLength 16/);
  });
});

describe("trainModel", () => {
  test("the same seeds give the same run, bit for bit; the loss goes down", async () => {
    const a = tiny();
    const b = tiny();
    const ra = await trainModel(a, source(), { ...base, steps: 12 });
    const rb = await trainModel(b, source(), { ...base, steps: 12 });
    assert.deepEqual(bits(a), bits(b));
    assert.equal(ra.valLoss, rb.valLoss);
    assert.equal(ra.trainLoss, rb.trainLoss);
    assert.ok(ra.valLoss < Math.log(task.vocab.size), `validation loss ${ra.valLoss} is below a uniform guess's`);
    assert.equal(ra.steps, 12);
    assert.equal(ra.interrupted, false);
    assert.ok(ra.tokensPerSecond > 0);
  });

  test("resuming from a checkpoint continues exactly where the run stopped", async () => {
    const straight = tiny();
    await trainModel(straight, source(), { ...base, steps: 10 });
    const path = join(dir, "half.safetensors");
    const first = tiny();
    await trainModel(first, source(), { ...base, steps: 10, checkpointEvery: 5, checkpointPath: path, signal: AbortSignal.abort() });
    // an already-aborted signal: stops before the first step, saves step 0
    assert.equal(loadTrainingCheckpoint(path).step, 0);
    const half = tiny();
    const stop = new AbortController();
    const stopAt5: DataSource = { ...source(), trainBatch: (s, n) => (s === 4 && stop.abort(), source().trainBatch(s, n)) };
    const r = await trainModel(half, stopAt5, { ...base, steps: 10, checkpointPath: path, signal: stop.signal, config: { note: "kept" } });
    assert.equal(r.interrupted, true);
    assert.equal(r.steps, 5);
    const ckpt = loadTrainingCheckpoint(path);
    assert.equal(ckpt.step, 5);
    assert.deepEqual(ckpt.config, { note: "kept" });
    const resumed = tiny(123); // other initial weights: everything must come from the checkpoint
    const r2 = await trainModel(resumed, source(), { ...base, steps: 10, resume: ckpt });
    assert.equal(r2.steps, 10);
    assert.deepEqual(bits(resumed), bits(straight));
  });

  test("progress: plain lines off a terminal, a redrawn bar on one", async () => {
    const capture = (isTTY: boolean): ProgressStream & { text: string } => {
      const s = { text: "", isTTY, write(x: string) { s.text += x; return true; } };
      return s;
    };
    const plain = capture(false);
    await trainModel(tiny(), source(), { ...base, steps: 6, evalEvery: 3, progress: plain, logEvery: 2 });
    const lines = plain.text.trimEnd().split("\n");
    assert.ok(!/[\r\x1b]/.test(plain.text), "no control characters in a log");
    assert.match(lines[0], /^step 1\/6 {2}loss \d+\.\d{3} {2}acc \d+\.\d% {2}[\d.]+k? tok\/s {2}ETA \d+:\d\d$/);
    assert.deepEqual(lines.filter((l) => l.startsWith("step ")).map((l) => l.split(" ")[1]), ["1/6", "2/6", "4/6", "6/6"]);
    assert.match(lines.find((l) => l.startsWith("validation @ 3"))!, /loss \d+\.\d{4} {2}token acc/);
    assert.match(lines[lines.length - 1], /^done at step 6: validation loss/);
    const tty = capture(true);
    await trainModel(tiny(), source(), { ...base, steps: 3, progress: tty });
    assert.match(tty.text, /\r\x1b\[2K\[#{20}\] 3\/3 {2}loss/);
  });

  test("evalExamples: validation at intervals on the first N held-out examples, labelled; the final one on all", async () => {
    const plain = { text: "", isTTY: false, write(x: string) { plain.text += x; return true; } };
    const r = await trainModel(tiny(), source(), { ...base, steps: 6, evalEvery: 3, evalExamples: 5, progress: plain });
    assert.deepEqual(r.history.map((h) => [h.step, h.examples, h.sequences]), [[3, 5, 5], [6, 32, 32]]);
    assert.match(plain.text, /^validation @ 3 \(5 of 32 examples\): loss \d+\.\d{4} {2}token acc/m);
    assert.match(plain.text, /^done at step 6: validation loss/m);
    // the same run stopped after step 3 (the same weights, bit for bit), evaluated on those 5 examples
    const m = tiny();
    const stop = new AbortController();
    const stopAt3: DataSource = { ...source(), trainBatch: (s, n) => (s === 2 && stop.abort(), source().trainBatch(s, n)) };
    assert.equal((await trainModel(m, stopAt3, { ...base, steps: 6, signal: stop.signal })).steps, 3);
    const ev = evaluateModel(m, source().validation.slice(0, 5), task.vocab);
    assert.equal(r.history[0].loss, ev.loss);
    assert.equal(r.history[0].correctTokens, ev.correctTokens);
    await assert.rejects(trainModel(tiny(), source(), { ...base, steps: 1, evalExamples: 0 }), /train: evalExamples must be an integer >= 1, got 0/);
  });

  test("bad options are refused by name", async () => {
    await assert.rejects(trainModel(tiny(), source(), { steps: 0 }), /train: steps must be an integer >= 1, got 0/);
    const ckpt = { step: 20, config: {}, model: tiny().stateDict() };
    await assert.rejects(trainModel(tiny(), source(), { steps: 10, resume: ckpt }), /the checkpoint is at step 20, past the 10 steps/);
  });
});

describe("checkpoints", () => {
  test("missing, damaged and foreign files are CheckpointErrors that say which", () => {
    assert.throws(() => loadTrainingCheckpoint(join(dir, "nope.safetensors")), (e: Error) => e instanceof TrainingCheckpointError && /no checkpoint at/.test(e.message));
    const junk = join(dir, "junk.safetensors");
    writeFileSync(junk, "not a checkpoint at all");
    assert.throws(() => loadTrainingCheckpoint(junk), /is not a valid checkpoint/);
    const foreign = join(dir, "foreign.safetensors");
    saveSafetensors(foreign, { w: tensor([1, 2]) });
    assert.throws(() => loadTrainingCheckpoint(foreign), /a safetensors file but not an attend training checkpoint/);
    assert.throws(() => loadTrainingCheckpoint(dir), /is not a file/);
  });

  test("loadCheckpoint on a training checkpoint names the calls that read one", async () => {
    const path = join(dir, "for-load-checkpoint.safetensors");
    await trainModel(tiny(), source(), { ...base, steps: 1, checkpointPath: path, config: { task: "reverse", model: "block" } });
    const says = /^loadCheckpoint\(".*for-load-checkpoint\.safetensors"\): this is a training checkpoint \(written by attend train: metadata "format" is "attend-training-checkpoint\/1"\), not a model checkpoint; read it with loadTrainingCheckpoint\(path\) \(deserializeTrainingCheckpoint\(bytes\) for bytes\) and rebuild its model and data with restoreRun\(ckpt\)$/;
    refuses(() => loadCheckpoint(path), says);
  });

  test("checkRunConfig: a checkpoint's run config is checked against RUN_LIMITS and its types before it is used", () => {
    const ok = { task: "reverse", taskOptions: { minLength: 1, maxLength: 4 }, dataSeed: 0, validationSize: 16, model: "block", modelConfig: {}, steps: 10, batchSize: 8, lr: 3e-3, seed: 0 };
    assert.deepEqual(checkRunConfig(ok, "f"), ok);
    assert.equal(checkRunConfig({ ...ok, model: "tiny" }).model, "block", "the one-block model's former name");
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ ...ok, validationSize: 1e9 }, /^f: config validationSize is 1000000000; expected an integer from 1 to 20000$/],
      [{ ...ok, taskOptions: { minLength: 1e8 } }, /^f: config taskOptions\.minLength is 100000000; expected an integer from 1 to 512$/],
      [{ ...ok, taskOptions: { digits: 16 } }, /taskOptions\.digits is 16; expected an integer from 1 to 15/],
      [{ ...ok, taskOptions: { symbols: "x".repeat(300) } }, /taskOptions\.symbols is "x{20}\.\.\."; expected a string of at most 256 characters/],
      [{ ...ok, taskOptions: [] }, /config taskOptions is \[\]; expected an object/],
      [{ ...ok, batchSize: 2048 }, /config batchSize is 2048; expected an integer from 1 to 1024/],
      [{ ...ok, steps: 1.5 }, /config steps is 1\.5; expected an integer >= 1/],
      [{ ...ok, lr: -1 }, /config lr is -1; expected a finite number > 0/],
      [{ ...ok, dataSeed: "0" }, /config dataSeed is "0"; expected an integer >= 0/],
      [{ ...ok, model: "transformer" }, /config model is "transformer"; expected one of block, gpt, encdec/],
      [{ ...ok, task: undefined }, /config task is undefined; expected one of copy, reverse, sort, addition, recall, names/],
      [{ ...ok, modelConfig: 3 }, /config modelConfig is 3; expected an object/],
    ];
    for (const [config, pattern] of refused) refuses(() => checkRunConfig(config, "f"), pattern);
    refuses(() => checkRunConfig(null, "f"), /^f: its config is null; expected an object/);
    assert.equal(RUN_LIMITS.sequenceLength, 512);
  });

  test("restoreRun checks the model's sizes against the weights before building it", async () => {
    const model = new TinyAttentionModel({ vocabSize: copyTask().vocab.size, dModel: 16, heads: 2, maxLength: 16, seed: 1 });
    const config = { task: "copy", taskOptions: { maxLength: 3 }, validationSize: 16, model: "block", modelConfig: { dModel: 16, heads: 2, maxLength: 16, seed: 1 } };
    const ckpt = (modelConfig: Record<string, unknown>) => ({ config: { ...config, modelConfig }, model: model.stateDict() });
    assert.equal(restoreRun(ckpt(config.modelConfig), "f").config.model, "block");
    refuses(() => restoreRun(ckpt({ ...config.modelConfig, dModel: 100000 }), "f"), /^f: modelConfig\.dModel is 100000 but model\.tok has shape \[14, 16\]; expected modelConfig\.dModel 16 \(tok is \[vocabulary, dModel\]\)$/);
    refuses(() => restoreRun(ckpt({ ...config.modelConfig, maxLength: 17 }), "f"), /^f: modelConfig\.maxLength is 17 but model\.pos has shape \[16, 16\]; expected modelConfig\.maxLength 16/);
    const { "attn.in_proj_weight": _, ...noAttention } = model.stateDict();
    // V = 14, C = 16, L = 16: tok 224 + pos 256 + norms 96 + attention 1088 + MLP 2128 + head 238 = 4030; without in_proj_weight (3C² = 768): 3262
    refuses(() => restoreRun({ config, model: noAttention }, "f"), /^f: the modelConfig describes a model of 4030 parameters but the checkpoint holds 3262 values; expected a modelConfig that matches its tensors$/);
    const { tok: __, ...noTok } = model.stateDict();
    refuses(() => restoreRun({ config, model: noTok }, "f"), /^f: the checkpoint has no model\.tok \(tok is \[vocabulary, dModel\]\); expected one for model block$/);
  });

  test("restoreRun rebuilds data and model from the config alone", async () => {
    const path = join(dir, "run.safetensors");
    const config = { task: "copy", taskOptions: { maxLength: 3 }, dataSeed: 1, validationSize: 16, model: "block", modelConfig: { dModel: 16, heads: 2, maxLength: 16, seed: 1 } };
    const model = new TinyAttentionModel({ vocabSize: copyTask().vocab.size, dModel: 16, heads: 2, maxLength: 16, seed: 1 });
    const data = taskSource(copyTask({ maxLength: 3 }), { seed: 1, validationSize: 16 });
    const r = await trainModel(model, data, { ...base, steps: 4, checkpointPath: path, config });
    const run = restoreRun(loadTrainingCheckpoint(path));
    assert.deepEqual(bits(run.model), bits(model));
    assert.equal(evaluateModel(run.model, run.data.validation, run.data.vocab).loss, r.valLoss);
  });
});

/** A model that always predicts `next[t]` at position t: a fixed script, to test decoding logic. */
function scripted(next: number[], V: number): SequenceModel {
  return {
    forward(tokens: Tensor): Tensor {
      const [B, T] = tokens.shape;
      const out = new Float32Array(B * T * V);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) out[(b * T + t) * V + (next[t] ?? 0)] = 5;
      return new Tensor(out, [B, T, V], "float32");
    },
    parameters: () => [],
    stateDict: () => ({}),
  };
}

describe("sampling and evaluation", () => {
  const v = task.vocab;
  test("greedy decoding follows the logits and stops at </s>", () => {
    // prompt <s> 1 2 <sep> (positions 0..3); the script answers 2, 1, </s> from position 3 on
    const script = [0, 0, 0, v.id("2"), v.id("1"), v.eos, v.id("9")];
    const m = scripted(script, v.size);
    assert.deepEqual(sampleTokens(m, [v.bos, v.id("1"), v.id("2"), v.sep], v), [v.id("2"), v.id("1"), v.eos]);
    assert.equal(v.decode(answer(m, v.encode("12"), v)), "21");
    assert.deepEqual(sampleTokens(m, [v.bos, v.id("1"), v.id("2"), v.sep], v, { maxTokens: 1 }), [v.id("2")]);
    assert.deepEqual(sampleTokens(m, [v.bos, v.id("1"), v.id("2"), v.sep], v, { maxLength: 6 }), [v.id("2"), v.id("1")]); // 4 + 2 tokens
  });

  test("evaluateModel: a model that predicts every target is 100% right; loss is per scored token", () => {
    const data = source();
    const examples = data.validation.slice(0, 5);
    const perfect: SequenceModel = {
      forward(tokens: Tensor): Tensor {
        const batch = collate(examples, v); // the same batch the evaluation builds
        const [B, T] = tokens.shape;
        const out = new Float64Array(B * T * v.size);
        for (let i = 0; i < B * T; i++) {
          const y = batch.targets.values[i];
          out[i * v.size + (y === IGNORE_INDEX ? 0 : y)] = 50;
        }
        return new Tensor(out, [B, T, v.size], "float64");
      },
      parameters: () => [],
      stateDict: () => ({}),
    };
    const ev = evaluateModel(perfect, examples, v, 5);
    assert.equal(ev.tokenAccuracy, 1);
    assert.equal(ev.sequenceAccuracy, 1);
    assert.ok(ev.loss < 1e-15);
    assert.equal(ev.tokens, sum(tensor(examples.map((e) => e.target.length + 1))).item());
  });
});

describe("TASK_DEFAULTS (what attend train --task NAME trains)", () => {
  test("every task has defaults that build its data and model", () => {
    assert.deepEqual(Object.keys(TASK_DEFAULTS).sort(), [...DATA_NAMES].sort());
    for (const [task, d] of Object.entries(TASK_DEFAULTS)) {
      assert.ok(modelKinds().includes(d.model), `${task}: model ${d.model}`);
      const config = { task, taskOptions: d.taskOptions, validationSize: 8, model: d.model, modelConfig: d.modelConfig };
      const model = makeModel(config, makeData(config));
      assert.ok(model.parameters().length > 0);
      assert.ok(d.steps > 0 && d.batchSize > 0 && d.lr > 0 && d.target.length > 0, task);
    }
    // the target task: reverse on sequences of length 16 over the 10 digits
    assert.deepEqual(TASK_DEFAULTS.reverse.taskOptions, { minLength: 16, maxLength: 16 });
  });
});

describe("training smoke tests: each model family learns reverse (length 4) in 150 steps", () => {
  // Before training, about ln(14) ≈ 2.64 nats per answer token (14 symbols, uniform); after 150
  // steps of 16 examples every family is below 0.1 (block 0.005, gpt 0.04, encdec 0.03), asserted < 0.25.
  const families = [
    ["block", { dModel: 16, heads: 2 }],
    ["gpt", { dModel: 16, heads: 2, layers: 1 }],
    ["encdec", { dModel: 16, heads: 2, layers: 1 }],
  ] as const;
  for (const [kind, sizes] of families) {
    test(`${kind}: validation loss from > 2 to below 0.25`, async () => {
      const config = { task: "reverse", taskOptions: { minLength: 4, maxLength: 4 }, validationSize: 32, model: kind, modelConfig: { ...sizes, seed: 0 } };
      const data = makeData(config);
      const model = makeModel(config, data);
      const before = evaluateModel(model, data.validation, data.vocab).loss;
      const r = await trainModel(model, data, { steps: 150, batchSize: 16, lr: 1e-2, evalEvery: 0 });
      assert.ok(before > 2, `${kind}: loss before training ${before}`);
      assert.ok(r.valLoss < 0.25, `${kind}: validation loss after 150 steps ${r.valLoss} (from ${before})`);
    });
  }
});

describe("the full models (src/models) through the adapters", () => {
  for (const kind of ["gpt", "encdec"] as const) {
    test(`${kind}: trains in the same loop, checkpoints, restores, and its cached generation matches re-running`, async () => {
      const config = { task: "reverse", taskOptions: { maxLength: 3 }, validationSize: 8, model: kind, modelConfig: { dModel: 16, heads: 2, layers: 1, seed: 4 } };
      const data = makeData(config);
      const model = makeModel(config, data);
      assert.equal(model.layout, kind === "gpt" ? "decoder" : "encoder-decoder");
      const path = join(dir, `${kind}.safetensors`);
      const r = await trainModel(model, data, { ...base, steps: 3, checkpointPath: path, config: { ...config, modelConfig: model.toConfig!() } });
      assert.ok(Number.isFinite(r.valLoss));
      const run = restoreRun(loadTrainingCheckpoint(path));
      assert.deepEqual(bits(run.model), bits(model));
      assert.equal(evaluateModel(run.model, data.validation, data.vocab).loss, r.valLoss);
      // the KV-cached generate hook against the plain loop (the same model without the hook)
      const plain: SequenceModel = { forward: (t, c) => model.forward(t, c), parameters: () => model.parameters(), stateDict: () => model.stateDict(), layout: model.layout, maxLength: model.maxLength };
      const v = data.vocab;
      for (const e of data.validation.slice(0, 3)) assert.deepEqual(answer(model, e.source, v), answer(plain, e.source, v));
      const maps = model.attentionMaps!(tensor([[v.bos, v.id("1")]], undefined, { dtype: "int32" }), kind === "gpt" ? undefined : {
        source: tensor([[v.id("1"), v.eos]], undefined, { dtype: "int32" }), sourcePadding: tensor([[false, false]]),
      });
      assert.deepEqual(maps.map((m) => [m.rows, m.cols]), kind === "gpt"
        ? [["tokens", "tokens"]]
        : [["source", "source"], ["tokens", "tokens"], ["tokens", "source"]]);
    });
  }
});
