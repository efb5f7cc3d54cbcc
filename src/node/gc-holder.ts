/**
 * Tombstone GC, the holder's side (docs/design-delivery-gc.md section 2): every node holds
 * rows, so every node keeps, per partition (the 256 partitions of placement.ts; under full
 * replication the same 256, so the code is one), the *collected floor*: the highest version
 * it collected there. They live in one meta row (`gc-collected-floors`, 256 u64s), written
 * before any row is deleted, so a crash between the two leaves rows (harmless), never a
 * deleted row without its floor.
 *
 * - `refuse(keyHash, version)`: the replica asks it for every remote entry of a key it does not
 *   hold (sync sessions, partition pulls, replicate and deliveries, read repair, gossip all
 *   go through Replica.applyRemote): at or below the floor it may be a collected key coming
 *   back from a stale node; refused and counted (`gc_refused`).
 * - `push` (phase one): the tombstones are applied as ordinary remote writes; acknowledged once
 *   durable, or stale (a newer version here, or refused by the floor: as good as held).
 * - `deleteIfUnchanged` (phase two): raise the floor to the highest version asked, persist it,
 *   then remove every row still exactly that tombstone through the delete path `ckv purge`
 *   uses (Replica.dropUnchanged: store rows, Merkle leaves, one batch, only if unchanged; the
 *   key filter is a Bloom filter and keeps the key). "Unchanged" is by version: a row holding
 *   that version as an expired TTL value not yet swept here is the same write, whose tombstone
 *   has that version (src/core/ttl.ts), so it goes too. Raising the floor for a row that changed
 *   is harmless: the collector asks only below the watermark, so no write at or below it can
 *   still be missing anywhere (only a collected key's stale copy is refused by it).
 */
import type { Entry, HashText } from '../core/entry.js';
import type { Hlc } from '../core/hlc.js';
import { writeBatchOpsMax } from '../core/limits.js';
import { partitionCount, partitionOfHash, type PartitionId } from '../core/placement.js';
import type { Replica } from '../core/replica.js';
import type { Store } from '../core/store.js';
import { CollectedFloors } from '../core/tombstone-gc.js';
import type { Counters } from '../util/counters.js';
import type { FloorAnswer, GcHandler, GcTombstone } from '../net/gc-protocol.js';

const floorsMetaName = 'gc-collected-floors';

export class GcHolder implements GcHandler {
  readonly floors = new CollectedFloors();
  /** Floor row writes, one at a time, in order. */
  private floorsWrite: Promise<void> = Promise.resolve();
  /** Rows this node deleted by GC since it started. */
  collected = 0;

  constructor(
    private readonly deps: {
      store: Pick<Store, 'getMeta' | 'putMeta'>;
      replica: () => Replica;
      counters: Counters;
      /** This node's floor (./gc-floor.ts), answered to collectors. */
      floor: () => FloorAnswer;
    },
  ) {}

  /** Restores the persisted floors (before the replica takes remote entries). */
  async load(): Promise<void> {
    const bytes = await this.deps.store.getMeta(floorsMetaName);
    if (bytes === undefined || bytes.byteLength !== partitionCount * 8) return;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let p = 0; p < partitionCount; p++) this.floors.raise(p, view.getBigUint64(p * 8));
  }

  /** Replica's refuseResurrection: a remote entry of an absent key at or below its partition's floor. */
  refuse(keyHash: HashText, hlc: Hlc): boolean {
    if (!this.floors.refuseResurrection(partitionOfHash(keyHash), hlc)) return false;
    this.deps.counters.add('gc_refused');
    return true;
  }

  floor(): FloorAnswer {
    return this.deps.floor();
  }

  async push(_partition: PartitionId, tombstones: readonly Entry[]): Promise<boolean> {
    const report = await this.deps.replica().applyRemote(tombstones);
    this.deps.counters.add('gc_pushed_received', tombstones.length);
    return report.applied + report.stale === tombstones.length;
  }

  async deleteIfUnchanged(partition: PartitionId, tombstones: readonly GcTombstone[]): Promise<number> {
    let highest: Hlc = 0n;
    for (const t of tombstones) if (t.version.hlc > highest) highest = t.version.hlc;
    if (highest > this.floors.floor(partition)) {
      this.floors.raise(partition, highest);
      await this.persist();
    }
    let deleted = 0;
    for (let i = 0; i < tombstones.length; i += writeBatchOpsMax) {
      const report = await this.deps.replica().dropUnchanged(tombstones.slice(i, i + writeBatchOpsMax));
      deleted += report.dropped;
    }
    this.collected += deleted;
    this.deps.counters.add('gc_collected', deleted);
    return deleted;
  }

  /** Partitions with a floor above zero. */
  partitionsWithFloor(): number {
    return this.floors.entries().filter(([, floor]) => floor > 0n).length;
  }

  private persist(): Promise<void> {
    const bytes = new Uint8Array(partitionCount * 8);
    const view = new DataView(bytes.buffer);
    for (const [p, floor] of this.floors.entries()) view.setBigUint64(p * 8, floor);
    this.floorsWrite = this.floorsWrite.catch(() => undefined).then(() => this.deps.store.putMeta(floorsMetaName, bytes));
    return this.floorsWrite;
  }
}
