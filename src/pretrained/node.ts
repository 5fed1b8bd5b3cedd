/** fromPretrained(dir): a Hugging Face model folder on disk (Node). */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError } from "../tensor/errors.js";
import { type Pretrained, loadPretrained } from "./load.js";

/** Load config.json, the safetensors weights (single or sharded) and tokenizer.json from dir. */
export function fromPretrained(dir: string): Pretrained {
  if (typeof dir !== "string" || !existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ArgumentError(`fromPretrained: dir must be a folder holding config.json and model.safetensors, got ${JSON.stringify(dir)}`);
  }
  return loadPretrained((name) => {
    const p = join(dir, name);
    if (!existsSync(p)) return null;
    return name.endsWith(".json") ? readFileSync(p, "utf8") : new Uint8Array(readFileSync(p));
  });
}
