/**
 * A character-level vocabulary: ids 0..3 are the special tokens (pad, start, end, separator), then
 * one id per symbol. Text is encoded one character per token; a character outside the vocabulary
 * is an error that names it and lists what is allowed.
 */
import { ArgumentError } from "../tensor/errors.js";

export const PAD = "<pad>";
export const BOS = "<s>";
export const EOS = "</s>";
export const SEP = "<sep>";

/** Targets at positions that are not scored (PyTorch's default ignore_index). */
export const IGNORE_INDEX = -100;

export class OutOfVocabularyError extends ArgumentError {}

export class Vocab {
  readonly tokens: readonly string[];
  readonly pad = 0;
  readonly bos = 1;
  readonly eos = 2;
  readonly sep = 3;
  private readonly ids: Map<string, number>;

  /** symbols: the single characters of the task, in id order after the four specials. */
  constructor(symbols: Iterable<string>) {
    const list = [...symbols];
    for (const s of list) {
      if (typeof s !== "string" || [...s].length !== 1) throw new ArgumentError(`Vocab: symbols must be single characters, got ${JSON.stringify(s)}`);
    }
    if (new Set(list).size !== list.length) throw new ArgumentError(`Vocab: symbols must be distinct, got ${JSON.stringify(list.join(""))}`);
    this.tokens = Object.freeze([PAD, BOS, EOS, SEP, ...list]);
    this.ids = new Map(this.tokens.map((t, i) => [t, i]));
  }

  get size(): number {
    return this.tokens.length;
  }

  /** The plain symbols (no specials), as one string. */
  get alphabet(): string {
    return this.tokens.slice(4).join("");
  }

  has(token: string): boolean {
    return this.ids.has(token);
  }

  id(token: string): number {
    const i = this.ids.get(token);
    if (i === undefined) throw new OutOfVocabularyError(`Vocab.id: ${JSON.stringify(token)} is not in the vocabulary (symbols: ${JSON.stringify(this.alphabet)})`);
    return i;
  }

  isSpecial(id: number): boolean {
    return id >= 0 && id < 4;
  }

  /** One id per character. */
  encode(text: string): number[] {
    if (typeof text !== "string") throw new ArgumentError(`Vocab.encode: text must be a string, got ${typeof text}`);
    const out: number[] = [];
    let pos = 0;
    for (const ch of text) {
      const i = this.ids.get(ch);
      if (i === undefined || i < 4) {
        throw new OutOfVocabularyError(
          `Vocab.encode: character ${JSON.stringify(ch)} at position ${pos} of ${JSON.stringify(text)} is not in the vocabulary (allowed: ${JSON.stringify(this.alphabet)})`,
        );
      }
      out.push(i);
      pos++;
    }
    return out;
  }

  /** Ids back to text; special tokens are dropped unless `specials` is true. */
  decode(ids: Iterable<number>, opts: { specials?: boolean } = {}): string {
    let s = "";
    for (const i of ids) {
      const t = this.tokens[i];
      if (t === undefined) throw new ArgumentError(`Vocab.decode: id ${i} is out of range (vocabulary size ${this.size})`);
      if (i < 4 && !opts.specials) continue;
      s += t;
    }
    return s;
  }

  /** A label per id for axes and tables: specials by name, symbols as themselves. */
  label(id: number): string {
    return this.tokens[id] ?? `#${id}`;
  }
}
