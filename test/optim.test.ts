/**
 * Optimizers, clipping and schedules against PyTorch 1.13 trajectories (test/fixtures/optim/*.json,
 * written by make_optim_fixtures.py), in float64, within 1e-6 relative; plus state-dict round trips.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Tensor, tensor, noGrad, Linear, crossEntropy, serializeSafetensors, deserializeSafetensors, findBackend, getBackendName, listBackends, setBackend,
} from "../src/index.js";
import { optimTuning } from "../src/kernels/index.js";
import {
  AdamW, SGD, LRScheduler, clipGradNorm, gradNorm, inverseSqrtWarmup, optimizerStateFromTensors, optimizerStateToTensors, warmupCosine,
  type Optimizer, type OptimizerStateDict,
} from "../src/optim/index.js";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "optim");
const load = (name: string): { cases: any[] } => JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8"));
const RTOL = 1e-6;

interface Flat { shape: number[]; data: number[] }

const f64 = (x: Flat): Tensor => tensor(Float64Array.from(x.data), x.shape, { dtype: "float64" });

/** max |a - e| / max(max |e|, 1e-12) */
function closeTo(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = RTOL): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let num = 0;
  let den = 1e-12;
  for (let i = 0; i < expected.length; i++) {
    num = Math.max(num, Math.abs(actual[i] - expected[i]));
    den = Math.max(den, Math.abs(expected[i]));
  }
  assert.ok(num / den <= rtol, `${what}: relative error ${num / den} > ${rtol}`);
}

type Make = (params: any) => Optimizer<{ lr: number }>;

function runCase(c: any, make: Make): { params: Tensor[]; opt: Optimizer<{ lr: number }> } {
  const params = c.params0.map((p: Flat) => f64(p).requiresGrad_());
  const spec = c.groups
    ? c.groups.map((g: any) => ({ ...g.options, params: g.params.map((i: number) => params[i]) }))
    : params;
  const opt = make(spec);
  c.grads.forEach((step: (Flat | null)[], s: number) => {
    step.forEach((g, i) => {
      params[i].grad = g === null ? null : f64(g);
    });
    opt.step();
    c.params[s].forEach((want: Flat, i: number) => closeTo(params[i].values, want.data, `${c.name} step ${s + 1} param ${i}`));
  });
  // the state dict numbers parameters in group order
  const order: number[] = c.groups ? c.groups.flatMap((g: any) => g.params) : params.map((_: Tensor, i: number) => i);
  const mine = opt.stateDict();
  c.state.forEach((st: Record<string, Flat | number>, i: number) => {
    const id = order.indexOf(i);
    for (const [k, v] of Object.entries(st)) {
      if (k === "step") assert.equal(mine.state[id].step, v, `${c.name} param ${i} step`);
      else closeTo(mine.state[id].buffers[k].values, (v as Flat).data, `${c.name} param ${i} ${k}`);
    }
  });
  return { params, opt };
}

describe("SGD matches torch.optim.SGD", () => {
  for (const c of load("sgd").cases) {
    test(c.name, () => {
      runCase(c, (ps) => new SGD(ps, c.options));
    });
  }
});

describe("AdamW matches torch.optim.AdamW", () => {
  for (const c of load("adamw").cases) {
    test(c.name, () => {
      runCase(c, (ps) => new AdamW(ps, c.options));
    });
  }
});

describe("AdamW on float32 parameters through the wasm backend's kernel (one job per step) follows torch.optim.AdamW", () => {
  const wasm = listBackends().includes("wasm");
  for (const c of load("adamw").cases) {
    test(c.name, { skip: !wasm && "no wasm backend here" }, () => {
      const saved = getBackendName(), min = optimTuning.minElements;
      const be = findBackend("wasm")!;
      const kernel = be.adamw!;
      let viaKernel = 0;
      be.adamw = (items) => { const done = kernel(items); if (done) viaKernel++; return done; };
      try {
        setBackend("wasm");
        optimTuning.minElements = 0; // these parameters are small
        const params = c.params0.map((p: Flat) => tensor(Float32Array.from(p.data), p.shape, { dtype: "float32" }).requiresGrad_());
        const spec = c.groups ? c.groups.map((g: any) => ({ ...g.options, params: g.params.map((i: number) => params[i]) })) : params;
        const opt = new AdamW(spec, c.options);
        c.grads.forEach((step: (Flat | null)[], s: number) => {
          step.forEach((g, i) => { params[i].grad = g === null ? null : tensor(Float32Array.from(g.data), g.shape, { dtype: "float32" }); });
          opt.step();
          // float32 storage: each step's values rounded to float32 (the float64 run above holds 1e-6)
          c.params[s].forEach((want: Flat, i: number) => closeTo(params[i].values, want.data, `${c.name} float32 step ${s + 1} param ${i}`, 1e-5));
        });
        assert.ok(viaKernel > 0, "the kernel ran");
      } finally {
        be.adamw = kernel;
        optimTuning.minElements = min;
        setBackend(saved);
      }
    });
  }
});

describe("clipGradNorm matches torch.nn.utils.clip_grad_norm_", () => {
  for (const c of load("clip").cases) {
    test(c.name, () => {
      const params = c.grads.map((g: Flat | null, i: number) => {
        const p = tensor(new Float64Array(g ? g.data.length : 4), g ? g.shape : [4], { dtype: "float64", requiresGrad: true });
        p.grad = g === null ? null : f64(g);
        return p;
      });
      const before = params.map((p: Tensor) => p.grad);
      const normType = c.normType === "inf" ? Infinity : c.normType;
      const norm = clipGradNorm(params, c.maxNorm, { normType });
      closeTo([norm], [c.norm], `${c.name} norm`);
      c.clipped.forEach((want: Flat | null, i: number) => {
        if (want === null) assert.equal(params[i].grad, null);
        else closeTo(params[i].grad.values, want.data, `${c.name} grad ${i}`);
      });
      // the old gradient tensors are untouched (clipping replaces, never writes in place)
      c.grads.forEach((g: Flat | null, i: number) => g && closeTo(before[i].values, g.data, `${c.name} original grad ${i}`, 0));
    });
  }

  test("hand-worked: grads [3, 4] have norm 5; maxNorm 1 scales by 1/(5 + 1e-6)", () => {
    const p = tensor([0, 0], undefined, { dtype: "float64", requiresGrad: true });
    p.grad = tensor([3, 4], undefined, { dtype: "float64" });
    assert.equal(clipGradNorm([p], 1), 5);
    closeTo(p.grad!.values, [3 / (5 + 1e-6), 4 / (5 + 1e-6)], "clipped", 1e-15);
    assert.equal(gradNorm([p]), 5 / (5 + 1e-6));
  });

  test("no gradients: norm 0; a NaN gradient is reported (or refused)", () => {
    const p = tensor([1, 2], undefined, { requiresGrad: true });
    assert.equal(clipGradNorm([p], 1), 0);
    p.grad = tensor([NaN, 1]);
    assert.ok(Number.isNaN(clipGradNorm([p], 1)));
    p.grad = tensor([NaN, 1]);
    assert.throws(() => clipGradNorm([p], 1, { errorIfNonfinite: true }), /clipGradNorm: the total 2-norm of the gradients is NaN/);
  });
});

describe("learning-rate schedules match torch's LinearLR + CosineAnnealingLR and the paper's LambdaLR", () => {
  for (const c of load("schedules").cases) {
    test(c.name, () => {
      const p = tensor([0], undefined, { dtype: "float64", requiresGrad: true });
      const opt = new SGD([p], { lr: c.baseLr });
      const schedule = c.schedule === "warmupCosine" ? warmupCosine(c.options) : inverseSqrtWarmup(c.options);
      const sched = new LRScheduler(opt, schedule);
      const lrs: number[] = [];
      for (let s = 0; s < c.lrs.length; s++) {
        lrs.push(opt.paramGroups[0].lr);
        sched.step();
      }
      closeTo(lrs, c.lrs, c.name);
    });
  }

  test("hand-worked: the paper's schedule peaks at step W with (d·W)^-0.5", () => {
    const f = inverseSqrtWarmup({ dModel: 512, warmupSteps: 4000 });
    assert.ok(Math.abs(f(4000) - 1 / Math.sqrt(512 * 4000)) < 1e-15);
    assert.ok(f(3999) < f(4000) && f(4001) < f(4000));
    assert.equal(f(0), f(1));
  });

  test("warmupCosine: 1 at the end of warm-up, the floor at and after totalSteps", () => {
    const f = warmupCosine({ warmupSteps: 10, totalSteps: 110, minFactor: 0.1 });
    assert.equal(f(0), 0.1);
    assert.equal(f(10), 1);
    assert.ok(Math.abs(f(60) - 0.55) < 1e-15); // halfway down the cosine: 0.1 + 0.9 * 0.5
    assert.equal(f(110), 0.1);
    assert.equal(f(500), 0.1);
    assert.throws(() => warmupCosine({ warmupSteps: 10, totalSteps: 10 }), /warmupCosine: totalSteps \(10\) must be larger than warmupSteps \(10\)/);
  });
});

/** A tiny regression problem whose gradients depend on the parameters. */
function tinyProblem(seed: number): { model: Linear; loss: () => Tensor } {
  const model = new Linear(4, 3, { seed });
  const x = tensor([[1, 2, 3, 4], [-1, 0.5, 2, 0], [0, 0, 1, -2]]);
  const y = tensor([0, 2, 1], undefined, { dtype: "int32" });
  return { model, loss: () => crossEntropy(model.forward(x), y) };
}

function trainSteps(model: Linear, loss: () => Tensor, opt: Optimizer<{ lr: number }>, n: number, sched?: LRScheduler): void {
  for (let i = 0; i < n; i++) {
    opt.zeroGrad();
    loss().backward();
    opt.step();
    sched?.step();
  }
}

describe("state dicts: a resumed run continues bit for bit", () => {
  for (const [name, make] of [
    ["SGD nesterov", (ps: any) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })],
    ["AdamW amsgrad", (ps: any) => new AdamW(ps, { lr: 0.05, amsgrad: true })],
  ] as const) {
    test(name, () => {
      const a = tinyProblem(1);
      const optA = make(a.model.parameters());
      const schedA = new LRScheduler(optA, warmupCosine({ warmupSteps: 3, totalSteps: 12 }));
      trainSteps(a.model, a.loss, optA, 10, schedA);

      const b = tinyProblem(1);
      const optB = make(b.model.parameters());
      const schedB = new LRScheduler(optB, warmupCosine({ warmupSteps: 3, totalSteps: 12 }));
      trainSteps(b.model, b.loss, optB, 5, schedB);
      // save everything through safetensors bytes, restore into fresh objects
      const { tensors, json } = optimizerStateToTensors(optB.stateDict());
      const bytes = serializeSafetensors({ ...tensors, ...Object.fromEntries(Object.entries(b.model.stateDict()).map(([k, v]) => [`model.${k}`, v])) });
      const back = deserializeSafetensors(bytes).tensors;
      const c = tinyProblem(99); // different init: everything must come from the checkpoint
      c.model.loadStateDict({ weight: back["model.weight"], bias: back["model.bias"] });
      const optC = make(c.model.parameters());
      optC.loadStateDict(optimizerStateFromTensors(back, json));
      const schedC = new LRScheduler(optC, warmupCosine({ warmupSteps: 3, totalSteps: 12 }));
      schedC.loadStateDict(schedB.stateDict());
      trainSteps(c.model, c.loss, optC, 5, schedC);
      assert.deepEqual([...c.model.weight.values], [...a.model.weight.values]);
      assert.deepEqual([...c.model.bias!.values], [...a.model.bias!.values]);
    });
  }

  test("stateDict is a snapshot; loadStateDict rejects a mismatched dict without changing anything", () => {
    const a = tinyProblem(2);
    const opt = new AdamW(a.model.parameters(), { lr: 0.01 });
    trainSteps(a.model, a.loss, opt, 2);
    const sd = opt.stateDict();
    const snap = [...sd.state[0].buffers.exp_avg.values];
    trainSteps(a.model, a.loss, opt, 1);
    assert.deepEqual([...sd.state[0].buffers.exp_avg.values], snap);
    const bad: OptimizerStateDict = { ...sd, paramGroups: [{ ...sd.paramGroups[0], params: [0] }] };
    assert.throws(() => opt.loadStateDict(bad), /AdamW.loadStateDict: param group 0 has 1 parameters in the state dict, 2 here/);
    const wrongShape: OptimizerStateDict = { ...sd, state: { 0: { step: 1, buffers: { exp_avg: tensor([1, 2]) } } } };
    assert.throws(() => opt.loadStateDict(wrongShape), /state 0.exp_avg has shape \[2\], the parameter has \[3, 4\]/);
    assert.equal(opt.stateDict().state[0].step, 3);
  });
});

describe("optimizer API", () => {
  test("updates p.data in place (a detached view sees it), skips params without a gradient, zeroGrad clears", () => {
    const p = tensor([1, 2], undefined, { dtype: "float64", requiresGrad: true });
    const q = tensor([5], undefined, { dtype: "float64", requiresGrad: true });
    const view = p.detach();
    const opt = new SGD([p, q], { lr: 0.5 });
    p.grad = tensor([1, -1], undefined, { dtype: "float64" });
    opt.step();
    assert.deepEqual([...view.values], [0.5, 2.5]); // 1 - 0.5·1, 2 - 0.5·(-1)
    assert.deepEqual([...q.values], [5]);
    opt.zeroGrad();
    assert.equal(p.grad, null);
  });

  test("named param groups, e.g. no weight decay on biases", () => {
    const m = new Linear(3, 2, { seed: 0 });
    const named = m.namedParameters();
    const opt = new AdamW([
      { name: "decay", params: [named.get("weight")!] },
      { name: "no_decay", params: [named.get("bias")!], weightDecay: 0 },
    ], { lr: 0.1, weightDecay: 0.5 });
    assert.deepEqual(opt.paramGroups.map((g) => [g.name, g.weightDecay, g.lr]), [["decay", 0.5, 0.1], ["no_decay", 0, 0.1]]);
    const bias0 = [...m.bias!.values];
    const w0 = [...m.weight.values];
    noGrad(() => {
      m.weight.grad = tensor(new Float32Array(6), [2, 3]);
      m.bias!.grad = tensor(new Float32Array(2), [2]);
    });
    opt.step(); // zero gradients: only decay moves anything
    assert.deepEqual([...m.bias!.values], bias0);
    m.weight.values.forEach((w, i) => assert.ok(Math.abs(w - Math.fround(w0[i] * 0.95)) < 1e-7));
  });

  test("a step refused for a gradient's shape changes nothing, and the next step is one step (not two)", () => {
    const a = tensor([1, -2, 3, 0.5], undefined, { dtype: "float32", requiresGrad: true });
    const b = tensor([4, 5, -6], undefined, { dtype: "float32", requiresGrad: true });
    const opt = new AdamW([a, b], { lr: 0.1, weightDecay: 0.01 });
    const a0 = Float32Array.from(a.values), b0 = Float32Array.from(b.values);
    const ga = [0.5, -1, 2, -0.25], gb = [3, -0.5, 1];
    a.grad = tensor(ga, undefined, { dtype: "float32" });
    b.grad = tensor([1, 2], undefined, { dtype: "float32" }); // b is [3]
    assert.throws(() => opt.step(), /AdamW\.step: a gradient of shape \[2\] is attached to a parameter of shape \[3\]/);
    assert.deepEqual([...a.values], [...a0], "a is untouched: nothing is updated before every gradient is checked");
    assert.deepEqual([...b.values], [...b0]);
    b.grad = tensor(gb, undefined, { dtype: "float32" });
    opt.step();
    // Adam's first step, by hand: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g / (|g| + eps) = p·0.999 − 0.1·sign(g)
    const first = (p: number, g: number): number => p * (1 - 0.1 * 0.01) - (0.1 * g) / (Math.abs(g) + 1e-8);
    a.values.forEach((x, i) => assert.ok(Math.abs(x - first(a0[i], ga[i])) < 1e-6, `a[${i}] ${x} vs ${first(a0[i], ga[i])}`));
    b.values.forEach((x, i) => assert.ok(Math.abs(x - first(b0[i], gb[i])) < 1e-6, `b[${i}] ${x} vs ${first(b0[i], gb[i])}`));
  });

  test("errors name the optimizer and the argument", () => {
    const p = tensor([1], undefined, { requiresGrad: true });
    assert.throws(() => new SGD([p], {} as any), /SGD: needs a learning rate/);
    assert.throws(() => new SGD([p], { lr: -1 }), /SGD: lr must be a finite number >= 0, got -1/);
    assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /SGD: nesterov needs momentum > 0/);
    assert.throws(() => new AdamW([p], { betas: [0.9, 1] }), /AdamW: betas\[1\] must be in \[0, 1\), got 1/);
    assert.throws(() => new AdamW([]), /AdamW: got an empty parameter list/);
    assert.throws(() => new AdamW([p, p]), /a parameter appears twice/);
    assert.throws(() => new AdamW([p.mul(2)]), /is not a leaf tensor/);
    assert.throws(() => new AdamW([tensor([1], undefined, { dtype: "int32" })]), /only float32\/float64 tensors can be optimized/);
  });
});
