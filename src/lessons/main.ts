/**
 * What `npm start` runs: lesson 1, the lookup table against softmax attention, printed to the
 * terminal. (`attend lookup-vs-soft` runs the same experiment with options and --json.)
 */
import "../ops/methods.js"; // x.add(y), x.backward(), ...: what user code may call
import { lookupVsSoft } from "./lookupVsSoft.js";
import { explainLookupVsSoft, formatLookupVsSoft } from "./report.js";

function main(): void {
  const out = (s = ""): void => void process.stdout.write(`${s}\n`);
  for (const line of explainLookupVsSoft()) out(line);
  out();
  out("Training both blocks...");
  out();
  for (const line of formatLookupVsSoft(lookupVsSoft())) out(line);
}

main();
