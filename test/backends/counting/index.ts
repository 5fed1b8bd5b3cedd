/**
 * A test-only backend: the reference backend with a counter on each kernel. It shows that a backend
 * is one folder plus one registerBackend call (register.ts), and the conformance suites run on it
 * with no edit (test/registry.test.ts).
 */
import { type Backend, findBackend } from "../../../src/index.js";

export const calls = { matmul: 0, attentionForward: 0, attentionBackward: 0 };

export function countingBackend(): Backend {
  const ref = findBackend("ref")!;
  return {
    name: "counting",
    matmul(out, a, b, p) { calls.matmul++; ref.matmul(out, a, b, p); },
    attentionForward(p, q, k, v, out, lse) { calls.attentionForward++; ref.attentionForward(p, q, k, v, out, lse); },
    attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv) {
      calls.attentionBackward++;
      ref.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
    },
  };
}
