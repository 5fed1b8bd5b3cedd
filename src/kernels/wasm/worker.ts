/**
 * The source of a pool worker, as a string: it starts from `new Worker(source, { eval: true })` in Node
 * and from a Blob URL in browsers, so no worker file has to be found next to the library at run time.
 *
 * A worker instantiates the kernels module on the shared memory, marks itself ready, then sleeps on
 * the generation word. When the caller publishes a job (generation g) and has named this worker a
 * participant (PART[w] == g), the worker grabs tasks through run_tasks until none are left, then
 * counts itself done and wakes the caller. It spins briefly before sleeping so that back-to-back
 * jobs (the two phases of a backward pass, successive rounds) do not pay a wake-up each.
 */
export const workerSource = `"use strict";
function start(d) {
  var inst = new WebAssembly.Instance(d.module, { env: { memory: d.memory, abort: function () { throw new Error("wasm abort"); } } });
  var run = inst.exports.run_tasks;
  var ctl = new Int32Array(d.memory.buffer, d.ctlBase, d.ctlWords);
  var me = d.index, GEN = d.GEN, DONE = d.DONE, ERR = d.ERROR, PART = d.PART + me;
  Atomics.store(ctl, d.READY + me, 1);
  var seen = 0;
  for (;;) {
    var g = Atomics.load(ctl, GEN);
    if (g === seen) {
      for (var i = 0; i < d.spin && g === seen; i++) g = Atomics.load(ctl, GEN);
      if (g === seen) { Atomics.wait(ctl, GEN, seen); continue; }
    }
    seen = g;
    if (Atomics.load(ctl, PART) !== g) continue;
    try { run(me + 1); } catch (e) { Atomics.store(ctl, ERR, 1); }
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}
if (typeof require === "function") {
  start(require("node:worker_threads").workerData);
} else {
  self.onmessage = function (e) { self.onmessage = null; start(e.data); };
}
`;
