/** Where a command writes: human text or one JSON line to stdout, progress and notes to stderr. */
import type { ProgressStream } from "../train/progress.js";

export interface Io {
  stdout: ProgressStream;
  stderr: ProgressStream;
  /** Ctrl-C aborts this */
  signal: AbortSignal;
}

export function say(io: Io, line = ""): void {
  io.stdout.write(`${line}\n`);
}

export function note(io: Io, line: string): void {
  io.stderr.write(`${line}\n`);
}

/** The last line of a --json command's output: one JSON object. */
export function emitJson(io: Io, result: unknown): void {
  io.stdout.write(`${JSON.stringify(result)}\n`);
}

export const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
