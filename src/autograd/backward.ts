import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { sameShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { add, cast, onesLike } from "../ops/index.js";
import { noGrad, topoOrder } from "./tape.js";

/**
 * Backpropagate from `root`: d(root)/d(leaf) lands in each leaf's .grad (accumulating across calls,
 * as in PyTorch; zero them between steps). Non-leaf gradients are summed per tensor, then handed to
 * the op that made it.
 */
export function backward(root: Tensor, grad?: Tensor): void {
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
    seed = noGrad(() => onesLike(root));
  } else {
    if (!sameShape(grad.shape, root.shape)) {
      throw new ShapeError(`Tensor.backward: grad has shape ${fmtShape(grad.shape)} but the output has shape ${fmtShape(root.shape)}`);
    }
    seed = grad.dtype === root.dtype ? grad : noGrad(() => cast(grad, root.dtype));
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
        const gg = g.dtype === t.dtype ? g : cast(g, t.dtype);
        t.grad = t.grad === null ? gg : add(t.grad, gg);
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
        grads.set(inp, prev === undefined ? ig : add(prev, ig));
      }
    }
  });
}
