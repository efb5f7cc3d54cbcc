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
  /** `samples` sorted, made by view() and dropped when a sample is taken. */
  sorted: Float64Array | undefined;
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
  series: readonly SecondStats[];
}

/** The value at quantile q (0..1) of sorted numbers (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** A remote write's convergence sample: applied here minus its stamp's wall time, at least 0. */
function convergenceMs(hlc: Hlc, appliedAtMs: number): number {
  return Math.max(0, appliedAtMs - hlcWallMs(hlc));
}

export class WriteStats {
  private readonly slots: Slot[] = Array.from({ length: statsWindowSec + 1 }, () => ({ sec: -1, local: 0, remote: 0, samples: [], seen: 0, sorted: undefined }));
  /** An array, not a set: record() runs for every applied change, and a set's loop makes an iterator. */
  private observers: ((ms: number) => void)[] = [];

  constructor(private readonly wallClockMs: () => number = Date.now, private readonly rng: () => number = Math.random) {}

  /**
   * The last view and the second it was made in. A view covers complete seconds only, so it
   * holds for the rest of that second unless a write lands in one of them (a clock set back):
   * record() then drops it. Status reads come often (the status page, scrapes, a bench's polls
   * every 10 ms), and a full window (60 seconds of 512 samples) took ~10 ms to sort.
   */
  private lastView: { nowSec: number; view: StatsView } | undefined;

  /** Called for every applied change. `hlc` is the change's version stamp. */
  record(origin: 'local' | 'remote', hlc: Hlc, appliedAtMs: number): void {
    const sec = Math.floor(appliedAtMs / 1000);
    if (this.lastView !== undefined && sec < this.lastView.nowSec) this.lastView = undefined;
    const slot = this.slotFor(sec);
    if (origin === 'local') {
      slot.local++;
      return;
    }
    slot.remote++;
    slot.seen++;
    slot.sorted = undefined;
    // The sample is worked out only when something takes it: a catch-up applies thousands of
    // changes a second, of which the reservoir keeps 512 (and the stamp's milliseconds are a
    // bigint operation).
    const observers = this.observers;
    if (slot.samples.length < samplesPerSecondMax) slot.samples.push(convergenceMs(hlc, appliedAtMs));
    else {
      const at = Math.floor(this.rng() * slot.seen);
      if (at < samplesPerSecondMax) slot.samples[at] = convergenceMs(hlc, appliedAtMs);
    }
    if (observers.length === 0) return;
    const ms = convergenceMs(hlc, appliedAtMs);
    for (let i = 0; i < observers.length; i++) observers[i]!(ms);
  }

  /** Every convergence sample (ms) as it is taken, e.g. for a histogram; returns an unsubscribe. */
  observe(observer: (ms: number) => void): () => void {
    this.observers = [...this.observers, observer];
    return () => {
      this.observers = this.observers.filter((each) => each !== observer);
    };
  }

  /** The last minute's complete seconds (frozen: the same object may be handed out again within its second). */
  view(nowMs = this.wallClockMs()): StatsView {
    const nowSec = Math.floor(nowMs / 1000);
    if (this.lastView?.nowSec === nowSec) return this.lastView.view;
    const series: SecondStats[] = [];
    const secondsSorted: Float64Array[] = [];
    let samples = 0;
    for (let sec = nowSec - statsWindowSec; sec < nowSec; sec++) {
      const slot = this.slots[sec % this.slots.length]!;
      if (slot.sec !== sec) {
        series.push(Object.freeze({ t: sec * 1000, local: 0, remote: 0, p50Ms: null, p99Ms: null }));
        continue;
      }
      // A typed array sorts numerically in native code, several times faster than a comparator.
      const sorted = (slot.sorted ??= Float64Array.from(slot.samples).sort());
      secondsSorted.push(sorted);
      samples += sorted.length;
      series.push(Object.freeze({ t: sec * 1000, local: slot.local, remote: slot.remote, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99) }));
    }
    const all = new Float64Array(samples);
    let at = 0;
    for (const sorted of secondsSorted) {
      all.set(sorted, at);
      at += sorted.length;
    }
    all.sort();
    const recent = series.slice(-5);
    const mean = (pick: (s: SecondStats) => number): number => Math.round((recent.reduce((sum, s) => sum + pick(s), 0) / recent.length) * 10) / 10;
    const view: StatsView = Object.freeze({
      windowSec: statsWindowSec,
      writesPerSec: Object.freeze({ local: mean((s) => s.local), remote: mean((s) => s.remote) }),
      convergence: Object.freeze({ samples, p50Ms: quantile(all, 0.5), p99Ms: quantile(all, 0.99), maxMs: samples > 0 ? all[samples - 1]! : null }),
      series: Object.freeze(series),
    });
    this.lastView = { nowSec, view };
    return view;
  }

  private slotFor(sec: number): Slot {
    const slot = this.slots[sec % this.slots.length]!;
    if (slot.sec !== sec) {
      slot.sec = sec;
      slot.local = 0;
      slot.remote = 0;
      slot.samples = [];
      slot.seen = 0;
      slot.sorted = undefined;
    }
    return slot;
  }
}
