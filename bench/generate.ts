/**
 * Cached vs uncached generation: the KV cache's speed-up.
 *
 *   node --import tsx bench/generate.ts [--preset small] [--tokens 256] [--prompt 8] [--runs 3]
 *
 * Generates `tokens` new tokens greedily after a `prompt`-token prompt, once with the KV cache
 * (each step projects one token and attends over the cache: O(T) per step) and once re-running the
 * whole sequence every step (O(T²) per step with attention, O(T) for the projections), and prints
 * the median wall time of `runs` runs of each, ms per new token (prefill included), tokens/s, the
 * speed-up and the cache's size.
 * Both runs must produce the same tokens (greedy decoding; the logits agree to float32 rounding).
 */
import { GPT, type GPTPresetName, GPT_PRESETS, generate } from "../src/models/index.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const preset = arg("preset", "small") as GPTPresetName;
if (!(preset in GPT_PRESETS)) throw new Error(`bench/generate.ts: unknown preset ${preset} (presets: ${Object.keys(GPT_PRESETS).join(", ")})`);
const tokens = Number(arg("tokens", "256"));
const promptLength = Number(arg("prompt", "8"));
const runs = Number(arg("runs", "3"));

const model = new GPT(preset, { seed: 0 });
const c = model.config;
const prompt = [Array.from({ length: promptLength }, (_, i) => (i * 7 + 3) % c.vocabSize)];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function time(useCache: boolean): { ms: number; out: number[] } {
  const t0 = performance.now();
  const out = generate(model, prompt, { maxNewTokens: tokens, greedy: true, useCache })[0];
  return { ms: performance.now() - t0, out };
}

console.log(`preset ${preset}: ${model.numParameters()} parameters, dModel ${c.dModel}, ${c.numLayers} layers, ${c.numHeads} heads (${c.numKvHeads} kv), vocab ${c.vocabSize}`);
console.log(`prompt ${promptLength} tokens, ${tokens} new tokens, greedy, median of ${runs} runs, node ${process.version}`);
time(true); // warm up the JIT
const cached: number[] = [];
const uncached: number[] = [];
let reference: number[] | null = null;
for (let r = 0; r < runs; r++) {
  for (const useCache of [true, false]) {
    const { ms, out } = time(useCache);
    (useCache ? cached : uncached).push(ms);
    if (reference === null) reference = out;
    else if (out.join() !== reference.join()) throw new Error("bench/generate.ts: cached and uncached generation produced different tokens");
    console.log(`  run ${r + 1} ${useCache ? "cached  " : "uncached"} ${ms.toFixed(0)} ms`);
  }
}
const mc = median(cached);
const mu = median(uncached);
const cache = model.newCache();
model.forward(prompt, { cache });
const perToken = cache.bytesPerToken();
console.log("");
console.log("| mode | median ms | ms/token | tokens/s |");
console.log("|---|---:|---:|---:|");
console.log(`| cached | ${mc.toFixed(0)} | ${(mc / tokens).toFixed(2)} | ${((tokens * 1000) / mc).toFixed(1)} |`);
console.log(`| uncached | ${mu.toFixed(0)} | ${(mu / tokens).toFixed(2)} | ${((tokens * 1000) / mu).toFixed(1)} |`);
console.log("");
console.log(`speed-up (uncached / cached): ${(mu / mc).toFixed(1)}x`);
console.log(`KV cache: ${perToken} bytes per token (${c.numLayers} layers × 2 × ${c.numKvHeads} kv heads × ${c.dModel / c.numHeads} dims × 4 bytes), ${((perToken * (promptLength + tokens)) / 1024).toFixed(0)} KiB at ${promptLength + tokens} tokens`);
