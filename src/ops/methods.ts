/**
 * The method forms of the common ops, so model code reads left to right: x.matmul(w).add(b).relu().
 * The Tensor class (src/tensor) knows nothing of ops; this file, in the ops layer, declares the
 * methods on it (TypeScript declaration merging) and attaches them to its prototype. It is loaded by
 * the package entries (src/core.ts) and the executables (src/cli/main.ts, src/lessons/main.ts).
 * Library code itself calls the function forms (reshape(x, s), not x.reshape(s)), so nothing inside
 * src depends on this file having been loaded.
 */
import "../autograd/backward.js"; // attaches x.backward()
import type { DType } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { abs, add, cast, clone, div, exp, log, maskedFill, mul, neg, pow, relu, sigmoid, sqrt, sub, tanh } from "./elementwise.js";
import { matmul } from "./matmul.js";
import { max, mean, sum } from "./reduce.js";
import { expand, permute, reshape, slice, squeeze, transpose, unsqueeze } from "./shape.js";
import { logSoftmax, softmax } from "./softmax.js";

declare module "../tensor/tensor.js" {
  interface Tensor {
    add(other: Tensor | number): Tensor;
    sub(other: Tensor | number): Tensor;
    mul(other: Tensor | number): Tensor;
    div(other: Tensor | number): Tensor;
    pow(exponent: number): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    tanh(): Tensor;
    relu(): Tensor;
    sigmoid(): Tensor;
    abs(): Tensor;
    matmul(other: Tensor): Tensor;
    sum(axis?: number | number[], keepdim?: boolean): Tensor;
    mean(axis?: number | number[], keepdim?: boolean): Tensor;
    max(axis?: number, keepdim?: boolean): Tensor;
    softmax(axis?: number): Tensor;
    logSoftmax(axis?: number): Tensor;
    /** reshape(2, 3) or reshape([2, 3]); one dim may be -1 */
    reshape(...shape: number[] | [readonly number[]]): Tensor;
    transpose(dim0?: number, dim1?: number): Tensor;
    permute(...dims: number[]): Tensor;
    squeeze(axis?: number): Tensor;
    unsqueeze(axis: number): Tensor;
    expand(shape: readonly number[]): Tensor;
    slice(axis: number, start: number, end?: number): Tensor;
    maskedFill(mask: Tensor, value: number): Tensor;
    to(dtype: DType): Tensor;
    /** A copy that owns its data (and, unlike detach(), does not share storage). */
    clone(): Tensor;
  }
}

const P = Tensor.prototype;
P.add = function (this: Tensor, other: Tensor | number) { return add(this, other); };
P.sub = function (this: Tensor, other: Tensor | number) { return sub(this, other); };
P.mul = function (this: Tensor, other: Tensor | number) { return mul(this, other); };
P.div = function (this: Tensor, other: Tensor | number) { return div(this, other); };
P.pow = function (this: Tensor, exponent: number) { return pow(this, exponent); };
P.neg = function (this: Tensor) { return neg(this); };
P.exp = function (this: Tensor) { return exp(this); };
P.log = function (this: Tensor) { return log(this); };
P.sqrt = function (this: Tensor) { return sqrt(this); };
P.tanh = function (this: Tensor) { return tanh(this); };
P.relu = function (this: Tensor) { return relu(this); };
P.sigmoid = function (this: Tensor) { return sigmoid(this); };
P.abs = function (this: Tensor) { return abs(this); };
P.matmul = function (this: Tensor, other: Tensor) { return matmul(this, other); };
P.sum = function (this: Tensor, axis?: number | number[], keepdim = false) { return sum(this, axis, keepdim); };
P.mean = function (this: Tensor, axis?: number | number[], keepdim = false) { return mean(this, axis, keepdim); };
P.max = function (this: Tensor, axis?: number, keepdim = false) { return max(this, axis, keepdim); };
P.softmax = function (this: Tensor, axis = -1) { return softmax(this, axis); };
P.logSoftmax = function (this: Tensor, axis = -1) { return logSoftmax(this, axis); };
P.reshape = function (this: Tensor, ...shape: number[] | [readonly number[]]) {
  const s = (Array.isArray(shape[0]) ? shape[0] : shape) as readonly number[];
  return reshape(this, s);
};
P.transpose = function (this: Tensor, dim0 = -2, dim1 = -1) { return transpose(this, dim0, dim1); };
P.permute = function (this: Tensor, ...dims: number[]) { return permute(this, dims); };
P.squeeze = function (this: Tensor, axis?: number) { return squeeze(this, axis); };
P.unsqueeze = function (this: Tensor, axis: number) { return unsqueeze(this, axis); };
P.expand = function (this: Tensor, shape: readonly number[]) { return expand(this, shape); };
P.slice = function (this: Tensor, axis: number, start: number, end?: number) { return slice(this, axis, start, end); };
P.maskedFill = function (this: Tensor, mask: Tensor, value: number) { return maskedFill(this, mask, value); };
P.to = function (this: Tensor, dtype: DType) { return cast(this, dtype); };
P.clone = function (this: Tensor) { return clone(this); };

/** The names attached above (for tests and documentation). */
export const TENSOR_METHODS: readonly string[] = [
  "add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "tanh", "relu", "sigmoid", "abs", "matmul", "sum",
  "mean", "max", "softmax", "logSoftmax", "reshape", "transpose", "permute", "squeeze", "unsqueeze", "expand", "slice",
  "maskedFill", "to", "clone",
];
