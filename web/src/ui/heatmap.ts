/**
 * A heat map on canvas: one pixel per cell in an offscreen image (filled through a 256-entry colour
 * table by pixels.ts's paintCells, here or, for a large map, in a worker: HeatMapData.image), scaled
 * onto the visible canvas, so a 1024 × 1024 map redraws in milliseconds. The cells are painted again
 * only when the data changes, never for a new size. Hover and
 * the keyboard cursor draw on a second canvas above it and never repaint the cells.
 *
 * Keyboard: the map is focusable; arrow keys move a cursor cell (Shift = 8 cells, Home/End = row
 * ends) and the tooltip reads its numbers. Export: svg() gives the same picture as SVG (one <rect>
 * per cell for small maps, an embedded PNG for large ones).
 */
import type { ColourScale } from "./colors.js";
import { MASKED_FILL, MASKED_LINE, textOn } from "./colors.js";
import { h, xmlEscape } from "./dom.js";
import { fmt } from "./format.js";
import { LEGEND_HEIGHT, type LegendSpec, drawLegend, legendSpec, legendSvg, legendWidth } from "./legend.js";
import { type PaintedCells, paintCells } from "./pixels.js";
import { hideTip, showTip } from "./tooltip.js";

export interface Cell {
  r: number;
  c: number;
}

export interface Highlight {
  r0: number;
  c0: number;
  /** exclusive */
  r1: number;
  c1: number;
  colour?: string;
}

export interface HeatMapData {
  rows: number;
  cols: number;
  /** row-major, rows × cols */
  values: ArrayLike<number>;
  scale: ColourScale;
  /** nonzero = masked out (drawn grey and struck through) */
  masked?: ArrayLike<number> | null;
  rowLabels?: readonly string[];
  colLabels?: readonly string[];
  highlights?: readonly Highlight[];
  /**
   * The cells already painted by paintCells(rows, cols, values, scale, masked), in a worker for a
   * large map, so the page only copies the bytes onto the canvas (the map never writes to them).
   * Drawn instead of painting the cells here when its rows and cols match; an update that changes
   * the cells without giving a new image drops it.
   */
  image?: PaintedCells | null;
}

/** The fields whose change repaints the cells. */
const CELL_FIELDS = ["rows", "cols", "values", "scale", "masked", "image"] as const;

export interface HeatMapOptions {
  /** what the map shows, for screen readers and the tooltip: "attention weights P" */
  label: string;
  /** names of the axes for the tooltip: ["query", "key"] */
  axes?: [string, string];
  maxCell?: number;
  /** the widest the map may be (CSS px); default 480 */
  maxWidth?: number;
  /** size to the parent's width (the parent must not size to its content), capped by maxWidth */
  fit?: boolean;
  /** cells may be wider than tall or taller than wide, so long thin matrices stay readable */
  stretch?: boolean;
  /** with stretch: the least height (CSS px) of a row */
  minRowHeight?: number;
  maxHeight?: number;
  /** print values in cells that are large enough (default true) */
  showValues?: boolean;
  digits?: number;
  /** a colour bar under the map with the scale's end values (default true; off for one-column strips) */
  legend?: boolean;
  /** texts for the legend's two ends instead of the numbers: ["0 = masked", "1 = may attend"] */
  legendLabels?: readonly [string, string];
  describe?: (cell: Cell, value: number, masked: boolean) => string;
  onHover?: (cell: Cell | null) => void;
}

const FONT = "12px system-ui, sans-serif";
/** Least distance between neighbouring labels' baselines, for 12 px text. */
const LABEL_GAP = 13;
/** Column labels: level, slanted at 45°, or upright (read bottom to top). */
type LabelMode = "flat" | "slant" | "vertical";
const VALUE_MIN_CELL = 30;
const SVG_RECT_LIMIT = 4096;

/** Font size that fits a cell's printed value inside the cell (system-ui digits are ~0.58 em wide). */
function valueFontSize(text: string, cellWidth: number): number {
  return Math.max(7, Math.min(11, Math.floor((cellWidth - 4) / (0.58 * text.length))));
}

/** A cell's printed value: 2 significant digits; tiny magnitudes print as "~0" (the tooltip has them). */
function cellText(v: number): string {
  return v !== 0 && Math.abs(v) < 5e-4 ? "~0" : fmt(v, 2);
}

/**
 * A canvas's size in pixels, set only when it changes: setting it (even to the same number) clears the
 * canvas and makes a new bitmap, which a map redrawn in place every second should not pay for.
 */
function setSize(c: HTMLCanvasElement, width: number, height: number): void {
  if (c.width !== width) c.width = width;
  if (c.height !== height) c.height = height;
}

/** An element's CSS size, written only when it changes (a write invalidates the page's layout). */
function setStyleSize(el: HTMLElement, width: number, height: number): void {
  if (el.style.width !== `${width}px`) el.style.width = `${width}px`;
  if (el.style.height !== `${height}px`) el.style.height = `${height}px`;
}

export class HeatMap {
  readonly el: HTMLDivElement;
  private readonly base: HTMLCanvasElement;
  private readonly overlay: HTMLCanvasElement;
  private readonly pixels = document.createElement("canvas");
  private data: HeatMapData;
  /**
   * cw, ch: a cell's width and height in CSS px (equal unless stretch); mode: how column labels are
   * set; colStep, rowStep: label every n-th column / row, so labels never overlap
   */
  private geom = { left: 0, top: 0, cw: 1, ch: 1, width: 1, height: 1, mode: "flat" as LabelMode, colStep: 1, rowStep: 1 };
  private legend: LegendSpec | null = null;
  /** the cells need painting again (the data changed since they were painted) */
  private dirty = true;
  /** what the last painting saw, for the legend */
  private seen: Pick<PaintedCells, "below" | "above" | "anyMasked"> = { below: false, above: false, anyMasked: false };
  private hover: Cell | null = null;
  private cursor: Cell = { r: 0, c: 0 };
  private readonly resize: ResizeObserver;
  /** a fitted map's parent's width, as last read in the resize observer (-1 before it is known) */
  private parentWidth = -1;
  /** the parent's width the map was last laid out for */
  private lastWidth = -1;

  constructor(data: HeatMapData, private readonly opts: HeatMapOptions) {
    this.data = data;
    this.base = h("canvas", { class: "hm-base", "aria-hidden": "true" });
    this.overlay = h("canvas", { class: "hm-overlay", "aria-hidden": "true" });
    this.el = h("div", {
      class: "heatmap",
      tabindex: 0,
      role: "img",
      "data-export": "heatmap",
      "aria-label": `${opts.label}: ${data.rows} × ${data.cols}. Arrow keys read the cells.`,
    }, this.base, this.overlay);
    heatmaps.set(this.el, this);
    this.el.addEventListener("pointermove", (e) => this.onPointer(e));
    this.el.addEventListener("pointerleave", () => this.setHover(null));
    this.el.addEventListener("keydown", (e) => this.onKey(e));
    this.el.addEventListener("focus", () => this.setHover(this.clampCell(this.cursor), true));
    this.el.addEventListener("blur", () => this.setHover(null));
    // A fitted map follows its parent's width. A map taken out of the page (replaced by a new one)
    // stops watching; so do all of a page's maps when the page is left (disposeHeatMaps).
    let shown = false;
    this.resize = new ResizeObserver(() => {
      if (!this.el.isConnected) {
        if (shown) this.resize.disconnect();
        return;
      }
      shown = true;
      // read here, just after the browser's layout, so no redraw (update()) ever forces a layout
      this.parentWidth = this.el.parentElement?.clientWidth ?? -1;
      if (this.parentWidth !== this.lastWidth) this.render();
    });
    queueMicrotask(() => {
      if (opts.fit && this.el.parentElement) this.resize.observe(this.el.parentElement);
    });
    this.render();
  }

  /** Replace the data (any subset of fields) and redraw. */
  update(patch: Partial<HeatMapData>): void {
    const cellsChange = CELL_FIELDS.some((f) => f in patch);
    this.data = { ...this.data, ...patch };
    if (cellsChange && !("image" in patch)) this.data.image = null; // the old image shows the old cells
    this.dirty ||= cellsChange;
    this.el.setAttribute("aria-label", `${this.opts.label}: ${this.data.rows} × ${this.data.cols}. Arrow keys read the cells.`);
    this.render();
  }

  private layout(): void {
    const { rows, cols, rowLabels, colLabels } = this.data;
    const ctx = this.base.getContext("2d")!;
    ctx.font = FONT;
    const widest = (labels?: readonly string[]): number => (labels ? Math.max(0, ...labels.map((l) => ctx.measureText(l).width)) : 0);
    const left = rowLabels ? Math.min(110, Math.ceil(widest(rowLabels)) + 8) : 0;
    this.lastWidth = this.opts.fit ? this.parentWidth : -1;
    const avail = this.opts.fit
      ? Math.min(this.opts.maxWidth ?? Infinity, this.lastWidth > 0 ? this.lastWidth : 480)
      : this.opts.maxWidth ?? 480;
    const maxCell = this.opts.maxCell ?? 34;
    const legendOn = this.opts.legend ?? true;
    const maxHeight = (this.opts.maxHeight ?? 480) - (legendOn ? LEGEND_HEIGHT : 0);
    const colW = widest(colLabels);
    const sizeFor = (mode: LabelMode) => {
      const top = !colLabels ? 0 : mode === "flat" ? 18 : Math.min(90, Math.ceil(mode === "slant" ? colW * 0.72 : colW) + 10);
      const right = colLabels && mode === "slant" ? Math.min(64, Math.ceil(colW * 0.72)) : 0; // room for the last slanted label
      const byWidth = (avail - left - right) / cols, byHeight = (maxHeight - top) / rows;
      let cw = Math.max(0.05, Math.min(maxCell, byWidth, byHeight));
      let ch = cw;
      if (this.opts.stretch) {
        cw = Math.max(0.05, Math.min(maxCell, byWidth));
        ch = Math.max(0.05, Math.min(maxCell, byHeight, Math.max(cw, this.opts.minRowHeight ?? 0)));
      }
      return { top, right, cw, ch };
    };
    // Level labels if they fit their columns; slanted if the slanted lines stay LABEL_GAP apart; else upright.
    let mode: LabelMode = "flat";
    let g = sizeFor(mode);
    if (colLabels && colW > g.cw - 2) {
      mode = "slant";
      g = sizeFor(mode);
      if (g.cw * Math.SQRT1_2 < LABEL_GAP) g = sizeFor((mode = "vertical"));
    }
    const colStep = mode === "vertical" ? Math.ceil(LABEL_GAP / g.cw) : 1;
    const rowStep = Math.ceil(LABEL_GAP / g.ch);
    const gridBottom = g.top + rows * g.ch;
    let width = left + cols * g.cw + g.right;
    this.legend = null;
    if (legendOn) {
      this.legend = legendSpec(this.data.scale, this.seen, left, gridBottom, cols * g.cw, this.opts.legendLabels);
      width = Math.max(width, left + legendWidth(this.legend));
    }
    this.geom = { left, top: g.top, cw: g.cw, ch: g.ch, width: Math.ceil(width), height: Math.ceil(gridBottom + (legendOn ? LEGEND_HEIGHT : 0)), mode, colStep, rowStep };
  }

  /** The labels drawn along one axis: [index, text] for every step-th row or column. */
  private shownLabels(labels: readonly string[] | undefined, n: number, step: number): [number, string][] {
    const out: [number, string][] = [];
    if (labels) for (let i = 0; i < n; i += step) out.push([i, labels[i] ?? ""]);
    return out;
  }

  /** Fill the one-pixel-per-cell image: with the image given (painted in a worker) if it fits, else painted here. */
  private paintPixels(): void {
    const { rows, cols, values, scale, masked, image } = this.data;
    const cells = image && image.rows === rows && image.cols === cols ? image : paintCells(rows, cols, values, scale, masked);
    setSize(this.pixels, cols, rows);
    this.pixels.getContext("2d")!.putImageData(new ImageData(cells.rgba, cols, rows), 0, 0);
    this.seen = { below: cells.below, above: cells.above, anyMasked: cells.anyMasked };
    this.dirty = false;
  }

  render(): void {
    if (this.dirty) this.paintPixels(); // before the layout, whose legend says what the painting saw
    this.layout();
    const { left, top, cw, ch, width, height, mode, colStep, rowStep } = this.geom;
    const cell = Math.min(cw, ch);
    const { rows, cols, values, masked, rowLabels, colLabels } = this.data;
    const dpr = window.devicePixelRatio || 1;
    for (const c of [this.base, this.overlay]) {
      setSize(c, Math.ceil(width * dpr), Math.ceil(height * dpr));
      setStyleSize(c, width, height);
    }
    setStyleSize(this.el, width, height);
    const ctx = this.base.getContext("2d")!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.imageSmoothingEnabled = cell < 1;
    ctx.drawImage(this.pixels, left, top, cols * cw, rows * ch);
    if (masked && cell >= 8) {
      ctx.strokeStyle = MASKED_LINE;
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let i = 0; i < rows * cols; i++) {
        if (!masked[i]) continue;
        const x = left + (i % cols) * cw;
        const y = top + Math.floor(i / cols) * ch;
        ctx.moveTo(x + 2, y + ch - 2);
        ctx.lineTo(x + cw - 2, y + 2);
      }
      ctx.stroke();
    }
    if (cell >= 12) {
      ctx.strokeStyle = "rgba(255,255,255,0.7)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let r = 1; r < rows; r++) { ctx.moveTo(left, top + r * ch); ctx.lineTo(left + cols * cw, top + r * ch); }
      for (let c = 1; c < cols; c++) { ctx.moveTo(left + c * cw, top); ctx.lineTo(left + c * cw, top + rows * ch); }
      ctx.stroke();
    }
    ctx.font = FONT;
    ctx.fillStyle = "#1f2937";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const [r, text] of this.shownLabels(rowLabels, rows, rowStep)) ctx.fillText(text, left - 5, top + (r + 0.5) * ch, left - 6);
    for (const [c, text] of this.shownLabels(colLabels, cols, colStep)) {
      const x = left + (c + 0.5) * cw;
      if (mode === "flat") {
        ctx.textAlign = "center";
        ctx.textBaseline = "alphabetic";
        ctx.fillText(text, x, top - 5);
      } else {
        ctx.save();
        ctx.translate(x, top - 4);
        ctx.rotate(mode === "slant" ? -Math.PI / 4 : -Math.PI / 2);
        ctx.textAlign = "left";
        ctx.textBaseline = "middle";
        ctx.fillText(text, 0, 0, mode === "vertical" ? top - 6 : undefined);
        ctx.restore();
      }
    }
    if (this.legend) drawLegend(ctx, this.legend, this.data.scale);
    if ((this.opts.showValues ?? true) && cell >= VALUE_MIN_CELL) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      for (let i = 0; i < rows * cols; i++) {
        if (masked && masked[i]) continue;
        const v = values[i];
        const text = cellText(v);
        ctx.font = `${valueFontSize(text, cw)}px system-ui, sans-serif`;
        ctx.fillStyle = textOn(this.data.scale(v));
        ctx.fillText(text, left + ((i % cols) + 0.5) * cw, top + (Math.floor(i / cols) + 0.5) * ch);
      }
    }
    this.drawOverlay();
  }

  private drawOverlay(): void {
    const { left, top, cw, ch, width, height } = this.geom;
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.overlay.getContext("2d")!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const box = (b: Highlight, colour: string, lw: number): void => {
      ctx.strokeStyle = colour;
      ctx.lineWidth = lw;
      ctx.strokeRect(left + b.c0 * cw + lw / 2, top + b.r0 * ch + lw / 2, (b.c1 - b.c0) * cw - lw, (b.r1 - b.r0) * ch - lw);
    };
    for (const b of this.data.highlights ?? []) box(b, b.colour ?? "#d97706", 2.5);
    if (this.hover) {
      const { r, c } = this.hover;
      box({ r0: r, c0: c, r1: r + 1, c1: c + 1 }, "#000000", Math.max(1.5, Math.min(3, Math.min(cw, ch) / 8)));
    }
  }

  private clampCell(cell: Cell): Cell {
    return { r: Math.min(this.data.rows - 1, Math.max(0, cell.r)), c: Math.min(this.data.cols - 1, Math.max(0, cell.c)) };
  }

  private cellAt(clientX: number, clientY: number): Cell | null {
    const rect = this.base.getBoundingClientRect();
    const { left, top, cw, ch } = this.geom;
    const c = Math.floor((clientX - rect.left - left) / cw);
    const r = Math.floor((clientY - rect.top - top) / ch);
    if (r < 0 || c < 0 || r >= this.data.rows || c >= this.data.cols) return null;
    return { r, c };
  }

  /** Text for one cell: "query 2 (sat) → key 0 (the): 0.4123". */
  describe(cell: Cell): string {
    const i = cell.r * this.data.cols + cell.c;
    const v = this.data.values[i];
    const isMasked = Boolean(this.data.masked && this.data.masked[i]);
    if (this.opts.describe) return this.opts.describe(cell, v, isMasked);
    const [ra, ca] = this.opts.axes ?? ["row", "col"];
    const rl = this.data.rowLabels?.[cell.r];
    const cl = this.data.colLabels?.[cell.c];
    const where = `${ra} ${cell.r}${rl ? ` (${rl})` : ""}, ${ca} ${cell.c}${cl ? ` (${cl})` : ""}`;
    return `${this.opts.label}\n${where}: ${isMasked ? "masked" : fmt(v, this.opts.digits ?? 4)}`;
  }

  private setHover(cell: Cell | null, fromKeyboard = false, clientXY?: [number, number]): void {
    this.hover = cell;
    this.drawOverlay();
    this.opts.onHover?.(cell);
    if (!cell) {
      hideTip();
      return;
    }
    let x: number;
    let y: number;
    if (clientXY && !fromKeyboard) [x, y] = clientXY;
    else {
      const rect = this.base.getBoundingClientRect();
      x = rect.left + this.geom.left + (cell.c + 1) * this.geom.cw;
      y = rect.top + this.geom.top + (cell.r + 1) * this.geom.ch;
    }
    showTip(this.describe(cell), x, y);
  }

  private onPointer(e: PointerEvent): void {
    const cell = this.cellAt(e.clientX, e.clientY);
    if (cell) this.cursor = cell;
    this.setHover(cell, false, [e.clientX, e.clientY]);
  }

  private onKey(e: KeyboardEvent): void {
    const step = e.shiftKey ? 8 : 1;
    const moves: Record<string, [number, number]> = {
      ArrowUp: [-step, 0], ArrowDown: [step, 0], ArrowLeft: [0, -step], ArrowRight: [0, step],
      Home: [0, -Infinity], End: [0, Infinity], PageUp: [-Infinity, 0], PageDown: [Infinity, 0],
    };
    if (e.key === "Escape") {
      this.setHover(null);
      return;
    }
    const m = moves[e.key];
    if (!m) return;
    e.preventDefault();
    const next = { r: this.cursor.r + m[0], c: this.cursor.c + m[1] };
    this.cursor = this.clampCell({ r: Number.isFinite(next.r) ? next.r : m[0] > 0 ? this.data.rows : 0, c: Number.isFinite(next.c) ? next.c : m[1] > 0 ? this.data.cols : 0 });
    this.setHover(this.cursor, true);
  }

  /** The picture as a standalone <svg> element string, placed at (x, y) when nested. */
  svg(x = 0, y = 0): string {
    const { left, top, cw, ch, width, height, mode, colStep, rowStep } = this.geom;
    const { rows, cols, values, masked, rowLabels, colLabels, scale } = this.data;
    const id = `hatch${Math.random().toString(36).slice(2, 8)}`;
    const out: string[] = [`<svg x="${x}" y="${y}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`];
    out.push(`<defs><pattern id="${id}" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="${MASKED_FILL}"/><path d="M0 6L6 0" stroke="${MASKED_LINE}" stroke-width="1"/></pattern></defs>`);
    if (rows * cols <= SVG_RECT_LIMIT) {
      const showValues = (this.opts.showValues ?? true) && Math.min(cw, ch) >= VALUE_MIN_CELL;
      for (let i = 0; i < rows * cols; i++) {
        const cx = +(left + (i % cols) * cw).toFixed(2);
        const cy = +(top + Math.floor(i / cols) * ch).toFixed(2);
        const isMasked = masked && masked[i];
        const fill = isMasked ? `url(#${id})` : scale(values[i]);
        out.push(`<rect x="${cx}" y="${cy}" width="${+cw.toFixed(2)}" height="${+ch.toFixed(2)}" fill="${fill}"><title>${xmlEscape(this.describe({ r: Math.floor(i / cols), c: i % cols }))}</title></rect>`);
        if (showValues && !isMasked) {
          const text = cellText(values[i]);
          out.push(`<text x="${+(cx + cw / 2).toFixed(2)}" y="${+(cy + ch / 2).toFixed(2)}" text-anchor="middle" dominant-baseline="central" font-size="${valueFontSize(text, cw)}" fill="${textOn(scale(values[i]))}">${xmlEscape(text)}</text>`);
        }
      }
    } else {
      out.push(`<image x="${left}" y="${top}" width="${cols * cw}" height="${rows * ch}" preserveAspectRatio="none" style="image-rendering:pixelated" href="${this.pixels.toDataURL("image/png")}"/>`);
    }
    for (const [r, l] of this.shownLabels(rowLabels, rows, rowStep)) {
      out.push(`<text x="${left - 5}" y="${+(top + (r + 0.5) * ch).toFixed(2)}" text-anchor="end" dominant-baseline="central" fill="#1f2937">${xmlEscape(l)}</text>`);
    }
    for (const [c, l] of this.shownLabels(colLabels, cols, colStep)) {
      const cx = +(left + (c + 0.5) * cw).toFixed(2);
      out.push(mode === "flat"
        ? `<text x="${cx}" y="${top - 5}" text-anchor="middle" fill="#1f2937">${xmlEscape(l)}</text>`
        : `<text transform="translate(${cx},${top - 4}) rotate(${mode === "slant" ? -45 : -90})" dominant-baseline="central" fill="#1f2937">${xmlEscape(l)}</text>`);
    }
    if (this.legend) out.push(legendSvg(this.legend, scale, id));
    for (const b of this.data.highlights ?? []) {
      out.push(`<rect x="${left + b.c0 * cw + 1.25}" y="${top + b.r0 * ch + 1.25}" width="${(b.c1 - b.c0) * cw - 2.5}" height="${(b.r1 - b.r0) * ch - 2.5}" fill="none" stroke="${b.colour ?? "#d97706"}" stroke-width="2.5"/>`);
    }
    out.push("</svg>");
    return out.join("");
  }

  dispose(): void {
    this.resize.disconnect();
    heatmaps.delete(this.el);
  }
}

/** Every live heat map by its element, for the exporter. */
export const heatmaps = new WeakMap<Element, HeatMap>();

/** Dispose of every heat map under `root` (a page being left): their resize observers stop. */
export function disposeHeatMaps(root: ParentNode): void {
  for (const el of root.querySelectorAll(".heatmap")) heatmaps.get(el)?.dispose();
}
