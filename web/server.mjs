#!/usr/bin/env node
/**
 * A small static file server for the built explorer (web/dist), plain node:http.
 *
 *   node web/server.mjs [--port 5173] [--host 127.0.0.1] [--root web/dist]
 *
 * - binds 127.0.0.1 unless --host says otherwise; --port 0 picks a free port; prints the URL;
 * - sends the cross-origin-isolation headers (COOP same-origin, COEP require-corp, CORP
 *   same-origin) that SharedArrayBuffer, and so the wasm thread pool, need; and a Content Security
 *   Policy that lets the page load nothing from outside its own origin;
 * - serves correct MIME types, application/wasm included;
 * - refuses anything outside the root: ".." segments (plain or percent-encoded), backslashes, NUL,
 *   and symlinks whose target lies outside (403); missing files are 404;
 * - answers what node:http would refuse by itself (a request line or headers too long: 431; a
 *   malformed request: 400; a request too slow: 408; an Expect it cannot meet) with the same headers;
 * - with exitWithParent (npm start), exits when the process that started it is gone.
 */
import { STATUS_CODES, createServer } from "node:http";
import { spawnSync } from "node:child_process";
import { createReadStream, existsSync, promises as fs, readFileSync } from "node:fs";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const DEFAULT_PORT = 5173;
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_ROOT = fileURLToPath(new URL("./dist", import.meta.url));

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".otf": "font/otf",
  ".txt": "text/plain; charset=utf-8",
  ".safetensors": "application/octet-stream",
};

export function mimeType(path) {
  return MIME[extname(path).toLowerCase()] ?? "application/octet-stream";
}

/** Headers on every response, errors included. */
export const SECURITY_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  // 'self' only: nothing from outside this origin. KaTeX sets inline styles; wasm needs
  // 'wasm-unsafe-eval' to compile; exports and workers may use blob: and data: URLs.
  "Content-Security-Policy": [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self' blob: data:",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
};

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * The file a request path names inside `root` (already a real path), or an HttpError. Decoding
 * happens once, here, and every check runs on the decoded path.
 */
export async function resolveRequestPath(root, rawUrl) {
  if (typeof rawUrl !== "string" || !rawUrl.startsWith("/")) throw new HttpError(400, "the request target must be a path starting with /");
  const pathPart = rawUrl.split(/[?#]/, 1)[0];
  let decoded;
  try {
    decoded = decodeURIComponent(pathPart);
  } catch {
    throw new HttpError(400, "malformed percent-encoding");
  }
  if (decoded.includes("\0") || decoded.includes("\\")) throw new HttpError(403, "forbidden character in path");
  const segments = decoded.split("/");
  if (segments.some((s) => s === "..")) throw new HttpError(403, "'..' is not allowed");
  let target = resolve(root, "." + decoded);
  if (target !== root && !target.startsWith(root + sep)) throw new HttpError(403, "outside the served folder");
  let real;
  try {
    real = await fs.realpath(target);
  } catch {
    throw new HttpError(404, "not found");
  }
  if (real !== root && !real.startsWith(root + sep)) throw new HttpError(403, "a link that leads outside the served folder");
  let stat = await fs.stat(real);
  if (stat.isDirectory()) {
    target = join(real, "index.html");
    try {
      real = await fs.realpath(target);
    } catch {
      throw new HttpError(404, "not found");
    }
    if (!real.startsWith(root + sep)) throw new HttpError(403, "a link that leads outside the served folder");
    stat = await fs.stat(real);
  }
  if (!stat.isFile()) throw new HttpError(404, "not found");
  return { path: real, size: stat.size };
}

/** A node:http server for `root` (not yet listening). */
export async function createStaticServer({ root = DEFAULT_ROOT } = {}) {
  if (!existsSync(root)) {
    throw new Error(`serve: ${root} does not exist; build the explorer first (npm run explorer:build)`);
  }
  const realRoot = await fs.realpath(root);
  const server = createServer(async (req, res) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" }).end("405 method not allowed\n");
      return;
    }
    try {
      const file = await resolveRequestPath(realRoot, req.url);
      res.writeHead(200, {
        "Content-Type": mimeType(file.path),
        "Content-Length": file.size,
        "Cache-Control": file.path.endsWith(".html") ? "no-cache" : "public, max-age=3600",
      });
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      createReadStream(file.path).on("error", () => res.destroy()).pipe(res);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      const text = err instanceof HttpError ? err.message : "internal error";
      if (!(err instanceof HttpError)) console.error(err);
      res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" }).end(`${status} ${text}\n`);
    }
  });
  // node:http answers these without the request handler, so without the headers above
  server.on("checkExpectation", (req, res) => server.emit("request", req, res)); // an unmet Expect: serve as usual
  server.on("clientError", answerClientError);
  return server;
}

/** The status node:http's own clientError handler would send for `err`. */
function clientErrorStatus(err) {
  if (err.code === "HPE_HEADER_OVERFLOW") return 431; // request line and headers over --max-http-header-size
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") return 408;
  return 400;
}

/** A request node:http could not parse: the answer it would give, with SECURITY_HEADERS, then close. */
function answerClientError(err, socket) {
  if (err.code === "ECONNRESET" || !socket.writable || socket._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  const status = clientErrorStatus(err);
  const body = `${status} ${STATUS_CODES[status].toLowerCase()}\n`;
  const headers = {
    ...SECURITY_HEADERS, "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(body), Connection: "close",
  };
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status]}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
}

/** Start serving; resolves to { server, url } once listening. */
export async function serve({ root = DEFAULT_ROOT, host = DEFAULT_HOST, port = DEFAULT_PORT } = {}) {
  const server = await createStaticServer({ root });
  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => {
      server.off("error", fail);
      ok();
    });
  });
  const addr = server.address();
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return { server, url: `http://${shownHost}:${addr.port}/` };
}

/** The command line's options; throws on anything it does not know. */
export function parseArgs(argv) {
  const opts = { root: DEFAULT_ROOT, host: DEFAULT_HOST, port: DEFAULT_PORT, help: false };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    const value = () => inline ?? argv[++i];
    if (flag === "--port" || flag === "-p") {
      const p = Number(value());
      if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error(`serve: --port must be an integer in 0..65535`);
      opts.port = p;
    } else if (flag === "--host") opts.host = value();
    else if (flag === "--root") opts.root = resolve(value());
    else if (flag === "--help" || flag === "-h") opts.help = true;
    else throw new Error(`serve: unknown argument ${argv[i]} (try --help)`);
  }
  return opts;
}

export const USAGE = "usage: node web/server.mjs [--port 5173] [--host 127.0.0.1] [--root web/dist]";

/** The parent of process `pid` (Linux: /proc; elsewhere: ps), or null where neither answers. */
function parentOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]); // "pid (comm) state ppid ..."
  } catch {
    const ps = spawnSync("ps", ["-o", "ppid=", "-p", String(pid)], { encoding: "utf8" });
    const ppid = Number(ps.stdout?.trim());
    return ps.status === 0 && Number.isInteger(ppid) && ppid > 0 ? ppid : null;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/**
 * Exit once the process that started this one is gone. npm runs a script as `sh -c "node …"`, and
 * neither a shell nor a parent killed outright (SIGKILL) passes a signal on; so this watches the
 * parent and the parent's parent (npm, under npm start), and exits when either has gone or this
 * process has been re-parented.
 */
export function exitWithParent(intervalMs = 500) {
  const parent = process.ppid;
  const grandparent = parentOf(parent);
  const watched = [parent, ...(grandparent !== null && grandparent > 1 ? [grandparent] : [])];
  setInterval(() => {
    if (process.ppid !== parent || !watched.every(alive)) process.exit(0);
  }, intervalMs).unref();
  // Ctrl+C and `kill` reach this process directly: stop serving at once
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.once(signal, () => process.exit(0));
}

/** Serve as the command line says; prints the URL. Returns the server, or exits with 1 and a message. */
export async function main(opts, { watchParent = false } = {}) {
  if (opts.help) {
    console.log(USAGE);
    process.exit(0);
  }
  try {
    const { server, url } = await serve(opts);
    if (watchParent) exitWithParent();
    console.log(`attend explorer: ${url}`);
    console.log("(Ctrl+C to stop)");
    return server;
  } catch (err) {
    console.error(err.code === "EADDRINUSE" ? `serve: port ${opts.port} is in use; pick another with --port` : err.message);
    process.exit(1);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
  await main(opts);
}
