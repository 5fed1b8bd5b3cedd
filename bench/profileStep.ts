/**
 * A fixed number of training steps of GPT("small") (the step of bench/trainingStep.ts), for
 * `node --cpu-prof --import tsx bench/profileStep.ts [--threads 1] [--steps 10] [--warm 1]`: the
 * profile then holds little besides the steps (after the warm-up ones); prints CPU ms per step.
 * tsx maps every position to line 1; for line numbers, profile the `tsc` output instead. A sampling
 * heap profile of the steps after warm-up (HeapProfiler.startSampling with
 * includeObjectsCollectedByMinorGC) is how the heap numbers boxed by late-optimised backward closures
 * were found (the top-level `*BackwardRows` loops in src/ops).
 *
 * `--profile FILE` profiles the calling thread through node:inspector from the first step after the
 * warm-up to the last (no start-up, no warm-up in it), writes FILE (.cpuprofile, for Chrome DevTools)
 * and prints the functions with the most self time per step, `--top N` of them (20). Sampled time is
 * wall time of this thread: on a loaded machine it includes time the thread waited for a core, spread
 * over whatever ran. "runJob" is the wait for the pool's workers; wasm-function[i] are the kernels
 * (their names: build assembly/ with `asc ... -t out.wat`, function i is the i-th `(func` there).
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { smallTrainingStep } from "./trainingStep.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** Self time per function (name and file), in ms per step, most first. */
function selfTimes(p: Profile, steps: number): [string, number][] {
  const us = new Map<number, number>(); // node id -> sampled microseconds
  p.samples.forEach((id, i) => us.set(id, (us.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const byName = new Map<string, number>();
  for (const n of p.nodes) {
    const file = n.callFrame.url.split("/").slice(-2).join("/");
    const key = `${n.callFrame.functionName || "(anonymous)"}${file ? ` ${file}` : ""}`;
    byName.set(key, (byName.get(key) ?? 0) + (us.get(n.id) ?? 0) / 1000 / steps);
  }
  return [...byName].sort((a, b) => b[1] - a[1]);
}

const steps = Number(arg("steps") ?? 10);
const profileFile = arg("profile");
const { step: trainStep } = smallTrainingStep(Number(arg("threads") ?? 1));
let loss = 0;
const step = (): void => { loss = trainStep(); };
for (let w = 0; w < Number(arg("warm") ?? 1); w++) step();
const session = profileFile === undefined ? null : new Session();
// an in-thread session answers each post synchronously
const post = (method: string, params: object = {}): unknown => {
  let out: unknown;
  session!.post(method, params, (err, res) => { if (err) throw err; out = res; });
  return out;
};
if (session !== null) {
  session.connect();
  post("Profiler.enable");
  post("Profiler.setSamplingInterval", { interval: 200 }); // µs
  post("Profiler.start");
}
const c0 = process.cpuUsage();
const t0 = performance.now();
for (let s = 0; s < steps; s++) step();
const c = process.cpuUsage(c0);
const wall = (performance.now() - t0) / steps;
console.log(`${steps} steps: ${wall.toFixed(0)} ms wall, ${((c.user + c.system) / 1000 / steps).toFixed(0)} ms CPU per step; loss ${loss.toFixed(4)}`);
if (session !== null) {
  const { profile } = post("Profiler.stop") as { profile: Profile };
  session.disconnect();
  writeFileSync(profileFile!, JSON.stringify(profile));
  const top = selfTimes(profile, steps).slice(0, Number(arg("top") ?? 20));
  console.log(`self time per step, this thread (${profileFile}):`);
  for (const [name, ms] of top) console.log(`${ms.toFixed(1).padStart(8)} ms ${((100 * ms) / wall).toFixed(1).padStart(5)}%  ${name}`);
}
