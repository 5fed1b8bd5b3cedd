/** Small node:net helpers for tests that start servers: a free port, and waiting for one to close. */
import assert from "node:assert/strict";
import { type AddressInfo, connect, createServer } from "node:net";

/** A port nothing listens on now (the OS picks it; it is released before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Wait until nothing listens on the port. `what` is expected within a second or so; the limit, a
 * minute, only turns a server that never stops into a failure instead of a hung test.
 */
export async function waitUntilClosed(port: number, what: string, limitMs = 60_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (await listening(port)) {
    assert.ok(Date.now() < until, `${what}: something still listens on port ${port} after ${limitMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
