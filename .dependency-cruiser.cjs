/**
 * The layers of src/, lowest first, checked by `npm run lint:deps` (part of `npm test`): a file may
 * import from its own layer or a lower one, never a higher one, and no import circle is allowed,
 * type-only imports included. Adding a folder to src/ means adding it here.
 */
const LAYERS = [
  ["tensor"], // Tensor, dtypes, shapes, errors, random, validation
  ["autograd"], // the tape, backward(), gradcheck
  ["kernels"], // the Backend interface, the registry, ref and wasm backends
  ["ops"], // differentiable ops; each gradient beside its forward
  ["io", "viz", "data", "nn", "optim"], // safetensors, pictures, tasks, modules, optimizers
  ["attention"], // lookup, sdpa (textbook and fused), masks, the attention modules, RoPE, KV cache
  ["models"], // transformer blocks, GPT, encoder-decoder, generation, checkpoints
  ["pretrained"], // Hugging Face folders (GPT-2, Llama, Mistral, Qwen2) as models, with their tokenizers
  ["train", "lessons"], // training runs, the lookup-vs-soft lesson
  ["cli"], // the attend command
];

const folder = (name) => `^src/${name}/`;
const forbidden = [
  {
    name: "no-circular",
    comment: "An import circle: split the shared part into a file below both.",
    severity: "error",
    from: { path: "^src/" },
    to: { circular: true },
  },
  {
    name: "no-unknown-folder",
    comment: "Every folder of src/ has a layer in .dependency-cruiser.cjs.",
    severity: "error",
    from: { path: "^src/[^/]+/", pathNot: `^src/(${LAYERS.flat().join("|")})/` },
    to: {},
  },
  {
    name: "one-door-into-kernels",
    comment:
      "Above src/kernels, ops reach a backend only through kernels/dispatch.ts (plus the interface types in " +
      "backend.ts, the shared dropout and causal rules, and ref/flash.ts as a readable algorithm that lesson " +
      "code steps through, not as a backend); selecting backends is the entry files' business.",
    severity: "error",
    from: { path: "^src/[^/]+/", pathNot: "^src/kernels/" },
    to: { path: "^src/kernels/", pathNot: "^src/kernels/(dispatch|backend|dropoutHash|causal|ref/flash)\.ts$" },
  },
];
LAYERS.forEach((layer, rank) => {
  const higher = LAYERS.slice(rank + 1).flat();
  if (higher.length === 0) return;
  for (const name of layer) {
    forbidden.push({
      name: `no-upward-from-${name}`,
      comment: `src/${name} sits below ${higher.join(", ")} and the entry files; it may not import them.`,
      severity: "error",
      from: { path: folder(name) },
      to: { path: [...higher.map(folder), "^src/[^/]+\\.ts$"] },
    });
  }
});
// The entries (src/core.ts, index.ts, browser.ts, nnNamespace.ts) sit on top and may import anything.

module.exports = {
  forbidden,
  options: {
    // dependency-cruiser's TypeScript parser does not read TypeScript 7 yet; swc parses the sources.
    parser: "swc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/kernels/wasm/build/" },
  },
};
