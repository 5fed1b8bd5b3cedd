/**
 * GELU and layerNorm at the sizes a transformer step runs them (tokens × 4C and tokens × C), float32,
 * forward alone and forward + backward, on each backend:
 *
 *   node --import tsx bench/activations.ts [--threads 1] [--tokens 512] [--C 768] [--backends wasm,ref]
 *
 * Prints the median ms over calls (timeCalls: a 2 s budget, 5 to 30 calls).
 */
import os from "node:os";
import { Tensor, gelu, layerNorm, noGrad, randn, setBackend, setNumThreads } from "../src/index.js";
import { timeCalls } from "./peers/common.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const threads = Number(arg("threads", "1"));
const T = Number(arg("tokens", "512"));
const C = Number(arg("C", "768"));
const backends = arg("backends", "wasm,ref").split(",");
setNumThreads(threads);

function time(f: () => void): number {
  return timeCalls(f, 2000, 30).ms;
}

console.log(`GELU [${T}, ${4 * C}] and layerNorm [${T}, ${C}], float32, ${threads} thread(s), Node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`);
console.log("| backend | op | forward ms | forward + backward ms |");
console.log("| --- | --- | ---: | ---: |");
for (const backend of backends) {
  setBackend(backend);
  const x = randn([T, 4 * C], { seed: 1 });
  const g = randn([T, 4 * C], { seed: 2 });
  for (const approximate of ["none", "tanh"] as const) {
    const fwd = time(() => noGrad(() => gelu(x, approximate)));
    const both = time(() => {
      const xl = new Tensor(x.values, x.shape, x.dtype).requiresGrad_();
      gelu(xl, approximate).backward(g);
    });
    console.log(`| ${backend} | gelu ${approximate} | ${fwd.toFixed(2)} | ${both.toFixed(2)} |`);
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
  console.log(`| ${backend} | layerNorm | ${fwd.toFixed(2)} | ${both.toFixed(2)} |`);
}
