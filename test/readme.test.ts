/** The README's commands run as written: the quick start (against the built package), and `npm start`. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync, spawn } from "node:child_process";
import { freePort, waitUntilClosed } from "./net.js";

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

/** The environment of a newcomer's shell: none of the npm_* settings of an `npm test` around this one. */
function shellEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== "NODE_TEST_CONTEXT" && k !== "INIT_CWD"));
}

test("README set-up: `npm start -- --port N` prints the URL and little else, serves the explorer, and stops with npm", async () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const written = /`(npm start -- --port )(\d+)`/.exec(readme);
  assert.ok(written, "README shows npm start with --port");
  const port = await freePort();
  const [cmd, ...args] = `${written[1]}${port}`.split(" ");
  const npm = spawn(cmd, args, { cwd: root, env: shellEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  npm.stdout.on("data", (c) => (out += c));
  npm.stderr.on("data", (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => npm.once("exit", resolve));
  try {
    const url = `http://127.0.0.1:${port}/`;
    // the build takes a while on a busy machine: wait for the line (or for npm to give up), however long
    await Promise.race([
      new Promise<void>((resolve) => { const check = (): void => { if (out.includes(url)) resolve(); }; npm.stdout.on("data", check); npm.stderr.on("data", check); }),
      exited.then((code) => assert.fail(`npm start exited with ${code} before printing ${url}:\n${out}`)),
    ]);
    const before = out.slice(0, out.indexOf(url)).split("\n").filter((l) => l.trim() !== "");
    // npm's own banner ("> attend@0.1.0 start", "> node web/start.mjs --port N") and the URL's line
    assert.ok(before.length <= 3, `${before.length} lines before the URL:\n${before.join("\n")}`);
    assert.doesNotMatch(out, /warn|error|deprecat/i, "nothing alarming");
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module"/);
    assert.equal(page.headers.get("cross-origin-embedder-policy"), "require-corp");
  } finally {
    npm.kill("SIGTERM"); // as `kill <pid of npm start>`
  }
  await exited;
  await waitUntilClosed(port, "the server started by npm start, after npm was stopped"); // it checks every half second
});
