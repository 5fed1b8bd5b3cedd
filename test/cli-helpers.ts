import assert from "node:assert/strict";

/** A user error: exit code 2, one line on stderr naming the problem, no stack trace. */
export function assertUsageError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^attend: /);
  assert.match(lines[0], pattern);
  assert.ok(!/\n\s+at /.test(r.stderr));
}
