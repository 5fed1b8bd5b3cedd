/** Types for server.mjs (a plain Node ESM script, so that `node web/server.mjs` needs no build). */
import type { Server } from "node:http";

export const DEFAULT_PORT: number;
export const DEFAULT_HOST: string;
export const DEFAULT_ROOT: string;
export const SECURITY_HEADERS: Record<string, string>;
export function mimeType(path: string): string;
export function resolveRequestPath(root: string, rawUrl: string | undefined): Promise<{ path: string; size: number }>;
export function createStaticServer(opts?: { root?: string }): Promise<Server>;
export function serve(opts?: { root?: string; host?: string; port?: number }): Promise<{ server: Server; url: string }>;
export interface ServeOptions {
  root: string;
  host: string;
  port: number;
  help?: boolean;
}
export const USAGE: string;
export function parseArgs(argv: string[]): ServeOptions & { help: boolean };
export function exitWithParent(intervalMs?: number): void;
export function main(opts: ServeOptions, o?: { watchParent?: boolean }): Promise<Server>;
