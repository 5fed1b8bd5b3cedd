/**
 * The one registration (load with node --import before the suites). When ATTEND_COUNTING_OUT is set,
 * the call counts are written there as JSON when the process exits.
 */
import { writeFileSync } from "node:fs";
import { registerBackend } from "../../../src/index.js";
import { calls, countingBackend } from "./index.js";

registerBackend("counting", countingBackend);

const outFile = process.env.ATTEND_COUNTING_OUT;
if (outFile) {
  process.on("exit", () => {
    writeFileSync(`${outFile}.${process.pid}.json`, JSON.stringify(calls));
  });
}
