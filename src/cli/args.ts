/**
 * Argument parsing for the CLI: the arguments are checked one by one against the command's options
 * (an unknown option is named with the command's options and the closest one; a value that starts
 * with "-", like --steps -5, is taken as the value), then handed to node:util parseArgs; typed
 * readers turn a bad value into a UsageError, which the CLI reports in one line with exit code 2.
 */
import { parseArgs } from "node:util";

/** Bad input from the user: one line on stderr, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** An option; multiple: it may be given several times (--prompt a --prompt b), its value a list (read it with strs). */
export type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; default?: string | boolean; multiple?: boolean }>;

export type Values = Record<string, string | boolean | string[] | undefined>;

/** The options common to every command. */
export const COMMON: OptionSpec = {
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

/** A value that looks like a negative number ("-5", "-.5", "-1e3"): never an option name. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity\b)/;

/** The edit distance between two short strings (insertions, deletions, substitutions, adjacent swaps). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The option most like `name` (a typo, a prefix, or a part of it), if one is close enough. */
export function closestOption(name: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const o of options) {
    const d = o.startsWith(name) || (name.length >= 4 && o.includes(name)) ? 0.5 : editDistance(name, o);
    if (d < bestDistance) [best, bestDistance] = [o, d];
  }
  return bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

/**
 * The arguments, checked against the options and normalised for parseArgs: `--name value` becomes
 * `--name=value` (so a value such as -5 is not taken for an option) and short options their long form.
 */
function normalise(command: string, args: string[], options: OptionSpec): string[] {
  const names = [...Object.keys(options).filter((n) => !Object.hasOwn(COMMON, n)), ...Object.keys(COMMON)]; // the command's own first
  const help = `see attend ${command} --help`;
  const list = `the options of attend ${command}: ${names.map((n) => `--${n}`).join(", ")}`;
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--") && arg.length > 2) {
      const eq = arg.indexOf("=");
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      if (!Object.hasOwn(options, name)) {
        const near = closestOption(name, names);
        throw new UsageError(`${command}: unknown option --${name}${near ? ` (did you mean --${near}?)` : ""}; ${list}`);
      }
    } else if (arg.startsWith("-") && arg.length > 1 && !NEGATIVE_NUMBER.test(arg) && arg !== "--") {
      const long = names.find((n) => options[n].short === arg.slice(1));
      if (long === undefined) throw new UsageError(`${command}: unknown option ${arg}; ${list}`);
      name = long;
    } else {
      throw new UsageError(`${command}: unexpected argument ${JSON.stringify(arg)}; options come as --name value (${help})`);
    }
    if (options[name].type === "boolean") {
      if (inline !== undefined) throw new UsageError(`${command}: --${name} takes no value, got ${JSON.stringify(inline)}`);
      out.push(`--${name}`);
      continue;
    }
    if (inline === undefined) {
      const next = args[i + 1];
      if (next === undefined) throw new UsageError(`${command}: --${name} expects a value, got nothing (${help})`);
      if (next.startsWith("-") && next.length > 1 && !NEGATIVE_NUMBER.test(next)) {
        throw new UsageError(`${command}: --${name} expects a value, got the option ${next} (a value starting with "-" can be given as --${name}=${next})`);
      }
      inline = next;
      i++;
    }
    out.push(`--${name}=${inline}`);
  }
  return out;
}

export function parse(command: string, args: string[], spec: OptionSpec): Values {
  const options = { ...COMMON, ...spec };
  const normalised = normalise(command, args, options);
  try {
    const { values } = parseArgs({ args: normalised, options, strict: true, allowPositionals: false });
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
  if (Array.isArray(x)) throw new Error(`optStr: --${name} is a repeatable option; read it with strs`); // a bug, not the user's
  return x === undefined ? undefined : String(x);
}

/** A repeatable string option's values, in the order given ([] when it is absent). */
export function strs(v: Values, name: string): string[] {
  const x = v[name];
  return x === undefined ? [] : Array.isArray(x) ? x : [String(x)];
}

/** A value as typed, quoted when it has spaces or is empty. */
const shown = (x: unknown): string => (typeof x === "string" && /^\S+$/.test(x) ? x : JSON.stringify(x));

/** What an integer option in [min, max] expects, in words. */
function integerRange(min: number, max: number): string {
  if (max < Number.MAX_SAFE_INTEGER) return `an integer from ${min} to ${max}`;
  return min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : `an integer >= ${min}`;
}

export function int(command: string, v: Values, name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const x = v[name];
  if (x === undefined) return fallback;
  const n = Number(x);
  if (typeof x !== "string" || x.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${command}: --${name} expects ${integerRange(min, max)}, got ${shown(x)}`);
  }
  return n;
}

export function num(command: string, v: Values, name: string, fallback: number, min = -Infinity, exclusiveMin = false): number {
  const x = v[name];
  if (x === undefined) return fallback;
  const n = Number(x);
  if (typeof x !== "string" || x.trim() === "" || !Number.isFinite(n) || n < min || (exclusiveMin && n === min)) {
    throw new UsageError(`${command}: --${name} expects a number ${exclusiveMin ? ">" : ">="} ${min}, got ${shown(x)}`);
  }
  return n;
}

export function flag(v: Values, name: string): boolean {
  return v[name] === true;
}
