/**
 * The source of a pool worker, as a string: it starts from `new Worker(source, { eval: true })` in Node
 * and from a Blob URL in browsers, so no worker file has to be found next to the library at run time.
 * It is valid as a script and as a module (no require, no import), so a host whose NODE_OPTIONS make
 * evaluated code an ES module (--input-type=module) runs it the same.
 *
 * A worker instantiates the kernels module on the shared memory, marks itself ready, then sleeps on
 * the generation word. When the caller publishes a job (generation g) and has named this worker a
 * participant (PART[w] == g), the worker takes its part (PART[w]: g -> 0; the caller withdraws a
 * worker that has not taken it by the time the caller's own tasks are done, the same way, so exactly one
 * of them succeeds), grabs tasks through run_tasks until none are left, then counts itself done and
 * wakes the caller. It spins briefly before sleeping so that back-to-back
 * jobs (the two phases of a backward pass, successive rounds) do not pay a wake-up each.
 *
 * Before it touches the job's buffers the worker makes sure it sees all the memory the job reaches:
 * V8 tells other threads of a shared memory's growth by an interrupt, and a worker that was starting
 * while the calling thread grew the memory can miss it and keep the older, smaller size (its accesses
 * above it then trap). grow(0) makes V8 refresh this thread's view of the memory.
 *
 * A job may be published while the caller still stages its inputs (runtime.ts runJob's `stage`): run_tasks
 * then returns -2 when the next task is not yet available, and the worker waits for J_AVAIL to change.
 *
 * A task that throws (a trap) sets the job's failure flag, which makes every other thread stop taking
 * tasks and stop waiting for dQ turns; the first failure's message goes to the control block, and the
 * calling thread throws it.
 */
export const workerSource = `"use strict";
function start(d) {
  var memory = d.memory;
  var inst = new WebAssembly.Instance(d.module, { env: { memory: memory, abort: function () { throw new Error("wasm abort"); } } });
  var run = inst.exports.run_tasks;
  var ctl = new Int32Array(memory.buffer, d.ctlBase, d.ctlWords);
  var job = new Int32Array(memory.buffer, d.jobBase, d.jobWords);
  var me = d.index, GEN = d.GEN, DONE = d.DONE, PART = d.PART + me;
  var FAILED = d.FAILED, MEM_PAGES = d.MEM_PAGES, AVAIL = d.AVAIL, NEXT = d.NEXT, NTASKS = d.NTASKS, TEXT = d.TEXT, TEXT_CHARS = d.TEXT_CHARS;
  function fail(e) {
    if (Atomics.compareExchange(job, FAILED, 0, me + 2) !== 0) return;
    var s = String(e && e.message !== undefined ? (e.name || "Error") + ": " + e.message : e);
    var n = Math.min(s.length, TEXT_CHARS - 1);
    for (var i = 0; i < n; i++) ctl[TEXT + 1 + i] = s.charCodeAt(i);
    Atomics.store(ctl, TEXT, n);
  }
  Atomics.store(ctl, d.READY + me, 1);
  var seen = 0;
  for (;;) {
    var g = Atomics.load(ctl, GEN);
    if (g === seen) {
      for (var i = 0; i < d.spin && g === seen; i++) g = Atomics.load(ctl, GEN);
      if (g === seen) { Atomics.wait(ctl, GEN, seen); continue; }
    }
    seen = g;
    if (Atomics.compareExchange(ctl, PART, g, 0) !== g) continue; // not invited, or withdrawn by the caller
    try {
      var need = Atomics.load(job, MEM_PAGES) * 65536;
      if (memory.buffer.byteLength < need) memory.grow(0);
      if (memory.buffer.byteLength < need) throw new Error("worker " + me + " sees " + memory.buffer.byteLength + " bytes of memory, the job reaches " + need);
      // -2: the caller is still staging the next task's inputs; spin briefly, then sleep until it releases more
      for (var r = run(me + 1); r === -2; r = run(me + 1)) {
        var a = Atomics.load(job, AVAIL);
        // released meanwhile (all of them, or more than taken): take them; else wait for the next release
        if (a >= Atomics.load(job, NTASKS) || Atomics.load(job, NEXT) < a) continue;
        for (var j = 0; j < d.spin && Atomics.load(job, AVAIL) === a; j++);
        Atomics.wait(job, AVAIL, a); // the caller notifies after each rise (returns at once if it rose)
      }
    } catch (e) {
      fail(e);
    }
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}
var proc = typeof process === "object" && process !== null ? process : null;
if (proc !== null && typeof proc.getBuiltinModule === "function") {
  start(proc.getBuiltinModule("node:worker_threads").workerData);
} else if (typeof require === "function") {
  start(require("node:worker_threads").workerData);
} else {
  self.onmessage = function (e) { self.onmessage = null; start(e.data); };
}
`;
