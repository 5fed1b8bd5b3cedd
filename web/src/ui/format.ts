/** Number formatting shared by tooltips, tables and exports. */

/** A compact number: 4 significant digits, exponent form outside [1e-3, 1e5), exact 0 as "0". */
export function fmt(v: number, digits = 4): string {
  if (v === 0) return Object.is(v, -0) ? "0" : "0";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : v < 0 ? "−∞" : "NaN";
  const a = Math.abs(v);
  const text = a >= 1e5 || a < 1e-3 ? v.toExponential(digits - 1) : Number(v.toPrecision(digits)).toString();
  return text.replace("-", "−");
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
