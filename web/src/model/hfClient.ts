/**
 * The page's side of lesson 9's Hugging Face worker (hf.worker.ts): one method per request, each a
 * promise of the worker's reply. The worker starts with the first folder picked.
 */
import type { HeadScores } from "attend";
import type { FromHfWorker, HfFile, HfInfo, HfProbe, HfReplies, HfRequest } from "./hfProtocol.js";

export class HfModel {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;

  constructor() {
    this.worker = new Worker(new URL("./hf.worker.ts", import.meta.url), { type: "module", name: "attend-hf" });
    this.worker.onmessage = (e: MessageEvent<FromHfWorker>) => {
      const m = e.data;
      const waiting = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.ok) waiting?.resolve(m.value);
      else waiting?.reject(new Error(m.error));
    };
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.failure = new Error(`the model worker stopped: ${e.message || "it could not start"}`);
      for (const { reject } of this.pending.values()) reject(this.failure);
      this.pending.clear();
    };
  }

  private call<K extends HfRequest["op"]>(request: Extract<HfRequest, { op: K }>, transfer: Transferable[] = []): Promise<HfReplies[K]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...request, id }, { transfer });
    });
  }

  /** Load a folder's files (their bytes move to the worker); the library's errors reject. */
  load(files: HfFile[]): Promise<HfInfo> {
    return this.call({ op: "load", files }, files.map((f) => f.bytes));
  }

  /** A text's tokens, every layer's attention and the head scores. */
  probe(text: string, maxTokens: number): Promise<HfProbe> {
    return this.call({ op: "probe", text, maxTokens });
  }

  /** The library's headScores of the loaded model (previous-token, induction, entropy, first-token on a repeated random sequence). */
  headScores(): Promise<HeadScores> {
    return this.call({ op: "headScores" });
  }

  dispose(): void {
    this.worker.terminate();
    this.failure = new Error("the page was left");
    this.pending.clear();
  }
}
