/**
 * How fromPretrained reads a checkpoint (issue 13's peak memory): the model is built without a random
 * init, and each tensor is read by byte ranges, a bounded chunk at a time, straight into its
 * parameter (F32 as stored, BF16 widened, GPT-2's Conv1D [in, out] transposed to [out, in]).
 *
 * The checkpoint here is written by hand (header and bytes, not the library's writer) from known
 * values, with tensors larger than one read chunk, and the loaded parameters are compared with those
 * values exactly. A spy on the file counts the bytes read: each once, never the whole file at once.
 * Then the tokenizer's ids against the model's vocab_size.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Generator, PretrainedLM, type RandomAccessFile, archFromConfig, fromPretrainedFiles } from "../src/index.js";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { folderFiles, wordTokenizer } from "./hf-helpers.js";

// GPT-2 with tensors past the loader's 4 MiB read chunk: wte [4000, 576] (2.3M values), c_fc [576, 2304] (5.3 MB in F32)
const CONFIG = { model_type: "gpt2", vocab_size: 4000, n_positions: 16, n_embd: 576, n_layer: 1, n_head: 4 };
const CHUNK = 1 << 22;

interface Stored { name: string; shape: number[]; values: Float32Array }

/** The checkpoint's tensors in transformers' layout (Conv1D weights [in, out]), random values. */
function checkpoint(): Stored[] {
  const g = new Generator(11);
  const arch = archFromConfig(CONFIG);
  const C = arch.dModel;
  const shapes: [string, number[]][] = [["wte.weight", [arch.vocabSize, C]], ["wpe.weight", [arch.maxSeqLen, C]]];
  for (const [n, inF, outF] of [["attn.c_attn", C, 3 * C], ["attn.c_proj", C, C], ["mlp.c_fc", C, 4 * C], ["mlp.c_proj", 4 * C, C]] as const) {
    shapes.push([`h.0.${n}.weight`, [inF, outF]], [`h.0.${n}.bias`, [outF]]);
  }
  for (const n of ["h.0.ln_1", "h.0.ln_2", "ln_f"]) shapes.push([`${n}.weight`, [C]], [`${n}.bias`, [C]]);
  return shapes.map(([name, shape]) => {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = g.nextFloat64() - 0.5;
    return { name, shape, values };
  });
}

/** A safetensors file of the tensors, each stored as F32 or as BF16 (the float32's top 16 bits). */
function safetensors(tensors: Stored[], dtype: "F32" | "BF16"): Uint8Array {
  const item = dtype === "F32" ? 4 : 2;
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + item * t.values.length] };
    offset += item * t.values.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  for (const t of tensors) {
    for (const v of t.values) {
      f[0] = v;
      if (dtype === "F32") view.setFloat32(at, v, true);
      else view.setUint16(at, bits[0] >>> 16, true);
      at += item;
    }
  }
  return out;
}

/** bytes as a RandomAccessFile that records every read. */
function spy(bytes: Uint8Array): { file: RandomAccessFile; reads: number[]; closed: () => boolean } {
  const reads: number[] = [];
  let closed = false;
  const file: RandomAccessFile = {
    byteLength: bytes.length,
    read(dst, position) {
      reads.push(dst.length);
      dst.set(bytes.subarray(position, position + dst.length));
    },
    close() {
      closed = true;
    },
  };
  return { file, reads, closed: () => closed };
}

const CONV = /^h\.0\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/** What the parameter must hold: the stored values (BF16: truncated), Conv1D transposed, by plain index loops. */
function expectedParam(t: Stored, dtype: "F32" | "BF16"): Float32Array {
  const v = Float32Array.from(t.values);
  if (dtype === "BF16") {
    const bits = new Uint32Array(v.buffer);
    for (let i = 0; i < bits.length; i++) bits[i] = bits[i] & 0xffff0000;
  }
  if (!CONV.test(t.name)) return v;
  const [rows, cols] = t.shape;
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  return out;
}

describe("fromPretrained: reading the weights", () => {
  const tensors = checkpoint();
  for (const dtype of ["F32", "BF16"] as const) {
    test(`${dtype}: every parameter holds exactly the stored values (Conv1D transposed), read in chunks, each byte once`, () => {
      const bytes = safetensors(tensors, dtype);
      const s = spy(bytes);
      const { model } = fromPretrainedFiles({ "config.json": JSON.stringify(CONFIG), "model.safetensors": s.file });
      const params = model.namedParameters();
      assert.equal(params.size, tensors.length);
      for (const t of tensors) {
        const p = params.get(`transformer.${t.name}`);
        assert.ok(p, t.name);
        const want = expectedParam(t, dtype);
        let bad = -1;
        for (let i = 0; i < want.length && bad < 0; i++) if (p.values[i] !== want[i]) bad = i;
        assert.equal(bad, -1, `${t.name} differs at ${bad}`);
      }
      // the file is read once, a chunk at a time: the bytes read add up to its length, no read is larger than a chunk
      assert.equal(s.reads.reduce((a, b) => a + b, 0), bytes.length);
      assert.ok(Math.max(...s.reads) <= CHUNK, `largest read ${Math.max(...s.reads)} bytes`);
      assert.ok(bytes.length > 2 * CHUNK, "the file is larger than a read chunk (the test is about chunking)");
      assert.ok(s.closed(), "the file is closed after loading");
    });
  }

  test("the file is closed when loading fails", () => {
    const s = spy(safetensors(tensors.filter((t) => t.name !== "ln_f.bias"), "F32"));
    assert.throws(() => fromPretrainedFiles({ "config.json": JSON.stringify(CONFIG), "model.safetensors": s.file }), /missing 1 tensor\(s\).*transformer\.ln_f\.bias/);
    assert.ok(s.closed());
  });

  test("PretrainedLM: skipInit builds zeros; the default init is unchanged (same seeded weights as before the option)", () => {
    const small = archFromConfig({ model_type: "gpt2", vocab_size: 11, n_positions: 8, n_embd: 8, n_layer: 2, n_head: 2 });
    const zero = new PretrainedLM(small, { skipInit: true });
    for (const [k, p] of zero.namedParameters()) {
      // LayerNorm keeps its ones and zeros (no random init to skip); every Linear and Embedding is zero
      if (/\.ln_\w+\.weight$|^transformer\.ln_f\.weight$/.test(k)) assert.ok(p.values.every((v) => v === 1), k);
      else assert.ok(p.values.every((v) => v === 0), k);
    }
    // FNV-1a fingerprints of every parameter, recorded from the library before skipInit was added
    const fnv = (m: PretrainedLM): string => {
      let h = 0x811c9dc5;
      for (const p of m.parameters()) {
        const u = new Uint8Array(Float32Array.from(p.values).buffer);
        for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i], 0x01000193) >>> 0;
      }
      return h.toString(16);
    };
    assert.equal(fnv(new PretrainedLM(small)), "9ed732f2");
    const llama = archFromConfig({ model_type: "llama", vocab_size: 13, max_position_embeddings: 16, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: false });
    assert.equal(fnv(new PretrainedLM(llama)), "2d65048a");
    assert.throws(() => new PretrainedLM(small, { skipInit: 0 as unknown as boolean }), /PretrainedLM: skipInit must be true or false, got 0/);
  });
});

describe("fromPretrained: tokenizer.json against the model's vocabulary", () => {
  const HF = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "hf");
  /** The word tokenizer over ids 0..39 with vocab and added tokens changed. */
  const tokenizer = (change: (t: { model: { vocab: Record<string, number> }; added_tokens: object[] }) => void): string => {
    const t = JSON.parse(wordTokenizer()) as { model: { vocab: Record<string, number> }; added_tokens: object[] };
    change(t);
    return JSON.stringify(t);
  };
  const load = (tok: string) => {
    const files = folderFiles(join(HF, "gpt2")); // vocab_size 40
    files.set("tokenizer.json", tok);
    return fromPretrainedFiles(files);
  };
  test("ids past vocab_size (in the vocabulary or added tokens) are an error naming the file, the largest id and vocab_size", () => {
    assert.throws(() => load(tokenizer((t) => void (t.model.vocab["<extra>"] = 45))),
      /fromPretrained: tokenizer\.json has token ids up to 45 \("<extra>"; 1 id\(s\) >= 40\), but config\.json's vocab_size is 40 \(the embedding's rows\), so ids 40\.\.45 have no embedding/);
    const added = { content: "<pad>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
    assert.throws(() => load(tokenizer((t) => t.added_tokens.push({ ...added, id: 40 }, { ...added, content: "<sep>", id: 41 }))),
      /tokenizer\.json has token ids up to 41 \("<sep>"; 2 id\(s\) >= 40\), but config\.json's vocab_size is 40/);
    // Unigram (SentencePiece): the vocabulary is a list of [piece, score], ids by place
    const unigram = { version: "1.0", added_tokens: [], model: { type: "Unigram", unk_id: 0, vocab: Array.from({ length: 41 }, (_, i) => [`p${i}`, -1]) } };
    assert.throws(() => load(JSON.stringify(unigram)), /tokenizer\.json has token ids up to 40 \("p40"; 1 id\(s\) >= 40\)/);
  });
  test("a vocabulary smaller than vocab_size loads (padding rows), and one that fits exactly", () => {
    const small = load(tokenizer((t) => (t.model.vocab = Object.fromEntries(Object.entries(t.model.vocab).filter(([, id]) => id < 30)))));
    assert.deepEqual(small.tokenizer?.encode("the cat").ids, [1, 3]);
    assert.deepEqual(load(wordTokenizer()).tokenizer?.encode("the cat ?").ids, [1, 3, 38]); // ids 0..39: all 40 rows
  });
});
