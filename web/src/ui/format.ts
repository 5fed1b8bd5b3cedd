/** Number formatting shared by tooltips, tables and exports. */

/** A compact number: 4 significant digits, exponent form outside [1e-3, 1e5), exact 0 as "0". */
export function fmt(v: number, digits = 4): string {
  if (v === 0) return Object.is(v, -0) ? "0" : "0";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : v < 0 ? "−∞" : "NaN";
  const a = Math.abs(v);
  const text = a >= 1e5 || a < 1e-3 ? v.toExponential(digits - 1) : Number(v.toPrecision(digits)).toString();
  return text.replace("-", "−");
}

/**
 * A number rounded to `decimals` places, trailing zeros dropped, with an ASCII minus: "0.991", "-0.4",
 * "1". Short enough for a number input and a table cell alike, so an editor and the figure beside it
 * show the same digits (the figure swaps in a typographic minus with `typographic()`).
 */
export function fmtFixed(v: number, decimals = 3): string {
  if (!Number.isFinite(v)) return String(v);
  const r = Number(v.toFixed(decimals));
  return (r === 0 ? 0 : r).toString();
}

/** "-0.5" -> "−0.5" (U+2212, the width of a plus sign), for text that is read rather than edited. */
export function typographic(text: string): string {
  return text.replace(/-/g, "−");
}

/** A token count with binary k / M: 512, 4k, 256k, 1M. */
export function fmtTokens(n: number): string {
  return n >= 1048576 ? `${n / 1048576}M` : n >= 1024 ? `${n / 1024}k` : String(n);
}

/** Bytes as B, KiB, MiB, GiB, TiB. */
export function fmtBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : Number(v.toPrecision(3))} ${units[u]}`;
}

/** [2, 3] -> "2 × 3" */
export function fmtShape(shape: readonly number[]): string {
  return shape.join(" × ");
}
