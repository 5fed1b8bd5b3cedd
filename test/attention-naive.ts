/**
 * Attention problems for the kernel tests and the independent check they are held to: a materialising
 * float64 computation (the full [L, S] score matrix per head), written apart from every kernel.
 */
import assert from "node:assert/strict";
import type { AttentionMask, AttentionParams, Backend, CausalKind } from "../src/kernels/backend.js";
import { dropoutBits, dropoutRowState, dropoutThreshold } from "../src/kernels/dropoutHash.js";
import { rng } from "./kernel-inputs.js";

export type F = Float32Array | Float64Array;

export function randArray<T extends F>(ctor: new (n: number) => T, n: number, r: () => number, amp = 1): T {
  const a = new ctor(n);
  for (let i = 0; i < n; i++) a[i] = (2 * r() - 1) * amp;
  return a;
}

/** max |a - b| / (atol + rtol |b|) <= 1, with equal infinities allowed */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    if (Number.isNaN(x) || Number.isNaN(y)) assert.fail(`${what}: NaN at ${i} (${x} vs ${y})`);
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (x !== y) assert.fail(`${what}: ${x} vs ${y} at ${i}`);
      continue;
    }
    const e = Math.abs(x - y) / (atol + rtol * Math.abs(y));
    if (e > worst) { worst = e; at = i; }
  }
  if (worst > 1) assert.fail(`${what}: ${a[at]} vs ${b[at]} at ${at} (error ${worst.toFixed(2)}x tolerance)`);
}

export interface Case {
  B: number; H: number; Hkv: number; L: number; S: number; E: number; Ev: number;
  causal?: CausalKind;
  mask?: "none" | "bool-bhls" | "bool-b1ls" | "bool-keypad" | "float-1hls" | "float-ls" | "bool-full-rows";
  scale?: number;
  dropoutP?: number;
  seed?: number;
}

export function makeMask(c: Case, r: () => number, ctor: new (n: number) => F): AttentionMask | null {
  const { B, H, L, S } = c;
  switch (c.mask ?? "none") {
    case "none": return null;
    case "bool-bhls": {
      const d = new Uint8Array(B * H * L * S);
      for (let i = 0; i < d.length; i++) d[i] = r() < 0.75 ? 1 : 0;
      return { kind: "bool", data: d, strides: [H * L * S, L * S, S, 1] };
    }
    case "bool-b1ls": {
      const d = new Uint8Array(B * L * S);
      for (let i = 0; i < d.length; i++) d[i] = r() < 0.7 ? 1 : 0;
      return { kind: "bool", data: d, strides: [L * S, 0, S, 1] };
    }
    case "bool-keypad": {
      // [B, 1, 1, S]: the last keys of each batch are padding
      const d = new Uint8Array(B * S);
      for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) d[b * S + s] = s < S - b - 1 || s === 0 ? 1 : 0;
      return { kind: "bool", data: d, strides: [S, 0, 0, 1] };
    }
    case "float-1hls": {
      const d = new ctor(H * L * S);
      for (let i = 0; i < d.length; i++) d[i] = r() < 0.1 ? -Infinity : 2 * r() - 1;
      return { kind: "float", data: d, strides: [0, L * S, S, 1] };
    }
    case "float-ls": {
      const d = new ctor(L * S);
      for (let i = 0; i < d.length; i++) d[i] = 3 * (r() - 0.5);
      return { kind: "float", data: d, strides: [0, 0, S, 1] };
    }
    case "bool-full-rows": {
      // [B, H, L, S] with every third query row fully masked
      const d = new Uint8Array(B * H * L * S);
      for (let i = 0; i < d.length; i++) {
        const l = Math.floor(i / S) % L;
        d[i] = l % 3 === 1 ? 0 : r() < 0.8 ? 1 : 0;
      }
      return { kind: "bool", data: d, strides: [H * L * S, L * S, S, 1] };
    }
  }
}

export interface Problem {
  p: AttentionParams;
  q: F; k: F; v: F; dout: F;
}

export function makeProblem(c: Case, ctor: new (n: number) => F, seed = 1): Problem {
  const r = rng(seed * 7919 + c.L * 31 + c.S * 17 + c.E);
  const p: AttentionParams = {
    B: c.B, H: c.H, Hkv: c.Hkv, L: c.L, S: c.S, E: c.E, Ev: c.Ev,
    scale: c.scale ?? 1 / Math.sqrt(c.E), causal: c.causal ?? "none",
    mask: makeMask(c, r, ctor), dropoutP: c.dropoutP ?? 0, dropoutSeed: c.seed ?? 1234,
  };
  return {
    p,
    q: randArray(ctor, c.B * c.H * c.L * c.E, r),
    k: randArray(ctor, c.B * c.Hkv * c.S * c.E, r),
    v: randArray(ctor, c.B * c.Hkv * c.S * c.Ev, r),
    dout: randArray(ctor, c.B * c.H * c.L * c.Ev, r),
  };
}

export interface Result { out: F; lse: F; dq: F; dk: F; dv: F }

/** Runs forward then backward (without lseLo); every output starts as NaN, so a kernel must write it all. */
export function runBackend(
  be: Pick<Backend, "attentionForward" | "attentionBackward">, pr: Problem, ctor: new (n: number) => F,
  lseCtor: new (n: number) => F = ctor,
): Result {
  const { p, q, k, v, dout } = pr;
  const out = new ctor(p.B * p.H * p.L * p.Ev), lse = new lseCtor(p.B * p.H * p.L);
  out.fill(NaN); lse.fill(NaN); // kernels must write every element
  be.attentionForward(p, q, k, v, out, lse);
  const dq = new ctor(q.length).fill(NaN), dk = new ctor(k.length).fill(NaN), dv = new ctor(v.length).fill(NaN);
  be.attentionBackward(p, q, k, v, out, dout, lse, dq, dk, dv);
  return { out, lse, dq, dk, dv };
}

/**
 * The independent check: materialise the full [L, S] score matrix per (b, h) in float64, softmax it,
 * apply the dropout mask, multiply; backward through the softmax Jacobian written with the full
 * matrices (D taken as the row sum of P * dP, not dO . O).
 */
export function naive(pr: Problem): Result {
  const { p, q, k, v, dout } = pr;
  const { B, H, Hkv, L, S, E, Ev, scale } = p;
  const out = new Float64Array(B * H * L * Ev), lse = new Float64Array(B * H * L);
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const thr = dropoutThreshold(p.dropoutP);
  const keepScale = p.dropoutP >= 1 ? 0 : 1 / (1 - p.dropoutP);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      const qo = (b * H + h) * L, ko = (b * Hkv + kvh) * S;
      const Sc: number[][] = [], P: number[][] = [], Pd: number[][] = [], keep: number[][] = [];
      for (let l = 0; l < L; l++) {
        Sc.push([]); P.push([]); Pd.push([]); keep.push([]);
        const st = dropoutRowState(p.dropoutSeed, (b * H + h) * L + l);
        for (let s = 0; s < S; s++) {
          let hidden = false;
          if (p.causal === "top-left" && s > l) hidden = true;
          if (p.causal === "bottom-right" && s > l + S - L) hidden = true;
          let x = 0;
          for (let e = 0; e < E; e++) x += q[(qo + l) * E + e] * k[(ko + s) * E + e];
          x *= scale;
          if (p.mask) {
            const [sb, sh, sl, ss] = p.mask.strides;
            const mv = p.mask.data[b * sb + h * sh + l * sl + s * ss];
            if (p.mask.kind === "bool") { if (!mv) hidden = true; } else x += mv;
          }
          Sc[l].push(hidden ? -Infinity : x);
          keep[l].push(p.dropoutP > 0 ? (dropoutBits(st, s) >= thr ? keepScale : 0) : 1);
        }
        const m = Math.max(...Sc[l]);
        let sum = 0;
        for (let s = 0; s < S; s++) sum += m === -Infinity ? 0 : Math.exp(Sc[l][s] - m);
        lse[qo + l] = m === -Infinity ? -Infinity : m + Math.log(sum);
        for (let s = 0; s < S; s++) {
          const pv = m === -Infinity ? 0 : Math.exp(Sc[l][s] - m) / sum;
          P[l].push(pv);
          Pd[l].push(pv * keep[l][s]);
        }
        for (let c = 0; c < Ev; c++) {
          let acc = 0;
          for (let s = 0; s < S; s++) acc += Pd[l][s] * v[(ko + s) * Ev + c];
          out[(qo + l) * Ev + c] = acc;
        }
      }
      // backward
      for (let l = 0; l < L; l++) {
        const dP: number[] = [];
        for (let s = 0; s < S; s++) {
          let x = 0;
          for (let c = 0; c < Ev; c++) x += dout[(qo + l) * Ev + c] * v[(ko + s) * Ev + c];
          dP.push(x * keep[l][s]);
        }
        let D = 0;
        for (let s = 0; s < S; s++) D += P[l][s] * dP[s];
        for (let s = 0; s < S; s++) {
          const dS = P[l][s] * (dP[s] - D);
          for (let e = 0; e < E; e++) {
            dq[(qo + l) * E + e] += scale * dS * k[(ko + s) * E + e];
            dk[(ko + s) * E + e] += scale * dS * q[(qo + l) * E + e];
          }
          for (let c = 0; c < Ev; c++) dv[(ko + s) * Ev + c] += Pd[l][s] * dout[(qo + l) * Ev + c];
        }
      }
    }
  }
  return { out, lse, dq, dk, dv };
}

export function compareResults(a: Result, b: Result, atol: number, rtol: number, what: string): void {
  assertClose(a.out, b.out, atol, rtol, `${what} out`);
  assertClose(a.lse, b.lse, atol, rtol, `${what} lse`);
  assertClose(a.dq, b.dq, atol, rtol, `${what} dq`);
  assertClose(a.dk, b.dk, atol, rtol, `${what} dk`);
  assertClose(a.dv, b.dv, atol, rtol, `${what} dv`);
}

export function caseName(c: Case): string {
  return `B${c.B} H${c.H}/${c.Hkv} L${c.L} S${c.S} E${c.E} Ev${c.Ev} ${c.causal ?? "none"} mask=${c.mask ?? "none"}` +
    `${c.scale !== undefined ? ` scale=${c.scale}` : ""}${c.dropoutP ? ` drop=${c.dropoutP}` : ""}`;
}
