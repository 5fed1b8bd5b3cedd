/**
 * Argument parsing for the CLI: node:util parseArgs (strict) plus typed readers that turn a bad value
 * into a UsageError, which the CLI reports in one line with exit code 2.
 */
import { parseArgs } from "node:util";

/** Bad input from the user: one line on stderr, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; default?: string | boolean }>;

export type Values = Record<string, string | boolean | undefined>;

/** The options common to every command. */
export const COMMON: OptionSpec = {
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

export function parse(command: string, args: string[], spec: OptionSpec): Values {
  try {
    const { values } = parseArgs({ args, options: { ...COMMON, ...spec }, strict: true, allowPositionals: false });
    return values as Values;
  } catch (e) {
    const msg = (e as Error).message.replace(/\s+/g, " ").trim();
    throw new UsageError(`${command}: ${msg} (see attend ${command} --help)`);
  }
}

export function str(command: string, v: Values, name: string, fallback?: string): string {
  const x = v[name];
  if (x === undefined) {
    if (fallback === undefined) throw new UsageError(`${command}: --${name} is required (see attend ${command} --help)`);
    return fallback;
  }
  return String(x);
}

export function optStr(v: Values, name: string): string | undefined {
  const x = v[name];
  return x === undefined ? undefined : String(x);
}

export function int(command: string, v: Values, name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const x = v[name];
  if (x === undefined) return fallback;
  const n = Number(x);
  if (typeof x !== "string" || x.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${command}: --${name} must be an integer${max < Number.MAX_SAFE_INTEGER ? ` from ${min} to ${max}` : ` >= ${min}`}, got ${JSON.stringify(x)}`);
  }
  return n;
}

export function num(command: string, v: Values, name: string, fallback: number, min = -Infinity, exclusiveMin = false): number {
  const x = v[name];
  if (x === undefined) return fallback;
  const n = Number(x);
  if (typeof x !== "string" || x.trim() === "" || !Number.isFinite(n) || n < min || (exclusiveMin && n === min)) {
    throw new UsageError(`${command}: --${name} must be a number ${exclusiveMin ? ">" : ">="} ${min}, got ${JSON.stringify(x)}`);
  }
  return n;
}

export function flag(v: Values, name: string): boolean {
  return v[name] === true;
}
