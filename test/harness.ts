/**
 * The one test harness: load a PyTorch fixture, feed its inputs at a chosen precision, and compare
 * outputs and gradients with a relative tolerance. Used by every fixture test and every backend.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { Tensor, cast, loadSafetensors } from "../src/index.js";

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "data");

export interface Fixture {
  name: string;
  kind: string;
  options: Record<string, unknown>;
  description: string;
  t: Record<string, Tensor>;
}

export function fixtureNames(kind?: string): string[] {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith(".safetensors"))
    .map((f) => f.replace(/\.safetensors$/, ""))
    .filter((n) => kind === undefined || n.startsWith(`${kind}_`))
    .sort();
}

export function loadFixture(name: string): Fixture {
  const { tensors, metadata } = loadSafetensors(join(FIXTURES, `${name}.safetensors`));
  return { name, kind: metadata.kind, options: JSON.parse(metadata.options), description: metadata.description, t: tensors };
}

export type Precision = "float32" | "float64";

/** A fixture input at the test's precision (bool and int tensors pass through). */
export function input(t: Tensor, precision: Precision, requiresGrad = false): Tensor {
  const x = t.dtype === "float64" || t.dtype === "float32" ? cast(t, precision).detach() : t;
  if (requiresGrad) x.requiresGrad = true;
  return x;
}

/** Tolerances of the core issue: float32 outputs 1e-4, gradients 5e-4 (relative); float64 much tighter. */
export const TOL = {
  float32: { out: 1e-4, grad: 5e-4 },
  float64: { out: 1e-9, grad: 1e-8 },
};

/**
 * max|actual - expected| / max(max|expected|, 1e-3). The floor matters only for tensors that are
 * zero in exact arithmetic (e.g. a key bias's gradient, which softmax's shift invariance makes 0):
 * PyTorch's float64 rounding noise (~1e-17) is no scale to measure float32 against.
 * NaN anywhere fails; equal infinities (masked scores) match.
 */
export function relError(actual: Tensor, expected: Tensor): number {
  assert.deepEqual([...actual.shape], [...expected.shape], "shape");
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.size; i++) {
    const a = actual.values[i];
    const b = expected.values[i];
    if (Number.isNaN(a) || Number.isNaN(b)) return NaN;
    if (a === b) continue; // equal infinities too
    num = Math.max(num, Math.abs(a - b));
  }
  for (let i = 0; i < expected.size; i++) if (Number.isFinite(expected.values[i])) den = Math.max(den, Math.abs(expected.values[i]));
  return num / Math.max(den, 1e-3);
}

export function assertClose(actual: Tensor | null | undefined, expected: Tensor, tol: number, what: string): void {
  assert.ok(actual, `${what}: missing (expected shape [${expected.shape.join(", ")}])`);
  const e = relError(actual, expected);
  assert.ok(e <= tol, `${what}: relative error ${e} exceeds ${tol}`);
}
