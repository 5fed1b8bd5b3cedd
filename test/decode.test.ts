/**
 * The decode step's attention (src/attention/decode.ts): one query per head read against a KV
 * cache's storage in place. Checked against a hand-worked example and against the textbook path
 * (scaledDotProductAttention, implementation "math") on odd sizes, grouped heads, both dtypes, each
 * causal alignment, and a cache whose capacity exceeds its length (rows strided by capacity).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Tensor, randn, scaledDotProductAttention } from "../src/index.js";
import { KVCacheLayer } from "../src/nnNamespace.js";
import { decodeAttention } from "../src/attention/decode.js";
import { assertClose } from "./harness.js";

/** A self-attention cache layer holding keys [N, Hkv, S, E] and values [N, Hkv, S, Ev], pushed in two parts so it grows. */
function filled(k: Tensor, v: Tensor, first: number): KVCacheLayer {
  const layer = new KVCacheLayer("self", "test", 2);
  const [N, Hkv, S, E] = k.shape;
  const Ev = v.shape[3];
  const part = (t: Tensor, D: number, from: number, to: number): Tensor => {
    const out = new (t.values.constructor as Float32ArrayConstructor)(N * Hkv * (to - from) * D);
    for (let r = 0; r < N * Hkv; r++) out.set(t.values.subarray((r * S + from) * D, (r * S + to) * D), r * (to - from) * D);
    return new Tensor(out, [N, Hkv, to - from, D], t.dtype);
  };
  if (first > 0) layer.push(part(k, E, 0, first), part(v, Ev, 0, first));
  if (first < S) layer.push(part(k, E, first, S), part(v, Ev, first, S));
  return layer;
}

describe("decodeAttention", () => {
  test("hand-worked: q·k = 1, 0 -> softmax ≈ [0.731, 0.269], out = 0.731 * 2 + 0.269 * 0 ≈ 1.462", () => {
    const k = new Tensor(Float64Array.from([1, 0, 0, 0]), [1, 1, 2, 2]); // keys [1, 0] and [0, 0]
    const v = new Tensor(Float64Array.from([2, 0]), [1, 1, 2, 1]); // values 2 and 0
    const out = decodeAttention(Float64Array.from([1, 0]), filled(k, v, 1).storage()!, 1, 1, null);
    const p = Math.E / (Math.E + 1);
    assert.ok(Math.abs(out[0] - 2 * p) < 1e-15, `got ${out[0]}, expected ${2 * p}`);
    // top-left causal: the single query sees key 0 only, so out = value 0 = 2
    assert.equal(decodeAttention(Float64Array.from([1, 0]), filled(k, v, 1).storage()!, 1, 1, "top-left")[0], 2);
  });

  for (const dtype of ["float32", "float64"] as const) {
    test(`equals the textbook path: S ∈ {1, 3, 17, 33, 257}, G ∈ {1, 2, 4}, every causal alignment (${dtype})`, () => {
      const tol = dtype === "float32" ? 2e-6 : 1e-12;
      let seed = 10;
      for (const S of [1, 3, 17, 33, 257]) {
        for (const [H, Hkv] of [[3, 3], [4, 2], [4, 1]]) {
          const [N, E, Ev] = [2, 5, 7];
          const q = randn([N, H, 1, E], { seed: seed++, dtype });
          const k = randn([N, Hkv, S, E], { seed: seed++, dtype });
          const v = randn([N, Hkv, S, Ev], { seed: seed++, dtype });
          const kv = filled(k, v, S >> 1).storage()!;
          assert.ok(kv.capacity > kv.length, `capacity ${kv.capacity}, length ${kv.length}`); // rows strided by capacity, not length
          for (const causal of [null, "bottom-right", "top-left"] as const) {
            const scale = 1 / Math.sqrt(E);
            const got = new Tensor(decodeAttention(q.values as Float32Array, kv, H, scale, causal), [N, H, 1, Ev], dtype);
            const want = scaledDotProductAttention(q, k, v, {
              implementation: "math", enableGqa: true, isCausal: causal !== null, causalAlignment: causal ?? undefined,
            });
            assertClose(got, want, tol, `S ${S}, H ${H}, Hkv ${Hkv}, causal ${causal}`);
          }
        }
      }
    });
  }

  test("a NaN in one head's query makes that head's row NaN, as softmax does; the other heads are untouched", () => {
    const q = randn([1, 2, 1, 4], { seed: 1, dtype: "float64" });
    const k = randn([1, 2, 6, 4], { seed: 2, dtype: "float64" });
    const v = randn([1, 2, 6, 3], { seed: 3, dtype: "float64" });
    q.values[5] = NaN; // head 1
    const out = decodeAttention(q.values as Float64Array, filled(k, v, 3).storage()!, 2, 0.5, null);
    assert.ok([0, 1, 2].every((e) => Number.isFinite(out[e])));
    assert.ok([3, 4, 5].every((e) => Number.isNaN(out[e])));
  });
});

describe("KVCacheLayer.push / storage", () => {
  test("storage is read in place: position s of row r at (r * capacity + s) * E; growing keeps the rows", () => {
    const layer = new KVCacheLayer("self", "test", 2);
    assert.equal(layer.storage(), null);
    const k = new Tensor(Float32Array.from([1, 2, 3, 4]), [1, 2, 1, 2]); // [N, Hkv, T, E] = [1, 2, 1, 2]: row 0 [1, 2], row 1 [3, 4]
    layer.push(k, k);
    layer.push(k, k);
    layer.push(k, k); // capacity 2 -> 4
    const st = layer.storage()!;
    assert.deepEqual([st.length, st.capacity, st.N, st.heads, st.E, st.Ev], [3, 4, 1, 2, 2, 2]);
    for (let s = 0; s < 3; s++) {
      assert.deepEqual(Array.from(st.keys.subarray((0 * 4 + s) * 2, (0 * 4 + s) * 2 + 2)), [1, 2]);
      assert.deepEqual(Array.from(st.keys.subarray((1 * 4 + s) * 2, (1 * 4 + s) * 2 + 2)), [3, 4]);
    }
    const [kk] = layer.keysValues()!;
    assert.deepEqual(Array.from(kk.values), [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4]);
  });

  test("a filled cross layer refuses another push", () => {
    const layer = new KVCacheLayer("cross", "cross 0");
    const k = randn([1, 1, 3, 2], { seed: 1 });
    layer.push(k, k);
    assert.throws(() => layer.push(k, k), /KVCacheLayer\.push: cross 0 is a cross-attention \(static\) layer that is already filled/);
  });
});
