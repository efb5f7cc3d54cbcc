/**
 * The simulator's one event queue, ordered by (atMs, seq): events at the same time run in the
 * order they were scheduled, so a seed replays exactly. A binary heap.
 * Also the simulators' violation log, stamped with the queue's simulated time.
 */
export interface SimEvent {
  atMs: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  private heap: SimEvent[] = [];
  private seq = 0;
  nowMs = 0;

  get size(): number {
    return this.heap.length;
  }

  schedule(afterMs: number, run: () => void): void {
    const event = { atMs: this.nowMs + Math.max(0, afterMs), seq: this.seq++, run };
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): SimEvent | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    this.nowMs = top.atMs;
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** What every simulator's run reports: its seed, whether every invariant held, what broke, and its own counts. */
export interface RunReport<Stats> {
  seed: number;
  ok: boolean;
  violations: string[];
  stats: Stats;
}

/** The violations a run found, each stamped with the simulated time; the first `max` are kept (a broken run finds many). */
export function violationLog(queue: EventQueue, max = 50): { violations: string[]; violate: (text: string) => void } {
  const violations: string[] = [];
  const violate = (text: string): void => {
    if (violations.length < max) violations.push(`at ${queue.nowMs} ms: ${text}`);
  };
  return { violations, violate };
}
