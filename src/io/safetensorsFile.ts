/**
 * Safetensors files on disk (Node only). Writing is atomic: the bytes go to a temporary file beside the
 * target, are flushed to disk, and are renamed over it, so `path` is either the old file or the whole new
 * one. Reading checks the header length against the file's size before reading anything else, and reads
 * tensor by tensor, so a hostile file cannot make us allocate what it claims.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, readdirSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { RawTensor } from "../tensor/dtype.js";
import {
  SafetensorsError,
  decodeSafetensorsTensor,
  encodeSafetensors,
  parseSafetensorsHeader,
  readSafetensorsHeaderLength,
} from "./safetensors.js";

/** Most bytes handed to one read or write call (the OS caps a single call near 2 GiB). */
const CHUNK = 1 << 30;

/**
 * Write tensors (and optional string metadata) to `path` as safetensors, synchronously and atomically:
 * encode, write `<path>.tmp-<pid>-<random>`, fsync, rename over `path`. On any error the temporary file is
 * removed and the error rethrown; `path` is never left half-written. Encoding errors (SafetensorsError)
 * happen before anything touches the disk. A writer killed mid-save (SIGKILL) cannot remove its
 * temporary file, so each save first removes those of earlier writers of `path` that have exited.
 */
export function writeSafetensorsFile(
  path: string,
  tensors: Record<string, RawTensor> | Map<string, RawTensor>,
  metadata?: Record<string, string>,
): void {
  const bytes = encodeSafetensors(tensors, metadata);
  removeStaleTemporaries(path);
  const tmp = `${path}.tmp-${process.pid}-${randomHex()}`;
  let fd: number | undefined;
  let created = false;
  try {
    fd = openSync(tmp, "wx"); // exclusive: never reuse (or later delete) a file someone else made
    created = true;
    for (let at = 0; at < bytes.length; ) {
      at += writeSync(fd, bytes, at, Math.min(CHUNK, bytes.length - at));
    }
    fsyncSync(fd);
    const closing = fd;
    fd = undefined;
    closeSync(closing);
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing; the original error matters more
      }
    }
    if (created) {
      try {
        unlinkSync(tmp);
      } catch {
        // it may already be gone
      }
    }
    throw err;
  }
  syncDirectory(dirname(path));
}

/**
 * Read a safetensors file synchronously. Throws an Error naming the path when it cannot be opened (a
 * missing file says so), and a SafetensorsError ("decodeSafetensors: ... (file "<path>")") when it is
 * not valid safetensors; see decodeSafetensors for what is read into what.
 */
export function readSafetensorsFile(path: string): {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
} {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === "ENOENT") {
      throw new Error(`readSafetensorsFile: no such file "${path}"; expected an existing safetensors file`, { cause: err });
    }
    throw new Error(`readSafetensorsFile: cannot open "${path}": ${(err as Error).message}`, { cause: err });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`readSafetensorsFile: "${path}" is not a regular file; expected a safetensors file`);
    const size = stat.size;
    try {
      const prefix = readExactly(fd, path, 0, Math.min(8, size));
      const headerLength = readSafetensorsHeaderLength(prefix, size);
      const dataStart = 8 + headerLength;
      const header = parseSafetensorsHeader(readExactly(fd, path, 8, headerLength), size - dataStart);
      const tensors = new Map<string, RawTensor>();
      for (const e of header.entries) {
        const bytes = readExactly(fd, path, dataStart + e.begin, e.end - e.begin);
        tensors.set(e.name, decodeSafetensorsTensor(e, bytes));
      }
      return { tensors, metadata: header.metadata };
    } catch (err) {
      if (err instanceof SafetensorsError) throw new SafetensorsError(`${err.message} (file "${path}")`, { cause: err });
      throw err;
    }
  } finally {
    closeSync(fd);
  }
}

/** Read exactly `length` bytes at `position`; the file ending early (it changed under us) is an error. */
function readExactly(fd: number, path: string, position: number, length: number): Uint8Array {
  const buffer = new Uint8Array(length);
  for (let at = 0; at < length; ) {
    const got = readSync(fd, buffer, at, Math.min(CHUNK, length - at), position + at);
    if (got === 0) {
      throw new Error(
        `readSafetensorsFile: "${path}" ended at byte ${position + at} while reading; expected at least ` +
          `${position + length} bytes (was the file changed while being read?)`,
      );
    }
    at += got;
  }
  return buffer;
}

/** Make the rename durable where the platform allows fsync on a directory (not on Windows); best effort. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // not supported here; the data itself is already on disk
  } finally {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // nothing to do
      }
    }
  }
}

/**
 * Remove `<path>.tmp-<pid>-<16 hex digits>` files (what writeSafetensorsFile names its temporary
 * files) whose writer process no longer exists: left behind by a writer that was killed. Files of
 * live processes (another save in progress), of this process, and of other targets are kept; a
 * pid that was reused keeps its file. Best effort: nothing here makes the save fail.
 */
export function removeStaleTemporaries(path: string): string[] {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-[0-9a-f]{16}$/.exec(name.slice(prefix.length));
    if (m === null) continue;
    const pid = Number(m[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processExists(pid)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

/** Whether a process with this id exists (signal 0 checks without signalling; EPERM: it exists, as another user's). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: unknown }).code === "EPERM";
  }
}

function randomHex(): string {
  let s = "";
  for (let i = 0; i < 4; i++) s += Math.floor(Math.random() * 0x10000).toString(16).padStart(4, "0");
  return s;
}
