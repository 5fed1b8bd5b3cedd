/**
 * Unknown option names are errors, never silently ignored: every public function and constructor
 * that takes an options object rejects a misspelt key (or PyTorch's snake_case spelling) with an
 * ArgumentError that names the function, the key and the option it most likely meant.
 * `scaledDotProductAttention(q, k, v, { isCasual: true })` used to compute full attention.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  AdamW, ArgumentError, Dropout, EncoderDecoder, Embedding, GPT, KVCache, LayerNorm, LearnedPositionalEmbedding, Linear, MLP,
  RMSNorm, RotaryEmbedding, SGD, SinusoidalPositionalEncoding, arange, attentionWeights, clipGradNorm, crossEntropy, dropout,
  full, generate, generateSeq2Seq, gptConfig, encoderDecoderConfig, inverseSqrtWarmup, lookupAttention, ones, rand, randint, randn,
  sampleToken, scaledDotProductAttention, scaledDotProductAttentionWithWeights, tensor, warmupCosine, zeros,
} from "../src/index.js";

/** Calls with a wrong key smuggled past the types, as plain JavaScript (or an `as` cast) would. */
const bad = (o: Record<string, unknown>): never => o as never;

const q = randn([1, 2, 3, 4], { seed: 1 });
const k = randn([1, 2, 5, 4], { seed: 2 });
const v = randn([1, 2, 5, 4], { seed: 3 });
const params = () => new Linear(2, 2).parameters();

/** [what is called, the call, the misspelt key, the option it should suggest] */
const CASES: [string, () => unknown, string, string][] = [
  ["scaledDotProductAttention", () => scaledDotProductAttention(q, k, v, bad({ isCasual: true })), "isCasual", "isCausal"],
  ["scaledDotProductAttention", () => scaledDotProductAttention(q, k, v, bad({ is_causal: true })), "is_causal", "isCausal"],
  ["scaledDotProductAttentionWithWeights", () => scaledDotProductAttentionWithWeights(q, k, v, bad({ dropout_p: 0 })), "dropout_p", "dropoutP"],
  ["attentionWeights", () => attentionWeights(q, k, bad({ attn_mask: null })), "attn_mask", "attnMask"],
  ["lookupAttention", () => lookupAttention(q, k, v, bad({ mach: "exact" })), "mach", "match"],
  ["tensor", () => tensor([1, 2], bad({ dtpye: "float64" })), "dtpye", "dtype"],
  ["tensor", () => tensor([1, 2], [2], bad({ requires_grad: true })), "requires_grad", "requiresGrad"],
  ["zeros", () => zeros([2], bad({ dtpye: "float64" })), "dtpye", "dtype"],
  ["ones", () => ones(2, 3, bad({ requires_grad: true })), "requires_grad", "requiresGrad"],
  ["full", () => full([2], 1, bad({ dtpye: "float64" })), "dtpye", "dtype"],
  ["arange", () => arange(3, undefined, 1, bad({ dtpye: "int32" })), "dtpye", "dtype"],
  ["randn", () => randn([2], bad({ sead: 1 })), "sead", "seed"],
  ["rand", () => rand(2, bad({ generater: undefined })), "generater", "generator"],
  ["randint", () => randint(0, 3, [2], bad({ sead: 1 })), "sead", "seed"],
  ["dropout", () => dropout(q, 0.5, bad({ trainning: false })), "trainning", "training"],
  ["crossEntropy", () => crossEntropy(randn([2, 3]), tensor([0, 1], { dtype: "int32" }), bad({ label_smoothing: 0.1 })), "label_smoothing", "labelSmoothing"],
  ["Linear", () => new Linear(2, 3, bad({ bais: false })), "bais", "bias"],
  ["Embedding", () => new Embedding(3, 2, bad({ sed: 1 })), "sed", "seed"],
  ["LayerNorm", () => new LayerNorm(4, bad({ elementwise_affine: false })), "elementwise_affine", "elementwiseAffine"],
  ["RMSNorm", () => new RMSNorm(4, bad({ esp: 1e-6 })), "esp", "eps"],
  ["Dropout", () => new Dropout(0.1, bad({ sead: 1 })), "sead", "seed"],
  ["MLP", () => new MLP(4, 8, bad({ activaton: "relu" })), "activaton", "activation"],
  ["SinusoidalPositionalEncoding", () => new SinusoidalPositionalEncoding(4, bad({ bse: 100 })), "bse", "base"],
  ["LearnedPositionalEmbedding", () => new LearnedPositionalEmbedding(8, 4, bad({ dtyp: "float64" })), "dtyp", "dtype"],
  ["RotaryEmbedding", () => new RotaryEmbedding(4, bad({ bas: 100 })), "bas", "base"],
  ["KVCache", () => new KVCache(bad({ initial_capacity: 4 })), "initial_capacity", "initialCapacity"],
  ["Linear.loadStateDict", () => { const m = new Linear(2, 2); m.loadStateDict(m.stateDict(), bad({ strikt: false })); }, "strikt", "strict"],
  ["SGD", () => new SGD(params(), bad({ lr: 0.1, momentun: 0.9 })), "momentun", "momentum"],
  ["SGD", () => new SGD([bad({ params: params(), weight_decay: 0.1 })], { lr: 0.1 }), "weight_decay", "weightDecay"],
  ["AdamW", () => new AdamW(params(), bad({ weight_decay: 0.1 })), "weight_decay", "weightDecay"],
  ["clipGradNorm", () => clipGradNorm(params(), 1, bad({ norm_type: 2 })), "norm_type", "normType"],
  ["warmupCosine", () => warmupCosine(bad({ warmupSteps: 1, totalSteps: 10, min_factor: 0.1 })), "min_factor", "minFactor"],
  ["inverseSqrtWarmup", () => inverseSqrtWarmup(bad({ dModel: 4, warmupSteps: 2, factr: 1 })), "factr", "factor"],
  ["sampleToken", () => sampleToken([1, 2], bad({ top_k: 1 })), "top_k", "topK"],
  ["generate", () => generate(new GPT("tiny"), [[1]], bad({ maxNewTokens: 1, temprature: 0.5 })), "temprature", "temperature"],
  ["generateSeq2Seq", () => generateSeq2Seq(new EncoderDecoder("tiny"), [[1]], bad({ maxNewTokens: 1, startToken: 0, use_cache: false })), "use_cache", "useCache"],
  ["GPT", () => new GPT("tiny", bad({ sed: 1 })), "sed", "seed"],
  ["GPT.forward", () => new GPT("tiny").forward([[1]], bad({ key_padding_mask: null })), "key_padding_mask", "keyPaddingMask"],
  ["EncoderDecoder", () => new EncoderDecoder("tiny", bad({ dtpye: "float64" })), "dtpye", "dtype"],
  ["EncoderDecoder.encode", () => new EncoderDecoder("tiny").encode([[1]], bad({ src_padding_mask: null })), "src_padding_mask", "srcPaddingMask"],
  ["EncoderDecoder.forward", () => new EncoderDecoder("tiny").forward([[1]], [[1]], bad({ tgt_padding_mask: null })), "tgt_padding_mask", "tgtPaddingMask"],
];

describe("a misspelt option is an ArgumentError naming the key and the likely meaning", () => {
  for (const [fn, call, key, suggestion] of CASES) {
    test(`${fn}: ${key} -> ${suggestion}`, () => {
      assert.throws(call, (e: unknown) => {
        assert.ok(e instanceof ArgumentError, `expected an ArgumentError, got ${String(e)}`);
        const msg = (e as Error).message;
        assert.ok(msg.startsWith(`${fn}: `), `"${msg}" does not start with "${fn}: "`);
        assert.ok(msg.includes(`unknown option "${key}"`), `"${msg}" does not name "${key}"`);
        assert.ok(msg.includes(`did you mean "${suggestion}"?`), `"${msg}" does not suggest "${suggestion}"`);
        return true;
      });
    });
  }
  test("a key with no near match lists the valid ones", () => {
    assert.throws(() => lookupAttention(q, k, v, bad({ banana: 1 })), /lookupAttention: unknown option "banana" in options; valid options: match, tolerance/);
  });
  test("model configs suggest too", () => {
    assert.throws(() => gptConfig("tiny", bad({ vocab_size: 10 })), /GPTConfig: unknown field "vocab_size"; did you mean "vocabSize"\?/);
    assert.throws(() => encoderDecoderConfig("tiny", bad({ numLayers: 2 })), /EncoderDecoderConfig: unknown field "numLayers"/);
  });
  test("valid spellings still work, and isCausal really applies", () => {
    const x = randn([1, 1, 3, 4], { seed: 4 }); // [N, H, L, E], self-attention on x
    const row0 = (t: typeof x): number[] => t.arraySync<number[][][][]>()[0][0][0];
    // causal: query 0 sees key 0 alone, so its weight is 1 and its output is value row 0
    const causal = row0(scaledDotProductAttention(x, x, x, { isCausal: true }));
    row0(x).forEach((want, e) => assert.ok(Math.abs(causal[e] - want) < 1e-6, `causal row 0 [${e}]: ${causal[e]} vs ${want}`));
    const full_ = row0(scaledDotProductAttention(x, x, x));
    assert.ok(full_.some((got, e) => Math.abs(got - row0(x)[e]) > 1e-3), "without isCausal query 0 mixes every value row");
  });
});
