/** fromPretrained(dir): a Hugging Face model folder on disk (Node). */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError } from "../tensor/errors.js";
import { type Pretrained, loadPretrained } from "./load.js";

export interface FromPretrainedOptions {
  /** called before each file of the folder is read, with its size in bytes (for progress on large weights) */
  onRead?: (name: string, bytes: number) => void;
}

/** Load config.json, the safetensors weights (single or sharded) and tokenizer.json from dir. */
export function fromPretrained(dir: string, opts: FromPretrainedOptions = {}): Pretrained {
  if (typeof dir !== "string" || !existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ArgumentError(`fromPretrained: dir must be a folder holding config.json and model.safetensors, got ${JSON.stringify(dir)}`);
  }
  return loadPretrained((name) => {
    const p = join(dir, name);
    if (!existsSync(p)) return null;
    opts.onRead?.(name, statSync(p).size);
    return name.endsWith(".json") ? readFileSync(p, "utf8") : new Uint8Array(readFileSync(p));
  });
}
