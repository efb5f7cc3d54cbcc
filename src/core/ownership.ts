/**
 * Ownership: the one question every part of a partitioned node asks — who holds the keys of a
 * partition right now — answered from the layout history (layout-history.ts) for this node.
 * The write path (forward a write to its owners, count acks), reads (ask the owners), gossip
 * (tell only owners), anti-entropy (sync only the partitions two nodes share, pull the
 * partitions a new layout gives us) and purge (drop what we no longer own) all ask this, never
 * the history directly, so the rules of a transition live in one place:
 *
 * - while several layouts are active, a write goes to the owners in every one of them
 *   (`writeOwners`), and it is acknowledged only when each active layout's owner set has the
 *   acks the consistency level asks of it (`writeSets` with `quorumMet`): a write acked during a
 *   change is then on a quorum of the old owners (who serve reads until the new ones synced)
 *   and of the new ones (who serve them after);
 * - reads go to `readOwners` (the newest layout whose owners all synced the partition);
 * - a node holds a partition (stores its keys, syncs it) if it owns it in any active layout;
 * - a new owner pulls a partition (`pulls`) from its owners in the older layouts, and says so
 *   (`pulled`) only after a session with each of them succeeded: a write acked with
 *   consistency `one` may be on one old owner only;
 * - periodic anti-entropy between two nodes covers the partitions they share except those
 *   either of them is still gaining (`gaining`: a new owner that has not acknowledged them):
 *   those come by the pull loop, whole from one source then by differences from the others,
 *   instead of from every co-owner's periodic session at once (K times the bytes).
 *
 * Pure: no I/O, no clock. The runtime (src/net/) owns the history, persists and gossips it
 * after `onChange` fires, and constructs this over it.
 */
import { assert } from './errors.js';
import type { HashText } from './entry.js';
import { bitmapHas, partitionBitmap, type ClusterLayout } from './layout.js';
import type { LayoutHistory, LayoutOutcome } from './layout-history.js';
import { assertPartition, partitionCount, partitionOfHash, type PartitionId } from './placement.js';

/**
 * How many owners must acknowledge a write (`put --consistency`), or answer a read
 * (`get --from`), in each active layout. Only append: the values are part of the protocol.
 */
export const consistencyLevels = ['one', 'quorum', 'all'] as const;
export type Consistency = (typeof consistencyLevels)[number];

/** The default consistency of writes in partitioned mode. */
export const writeConsistencyDefault: Consistency = 'quorum';

/** Acks needed from a set of `owners` owners at `consistency`: 1, a majority, or all. */
export function acksNeeded(consistency: Consistency, owners: number): number {
  assert(Number.isInteger(owners) && owners >= 0, `owner count ${owners}`);
  if (owners === 0) return 0;
  if (consistency === 'one') return 1;
  if (consistency === 'all') return owners;
  return Math.floor(owners / 2) + 1;
}

/** Whether the nodes in `acked` meet `consistency` in every owner set of `sets`. */
export function quorumMet(sets: readonly (readonly string[])[], acked: ReadonlySet<string>, consistency: Consistency): boolean {
  return sets.every((owners) => owners.filter((nodeId) => acked.has(nodeId)).length >= acksNeeded(consistency, owners.length));
}

/** A partition this node must pull for a layout it is a new owner in, and from whom. */
export interface PartitionPull {
  readonly version: number;
  readonly partition: PartitionId;
  /**
   * Its owners in the older active layouts, this node excluded (sorted); empty when this node
   * owned it in every older layout (it has it already: acknowledge at once).
   */
  readonly sources: readonly string[];
  /**
   * The sources that are no longer nodes of the newest layout (removed, or leaving). A leaving
   * node hands its partitions off, so it is waited for while it is up; a removed node that is
   * down never answers, and waiting for it would block the change that removed it for good:
   * the runtime skips a departed source that is not up (the simulator does the same).
   */
  readonly departed: readonly string[];
}

/** What the partitioned node asks (the full-replication node never builds one). */
export interface Ownership {
  /** This node's id. */
  readonly self: string;
  /** Whether any layout is known yet (before the first, this node owns nothing). */
  ready(): boolean;
  /** The newest layout (what placement moves toward), if any. */
  newest(): ClusterLayout | undefined;
  partitionOf(keyHash: HashText): PartitionId;
  /** Node ids a write of `partition` goes to: its owners in every active layout, sorted. */
  writeOwners(partition: PartitionId): readonly string[];
  /** Its owners in each active layout, oldest first: the sets `quorumMet` counts acks in. */
  writeSets(partition: PartitionId): readonly (readonly string[])[];
  /** Node ids a read of `partition` asks (highest rendezvous rank first). */
  readOwners(partition: PartitionId): readonly string[];
  /** Whether this node stores `partition` (it owns it in some active layout). */
  holds(partition: PartitionId): boolean;
  /** The partitions this node holds, as a bitmap (bit p & 7 of byte p >> 3). */
  heldPartitions(): Uint8Array;
  /** The partitions both this node and `nodeId` hold, as a bitmap: what a session between them covers. */
  sharedPartitions(nodeId: string): Uint8Array;
  /**
   * The partitions node `nodeId` is gaining, as a bitmap: it owns them in a newer active layout
   * without owning them in every older one, and has not acknowledged them there (this node's
   * own acks, or what `nodeId`'s gossiped acks said). What the pull loop brings to a new owner.
   */
  gaining(nodeId: string): Uint8Array;
  /**
   * What a periodic anti-entropy session with `nodeId` covers: the partitions both hold that
   * neither is gaining (the initiator asks for these). A responder serves all it holds, gaining
   * or not: two nodes can each gain a partition the other is a source of, and neither would
   * finish its pull if a partition being gained were not served.
   */
  settledSharedPartitions(nodeId: string): Uint8Array;
  /** What this node must still pull (only for layouts whose sync may start). */
  pulls(): PartitionPull[];
  /**
   * The nodes a change waits for before its sync may start: while several layouts are active
   * and the newest one's sync may not start, its nodes that have not acknowledged it (sorted).
   * A node that is up acknowledges soon; one that is down holds the change until it returns
   * or an operator removes it (a newer layout without it), which the status's `blockedBy` tells.
   */
  awaitingAcks(): string[];
  /** This node now holds `partitions` of layout `version` (each pulled from all its sources). */
  pulled(version: number, partitions: Iterable<PartitionId>): void;
}

export interface LayoutOwnershipOptions {
  /** Told of every change the history made through this view (persist and gossip it). */
  onChange?: (outcome: LayoutOutcome) => void;
}

/** Ownership over a LayoutHistory (the production and simulator implementation). */
export class LayoutOwnership implements Ownership {
  readonly self: string;

  constructor(
    readonly history: LayoutHistory,
    private readonly options: LayoutOwnershipOptions = {},
  ) {
    this.self = history.self;
  }

  ready(): boolean {
    return this.history.newest() !== undefined;
  }

  newest(): ClusterLayout | undefined {
    return this.history.newest();
  }

  partitionOf(keyHash: HashText): PartitionId {
    return partitionOfHash(keyHash);
  }

  writeOwners(partition: PartitionId): readonly string[] {
    return this.history.writeOwners(partition);
  }

  writeSets(partition: PartitionId): readonly (readonly string[])[] {
    assertPartition(partition);
    return this.history.active().map((layout) => this.history.placement.ownersOf(partition, layout));
  }

  readOwners(partition: PartitionId): readonly string[] {
    return this.history.readOwners(partition);
  }

  holds(partition: PartitionId): boolean {
    return this.writeOwners(partition).includes(this.self);
  }

  heldPartitions(): Uint8Array {
    const held: PartitionId[] = [];
    for (let p = 0; p < partitionCount; p++) if (this.holds(p)) held.push(p);
    return partitionBitmap(held);
  }

  sharedPartitions(nodeId: string): Uint8Array {
    const shared: PartitionId[] = [];
    for (let p = 0; p < partitionCount; p++) {
      const owners = this.writeOwners(p);
      if (owners.includes(this.self) && owners.includes(nodeId)) shared.push(p);
    }
    return partitionBitmap(shared);
  }

  gaining(nodeId: string): Uint8Array {
    const active = this.history.active();
    const gaining: PartitionId[] = [];
    for (const [index, layout] of active.entries()) {
      if (index === 0 || !layout.nodes.includes(nodeId)) continue;
      const ack = this.history.ackOf(layout.version, nodeId);
      for (let p = 0; p < partitionCount; p++) {
        if (!this.history.placement.ownersOf(p, layout).includes(nodeId) || (ack && bitmapHas(ack.partitions, p))) continue;
        const continuing = active.slice(0, index).every((older) => this.history.placement.ownersOf(p, older).includes(nodeId));
        if (!continuing) gaining.push(p);
      }
    }
    return partitionBitmap(gaining);
  }

  settledSharedPartitions(nodeId: string): Uint8Array {
    const shared = this.sharedPartitions(nodeId);
    if (this.history.active().length < 2) return shared;
    const mine = this.gaining(this.self);
    const theirs = this.gaining(nodeId);
    for (let byte = 0; byte < shared.length; byte++) shared[byte]! &= ~(mine[byte]! | theirs[byte]!);
    return shared;
  }

  pulls(): PartitionPull[] {
    const active = this.history.active();
    const pulls: PartitionPull[] = [];
    for (const [index, layout] of active.entries()) {
      if (index === 0 || !this.history.syncMayStart(layout.version)) continue;
      for (const partition of this.history.unsyncedPartitions(layout.version)) {
        const older = active.slice(0, index).map((l) => this.history.placement.ownersOf(partition, l));
        // An owner in every older layout already has the partition: nothing to pull.
        const continuing = older.every((owners) => owners.includes(this.self));
        const sources = new Set<string>();
        if (!continuing) for (const owners of older) for (const nodeId of owners) if (nodeId !== this.self) sources.add(nodeId);
        const newestNodes = active[active.length - 1]!.nodes;
        const sorted = [...sources].sort();
        pulls.push({ version: layout.version, partition, sources: sorted, departed: sorted.filter((nodeId) => !newestNodes.includes(nodeId)) });
      }
    }
    return pulls;
  }

  awaitingAcks(): string[] {
    const active = this.history.active();
    const newest = active[active.length - 1];
    // One layout is no change. An older layout that waits counts for nothing once a newer one
    // does not (a dead node removed by the newer one): only the newest layout's wait holds it.
    if (active.length < 2 || newest === undefined || this.history.syncMayStart(newest.version)) return [];
    return newest.nodes.filter((nodeId) => this.history.ackOf(newest.version, nodeId) === undefined).sort();
  }

  pulled(version: number, partitions: Iterable<PartitionId>): void {
    const outcome = this.history.acknowledge(version, partitions);
    if (outcome.changed || outcome.retired.length > 0 || outcome.conflicts.length > 0) this.options.onChange?.(outcome);
  }
}

/** Whether bitmap `bitmap` names `partition` (re-exported for callers of this module). */
export function sharesPartition(bitmap: Uint8Array, partition: PartitionId): boolean {
  return bitmapHas(bitmap, partition);
}
