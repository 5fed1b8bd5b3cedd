/**
 * Page state lives in the URL hash, `#/<page>?name=value&...`, so any view can be shared or
 * bookmarked. Pages read typed values with defaults (a bad or missing value gives the default) and
 * write them back with set(), which replaces the history entry instead of adding one per slider step.
 */
export type Scalar = string | number | boolean;

export interface Route {
  page: string;
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const body = hash.replace(/^#\/?/, "");
  const q = body.indexOf("?");
  const page = decodeURIComponent(q < 0 ? body : body.slice(0, q));
  return { page, params: new URLSearchParams(q < 0 ? "" : body.slice(q + 1)) };
}

export function formatHash(page: string, params: URLSearchParams): string {
  const query = params.toString();
  return `#/${page}${query ? `?${query}` : ""}`;
}

export class PageState {
  constructor(readonly page: string, private readonly params: URLSearchParams) {}

  /** A number from the URL, clamped to [min, max] and rounded when int. */
  num(name: string, def: number, opts: { min?: number; max?: number; int?: boolean } = {}): number {
    const raw = this.params.get(name);
    let v = raw === null || raw.trim() === "" ? NaN : Number(raw);
    if (!Number.isFinite(v)) return def;
    if (opts.int) v = Math.round(v);
    if (opts.min !== undefined) v = Math.max(opts.min, v);
    if (opts.max !== undefined) v = Math.min(opts.max, v);
    return v;
  }

  /** One of a fixed set of numbers (e.g. the divisors of a width); otherwise the default. */
  choice<T extends Scalar>(name: string, def: T, allowed: readonly T[]): T {
    const raw = this.params.get(name);
    const hit = allowed.find((a) => String(a) === raw);
    return hit === undefined ? def : hit;
  }

  bool(name: string, def: boolean): boolean {
    const raw = this.params.get(name);
    if (raw === "1" || raw === "true") return true;
    if (raw === "0" || raw === "false") return false;
    return def;
  }

  /** Whether the URL names this value at all (an empty string counts). */
  has(name: string): boolean {
    return this.params.has(name);
  }

  str(name: string, def: string): string {
    return this.params.get(name) ?? def;
  }

  /** Numbers separated by commas, rows by semicolons: "1,0;0,1" -> [[1, 0], [0, 1]]. */
  matrix(name: string, def: number[][]): number[][] {
    const raw = this.params.get(name);
    if (raw === null) return def;
    const rows = raw.split(";").map((r) => r.split(",").map(Number));
    const ok = rows.length === def.length && rows.every((r, i) => r.length === def[i].length && r.every(Number.isFinite));
    return ok ? rows : def;
  }

  /** Write values into the URL (null removes one) without adding a history entry. */
  set(values: Record<string, Scalar | number[][] | null>): void {
    for (const [k, v] of Object.entries(values)) {
      if (v === null) this.params.delete(k);
      else if (Array.isArray(v)) this.params.set(k, v.map((r) => r.join(",")).join(";"));
      else this.params.set(k, typeof v === "boolean" ? (v ? "1" : "0") : String(v));
    }
    const hash = formatHash(this.page, this.params);
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }
}
