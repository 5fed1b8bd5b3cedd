/**
 * The error function to float64 accuracy, written out: a Maclaurin series near 0 and the classical
 * continued fraction for erfc in the tails (evaluated with Lentz's method).
 *   erf(x)  = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
 *   erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
 */
const TWO_OVER_SQRT_PI = 1.1283791670955126;
const ONE_OVER_SQRT_PI = 0.5641895835477563;

function erfcTail(x: number): number {
  // x >= 2: continued fraction b0 + a1/(b1 + a2/(b2 + ...)) with b = x, a_n = n/2.
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (Math.exp(-x * x) * ONE_OVER_SQRT_PI) / f;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax >= 6) return x > 0 ? 1 : -1;
  if (ax < 2) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  const r = 1 - erfcTail(ax);
  return x > 0 ? r : -r;
}

/**
 * erfc(x) = 1 - erf(x), keeping its relative accuracy where erf(x) is within rounding of 1 (x >= 2:
 * the continued fraction itself, not 1 minus something near 1; 0 once exp(-x²) underflows).
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 2) return 1 - erf(x);
  return x > 27 ? 0 : erfcTail(x);
}
