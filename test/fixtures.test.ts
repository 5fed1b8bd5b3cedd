/**
 * Conformance against PyTorch: every committed fixture (test/fixtures/make_fixtures.py, torch 1.13
 * in float64) is replayed in float32 (the issue's tolerances) and float64 (tight), forward and
 * backward, on every registered kernel backend (test/backends.ts; built in: "wasm", WebAssembly SIMD, and "ref", plain loops), and for
 * scaledDotProductAttention through both implementations (fused kernels and the materialising path); the sdpa
 * fixtures of the flexible options (windows, ALiBi, softcap, sinks, documents) also check lse and the sinks' gradient.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  GroupedQueryAttention, MultiheadAttention, Tensor, crossEntropy, embedding, exp, gelu, layerNorm, log, logSoftmax,
  lookupAttention, matmul, max, mean, rmsNorm, scaledDotProductAttentionWithLse, softmax, sqrt, sum, tanh, where, add, sub, mul, div,
  cast, type SdpaImplementation,
} from "../src/index.js";
import { elementwiseTuning } from "../src/kernels/index.js";
import { conformanceBackends, onBackend } from "./backends.js";
import { type Fixture, type Precision, TOL, assertClose, fixtureNames, input, loadFixture } from "./harness.js";

const PRECISIONS: Precision[] = ["float32", "float64"];
const BACKENDS = conformanceBackends();
const IMPLEMENTATIONS: SdpaImplementation[] = ["fused", "math"];


function params(f: Fixture, prefix: string, precision: Precision): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(f.t)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = cast(v, precision);
  return out;
}

function checkGrads(f: Fixture, inputs: Record<string, Tensor>, precision: Precision): void {
  for (const [name, x] of Object.entries(inputs)) {
    const want = f.t[`grad_${name}`];
    if (want) assertClose(x.grad, want, TOL[precision].grad, `${f.name} grad_${name}`);
  }
}

for (const backend of BACKENDS) describe(`sdpa fixtures [${backend}]`, () => {
  onBackend(backend);
  for (const name of fixtureNames("sdpa")) {
    for (const precision of PRECISIONS) for (const implementation of IMPLEMENTATIONS) {
      test(`${name} (${precision}, ${implementation})`, () => {
        const f = loadFixture(name);
        const x: Record<string, Tensor> = { query: input(f.t.query, precision, true), key: input(f.t.key, precision, true), value: input(f.t.value, precision, true) };
        if (f.t.sinks) x.sinks = input(f.t.sinks, precision, true); // the flexible options' fixtures (flexPlan.ts)
        const documents = f.t.documentsQuery ? { query: f.t.documentsQuery, key: f.t.documentsKey } : undefined;
        const attnMask = f.t.attnMask ? input(f.t.attnMask, precision) : undefined;
        const [out, lse] = scaledDotProductAttentionWithLse(x.query, x.key, x.value, { ...f.options, attnMask, sinks: x.sinks, documents, implementation });
        assertClose(out, f.t.out, TOL[precision].out, `${name} out`);
        if (f.t.lse) assertClose(lse, f.t.lse, TOL[precision].out, `${name} lse`);
        out.backward(input(f.t.grad_out, precision));
        checkGrads(f, x, precision);
      });
    }
  }
});

describe("lookup fixtures", () => {
  for (const name of fixtureNames("lookup")) {
    for (const precision of PRECISIONS) {
      test(`${name} (${precision})`, () => {
        const f = loadFixture(name);
        const x = { query: input(f.t.query, precision, true), key: input(f.t.key, precision, true), value: input(f.t.value, precision, true) };
        const out = lookupAttention(x.query, x.key, x.value, f.options);
        assertClose(out, f.t.out, TOL[precision].out, `${name} out`);
        out.backward(input(f.t.grad_out, precision));
        checkGrads(f, x, precision);
        // the teaching point: exactly zero, not merely small
        assert.ok(x.query.grad!.values.every((v) => v === 0) && x.key.grad!.values.every((v) => v === 0));
      });
    }
  }
});

type AttnModule = MultiheadAttention | GroupedQueryAttention;

function runModule(f: Fixture, m: AttnModule, precision: Precision): void {
  const o = f.options as Record<string, boolean>;
  m.loadStateDict(params(f, "param.", precision));
  m.eval();
  const x = { query: input(f.t.query, precision, true), key: input(f.t.key, precision, true), value: input(f.t.value, precision, true) };
  const [out, weights] = m.forward(x.query, x.key, x.value, {
    keyPaddingMask: f.t.keyPaddingMask ? input(f.t.keyPaddingMask, precision) : undefined,
    attnMask: f.t.attnMask ? input(f.t.attnMask, precision) : undefined,
    needWeights: o.needWeights,
    averageAttnWeights: o.averageAttnWeights,
    isCausal: o.isCausal,
  });
  assertClose(out, f.t.out, TOL[precision].out, `${f.name} out`);
  if (f.t.weights) assertClose(weights, f.t.weights, TOL[precision].out, `${f.name} weights`);
  else assert.equal(weights, null, "needWeights: false returns null weights");
  out.backward(input(f.t.grad_out, precision));
  checkGrads(f, x, precision);
  for (const [pname, p] of m.namedParameters()) {
    const want = f.t[`grad_param.${pname}`];
    assert.ok(want, `${f.name}: fixture has no gradient for parameter ${pname}`);
    assertClose(p.grad, want, TOL[precision].grad, `${f.name} grad_param.${pname}`);
  }
}

for (const backend of BACKENDS) describe(`MultiheadAttention fixtures [${backend}]`, () => {
  onBackend(backend);
  for (const name of fixtureNames("mha")) {
    for (const precision of PRECISIONS) {
      test(`${name} (${precision})`, () => {
        const f = loadFixture(name);
        const o = f.options as Record<string, number & boolean>;
        const m = new MultiheadAttention(o.embedDim, o.numHeads, {
          bias: o.bias, addBiasKv: o.addBiasKv, addZeroAttn: o.addZeroAttn, kdim: o.kdim, vdim: o.vdim, batchFirst: o.batchFirst, dtype: precision,
        });
        runModule(f, m, precision);
      });
    }
  }
});

for (const backend of BACKENDS) describe(`GroupedQueryAttention fixtures [${backend}]`, () => {
  onBackend(backend);
  for (const name of fixtureNames("gqa")) {
    for (const precision of PRECISIONS) {
      test(`${name} (${precision})`, () => {
        const f = loadFixture(name);
        const o = f.options as Record<string, number & boolean>;
        const m = new GroupedQueryAttention(o.embedDim, o.numQueryHeads, o.numKvHeads, {
          bias: o.bias, kdim: o.kdim, vdim: o.vdim, batchFirst: o.batchFirst, dtype: precision,
        });
        runModule(f, m, precision);
        if (name === "gqa_equals_mha") {
          // GQA with Hkv = H is multi-head attention: the same weights in MHA's layout give the same output
          const mha = new MultiheadAttention(8, 4, { dtype: precision });
          mha.loadStateDict(params(f, "mhaparam.", precision));
          mha.eval();
          const q = input(f.t.query, precision);
          const [out] = mha.forward(q, input(f.t.key, precision), input(f.t.value, precision));
          assertClose(out, f.t.out, TOL[precision].out, "MultiheadAttention with the same weights");
        }
      });
    }
  }
});

/** Each op fixture names its op and arguments; this maps them to the library's functions. */
function runOp(f: Fixture, x: Record<string, Tensor>, extra: Record<string, Tensor>): Tensor {
  const o = f.options as Record<string, never>;
  switch (o.op as string) {
    case "softmax": return softmax(x.x, o.axis);
    case "logSoftmax": return logSoftmax(x.x, o.axis);
    case "gelu": return gelu(x.x, o.approximate);
    case "layerNorm": return layerNorm(x.x, o.normalizedShape, x.weight, x.bias, o.eps);
    case "rmsNorm": return rmsNorm(x.x, o.normalizedShape, x.weight, o.eps);
    case "crossEntropy": return crossEntropy(x.x, extra.target, { reduction: o.reduction, ignoreIndex: o.ignoreIndex, labelSmoothing: o.labelSmoothing });
    case "matmul": return matmul(x.x, x.y);
    case "embedding": return embedding(x.weight, extra.indices);
    case "tanh": return tanh(x.x);
    case "exp": return exp(x.x);
    case "log": return log(x.x);
    case "sqrt": return sqrt(x.x);
    case "sum": return sum(x.x, o.axis, o.keepdim);
    case "mean": return mean(x.x, o.axis, o.keepdim);
    case "max": return max(x.x, o.axis, o.keepdim);
    case "where": return where(extra.cond, x.x, x.y);
    case "add": return add(x.x, x.y);
    case "sub": return sub(x.x, x.y);
    case "mul": return mul(x.x, x.y);
    case "div": return div(x.x, x.y);
    default: throw new Error(`fixture ${f.name}: unknown op ${String(o.op)}`);
  }
}

for (const backend of BACKENDS) describe(`op fixtures [${backend}]`, () => {
  onBackend(backend);
  // the fixtures are small: let every float32 call take the backend's elementwise fast paths (gelu, layerNorm)
  let savedMin = 0;
  before(() => { savedMin = elementwiseTuning.minElements; elementwiseTuning.minElements = 0; });
  after(() => { elementwiseTuning.minElements = savedMin; });
  for (const name of fixtureNames("op")) {
    for (const precision of PRECISIONS) {
      test(`${name} (${precision})`, () => {
        const f = loadFixture(name);
        const x: Record<string, Tensor> = {};
        const extra: Record<string, Tensor> = {};
        for (const k of ["x", "y", "weight", "bias"]) if (f.t[k]) x[k] = input(f.t[k], precision, true);
        if (f.t.target) extra.target = cast(f.t.target, "int32");
        if (f.t.indices) extra.indices = cast(f.t.indices, "int32");
        if (f.t.cond) extra.cond = f.t.cond;
        const out = runOp(f, x, extra);
        assertClose(out, f.t.out, TOL[precision].out, `${name} out`);
        out.backward(input(f.t.grad_out, precision));
        checkGrads(f, x, precision);
      });
    }
  }
});
