/**
 * Interop with PyTorch and checkpoints:
 *   - the PyTorch twins of the models (test/fixtures/make_model_fixtures.py, torch 1.13, float64)
 *     give the same logits as attend's for the tiny presets (float32: rel 1e-4; float64: 1e-9);
 *   - saveCheckpoint / loadCheckpoint round-trip, and refuse mismatched models with errors that
 *     name the field or parameter;
 *   - PyTorch loads a checkpoint attend wrote into its twin (strict names and shapes), with
 *     bit-identical values and the same logits.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Tensor, cast, loadSafetensors, noGrad, serializeSafetensors, deserializeSafetensors } from "../src/index.js";
import {
  EncoderDecoder, GPT, createModel, deserializeCheckpoint, encoderDecoderConfig, gptConfig, serializeCheckpoint,
  type Model,
} from "../src/models/index.js";
import { loadCheckpoint, saveCheckpoint } from "../src/models/checkpointFile.js";
import { TOL, relError } from "./harness.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const MODELS = join(HERE, "fixtures", "models");
const PYTHON = "/usr/bin/python3";

function modelFixture(name: string): { family: "gpt" | "encoder-decoder"; config: unknown; t: Record<string, Tensor> } {
  const { tensors, metadata } = loadSafetensors(join(MODELS, `${name}.safetensors`));
  assert.equal(metadata.kind, "model");
  return { family: metadata.model as "gpt" | "encoder-decoder", config: JSON.parse(metadata.config), t: tensors };
}

function params(t: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(t)) if (k.startsWith("param.")) out[k.slice(6)] = v;
  return out;
}

function logitsOf(model: Model, t: Record<string, Tensor>): Tensor {
  return noGrad(() => model instanceof GPT
    ? model.forward(t.idx)
    : model.forward(t.src, t.tgt, { srcPaddingMask: t.src_padding_mask, tgtPaddingMask: t.tgt_padding_mask }));
}

describe("PyTorch model fixtures", () => {
  test("the fixtures are built from the presets", () => {
    assert.deepEqual(modelFixture("gpt_tiny").config, gptConfig("tiny"));
    assert.deepEqual(modelFixture("gpt_tiny_gqa").config, gptConfig("tiny-gqa"));
    assert.deepEqual(modelFixture("encdec_tiny").config, encoderDecoderConfig("tiny"));
  });

  for (const name of ["gpt_tiny", "gpt_tiny_gqa", "encdec_tiny"]) {
    for (const dtype of ["float32", "float64"] as const) {
      test(`${name} logits match PyTorch (${dtype})`, () => {
        const f = modelFixture(name);
        const model = createModel(f.family, f.config, { dtype });
        model.eval();
        model.loadStateDict(params(f.t)); // strict: every name and shape as PyTorch's state_dict()
        const logits = logitsOf(model, f.t);
        const err = relError(cast(logits, "float64"), f.t.logits);
        assert.ok(err <= TOL[dtype].out, `${name}: relative error ${err} exceeds ${TOL[dtype].out}`);
      });
    }
  }
});

function withTmp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "attend-ckpt-"));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("checkpoints", () => {
  test("save, then load into a fresh model built from the stored config: same logits, extra metadata kept", () => {
    withTmp((dir) => {
      const path = join(dir, "m.safetensors");
      const model = new GPT("tiny-gqa", { seed: 3 });
      saveCheckpoint(path, model, { step: "120", note: "smoke" });
      const loaded = loadCheckpoint(path);
      assert.ok(loaded.model instanceof GPT);
      assert.equal(loaded.family, "gpt");
      assert.deepEqual(loaded.config, model.config);
      assert.deepEqual(loaded.metadata, { step: "120", note: "smoke" });
      const idx = [[1, 2, 3, 4, 5]];
      assert.deepEqual([...logitsOf(loaded.model, { idx: new Tensor(Int32Array.from(idx[0]), [1, 5], "int32") }).values],
        [...logitsOf(model, { idx: new Tensor(Int32Array.from(idx[0]), [1, 5], "int32") }).values]);
      // the file's metadata: format, version, family, config
      const { metadata } = loadSafetensors(path);
      assert.equal(metadata.format, "attend-checkpoint");
      assert.equal(metadata.format_version, "1");
      assert.equal(metadata.model, "gpt");
      assert.deepEqual(JSON.parse(metadata.config), gptConfig("tiny-gqa"));
    });
  });

  test("loading into a given model overwrites its parameters; encoder-decoder too, as bytes", () => {
    const a = new EncoderDecoder("tiny", { seed: 1 });
    const b = new EncoderDecoder("tiny", { seed: 2 });
    const bytes = serializeCheckpoint(a);
    const r = deserializeCheckpoint(bytes, b);
    assert.equal(r.model, b);
    for (const [k, v] of a.namedParameters()) assert.deepEqual([...b.namedParameters().get(k)!.values], [...v.values], k);
  });

  test("a model with another config is refused, naming each differing field", () => {
    const bytes = serializeCheckpoint(new GPT("tiny"));
    const other = new GPT(gptConfig("tiny", { numLayers: 3, dFF: 64 }));
    assert.throws(() => deserializeCheckpoint(bytes, other), /numLayers is 2 in the checkpoint but 3 in the model; dFF is 128 in the checkpoint but 64 in the model/);
    assert.throws(() => deserializeCheckpoint(bytes, new EncoderDecoder("tiny")), /holds a gpt model but the model given is a encoder-decoder/);
  });

  test("a parameter with the wrong shape, a missing or extra one, is refused by name", () => {
    const model = new GPT("tiny");
    const meta = deserializeSafetensors(serializeCheckpoint(model)).metadata;
    const state = model.stateDict();
    const bad = { ...state, "lm_head.weight": new Tensor(new Float32Array(64 * 31), [64, 31]) };
    assert.throws(() => deserializeCheckpoint(serializeSafetensors(bad, meta)), /parameter lm_head\.weight has shape \[64, 31\] in the checkpoint but \[64, 32\] in the model/);
    const missing: Record<string, Tensor> = { ...state };
    delete missing["norm.bias"];
    assert.throws(() => deserializeCheckpoint(serializeSafetensors(missing, meta)), /parameter norm\.bias \[32\] is missing/);
    const extra = { ...state, "blocks.9.mlp.fc1.weight": new Tensor(new Float32Array(4), [2, 2]) };
    assert.throws(() => deserializeCheckpoint(serializeSafetensors(extra, meta)), /tensors the model does not: blocks\.9\.mlp\.fc1\.weight/);
  });

  test("format, version and metadata errors", () => {
    const model = new GPT("tiny");
    const meta = deserializeSafetensors(serializeCheckpoint(model)).metadata;
    const state = model.stateDict();
    assert.throws(() => deserializeCheckpoint(serializeSafetensors(state)), /not an attend checkpoint/);
    assert.throws(() => deserializeCheckpoint(serializeSafetensors(state, { ...meta, format_version: "2" })), /format_version "2" is not one this library reads/);
    const cfg = { ...JSON.parse(meta.config), numHeads: 5 };
    assert.throws(() => deserializeCheckpoint(serializeSafetensors(state, { ...meta, config: JSON.stringify(cfg) })), /numHeads 5 must divide dModel 32/);
    assert.throws(() => serializeCheckpoint(model, { config: "x" }), /extraMetadata key "config" is reserved/);
  });

  test("a failed load leaves the model unchanged", () => {
    const model = new GPT("tiny", { seed: 5 });
    const before = [...model.tok_emb.weight.values];
    const other = new GPT("tiny", { seed: 6 });
    const meta = deserializeSafetensors(serializeCheckpoint(other)).metadata;
    const bad = { ...other.stateDict(), "norm.weight": new Tensor(new Float32Array(3), [3]) };
    assert.throws(() => deserializeCheckpoint(serializeSafetensors(bad, meta), model));
    assert.deepEqual([...model.tok_emb.weight.values], before);
  });
});

function torchAvailable(): boolean {
  const r = spawnSync(PYTHON, ["-c", "import torch, numpy"], { encoding: "utf8" });
  return r.status === 0;
}

const READ_BACK = `
import json, sys, torch
sys.path.insert(0, sys.argv[1])
import make_model_fixtures as mm
tensors, meta = mm.read_safetensors(sys.argv[2])
model = mm.build_model(meta["model"], json.loads(meta["config"]))
model.load_state_dict(tensors, strict=True)
model.eval()
idx = torch.tensor(json.loads(sys.argv[4]))
with torch.no_grad():
    logits = model(idx)
mm.write_f32_safetensors(sys.argv[3], [("param." + k, v) for k, v in model.state_dict().items()] + [("logits", logits)], {})
`;

describe("PyTorch reads attend checkpoints", () => {
  for (const preset of ["tiny", "tiny-gqa"] as const) {
    test(`GPT ${preset}: load_state_dict(strict=True), identical values, same logits`, (t) => {
      if (!torchAvailable()) {
        t.skip(`${PYTHON} cannot import torch`);
        return;
      }
      withTmp((dir) => {
        const model = new GPT(preset, { seed: 11 });
        const ckpt = join(dir, "ckpt.safetensors");
        const back = join(dir, "back.safetensors");
        saveCheckpoint(ckpt, model);
        const idx = [[3, 1, 4, 1, 5, 9, 2], [6, 5, 3, 5, 8, 9, 7]];
        const r = spawnSync(PYTHON, ["-c", READ_BACK, join(HERE, "fixtures"), ckpt, back, JSON.stringify(idx)], { encoding: "utf8" });
        assert.equal(r.status, 0, `python failed: ${r.stderr}`);
        const { tensors } = loadSafetensors(back);
        const state = model.stateDict();
        assert.deepEqual(Object.keys(params(tensors)).sort(), Object.keys(state).sort());
        for (const [k, v] of Object.entries(state)) {
          const got = tensors[`param.${k}`];
          assert.equal(got.dtype, "float32", k);
          assert.deepEqual([...got.shape], [...v.shape], k);
          assert.ok(got.values.every((x, i) => Object.is(x, v.values[i])), `${k}: values differ after the round trip through PyTorch`);
        }
        const ours = noGrad(() => model.forward(idx));
        const err = relError(ours, tensors.logits);
        assert.ok(err <= TOL.float32.out, `logits: relative error ${err}`);
      });
    });
  }
});

// Keep the fixture files honest: they are what make_model_fixtures.py writes (sizes are stable).
test("model fixtures are committed F32 checkpoints with F64 logits", () => {
  for (const name of ["gpt_tiny", "gpt_tiny_gqa", "encdec_tiny"]) {
    const bytes = readFileSync(join(MODELS, `${name}.safetensors`));
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    assert.equal(header.logits.dtype, "F64");
    for (const [k, e] of Object.entries(header)) if (k.startsWith("param.")) assert.equal((e as { dtype: string }).dtype, "F32", k);
  }
});
