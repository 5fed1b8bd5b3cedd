/**
 * The backends the conformance suites run over: every registered backend that can run here
 * (listBackends(), in priority order). A backend registered before the suites load (a folder plus
 * registerBackend, e.g. node --import ./test/backends/counting/register.ts) is picked up with no
 * edit to the suites. ATTEND_TEST_BACKENDS=a,b narrows the set (test/registry.test.ts uses it).
 */
import { after, before } from "node:test";
import { getBackendName, listBackends, setBackend } from "../src/index.js";

export function conformanceBackends(): string[] {
  const all = listBackends();
  const only = process.env.ATTEND_TEST_BACKENDS;
  if (only === undefined || only === "") return all;
  const want = only.split(",").map((s) => s.trim());
  const missing = want.filter((n) => !all.includes(n));
  if (missing.length > 0) throw new Error(`ATTEND_TEST_BACKENDS names ${missing.join(", ")}, not registered here (registered: ${all.join(", ")})`);
  return want;
}

/** Runs the enclosing describe()'s tests with `backend` selected (tests in a file run one after another). */
export function onBackend(backend: string): void {
  let saved: string;
  before(() => { saved = getBackendName(); setBackend(backend); });
  after(() => setBackend(saved));
}
