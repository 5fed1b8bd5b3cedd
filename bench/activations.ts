/**
 * GELU and layerNorm at the sizes a transformer step runs them (tokens × 4C and tokens × C), float32,
 * forward alone and forward + backward, on each backend:
 *
 *   node --import tsx bench/activations.ts [--threads 1] [--tokens 512] [--C 768] [--backends wasm,ref]
 *
 * Prints the median ms of 15 calls per backend, the backends taking turns call by call.
 */
import os from "node:os";
import { Tensor, gelu, layerNorm, noGrad, randn, setBackend, setNumThreads } from "../src/index.js";
import { median } from "./peers/common.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const threads = Number(arg("threads", "1"));
const T = Number(arg("tokens", "512"));
const C = Number(arg("C", "768"));
const backends = arg("backends", "wasm,ref").split(",");
setNumThreads(threads);

/** Median ms of each backend's calls, the backends taking turns call by call (fair on a busy machine). */
function time(f: () => void, rounds = 15): Record<string, number> {
  const ms: Record<string, number[]> = {};
  for (const b of backends) { setBackend(b); f(); ms[b] = []; } // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const b of backends) {
      setBackend(b);
      const t0 = performance.now();
      f();
      ms[b].push(performance.now() - t0);
    }
  }
  return Object.fromEntries(backends.map((b) => [b, median(ms[b])]));
}

console.log(`GELU [${T}, ${4 * C}] and layerNorm [${T}, ${C}], float32, ${threads} thread(s), Node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`);
console.log("| op | " + backends.map((b) => `${b} forward ms | ${b} forward + backward ms`).join(" | ") + " |");
console.log("| --- | " + backends.map(() => "---: | ---:").join(" | ") + " |");
const x = randn([T, 4 * C], { seed: 1 });
const g = randn([T, 4 * C], { seed: 2 });
for (const approximate of ["none", "tanh"] as const) {
  const fwd = time(() => noGrad(() => gelu(x, approximate)));
  const both = time(() => {
    const xl = new Tensor(x.values, x.shape, x.dtype).requiresGrad_();
    gelu(xl, approximate).backward(g);
  });
  console.log(`| gelu ${approximate} | ` + backends.map((b) => `${fwd[b].toFixed(2)} | ${both[b].toFixed(2)}`).join(" | ") + " |");
}
const h = randn([T, C], { seed: 3 });
const gh = randn([T, C], { seed: 4 });
const w = randn([C], { seed: 5 }), b = randn([C], { seed: 6 });
const fwd = time(() => noGrad(() => layerNorm(h, [C], w, b)));
const both = time(() => {
  const hl = new Tensor(h.values, h.shape, h.dtype).requiresGrad_();
  const wl = new Tensor(w.values, w.shape, w.dtype).requiresGrad_();
  const bl = new Tensor(b.values, b.shape, b.dtype).requiresGrad_();
  layerNorm(hl, [C], wl, bl).backward(gh);
});
console.log(`| layerNorm | ` + backends.map((be) => `${fwd[be].toFixed(2)} | ${both[be].toFixed(2)}`).join(" | ") + " |");
