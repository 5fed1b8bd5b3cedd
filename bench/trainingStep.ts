/**
 * The training step both bench/main.ts (its extras) and bench/training.ts time: GPT("small"),
 * batch 8 × 128 random tokens, forward + cross-entropy + backward + AdamW, and its PyTorch twin
 * (bench/torch_twin.py, the same model and step) run in a child python process.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdamW, GPT, Tensor, crossEntropy, randint, reshape, setBackend, setNumThreads } from "../src/index.js";
import { median, timeCalls } from "./peers/common.js";

const HERE = dirname(fileURLToPath(import.meta.url));
export const PYTHON = "/usr/bin/python3";

export interface TrainingSpeed {
  tokensPerSecond: number;
  msPerStep: number;
  /** median CPU time of the process per step (all threads): steadier than wall time on a shared machine */
  cpuMsPerStep: number;
  reps: number;
  batch: number;
  T: number;
  params: number;
}

/** One training step of the `small` GPT preset (forward, cross-entropy, backward, AdamW) on fixed random tokens. */
export function smallTrainingStep(threads: number): { step: () => number; model: GPT; batch: number; T: number } {
  setBackend("wasm");
  setNumThreads(threads);
  const model = new GPT("small", { seed: 0 });
  const opt = new AdamW(model.parameters(), { lr: 3e-4 });
  const batch = 8, T = 128;
  const idx = randint(0, model.config.vocabSize, [batch, T + 1], { seed: 5 });
  const data = idx.dataSync();
  const inp = new Tensor(Int32Array.from({ length: batch * T }, (_, i) => data[Math.floor(i / T) * (T + 1) + (i % T)]), [batch, T], "int32");
  const tgt = new Tensor(Int32Array.from({ length: batch * T }, (_, i) => data[Math.floor(i / T) * (T + 1) + (i % T) + 1]), [batch * T], "int32");
  const step = (): number => {
    opt.zeroGrad();
    const logits = model.forward(inp); // [batch, T, V]
    const loss = crossEntropy(reshape(logits, [batch * T, model.config.vocabSize]), tgt); // [batch, T, V] -> [batch·T, V]
    loss.backward();
    opt.step();
    return loss.values[0];
  };
  return { step, model, batch, T };
}

/** Steps of the `small` GPT preset (smallTrainingStep), timed. */
export function trainingThroughput(threads: number, quick: boolean): TrainingSpeed {
  const { step, model, batch, T } = smallTrainingStep(threads);
  const cpu: number[] = [];
  const measured = (): void => {
    const c0 = process.cpuUsage();
    step();
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  };
  const { ms, reps } = timeCalls(measured, quick ? 3000 : 10_000, quick ? 5 : 20);
  let params = 0;
  for (const p of model.parameters()) params += p.size;
  const cpuMsPerStep = median(cpu.length > reps ? cpu.slice(1) : cpu); // without the warm-up call
  return { tokensPerSecond: (batch * T) / (ms * 1e-3), msPerStep: ms, cpuMsPerStep, reps, batch, T, params };
}

export interface TwinSpeed extends TrainingSpeed { torch: string; threads: number; matmulGflops: number }

/**
 * The PyTorch twin's throughput, or why it was skipped (no /usr/bin/python3, no torch, or it
 * failed). Runs in a child process with the same thread count and timing budget.
 */
export function torchTwinThroughput(threads: number, quick: boolean): TwinSpeed | { skipped: string } {
  if (!existsSync(PYTHON)) return { skipped: `no ${PYTHON}` };
  const probe = spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" });
  if (probe.status !== 0) return { skipped: `${PYTHON} has no torch` };
  const args = [join(HERE, "torch_twin.py"), "--threads", String(threads), "--budget-ms", String(quick ? 3000 : 10_000), "--max-reps", String(quick ? 5 : 20)];
  const r = spawnSync(PYTHON, args, { encoding: "utf8", timeout: 15 * 60_000 });
  const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !line.startsWith("{")) {
    return { skipped: `torch twin failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split("\n").pop()}` };
  }
  return { batch: 8, T: 128, ...(JSON.parse(line) as Omit<TwinSpeed, "batch" | "T">) };
}
