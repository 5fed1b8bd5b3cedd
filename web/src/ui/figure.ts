/**
 * A figure: a titled picture with PNG / SVG / JSON export buttons.
 *
 * Export is WYSIWYG. The figure body is laid out with ordinary HTML; every drawn part carries
 * data-export ("heatmap", "svg", "text" or "box"), and composeSvg() places each part in one SVG at
 * the position the browser gave it. PNG export rasterises that SVG, so both files show the same
 * picture. JSON export writes the numbers behind the picture, as the page's data() returns them.
 *
 * A figure wider than the screen scrolls sideways inside its box, and then says so above the picture.
 */
import { h, xmlEscape } from "./dom.js";
import { heatmaps } from "./heatmap.js";

export interface FigureOptions {
  /** used in file names and test ids: attend-<page>-<id>.png */
  id: string;
  title: string;
  caption?: string;
  data: () => unknown;
}

export class Figure {
  readonly el: HTMLElement;
  /** put the picture's parts in here */
  readonly body: HTMLElement;
  private readonly captionEl: HTMLElement;

  constructor(readonly page: string, private readonly o: FigureOptions) {
    this.body = h("div", { class: "fig-body" });
    const bar = h("div", { class: "export", role: "group", "aria-label": `Export ${o.title}` },
      ...(["png", "svg", "json"] as const).map((kind) => h("button", {
        type: "button", "data-testid": `export-${o.id}-${kind}`, "aria-label": `Export ${o.title} as ${kind.toUpperCase()}`,
        onclick: () => void this.export(kind),
      }, kind.toUpperCase())));
    this.captionEl = h("figcaption", {}, h("span", { class: "fig-title" }, o.title), o.caption ? ` ${o.caption}` : "", bar);
    const hint = h("p", { class: "scroll-hint", "data-testid": `scroll-hint-${o.id}`, hidden: true }, "Wider than the screen: scroll the picture sideways →");
    this.el = h("figure", { class: "fig", "data-figure": o.id }, this.captionEl, hint, this.body);
    watchOverflow(this.body, hint);
  }

  fileName(ext: string): string {
    return `attend-${this.page}-${this.o.id}.${ext}`;
  }

  async export(kind: "png" | "svg" | "json"): Promise<void> {
    if (kind === "json") {
      download(new Blob([JSON.stringify(this.o.data(), null, 1)], { type: "application/json" }), this.fileName("json"));
    } else {
      const svg = composeSvg(this.body, this.o.title);
      const blob = kind === "svg" ? new Blob([svg], { type: "image/svg+xml" }) : await rasterise(svg, 2);
      download(blob, this.fileName(kind));
    }
  }
}

/**
 * Show `hint` while `scroller`'s content is wider than it. Layout is read only in a ResizeObserver's
 * callback, which runs just after the browser has laid the page out (so the read forces no layout of
 * its own), and only when the scroller or one of its drawn parts (data-export) changes size or parts
 * come and go: a map redrawn in place at the same size reads nothing.
 */
function watchOverflow(scroller: HTMLElement, hint: HTMLElement): void {
  const sizes = new ResizeObserver(() => {
    hint.hidden = scroller.scrollWidth <= scroller.clientWidth + 1;
  });
  const parts = (n: Node): Element[] => (n instanceof Element ? [n, ...n.querySelectorAll("[data-export]")] : []);
  sizes.observe(scroller);
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.removedNodes) for (const el of parts(n)) sizes.unobserve(el); // let replaced parts go
      for (const n of r.addedNodes) for (const el of parts(n)) sizes.observe(el); // reported once when added, then on each resize
    }
    // a part removed may have been the widest: look again at the next layout (a new observation is always reported)
    sizes.unobserve(scroller);
    sizes.observe(scroller);
  }).observe(scroller, { childList: true, subtree: true });
}

function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function textPart(el: HTMLElement, x: number, y: number, w: number, hgt: number): string {
  const cs = getComputedStyle(el);
  const size = parseFloat(cs.fontSize) || 12;
  const anchor = cs.textAlign === "center" ? "middle" : cs.textAlign === "right" || cs.textAlign === "end" ? "end" : "start";
  const tx = anchor === "middle" ? x + w / 2 : anchor === "end" ? x + w : x;
  return `<text x="${tx.toFixed(1)}" y="${(y + hgt / 2).toFixed(1)}" dominant-baseline="central" text-anchor="${anchor}" font-size="${size}" font-weight="${cs.fontWeight}" fill="${cs.color}">${xmlEscape(el.textContent ?? "")}</text>`;
}

function boxPart(el: HTMLElement, x: number, y: number, w: number, hgt: number): string {
  const cs = getComputedStyle(el);
  const stroke = parseFloat(cs.borderTopWidth) > 0 ? ` stroke="${cs.borderTopColor}" stroke-width="${cs.borderTopWidth.replace("px", "")}"` : "";
  const rx = parseFloat(cs.borderTopLeftRadius) || 0;
  return `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${hgt.toFixed(1)}" rx="${rx}" fill="${cs.backgroundColor}"${stroke}/>`;
}

/** One standalone SVG document of everything marked data-export inside `body`. */
export function composeSvg(body: HTMLElement, title: string): string {
  const origin = body.getBoundingClientRect();
  const width = Math.ceil(Math.max(body.scrollWidth, origin.width));
  const height = Math.ceil(Math.max(body.scrollHeight, origin.height));
  const parts: string[] = [];
  const serializer = new XMLSerializer();
  for (const el of body.querySelectorAll<HTMLElement>("[data-export]")) {
    if (el.parentElement?.closest("[data-export]")) continue; // drawn by its exported ancestor
    if (el.offsetParent === null && !(el instanceof SVGElement)) continue; // hidden
    const r = el.getBoundingClientRect();
    const x = r.left - origin.left;
    const y = r.top - origin.top;
    switch (el.dataset.export) {
      case "heatmap": {
        const map = heatmaps.get(el);
        if (map) parts.push(map.svg(+x.toFixed(1), +y.toFixed(1)));
        break;
      }
      case "svg": {
        const clone = el.cloneNode(true) as unknown as SVGSVGElement;
        clone.setAttribute("x", x.toFixed(1));
        clone.setAttribute("y", y.toFixed(1));
        clone.setAttribute("width", String(r.width));
        clone.setAttribute("height", String(r.height));
        clone.removeAttribute("class");
        clone.removeAttribute("style");
        parts.push(serializer.serializeToString(clone));
        break;
      }
      case "text":
        parts.push(textPart(el, x, y, r.width, r.height));
        break;
      case "box":
        parts.push(boxPart(el, x, y, r.width, r.height));
        if (el.textContent?.trim()) parts.push(textPart(el, x, y, r.width, r.height));
        break;
    }
  }
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">`,
    `<title>${xmlEscape(title)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...parts,
    `</svg>`,
  ].join("\n");
}

/** Draw an SVG document onto a canvas at `scale` and return the PNG. */
export async function rasterise(svg: string, scale: number): Promise<Blob> {
  const url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const canvas = h("canvas", { width: Math.ceil(img.naturalWidth * scale), height: Math.ceil(img.naturalHeight * scale) });
    const ctx = canvas.getContext("2d")!;
    ctx.scale(scale, scale);
    ctx.drawImage(img, 0, 0);
    return await new Promise<Blob>((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("PNG export: the canvas gave no image"))), "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}
