/**
 * Which partitions may hold a tombstone older than a given HLC: so that tombstone GC reads only
 * the partitions it can collect from, not every row of the store at every run.
 *
 * Without it the collector scanned every partition it collects (full replication: all 256,
 * every row and value) at every run (`gcIntervalMs`, 10 s) whenever the node held any
 * tombstone, even one too young to collect: a full read of the store every 10 s, which grows
 * with the data (docs/measurements.md, "tombstone GC reads only what it can collect").
 *
 * Per partition, a lower bound on the HLC of the oldest tombstone it may hold:
 * - unknown (0: anything) until a scan of the whole partition has been recorded, or the
 *   replica's open knew it: an open that scans the store sees every tombstone, and a clean
 *   stop saves the bounds in its snapshot (replica-snapshot.ts, formats 2 and 3), so a start knows
 *   them either way; only a snapshot of format 1 (before this) leaves them unknown, and then
 *   the first run reads each partition once;
 * - every tombstone the replica makes durable lowers it (`noteTombstone`, from the commit that
 *   writes it: local deletes, remote writes, sync, deliveries, phase one, TTL sweeps all end
 *   there);
 * - a complete scan sets it to the oldest tombstone the scan left behind (`scanFinished`),
 *   lowered by any tombstone noted while the scan ran (the scan may have passed its key
 *   already). Rows deleted (GC, purge) are never noted: the bound stays low, which only costs
 *   a scan that finds less.
 * `mayHoldBelow(p, watermark)` is then false exactly when every tombstone of p is at or above
 * the watermark: nothing there to collect yet, so the run skips it.
 *
 * Only an over-estimate of what a partition holds is ever recorded, so a skip never misses a
 * collectable tombstone: the price of a wrong bound would be a tombstone kept, never data lost
 * (GC deletes only what its rounds plan). Pure: no I/O, no clock; 256 numbers.
 */
import { assert } from './errors.js';
import type { Hlc } from './hlc.js';
import { partitionCount, type PartitionId } from './placement.js';

/** Above every HLC (they are 64-bit): "this partition holds no tombstone". */
export const noTombstone: Hlc = 1n << 64n;
/** The bound of a partition no complete scan has been recorded for: it may hold anything. */
export const unknownBound: Hlc = 0n;

export class TombstoneBounds {
  /** Per partition: no tombstone it holds is older than this. */
  private readonly oldest: Hlc[];
  /** Per partition scan in progress: the oldest tombstone noted since it began. */
  private readonly notedDuringScan = new Map<PartitionId, Hlc>();

  /**
   * `known`: a bound per partition that holds for the store as it is now (from a scan of every
   * entry, or a snapshot the store vouches for); without it nothing is known.
   */
  constructor(known?: readonly Hlc[]) {
    assert(known === undefined || known.length === partitionCount, `${partitionCount} bounds, not ${known?.length}`);
    this.oldest = known === undefined ? new Array<Hlc>(partitionCount).fill(unknownBound) : [...known];
  }

  /** Every partition's bound (unknown partitions: 0n), to save with a snapshot. */
  bounds(): Hlc[] {
    return [...this.oldest];
  }

  /** A tombstone at `hlc` was made durable in `partition`. */
  noteTombstone(partition: PartitionId, hlc: Hlc): void {
    if (hlc < this.oldest[partition]!) this.oldest[partition] = hlc;
    const during = this.notedDuringScan.get(partition);
    if (during !== undefined && hlc < during) this.notedDuringScan.set(partition, hlc);
  }

  /** Whether `partition` may hold a tombstone older than `watermark` (a scan could collect something). */
  mayHoldBelow(partition: PartitionId, watermark: Hlc): boolean {
    return this.oldest[partition]! < watermark;
  }

  /** A scan of `partition` begins: tombstones noted from now on are kept through its result. */
  scanStarted(partition: PartitionId): void {
    if (!(partition >= 0 && partition < partitionCount)) assert(false, `partition ${partition} out of range`);
    this.notedDuringScan.set(partition, noTombstone);
  }

  /**
   * The scan of `partition` ended. `complete`: it read every row of the partition and
   * `oldestLeft` is the oldest tombstone it leaves behind (`noTombstone` if none); an
   * incomplete scan (stopped at a limit, failed) records nothing.
   */
  scanFinished(partition: PartitionId, complete: boolean, oldestLeft: Hlc): void {
    const during = this.notedDuringScan.get(partition);
    assert(during !== undefined, `scanFinished(${partition}) without scanStarted`);
    this.notedDuringScan.delete(partition);
    if (!complete) return;
    this.oldest[partition] = oldestLeft < during ? oldestLeft : during;
  }

  /** Partitions whose bound is known (from the open, or a complete scan since): for tests. */
  knownPartitions(): number {
    return this.oldest.filter((bound) => bound !== unknownBound).length;
  }
}
