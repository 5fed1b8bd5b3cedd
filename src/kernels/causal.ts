/**
 * The causal rule, defined once. Every backend, the masks of src/attention and the textbook path
 * derive from it (the AssemblyScript kernels, which cannot import TypeScript, receive causalOffset as
 * the job parameter A_CAUSAL_OFF from wasm/backend.ts).
 *
 *   query row l (of L) may see key s (of S)  iff  s <= l + causalOffset(alignment, L, S)
 *
 *   top-left      offset 0      PyTorch's is_causal: query l sees keys 0..l
 *   bottom-right  offset S - L  the last query lines up with the last key (a query appended to a KV
 *                               cache sees every cached key); with L > S the first L - S rows see none
 *   none          offset S      every key
 */
import type { CausalKind } from "./backend.js";

export function causalOffset(alignment: CausalKind, L: number, S: number): number {
  if (alignment === "top-left") return 0;
  if (alignment === "bottom-right") return S - L;
  return S;
}

/** The last key query row l may see (keys 0..limit; negative: none). */
export function causalLimit(alignment: CausalKind, l: number, L: number, S: number): number {
  return Math.min(S - 1, l + causalOffset(alignment, L, S));
}
