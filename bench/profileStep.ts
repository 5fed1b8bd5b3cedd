/**
 * A fixed number of training steps of GPT("small") (the step of bench/trainingStep.ts), for
 * `node --cpu-prof --import tsx bench/profileStep.ts [--threads 1] [--steps 10] [--warm 1]`: the
 * profile then holds little besides the steps (after the warm-up ones); prints CPU ms per step.
 * tsx maps every position to line 1; for line numbers, profile the `tsc` output instead. A sampling
 * heap profile of the steps after warm-up (HeapProfiler.startSampling with
 * includeObjectsCollectedByMinorGC) is how the heap numbers boxed by late-optimised backward closures
 * were found (the top-level `*BackwardRows` loops in src/ops).
 */
import { smallTrainingStep } from "./trainingStep.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

const steps = Number(arg("steps") ?? 10);
const { step: trainStep } = smallTrainingStep(Number(arg("threads") ?? 1));
let loss = 0;
const step = (): void => { loss = trainStep(); };
for (let w = 0; w < Number(arg("warm") ?? 1); w++) step();
const c0 = process.cpuUsage();
const t0 = performance.now();
for (let s = 0; s < steps; s++) step();
const c = process.cpuUsage(c0);
console.log(`${steps} steps: ${((performance.now() - t0) / steps).toFixed(0)} ms wall, ${((c.user + c.system) / 1000 / steps).toFixed(0)} ms CPU per step; loss ${loss.toFixed(4)}`);
