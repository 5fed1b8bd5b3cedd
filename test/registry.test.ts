/**
 * The open backend registry: registerBackend / setBackend / listBackends, and a backend added from
 * outside (test/backends/counting: one folder, one registerBackend call) picked up by the conformance
 * suites with no edit to them.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  ArgumentError, type Backend, findBackend, getBackend, getBackendName, listBackends, matmul, randn, registerBackend,
  scaledDotProductAttention, setBackend, sum,
} from "../src/index.js";

test("the built-in backends are registered, wasm first where it runs", () => {
  const names = listBackends();
  assert.ok(names.includes("ref"));
  assert.equal(names[0], getBackendName(), "the default is the available backend of highest priority");
});

test("setBackend refuses names that are not registered, including Object.prototype's", () => {
  for (const bad of ["toString", "constructor", "__proto__", "gpu", ""]) {
    assert.throws(() => setBackend(bad), (e: unknown) => e instanceof ArgumentError && /unknown backend/.test((e as Error).message), bad);
  }
  assert.throws(() => registerBackend("x y", () => null), ArgumentError);
  assert.throws(() => registerBackend("ok", 3 as unknown as () => null), ArgumentError);
});

test("a backend whose factory returns null is listed nowhere and refused with the reason", () => {
  registerBackend("never-here", () => null, { priority: 100 });
  assert.ok(!listBackends().includes("never-here"));
  assert.equal(findBackend("never-here"), null);
  assert.throws(() => setBackend("never-here"), /cannot run in this runtime/);
});

test("ops run on the selected backend through one door", () => {
  const seen: string[] = [];
  const ref = findBackend("ref")!;
  const spy: Backend = {
    name: "spy",
    matmul(out, a, b, p) { seen.push("matmul"); ref.matmul(out, a, b, p); },
    attentionForward(p, q, k, v, out, lse) { seen.push("attentionForward"); ref.attentionForward(p, q, k, v, out, lse); },
    attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv) {
      seen.push("attentionBackward");
      ref.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
    },
  };
  registerBackend("spy", () => spy, { priority: -1 });
  const saved = getBackendName();
  setBackend("spy");
  try {
    assert.equal(getBackend().name, "spy"); // behind the door (src/kernels/door.ts): a wrapper that calls spy
    matmul(randn([3, 4]), randn([4, 5]));
    const q = randn([1, 2, 5, 8], { seed: 1, requiresGrad: true });
    sum(scaledDotProductAttention(q, randn([1, 2, 6, 8], { seed: 2 }), randn([1, 2, 6, 8], { seed: 3 }))).backward();
  } finally {
    setBackend(saved);
  }
  assert.deepEqual(seen, ["matmul", "attentionForward", "attentionBackward"]);
});

test("a backend registered from outside runs the conformance suites unchanged", () => {
  const dir = mkdtempSync(join(tmpdir(), "attend-counting-"));
  try {
    const suites = ["test/fixtures.test.ts", "test/sdpa-fused.test.ts", "test/kernels.test.ts"];
    const r = spawnSync(process.execPath, [
      "--import", "tsx", "--import", "./test/backends/counting/register.ts",
      "--test", "--test-reporter=spec", "--test-name-pattern=counting", ...suites,
    ], {
      encoding: "utf8",
      // NODE_TEST_CONTEXT would make the child report to this runner instead of printing
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, ATTEND_TEST_BACKENDS: "counting", ATTEND_COUNTING_OUT: join(dir, "calls") },
      maxBuffer: 64 << 20,
    });
    const out = r.stdout + r.stderr;
    assert.equal(r.status, 0, out.slice(-4000));
    const passed = Number(/ℹ pass (\d+)/.exec(out)?.[1] ?? 0);
    assert.equal(Number(/ℹ fail (\d+)/.exec(out)?.[1] ?? -1), 0);
    assert.ok(passed >= 50, `only ${passed} tests ran on the counting backend`);
    for (const s of ["sdpa fixtures [counting]", "fused sdpa equals the materialising path [counting]", "attention kernels [counting]"]) {
      assert.ok(out.includes(s), `suite "${s}" did not run`);
    }
    const totals = { matmul: 0, attentionForward: 0, attentionBackward: 0 };
    for (const f of readdirSync(dir)) {
      const c = JSON.parse(readFileSync(join(dir, f), "utf8")) as typeof totals;
      totals.matmul += c.matmul; totals.attentionForward += c.attentionForward; totals.attentionBackward += c.attentionBackward;
    }
    assert.ok(totals.matmul > 0 && totals.attentionForward > 0 && totals.attentionBackward > 0, JSON.stringify(totals));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
