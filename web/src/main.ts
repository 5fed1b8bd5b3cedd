/**
 * The attend explorer: nine lessons, one page each, routed by the URL hash (#/<page>?<state>).
 * Every page computes with the attend library in this tab, through its public API.
 */
import "./style.css";
import { h, replace } from "./ui/dom.js";
import { disposeHeatMaps } from "./ui/heatmap.js";
import { hideTip } from "./ui/tooltip.js";
import { PageState, parseHash } from "./state.js";
import { makeContext } from "./page.js";
import { PAGES } from "./pages/index.js";

declare global {
  interface Window {
    /** read by the browser tests: which page is mounted, and whether mounting finished */
    __explorer?: { page: string; mounted: number; error: string | null };
  }
}

const main = document.getElementById("main")!;
const nav = document.getElementById("nav")!;
const env = document.getElementById("env")!;
let disposers: (() => void)[] = [];
let mounted = 0;

nav.append(h("ol", {}, ...PAGES.map((p, i) => h("li", {}, h("a", { href: `#/${p.id}`, "data-page": p.id }, h("span", { class: "num" }, `${i + 1}`), ` ${p.title}`)))));

env.textContent = self.crossOriginIsolated
  ? "cross-origin isolated · SharedArrayBuffer available"
  : "not cross-origin isolated (serve with web/server.mjs for shared memory)";
env.classList.toggle("warn", !self.crossOriginIsolated);

function mount(focus: boolean): void {
  for (const d of disposers.splice(0)) d();
  hideTip();
  const route = parseHash(location.hash);
  const index = Math.max(0, PAGES.findIndex((p) => p.id === route.page));
  const page = PAGES[index];
  if (page.id !== route.page) history.replaceState(null, "", `#/${page.id}`);
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.page === page.id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const article = h("article", { class: "lesson", "data-page": page.id });
  replace(main, article);
  document.title = `${index + 1}. ${page.title} · attend explorer`;
  const state = new PageState(page.id, route.params);
  window.__explorer = { page: page.id, mounted, error: null };
  try {
    page.mount(makeContext(article, state, disposers));
  } catch (err) {
    console.error(err);
    window.__explorer.error = String(err);
    article.append(h("p", { class: "error", role: "alert" }, `This page failed: ${String(err)}`));
  }
  disposers.push(() => disposeHeatMaps(article)); // after the page's own disposers: its maps stop watching their size
  const pager = h("nav", { class: "pager", "aria-label": "Previous and next lesson" },
    index > 0 ? h("a", { href: `#/${PAGES[index - 1].id}` }, `← ${index}. ${PAGES[index - 1].title}`) : h("span"),
    index < PAGES.length - 1 ? h("a", { href: `#/${PAGES[index + 1].id}` }, `${index + 2}. ${PAGES[index + 1].title} →`) : h("span"));
  article.append(pager);
  window.__explorer.mounted = ++mounted;
  if (focus) article.querySelector("h1")?.focus();
}

// The skip link moves focus to the lesson without touching the hash (which holds the page state).
document.querySelector(".skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  main.focus();
});

let lastHash = location.hash;
window.addEventListener("hashchange", () => {
  const prev = parseHash(lastHash);
  lastHash = location.hash;
  // Our own history.replaceState never fires hashchange; this is a link, Back/Forward or a typed URL.
  mount(prev.page !== parseHash(location.hash).page);
});
mount(false);
