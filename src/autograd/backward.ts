/**
 * backward(): reverse-mode accumulation over the recorded graph, and the Tensor method that calls it.
 * Autograd sits below the ops layer: gradients that meet at a tensor are summed here with a plain
 * loop (same shape, same dtype), so this file needs no op.
 */
import { type DType, type TypedArray, allocate, allocateOverwritten } from "../tensor/dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { sameShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { describeValue } from "../tensor/validate.js";
import { isLibraryNode, noGrad, topoOrder } from "./tape.js";
import { type PoolArray, beginMinting, endMinting, giveBack } from "../tensor/pool.js";

/** The same values in another dtype (a fresh array; the same tensor when the dtype already matches). */
function asDtype(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const out = allocate(dtype, t.size);
  out.set(t.values as ArrayLike<number> as TypedArray);
  return new Tensor(out, t.shape, dtype);
}

/** a + b for two tensors of one shape and dtype (gradients meeting at a tensor). */
function sumOf(a: Tensor, b: Tensor): Tensor {
  const out = allocateOverwritten(a.dtype, a.size); // every element written below
  const x = a.values, y = b.values;
  if (out instanceof Float32Array && x instanceof Float32Array && y instanceof Float32Array) sum32(out, x, y);
  else for (let i = 0; i < out.length; i++) out[i] = x[i] + y[i];
  return new Tensor(out, a.shape, a.dtype);
}

/** a += b in place, a and b of one shape and dtype: sumOf's arithmetic (a[i] + b[i]), so its bits. */
function addInto(a: Tensor, b: Tensor): void {
  const x = a.values, y = b.values;
  if (x instanceof Float32Array && y instanceof Float32Array) sum32(x, x, y);
  else for (let i = 0; i < x.length; i++) x[i] = x[i] + y[i];
}

/**
 * sumOf's loop for float32 arrays (the training step's case): the same one addition per element, so
 * the same bits; a loop that sees only Float32Array ran ~1.6× faster than the shared loop once that
 * one had also seen float64 or int32 arrays (V8 then handles every element type in it).
 */
function sum32(out: Float32Array, x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = x[i] + y[i];
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
  const record = beginMinting(); // from here on, allocate() notes the arrays it hands out
  try {
    noGrad(() => (record === null ? propagate(root, seed, null) : propagate(root, seed, new Recycler(record))));
  } finally {
    endMinting(record);
  }
}

/**
 * The gradient arrays of one backward pass that can be given back to the pool (src/tensor/pool.ts):
 * an array is given back only when (1) allocate() made it during this pass (`minted`), (2) no entry of
 * the gradient map refers to its buffer (`refs`), and (3) it never reached a leaf's `.grad` or an op
 * that is not the library's (`escaped`: user code may keep what it is handed or returns). Views and
 * reshapes share a buffer, so every count is by buffer. test/pool.test.ts holds it to this.
 */
class Recycler {
  private readonly refs = new Map<ArrayBufferLike, number>();
  private readonly escaped = new Set<ArrayBufferLike>();
  constructor(private readonly minted: Map<ArrayBufferLike, PoolArray>) {}

  private bufferOf(t: Tensor): ArrayBufferLike | null {
    if (t.isOnDevice) return null;
    const b = t.values.buffer;
    return this.minted.has(b) ? b : null;
  }

  hold(t: Tensor): void {
    const b = this.bufferOf(t);
    if (b !== null) this.refs.set(b, (this.refs.get(b) ?? 0) + 1);
  }

  unhold(t: Tensor): void {
    const b = this.bufferOf(t);
    if (b !== null) this.refs.set(b, (this.refs.get(b) ?? 0) - 1);
  }

  escape(t: Tensor): void {
    const b = this.bufferOf(t);
    if (b !== null) this.escaped.add(b);
  }

  /**
   * Whether `prev`, a gradient in the map, may be added to in place: its array was made in this pass,
   * never escaped, this one map entry is all that refers to its buffer, and none of `pending` (the
   * node's upstream gradient and the gradients it returned, which may yet be stored or read) shares
   * it. Then nothing else can see the change, and prev += same is sumOf(prev, same) without a new
   * array (whose fresh pages were most of the sums' time in a training step).
   */
  canAddInto(prev: Tensor, same: Tensor, pending: readonly (Tensor | null | undefined)[]): boolean {
    const b = this.bufferOf(prev);
    if (b === null || this.escaped.has(b) || this.refs.get(b) !== 1 || same.isOnDevice || same.values.buffer === b) return false;
    for (const t of pending) if (t && !t.isOnDevice && t.values.buffer === b) return false;
    return true;
  }

  private readonly candidates: Tensor[] = [];

  /**
   * Consider t's array for the pool once the current node is done (not at once: a later gradient
   * of the same node may be a view of it and is yet to be stored).
   */
  release(t: Tensor | null | undefined): void {
    if (t !== null && t !== undefined) this.candidates.push(t);
  }

  /** Give back each candidate's array that nothing may hold any more. */
  flush(): void {
    for (const t of this.candidates) {
      const b = this.bufferOf(t);
      if (b === null || this.escaped.has(b) || (this.refs.get(b) ?? 0) > 0) continue;
      const a = this.minted.get(b)!;
      this.minted.delete(b);
      giveBack(a);
    }
    this.candidates.length = 0;
  }
}

/** The reverse sweep of backward(); `rc` null: give nothing back (a backward inside a backward). */
function propagate(root: Tensor, seed: Tensor, rc: Recycler | null): void {
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, seed);
  rc?.hold(seed);
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i];
    const g = grads.get(t);
    if (g === undefined) continue;
    grads.delete(t); // free as we go
    rc?.unhold(g);
    const node = t.gradNode;
    if (node === null) {
      const gg = asDtype(g, t.dtype);
      if (t.grad === null) {
        t.grad = gg;
      } else {
        t.grad = sumOf(t.grad, gg);
        rc?.release(gg);
      }
      rc?.escape(t.grad);
      rc?.release(g);
      rc?.flush();
      continue;
    }
    const inGrads = node.backward(g);
    if (rc !== null && !isLibraryNode(node)) { // user code: it may keep what it was given or returned
      rc.escape(g);
      for (const ig of inGrads) if (ig) rc.escape(ig);
    }
    for (let j = 0; j < node.inputs.length; j++) {
      const inp = node.inputs[j];
      const ig = inGrads[j];
      if (!inp.requiresGrad || ig === null || ig === undefined) continue;
      if (!sameShape(ig.shape, inp.shape)) {
        throw new Error(`internal: ${node.op} backward gave a gradient of shape ${fmtShape(ig.shape)} for an input of shape ${fmtShape(inp.shape)}`);
      }
      const prev = grads.get(inp);
      if (prev === undefined) {
        grads.set(inp, ig);
        rc?.hold(ig);
      } else {
        const same = asDtype(ig, prev.dtype);
        if (rc !== null && rc.canAddInto(prev, same, [g, ...inGrads])) {
          addInto(prev, same); // the map entry keeps prev, now the sum
          rc.release(same);
          continue;
        }
        const total = sumOf(prev, same);
        grads.set(inp, total);
        if (rc !== null) {
          rc.hold(total);
          rc.unhold(prev);
          rc.release(prev);
          rc.release(same);
        }
      }
    }
    if (rc !== null) {
      rc.release(g);
      for (const ig of inGrads) rc.release(ig);
      rc.flush();
    }
  }
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
