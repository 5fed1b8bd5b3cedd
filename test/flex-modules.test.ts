/**
 * The flexible attention options in the modules and models: MultiheadAttention and
 * GroupedQueryAttention with slidingWindow, alibi, softcap and sinks, and GPT / EncoderDecoder configs
 * with the same (positional: "alibi").
 *
 *   module == reference      out and every gradient (input, each projection, sinks) against attention
 *                            written out here from the module's own weights: the math path given one
 *                            explicit float mask (the ALiBi bias, -inf where a key is hidden) and, for
 *                            sinks, one more key and value of zeros whose mask column is the sink
 *                            logit; with softcap (no mask can say it) the scores, tanh and softmax as ops
 *   weights                  needWeights gives the reference's weights (rows with a sink sum to < 1)
 *   cache                    cached steps equal full recomputation (module, GPT, encoder-decoder)
 *   models                   each option trains (the loss falls), state dicts and checkpoints keep
 *                            `sinks` and the config keys, old configs read unchanged; errors
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AdamW, ArgumentError, type AttentionParams, type Backend, Generator, findBackend, getBackendName, registerBackend, setBackend, Tensor, cast, concat, crossEntropy, expand, linear, matmul, noGrad, paddingMask, permute,
  randn, reshape, scaledDotProductAttention, slice, softmax, tanh, zeros,
} from "../src/index.js";
import { GroupedQueryAttention, KVCache, MultiheadAttention } from "../src/nnNamespace.js";
import {
  EncoderDecoder, GPT, type GPTConfig, deserializeCheckpoint, encoderDecoderConfig, gptConfig, serializeCheckpoint, validateGPTConfig,
} from "../src/models/index.js";
import { parameterBound } from "../src/models/checkpoint.js";
import { serializeSafetensors } from "../src/io/tensors.js";
import { TOL, assertClose, fixtureNames, input, loadFixture, relError } from "./harness.js";

type Attention = MultiheadAttention | GroupedQueryAttention;

interface Case {
  name: string;
  kind: "mha" | "gqa";
  C: number;
  H: number;
  Hkv?: number;
  N: number;
  L: number;
  /** key length (cross-attention when != L) */
  S?: number;
  isCausal?: boolean;
  window?: number | [number, number];
  alibi?: boolean;
  softcap?: number;
  sinks?: boolean;
  /** key lengths per batch row (the rest is padding) */
  lengths?: number[];
}

/** The paper's slopes for H a power of 2, written out: 2^(-8 (h + 1) / H). */
const paperSlopes = (H: number): number[] => Array.from({ length: H }, (_, h) => 2 ** (-8 * (h + 1) / H));

/** Whether query l sees key s: causality, the window and padding, as the options define them (top-left, no cache). */
function visible(c: Case, n: number, l: number, s: number): boolean {
  if (c.isCausal && s > l) return false;
  if (c.window !== undefined) {
    const [left, right] = typeof c.window === "number" ? [c.window - 1, 0] : c.window;
    if (s < l - left || s > l + right) return false;
  }
  return c.lengths === undefined || s < c.lengths[n];
}

function makeModule(c: Case): Attention {
  const flex = { slidingWindow: c.window, alibi: c.alibi, softcap: c.softcap, sinks: c.sinks, batchFirst: true, seed: 7, dtype: "float64" as const };
  const m = c.kind === "mha"
    ? new MultiheadAttention(c.C, c.H, flex)
    : new GroupedQueryAttention(c.C, c.H, c.Hkv ?? c.H, { ...flex, bias: true });
  if (m.sinks) m.sinks.values.set(Array.from({ length: c.H }, (_, h) => 0.8 - 0.5 * h)); // away from their initial 0, so they matter
  return m;
}

function inputsOf(c: Case): { x: Tensor; mem: Tensor; pad: Tensor | null; gOut: Tensor } {
  const S = c.S ?? c.L;
  const x = cast(randn([c.N, c.L, c.C], { seed: 11 }), "float64");
  const mem = S === c.L ? x : cast(randn([c.N, S, c.C], { seed: 12 }), "float64");
  x.requiresGrad = true;
  mem.requiresGrad = true;
  return { x, mem, pad: c.lengths ? paddingMask(c.lengths, S) : null, gOut: cast(randn([c.N, c.L, c.C], { seed: 13 }), "float64") };
}

/** The module's projection weights by role: [weight, bias | null] for q, k, v and out. */
function projections(m: Attention): Record<"q" | "k" | "v" | "o", [Tensor, Tensor | null]> {
  if (m instanceof MultiheadAttention) {
    const E = m.embedDim;
    const w = m.in_proj_weight!, b = m.in_proj_bias;
    const part = (i: number): [Tensor, Tensor | null] => [slice(w, 0, i * E, (i + 1) * E), b && slice(b, 0, i * E, (i + 1) * E)];
    return { q: part(0), k: part(1), v: part(2), o: [m.out_proj.weight, m.out_proj.bias] };
  }
  const lin = (l: { weight: Tensor; bias: Tensor | null }): [Tensor, Tensor | null] => [l.weight, l.bias];
  return { q: lin(m.q_proj), k: lin(m.k_proj), v: lin(m.v_proj), o: lin(m.o_proj) };
}

/**
 * The reference: attention written out from the module's weights. Returns the output [N, L, C] and
 * the weights [N, H, L, S].
 */
function reference(m: Attention, c: Case, x: Tensor, mem: Tensor): { out: Tensor; weights: Tensor } {
  const { N, L, H } = c;
  const S = c.S ?? L;
  const Hkv = c.Hkv ?? H, hd = c.C / H;
  const p = projections(m);
  const heads = (t: Tensor, n: number, T: number): Tensor => permute(reshape(t, [N, T, n, hd]), [0, 2, 1, 3]); // [N, T, n*hd] -> [N, n, T, hd]
  const q = heads(linear(x, ...p.q), H, L);
  // each query head h reads key/value head floor(h / G): the heads repeated explicitly
  const repeat = (t: Tensor): Tensor => reshape(expand(reshape(t, [N, Hkv, 1, S, hd]), [N, Hkv, H / Hkv, S, hd]), [N, H, S, hd]); // [N, Hkv, S, hd] -> [N, H, S, hd]
  let k = repeat(heads(linear(mem, ...p.k), Hkv, S));
  let v = repeat(heads(linear(mem, ...p.v), Hkv, S));
  const slopes = c.alibi ? paperSlopes(H) : null;
  // bias[n, h, l, s] = -slope_h |l - s| where visible, -inf where not
  const bias = new Float64Array(N * H * L * S);
  for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++) for (let s = 0; s < S; s++) {
    bias[((n * H + h) * L + l) * S + s] = visible(c, n, l, s) ? (slopes ? -slopes[h] * Math.abs(l - s) : 0) : -Infinity;
  }
  let y: Tensor, weights: Tensor;
  if (c.softcap === undefined) {
    // the math path with one float mask; a sink is a key and value of zeros (score 0) whose mask entry is the sink logit
    let mask = new Tensor(bias, [N, H, L, S], "float64");
    if (m.sinks) {
      mask = concat([mask, expand(reshape(m.sinks, [1, H, 1, 1]), [N, H, L, 1])], -1); // [N, H, L, S + 1]
      k = concat([k, zeros([N, H, 1, hd], { dtype: "float64" })], 2);
      v = concat([v, zeros([N, H, 1, hd], { dtype: "float64" })], 2);
    }
    y = scaledDotProductAttention(q, k, v, { attnMask: mask, implementation: "math" }); // [N, H, L, hd]
    const w = softmax(matmul(q, permute(k, [0, 1, 3, 2])).mul(1 / Math.sqrt(hd)).add(mask), -1);
    weights = slice(w, -1, 0, S);
  } else {
    // softcap acts on the scores before the mask: scores, tanh and softmax as ops
    const cap = c.softcap;
    let scores = matmul(q, permute(k, [0, 1, 3, 2])).mul(1 / Math.sqrt(hd)); // [N, H, L, S]
    if (slopes) {
      const ali = new Float64Array(H * L * S).map((_, i) => -slopes[Math.floor(i / (L * S))] * Math.abs((Math.floor(i / S) % L) - (i % S)));
      scores = scores.add(new Tensor(ali, [H, L, S], "float64"));
    }
    scores = tanh(scores.div(cap)).mul(cap);
    scores = scores.add(new Tensor(bias.map((b) => (b === -Infinity ? -Infinity : 0)), [N, H, L, S], "float64"));
    if (m.sinks) scores = concat([scores, expand(reshape(m.sinks, [1, H, 1, 1]), [N, H, L, 1])], -1);
    weights = slice(softmax(scores, -1), -1, 0, S); // the sink column's value is zero: drop it
    y = matmul(weights, v);
  }
  const merged = reshape(permute(y, [0, 2, 1, 3]), [N, L, H * hd]); // [N, H, L, hd] -> [N, L, C]
  return { out: linear(merged, ...p.o), weights };
}

interface Run {
  out: Tensor;
  weights: Tensor | null;
  grads: Map<string, Tensor>;
}

/** Output, weights, and the gradients of the inputs and every parameter after backward(gOut). */
function collect(m: Attention, x: Tensor, mem: Tensor, out: Tensor, weights: Tensor | null, gOut: Tensor): Run {
  out.backward(gOut);
  const grads = new Map<string, Tensor>([["x", x.grad!]]);
  if (mem !== x) grads.set("memory", mem.grad!);
  for (const [name, t] of m.namedParameters()) {
    assert.ok(t.grad !== null, `${name} has a gradient`);
    grads.set(name, t.grad!);
  }
  return { out, weights, grads };
}

function runModule(c: Case, needWeights: boolean): Run {
  const m = makeModule(c);
  const { x, mem, pad, gOut } = inputsOf(c);
  const [out, w] = m.forward(x, mem, mem, { isCausal: c.isCausal, keyPaddingMask: pad, needWeights, averageAttnWeights: false });
  return collect(m, x, mem, out, w, gOut);
}

function runReference(c: Case): Run {
  const m = makeModule(c);
  const { x, mem, gOut } = inputsOf(c);
  const { out, weights } = reference(m, c, x, mem);
  return collect(m, x, mem, out, weights, gOut);
}

const CASES: Case[] = [
  { name: "MHA, causal sliding window 3, padding", kind: "mha", C: 16, H: 4, N: 2, L: 9, isCausal: true, window: 3, lengths: [9, 6] },
  { name: "MHA, ALiBi and sinks, causal", kind: "mha", C: 16, H: 4, N: 2, L: 7, isCausal: true, alibi: true, sinks: true },
  { name: "MHA, softcap and sinks, two-sided window [2, 1], padding", kind: "mha", C: 16, H: 4, N: 2, L: 8, softcap: 0.9, sinks: true, window: [2, 1], lengths: [5, 8] },
  { name: "MHA cross-attention (L < S), softcap, sinks, padding", kind: "mha", C: 12, H: 2, N: 2, L: 4, S: 7, softcap: 2, sinks: true, lengths: [7, 3] },
  {
    name: "GQA 8 over 2, everything: causal, window 4, ALiBi, softcap, sinks, padding", kind: "gqa", C: 16, H: 8, Hkv: 2, N: 2, L: 10,
    isCausal: true, window: 4, alibi: true, softcap: 1.5, sinks: true, lengths: [10, 7],
  },
  { name: "GQA 4 over 2, ALiBi and window, no softcap (explicit mask), sinks", kind: "gqa", C: 16, H: 4, Hkv: 2, N: 1, L: 9, isCausal: true, window: [3, 0], alibi: true, sinks: true },
];

function assertRuns(got: Run, want: Run, what: string, tol = 1e-11): void {
  const e = relError(got.out, want.out);
  assert.ok(e <= tol, `${what}: out relative error ${e}`);
  assert.deepEqual([...got.grads.keys()].sort(), [...want.grads.keys()].sort(), `${what}: the same gradients`);
  for (const [name, g] of want.grads) {
    const eg = relError(got.grads.get(name)!, g);
    assert.ok(eg <= tol, `${what}: ${name}.grad relative error ${eg}`);
  }
}

describe("modules with flexible options equal attention written out from their weights (float64)", () => {
  for (const c of CASES) {
    test(c.name, () => {
      const want = runReference(c);
      const fused = runModule(c, false);
      assertRuns(fused, want, "needWeights false (fused kernels)");
      const math = runModule(c, true);
      assertRuns(math, want, "needWeights true (weights path)");
      const ew = relError(math.weights!, want.weights!);
      assert.ok(ew <= 1e-12, `weights relative error ${ew}`);
      if (c.sinks) {
        assert.ok(want.grads.has("sinks") && want.grads.get("sinks")!.values.some((g) => Math.abs(g) > 1e-6), "sinks get a gradient");
        // a sink takes part of every row: some row's weights sum to clearly less than 1
        const S = c.S ?? c.L;
        let least = 1;
        for (let r = 0; r < math.weights!.size / S; r++) {
          let sum = 0;
          for (let s = 0; s < S; s++) sum += math.weights!.values[r * S + s];
          least = Math.min(least, sum);
        }
        assert.ok(least < 0.9, `with sinks a row's weights sum to < 1 (least ${least})`);
      }
    });
  }

  test("float32 modules match the float64 reference loosely", () => {
    const c = CASES[4];
    const want = runReference(c);
    const m = makeModule(c);
    const m32 = c.kind === "mha"
      ? new MultiheadAttention(c.C, c.H, { slidingWindow: c.window, alibi: c.alibi, softcap: c.softcap, sinks: c.sinks, batchFirst: true })
      : new GroupedQueryAttention(c.C, c.H, c.Hkv!, { slidingWindow: c.window, alibi: c.alibi, softcap: c.softcap, sinks: c.sinks, batchFirst: true, bias: true });
    m32.loadStateDict(m.stateDict());
    const { x, pad } = inputsOf(c);
    const [out] = m32.forward(cast(x.detach(), "float32"), cast(x.detach(), "float32"), cast(x.detach(), "float32"), { isCausal: true, keyPaddingMask: pad, needWeights: false });
    const e = relError(cast(out, "float64"), want.out);
    assert.ok(e < 1e-5, `float32 vs float64 reference: relative error ${e}`);
  });
});

describe("PyTorch fixtures: modules written in plain torch math (make_fixtures.py, flexmod_cases)", () => {
  const names = fixtureNames("flexmod");
  test("the fixtures are there", () => assert.ok(names.length >= 2, `flexmod fixtures: ${names.join(", ")}`));
  for (const name of names) {
    for (const precision of ["float64", "float32"] as const) {
      for (const needWeights of [false, true]) {
        test(`${name} (${precision}, needWeights ${needWeights})`, () => {
          const f = loadFixture(name);
          const o = f.options as { embedDim: number; numHeads: number; numKvHeads?: number; isCausal: boolean; slidingWindow: number | [number, number]; alibi: boolean; softcap?: number };
          const flex = { slidingWindow: o.slidingWindow, alibi: o.alibi, softcap: o.softcap, sinks: true, batchFirst: true, dtype: precision };
          const m = o.numKvHeads === undefined ? new MultiheadAttention(o.embedDim, o.numHeads, flex) : new GroupedQueryAttention(o.embedDim, o.numHeads, o.numKvHeads, flex);
          const params: Record<string, Tensor> = {};
          for (const [k, v] of Object.entries(f.t)) if (k.startsWith("param.")) params[k.slice(6)] = cast(v, precision);
          m.loadStateDict(params);
          m.eval();
          const x = input(f.t.query, precision, true);
          const [out, w] = m.forward(x, x, x, { isCausal: o.isCausal, keyPaddingMask: f.t.keyPaddingMask ?? null, needWeights, averageAttnWeights: false });
          assertClose(out, f.t.out, TOL[precision].out, "out");
          if (needWeights) assertClose(w, f.t.weights, TOL[precision].out, "weights");
          out.backward(input(f.t.grad_out, precision));
          assertClose(x.grad, f.t.grad_query, TOL[precision].grad, "grad_query");
          for (const [pn, p] of m.namedParameters()) assertClose(p.grad, f.t[`grad_param.${pn}`], TOL[precision].grad, `grad_param.${pn}`);
        });
      }
    }
  }
});

describe("what the modules hand the fused kernels: each option as a parameter, never a mask", () => {
  // a spy backend (as in test/modules-dispatch.test.ts) records every fused call's parameters
  const seen: AttentionParams[] = [];
  let backwards = 0;
  let saved = "";
  before(() => {
    const ref = findBackend("ref")!;
    const spy: Backend = {
      name: "flexmod-spy",
      matmul: (out, a, b, p) => ref.matmul(out, a, b, p),
      attentionForward(p, q, k, v, out, lse, lseLo) {
        seen.push(p);
        ref.attentionForward(p, q, k, v, out, lse, lseLo);
      },
      attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo) {
        backwards++;
        ref.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv, lseLo);
      },
    };
    registerBackend("flexmod-spy", () => spy, { priority: -1 });
    saved = getBackendName();
    setBackend("flexmod-spy");
  });
  after(() => setBackend(saved));

  test("GQA with every option, padding and isCausal: one fused call forward and one backward, only the padding as a mask", () => {
    const c = CASES[4];
    seen.length = 0;
    backwards = 0;
    const run = runModule(c, false);
    assert.equal(seen.length, 1);
    assert.equal(backwards, 1);
    const p = seen[0];
    assert.equal(p.causal, "top-left");
    assert.deepEqual(p.window, { left: 3, right: 0 });
    assert.deepEqual([...p.alibiSlopes!], paperSlopes(8));
    assert.equal(p.softcap, 1.5);
    assert.deepEqual([...p.sinks!], Array.from({ length: 8 }, (_, h) => 0.8 - 0.5 * h));
    assert.equal(p.mask!.data.length, c.N * c.L, "the key padding mask [N, 1, 1, S] only");
    assertRuns(run, runReference(c), "through the spy");
  });

  test("a GPT with a window, ALiBi, softcap and sinks taking a 2-token step with a cache: the same parameters, bottom-right", () => {
    const m = new GPT(gptConfig("tiny", { positional: "alibi", slidingWindow: 4, softcap: 5, sinks: true, numLayers: 1 }), { seed: 1 });
    m.eval();
    const cache = m.newCache();
    noGrad(() => {
      m.forward([[1, 2, 3]], { cache });
      seen.length = 0;
      m.forward([[4, 5]], { cache }); // two tokens: one token would take the decode loop (decode.ts), not the kernels
    });
    assert.equal(seen.length, 1);
    const p = seen[0];
    assert.deepEqual([p.L, p.S, p.causal, p.alignment], [2, 5, "bottom-right", "bottom-right"]);
    assert.deepEqual(p.window, { left: 3, right: 0 });
    assert.deepEqual([...p.alibiSlopes!], paperSlopes(4));
    assert.equal(p.softcap, 5);
    assert.deepEqual([...p.sinks!], [0, 0, 0, 0]);
    assert.equal(p.mask, null);
  });
});

describe("sinks: a Parameter [H], initialised to 0, saved as `sinks`", () => {
  test("both modules: in parameters() and the state dict; a state dict round trip restores them", () => {
    for (const make of [
      (): Attention => new MultiheadAttention(16, 4, { sinks: true, seed: 1 }),
      (): Attention => new GroupedQueryAttention(16, 4, 2, { sinks: true, seed: 1 }),
    ]) {
      const m = make();
      assert.deepEqual([...m.sinks!.shape], [4]);
      assert.deepEqual([...m.sinks!.values], [0, 0, 0, 0]);
      assert.ok(m.parameters().includes(m.sinks!), "a trainable parameter");
      assert.ok("sinks" in m.stateDict(), "sinks in the state dict");
      m.sinks!.values.set([0.5, -1, 2, 0.25]);
      const other = make();
      other.loadStateDict(m.stateDict());
      assert.deepEqual([...other.sinks!.values], [0.5, -1, 2, 0.25]);
      assert.equal(make().sinks!.values[0], 0);
      const plain = new MultiheadAttention(16, 4);
      assert.equal(plain.sinks, null);
      assert.ok(!("sinks" in plain.stateDict()), "no sinks without opts.sinks");
      assert.throws(() => plain.loadStateDict(m.stateDict()), /unexpected sinks|missing/);
    }
  });

  test("sinks at 0 are one extra softmax column of logit 0: output = the plain module's scaled by the row's mass", () => {
    // one query, two keys with equal scores: without a sink each weighs 1/2; with a sink of logit s = score, each weighs 1/3
    const m = new MultiheadAttention(4, 1, { sinks: true, bias: false, batchFirst: true, dtype: "float64" });
    noGrad(() => {
      m.in_proj_weight!.values.fill(0); // q = k = 0: every score is 0, as is the sink's logit
      for (let i = 0; i < 4; i++) m.in_proj_weight!.values[(8 + i) * 4 + i] = 1; // v = x
      m.out_proj.weight.values.fill(0);
      for (let i = 0; i < 4; i++) m.out_proj.weight.values[i * 4 + i] = 1;
    });
    const x = new Tensor(Float64Array.from([3, 0, 0, 0, 0, 3, 0, 0]), [1, 2, 4], "float64");
    const [out, w] = m.forward(x, x, x, { averageAttnWeights: false });
    // weights 1/3 each (the sink takes the third third): out = (x0 + x1) / 3 = [1, 1, 0, 0] in both rows
    assert.deepEqual([...w!.values].map((v) => +v.toFixed(12)), [1 / 3, 1 / 3, 1 / 3, 1 / 3].map((v) => +v.toFixed(12)));
    assert.deepEqual([...out.values].map((v) => +v.toFixed(12)), [1, 1, 0, 0, 1, 1, 0, 0]);
  });
});

/** max |a - b| over the last position's logits of full [N, T, V] and step [N, S, V]. */
function lastRowDiff(full: Tensor, step: Tensor): number {
  const [N, T, V] = full.shape;
  const S = step.shape[1];
  let m = 0;
  for (let n = 0; n < N; n++) for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(full.values[(n * T + T - 1) * V + v] - step.values[(n * S + S - 1) * V + v]));
  return m;
}

describe("a module with a KV cache equals recomputing the whole sequence", () => {
  for (const kind of ["mha", "gqa"] as const) {
    test(`${kind}: window 3, ALiBi, softcap, sinks; prefill 4 then single steps`, () => {
      const c: Case = { name: "", kind, C: 16, H: 4, Hkv: 2, N: 2, L: 10, isCausal: true, window: 3, alibi: true, softcap: 1.2, sinks: true };
      const m = makeModule(c);
      m.eval();
      const x = cast(randn([2, 10, 16], { seed: 21 }), "float64");
      noGrad(() => {
        const [full] = m.forward(x, x, x, { isCausal: true, needWeights: false }); // [N, 10, C]
        const cache = new KVCache();
        const at = (t: Tensor, from: number, to: number): Tensor => slice(t, 1, from, to);
        const [pre] = m.forward(at(x, 0, 4), at(x, 0, 4), at(x, 0, 4), { isCausal: true, needWeights: false, cache: cache.layer(0) });
        assert.ok(relError(pre, at(full, 0, 4)) < 1e-12, "prefill");
        for (let t = 4; t < 10; t++) {
          const step = at(x, t, t + 1);
          const [y] = m.forward(step, step, step, { isCausal: true, needWeights: t % 2 === 0, cache: cache.layer(0) });
          assert.ok(relError(y, at(full, t, t + 1)) < 1e-12, `step ${t}`);
        }
      });
    });
  }
});

const VARIANTS: [string, Partial<GPTConfig>][] = [
  ["slidingWindow 3", { slidingWindow: 3 }],
  ["positional alibi", { positional: "alibi" }],
  ["softcap 2", { softcap: 2 }],
  ["sinks", { sinks: true }],
  ["everything, grouped-query", { positional: "alibi", slidingWindow: [4, 0], softcap: 3, sinks: true, numKvHeads: 2 }],
];

describe("GPT with each option", () => {
  for (const [name, over] of VARIANTS) {
    test(`${name}: trains (the loss falls), and cached decoding equals full recomputation`, () => {
      const cfg = gptConfig("tiny", { ...over, numLayers: 1, maxSeqLen: 32 });
      const m = new GPT(cfg, { seed: 3 });
      if (cfg.positional === "alibi") {
        assert.equal(m.pos_emb, null);
        assert.equal(m.rotary, null);
        assert.ok(m.blocks.at(0).self_attn.alibiSlopes !== null, "ALiBi in the self-attention");
      }
      const rows = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]];
      const inp = rows.map((r) => r.slice(0, -1));
      const tgt = new Tensor(Int32Array.from(rows.flatMap((r) => r.slice(1))), [18], "int32");
      const opt = new AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0 });
      const losses: number[] = [];
      for (let s = 0; s < 8; s++) {
        const loss = crossEntropy(reshape(m.forward(inp), [18, cfg.vocabSize]), tgt);
        losses.push(loss.item());
        loss.backward();
        opt.step();
        opt.zeroGrad();
      }
      assert.ok(losses[7] < losses[0] - 0.3, `loss ${losses[0]} -> ${losses[7]}`);
      if (cfg.sinks) assert.ok(m.blocks.at(0).self_attn.sinks!.values.some((v) => v !== 0), "the sinks were trained");

      m.eval();
      const seq = [[5, 9, 2, 33], [1, 1, 60, 4]];
      const cache = m.newCache();
      noGrad(() => {
        let step = m.forward(seq, { cache });
        let worst = lastRowDiff(m.forward(seq), step);
        const g = new Generator(3);
        for (let s = 0; s < 10; s++) {
          const next = seq.map(() => g.nextInt(64));
          next.forEach((t, n) => seq[n].push(t));
          step = m.forward(next.map((t) => [t]), { cache });
          worst = Math.max(worst, lastRowDiff(m.forward(seq), step));
        }
        assert.ok(worst <= 1e-5, `cached vs full: max |diff| ${worst}`);
      });
    });
  }

  test("forwardWithAttention: the weights the fused path uses (zero outside the window, rows with a sink sum to < 1)", () => {
    const m = new GPT(gptConfig("tiny", { positional: "alibi", slidingWindow: 3, sinks: true, softcap: 4, numLayers: 1 }), { seed: 6 });
    m.blocks.at(0).self_attn.sinks!.values.set([1, 0, -1, 2]);
    m.eval();
    noGrad(() => {
      const idx = [[3, 1, 4, 1, 5, 9]];
      const { logits, attention } = m.forwardWithAttention(idx);
      const d = lastRowDiff(logits, m.forward(idx));
      assert.ok(d <= 1e-5, `the logits of forward (the fused path), float32: max |diff| ${d}`);
      const w = attention[0].weights; // [1, H, 6, 6]
      assert.deepEqual([...w.shape], [1, 4, 6, 6]);
      for (let h = 0; h < 4; h++) for (let l = 0; l < 6; l++) {
        let sum = 0;
        for (let s = 0; s < 6; s++) {
          const x = w.values[(h * 6 + l) * 6 + s];
          if (s > l || s < l - 2) assert.equal(x, 0, `head ${h} row ${l} key ${s} is outside the causal window`);
          sum += x;
        }
        assert.ok(sum > 0 && sum < 1, `head ${h} row ${l}: weights sum to ${sum}, less than 1 with a sink`);
      }
    });
  });

  test("the window and ALiBi act on the logits: a token outside the window changes nothing", () => {
    const m = new GPT(gptConfig("tiny", { positional: "alibi", slidingWindow: 3, numLayers: 2 }), { seed: 5 });
    m.eval();
    noGrad(() => {
      // two layers of window 3: the last position sees back 2 * (3 - 1) = 4 positions; position 0 of 6 is beyond
      const a = m.forward([[7, 1, 2, 3, 4, 5]]);
      const b = m.forward([[50, 1, 2, 3, 4, 5]]);
      assert.equal(lastRowDiff(a, b), 0);
      const c = m.forward([[7, 50, 2, 3, 4, 5]]);
      assert.ok(lastRowDiff(a, c) > 1e-4, "position 1 is within reach");
    });
  });
});

describe("EncoderDecoder with the options", () => {
  test("alibi, window, softcap, sinks: no position tables; trains; cached decoding equals full", () => {
    const cfg = encoderDecoderConfig("tiny", { positional: "alibi", slidingWindow: [2, 2], softcap: 4, sinks: true, numEncoderLayers: 1, numDecoderLayers: 1 });
    const m = new EncoderDecoder(cfg, { seed: 2 });
    assert.equal(m.src_pos, null);
    const dec = m.decoder.layers.at(0);
    assert.ok(dec.self_attn.alibiSlopes !== null && dec.cross_attn!.alibiSlopes === null, "ALiBi in self-attention only");
    assert.deepEqual(dec.self_attn.slidingWindow, [2, 2]);
    assert.equal(dec.cross_attn!.slidingWindow, null, "no window across");
    assert.ok(dec.cross_attn!.sinks !== null && dec.cross_attn!.softcap === 4, "sinks and softcap in every attention");
    assert.ok("decoder.layers.0.cross_attn.sinks" in m.stateDict(), "cross-attention sinks in the state dict");
    const src = [[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]];
    const tgtIn = [[1, 3, 4, 5, 6], [1, 8, 9, 10, 11]];
    const tgt = new Tensor(Int32Array.from([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), [10], "int32");
    const opt = new AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0 });
    const losses: number[] = [];
    for (let s = 0; s < 8; s++) {
      const loss = crossEntropy(reshape(m.forward(src, tgtIn), [10, cfg.tgtVocabSize]), tgt);
      losses.push(loss.item());
      loss.backward();
      opt.step();
      opt.zeroGrad();
    }
    assert.ok(losses[7] < losses[0] - 0.3, `loss ${losses[0]} -> ${losses[7]}`);
    m.eval();
    noGrad(() => {
      const memory = m.encode(src);
      const cache = m.newCache();
      const seq = [[1], [1]];
      let step = m.decode(seq, memory, { cache });
      let worst = lastRowDiff(m.decode(seq, memory), step);
      for (let s = 0; s < 6; s++) {
        seq.forEach((r, n) => r.push(3 + s + n));
        step = m.decode(seq.map((r) => [r[r.length - 1]]), memory, { cache });
        worst = Math.max(worst, lastRowDiff(m.decode(seq, memory), step));
      }
      assert.ok(worst <= 1e-5, `cached vs full: ${worst}`);
    });
    const back = deserializeCheckpoint<EncoderDecoder>(serializeCheckpoint(m));
    assert.deepEqual(back.config, cfg);
    assert.deepEqual([...back.model.decoder.layers.at(0).cross_attn!.sinks!.values], [...dec.cross_attn!.sinks!.values]);
    const n = m.numParameters(), b = parameterBound("encoder-decoder", cfg);
    assert.ok(b >= n && b <= 2 * n, `bound ${b} for ${n} parameters`);
  });
});

describe("configs and checkpoints", () => {
  test("the options are optional: off means absent, so old configs and checkpoints read unchanged", () => {
    const plain = gptConfig("tiny");
    for (const k of ["slidingWindow", "softcap", "sinks"]) assert.ok(!(k in plain), `${k} absent`);
    assert.deepEqual(gptConfig("tiny", { sinks: false, softcap: undefined }), plain);
    assert.deepEqual(validateGPTConfig({ ...plain, slidingWindow: null, softcap: null }), plain);
    // a checkpoint written before the options existed: its config JSON has none of the keys
    const old = new GPT("tiny", { seed: 1 });
    const bytes = serializeSafetensors(old.stateDict(), {
      format: "attend-checkpoint", format_version: "1", model: "gpt", config: JSON.stringify(GPT_TINY_BEFORE),
    });
    const loaded = deserializeCheckpoint(bytes);
    assert.deepEqual(loaded.model.config, plain);
    deserializeCheckpoint(bytes, new GPT("tiny")); // into a model built now: the configs match
  });

  test("a checkpoint keeps the config keys and every sinks parameter", () => {
    const cfg = gptConfig("tiny-gqa", { positional: "alibi", slidingWindow: [5, 0], softcap: 30, sinks: true });
    const m = new GPT(cfg, { seed: 4 });
    m.blocks.at(1).self_attn.sinks!.values.set([1, 2, 3, 4]);
    const got = deserializeCheckpoint<GPT>(serializeCheckpoint(m));
    assert.deepEqual(got.config, cfg);
    assert.deepEqual(got.model.config.slidingWindow, [5, 0]);
    assert.deepEqual([...got.model.blocks.at(1).self_attn.sinks!.values], [1, 2, 3, 4]);
    noGrad(() => assert.equal(lastRowDiff(got.model.forward([[1, 2, 3]]), m.forward([[1, 2, 3]])), 0));
    // a model without sinks cannot take it, and the error names the field
    assert.throws(() => deserializeCheckpoint(serializeCheckpoint(m), new GPT(gptConfig("tiny-gqa", { positional: "alibi", slidingWindow: [5, 0], softcap: 30 }))), /sinks is true in the checkpoint/);
    // the size bound counts the sinks
    const n = m.numParameters();
    const b = parameterBound("gpt", cfg);
    assert.ok(b >= n && b <= 2 * n, `bound ${b} for ${n} parameters`);
  });

  test("errors name the field, the value and what is expected", () => {
    assert.throws(() => gptConfig("tiny", { slidingWindow: -1 }), /GPTConfig: slidingWindow must be a positive integer w .* got -1/);
    assert.throws(() => gptConfig("tiny", { slidingWindow: 0 }), /slidingWindow must be a positive integer/);
    assert.throws(() => gptConfig("tiny", { slidingWindow: [2, -1] }), /slidingWindow must be .* got \[2, -1\]/);
    assert.throws(() => gptConfig("tiny", { slidingWindow: "4" as never }), /slidingWindow must be .* got "4"$/); // a string is shown as one
    assert.throws(() => gptConfig("tiny", { slidingWindow: [Infinity, 0] }), /slidingWindow must be .*cannot hold Infinity/);
    assert.throws(() => gptConfig("tiny", { softcap: 0 }), /GPTConfig: softcap must be a positive finite number .* got 0/);
    assert.throws(() => gptConfig("tiny", { softcap: -3 }), /softcap must be a positive finite number/);
    assert.throws(() => gptConfig("tiny", { softcap: "5" as unknown as number }), /softcap must be a positive finite number .* got "5"/);
    assert.throws(() => gptConfig("tiny", { sinks: "yes" as unknown as boolean }), /GPTConfig: sinks must be true or false, got "yes"/);
    assert.throws(() => gptConfig("tiny", { positional: "alibi2" as "alibi" }), /positional must be one of "learned", "rope", "sinusoidal", "alibi"/);
    assert.throws(() => encoderDecoderConfig("tiny", { softcap: 0 }), /EncoderDecoderConfig: softcap must be a positive finite number/);
  });
});

describe("module option errors", () => {
  const cases: [string, () => unknown, RegExp][] = [
    ["negative window", () => new MultiheadAttention(8, 2, { slidingWindow: -2 }), /MultiheadAttention: slidingWindow must be a positive integer w .* got -2/],
    ["window with a negative side", () => new GroupedQueryAttention(8, 2, 1, { slidingWindow: [1, -1] }), /GroupedQueryAttention: slidingWindow must be .* got \[1, -1\]/],
    ["window of the wrong type", () => new MultiheadAttention(8, 2, { slidingWindow: "4" as unknown as number }), /slidingWindow must be a positive integer w .* got "4"/],
    ["softcap 0", () => new MultiheadAttention(8, 2, { softcap: 0 }), /MultiheadAttention: softcap must be a positive finite number .* got 0/],
    ["softcap negative", () => new GroupedQueryAttention(8, 2, 2, { softcap: -1 }), /softcap must be a positive finite number .* got -1/],
    ["softcap Infinity", () => new MultiheadAttention(8, 2, { softcap: Infinity }), /softcap must be a positive finite number .* got Infinity/],
    ["sinks not a boolean", () => new MultiheadAttention(8, 2, { sinks: 1 as unknown as boolean }), /MultiheadAttention: sinks must be a boolean, got number/],
    ["alibi not a boolean", () => new GroupedQueryAttention(8, 2, 1, { alibi: "default" as unknown as boolean }), /GroupedQueryAttention: alibi must be a boolean, got string/],
    ["alibi with addBiasKv", () => new MultiheadAttention(8, 2, { alibi: true, addBiasKv: true }), /alibi cannot be combined with addBiasKv or addZeroAttn/],
    ["window with addZeroAttn", () => new MultiheadAttention(8, 2, { slidingWindow: 2, addZeroAttn: true }), /slidingWindow cannot be combined with addBiasKv or addZeroAttn/],
    ["misspelt option", () => new MultiheadAttention(8, 2, { sliding_window: 2 } as never), /slidingWindow/],
  ];
  for (const [name, f, re] of cases) test(name, () => assert.throws(f, (e: unknown) => e instanceof ArgumentError && re.test((e as Error).message)));

  test("softcap and sinks do combine with addBiasKv and addZeroAttn (the extra keys are keys like the others)", () => {
    const m = new MultiheadAttention(8, 2, { softcap: 2, sinks: true, addBiasKv: true, addZeroAttn: true, batchFirst: true, seed: 1 });
    const x = randn([1, 3, 8], { seed: 1 });
    const [out] = m.forward(x, x, x, { isCausal: true });
    assert.ok(out.values.every((v) => Number.isFinite(v)), "finite output");
  });
});

/** The tiny preset's config as checkpoints stored it before these options existed. */
const GPT_TINY_BEFORE = {
  vocabSize: 64, maxSeqLen: 64, dModel: 32, numLayers: 2, numHeads: 4, numKvHeads: 4, dFF: 128, positional: "learned", ropeBase: 10000,
  tieWeights: false, norm: "layernorm", normEps: 1e-5, activation: "gelu", dropout: 0, bias: true,
};
