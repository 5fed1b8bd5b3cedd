/**
 * How a tensor prints: PyTorch's repr (torch/_tensor_str.py with its default print options), so
 * `String(t)` and `console.log(t)` read like `print(t)` in Python:
 *
 *   tensor([[1.0000, 2.5000],
 *           [3.0000, 4.0000]], dtype=float64, requires_grad=True)
 *
 * One number format for the whole tensor, from its finite non-zero values: all integers -> "1.";
 * a spread over 1000x, a value over 1e8 (or, for non-integers, one under 1e-4) -> "1.2346e+05";
 * else 4 decimals. Columns are right-aligned to the widest entry; rows wrap at 80 characters.
 * Over 1000 elements only the first and last 3 entries of each dim are shown, around "...".
 * The suffixes follow PyTorch's rules with attend's defaults (float32, int32 and bool are implied):
 * `dtype=float64`, `size=(0, 3)` for an empty tensor, `grad_fn=<op>` or `requires_grad=True`.
 */
import type { RawTensor } from "./dtype.js";

const PRECISION = 4;
const THRESHOLD = 1000;
const EDGE_ITEMS = 3;
const LINE_WIDTH = 80;
const PREFIX = "tensor(";

/** What the suffixes need besides the data. */
export interface FormatExtras {
  requiresGrad: boolean;
  /** the op that made the tensor, for grad_fn=<op>; null for a leaf */
  gradOp: string | null;
}

/**
 * Python's correctly rounded `format(v, ".{digits}f")` / `".{digits}e"`: JavaScript's toFixed and
 * toExponential round an exact tie away from zero, Python to even (0.03125 -> "0.0312").
 */
function roundedDigits(v: number, digits: number, exponential: boolean): string {
  const js = exponential ? v.toExponential(digits) : v.toFixed(digits);
  const long = exponential ? v.toExponential(digits + 30) : v.toFixed(digits + 30); // exact here
  const [mant, exp] = long.split("e");
  const rest = mant.slice(mant.length - 30);
  if (rest !== "5" + "0".repeat(29)) return js; // not a tie
  const jsMant = js.split("e")[0];
  if (Number(jsMant[jsMant.length - 1]) % 2 === 0) return js; // the tie went to even already
  const down = mant.slice(0, mant.length - 30); // the other neighbour: truncation
  return exponential ? `${down}e${exp}` : down;
}

function pyFloat(v: number, digits: number, exponential: boolean): string {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  let s = roundedDigits(Math.abs(v), digits, exponential);
  if (exponential) s = s.replace(/e([+-])(\d)$/, "e$10$2"); // Python writes at least two exponent digits
  return (v < 0 || Object.is(v, -0) ? "-" : "") + s;
}

/** PyTorch's _Formatter: one style and width for every element. */
class Formatter {
  private intMode = true;
  private sciMode = false;
  private maxWidth = 1;

  constructor(private readonly dtype: RawTensor["dtype"], values: ArrayLike<number>) {
    if (dtype === "bool" || dtype === "int32") {
      for (let i = 0; i < values.length; i++) this.maxWidth = Math.max(this.maxWidth, this.plain(values[i]).length);
      return;
    }
    const finite: number[] = [];
    for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i]) && values[i] !== 0) finite.push(values[i]);
    if (finite.length === 0) return;
    let lo = Infinity;
    let hi = 0;
    for (const v of finite) {
      lo = Math.min(lo, Math.abs(v));
      hi = Math.max(hi, Math.abs(v));
      if (v !== Math.ceil(v)) this.intMode = false;
    }
    this.sciMode = hi / lo > 1000 || hi > 1e8 || (!this.intMode && lo < 1e-4);
    for (const v of finite) {
      const w = this.sciMode ? pyFloat(v, PRECISION, true).length : this.intMode ? pyFloat(v, 0, false).length + 1 : pyFloat(v, PRECISION, false).length;
      this.maxWidth = Math.max(this.maxWidth, w);
    }
  }

  get width(): number {
    return this.maxWidth;
  }

  private plain(v: number): string {
    return this.dtype === "bool" ? (v !== 0 ? "True" : "False") : String(v);
  }

  format(v: number): string {
    let s: string;
    if (this.dtype === "bool" || this.dtype === "int32") s = this.plain(v);
    else if (this.sciMode) s = pyFloat(v, PRECISION, true);
    else if (this.intMode) s = pyFloat(v, 0, false) + (Number.isFinite(v) ? "." : "");
    else s = pyFloat(v, PRECISION, false);
    return s.padStart(this.maxWidth);
  }
}

/** A view of part of the flat data: the block at `offset` with shape `shape` (row-major). */
interface Block {
  offset: number;
  shape: readonly number[];
}

function sub(b: Block, i: number): Block {
  const inner = b.shape.slice(1).reduce((a, c) => a * c, 1);
  return { offset: b.offset + i * inner, shape: b.shape.slice(1) };
}

/** The indices of dim 0 that show: all, or the first and last EDGE_ITEMS (null marks the gap). */
function shownRows(n: number, summarize: boolean): (number | null)[] {
  if (!summarize || n <= 2 * EDGE_ITEMS) return Array.from({ length: n }, (_, i) => i);
  return [...Array.from({ length: EDGE_ITEMS }, (_, i) => i), null, ...Array.from({ length: EDGE_ITEMS }, (_, i) => n - EDGE_ITEMS + i)];
}

/** The values that will show (PyTorch's get_summarized_data), which set the number format. */
function shownValues(data: ArrayLike<number>, b: Block, summarize: boolean, out: number[]): void {
  if (b.shape.length === 0) {
    out.push(data[b.offset]);
    return;
  }
  for (const i of shownRows(b.shape[0], summarize)) if (i !== null) shownValues(data, sub(b, i), summarize, out);
}

function body(data: ArrayLike<number>, b: Block, indent: number, summarize: boolean, f: Formatter): string {
  if (b.shape.length === 0) return f.format(data[b.offset]);
  if (b.shape.length === 1) {
    const items = shownRows(b.shape[0], summarize).map((i) => (i === null ? " ..." : f.format(data[b.offset + i])));
    const perLine = Math.max(1, Math.floor((LINE_WIDTH - indent) / (f.width + 2)));
    const lines: string[] = [];
    for (let i = 0; i < items.length; i += perLine) lines.push(items.slice(i, i + perLine).join(", "));
    return "[" + lines.join(",\n" + " ".repeat(indent + 1)) + "]";
  }
  const rows = shownRows(b.shape[0], summarize).map((i) => (i === null ? "..." : body(data, sub(b, i), indent + 1, summarize, f)));
  return "[" + rows.join("," + "\n".repeat(b.shape.length - 1) + " ".repeat(indent + 1)) + "]";
}

/** Append ", suffix" to the last line, or start a new line when it would pass 80 characters. */
function withSuffixes(text: string, suffixes: string[]): string {
  let out = text;
  let lastLine = text.length - text.lastIndexOf("\n") + 1; // PyTorch's count: the last line's length + 2
  for (const s of suffixes) {
    if (lastLine + s.length + 2 > LINE_WIDTH) {
      out += ",\n" + " ".repeat(PREFIX.length) + s;
      lastLine = PREFIX.length + s.length;
    } else {
      out += ", " + s;
      lastLine += s.length + 2;
    }
  }
  return out + ")";
}

/** The PyTorch-style repr of a tensor (see the file comment). */
export function formatTensor(t: RawTensor, extras: FormatExtras): string {
  const size = t.values.length;
  const suffixes: string[] = [];
  let text: string;
  if (size === 0) {
    if (t.shape.length !== 1) suffixes.push(`size=(${t.shape.join(", ")})`);
    if (t.dtype !== "float32") suffixes.push(`dtype=${t.dtype}`);
    text = "[]";
  } else {
    if (t.dtype === "float64") suffixes.push(`dtype=${t.dtype}`);
    const summarize = size > THRESHOLD;
    const whole: Block = { offset: 0, shape: t.shape };
    const shown: number[] = [];
    shownValues(t.values, whole, summarize, shown);
    text = body(t.values, whole, PREFIX.length, summarize, new Formatter(t.dtype, shown));
  }
  if (extras.gradOp !== null) suffixes.push(`grad_fn=<${extras.gradOp}>`);
  else if (extras.requiresGrad) suffixes.push("requires_grad=True");
  return withSuffixes(PREFIX + text, suffixes);
}
