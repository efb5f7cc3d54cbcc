/**
 * The checkpointer: a running node saves the snapshot a clean stop saves (the Merkle tree, key
 * filter and counts: replica-snapshot.ts) once it has been quiet, so that a crash or a kill
 * that comes before its next write starts from it instead of scanning every entry (100k keys:
 * ~220 ms to serving against ~520 ms; the scan grows with the keys). When: the pure schedule
 * in src/core/checkpoint-schedule.ts. How: Replica.checkpoint, alone in its turn of the write
 * queue, and the store forgets the snapshot at the next write (Store.saveSnapshot). Then,
 * with writes going on, LevelDB's memtable is written to a table (Store.flush), so that start
 * has no log to replay either.
 *
 * A store of fewer than checkpointEntriesHeldMin entries is not checkpointed (its scan costs a
 * few ms). A failed save costs only that speed: logged, counted (ckv_checkpoints_total{result=
 * "failed"}) and tried again later. Its timer is unref'd; it looks at the replica's change count
 * at least once a second (every quarter of the quiet time while the count moves).
 */
import { CheckpointSchedule, type CheckpointScheduleOptions } from '../core/checkpoint-schedule.js';
import { checkpointEntriesHeldMin } from '../core/limits.js';
import { ReplicaClosedError, type Replica } from '../core/replica.js';
import type { Counters } from '../util/counters.js';
import { errorText } from '../util/error-text.js';
import type { Logger } from '../util/logger.js';

/** The longest wait between two looks at the replica's change count (ms): a look is a compare. */
const lookIntervalMsMax = 1_000;

export interface CheckpointerOptions {
  replica: Replica;
  counters: Counters;
  logger: Logger;
  /** Monotonic milliseconds. Default performance.now. */
  nowMs?: () => number;
  /** The schedule's options (tests shorten them). */
  schedule?: CheckpointScheduleOptions;
  /** After a save, outside the write queue: the store's memory to its files (Store.flush). */
  flush?: () => Promise<void>;
}

export class Checkpointer {
  private readonly schedule: CheckpointSchedule;
  private readonly nowMs: () => number;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> | undefined;
  private started = false;
  private stopped = false;

  constructor(private readonly options: CheckpointerOptions) {
    this.schedule = new CheckpointSchedule(options.schedule);
    this.nowMs = options.nowMs ?? (() => performance.now());
  }

  /** Idempotent: one look loop, however often it is called (even during a save). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.look();
  }

  /** Idempotent: no save starts after it resolves, and one under way has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.saving;
  }

  private look(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const { replica } = this.options;
    const now = this.nowMs();
    // A small store is scanned at a start in a few ms: no save (checkpointEntriesHeldMin).
    const small = replica.entryCount < checkpointEntriesHeldMin;
    if (!small && this.schedule.due(now, replica.storeChangeCount)) {
      this.saving = this.save().finally(() => {
        this.saving = undefined;
        this.look();
      });
      return;
    }
    const wakeAtMs = small ? now + lookIntervalMsMax : this.schedule.wakeAtMs(now, replica.storeChangeCount);
    const waitMs = Math.min(lookIntervalMsMax, Math.max(10, wakeAtMs - now));
    this.timer = setTimeout(() => this.look(), waitMs).unref();
  }

  private async save(): Promise<void> {
    const { replica, counters, logger } = this.options;
    const startedMs = this.nowMs();
    try {
      const { saved, changes } = await replica.checkpoint();
      this.schedule.saved(this.nowMs(), changes);
      if (saved) {
        const savedMs = Math.round(this.nowMs() - startedMs);
        // Writes go on meanwhile; a flush that fails only leaves a start its log to replay.
        await this.options.flush?.().catch(() => undefined);
        counters.add('checkpoints_saved');
        logger.info('checkpoint saved', { keys: replica.entryCount, ms: savedMs, flushMs: Math.round(this.nowMs() - startedMs - savedMs) });
      }
    } catch (error) {
      this.schedule.failed(this.nowMs());
      if (error instanceof ReplicaClosedError || this.stopped) return;
      counters.add('checkpoints_failed');
      logger.warn('checkpoint not saved: a start after a crash scans', { error: errorText(error) });
    }
  }
}
