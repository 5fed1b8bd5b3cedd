/**
 * Models: configs (presets and validation), the GPT and encoder-decoder forward passes (shapes,
 * names, causality, padding, attention maps, tied heads), and a training smoke test per family:
 * plain SGD on one fixed tiny batch must drive the loss down.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Tensor, crossEntropy, noGrad, paddingMask } from "../src/index.js";
import { GroupedQueryAttention, MultiheadAttention } from "../src/nnNamespace.js";
import {
  CHECKPOINT_FORMAT, ENCODER_DECODER_PRESETS, EncoderDecoder, GPT, GPT_PRESETS, deserializeCheckpoint, encoderDecoderConfig, gptConfig,
  serializeCheckpoint, validateGPTConfig, type Model,
} from "../src/models/index.js";
import { parameterBound } from "../src/models/checkpoint.js";
import { serializeSafetensors } from "../src/io/tensors.js";
import { ArgumentError } from "../src/tensor/errors.js";

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape], "shape");
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.values[i] - b.values[i]));
  return m;
}

/** Mean cross-entropy of logits [N, T, V] against targets [N][T]. */
function lmLoss(logits: Tensor, targets: number[][]): Tensor {
  const [N, T, V] = logits.shape;
  return crossEntropy(logits.reshape([N * T, V]), new Tensor(Int32Array.from(targets.flat()), [N * T], "int32"));
}

/** One plain SGD step (the optimizers live in src/optim; this is the 5-line version). */
function sgdStep(model: Model, lr: number): void {
  noGrad(() => {
    for (const p of model.parameters()) {
      if (p.grad === null) continue;
      for (let i = 0; i < p.size; i++) p.values[i] -= lr * p.grad.values[i];
    }
  });
  model.zeroGrad();
}

describe("configs", () => {
  test("every preset validates; overrides apply", () => {
    for (const name of Object.keys(GPT_PRESETS) as (keyof typeof GPT_PRESETS)[]) assert.deepEqual(gptConfig(name), { ...GPT_PRESETS[name] });
    for (const name of Object.keys(ENCODER_DECODER_PRESETS) as (keyof typeof ENCODER_DECODER_PRESETS)[]) encoderDecoderConfig(name);
    assert.equal(gptConfig("small", { vocabSize: 65 }).vocabSize, 65);
  });

  test("errors name the field, the value and what is expected", () => {
    assert.throws(() => gptConfig("tiny", { numHeads: 3 }), /GPTConfig: numHeads 3 must divide dModel 32/);
    assert.throws(() => gptConfig("tiny", { numKvHeads: 3 }), /GPTConfig: numKvHeads 3 must divide numHeads 4/);
    assert.throws(() => gptConfig("tiny", { numHeads: 8, numKvHeads: 8, dModel: 24, positional: "rope" }), /head dim dModel \/ numHeads = 3 must be even/);
    assert.throws(() => gptConfig("tiny", { dropout: 1 }), /GPTConfig: dropout must be a probability in \[0, 1\), got 1/);
    assert.throws(() => gptConfig("tiny", { norm: "batchnorm" as "layernorm" }), /norm must be one of "layernorm", "rmsnorm", got "batchnorm"/);
    assert.throws(() => gptConfig("huge" as "tiny"), /unknown preset "huge" \(presets: tiny, tiny-gqa, small, small-gqa\)/);
    assert.throws(() => validateGPTConfig({ ...gptConfig(), nLayers: 2 }), /unknown field "nLayers"/);
    const { vocabSize: _, ...noVocab } = gptConfig();
    assert.throws(() => validateGPTConfig(noVocab), /missing field "vocabSize"/);
    assert.throws(() => encoderDecoderConfig("tiny", { positional: "rope" as "learned" }), /positional must be one of "sinusoidal", "learned"/);
  });
});

describe("GPT", () => {
  test("tiny: logits [N, T, V], PyTorch-style names, multi-head attention", () => {
    const m = new GPT("tiny");
    assert.ok(m.blocks.at(0).self_attn instanceof MultiheadAttention);
    const names = [...m.namedParameters().keys()];
    assert.deepEqual(names.slice(0, 6), [
      "tok_emb.weight", "pos_emb.weight", "blocks.0.attn_norm.weight", "blocks.0.attn_norm.bias",
      "blocks.0.self_attn.in_proj_weight", "blocks.0.self_attn.in_proj_bias",
    ]);
    assert.deepEqual(names.slice(-3), ["norm.weight", "norm.bias", "lm_head.weight"]);
    const logits = noGrad(() => m.forward([[1, 2, 3], [4, 5, 6]]));
    assert.deepEqual([...logits.shape], [2, 3, 64]);
  });

  test("tiny-gqa: grouped-query attention with RoPE, no position table, no biases", () => {
    const m = new GPT("tiny-gqa");
    const attn = m.blocks.at(1).self_attn;
    assert.ok(attn instanceof GroupedQueryAttention);
    assert.equal(attn.numKvHeads, 2);
    assert.equal(m.pos_emb, null);
    assert.ok(m.rotary);
    const names = [...m.namedParameters().keys()];
    assert.ok(names.includes("blocks.1.self_attn.k_proj.weight") && !names.some((n) => n.endsWith("bias")));
    assert.deepEqual([...attn.k_proj.weight.shape], [16, 32], "[Hkv * hd, C]");
  });

  test("causal: changing a later token leaves earlier logits unchanged", () => {
    for (const preset of ["tiny", "tiny-gqa"] as const) {
      const m = new GPT(preset, { seed: 2 });
      const a = noGrad(() => m.forward([[5, 6, 7, 8, 9]]));
      const b = noGrad(() => m.forward([[5, 6, 7, 8, 10]]));
      assert.equal(maxAbsDiff(a.slice(1, 0, 4), b.slice(1, 0, 4)), 0, preset);
      assert.ok(maxAbsDiff(a.slice(1, 4, 5), b.slice(1, 4, 5)) > 0);
    }
  });

  test("tied weights: no lm_head, the head is tok_emb.weight", () => {
    const tied = new GPT(gptConfig("tiny", { tieWeights: true }));
    const untied = new GPT("tiny");
    assert.equal(tied.lm_head, null);
    assert.equal(untied.numParameters() - tied.numParameters(), 64 * 32);
    assert.ok(!("lm_head.weight" in tied.stateDict()));
  });

  test("forwardWithAttention: every layer's per-head weights [N, H, T, T], causal rows summing to 1", () => {
    const m = new GPT("tiny-gqa", { seed: 3 });
    const idx = [[1, 2, 3, 4], [4, 3, 2, 1]];
    const { logits, attention } = noGrad(() => m.forwardWithAttention(idx));
    // forward runs the fused kernels, forwardWithAttention the materialising path: equal to float32 rounding
    assert.ok(maxAbsDiff(logits, noGrad(() => m.forward(idx))) < 1e-5);
    assert.deepEqual(attention.map((a) => a.name), ["blocks.0.self_attn", "blocks.1.self_attn"]);
    for (const { weights, kind } of attention) {
      assert.equal(kind, "self");
      assert.deepEqual([...weights.shape], [2, 4, 4, 4]);
      for (let r = 0; r < 2 * 4 * 4; r++) {
        const l = r % 4;
        let s = 0;
        for (let c = 0; c < 4; c++) {
          s += weights.values[r * 4 + c];
          if (c > l) assert.equal(weights.values[r * 4 + c], 0);
        }
        assert.ok(Math.abs(s - 1) < 1e-6);
      }
    }
  });

  test("errors: token ids outside the vocabulary, sequences past maxSeqLen, ragged rows", () => {
    const m = new GPT("tiny");
    assert.throws(() => m.forward([[1, 64]]), /GPT\.forward: idx holds token id 64 at \[0, 1\], outside the vocabulary 0\.\.63/);
    assert.throws(() => m.forward([Array.from({ length: 65 }, () => 0)]), /positions 0\.\.64 go past maxSeqLen 64/);
    assert.throws(() => m.forward([[1, 2], [3]]), /rows must have equal lengths/);
  });

  test("dropout is active in training only", () => {
    const m = new GPT(gptConfig("tiny", { dropout: 0.2 }), { seed: 4 });
    const a = noGrad(() => m.forward([[1, 2, 3]]));
    const b = noGrad(() => m.forward([[1, 2, 3]]));
    assert.ok(maxAbsDiff(a, b) > 0, "different masks while training");
    m.eval();
    assert.equal(maxAbsDiff(noGrad(() => m.forward([[1, 2, 3]])), noGrad(() => m.forward([[1, 2, 3]]))), 0);
  });

  for (const preset of ["tiny", "tiny-gqa"] as const) {
    test(`training smoke test (${preset}): 40 SGD steps on a fixed batch take the loss from ~2.9 below 0.5`, () => {
      const V = 16;
      const m = new GPT(gptConfig(preset, { vocabSize: V }), { seed: 0 });
      // four arithmetic progressions mod 16 (start, step): the next token is the last plus the row's step
      const rows = [[1, 1], [2, 3], [5, 2], [9, 5]].map(([s, d]) => Array.from({ length: 13 }, (_, t) => (s + t * d) % V));
      const x = rows.map((r) => r.slice(0, -1));
      const y = rows.map((r) => r.slice(1));
      let first = 0;
      let last = 0;
      for (let step = 0; step < 40; step++) {
        const loss = lmLoss(m.forward(x), y);
        if (step === 0) first = loss.item();
        last = loss.item();
        loss.backward();
        sgdStep(m, 0.3);
      }
      assert.ok(first > 2.5, `initial loss ${first}`);
      assert.ok(last < 0.5, `loss after 40 steps ${last} (from ${first})`);
    });
  }
});

describe("EncoderDecoder", () => {
  test("tiny: logits [N, T, Vt]; names; cross-attention in decoder blocks only", () => {
    const m = new EncoderDecoder("tiny");
    const logits = noGrad(() => m.forward([[1, 2, 3, 4]], [[0, 5, 6]]));
    assert.deepEqual([...logits.shape], [1, 3, 32]);
    const names = [...m.namedParameters().keys()];
    assert.ok(names.includes("encoder.layers.1.self_attn.in_proj_weight"));
    assert.ok(names.includes("decoder.layers.0.cross_attn.out_proj.weight"));
    assert.ok(!names.some((n) => n.startsWith("encoder.") && n.includes("cross")));
    assert.ok(!names.some((n) => n.includes("pos")), "sinusoidal positions are not parameters");
    assert.ok(new EncoderDecoder(encoderDecoderConfig("tiny", { positional: "learned" })).stateDict()["tgt_pos.weight"]);
  });

  test("padded source tokens do not change the logits; padded keys get zero cross-attention", () => {
    const m = new EncoderDecoder("tiny", { seed: 1 });
    const srcPaddingMask = paddingMask([5, 3], 5);
    const tgt = [[1, 7, 8], [1, 9, 10]];
    const a = noGrad(() => m.forward([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0]], tgt, { srcPaddingMask }));
    const b = noGrad(() => m.forward([[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]], tgt, { srcPaddingMask }));
    assert.equal(maxAbsDiff(a, b), 0);
    const { attention } = noGrad(() => m.forwardWithAttention([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0]], tgt, { srcPaddingMask }));
    assert.deepEqual(attention.map((x) => `${x.kind}:${x.layer}`), ["encoder:0", "encoder:1", "self:0", "cross:0", "self:1", "cross:1"]);
    const cross = attention[3].weights; // [N, H, T, S]
    assert.deepEqual([...cross.shape], [2, 4, 3, 5]);
    for (let h = 0; h < 4; h++) for (let t = 0; t < 3; t++) for (const s of [3, 4]) assert.equal(cross.values[(((1 * 4 + h) * 3 + t) * 5) + s], 0);
  });

  test("the decoder is causal", () => {
    const m = new EncoderDecoder("tiny", { seed: 2 });
    const a = noGrad(() => m.forward([[3, 4, 5]], [[1, 7, 8, 9]]));
    const b = noGrad(() => m.forward([[3, 4, 5]], [[1, 7, 8, 10]]));
    assert.equal(maxAbsDiff(a.slice(1, 0, 3), b.slice(1, 0, 3)), 0);
  });

  test("training smoke test: 40 SGD steps learn to reverse 4 fixed sequences (loss ~2.9 -> below 0.3)", () => {
    const V = 16;
    const BOS = 1;
    const EOS = 2;
    const m = new EncoderDecoder(encoderDecoderConfig("tiny", { srcVocabSize: V, tgtVocabSize: V }), { seed: 0 });
    const srcs = [[3, 4, 5, 6, 7], [8, 3, 9, 10, 4], [11, 12, 5, 3, 13], [14, 15, 6, 9, 8]];
    const tgtIn = srcs.map((s) => [BOS, ...[...s].reverse()]); // teacher forcing: the target shifted right
    const tgtOut = srcs.map((s) => [...[...s].reverse(), EOS]);
    let first = 0;
    let last = 0;
    for (let step = 0; step < 40; step++) {
      const loss = lmLoss(m.forward(srcs, tgtIn), tgtOut);
      if (step === 0) first = loss.item();
      last = loss.item();
      loss.backward();
      sgdStep(m, 0.3);
    }
    assert.ok(first > 2.5, `initial loss ${first}`);
    assert.ok(last < 0.3, `loss after 40 steps ${last} (from ${first})`);
  });
});

describe("checkpoints: a stored config must fit the tensors beside it before a model is built", () => {
  /** checkpoint bytes whose stored config is `config` and whose tensors are `tensors` (as a hostile writer would make them) */
  function checkpointBytes(family: "gpt" | "encoder-decoder", config: object, tensors: Record<string, Tensor>): Uint8Array {
    return serializeSafetensors(tensors, { format: CHECKPOINT_FORMAT, format_version: "1", model: family, config: JSON.stringify(config) });
  }
  const tiny = new GPT("tiny").stateDict(); // 2 layers, width 32, vocabulary 64, dFF 128, learned positions
  const refuses = (bytes: Uint8Array, pattern: RegExp): void => {
    assert.throws(() => deserializeCheckpoint(bytes), (e: unknown) => e instanceof ArgumentError && pattern.test(e.message) ? true : assert.fail(String(e)));
  };

  test("the issue's files: 200000 layers, width 100000, no tensors at all", () => {
    const noTensors = checkpointBytes("gpt", { ...GPT_PRESETS.tiny, numLayers: 200000 }, {});
    assert.ok(noTensors.length < 400, `${noTensors.length} bytes`);
    refuses(noTensors, /^loadCheckpoint\(bytes\): the checkpoint has no tok_emb\.weight \(the token embedding is \[vocabSize, dModel\]\); expected one for a gpt config$/);
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, numLayers: 200000 }, tiny), /config numLayers is 200000 but the checkpoint holds 2 layers \(blocks\.0, blocks\.1\); expected numLayers 2$/);
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, dModel: 100000 }, tiny), /config dModel is 100000 but tok_emb\.weight has shape \[64, 32\]; expected dModel 32 \(the token embedding is \[vocabSize, dModel\]\)/);
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, maxSeqLen: 1e9 }, tiny), /config maxSeqLen is 1000000000 but pos_emb\.weight has shape \[64, 32\]; expected maxSeqLen 64/);
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, dFF: 1e7 }, tiny), /config dFF is 10000000 but blocks\.0\.mlp\.fc1\.weight has shape \[128, 32\]; expected dFF 128/);
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, vocabSize: 1e7 }, tiny), /config vocabSize is 10000000 but tok_emb\.weight has shape \[64, 32\]; expected vocabSize 64/);
  });

  // Sizes a model could be built at (and then fail on a missing or misshapen tensor): refused first, by the key.
  test("a config one layer, one width or one vocabulary off is named by its key", () => {
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, numLayers: 3 }, tiny), /config numLayers is 3 but the checkpoint holds 2 layers/);
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, dModel: 64 }, tiny), /config dModel is 64 but tok_emb\.weight has shape \[64, 32\]/);
    const { "blocks.1.attn_norm.weight": moved, ...rest } = tiny;
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, numLayers: 3 }, { ...rest, "blocks.7.attn_norm.weight": moved }), /config numLayers is 3 but the checkpoint holds 3 layers \(blocks\.0, blocks\.1, blocks\.7\); expected numLayers 2 \(the layers numbered from 0 without a gap\)$/);
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, numLayers: 1 }, tiny), /config numLayers is 1 but the checkpoint holds 2 layers \(blocks\.0, blocks\.1\); expected numLayers 2$/);
    // a stray tensor past the config's layers is not a layer count to trust: checkTensors names it
    assert.throws(() => deserializeCheckpoint(checkpointBytes("gpt", GPT_PRESETS.tiny, { ...tiny, "blocks.9.x": new Tensor(new Float32Array(1), [1]) })), /tensors the model does not: blocks\.9\.x/);
    const ed = new EncoderDecoder("tiny").stateDict();
    refuses(checkpointBytes("encoder-decoder", { ...ENCODER_DECODER_PRESETS.tiny, numDecoderLayers: 100000 }, ed), /config numDecoderLayers is 100000 but the checkpoint holds 2 layers \(decoder\.layers\.0, decoder\.layers\.1\)/);
    refuses(checkpointBytes("encoder-decoder", { ...ENCODER_DECODER_PRESETS.tiny, tgtVocabSize: 33 }, ed), /config tgtVocabSize is 33 but tgt_emb\.weight has shape \[32, 32\]/);
  });

  test("a config that agrees on every size it can be checked on but describes a larger model than the file holds", () => {
    // width 2048 over a 64-token vocabulary, with a 1-wide MLP: two blocks of 4 x 2048² attention weights, none of them in the file
    const C = 2048;
    const tensors = {
      "tok_emb.weight": new Tensor(new Float32Array(64 * C), [64, C]),
      "pos_emb.weight": new Tensor(new Float32Array(64 * C), [64, C]),
      "blocks.0.mlp.fc1.weight": new Tensor(new Float32Array(C), [1, C]),
      "blocks.1.mlp.fc1.weight": new Tensor(new Float32Array(C), [1, C]),
    };
    // bound: embeddings 3 x 64C = 393216; per block attention 4C² + 4C = 16785408, two norms 4C = 8192, MLP 2C + 1 + C = 6145;
    // two blocks 33599490; final norm 2C = 4096: 33996802. Held: 2 x 64C + 2C = 266240 values.
    refuses(checkpointBytes("gpt", { ...GPT_PRESETS.tiny, dModel: C, dFF: 1 }, tensors), /the config describes a model of up to 33996802 parameters but the checkpoint holds 266240 values; expected a config that matches its tensors/);
  });

  test("parameterBound is at least every preset's (and variant's) parameter count, and at most twice it", () => {
    const count = (m: Model) => m.parameters().reduce((n, p) => n + p.size, 0);
    const gpts = [
      ...Object.keys(GPT_PRESETS).map((p) => gptConfig(p as keyof typeof GPT_PRESETS)),
      gptConfig("tiny", { tieWeights: true, positional: "sinusoidal" }), gptConfig("tiny", { bias: false, norm: "rmsnorm" }),
      gptConfig("tiny", { numHeads: 8, numKvHeads: 1, positional: "rope", bias: false, dFF: 8 }), gptConfig("tiny", { numLayers: 1, vocabSize: 3, dModel: 2, numHeads: 1, numKvHeads: 1, dFF: 1 }),
    ];
    for (const c of gpts) {
      const n = count(new GPT(c));
      const b = parameterBound("gpt", c);
      assert.ok(n <= b && b <= 2 * n, `${JSON.stringify(c)}: ${n} parameters, bound ${b}`);
      assert.equal(deserializeCheckpoint(serializeCheckpoint(new GPT(c))).model.parameters().length, new GPT(c).parameters().length);
    }
    const eds = [
      ...Object.keys(ENCODER_DECODER_PRESETS).map((p) => encoderDecoderConfig(p as keyof typeof ENCODER_DECODER_PRESETS)),
      encoderDecoderConfig("tiny", { positional: "learned", tieWeights: true, bias: false, numKvHeads: 1 }),
    ];
    for (const c of eds) {
      const n = count(new EncoderDecoder(c));
      const b = parameterBound("encoder-decoder", c);
      assert.ok(n <= b && b <= 2 * n, `${JSON.stringify(c)}: ${n} parameters, bound ${b}`);
      assert.equal(deserializeCheckpoint(serializeCheckpoint(new EncoderDecoder(c))).family, "encoder-decoder");
    }
  });
});
