/**
 * Training progress for a terminal. On a TTY: one bar redrawn in place,
 *   [########........]  120/500  loss 1.234  acc 45.6%  3.1k tok/s  ETA 0:42
 * with other lines (validation) printed above it. Elsewhere (a pipe, a log file, CI): a plain line
 * every `every` steps and no control characters.
 */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressStats {
  loss: number;
  accuracy: number;
  tokensPerSecond: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

export function formatRate(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(1)}M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(0);
}

export class Progress {
  private readonly tty: boolean;
  private barShown = false;
  private lastDraw = -Infinity;
  private readonly started = performance.now();

  constructor(
    private readonly out: ProgressStream,
    private readonly total: number,
    private readonly firstStep = 0,
    private readonly every = 50,
  ) {
    this.tty = out.isTTY === true;
  }

  private eta(step: number): number {
    const done = step - this.firstStep;
    const elapsed = (performance.now() - this.started) / 1000;
    return done > 0 ? (elapsed / done) * (this.total - step) : NaN;
  }

  private stats(step: number, s: ProgressStats): string {
    const width = String(this.total).length;
    return `${String(step).padStart(width)}/${this.total}  loss ${s.loss.toFixed(3)}  acc ${(100 * s.accuracy).toFixed(1)}%  ${formatRate(s.tokensPerSecond)} tok/s  ETA ${formatDuration(this.eta(step))}`;
  }

  /** After a training step (steps counted from 1). */
  update(step: number, s: ProgressStats): void {
    if (this.tty) {
      const now = performance.now();
      if (now - this.lastDraw < 100 && step !== this.total) return; // at most 10 redraws a second
      this.lastDraw = now;
      const cells = 20;
      const filled = Math.round((cells * step) / Math.max(this.total, 1));
      const bar = `[${"#".repeat(filled)}${".".repeat(cells - filled)}]`;
      let line = `${bar} ${this.stats(step, s)}`;
      if (this.out.columns && line.length > this.out.columns - 1) line = line.slice(0, this.out.columns - 1);
      this.out.write(`\r\x1b[2K${line}`);
      this.barShown = true;
    } else if (step % this.every === 0 || step === this.total || step === this.firstStep + 1) {
      this.out.write(`step ${this.stats(step, s)}\n`);
    }
  }

  /** A line of its own (validation results, messages), above the bar on a TTY. */
  line(text: string): void {
    if (this.tty && this.barShown) this.out.write("\r\x1b[2K");
    this.out.write(`${text}\n`);
    this.barShown = false;
  }

  /** Leave the bar's last state on screen and move to a new line. */
  done(): void {
    if (this.tty && this.barShown) this.out.write("\n");
    this.barShown = false;
  }
}
