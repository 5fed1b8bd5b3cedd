/** The README's quick start runs as written (against the built package). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

test("README quick start", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const block = /## Quick start\s+```ts\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "README has a Quick start ts block");
  const lines = block[1].trim().split("\n");
  assert.ok(lines.length <= 15, `quick start is ${lines.length} lines`);
  const file = join(root, "test", `.readme-quickstart-${process.pid}.ts`);
  writeFileSync(file, `${block[1]}\nconsole.log(JSON.stringify({ q: q.grad!.shape, w: weights!.shape, c: crossOut.shape, s: selfOut.shape }));\n`);
  try {
    const out = execFileSync(process.execPath, ["--import", "tsx", file], { cwd: root, encoding: "utf8" });
    assert.deepEqual(JSON.parse(out.trim().split("\n").pop()!), { q: [2, 8, 16, 64], w: [2, 10, 10], c: [2, 10, 64], s: [2, 10, 64] });
  } finally {
    rmSync(file, { force: true });
  }
});
