// One measurement in a fresh process, so that peak RSS is per row, wasm heaps
// (which never shrink) start empty, and a crash or an out-of-memory kill
// becomes a row with ok: false instead of taking the benchmark down.
//
//   node [--import tsx] bench/peers/child.ts '<json ChildSpec>'
//
// Prints one line: RESULT_MARK + JSON(ChildResult).

import { type ChildResult, type ChildSpec, RESULT_MARK, benchChecked, cpuShare, cpuSnapshot, peakRssMiB, shortError } from "./common.js";
import { loadPeer } from "./registry.js";

async function main(): Promise<ChildResult> {
  const spec = JSON.parse(process.argv[2] ?? "") as ChildSpec;
  let info: string | undefined;
  try {
    const peer = await loadPeer(spec.peer);
    info = await peer.setup();
    const before = cpuSnapshot();
    const r = await benchChecked(peer, spec.case, spec.timing);
    return { ...r, peakRssMiB: peakRssMiB(), info, cpu: cpuShare(before, cpuSnapshot()) };
  } catch (e) {
    return { medianMs: NaN, gflops: NaN, ok: false, note: `error: ${shortError(e)}`, peakRssMiB: peakRssMiB(), info };
  }
}

const result = await main();
process.stdout.write(RESULT_MARK + JSON.stringify(result) + "\n", () => process.exit(0));
