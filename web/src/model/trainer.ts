/**
 * The page's side of lesson 9's training worker (trainer.worker.ts): one method per request, each a
 * promise of the worker's reply. Requests are served in the order they are made; while the worker
 * trains, it serves them between two steps.
 */
import { Tensor } from "attend";
import type { FromWorker, Replies, Request, RunInfo, Settings, StepProbe } from "./protocol.js";
import type { FreshOptions } from "./run.js";

export interface Progress {
  step: number;
  loss: number;
  lr: number;
}

export class Trainer {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;

  /** `onProgress` hears of every training step; `onFailure` of a worker that has died (its requests fail too). */
  constructor(private readonly onProgress: (p: Progress) => void, private readonly onFailure: (e: Error) => void) {
    this.worker = new Worker(new URL("./trainer.worker.ts", import.meta.url), { type: "module", name: "attend-trainer" });
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => this.receive(e.data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.fail(new Error(`the training worker stopped: ${e.message || "it could not start"}`));
    };
  }

  private receive(m: FromWorker): void {
    if (m.kind === "progress") {
      this.onProgress(m);
      return;
    }
    const waiting = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (m.ok) waiting?.resolve(m.value);
    else waiting?.reject(new Error(m.error));
  }

  private fail(err: Error): void {
    this.failure = err;
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
    this.onFailure(err);
  }

  private call<K extends Request["op"]>(request: Extract<Request, { op: K }>, transfer: Transferable[] = []): Promise<Replies[K]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...request, id }, { transfer });
    });
  }

  /** A new, untrained run. */
  fresh(options: FreshOptions): Promise<RunInfo> {
    return this.call({ op: "fresh", options });
  }

  /** The run a checkpoint holds (the bytes move to the worker). */
  load(bytes: Uint8Array, name: string): Promise<RunInfo> {
    return this.call({ op: "load", bytes, name }, [bytes.buffer]);
  }

  set(settings: Settings): Promise<{ lr: number }> {
    return this.call({ op: "set", settings });
  }

  /** Train until the run has `steps` steps, or until paused; resolves when training has stopped. */
  train(steps: number): Promise<Replies["train"]> {
    return this.call({ op: "train", steps });
  }

  /** Stop training after the step in progress. */
  pause(): Promise<null> {
    return this.call({ op: "pause" });
  }

  /** An input's answer and attention maps (the library's errors, such as an unknown character, reject). */
  async probe(text: string): Promise<StepProbe> {
    const p = await this.call({ op: "probe", text });
    return { ...p, views: p.views.map(({ data, shape, ...v }) => ({ ...v, weights: new Tensor(data, shape) })) };
  }

  evaluate(): Promise<Replies["evaluate"]> {
    return this.call({ op: "evaluate" });
  }

  checkpoint(): Promise<Replies["checkpoint"]> {
    return this.call({ op: "checkpoint" });
  }

  dispose(): void {
    this.worker.terminate();
    this.failure = new Error("the page was left");
    this.pending.clear();
  }
}
