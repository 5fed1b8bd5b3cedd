/**
 * Vite config for the attend explorer (web/). `attend` resolves to the library's browser entry in
 * src/ (src/browser.ts), so the page runs the library's current source through its public API
 * only, with no prior `npm run build`: Vite compiles it with the page.
 *
 * The dev and preview servers send the same cross-origin-isolation headers as web/server.mjs, so
 * SharedArrayBuffer (and with it the wasm thread pool) works in every way of serving the app.
 *
 * The pages' formulas are typeset here, at build time (web/typeset.ts), not in the browser.
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { typesetFormulas } from "./typeset.js";

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

const isolation = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

export default defineConfig({
  root: here("."),
  base: "./",
  publicDir: false,
  plugins: [typesetFormulas()],
  resolve: {
    alias: { attend: here("../src/browser.ts") },
  },
  build: {
    outDir: here("dist"),
    emptyOutDir: true,
    target: "es2022",
    // The library, KaTeX's CSS and fonts and d3 are bundled; nothing is fetched from a CDN.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1500,
    // no "[PLUGIN_TIMINGS]" report when a busy machine makes the build slow: it is not a problem of the build
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
  worker: { format: "es" },
  server: { host: "127.0.0.1", headers: isolation },
  preview: { host: "127.0.0.1", headers: isolation },
});
