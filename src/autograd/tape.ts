/**
 * Reverse-mode autograd, micrograd style: every op that produces a tensor from inputs needing a
 * gradient records a GradNode (its inputs and a function from the output's gradient to the inputs'
 * gradients). backward() walks the graph in reverse topological order, summing gradients that reach
 * a tensor along several paths; leaves accumulate into `.grad`.
 *
 * Backward functions are written with the library's own ops under noGrad(), so gradients are plain
 * tensors (no double backward).
 */
import type { GradNode, Tensor } from "../tensor/tensor.js";

export type { GradNode };

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn with gradient recording switched off (PyTorch's torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run fn with gradient recording switched on, e.g. inside a noGrad block. */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

const libraryNodes = new WeakSet<GradNode>();

/**
 * Nodes recorded by the library's own ops (src/ops/util.ts result()), whose backward functions keep
 * nothing they are given and return fresh arrays or views of them; backward() gives the arrays of
 * such gradients back to the pool once dead. A node a user builds by hand is not one of them.
 */
export function markLibraryNode(node: GradNode): GradNode {
  libraryNodes.add(node);
  return node;
}

export function isLibraryNode(node: GradNode): boolean {
  return libraryNodes.has(node);
}

/** Whether an op on these inputs must record a node. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/** Tensors reachable from root through GradNodes, in topological order (inputs before outputs). */
export function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: deep graphs (long training unrolls) must not overflow the call stack.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradNode ? t.gradNode.inputs : [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const child = inputs[i];
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}
