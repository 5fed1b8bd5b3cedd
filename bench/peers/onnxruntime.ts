// onnxruntime-node (CPU execution provider) attention peer. Forward only:
// ONNX Runtime's Node package is an inference runtime (no training / autograd),
// so forward + backward is reported as not available.
//
// Forms (graphs built in memory with onnx-proto, fixed shapes, float32):
//   std-ops      — standard ONNX ops, opset 13, inputs [B, H, N, E]:
//                  Transpose(K) → MatMul(Q, Kᵀ) → Mul(1/√E) → [Add(mask) if causal]
//                  → Softmax(axis −1) → MatMul(P, V). The causal mask is an [N, N]
//                  initializer (0 / −∞). ORT's optimiser (level "all") may fuse
//                  Transpose/Mul into its FusedMatMul.
//   mha-contrib  — one com.microsoft.MultiHeadAttention node (contrib opset 1),
//                  num_heads = H. Inputs query/key/value are [B, N, H·E] ("BSD",
//                  i.e. [B, N, H, E] flattened), output [B, N, H·E]; default scale
//                  1/√head_size; causal via the unidirectional = 1 attribute. On CPU
//                  the non-causal case runs MLAS flash attention (no N² buffer);
//                  unidirectional falls back to the unfused kernel that materialises
//                  the [B, H, N, N] probabilities.
// Session: intraOpNumThreads = os.availableParallelism(), interOpNumThreads = 1,
// sequential execution, graphOptimizationLevel "all", CPU EP.

import os from "node:os";
import type * as Ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import {
  B,
  CHECK_N,
  E,
  H,
  type CheckResult,
  type Pass,
  type PeerCase,
  type PeerModule,
  type PeerResult,
  type TimingOptions,
  bhneToBnhe,
  bnheToBhne,
  compareWithReference,
  makeInputs,
  scoreBytes,
  timePrepared,
} from "./common.js";

const { onnx } = onnxProto;

export const name = "onnxruntime-node";
export const forms = ["std-ops", "mha-contrib"] as const;
export type OrtForm = (typeof forms)[number];
export const passes: readonly Pass[] = ["fwd"];
export const unavailable: Partial<Record<Pass, string>> = {
  "fwd+bwd": "n/a: onnxruntime-node is inference-only (no training/autograd)",
};

const threads = os.availableParallelism();
let ort: typeof Ort | undefined;
let description = "";

export async function setup(): Promise<string> {
  if (ort) return description;
  // Loads the native binding (bin/napi-v6/<platform>/<arch>/onnxruntime_binding.node).
  // CJS package: plain Node exposes its exports as named exports, tsx as `default`.
  const mod = (await import("onnxruntime-node")) as unknown as typeof Ort & { default?: typeof Ort };
  const lib = mod.InferenceSession ? mod : mod.default;
  if (!lib?.InferenceSession) throw new Error("onnxruntime-node: binding did not load");
  ort = lib;
  const bundled = lib.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name);
  description =
    `onnxruntime-node ${lib.env.versions.node ?? "?"}, CPU EP, intraOpNumThreads=${threads}, ` +
    `interOpNumThreads=1 (bundled EPs: ${bundled.join(", ")})`;
  return description;
}

// ---------------------------------------------------------------------------
// Graph building

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const AttrType = onnx.AttributeProto.AttributeType;

function tensorInfo(name: string, dims: number[]): OnnxTypes.IValueInfoProto {
  return { name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } };
}

function floatInit(name: string, dims: number[], data: Float32Array): OnnxTypes.ITensorProto {
  return { name, dataType: FLOAT, dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function intAttr(name: string, i: number): OnnxTypes.IAttributeProto {
  return { name, type: AttrType.INT, i };
}

function intsAttr(name: string, ints: number[]): OnnxTypes.IAttributeProto {
  return { name, type: AttrType.INTS, ints };
}

function buildModel(form: OrtForm, N: number, causal: boolean): Uint8Array {
  let graph: OnnxTypes.IGraphProto;
  if (form === "std-ops") {
    const dims = [B, H, N, E];
    const nodes: OnnxTypes.INodeProto[] = [
      { opType: "Transpose", input: ["K"], output: ["Kt"], attribute: [intsAttr("perm", [0, 1, 3, 2])] },
      { opType: "MatMul", input: ["Q", "Kt"], output: ["S"] },
      { opType: "Mul", input: ["S", "scale"], output: ["Ss"] },
    ];
    const initializer = [floatInit("scale", [], new Float32Array([1 / Math.sqrt(E)]))];
    let logits = "Ss";
    if (causal) {
      const m = new Float32Array(N * N);
      for (let i = 0; i < N; i++) m.fill(-Infinity, i * N + i + 1, (i + 1) * N);
      initializer.push(floatInit("mask", [N, N], m));
      nodes.push({ opType: "Add", input: ["Ss", "mask"], output: ["Sm"] });
      logits = "Sm";
    }
    nodes.push({ opType: "Softmax", input: [logits], output: ["P"], attribute: [intAttr("axis", -1)] });
    nodes.push({ opType: "MatMul", input: ["P", "V"], output: ["O"] });
    graph = {
      name: "attention_std",
      node: nodes,
      input: [tensorInfo("Q", dims), tensorInfo("K", dims), tensorInfo("V", dims)],
      output: [tensorInfo("O", dims)],
      initializer,
    };
  } else {
    const dims = [B, N, H * E];
    graph = {
      name: "attention_mha",
      node: [
        {
          opType: "MultiHeadAttention",
          domain: "com.microsoft",
          input: ["Q", "K", "V"],
          output: ["O"],
          attribute: [intAttr("num_heads", H), intAttr("unidirectional", causal ? 1 : 0)],
        },
      ],
      input: [tensorInfo("Q", dims), tensorInfo("K", dims), tensorInfo("V", dims)],
      output: [tensorInfo("O", dims)],
    };
  }
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "attend-bench",
    opsetImport: [
      { domain: "", version: 13 },
      { domain: "com.microsoft", version: 1 },
    ],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

function rt(): typeof Ort {
  if (!ort) throw new Error("onnxruntime: call setup() first");
  return ort;
}

async function createSession(form: OrtForm, N: number, causal: boolean): Promise<Ort.InferenceSession> {
  return rt().InferenceSession.create(buildModel(form, N, causal), {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
}

interface Prepared {
  /** One forward run; returns O in [B, H, N, E]. */
  run(): Promise<Float32Array>;
  release(): Promise<void>;
}

async function prepare(form: OrtForm, N: number, causal: boolean, convertOutput: boolean): Promise<Prepared> {
  const session = await createSession(form, N, causal);
  const inp = makeInputs(N);
  const std = form === "std-ops";
  const dims = std ? [B, H, N, E] : [B, N, H * E];
  const lay = (x: Float32Array) => (std ? x : bhneToBnhe(x, N));
  const ort = rt();
  const feeds = {
    Q: new ort.Tensor("float32", lay(inp.q), dims),
    K: new ort.Tensor("float32", lay(inp.k), dims),
    V: new ort.Tensor("float32", lay(inp.v), dims),
  };
  return {
    async run() {
      const out = await session.run(feeds);
      const o = out.O!.data as Float32Array;
      return std || !convertOutput ? o : bnheToBhne(o, N);
    },
    release: () => session.release(),
  };
}

function asForm(form: string): OrtForm {
  if (!(forms as readonly string[]).includes(form)) throw new Error(`onnxruntime: unknown form ${form}`);
  return form as OrtForm;
}

export async function check(c: Omit<PeerCase, "N">): Promise<CheckResult> {
  await setup();
  if (c.pass !== "fwd") return { ok: false, maxErr: NaN, note: unavailable[c.pass] };
  const p = await prepare(asForm(c.form), CHECK_N, c.causal, true);
  try {
    return compareWithReference(makeInputs(CHECK_N), c.causal, "fwd", { o: await p.run() });
  } finally {
    await p.release();
  }
}

export async function time(c: PeerCase, opts: TimingOptions = {}): Promise<PeerResult> {
  await setup();
  if (c.pass !== "fwd") return { medianMs: NaN, gflops: NaN, ok: false, note: unavailable[c.pass] };
  const p = await prepare(asForm(c.form), c.N, c.causal, false);
  return timePrepared(c, p, opts);
}

/**
 * Calibrated on this machine's peak RSS at N = 8192 (in units of one
 * [B, H, N, N] float32 tensor, 2 GiB there): std-ops 2.2 non-causal, 4.3 causal
 * (the mask Add is not done in place); mha-contrib causal 2.3; mha-contrib
 * non-causal runs flash attention, so only O(N·E) (0.5 GiB RSS at N = 16384).
 */
export function estimateBytes(c: PeerCase): number {
  const io = 8 * B * H * c.N * E * 4;
  if (c.form === "std-ops") return scoreBytes(c.N, c.causal ? 4.5 : 2.5) + io;
  return c.causal ? scoreBytes(c.N, 2.5) + io : io;
}

export const peer: PeerModule = { name, forms, passes, unavailable, setup, estimateBytes, check, time };
