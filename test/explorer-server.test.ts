/**
 * web/server.mjs: the explorer's static server. It binds 127.0.0.1 by default, sends the
 * cross-origin-isolation headers and the right MIME types, and serves nothing outside its folder,
 * however the path is spelled (.., %2e%2e, %2f, backslashes, NUL, absolute targets, symlinks).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { type AddressInfo, type Server, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { serve } from "../web/server.mjs";
import { waitUntilClosed } from "./net.js";

const SECRET = "secret-outside-the-root";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw HTTP request: the path goes on the wire exactly as written (no URL normalisation). */
function get(port: number, path: string, method = "GET"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Bytes written to the server as they are (the request asks it to close); the reply's status line and headers (lower-cased names). */
function raw(port: number, bytes: string): Promise<{ status: number; head: string; headers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(Buffer.from(bytes, "latin1")));
    let got = "";
    socket.setEncoding("latin1");
    socket.on("data", (c) => (got += c));
    socket.on("error", reject);
    socket.on("close", () => {
      const head = got.split("\r\n\r\n", 1)[0];
      const [statusLine, ...lines] = head.split("\r\n");
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      resolve({ status: Number(statusLine.split(" ")[1]), head, headers });
    });
  });
}

describe("explorer server (web/server.mjs)", () => {
  let dir: string;
  let root: string;
  let server: Server;
  let port: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "attend-serve-"));
    root = join(dir, "dist");
    mkdirSync(join(root, "sub"), { recursive: true });
    writeFileSync(join(root, "index.html"), "<!doctype html><title>t</title>");
    writeFileSync(join(root, "app.js"), "export {};");
    writeFileSync(join(root, "kernel.wasm"), new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    writeFileSync(join(root, "sub", "index.html"), "<p>sub</p>");
    writeFileSync(join(dir, "secret.txt"), SECRET);
    symlinkSync(join(dir, "secret.txt"), join(root, "link-out.txt"));
    symlinkSync(dir, join(root, "dir-out"));
    symlinkSync(join(root, "app.js"), join(root, "link-in.js"));
    ({ server } = await serve({ root, port: 0 }));
    port = (server.address() as AddressInfo).port;
  });

  after(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("binds 127.0.0.1 by default", () => {
    assert.equal((server.address() as AddressInfo).address, "127.0.0.1");
  });

  test("sends COOP/COEP/CORP and a self-only CSP on every response, errors included", async () => {
    for (const path of ["/", "/app.js", "/missing", "/../secret.txt"]) {
      const r = await get(port, path);
      assert.equal(r.headers["cross-origin-opener-policy"], "same-origin", path);
      assert.equal(r.headers["cross-origin-embedder-policy"], "require-corp", path);
      assert.equal(r.headers["cross-origin-resource-policy"], "same-origin", path);
      assert.match(String(r.headers["content-security-policy"]), /default-src 'self'/, path);
    }
  });

  test("node:http's own refusals carry the same headers: a request line too long (431), a malformed request (400), an unmet Expect", async () => {
    const cases: [string, string, number][] = [
      ["an over-long URL", `GET /${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431],
      ["a malformed request line", "GET / HTTP/9.9 what\r\n\r\n", 400],
      ["a request that is not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400],
      ["an Expect it cannot meet", "GET /app.js HTTP/1.1\r\nHost: x\r\nExpect: the-moon\r\nConnection: close\r\n\r\n", 200],
    ];
    for (const [what, bytes, status] of cases) {
      const r = await raw(port, bytes);
      assert.equal(r.status, status, `${what}: ${r.head}`);
      assert.equal(r.headers["cross-origin-opener-policy"], "same-origin", what);
      assert.equal(r.headers["cross-origin-embedder-policy"], "require-corp", what);
      assert.equal(r.headers["cross-origin-resource-policy"], "same-origin", what);
      assert.match(r.headers["content-security-policy"] ?? "", /default-src 'self'/, what);
    }
  });

  test("serves files with their MIME types; a folder serves its index.html", async () => {
    const cases: [string, RegExp][] = [
      ["/", /^text\/html/], ["/index.html", /^text\/html/], ["/app.js", /^text\/javascript/],
      ["/kernel.wasm", /^application\/wasm$/], ["/sub/", /^text\/html/], ["/link-in.js", /^text\/javascript/],
    ];
    for (const [path, type] of cases) {
      const r = await get(port, path);
      assert.equal(r.status, 200, path);
      assert.match(String(r.headers["content-type"]), type, path);
    }
    assert.equal((await get(port, "/sub/")).body, "<p>sub</p>");
    const head = await get(port, "/app.js", "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal((await get(port, "/", "POST")).status, 405);
    assert.equal((await get(port, "/nope.js")).status, 404);
  });

  test("refuses every way out of the folder", async () => {
    const attempts = [
      "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/%2e%2e%2fsecret.txt",
      "/sub/..%2f..%2fsecret.txt", "/..%5csecret.txt", "/..\\secret.txt", "/%00", "/index.html%00.js",
      "//" + join(dir, "secret.txt"), "/" + join(dir, "secret.txt"), "http://127.0.0.1/../secret.txt", "*",
      "/link-out.txt", "/dir-out/secret.txt", "/%", "/%zz",
    ];
    for (const path of attempts) {
      const r = await get(port, path);
      assert.ok([400, 403, 404].includes(r.status), `${path}: status ${r.status}`);
      assert.ok(!r.body.includes(SECRET), `${path}: leaked the file outside the root`);
    }
    assert.equal((await get(port, "/../secret.txt")).status, 403);
    assert.equal((await get(port, "/%2e%2e/secret.txt")).status, 403);
    assert.equal((await get(port, "/link-out.txt")).status, 403, "a symlink out is refused");
  });

  test("the command line prints the URL, binds 127.0.0.1 and takes --port", async () => {
    const script = fileURLToPath(new URL("../web/server.mjs", import.meta.url));
    const child = spawn(process.execPath, [script, "--port", "0", "--root", root], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (c) => {
          out += c;
          const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
          if (m) resolve(m[0]);
        });
        child.on("exit", (code) => reject(new Error(`server exited with ${code}: ${out}`)));
      });
      const r = await get(Number(new URL(url).port), "/");
      assert.equal(r.status, 200);
    } finally {
      child.kill();
    }
    const bad = spawn(process.execPath, [script, "--port", "http"], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    bad.stderr.on("data", (c) => (err += c));
    const code = await new Promise((resolve) => bad.on("exit", resolve));
    assert.equal(code, 1);
    assert.match(err, /--port must be an integer/);
  });

  test("with exitWithParent (npm start), the server exits when npm is killed outright, shell between them or not", async () => {
    // npm runs a script as `sh -c "node web/start.mjs …"`; a stand-in for npm starts the same chain
    const child = join(dir, "serve-child.mjs");
    const server = new URL("../web/server.mjs", import.meta.url).href;
    writeFileSync(child, `import { main } from ${JSON.stringify(server)};\nawait main({ root: ${JSON.stringify(root)}, host: "127.0.0.1", port: 0 }, { watchParent: true });\n`);
    for (const viaShell of [true, false]) {
      const start = viaShell ? `["sh", ["-c", ${JSON.stringify(`"${process.execPath}" "${child}"; exit $?`)}]]` : `[${JSON.stringify(process.execPath)}, [${JSON.stringify(child)}]]`;
      const npm = spawn(process.execPath, ["-e", `const [c, a] = ${start}; require("node:child_process").spawn(c, a, { stdio: "inherit" });`], { stdio: ["ignore", "pipe", "inherit"] });
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        npm.stdout.on("data", (c) => {
          out += c;
          const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//);
          if (m) resolve(m[0]);
        });
        npm.on("exit", (code) => reject(new Error(`exited with ${code}: ${out}`)));
      });
      const served = Number(new URL(url).port);
      assert.equal((await get(served, "/")).status, 200);
      npm.kill("SIGKILL"); // no signal reaches the shell or the server
      await waitUntilClosed(served, `the server ${viaShell ? "under a shell " : ""}after its npm was killed`); // it checks every half second
    }
  });
});
