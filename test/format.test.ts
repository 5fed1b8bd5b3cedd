/**
 * How a tensor prints: String(t) and console.log(t) against the text PyTorch prints for the same
 * values (test/fixtures/repr.json, from make_repr_fixtures.py), and arraySync's typing.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import { type DType, Tensor, add, tensor } from "../src/index.js";

interface ReprCase {
  name: string;
  description: string;
  dtype: DType;
  shape: number[];
  /** Python's repr of each value ("nan", "inf", "-inf" as Python writes them; "true"/"false" for bool) */
  values: string[];
  requiresGrad: boolean;
  expected: string;
}

const cases = JSON.parse(readFileSync(new URL("./fixtures/repr.json", import.meta.url), "utf8")) as ReprCase[];

function parseValue(s: string): number {
  const special: Record<string, number> = { nan: NaN, inf: Infinity, "-inf": -Infinity, true: 1, false: 0 };
  return s in special ? special[s] : Number(s);
}

function build(c: ReprCase): Tensor {
  const values = c.values.map(parseValue);
  const t = tensor(values, c.shape, { dtype: c.dtype });
  return c.requiresGrad ? t.requiresGrad_() : t;
}

describe("String(t) prints what PyTorch prints", () => {
  for (const c of cases) {
    test(`${c.name}: ${c.description}`, () => {
      assert.equal(String(build(c)), c.expected);
    });
  }
});

describe("console.log and util.inspect", () => {
  test("print the same text as String(t), also nested in an object", () => {
    const t = tensor([[1, 2.5], [3, 4]]);
    assert.equal(inspect(t), "tensor([[1.0000, 2.5000],\n        [3.0000, 4.0000]])");
    assert.equal(inspect({ t }), "{\n  t: tensor([[1.0000, 2.5000],\n          [3.0000, 4.0000]])\n}");
  });
  test("a tensor made by a recorded op names it, as PyTorch's grad_fn", () => {
    const x = tensor([1, 2]).requiresGrad_();
    assert.equal(String(add(x, 1)), "tensor([2., 3.], grad_fn=<add>)");
  });
});

describe("arraySync", () => {
  test("a type argument makes the result indexable under strict TypeScript", () => {
    const t = tensor([[1, 2], [3, 4]]);
    const m = t.arraySync<number[][]>();
    assert.equal(m[1][0] * 10, 30);
    const b = tensor([true, false]).arraySync<boolean[]>();
    assert.equal(b[0] && !b[1], true);
    assert.equal(tensor(7).arraySync<number>() + 1, 8);
  });
});
