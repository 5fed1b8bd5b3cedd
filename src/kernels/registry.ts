/**
 * The open backend registry. A backend is one folder under src/kernels (or anywhere: a test, a
 * package) plus one call:
 *
 *   registerBackend("webgpu", () => (navigator.gpu ? webgpuBackend : null), { priority: 2 });
 *
 * The factory runs once, on first use; it returns null where the backend cannot run (no SIMD, no
 * GPU), and the backend is then left out of listBackends() and refused by setBackend with the
 * reason. Without a setBackend call, the available backend of highest priority is used (ties: the
 * one registered first). The conformance suites (test/fixtures, test/sdpa-fused, test/backends)
 * run over listBackends(), so a registered backend is tested with no edit to them.
 *
 * getBackend() and findBackend() hand out each backend behind the door (door.ts): its kernels with
 * their operands checked first, and attention in any layout. Every caller, the ops, the suites and
 * users, reaches a backend so; only a direct import of a backend object (refBackend, wasmBackend)
 * skips it.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Backend } from "./backend.js";
import { guardBackend } from "./door.js";

export type BackendFactory = () => Backend | null;

export interface RegisterBackendOptions {
  /** the default backend is the available one with the highest priority (default 0) */
  priority?: number;
}

interface Entry {
  name: string;
  factory: BackendFactory;
  priority: number;
  order: number;
  /** undefined = factory not run yet; null = unavailable here; else the factory's backend behind the door (door.ts) */
  instance?: Backend | null;
}

const entries = new Map<string, Entry>();
let selected: Entry | null = null;

function known(): string {
  return [...entries.keys()].map((n) => `"${n}"`).join(", ") || "none";
}

function instantiate(e: Entry): Backend | null {
  if (e.instance === undefined) {
    const b = e.factory();
    if (b !== null && (typeof b !== "object" || typeof b.matmul !== "function")) {
      throw new ArgumentError(`registerBackend: the factory of "${e.name}" returned ${typeof b}, expected a Backend object or null`);
    }
    e.instance = b === null ? null : guardBackend(b);
  }
  return e.instance;
}

/** Adds (or replaces) a backend under `name`. */
export function registerBackend(name: string, factory: BackendFactory, opts: RegisterBackendOptions = {}): void {
  if (typeof name !== "string" || !/^[a-z][a-z0-9_-]*$/i.test(name)) {
    throw new ArgumentError(`registerBackend: name must be a word such as "webgpu", got ${JSON.stringify(name)}`);
  }
  if (typeof factory !== "function") {
    throw new ArgumentError(`registerBackend: factory must be a function returning a Backend (or null), got ${typeof factory}`);
  }
  const priority = opts.priority ?? 0;
  if (typeof priority !== "number" || !Number.isFinite(priority)) {
    throw new ArgumentError(`registerBackend: priority must be a finite number, got ${String(priority)}`);
  }
  const prev = entries.get(name);
  const e: Entry = { name, factory, priority, order: prev?.order ?? entries.size };
  entries.set(name, e);
  if (selected?.name === name) selected = null; // re-resolve on next use
}

/** Names of the registered backends that can run here, highest priority first. */
export function listBackends(): string[] {
  return [...entries.values()]
    .sort((a, b) => b.priority - a.priority || a.order - b.order)
    .filter((e) => instantiate(e) !== null)
    .map((e) => e.name);
}

/** Selects the backend every op runs on from now on. */
export function setBackend(name: string): void {
  const e = typeof name === "string" ? entries.get(name) : undefined;
  if (e === undefined) {
    throw new ArgumentError(`setBackend: unknown backend ${JSON.stringify(name)}; registered: ${known()}`);
  }
  if (instantiate(e) === null) {
    const alt = listBackends().map((n) => `"${n}"`).join(", ");
    throw new ArgumentError(`setBackend: backend "${name}" cannot run in this runtime; available here: ${alt}`);
  }
  selected = e;
}

function current(): Entry {
  if (selected === null) {
    const name = listBackends()[0];
    if (name === undefined) throw new ArgumentError("getBackend: no backend can run here (none registered or all unavailable)");
    selected = entries.get(name)!;
  }
  return selected;
}

/** The selected backend (the default one if setBackend was never called), behind the door (door.ts). */
export function getBackend(): Backend {
  return instantiate(current())!;
}

export function getBackendName(): string {
  return current().name;
}

/** A registered backend by name (behind the door, door.ts), or null if it is not registered or cannot run here. */
export function findBackend(name: string): Backend | null {
  const e = entries.get(name);
  return e === undefined ? null : instantiate(e);
}
