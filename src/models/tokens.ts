/** Token ids in: a [N, T] int32 tensor, rows of numbers, or one row. */
import { ArgumentError, ShapeError, fmtShape } from "../tensor/errors.js";
import { Tensor } from "../tensor/tensor.js";

export type TokenInput = Tensor | readonly number[] | readonly (readonly number[])[];

/** Bring token ids to an int32 [N, T] tensor, checking each id against the vocabulary. */
export function tokenTensor(fn: string, name: string, x: TokenInput, vocabSize: number): Tensor {
  let t: Tensor;
  if (x instanceof Tensor) {
    if (x.dtype !== "int32") throw new ArgumentError(`${fn}: ${name} must hold int32 token ids, got ${x.dtype}`);
    if (x.ndim !== 2) throw new ShapeError(`${fn}: ${name} must be [N, T] token ids, got ${fmtShape(x.shape)}`);
    t = x;
  } else if (Array.isArray(x)) {
    const rows = (x.length > 0 && Array.isArray(x[0]) ? x : [x]) as readonly (readonly number[])[];
    const T = rows[0]?.length ?? 0;
    const flat = new Int32Array(rows.length * T);
    rows.forEach((r, n) => {
      if (!Array.isArray(r) || r.length !== T) {
        throw new ShapeError(`${fn}: ${name} rows must have equal lengths (row 0 has ${T}, row ${n} has ${Array.isArray(r) ? r.length : "no array"}); pad them`);
      }
      r.forEach((v, i) => {
        if (!Number.isInteger(v)) throw new ArgumentError(`${fn}: ${name}[${n}][${i}] = ${v} is not an integer token id`);
        flat[n * T + i] = v;
      });
    });
    t = new Tensor(flat, [rows.length, T], "int32");
  } else {
    throw new ArgumentError(`${fn}: ${name} must be an int32 Tensor [N, T] or arrays of token ids, got ${x === null ? "null" : typeof x}`);
  }
  if (t.shape[1] === 0) throw new ShapeError(`${fn}: ${name} has no tokens (shape ${fmtShape(t.shape)})`);
  for (let i = 0; i < t.size; i++) {
    const v = t.values[i];
    if (v < 0 || v >= vocabSize) {
      throw new ArgumentError(`${fn}: ${name} holds token id ${v} at [${Math.floor(i / t.shape[1])}, ${i % t.shape[1]}], outside the vocabulary 0..${vocabSize - 1}`);
    }
  }
  return t;
}
