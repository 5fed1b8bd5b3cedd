/** The published entry point: `import ... from "attend"` resolves to dist/ and exports the contract. */
import { test } from "node:test";
import assert from "node:assert/strict";

const CONTRACT = [
  "tensor", "Tensor", "zeros", "ones", "full", "arange", "randn", "rand", "Generator", "noGrad",
  "add", "sub", "mul", "div", "matmul", "reshape", "transpose", "permute", "slice", "concat", "split", "stack",
  "sum", "mean", "max", "exp", "log", "sqrt", "tanh", "relu", "gelu", "softmax", "logSoftmax", "layerNorm", "rmsNorm",
  "embedding", "where", "maskedFill", "dropout", "crossEntropy",
  "lookupAttention", "scaledDotProductAttention", "MultiheadAttention", "GroupedQueryAttention",
  "saveSafetensors", "loadSafetensors",
];

test("the package entry (dist/index.js via exports) has every contract name", async () => {
  const mod = (await import("attend")) as Record<string, unknown>;
  const missing = CONTRACT.filter((n) => mod[n] === undefined);
  assert.deepEqual(missing, []);
});

test("the browser entry has the same API, with file functions that explain themselves", async () => {
  const node = (await import("attend")) as Record<string, unknown>;
  // @ts-ignore: dist is built before the tests run
  const browser = (await import("../dist/browser.js")) as Record<string, (...a: unknown[]) => unknown>;
  assert.deepEqual(Object.keys(browser).sort(), Object.keys(node).sort());
  assert.throws(() => browser.loadSafetensors("x"), /no file system in a browser/);
});
