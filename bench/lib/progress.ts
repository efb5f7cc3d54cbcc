/**
 * A progress bar on stderr. Each scenario is one stage with an estimated duration; inside a
 * stage, `detail(text, fraction)` says what is running and how far it is. On a terminal the
 * bar is redrawn in place a few times a second; elsewhere (CI logs) a plain line is printed
 * whenever the detail text changes, at most once a second.
 */
import { performance } from 'node:perf_hooks';

export class Progress {
  private readonly stages: { name: string; weight: number }[] = [];
  private current = -1;
  private fraction = 0;
  private text = '';
  private readonly startedMs = performance.now();
  private stageStartedMs = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private lastPlainMs = 0;
  private lastPlainText = '';
  private readonly tty: boolean;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(stream.isTTY) && process.env.TERM !== 'dumb';
  }

  /** Declare the stages up front (name, estimated seconds). */
  plan(stages: { name: string; estimateS: number }[]): void {
    this.stages.push(...stages.map((s) => ({ name: s.name, weight: Math.max(1, s.estimateS) })));
    if (this.tty && this.timer === undefined) {
      this.timer = setInterval(() => this.draw(), 200);
      this.timer.unref();
    }
  }

  stage(name: string): void {
    this.current = this.stages.findIndex((s) => s.name === name);
    this.fraction = 0;
    this.text = '';
    this.stageStartedMs = performance.now();
    this.draw();
  }

  /** What is running now, and (optionally) how far the stage is, 0..1. */
  detail(text: string, fraction?: number): void {
    this.text = text;
    if (fraction !== undefined) this.fraction = Math.min(1, Math.max(this.fraction, fraction));
    this.draw();
  }

  /** A line of its own above the bar (warnings, findings). */
  log(line: string): void {
    if (this.tty) this.stream.write('\r\x1b[2K');
    this.stream.write(`${line}\n`);
    if (this.tty) this.draw(true);
  }

  done(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) this.stream.write('\r\x1b[2K');
    this.stream.write(`bench: done in ${formatElapsed(performance.now() - this.startedMs)}\n`);
  }

  private overall(): number {
    const total = this.stages.reduce((sum, s) => sum + s.weight, 0);
    if (total === 0 || this.current < 0) return 0;
    const before = this.stages.slice(0, this.current).reduce((sum, s) => sum + s.weight, 0);
    const stage = this.stages[this.current]!;
    // Without a reported fraction, creep along the estimate (never past 95% of the stage).
    const elapsedS = (performance.now() - this.stageStartedMs) / 1000;
    const byTime = Math.min(0.95, elapsedS / stage.weight);
    const within = this.fraction > 0 ? this.fraction : byTime;
    return Math.min(1, (before + within * stage.weight) / total);
  }

  private draw(force = false): void {
    if (this.current < 0) return;
    const stage = this.stages[this.current]!;
    const share = this.overall();
    const elapsed = formatElapsed(performance.now() - this.startedMs);
    const label = `${stage.name}${this.text ? `: ${this.text}` : ''}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round(share * width);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
      const columns = this.stream.columns ?? 100;
      const line = `${bar} ${(share * 100).toFixed(0).padStart(3)}% ${elapsed} ${label}`;
      this.stream.write(`\r\x1b[2K${line.slice(0, columns - 1)}`);
      return;
    }
    const now = performance.now();
    if (!force && (label === this.lastPlainText || now - this.lastPlainMs < 1000)) return;
    this.lastPlainText = label;
    this.lastPlainMs = now;
    this.stream.write(`bench [${(share * 100).toFixed(0).padStart(3)}% ${elapsed}] ${label}\n`);
  }
}

export function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
