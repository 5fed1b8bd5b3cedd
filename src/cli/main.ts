#!/usr/bin/env node
/**
 * The `attend` command (package.json "bin"). Ctrl-C during `train` stops after the current step and
 * saves a checkpoint (a second Ctrl-C exits at once); other commands stop immediately.
 */
import "../ops/methods.js"; // x.add(y), x.backward(), ...: what user code (and checkpoints of it) may call
import { runCli } from "./run.js";

const argv = process.argv.slice(2);
const controller = new AbortController();
process.once("SIGINT", () => {
  if (argv[0] === "train") controller.abort(); // stops after the step, saves, exits with 130
  else process.exit(130); // nothing to save: stop now
});

const code = await runCli(argv, { stdout: process.stdout, stderr: process.stderr, signal: controller.signal });
process.exitCode = code;
