/**
 * A seeded random generator: xoshiro128** seeded through splitmix32, all in 32-bit integer
 * arithmetic, so the same seed gives the same numbers on every machine and JavaScript engine.
 * Normal samples use the Box-Muller transform.
 */
import { ArgumentError } from "./errors.js";
import { describeValue } from "./validate.js";

function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [state, (z ^ (z >>> 16)) >>> 0];
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Generator {
  private s = new Uint32Array(4);
  private spareNormal: number | null = null;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  /** Reset the stream: the same seed always gives the same sequence. */
  manualSeed(seed: number): this {
    if (!Number.isFinite(seed)) throw new ArgumentError(`Generator.manualSeed: seed must be a finite number, got ${seed}`);
    // Mix both 32-bit halves of the seed so that large integer seeds differ.
    let st = (Math.floor(seed) | 0) ^ Math.floor(seed / 4294967296);
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(st);
      st = next;
      this.s[i] = out;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
    this.spareNormal = null;
    return this;
  }

  /** Next uniform 32-bit unsigned integer (xoshiro128**). */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextFloat64(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [0, 1) with 24 random bits (exactly representable in float32). */
  nextFloat32(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }

  /** Standard normal (Box-Muller, both outputs used). */
  nextNormal(): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return z;
    }
    const u1 = 1 - this.nextFloat64(); // (0, 1]: log is finite
    const u2 = this.nextFloat64();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spareNormal = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Uniform integer in [0, n). */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat64() * n);
  }
}

let defaultGen = new Generator(0);

/** Seed the default generator (what creation ops use when no generator is passed). */
export function manualSeed(seed: number): Generator {
  defaultGen = new Generator(seed);
  return defaultGen;
}

export function defaultGenerator(): Generator {
  return defaultGen;
}

/** `g` if it is a Generator (undefined passes), else an ArgumentError naming fn and what was seen. */
export function checkGenerator(fn: string, name: string, g: unknown): Generator | undefined {
  if (g === undefined || g instanceof Generator) return g;
  throw new ArgumentError(`${fn}: ${name} must be a Generator (new Generator(seed)), got ${describeValue(g)}`);
}

/** The generator a module initialises from: the one given, else a fresh one seeded with `seed` (default 0). */
export function initGenerator(opts: { seed?: number; generator?: Generator }, fn = "initGenerator"): Generator {
  if (opts.seed !== undefined && (typeof opts.seed !== "number" || !Number.isFinite(opts.seed))) {
    throw new ArgumentError(`${fn}: seed must be a finite number, got ${String(opts.seed)}`);
  }
  return checkGenerator(fn, "generator", opts.generator) ?? new Generator(opts.seed ?? 0);
}
