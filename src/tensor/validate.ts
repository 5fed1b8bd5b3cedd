/** Argument checks shared by every layer above (modules, attention, models). */
import { ArgumentError } from "./errors.js";

export function checkPositiveInt(fn: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new ArgumentError(`${fn}: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}
