/**
 * Training speed of GPT("small") beside its PyTorch twin:
 *
 *   node --import tsx bench/training.ts [--threads 2] [--quick] [--no-torch] [--runs 1]
 *
 * Times the step of bench/trainingStep.ts (forward + cross-entropy + backward + AdamW, batch 8 × 128,
 * the same function bench/main.ts reports), prints tokens/s as the median over steps, then the
 * PyTorch twin (bench/torch_twin.py, same config, same thread count, in a child /usr/bin/python3)
 * and the ratio; "skipped" when python or torch is missing. --runs N repeats both N times,
 * alternating, and reports each run and the median of the runs (for a busy, shared machine).
 */
import os from "node:os";
import { median } from "./peers/common.js";
import { type TwinSpeed, torchTwinThroughput, trainingThroughput } from "./trainingStep.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

const threads = Number(arg("threads") ?? 2);
const quick = process.argv.includes("--quick");
const withTorch = !process.argv.includes("--no-torch");
const runs = Number(arg("runs") ?? 1);

console.log(`GPT("small") training step, batch 8 × 128, ${threads} threads, Node ${process.version}, load average ${os.loadavg()[0].toFixed(2)}`);
const ours: number[] = [];
const theirs: number[] = [];
let skipped = "";
for (let r = 0; r < runs; r++) {
  const t = trainingThroughput(threads, quick);
  ours.push(t.tokensPerSecond);
  console.log(`attend:  ${t.tokensPerSecond.toFixed(0)} tokens/s (median ${t.msPerStep.toFixed(0)} ms per step over ${t.reps} steps, CPU ${t.cpuMsPerStep.toFixed(0)} ms; ${t.params} parameters)`);
  if (!withTorch) continue;
  const tw = torchTwinThroughput(threads, quick);
  if ("skipped" in tw) {
    skipped = tw.skipped;
    console.log(`PyTorch: skipped (${tw.skipped})`);
    continue;
  }
  const twin: TwinSpeed = tw;
  theirs.push(twin.tokensPerSecond);
  console.log(`PyTorch: ${twin.tokensPerSecond.toFixed(0)} tokens/s (median ${twin.msPerStep.toFixed(0)} ms per step over ${twin.reps} steps, CPU ${twin.cpuMsPerStep.toFixed(0)} ms; ${twin.params} parameters; torch ${twin.torch}, ${twin.threads} threads, matmul 1024³ ${twin.matmulGflops.toFixed(1)} GFLOP/s)`);
  console.log(`ratio attend / PyTorch: ${(t.tokensPerSecond / twin.tokensPerSecond).toFixed(3)}`);
}
if (runs > 1) {
  const a = median(ours);
  console.log(`median of ${runs} runs: attend ${a.toFixed(0)} tokens/s` + (theirs.length ? `, PyTorch ${median(theirs).toFixed(0)} tokens/s, ratio ${(a / median(theirs)).toFixed(3)}` : skipped ? ` (PyTorch skipped: ${skipped})` : ""));
}
console.log(`load average at the end ${os.loadavg()[0].toFixed(2)}`);
