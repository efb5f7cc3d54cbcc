/**
 * A progress line on stderr for long commands (`ckv export`, `ckv import`), only when stderr
 * is a terminal: redrawn in place (`\r`, erase line) at most every 200 ms, erased when done so
 * the one-line summary that follows stands alone. Not a terminal (a pipe, a log file): nothing.
 */
const redrawEveryMs = 200;

export class Progress {
  private readonly enabled = process.stderr.isTTY === true;
  private lastDrawMs = -Infinity;
  private drawn = false;

  /** Draws `text()` if it is time to (text is only built then). */
  update(text: () => string): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastDrawMs < redrawEveryMs) return;
    this.lastDrawMs = now;
    const columns = process.stderr.columns || 80;
    process.stderr.write(`\r\x1b[2K${text().slice(0, columns - 1)}`);
    this.drawn = true;
  }

  /** Erases the line. */
  done(): void {
    if (this.drawn) process.stderr.write('\r\x1b[2K');
    this.drawn = false;
  }
}

/** 1234567 -> "1,234,567". */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** Bytes for people: "512 B", "12.3 MiB". */
export function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** "1 block", "62 blocks", "1,000,000 entries". */
export function counted(n: number, one: string, many = `${one}s`): string {
  return `${count(n)} ${n === 1 ? one : many}`;
}
