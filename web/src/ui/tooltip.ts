/**
 * One shared tooltip for the numbers behind every picture. Pointer hover and keyboard focus both
 * call show(); the text is also mirrored into an aria-live region so screen readers hear it.
 */
let tipEl: HTMLElement | null = null;

function tip(): HTMLElement {
  tipEl ??= document.getElementById("tip");
  if (!tipEl) throw new Error("tooltip: #tip is missing from index.html");
  return tipEl;
}

/** Show text next to a point in viewport coordinates. */
export function showTip(text: string, x: number, y: number): void {
  const el = tip();
  el.textContent = text;
  el.hidden = false;
  const pad = 14;
  const { width, height } = el.getBoundingClientRect();
  const left = x + pad + width > window.innerWidth ? x - pad - width : x + pad;
  const top = y + pad + height > window.innerHeight ? y - pad - height : y + pad;
  el.style.left = `${Math.max(0, left + window.scrollX)}px`;
  el.style.top = `${Math.max(0, top + window.scrollY)}px`;
}

export function hideTip(): void {
  tip().hidden = true;
}

/** Hover and focus tooltips for an SVG or HTML element whose numbers come from text(). */
export function attachTip(el: Element, text: () => string): void {
  el.addEventListener("pointermove", (e) => {
    const ev = e as PointerEvent;
    showTip(text(), ev.clientX, ev.clientY);
  });
  el.addEventListener("pointerleave", hideTip);
  el.addEventListener("focus", () => {
    const r = el.getBoundingClientRect();
    showTip(text(), r.right, r.top);
  });
  el.addEventListener("blur", hideTip);
}
