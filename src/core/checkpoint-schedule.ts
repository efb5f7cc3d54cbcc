/**
 * When a running node saves a checkpoint (Replica.checkpoint): the snapshot a clean stop
 * saves, written while the node runs, so a crash or kill that comes before the next write
 * starts from it instead of scanning every entry (replica-scan.ts).
 *
 * A checkpoint is saved once the node has changed nothing for `quietMs` (a save in a pause
 * inside a burst would be stale at the burst's next write, and holds the write queue for its
 * duration), and only if the store changed since the last one: at once after a start (after
 * a scan none is current; after a start from the snapshot it still is, until the first
 * write, and this save rewrites it: a few ms once a start, left so), or after `entriesMin` changed
 * entries; fewer wait until `intervalMs` after the last save, so a trickle of writes does not
 * rewrite the snapshot every second. A save that fails is tried again after `intervalMs`.
 *
 * The quiet is timed from a look that saw the count unchanged, not from the look that saw it
 * move (as watermark-refresh.ts, for the same reason: a process the machine did not run for
 * a while saw nothing change over that gap only because it read nothing).
 *
 * Pure: the caller passes the time and the replica's change count (Replica.storeChangeCount,
 * entries written or removed since open) and asks `wakeAtMs` when to look next.
 */
import { checkpointEntriesMin, checkpointIntervalMs, checkpointQuietMs } from './limits.js';

export interface CheckpointScheduleOptions {
  /** Changed nothing for this long before a save. Default checkpointQuietMs. */
  quietMs?: number;
  /** Entries changed since the last save that justify a save as soon as the node is quiet. Default checkpointEntriesMin. */
  entriesMin?: number;
  /** Fewer changes wait until this long after the last save (or failure). Default checkpointIntervalMs. */
  intervalMs?: number;
}

export class CheckpointSchedule {
  readonly quietMs: number;
  readonly entriesMin: number;
  readonly intervalMs: number;
  private changesSeen = -1;
  /** The first look that saw the count unchanged since it last moved (Infinity: none yet). */
  private quietSinceMs = Number.POSITIVE_INFINITY;
  /** The change count of the last save; undefined: none since the start. */
  private savedChanges: number | undefined;
  private savedAtMs = Number.NEGATIVE_INFINITY;
  private failedAtMs = Number.NEGATIVE_INFINITY;
  private saving = false;

  constructor(options: CheckpointScheduleOptions = {}) {
    this.quietMs = options.quietMs ?? checkpointQuietMs;
    this.entriesMin = options.entriesMin ?? checkpointEntriesMin;
    this.intervalMs = options.intervalMs ?? checkpointIntervalMs;
  }

  /** Whether to save now; if so the caller saves, then calls `saved` or `failed`. */
  due(nowMs: number, changes: number): boolean {
    this.look(nowMs, changes);
    if (this.saving || nowMs < this.dueAtMs(changes)) return false;
    this.saving = true;
    return true;
  }

  /** The save started by `due` holds the store as of `changes`. */
  saved(nowMs: number, changes: number): void {
    this.saving = false;
    this.savedChanges = changes;
    this.savedAtMs = nowMs;
  }

  failed(nowMs: number): void {
    this.saving = false;
    this.failedAtMs = nowMs;
  }

  /** When to call `due` next (Infinity: nothing to save until the count moves). */
  wakeAtMs(nowMs: number, changes: number): number {
    this.look(nowMs, changes);
    if (this.saving) return Number.POSITIVE_INFINITY;
    // Moving (or not looked at twice yet): look again soon, so the quiet starts within a
    // quarter of quietMs of the last change (a save then comes 1.25-1.5 x quietMs after it).
    if (this.quietSinceMs === Number.POSITIVE_INFINITY) return nowMs + this.quietMs / 4;
    return Math.max(nowMs, this.dueAtMs(changes));
  }

  private dueAtMs(changes: number): number {
    if (changes === this.savedChanges) return Number.POSITIVE_INFINITY;
    const big = this.savedChanges === undefined || changes - this.savedChanges >= this.entriesMin;
    const notBeforeMs = (big ? this.failedAtMs : Math.max(this.savedAtMs, this.failedAtMs)) + this.intervalMs;
    return Math.max(this.quietSinceMs + this.quietMs, notBeforeMs);
  }

  private look(nowMs: number, changes: number): void {
    if (changes !== this.changesSeen) {
      this.changesSeen = changes;
      this.quietSinceMs = Number.POSITIVE_INFINITY;
    } else if (this.quietSinceMs === Number.POSITIVE_INFINITY) {
      this.quietSinceMs = nowMs;
    }
  }
}
