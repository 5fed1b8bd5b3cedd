/** Argument checks shared by every layer above (modules, attention, models). */
import { ArgumentError } from "./errors.js";

export function checkPositiveInt(fn: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new ArgumentError(`${fn}: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** How an unexpected value reads in an error message: 3, "abc", null, an array of length 2, a Float32Array, a plain object. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined || typeof v === "number" || typeof v === "boolean") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "function") return "a function";
  if (typeof v === "symbol") return "a symbol";
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  const name = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name;
  if (name === undefined || name === "" || name === "Object") return "a plain object";
  return `${/^[AEIOU]/.test(name) ? "an" : "a"} ${name}`;
}

/** Levenshtein distance, for "did you mean" hints on misspelt option names. */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/** The valid name closest to `key` (snake_case is compared as camelCase), or null if none is close. */
export function closestName(key: string, valid: readonly string[]): string | null {
  const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  let best: string | null = null;
  let bestD = Infinity;
  for (const v of valid) {
    const d = Math.min(editDistance(camel, v), editDistance(camel.toLowerCase(), v.toLowerCase()));
    if (d < bestD) { bestD = d; best = v; }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : null;
}

/**
 * Rejects option keys a function does not know, so that a typo (`isCasual`) or PyTorch's spelling
 * (`batch_first`) is an error instead of a silently ignored option. `valid` lists every accepted key.
 * undefined options are fine (no options given).
 */
export function checkOptions(fn: string, argName: string, opts: unknown, valid: readonly string[]): void {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== "object" || Array.isArray(opts)) {
    throw new ArgumentError(`${fn}: ${argName} must be an options object, got ${describeValue(opts)}`);
  }
  for (const key of Object.keys(opts)) {
    if (valid.includes(key)) continue;
    const near = closestName(key, valid);
    const hint = near !== null ? `; did you mean "${near}"?` : `; valid options: ${valid.join(", ")}`;
    throw new ArgumentError(`${fn}: unknown option "${key}" in ${argName}${hint}`);
  }
}

/** Every option name of T, each mapped to true (written as an object literal, tsc checks it both ways). */
export type OptionTable<T extends object> = { [K in keyof Required<T>]: true };

/**
 * The option names of an options interface T, from a table that lists each exactly once:
 *   export const SDPA_OPTION_KEYS = optionKeys<SdpaOptions>({ attnMask: true, isCausal: true, ... });
 * tsc rejects the table if it misses a key of T or names one T lacks, so the list cannot drift
 * from the interface it sits next to.
 */
export function optionKeys<T extends object>(table: OptionTable<T>): readonly (keyof T & string)[] {
  return Object.freeze(Object.keys(table)) as (keyof T & string)[];
}
