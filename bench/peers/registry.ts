// Peer names → modules, loaded on demand so a process only pays for the
// libraries it runs (each library is imported inside its module's setup()).

import type { PeerModule } from "./common.js";

export const PEER_NAMES = ["tfjs-wasm", "onnxruntime-node", "jax-js"] as const;
export type PeerName = (typeof PEER_NAMES)[number];

const ALIASES: Record<string, PeerName> = {
  tfjs: "tfjs-wasm",
  "tfjs-wasm": "tfjs-wasm",
  tensorflow: "tfjs-wasm",
  ort: "onnxruntime-node",
  onnxruntime: "onnxruntime-node",
  "onnxruntime-node": "onnxruntime-node",
  jax: "jax-js",
  jaxjs: "jax-js",
  "jax-js": "jax-js",
};

export function peerName(s: string): PeerName {
  const n = ALIASES[s.trim().toLowerCase()];
  if (!n) throw new Error(`unknown peer "${s}" (known: ${PEER_NAMES.join(", ")})`);
  return n;
}

export async function loadPeer(name: string): Promise<PeerModule> {
  switch (peerName(name)) {
    case "tfjs-wasm":
      return (await import("./tfjs.js")).peer;
    case "onnxruntime-node":
      return (await import("./onnxruntime.js")).peer;
    case "jax-js":
      return (await import("./jaxjs.js")).peer;
  }
}
