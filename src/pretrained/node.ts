/** fromPretrained(dir): a Hugging Face model folder on disk (Node). */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError } from "../tensor/errors.js";
import { type Pretrained, type RandomAccessFile, loadPretrained } from "./load.js";

export interface FromPretrainedOptions {
  /** called before each file of the folder is read, with its size in bytes (for progress on large weights) */
  onRead?: (name: string, bytes: number) => void;
}

/** A file on disk read by byte ranges (fs.readSync into the loader's buffer), opened until close(). */
function fileByRanges(path: string): RandomAccessFile {
  const fd = openSync(path, "r");
  let open = true;
  return {
    byteLength: statSync(path).size,
    read(dst, position) {
      for (let at = 0; at < dst.length; ) {
        const got = readSync(fd, dst, at, dst.length - at, position + at);
        if (got === 0) throw new ArgumentError(`fromPretrained: ${path} ended at byte ${position + at}; expected at least ${position + dst.length} bytes (was it changed while being read?)`);
        at += got;
      }
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/**
 * Load config.json, the safetensors weights (single or sharded) and tokenizer.json from dir. The
 * weights are read a range at a time straight into the model's parameters, never whole.
 */
export function fromPretrained(dir: string, opts: FromPretrainedOptions = {}): Pretrained {
  if (typeof dir !== "string" || !existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ArgumentError(`fromPretrained: dir must be a folder holding config.json and model.safetensors, got ${JSON.stringify(dir)}`);
  }
  return loadPretrained((name) => {
    const p = join(dir, name);
    if (!existsSync(p)) return null;
    opts.onRead?.(name, statSync(p).size);
    return name.endsWith(".json") ? readFileSync(p, "utf8") : fileByRanges(p);
  });
}
