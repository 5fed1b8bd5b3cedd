/**
 * fromPretrained on tiny Hugging Face-layout checkpoints (test/fixtures/make_hf_fixtures.py): the
 * logits equal the PyTorch twin's (GPT-2 F32, Llama GQA F16, Llama BF16 tied, Qwen2 with q/k/v biases,
 * Mistral with a sliding window in two shards), cached decoding equals recomputation, and broken
 * folders fail with errors naming what is wrong.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Tensor, archFromConfig, deserializeSafetensors, fromPretrained, fromPretrainedFiles, generate, noGrad, serializeSafetensors } from "../src/index.js";

const HF = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "hf");
const VARIANTS = ["gpt2", "llama", "llama-bf16", "qwen2", "mistral"];

interface Expected {
  ids: number[][];
  shape: number[];
  logits: number[];
  /** each layer's attention weights [B, H, T, T], flattened */
  attention: number[][];
}

const expected = (name: string): Expected => JSON.parse(readFileSync(join(HF, name, "expected.json"), "utf8")) as Expected;

/** The folder's files as fromPretrainedFiles takes them (JSON as text, the rest as bytes). */
function filesOf(name: string): Map<string, Uint8Array | string> {
  const m = new Map<string, Uint8Array | string>();
  for (const f of readdirSync(join(HF, name))) {
    if (f === "expected.json") continue;
    const p = join(HF, name, f);
    m.set(f, f.endsWith(".json") ? readFileSync(p, "utf8") : new Uint8Array(readFileSync(p)));
  }
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function rows(t: Tensor, r: number): Float32Array | Float64Array {
  const [, T, V] = t.shape;
  return t.values.subarray(r * T * V, (r + 1) * T * V) as Float32Array;
}

describe("fromPretrained: logits equal the PyTorch twin's", () => {
  for (const name of VARIANTS) {
    test(name, () => {
      const e = expected(name);
      const { model, config } = fromPretrained(join(HF, name));
      assert.equal(config.model_type, name === "llama-bf16" ? "llama" : name);
      const logits = noGrad(() => model.forward(e.ids));
      assert.deepEqual(logits.shape, e.shape);
      const d = maxDiff(logits.values, e.logits);
      assert.ok(d < 1e-4, `${name}: max |logits - twin| = ${d}`);
    });
  }

  test("GPT-2 with the transformer. prefix and without the attn.bias buffers (as older save_pretrained wrote it)", () => {
    const files = filesOf("gpt2");
    const { tensors } = deserializeSafetensors(files.get("model.safetensors") as Uint8Array);
    const renamed: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(tensors)) if (!/\.attn\.(bias|masked_bias)$/.test(k)) renamed[`transformer.${k}`] = t;
    files.set("model.safetensors", serializeSafetensors(renamed));
    const e = expected("gpt2");
    const logits = noGrad(() => fromPretrainedFiles(files).model.forward(e.ids));
    assert.ok(maxDiff(logits.values, e.logits) < 1e-4);
  });

  test("Llama keys without the model. prefix (a base model's save) and with old rotary_emb.inv_freq buffers", () => {
    const files = filesOf("llama-bf16"); // tied head: the base model's tensors are all it needs
    const { tensors } = deserializeSafetensors(files.get("model.safetensors") as Uint8Array);
    const renamed: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(tensors)) renamed[k.replace(/^model\./, "")] = t;
    renamed["layers.0.self_attn.rotary_emb.inv_freq"] = new Tensor(new Float32Array(8), [8]);
    files.set("model.safetensors", serializeSafetensors(renamed));
    const e = expected("llama-bf16");
    assert.ok(maxDiff(noGrad(() => fromPretrainedFiles(files).model.forward(e.ids)).values, e.logits) < 1e-4);
  });

  test("the ids may be an int32 tensor [B, T]", () => {
    const e = expected("qwen2");
    const { model } = fromPretrained(join(HF, "qwen2"));
    const ids = new Tensor(Int32Array.from(e.ids.flat()), [e.ids.length, e.ids[0].length], "int32");
    assert.ok(maxDiff(noGrad(() => model.forward(ids)).values, e.logits) < 1e-4);
  });
});

describe("fromPretrained: attention weights", () => {
  for (const name of ["gpt2", "llama", "mistral"]) {
    test(`${name}: forwardWithAttention gives each layer's weights as the twin's softmax`, () => {
      const e = expected(name);
      const { model } = fromPretrained(join(HF, name));
      const { logits, attention } = noGrad(() => model.forwardWithAttention(e.ids));
      assert.ok(maxDiff(logits.values, e.logits) < 1e-4);
      assert.equal(attention.length, e.attention.length);
      attention.forEach((a, i) => {
        assert.deepEqual(a.weights.shape, [2, 4, 10, 10]);
        assert.equal(a.name, name === "gpt2" ? `transformer.h.${i}.attn` : `model.layers.${i}.self_attn`);
        assert.ok(maxDiff(a.weights.values, e.attention[i]) < 1e-5, `${name} layer ${i}`);
      });
    });
  }
});

describe("fromPretrained: decoding with the KV cache", () => {
  for (const name of ["gpt2", "llama", "mistral"]) {
    test(`${name}: token-by-token logits with the cache equal the twin's full-sequence logits`, () => {
      const e = expected(name);
      const { model } = fromPretrained(join(HF, name));
      const [B, T, V] = e.shape;
      const cache = model.newCache();
      noGrad(() => {
        const pre = 4; // prefill 4 tokens, then one at a time (past Mistral's window of 3)
        const first = model.forward(e.ids.map((r) => r.slice(0, pre)), { cache });
        for (let b = 0; b < B; b++) assert.ok(maxDiff(rows(first, b), e.logits.slice(b * T * V, (b * T + pre) * V)) < 1e-4);
        for (let t = pre; t < T; t++) {
          const step = model.forward(e.ids.map((r) => [r[t]]), { cache });
          for (let b = 0; b < B; b++) assert.ok(maxDiff(rows(step, b), e.logits.slice((b * T + t) * V, (b * T + t + 1) * V)) < 1e-4, `${name} position ${t}`);
        }
      });
    });
  }

  test("generate with the cache gives the same tokens as recomputing every step", () => {
    for (const name of ["llama", "mistral", "gpt2"]) {
      const { model } = fromPretrained(join(HF, name));
      const prompt = expected(name).ids.map((r) => r.slice(0, 3));
      const cached = generate(model, prompt, { maxNewTokens: 8 });
      const full = generate(model, prompt, { maxNewTokens: 8, useCache: false });
      assert.deepEqual(cached, full, name);
      assert.equal(cached[0].length, 11);
    }
  });
});

describe("fromPretrained: broken folders", () => {
  const config = (name: string, edit: (c: Record<string, unknown>) => void): Map<string, Uint8Array | string> => {
    const files = filesOf(name);
    const c = JSON.parse(files.get("config.json") as string) as Record<string, unknown>;
    edit(c);
    files.set("config.json", JSON.stringify(c));
    return files;
  };
  const dropTensor = (name: string, key: string): Map<string, Uint8Array | string> => {
    const files = filesOf(name);
    const { tensors } = deserializeSafetensors(files.get("model.safetensors") as Uint8Array);
    delete tensors[key];
    files.set("model.safetensors", serializeSafetensors(tensors));
    return files;
  };

  test("a missing tensor is named", () => {
    assert.throws(() => fromPretrainedFiles(dropTensor("llama", "model.layers.1.mlp.up_proj.weight")), /missing 1 tensor\(s\).*model\.layers\.1\.mlp\.up_proj\.weight/);
  });
  test("an untied config without lm_head.weight says so", () => {
    assert.throws(() => fromPretrainedFiles(config("qwen2", (c) => (c.tie_word_embeddings = false))), /missing .*lm_head\.weight.*tie_word_embeddings/);
  });
  test("a stored lm_head.weight equal to the tied embedding is accepted; a different one is refused", () => {
    const withHead = (scale: number): Map<string, Uint8Array | string> => {
      const files = filesOf("qwen2");
      const { tensors } = deserializeSafetensors(files.get("model.safetensors") as Uint8Array);
      const e = tensors["model.embed_tokens.weight"];
      tensors["lm_head.weight"] = new Tensor(Float32Array.from(e.values, (v) => v * scale), e.shape);
      files.set("model.safetensors", serializeSafetensors(tensors));
      return files;
    };
    const e = expected("qwen2");
    assert.ok(maxDiff(noGrad(() => fromPretrainedFiles(withHead(1)).model.forward(e.ids)).values, e.logits) < 1e-4);
    assert.throws(() => fromPretrainedFiles(withHead(2)), /its own lm_head\.weight but config\.json says tie_word_embeddings/);
  });
  test("an unexpected tensor is named", () => {
    assert.throws(() => fromPretrainedFiles(config("llama", (c) => (c.num_hidden_layers = 1))), /does not have: model\.layers\.1\./);
  });
  test("a wrong shape names the tensor, its shape and the one expected", () => {
    assert.throws(() => fromPretrainedFiles(config("llama", (c) => (c.intermediate_size = 48))), /tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[64, 64\], expected \[48, 64\]/);
    assert.throws(() => fromPretrainedFiles(config("gpt2", (c) => (c.n_inner = 32))), /h\.0\.mlp\.c_fc\.weight has shape \[64, 64\], expected \[64, 32\] \(Conv1D/);
    assert.throws(() => fromPretrainedFiles(config("llama", (c) => (c.num_key_value_heads = 4))), /k_proj\.weight has shape \[32, 64\], expected \[64, 64\]/);
  });
  test("an unknown model_type or an unsupported option is refused", () => {
    assert.throws(() => fromPretrainedFiles(config("llama", (c) => (c.model_type = "bert"))), /model_type "bert" is not supported; supported: gpt2, llama, mistral, qwen2/);
    assert.throws(() => fromPretrainedFiles(config("llama", (c) => (c.rope_scaling = { rope_type: "linear", factor: 2 }))), /rope_scaling\.rope_type = "linear" is not supported/);
    assert.throws(() => fromPretrainedFiles(config("llama", (c) => (c.hidden_act = "gelu"))), /hidden_act = "gelu" is not supported/);
    assert.throws(() => fromPretrainedFiles(config("gpt2", (c) => (c.activation_function = "relu"))), /activation_function = "relu" is not supported/);
  });
  test("a missing shard, a missing config and a shard path outside the folder are refused", () => {
    const files = filesOf("mistral");
    files.delete("model-00002-of-00002.safetensors");
    assert.throws(() => fromPretrainedFiles(files), /shard model-00002-of-00002\.safetensors .* is missing/);
    const noConfig = filesOf("gpt2");
    noConfig.delete("config.json");
    assert.throws(() => fromPretrainedFiles(noConfig), /no config\.json/);
    const evil = filesOf("mistral");
    const index = JSON.parse(evil.get("model.safetensors.index.json") as string) as { weight_map: Record<string, string> };
    index.weight_map["model.norm.weight"] = "../../etc/passwd";
    evil.set("model.safetensors.index.json", JSON.stringify(index));
    assert.throws(() => fromPretrainedFiles(evil), /shards must be plain file names/);
    assert.throws(() => fromPretrained(join(HF, "no-such-model")), /dir must be a folder/);
  });
  test("Qwen2's window applies only with use_sliding_window (the fixture's window 2 is off; on, the logits change)", () => {
    const e = expected("qwen2");
    const on = fromPretrainedFiles(config("qwen2", (c) => (c.use_sliding_window = true)));
    assert.deepEqual(on.model.config.slidingWindows, [null, 2]); // max_window_layers = 1
    assert.ok(maxDiff(noGrad(() => on.model.forward(e.ids)).values, e.logits) > 1e-3);
  });
});

describe("archFromConfig: transformers' defaults for absent keys", () => {
  // LlamaConfig(), MistralConfig(), Qwen2Config(), GPT2Config() as transformers documents them
  test("llama", () => {
    const a = archFromConfig({ model_type: "llama" });
    assert.deepEqual([a.vocabSize, a.dModel, a.dFF, a.numLayers, a.numHeads, a.numKvHeads, a.headDim, a.maxSeqLen], [32000, 4096, 11008, 32, 32, 32, 128, 2048]);
    assert.deepEqual([a.normEps, a.ropeTheta, a.tieWordEmbeddings, a.qkvBias, a.oBias], [1e-6, 10000, false, false, false]);
    assert.ok(a.slidingWindows.every((w) => w === null));
    assert.equal(archFromConfig({ model_type: "llama", num_key_value_heads: null, num_attention_heads: 8, hidden_size: 64 }).numKvHeads, 8);
  });
  test("mistral: window 4096 unless sliding_window is null", () => {
    const a = archFromConfig({ model_type: "mistral" });
    assert.deepEqual([a.vocabSize, a.dFF, a.numKvHeads, a.maxSeqLen], [32000, 14336, 8, 131072]);
    assert.ok(a.slidingWindows.every((w) => w === 4096));
    assert.ok(archFromConfig({ model_type: "mistral", sliding_window: null }).slidingWindows.every((w) => w === null));
  });
  test("qwen2: biases on q/k/v only; the window only with use_sliding_window, from max_window_layers or layer_types", () => {
    const a = archFromConfig({ model_type: "qwen2" });
    assert.deepEqual([a.vocabSize, a.dFF, a.numKvHeads, a.maxSeqLen, a.qkvBias, a.oBias], [151936, 22016, 32, 32768, true, false]);
    assert.ok(a.slidingWindows.every((w) => w === null));
    const on = archFromConfig({ model_type: "qwen2", use_sliding_window: true, num_hidden_layers: 30 });
    assert.deepEqual(on.slidingWindows.slice(26), [null, null, 4096, 4096]);
    const typed = archFromConfig({ model_type: "qwen2", use_sliding_window: true, sliding_window: 8, num_hidden_layers: 2, layer_types: ["sliding_attention", "full_attention"] });
    assert.deepEqual(typed.slidingWindows, [8, null]);
  });
  test("gpt2", () => {
    const a = archFromConfig({ model_type: "gpt2" });
    assert.deepEqual([a.vocabSize, a.dModel, a.dFF, a.numLayers, a.numHeads, a.maxSeqLen, a.normEps, a.tieWordEmbeddings], [50257, 768, 3072, 12, 12, 1024, 1e-5, true]);
  });
});

describe("fromPretrained: tokenizer.json", () => {
  test("a WordLevel tokenizer.json encodes and decodes (hand-worked ids) through @huggingface/tokenizers", () => {
    const files = filesOf("gpt2");
    files.set("tokenizer.json", JSON.stringify({
      version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null,
      pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null,
      model: { type: "WordLevel", vocab: { "[UNK]": 0, hello: 1, world: 2, attention: 3 }, unk_token: "[UNK]" },
    }));
    const { tokenizer } = fromPretrainedFiles(files);
    assert.ok(tokenizer);
    const ids = tokenizer.encode("hello attention world").ids;
    assert.deepEqual(ids, [1, 3, 2]);
    assert.equal(tokenizer.decode(ids), "hello attention world");
    assert.equal(fromPretrained(join(HF, "gpt2")).tokenizer, null);
  });
});
