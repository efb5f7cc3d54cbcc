/**
 * The TTL sweeper: turns expired values into tombstones (src/core/ttl.ts), so they stop
 * costing storage and tombstone GC can collect them. Reads do not wait for it: a read
 * already sees an expired value as absent (ttl.ts visibleAt). The tombstones it makes are told
 * to `onExpired` (the node's watchers see them, origin 'expired'), never gossiped.
 *
 * What is due: a min-heap of (expiresAtMs, key, version), fed by every change the replica
 * applies that carries an expiry (local writes, gossip, sync, imports: CkvNode.onApplied) and,
 * once after start (`startScanDelayMs`, 5 s, so it does not compete with catch-up), by one scan of
 * the store for the values with an expiry written before this start (Replica.scanExpiring: a
 * row without one is passed over by its flags byte, not decoded). The heap is bounded
 * (`pendingMax`); past it, new expiries are not remembered but the scan is done again once
 * the heap has drained, so none is forgotten, only swept later.
 *
 * Every `intervalMs` (default 1 s) the sweeper takes what is due by the replica's clock
 * (Replica.nowMs, the HLC reading) in batches of at most `batchMax` and asks the replica to
 * replace each value by its tombstone if the key still holds that version
 * (Replica.expireUnchanged): a key re-written meanwhile is left alone. The tombstone has the
 * write's own version, so every node makes the identical tombstone without talking and the
 * Merkle roots agree whichever node swept first. At most `batchesPerTickMax` batches a tick:
 * a backlog (a million keys expiring at once) drains over a few seconds rather than holding
 * the write queue.
 */
import type { Entry, Version } from '../core/entry.js';
import type { Replica } from '../core/replica.js';
import type { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';
import { errorText } from '../util/error-text.js';

/** How often the sweeper looks for due expiries (ms). Shorter: storage freed sooner, more wake-ups. */
export const ttlSweepIntervalMsDefault = 1_000;
/** Expiries per replica commit (one write-queue op). */
export const ttlSweepBatchMax = 1_024;
/** Batches per tick at most. */
const batchesPerTickMax = 8;
/** Expiries remembered at most (about 100 bytes each); past it, a rescan later finds the rest. */
export const ttlSweepPendingMax = 200_000;
/** The scan for expiries written before this start waits this long after the start (ms). */
export const ttlStartScanDelayMsDefault = 5_000;
/** The scan yields to the event loop every this many entries. */
const scanYieldEntries = 1_000;

interface Due {
  readonly expiresAtMs: number;
  readonly key: string;
  readonly version: Version;
}

export interface TtlSweeperOptions {
  replica: Replica;
  counters: Counters;
  logger: Logger;
  /** Default ttlSweepIntervalMsDefault. */
  intervalMs?: number;
  /** Default ttlStartScanDelayMsDefault (tests shorten it). */
  startScanDelayMs?: number;
  /** Default ttlSweepPendingMax (tests shrink it). */
  pendingMax?: number;
  /** Told of the tombstones each sweep made (durable by then): the node's watchers see them. */
  onExpired?: (tombstones: readonly Entry[]) => void;
}

export class TtlSweeper {
  private readonly heap: Due[] = [];
  private readonly options: TtlSweeperOptions;
  private timer: NodeJS.Timeout | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  /** An expiry was not remembered (heap full), or the start scan has not run: scan once the heap drains. */
  private rescanNeeded = true;
  private scanning: Promise<void> | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = false;

  constructor(options: TtlSweeperOptions) {
    this.options = options;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.options.intervalMs ?? ttlSweepIntervalMsDefault).unref();
    this.scanTimer = setTimeout(() => this.scanSoon(), this.options.startScanDelayMs ?? ttlStartScanDelayMsDefault).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.scanTimer);
    await this.scanning;
    await this.sweeping;
  }

  /** Expiries remembered and not yet swept (status). */
  get pending(): number {
    return this.heap.length;
  }

  /** Remember `entry`'s expiry, if it has one. */
  schedule(entry: Entry): void {
    if (entry.value === null || entry.expiresAtMs === undefined) return;
    if (this.heap.length >= (this.options.pendingMax ?? ttlSweepPendingMax)) {
      this.rescanNeeded = true;
      this.options.counters.add('ttl_pending_full');
      return;
    }
    this.push({ expiresAtMs: entry.expiresAtMs, key: entry.key, version: entry.version });
  }

  private tick(): void {
    if (this.stopped || this.sweeping) return;
    if (this.heap.length === 0 && this.rescanNeeded && this.scanTimer === undefined) this.scanSoon();
    const nowMs = this.options.replica.nowMs();
    if (this.heap.length === 0 || this.heap[0]!.expiresAtMs > nowMs) return;
    this.sweeping = this.sweep(nowMs).finally(() => (this.sweeping = undefined));
  }

  private async sweep(nowMs: number): Promise<void> {
    for (let batch = 0; batch < batchesPerTickMax && !this.stopped; batch++) {
      const due: Due[] = [];
      while (due.length < ttlSweepBatchMax && this.heap.length > 0 && this.heap[0]!.expiresAtMs <= nowMs) due.push(this.pop()!);
      if (due.length === 0) return;
      try {
        const made = await this.options.replica.expireUnchanged(due.map(({ key, version }) => ({ key, version })));
        this.options.counters.add('ttl_swept', made.length);
        if (made.length > 0) this.options.onExpired?.(made);
      } catch (error) {
        // Stopping, or a store error: put them back for the next tick.
        for (const item of due) this.push(item);
        if (!this.stopped) this.options.logger.warn('ttl sweep failed', { error: errorText(error) });
        return;
      }
    }
  }

  private scanSoon(): void {
    this.scanTimer = undefined;
    if (this.stopped || this.scanning) return;
    this.rescanNeeded = false;
    this.scanning = this.scan()
      .catch((error: unknown) => {
        this.rescanNeeded = true;
        if (!this.stopped) this.options.logger.warn('ttl scan failed', { error: errorText(error) });
      })
      .finally(() => (this.scanning = undefined));
  }

  /** One pass over the store for values with an expiry (the ones before this start, or not remembered). */
  private async scan(): Promise<void> {
    let seen = 0;
    for await (const entry of this.options.replica.scanExpiring()) {
      if (this.stopped) return;
      this.schedule(entry);
      if (++seen % scanYieldEntries === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  // A binary min-heap on expiresAtMs.

  private push(item: Due): void {
    const heap = this.heap;
    heap.push(item);
    let at = heap.length - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (heap[parent]!.expiresAtMs <= item.expiresAtMs) break;
      heap[at] = heap[parent]!;
      at = parent;
    }
    heap[at] = item;
  }

  private pop(): Due | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.expiresAtMs < heap[left]!.expiresAtMs ? right : left;
      if (heap[child]!.expiresAtMs >= last.expiresAtMs) break;
      heap[at] = heap[child]!;
      at = child;
    }
    heap[at] = last;
    return top;
  }
}
