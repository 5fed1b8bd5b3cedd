/** Shared by the Hugging Face tests: a word-level tokenizer.json for the fixture models' 40 ids. */

/** Words for the ids 0..39 (whitespace-split, decoded joined by spaces). */
export const WORDS = "<unk> the a cat dog sat on mat and ran to big small red blue house tree sun moon star sky sea fish bird is was he she it they we you saw likes eats runs ! . ? <eos>".split(" ");

/** A WordLevel tokenizer.json over WORDS, as @huggingface/tokenizers reads it. */
export function wordTokenizer(): string {
  return JSON.stringify({
    version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null,
    decoder: { type: "WordPiece", prefix: "##", cleanup: false }, model: { type: "WordLevel", vocab: Object.fromEntries(WORDS.map((w, i) => [w, i])), unk_token: "<unk>" },
  });
}
