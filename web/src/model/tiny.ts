/**
 * The page's model, kept apart from the page so it can be swapped for the library's own models
 * (and `attend train` checkpoints) later: the page only uses the Inspectable interface.
 *
 * TinyTransformer: token + position embeddings, pre-norm blocks of MultiheadAttention and an MLP,
 * a linear read-out. Built from the library's public API (Module, MultiheadAttention, Linear,
 * embedding, layerNorm, crossEntropy); parameter names follow PyTorch's state-dict style.
 * Shapes: B batch, L length, C model width, H heads, V vocabulary.
 */
import {
  type Tensor, Linear, Module, MultiheadAttention, Generator, add, crossEntropy, embedding, layerNorm, ones, randn,
  reshape, slice, tensor, zeros,
} from "attend";

export interface TinyConfig {
  vocab: number;
  maxLen: number;
  width: number;
  heads: number;
  layers: number;
  causal: boolean;
}

/** What the inspect page needs from any model: attention maps by layer and head for one input. */
export interface Inspectable {
  readonly config: TinyConfig;
  /** per layer, weights [H, L, L] for this input; and the predicted token at each position */
  inspect(tokens: readonly number[]): { maps: Tensor[]; predictions: number[] };
}

class LayerNormParams extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(width: number) {
    super();
    this.weight = this.registerParameter("weight", ones([width]));
    this.bias = this.registerParameter("bias", zeros([width]));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight.shape[0], this.weight, this.bias);
  }
}

class Block extends Module {
  ln1: LayerNormParams;
  attn: MultiheadAttention;
  ln2: LayerNormParams;
  fc1: Linear;
  fc2: Linear;
  constructor(c: TinyConfig, g: Generator) {
    super();
    this.ln1 = this.registerModule("ln1", new LayerNormParams(c.width));
    this.attn = this.registerModule("attn", new MultiheadAttention(c.width, c.heads, { batchFirst: true, generator: g }));
    this.ln2 = this.registerModule("ln2", new LayerNormParams(c.width));
    this.fc1 = this.registerModule("fc1", new Linear(c.width, 4 * c.width, { generator: g }));
    this.fc2 = this.registerModule("fc2", new Linear(4 * c.width, c.width, { generator: g }));
  }
  /** x [B, L, C] -> [x', weights [B, H, L, L]] */
  forward(x: Tensor, causal: boolean): [Tensor, Tensor] {
    const h = this.ln1.forward(x);
    const [a, w] = this.attn.forward(h, h, h, { isCausal: causal, averageAttnWeights: false });
    const y = add(x, a); // residual
    return [add(y, this.fc2.forward(this.fc1.forward(this.ln2.forward(y)).relu())), w!];
  }
}

export class TinyTransformer extends Module implements Inspectable {
  tok_emb: Tensor;
  pos_emb: Tensor;
  blocks: Block[];
  ln_f: LayerNormParams;
  head: Linear;

  constructor(readonly config: TinyConfig, seed = 0) {
    super();
    const g = new Generator(seed);
    const c = config;
    this.tok_emb = this.registerParameter("tok_emb", randn([c.vocab, c.width], { generator: g }).mul(0.5).detach());
    this.pos_emb = this.registerParameter("pos_emb", randn([c.maxLen, c.width], { generator: g }).mul(0.5).detach());
    this.blocks = Array.from({ length: c.layers }, (_, i) => this.registerModule(`blocks.${i}`, new Block(c, g)));
    this.ln_f = this.registerModule("ln_f", new LayerNormParams(c.width));
    this.head = this.registerModule("head", new Linear(c.width, c.vocab, { generator: g }));
  }

  /** tokens [B, L] (int32) -> logits [B, L, V] and the weights of every layer [B, H, L, L]. */
  forward(tokens: Tensor): { logits: Tensor; weights: Tensor[] } {
    const L = tokens.shape[1];
    let x = add(embedding(this.tok_emb, tokens), slice(this.pos_emb, 0, 0, L)); // [B, L, C] + [L, C]
    const weights: Tensor[] = [];
    for (const b of this.blocks) {
      let w: Tensor;
      [x, w] = b.forward(x, this.config.causal);
      weights.push(w);
    }
    return { logits: this.head.forward(this.ln_f.forward(x)), weights };
  }

  /** Mean cross-entropy of next-token targets y [B, L]. */
  loss(x: Int32Array, y: Int32Array, B: number): { loss: Tensor; logits: Tensor } {
    const L = x.length / B;
    const { logits } = this.forward(tensor(x, [B, L]));
    const V = this.config.vocab;
    return { loss: crossEntropy(reshape(logits, [B * L, V]), tensor(y, [B * L])), logits }; // [B*L, V] vs [B*L]
  }

  inspect(tokens: readonly number[]): { maps: Tensor[]; predictions: number[] } {
    const L = tokens.length;
    const { logits, weights } = this.forward(tensor(Int32Array.from(tokens), [1, L]));
    const V = this.config.vocab;
    const predictions = Array.from({ length: L }, (_, i) => {
      let best = 0;
      for (let v = 1; v < V; v++) if (logits.data[i * V + v] > logits.data[i * V + best]) best = v;
      return best;
    });
    return { maps: weights.map((w) => reshape(w, w.shape.slice(1))), predictions }; // [1, H, L, L] -> [H, L, L]
  }
}
