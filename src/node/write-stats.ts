/**
 * Write statistics of a node for the status page and /metrics: writes per second (local and
 * remote) and the convergence time of remote writes over the last minute.
 *
 * The convergence time of a remote write is the time it was applied here minus the wall time
 * in its HLC stamp (when the writer issued it): gossip delay, or how long anti-entropy took to
 * repair it. Clocks of different hosts disagree by their offset, so a sample can come out
 * negative; it is clamped at 0.
 *
 * Memory is bounded: one slot per second for the last `windowSec` seconds, each keeping at
 * most `samplesPerSecondMax` samples (a uniform reservoir sample beyond that), so a burst of
 * 100,000 writes a second costs the same as 512.
 */
import { hlcWallMs, type Hlc } from '../core/hlc.js';

export const statsWindowSec = 60;
const samplesPerSecondMax = 512;

interface Slot {
  /** Epoch second this slot holds; slots of older seconds are stale. */
  sec: number;
  local: number;
  remote: number;
  /** Convergence samples (ms), a reservoir of `seen` samples. */
  samples: number[];
  seen: number;
}

export interface SecondStats {
  /** Start of the second, epoch ms. */
  t: number;
  local: number;
  remote: number;
  /** Convergence time percentiles of that second's remote writes; null if there were none. */
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface StatsView {
  windowSec: number;
  /** Mean over the last 5 complete seconds. */
  writesPerSec: { local: number; remote: number };
  /** Over the whole window. */
  convergence: { samples: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null };
  /** One point per second, oldest first, the current (incomplete) second excluded. */
  series: SecondStats[];
}

/** The value at quantile q (0..1) of sorted numbers (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export class WriteStats {
  private readonly slots: Slot[] = Array.from({ length: statsWindowSec + 1 }, () => ({ sec: -1, local: 0, remote: 0, samples: [], seen: 0 }));
  private readonly observers = new Set<(ms: number) => void>();

  constructor(private readonly wallClockMs: () => number = Date.now, private readonly rng: () => number = Math.random) {}

  /** Called for every applied change. `hlc` is the change's version stamp. */
  record(origin: 'local' | 'remote', hlc: Hlc, appliedAtMs: number): void {
    const slot = this.slotFor(Math.floor(appliedAtMs / 1000));
    if (origin === 'local') {
      slot.local++;
      return;
    }
    slot.remote++;
    const ms = Math.max(0, appliedAtMs - hlcWallMs(hlc));
    slot.seen++;
    if (slot.samples.length < samplesPerSecondMax) slot.samples.push(ms);
    else {
      const at = Math.floor(this.rng() * slot.seen);
      if (at < samplesPerSecondMax) slot.samples[at] = ms;
    }
    for (const observer of this.observers) observer(ms);
  }

  /** Every convergence sample (ms) as it is taken, e.g. for a histogram; returns an unsubscribe. */
  observe(observer: (ms: number) => void): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  view(nowMs = this.wallClockMs()): StatsView {
    const nowSec = Math.floor(nowMs / 1000);
    const series: SecondStats[] = [];
    const all: number[] = [];
    for (let sec = nowSec - statsWindowSec; sec < nowSec; sec++) {
      const slot = this.slots[sec % this.slots.length]!;
      if (slot.sec !== sec) {
        series.push({ t: sec * 1000, local: 0, remote: 0, p50Ms: null, p99Ms: null });
        continue;
      }
      const sorted = [...slot.samples].sort((a, b) => a - b);
      for (const ms of sorted) all.push(ms);
      series.push({ t: sec * 1000, local: slot.local, remote: slot.remote, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99) });
    }
    const recent = series.slice(-5);
    const mean = (pick: (s: SecondStats) => number): number => Math.round((recent.reduce((sum, s) => sum + pick(s), 0) / recent.length) * 10) / 10;
    all.sort((a, b) => a - b);
    return {
      windowSec: statsWindowSec,
      writesPerSec: { local: mean((s) => s.local), remote: mean((s) => s.remote) },
      convergence: { samples: all.length, p50Ms: quantile(all, 0.5), p99Ms: quantile(all, 0.99), maxMs: all.length ? all[all.length - 1]! : null },
      series,
    };
  }

  private slotFor(sec: number): Slot {
    const slot = this.slots[sec % this.slots.length]!;
    if (slot.sec !== sec) {
      slot.sec = sec;
      slot.local = 0;
      slot.remote = 0;
      slot.samples = [];
      slot.seen = 0;
    }
    return slot;
  }
}
