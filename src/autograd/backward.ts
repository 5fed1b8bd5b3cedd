/**
 * backward(): reverse-mode accumulation over the recorded graph, and the Tensor method that calls it.
 * Autograd sits below the ops layer: gradients that meet at a tensor are summed here with a plain
 * loop (same shape, same dtype), so this file needs no op.
 */
import { type DType, type TypedArray, allocate } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { sameShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { describeValue } from "../tensor/validate.js";
import { noGrad, topoOrder } from "./tape.js";

/** The same values in another dtype (a fresh array; the same tensor when the dtype already matches). */
function asDtype(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const out = allocate(dtype, t.size);
  out.set(t.values as ArrayLike<number> as TypedArray);
  return new Tensor(out, t.shape, dtype);
}

/** a + b for two tensors of one shape and dtype (gradients meeting at a tensor). */
function sumOf(a: Tensor, b: Tensor): Tensor {
  const out = allocate(a.dtype, a.size);
  const x = a.values, y = b.values;
  for (let i = 0; i < out.length; i++) out[i] = x[i] + y[i];
  return new Tensor(out, a.shape, a.dtype);
}

/**
 * Backpropagate from `root`: d(root)/d(leaf) lands in each leaf's .grad (accumulating across calls,
 * as in PyTorch; zero them between steps). Non-leaf gradients are summed per tensor, then handed to
 * the op that made it.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!(root instanceof Tensor)) throw new ArgumentError(`backward: root must be a Tensor, got ${describeValue(root)}`);
  if (grad !== undefined && !(grad instanceof Tensor)) {
    throw new ArgumentError(`Tensor.backward: grad must be a Tensor of the output's shape ${fmtShape(root.shape)}, got ${describeValue(grad)}; wrap numbers with tensor(...)`);
  }
  if (!root.requiresGrad) {
    throw new ArgumentError(
      "Tensor.backward: this tensor does not require a gradient (no input had requiresGrad, or it was made under noGrad)",
    );
  }
  let seed: Tensor;
  if (grad === undefined) {
    if (root.size !== 1) {
      throw new ShapeError(
        `Tensor.backward: a gradient can be implied only for a one-element output; this one has shape ${fmtShape(root.shape)}, pass backward(grad) with that shape`,
      );
    }
    seed = new Tensor(allocate(root.dtype, 1).fill(1), root.shape, root.dtype);
  } else {
    if (!sameShape(grad.shape, root.shape)) {
      throw new ShapeError(`Tensor.backward: grad has shape ${fmtShape(grad.shape)} but the output has shape ${fmtShape(root.shape)}`);
    }
    seed = asDtype(grad, root.dtype);
  }
  noGrad(() => {
    const order = topoOrder(root);
    const grads = new Map<Tensor, Tensor>();
    grads.set(root, seed);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (g === undefined) continue;
      grads.delete(t); // free as we go
      const node = t.gradNode;
      if (node === null) {
        const gg = asDtype(g, t.dtype);
        t.grad = t.grad === null ? gg : sumOf(t.grad, gg);
        continue;
      }
      const inGrads = node.backward(g);
      for (let j = 0; j < node.inputs.length; j++) {
        const inp = node.inputs[j];
        const ig = inGrads[j];
        if (!inp.requiresGrad || ig === null || ig === undefined) continue;
        if (!sameShape(ig.shape, inp.shape)) {
          throw new Error(`internal: ${node.op} backward gave a gradient of shape ${fmtShape(ig.shape)} for an input of shape ${fmtShape(inp.shape)}`);
        }
        const prev = grads.get(inp);
        grads.set(inp, prev === undefined ? ig : sumOf(prev, asDtype(ig, prev.dtype)));
      }
    }
  });
}

declare module "../tensor/tensor.js" {
  interface Tensor {
    /**
     * Backpropagate from this tensor. `grad` defaults to 1 for a one-element tensor; any other shape
     * needs an explicit gradient of the same shape (as in PyTorch).
     */
    backward(grad?: Tensor): void;
  }
}

Tensor.prototype.backward = function backwardMethod(this: Tensor, grad?: Tensor): void {
  backward(this, grad);
};
