/**
 * generateText with several prompts: one batch vs one prompt at a time, for each cache the batch can
 * run over (the padded batch of batch.ts; a PagedKVCache; a streaming window in a PagedKVCache).
 * A random Llama-shaped model (GQA, RoPE), 8 prompts of lengths 4..39, 24 greedy new tokens each,
 * no stop token; median of the runs in ms. Checks that both ways give the same tokens.
 *
 *   node --import tsx bench/batchText.ts [runs]
 */
import { PretrainedLM, archFromConfig, generateText, type GenerateTextOptions } from "../src/index.js";

const runs = Number(process.argv[2] ?? 3);
const arch = archFromConfig({
  model_type: "llama", vocab_size: 1000, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 4,
  num_attention_heads: 8, num_key_value_heads: 2, max_position_embeddings: 256,
});
const m = { model: new PretrainedLM(arch), tokenizer: null, config: {} };
const prompts = Array.from({ length: 8 }, (_, n) => Array.from({ length: 4 + 5 * n }, (_, i) => (i * 31 + n * 7) % 1000));
const base: GenerateTextOptions = { maxNewTokens: 24, stopToken: null };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function time(f: () => number[][]): { ms: number; tokens: number[][] } {
  const times: number[] = [];
  let tokens: number[][] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    tokens = f();
    times.push(performance.now() - t0);
  }
  return { ms: median(times), tokens };
}

console.log(`| cache | batched ms | one at a time ms | speed-up | same tokens |`);
console.log(`|---|---|---|---|---|`);
for (const [name, extra] of [["padded (plain cache)", {}], ["paged", { paged: {} }], ["window 16, sinks 4 (paged rings)", { window: 16, sinkTokens: 4 }]] as const) {
  const opts = { ...base, ...extra };
  generateText(m, prompts.slice(0, 2), opts); // warm up
  const batched = time(() => generateText(m, prompts, opts).map((r) => r.tokens));
  const alone = time(() => prompts.map((p) => generateText(m, p, opts).tokens));
  const same = JSON.stringify(batched.tokens) === JSON.stringify(alone.tokens);
  console.log(`| ${name} | ${batched.ms.toFixed(0)} | ${alone.ms.toFixed(0)} | ${(alone.ms / batched.ms).toFixed(2)}× | ${same ? "yes" : "NO"} |`);
}
