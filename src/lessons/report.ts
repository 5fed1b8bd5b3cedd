/** Lesson 1 as terminal text: the explanation, both learning curves side by side, the outcome. */
import { Generator } from "../tensor/random.js";
import { recallTask } from "../data/tasks.js";
import { type LookupVsSoftResult, LOOKUP_VS_SOFT_DEFAULTS, type LookupVsSoftOptions } from "./lookupVsSoft.js";

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function fmtNorm(x: number): string {
  return x === 0 ? "0" : x.toExponential(1);
}

function pad(s: string, n: number, left = true): string {
  return left ? s.padStart(n) : s.padEnd(n);
}

/** An example of the task, e.g. `aQcBeF?c -> B` */
function sampleLine(pairs: number): string {
  const task = recallTask({ pairs, keys: "abcdefghijklmnopqrstuvwxyz", values: "ABCDEFGHIJKLMNOPQRSTUVWXYZ", distinctValues: pairs <= 26 });
  const e = task.sample(new Generator(2024));
  return `"${task.vocab.decode(e.source)}" -> "${task.vocab.decode(e.target)}"`;
}

/** Greedy word wrap at `width` columns. */
export function wrap(text: string, width = 78): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line.length > 0 ? `${line} ${word}` : word;
  }
  if (line.length > 0) lines.push(line);
  return lines;
}

export function explainLookupVsSoft(opts: LookupVsSoftOptions = {}): string[] {
  const o = { ...LOOKUP_VS_SOFT_DEFAULTS, ...opts };
  return [
    "Lesson 1: a lookup table cannot learn what to look up; softmax attention can",
    "",
    ...wrap("A lookup table answers a query with the value of the ONE key that matches it best:"),
    "    out = v[argmax_i q·k_i]",
    ...wrap("Softmax attention pours in every value, weighted by how well its key matches:"),
    "    out = Σ_i softmax_i(q·k_i / sqrt(d)) v_i",
    "",
    ...wrap(
      `Both are trained on associative recall: ${o.pairs} key-value pairs, then "?" and one of the keys; ` +
        `the answer is that key's value, e.g. ${sampleLine(o.pairs)}. The two blocks share everything else: ` +
        `fixed random token embeddings (${o.dModel}-d), trainable query/key projections (Linear ${o.dModel}->${o.dKey}), ` +
        `the same value path and output layer, the same initial weights, AdamW (lr ${o.lr}), ${o.steps} steps ` +
        `of ${o.batchSize} examples, seed ${o.seed}.`,
    ),
    "",
    ...wrap(
      "argmax is an indicator function: nudge q or k a little and the choice does not change, so its " +
        "derivative is 0. No gradient reaches the lookup table's query/key projections; they keep their " +
        "random starting directions, and it picks the wrong key as often as it did at the start. " +
        "Softmax is smooth: every key gets a gradient, and the projections learn to match query and key.",
    ),
  ];
}

export function formatLookupVsSoft(r: LookupVsSoftResult): string[] {
  const colW = 36;
  const head = (s: string): string => pad(s, colW, false);
  const cols = (loss: string, acc: string, key: string, norm: string): string => `${pad(loss, 7)} ${pad(acc, 6)} ${pad(key, 7)} ${pad(norm, 9)}   `;
  const lines: string[] = [];
  lines.push(`      ${head("lookup table (argmax q·k)")}${head("softmax attention")}`.trimEnd());
  lines.push(` step ${cols("loss", "acc", "key-acc", "|∇Wq,Wk|")}${cols("loss", "acc", "key-acc", "|∇Wq,Wk|")}`.trimEnd());
  const n = Math.max(r.lookup.curve.length, r.soft.curve.length);
  for (let i = 0; i < n; i++) {
    const a = r.lookup.curve[i];
    const b = r.soft.curve[i];
    const cell = (p: typeof a | undefined): string => (p === undefined ? cols("", "", "", "") : cols(p.loss.toFixed(3), pct(p.accuracy), pct(p.keyAccuracy), fmtNorm(p.qkGradNorm)));
    lines.push(`${pad(String((a ?? b).step), 5)} ${cell(a)}${cell(b)}`.trimEnd());
  }
  lines.push("");
  lines.push("loss, acc: on the training batches since the previous line");
  lines.push("key-acc:   share of queries whose best-matching key (argmax q·k) is the queried one");
  lines.push("|∇Wq,Wk|:  L2 norm of the gradient reaching the query/key projection weights");
  lines.push("");
  lines.push(`Validation (${r.validationSize} held-out examples; chance = 1/${r.pairs} = ${pct(r.chance)}):`);
  lines.push(`                      accuracy   right key: before -> after   mean |∇Wq,Wk|`);
  for (const [name, run] of [["lookup table", r.lookup], ["softmax attention", r.soft]] as const) {
    const norm = run.qkGradNorm === 0 ? "exactly 0" : fmtNorm(run.qkGradNorm);
    lines.push(`  ${pad(name, 18, false)} ${pad(pct(run.accuracy), 8)}   ${pad(pct(run.keyAccuracyBefore), 17)} -> ${pad(pct(run.keyAccuracy), 6)}   ${pad(norm, 13)}`);
  }
  lines.push("");
  lines.push(
    ...wrap(
      `The lookup table keeps the rule its random projections gave it: here the right key for ${pct(r.lookup.keyAccuracy)} ` +
        `of queries (chance on average over seeds). Softmax attention learned to find it. ` +
        `(${r.steps} steps each, ${(r.lookup.seconds + r.soft.seconds).toFixed(1)} s)`,
    ),
  );
  return lines;
}
