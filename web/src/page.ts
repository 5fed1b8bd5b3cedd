/** What a lesson page is: an id for the URL, a title, and a mount function. */
import { Figure, type FigureOptions } from "./ui/figure.js";
import type { PageState } from "./state.js";

export interface PageContext {
  /** the page's <article>: append the lesson here */
  root: HTMLElement;
  state: PageState;
  figure(o: FigureOptions): Figure;
  /** run when the page is left (stop timers, training loops, observers) */
  onDispose(fn: () => void): void;
}

export interface Page {
  id: string;
  title: string;
  mount(ctx: PageContext): void;
}

export function makeContext(root: HTMLElement, state: PageState, disposers: (() => void)[]): PageContext {
  return {
    root,
    state,
    figure: (o) => new Figure(state.page, o),
    onDispose: (fn) => void disposers.push(fn),
  };
}
