/**
 * Arrays reused instead of allocated: a training step allocates the same sizes every step (each
 * activation and each gradient), and handing those to the garbage collector and asking the system for
 * fresh zeroed pages again was a visible share of a step (GC, page faults). backward()
 * (src/autograd/backward.ts) gives back the gradient arrays it can prove dead, and allocate() takes
 * from here first.
 *
 * Which arrays can be given back is decided in backward() alone, by this rule: only arrays allocated
 * while that backward pass runs ("minted" here, tracked by their buffer), and of those only the ones
 * no gradient map entry, leaf `.grad`, or op outside the library holds any more. Anything else
 * (forward activations, parameters, a user's tensors, leaf gradients, anything from before the pass)
 * never comes here. test/pool.test.ts checks the rule.
 *
 * Readable form: allocate() without the pool is `new Float32Array(size)` etc.; with it an array comes
 * back zeroed, so a caller cannot tell the two apart.
 */

export type PoolArray = Float32Array | Float64Array | Uint8Array | Int32Array;

/** arrays shorter than this are left to the garbage collector (not worth a map lookup) */
export const POOL_MIN_LENGTH = 4096;
/** at most this many arrays of one type and length are kept, and this many bytes in all */
const MAX_PER_KEY = 32;
const MAX_BYTES = 256 * 1024 * 1024;

const free = new Map<string, PoolArray[]>();
let freeBytes = 0;
let enabled = true;
let reused = 0;

/**
 * Switch reuse off (every allocate() fresh, nothing kept) or back on; returns the previous setting.
 * For tests and benchmarks that compare the two.
 */
export function setArrayPool(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  if (!on) clearPool();
  return prev;
}

const keyOf = (kind: string, length: number): string => `${kind}:${length}`;

/**
 * A zeroed array of this kind and length from the pool, or null when there is none. `zero` false:
 * as it was given back (stale values), for a caller that writes every element before anything reads
 * the array (allocateOverwritten in ./dtype.ts).
 */
export function takePooled(kind: "float32" | "float64" | "bool" | "int32", length: number, zero = true): PoolArray | null {
  if (!enabled) return null;
  const list = free.get(keyOf(kind, length));
  if (list === undefined || list.length === 0) return null;
  const a = list.pop()!;
  freeBytes -= a.byteLength;
  reused++;
  if (zero) a.fill(0);
  return a;
}

function kindOf(a: PoolArray): string {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  return "bool";
}

/** Keep `a` for reuse (the caller has proven nothing else holds it). Dropped when the pool is full. */
export function giveBack(a: PoolArray): void {
  if (!enabled || a.length < POOL_MIN_LENGTH || a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength) return;
  if (freeBytes + a.byteLength > MAX_BYTES) return;
  const k = keyOf(kindOf(a), a.length);
  let list = free.get(k);
  if (list === undefined) free.set(k, (list = []));
  if (list.length >= MAX_PER_KEY) return;
  list.push(a);
  freeBytes += a.byteLength;
}

/** Bytes held for reuse now, and how many arrays allocate() has taken from the pool so far. */
export function poolStats(): { bytes: number; reused: number } {
  return { bytes: freeBytes, reused };
}

/** Let everything held go to the garbage collector. */
export function clearPool(): void {
  free.clear();
  freeBytes = 0;
}

/** The arrays allocated during the running backward pass, by buffer; null outside one. */
let minted: Map<ArrayBufferLike, PoolArray> | null = null;

/** Called by allocate(): remember an array made during a backward pass. */
export function noteAllocated(a: PoolArray): void {
  if (minted !== null && a.length >= POOL_MIN_LENGTH) minted.set(a.buffer, a);
}

/**
 * Start recording the arrays allocate() makes (backward() calls this); null when a pass is already
 * recording (a backward inside a backward: the outer pass keeps the record).
 */
export function beginMinting(): Map<ArrayBufferLike, PoolArray> | null {
  if (minted !== null) return null;
  minted = new Map();
  return minted;
}

export function endMinting(record: Map<ArrayBufferLike, PoolArray> | null): void {
  if (record !== null && minted === record) minted = null;
}
