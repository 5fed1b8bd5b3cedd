/**
 * Lesson 9's training worker: it holds the run and does all the work (see protocol.ts), so the
 * page's thread only draws. Here, unlike on a page's main thread, a kernel call may block in
 * Atomics.wait, so the library's wasm kernels run on its thread pool (the page is cross-origin
 * isolated, so memory can be shared): as many threads as the machine has cores, less one, which is
 * left to the page's thread (and the browser's) so that drawing never waits for a core; on a
 * two-core machine the kernels then run on this thread alone (measured on one: the page's longest
 * task while training a gpt fell, and the steps per second did not, see bench/page.ts).
 *
 * Training runs one step per task and yields between steps, so the page's messages (pause, new
 * settings, an input to probe) are answered after the step in progress at the latest.
 */
import { data, evaluateModel, getNumThreads, setNumThreads, wasmRuntimeInfo } from "attend";
import { type TensorInfo, checkpointBytes, lossHistory, readCheckpoint } from "./checkpoint.js";
import { probe } from "./probe.js";
import type { FromWorker, Replies, RunInfo, Stop, ToWorker, WireProbe } from "./protocol.js";
import { Run } from "./run.js";

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, options?: StructuredSerializeOptions): void;
}
const scope = self as unknown as WorkerScope;

setNumThreads(Math.max(1, (navigator.hardwareConcurrency || 1) - 1)); // one core for the page

let run: Run | null = null;
let file: RunInfo["file"] = null;
/** the "train" request being served, if any */
let training: { id: number } | null = null;

function current(): Run {
  if (run === null) throw new Error("no run yet: make or load one first");
  return run;
}

/** An input the run's task accepts: its first validation example (names: a name's first two letters). */
function exampleInput(r: Run): string {
  const e = r.data.validation[0];
  if (e === undefined) return "";
  return r.config.task === "names" ? r.data.vocab.decode(e.target).slice(0, 2) : r.data.vocab.decode(e.source);
}

function taskDescription(r: Run): string {
  if (r.config.task === "names") return "first names, one character at a time (the input is the start of a name)";
  return data.makeTask(r.config.task, r.config.taskOptions ?? {}).description;
}

function info(r: Run, tensors: TensorInfo[] = Object.entries(r.model.stateDict()).map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }))): RunInfo {
  const rt = wasmRuntimeInfo();
  return {
    config: { ...r.config }, step: r.step, losses: [...r.losses], lr: r.lr, vocabSize: r.data.vocab.size, example: exampleInput(r),
    taskDescription: taskDescription(r), parameters: r.model.parameters().reduce((n, p) => n + p.size, 0), tensors, file,
    kernels: rt === null ? null : { threads: getNumThreads(), threaded: rt.threaded },
  };
}

function reply<K extends keyof Replies>(id: number, value: Replies[K], transfer: Transferable[] = []): void {
  scope.postMessage({ kind: "reply", id, ok: true, value }, { transfer });
}

/** End the training request in progress, if any. */
function stopTraining(stop: Stop): void {
  if (training === null) return;
  reply<"train">(training.id, { step: current().step, stop });
  training = null;
}

/** Run `f` as a new task: after the messages that have already arrived. */
const nextTask = (() => {
  const channel = new MessageChannel();
  let queued: (() => void)[] = [];
  channel.port1.onmessage = () => {
    const fs = queued;
    queued = [];
    for (const f of fs) f();
  };
  return (f: () => void): void => {
    queued.push(f);
    if (queued.length === 1) channel.port2.postMessage(null);
  };
})();

function trainLoop(mine: { id: number }): void {
  if (training !== mine) return; // paused, or replaced by another request
  const r = current();
  if (r.step >= r.config.steps) {
    stopTraining("target");
    return;
  }
  let loss: number;
  try {
    loss = r.trainStep();
  } catch (err) {
    training = null;
    scope.postMessage({ kind: "reply", id: mine.id, ok: false, error: err instanceof Error ? err.message : String(err) });
    return;
  }
  scope.postMessage({ kind: "progress", step: r.step, loss, lr: r.lr });
  nextTask(() => trainLoop(mine));
}

function probeOnWire(text: string): { value: WireProbe; transfer: Transferable[] } {
  const r = current();
  const p = probe(r, text);
  const views = p.views.map((v) => {
    const weights = v.weights.values.slice() as Float32Array | Float64Array; // a copy of its own, to transfer
    return { name: v.name, rows: v.rows, cols: v.cols, shape: [...v.weights.shape], data: weights };
  });
  return { value: { ...p, step: r.step, views }, transfer: views.map((v) => v.data.buffer) };
}

function handle(m: ToWorker): void {
  switch (m.op) {
    case "fresh":
      stopTraining("replaced");
      run = Run.fresh(m.options);
      file = null;
      reply<"fresh">(m.id, info(run));
      return;
    case "load": {
      const read = readCheckpoint(m.bytes, m.name);
      const next = Run.restore(read.checkpoint, m.name, lossHistory(read.metadata, read.checkpoint.step));
      stopTraining("replaced");
      run = next;
      file = { name: m.name, format: read.metadata.format, step: read.checkpoint.step };
      reply<"load">(m.id, info(run, read.tensors));
      return;
    }
    case "set": {
      const r = current();
      const { lr, batchSize, steps } = m.settings;
      if (lr !== undefined) r.setLr(lr);
      if (batchSize !== undefined) r.setBatchSize(batchSize);
      if (steps !== undefined && steps !== r.config.steps) r.setSteps(steps);
      reply<"set">(m.id, { lr: r.lr });
      return;
    }
    case "train": {
      stopTraining("replaced");
      const r = current();
      if (m.steps !== r.config.steps) r.setSteps(m.steps);
      const mine = { id: m.id };
      training = mine;
      trainLoop(mine);
      return;
    }
    case "pause":
      stopTraining("paused");
      reply<"pause">(m.id, null);
      return;
    case "probe": {
      const { value, transfer } = probeOnWire(m.text);
      reply<"probe">(m.id, value, transfer);
      return;
    }
    case "evaluate": {
      const r = current();
      reply<"evaluate">(m.id, evaluateModel(r.model, r.data.validation, r.data.vocab));
      return;
    }
    case "checkpoint": {
      const r = current();
      const bytes = checkpointBytes(r.checkpoint(), { losses: JSON.stringify(r.losses.map((l) => +l.toPrecision(6))) });
      reply<"checkpoint">(m.id, { bytes, fileName: `attend-${r.config.model}-${r.config.task}-step${r.step}.safetensors` }, [bytes.buffer]);
      return;
    }
  }
}

scope.onmessage = (e) => {
  try {
    handle(e.data);
  } catch (err) {
    scope.postMessage({ kind: "reply", id: e.data.id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
};
