#!/usr/bin/env node
/**
 * `npm start` and `npm run explorer`: type-check and build web/ into web/dist (quietly: only
 * warnings and errors), then serve it from this same process, so that
 *
 *   npm start -- --port 8080
 *
 * hands `--port 8080` to the server (the arguments are read before the build, so a wrong one fails
 * at once), and stopping npm stops the server (it exits with its parent; see exitWithParent).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { USAGE, main, parseArgs } from "./server.mjs";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

const usage = USAGE.replace("node web/server.mjs", "npm start --");
let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  console.error(`${err.message}\n${usage}`);
  process.exit(1);
}
if (opts.help) {
  console.log(usage);
  process.exit(0);
}

const tsc = spawnSync(process.execPath, [here("../node_modules/typescript/bin/tsc"), "-p", here("tsconfig.json")], { stdio: "inherit" });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
const { build } = await import("vite");
try {
  await build({ configFile: here("vite.config.ts"), logLevel: "warn" });
} catch {
  process.exit(1); // vite has printed the error
}
await main(opts, { watchParent: true });
