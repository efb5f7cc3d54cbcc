/**
 * Delivery until acknowledged, the runtime (partitioned mode; the rules are in the pure
 * DeliveryQueue, src/core/delivery-queue.ts). The coordinator calls `hold` for every owner
 * that did not acknowledge a write and awaits it before replying: the row is durable in
 * LevelDB (the store's `h` rows) before the client hears back. At start every row is read back
 * into the queue (a malformed one is deleted and counted, `delivery_rows_dropped`), then
 * re-targeted against the current layout.
 *
 * Driving: one timer armed at the queue's next due time (a monotonic clock: a wall-clock jump
 * neither drops nor stalls a row; ages use the node's wall clock). A due batch goes to its
 * target over the replicate protocol (the client batches the entries issued in one turn into
 * frames); an `applied` or `older` outcome acknowledges a row, which the queue deletes if it
 * still holds that version. A batch for this node itself (a re-targeted row whose new owner is
 * this node) is applied locally. A member coming up (`connected`) makes its rows due at once;
 * a layout change re-targets rows whose target no longer owns the key. Each batch sent is counted
 * by why it was due (`delivery_batches_<cause>`, the reconnect ones apart from backoff retries),
 * and the first batch after a target came up is logged with the time since (`delivering on
 * reconnect`). Row changes reach the store through one serial chain, in the order the queue
 * decided them.
 */
import { keyHashText, type Entry, type HashText } from '../core/entry.js';
import { DeliveryQueue, decodeHintRow, deliveryDefaults, encodeHintRow, hintRowKey, type DeliveryBatch, type DeliveryCause, type DeliveryStats, type HintRow, type RowChanges } from '../core/delivery-queue.js';
import type { Ownership } from '../core/ownership.js';
import type { Replica } from '../core/replica.js';
import type { HintRowOp, Store } from '../core/store.js';
import { isAck, type ReplicateOutcome } from '../core/write-quorum.js';
import { DeliveryBacklogError } from '../errors.js';
import type { Counters } from '../util/counters.js';
import { errorText } from '../util/error-text.js';
import type { Logger } from '../util/logger.js';

export interface DeliveryDeps {
  store: Pick<Store, 'writeHints' | 'scanHints'>;
  replica: Pick<Replica, 'applyRemote'>;
  ownership: () => Ownership | undefined;
  peerIdOf: (nodeId: string) => string | undefined;
  apply: (peerId: string, entry: Entry) => Promise<ReplicateOutcome>;
  counters: Counters;
  logger: Logger;
  wallClockMs: () => number;
  /** A monotonic clock for the schedule (default performance.now). */
  monotonicMs?: () => number;
  random?: () => number;
  rowsMax?: number;
  bytesMax?: number;
  valueBytesMax?: number;
}

export class Delivery {
  private readonly queue: DeliveryQueue;
  private readonly monotonicMs: () => number;
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Infinity;
  private writing: Promise<void> = Promise.resolve();
  private stopped = false;
  private started = false;
  /** Targets that came up with rows pending, and when (monotonic): the first batch after it is logged. */
  private readonly cameUpAtMs = new Map<string, number>();

  constructor(private readonly deps: DeliveryDeps) {
    this.monotonicMs = deps.monotonicMs ?? (() => performance.now());
    this.queue = new DeliveryQueue({
      ...deliveryDefaults,
      rowsMax: deps.rowsMax ?? deliveryDefaults.rowsMax,
      bytesMax: deps.bytesMax ?? deliveryDefaults.bytesMax,
      random: deps.random ?? Math.random,
    });
  }

  /** Reads the persisted rows back (a store without hint rows keeps them in memory only). */
  async start(): Promise<void> {
    const { store } = this.deps;
    if (store.scanHints !== undefined) {
      const rows: HintRow[] = [];
      const bad: HintRowOp[] = [];
      for await (const { key, value } of store.scanHints()) {
        const row = decodeHintRow(key, value, this.deps.valueBytesMax);
        if (row === undefined) bad.push({ key });
        else rows.push(row);
      }
      if (bad.length > 0) {
        this.deps.counters.add('delivery_rows_dropped', bad.length);
        this.deps.logger.warn('malformed delivery rows dropped', { rows: bad.length });
        await store.writeHints?.(bad);
      }
      this.queue.load(rows, this.monotonicMs());
      if (rows.length > 0) this.deps.logger.info('pending deliveries loaded', { rows: rows.length });
    }
    this.started = true;
    this.layoutChanged();
    this.arm();
  }

  /**
   * Past the limits, the error for a write whose owners include a target with pending rows
   * (backpressure: the write is refused before anything is stored), else undefined.
   */
  refusal(owners: readonly string[]): DeliveryBacklogError | undefined {
    const blocking = this.queue.blocking(owners);
    if (blocking === undefined) return undefined;
    this.deps.counters.add('delivery_backlog_refused');
    return new DeliveryBacklogError(
      `pending deliveries to ${blocking.target} hold ${blocking.rows} rows, ${blocking.bytes} bytes (limits ${this.limitText()}): writes to its keys are refused until it catches up`,
    );
  }

  /** Keeps `entry` for each target until it acknowledges; resolves once the rows are durable. */
  hold(pending: readonly { target: string; entry: Entry }[]): Promise<void> {
    if (pending.length === 0 || this.stopped) return Promise.resolve();
    const nowMs = this.monotonicMs();
    const wallMs = this.deps.wallClockMs();
    const ops: HintRowOp[] = [];
    const hashes = new Map<string, HashText>();
    for (const { target, entry } of pending) {
      let keyHash = hashes.get(entry.key);
      if (keyHash === undefined) hashes.set(entry.key, (keyHash = keyHashText(entry.key)));
      opsOf(this.queue.hold(target, entry, nowMs, wallMs, keyHash), ops);
    }
    this.deps.counters.add('delivery_rows_held', pending.length);
    const written = this.persist(ops);
    this.arm();
    return written;
  }

  /** The oldest HLC among the pending rows, if any (tombstone GC's floor). */
  oldestHlc(): bigint | undefined {
    return this.queue.oldestHlc();
  }

  /** A member came up: its rows are due now. */
  connected(nodeId: string): void {
    const nowMs = this.monotonicMs();
    this.queue.connected(nodeId, nowMs);
    if (this.queue.rowsOf(nodeId) > 0) this.cameUpAtMs.set(nodeId, nowMs);
    this.arm();
  }

  /** The layouts changed: rows whose target no longer owns their key go to its current owners. */
  layoutChanged(): void {
    if (!this.started || this.stopped) return;
    const ownership = this.deps.ownership();
    if (ownership === undefined || !ownership.ready()) return;
    const changes = this.queue.retarget((keyHash) => ownership.writeOwners(ownership.partitionOf(keyHash)), this.monotonicMs());
    if (changes.del.length === 0) return;
    this.deps.counters.add('delivery_rows_retargeted', changes.del.length);
    this.deps.logger.info('pending deliveries re-targeted', { rows: changes.del.length, newRows: changes.put.length });
    void this.persist(opsOf(changes, []));
    this.arm();
  }

  stats(): DeliveryStats {
    return this.queue.stats(this.monotonicMs(), this.deps.wallClockMs());
  }

  /** Waits for the row writes issued so far (for a clean stop). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.queue.pendingRows > 0) this.deps.logger.info('stopping with deliveries pending: kept on disk, delivered after the next start', { rows: this.queue.pendingRows });
    await this.writing;
  }

  private limitText(): string {
    return `${this.deps.rowsMax ?? deliveryDefaults.rowsMax} rows, ${this.deps.bytesMax ?? deliveryDefaults.bytesMax} bytes`;
  }

  private persist(ops: readonly HintRowOp[]): Promise<void> {
    const write = this.deps.store.writeHints;
    if (ops.length === 0 || write === undefined) return this.writing;
    this.writing = this.writing.then(
      () => write.call(this.deps.store, ops),
    ).catch((error: unknown) => {
      // The rows stay in memory and are delivered while this process lives.
      this.deps.counters.add('delivery_persist_failed');
      this.deps.logger.warn('delivery rows not persisted', { error: errorText(error) });
    });
    return this.writing;
  }

  private arm(): void {
    if (this.stopped) return;
    const next = this.queue.nextDueMs();
    if (next === undefined || next >= this.timerAtMs) return;
    clearTimeout(this.timer);
    this.timerAtMs = next;
    this.timer = setTimeout(() => this.tick(), Math.max(0, next - this.monotonicMs()));
    this.timer.unref();
  }

  private tick(): void {
    this.timer = undefined;
    this.timerAtMs = Infinity;
    if (this.stopped) return;
    for (const batch of this.queue.due(this.monotonicMs())) {
      this.deps.counters.add(batchCounters[batch.cause]);
      const upAtMs = this.cameUpAtMs.get(batch.target);
      if (upAtMs !== undefined && batch.cause === 'connect') {
        this.cameUpAtMs.delete(batch.target);
        this.deps.logger.info('delivering on reconnect', { target: batch.target, rows: batch.rows.length, sinceUpMs: Math.round(this.monotonicMs() - upAtMs) });
      }
      void this.send(batch);
    }
    this.arm();
  }

  private async send(batch: DeliveryBatch): Promise<void> {
    const { target, rows } = batch;
    const ownership = this.deps.ownership();
    let outcomes: (ReplicateOutcome | undefined)[];
    if (ownership !== undefined && target === ownership.self) {
      const report = await this.deps.replica.applyRemote(rows.map((row) => row.entry), { outcomes: true }).catch(() => undefined);
      outcomes = rows.map((_, i) => {
        const outcome = report?.outcomes?.[i];
        return outcome === 'applied' ? 'applied' : outcome === 'stale' ? 'older' : undefined;
      });
    } else {
      const peerId = this.deps.peerIdOf(target);
      outcomes =
        peerId === undefined
          ? rows.map(() => undefined)
          : await Promise.all(rows.map((row) => this.deps.apply(peerId, row.entry).catch(() => undefined)));
    }
    if (this.stopped) return;
    const nowMs = this.monotonicMs();
    if (outcomes.every((outcome) => outcome === undefined)) {
      this.queue.failed(target, nowMs);
      this.deps.counters.add('delivery_batches_failed');
    } else {
      const changes = this.queue.answered(
        target,
        rows.map((row, i) => ({ keyHash: row.keyHash, version: row.entry.version, acked: outcomes[i] !== undefined && isAck(outcomes[i]) })),
        nowMs,
      );
      this.deps.counters.add('delivery_rows_acked', changes.del.length);
      void this.persist(opsOf(changes, []));
      if (outcomes.includes('not-owner')) this.layoutChanged();
    }
    this.arm();
  }
}

const batchCounters = {
  connect: 'delivery_batches_reconnect',
  backoff: 'delivery_batches_backoff',
  load: 'delivery_batches_load',
  new: 'delivery_batches_new',
  next: 'delivery_batches_next',
} as const satisfies Record<DeliveryCause, string>;

function opsOf(changes: RowChanges, ops: HintRowOp[]): HintRowOp[] {
  for (const row of changes.put) ops.push(encodeHintRow(row));
  for (const { target, keyHash } of changes.del) ops.push({ key: hintRowKey(target, keyHash) });
  return ops;
}
