/** Shared by the Hugging Face tests: a word-level tokenizer.json for the fixture models' 40 ids. */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Words for the ids 0..39 (whitespace-split, decoded joined by spaces). */
export const WORDS = "<unk> the a cat dog sat on mat and ran to big small red blue house tree sun moon star sky sea fish bird is was he she it they we you saw likes eats runs ! . ? <eos>".split(" ");

/** A WordLevel tokenizer.json over WORDS, as @huggingface/tokenizers reads it. */
export function wordTokenizer(): string {
  return JSON.stringify({
    version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null,
    decoder: { type: "WordPiece", prefix: "##", cleanup: false }, model: { type: "WordLevel", vocab: Object.fromEntries(WORDS.map((w, i) => [w, i])), unk_token: "<unk>" },
  });
}

/** A fixture folder's files (expected.json left out) as fromPretrainedFiles takes them, to add or change files in. */
export function folderFiles(dir: string): Map<string, Uint8Array | string> {
  const files = new Map<string, Uint8Array | string>();
  for (const f of readdirSync(dir)) {
    if (f !== "expected.json") files.set(f, f.endsWith(".json") ? readFileSync(join(dir, f), "utf8") : new Uint8Array(readFileSync(join(dir, f))));
  }
  return files;
}
