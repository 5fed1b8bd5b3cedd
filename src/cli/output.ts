/**
 * Output paths are checked before a command does its work, so a path that cannot be written fails
 * in a second with exit code 2, not after a long training run.
 */
import { closeSync, openSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { UsageError } from "./args.js";

/**
 * Check that `path` (the value of --`option`) can be written: it is not a directory, and its
 * directory exists (or, with `createDirs`, the nearest existing ancestor is a directory that the
 * missing ones can be made in) and lets us create a file, which is tried with a probe file that is
 * removed at once. Creates nothing that stays. Throws a UsageError naming the option and the path.
 */
export function checkOutputPath(command: string, option: string, path: string, createDirs: boolean): void {
  const bad = (why: string): never => {
    throw new UsageError(`${command}: --${option} ${path}: ${why}`);
  };
  const target = statOf(path);
  if (target?.isDirectory()) bad("is a directory; expected a file name");
  let dir = dirname(resolve(path));
  const wanted = dir;
  let info = statOf(dir);
  while (info === undefined && createDirs && dirname(dir) !== dir) {
    dir = dirname(dir);
    info = statOf(dir);
  }
  if (info === undefined) bad(`the directory ${dirname(path)} does not exist`);
  if (!info!.isDirectory()) bad(`${dir === wanted ? dirname(path) : dir} is not a directory`);
  const probe = join(dir, `.${basename(path)}.attend-probe-${process.pid}-${Math.floor(Math.random() * 2 ** 32).toString(16)}`);
  try {
    closeSync(openSync(probe, "wx"));
  } catch (e) {
    bad(`cannot create files in ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    unlinkSync(probe);
  } catch {
    // removed by someone else already
  }
}

function statOf(path: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
