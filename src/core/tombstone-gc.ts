/**
 * Tombstone GC by acknowledgement (docs/design-delivery-gc.md section 2): a pure state machine
 * the collector of a partition runs, and the per-partition `collected floor` every holder keeps.
 *
 * A tombstone T (key k, version vT) of partition p may be removed when
 * 1. vT < the cluster watermark (gc-watermark.ts): no write older than T can still arrive;
 * 2. every holder of p has T. Holders are the owners of p in every active layout plus nodes
 *    still offloading p, passed in. The collector (the first owner, by rendezvous rank, in the
 *    newest layout; the runtime decides who it is) starts a *round*: phase one pushes the batch
 *    to every holder (`phaseOne`), each applies it as an ordinary write and acknowledges
 *    (`acknowledge`). Only when every holder *at that moment* has acknowledged (`phaseTwo`,
 *    given the current holders: a layout change that added a holder makes the round wait for
 *    it, or the runtime abandons it) does phase two go out: each holder deletes k only if its
 *    row is still exactly T (`deleteIfUnchanged`) and raises its collected floor.
 *
 * The collected floor of a partition is the highest version a holder collected in it.
 * `refuseResurrection(p, v)`: sync, deliveries and read repair must not create a row for an
 * absent key from a version at or below it, so a stale node cannot bring a collected key back.
 *
 * Bounded: a round carries at most `batchMax` tombstones; at most `roundsMax` rounds are open
 * (further `plan` calls return nothing until one finishes or is abandoned); floors are one
 * number per partition. No timer decides anything: a round whose holder never answers stays
 * open until the runtime abandons it (and may plan again later).
 *
 * Pure: no I/O, no clock; the store's rows are passed in and the deletes are returned.
 */
import { assert } from './errors.js';
import type { Hlc } from './hlc.js';
import type { PartitionId } from './placement.js';

/** A tombstone a collector found in its store: a key (as text, e.g. hex) and its version. */
export interface TombstoneRef {
  readonly key: string;
  readonly version: Hlc;
}

/** Tombstones per round, and rounds open at once, by default. */
export const gcBatchMaxDefault = 256;
export const gcRoundsMaxDefault = 4;
/** The largest batch a round may carry (a push or delete frame holds at most this many). */
export const gcBatchMaxLimit = 1024;

export interface TombstoneCollectorOptions {
  /**
   * Tombstones in one round (one phase-one push and one phase-two request per holder). Larger
   * batches mean fewer messages but larger frames and more work lost when a round is abandoned.
   * Default gcBatchMaxDefault.
   */
  readonly batchMax?: number;
  /** Rounds open at once: bounds the collector's memory and the holders' pending work. Default gcRoundsMaxDefault. */
  readonly roundsMax?: number;
}

/** One round: a batch of one partition's tombstones and the holders that acknowledged phase one. */
export interface GcRound {
  readonly id: number;
  readonly partition: PartitionId;
  readonly tombstones: readonly TombstoneRef[];
  /** The holders when the round started (phase one goes to these). */
  readonly holders: readonly string[];
}

/** A phase-two request: `holder` deletes each key of `tombstones` if its row is still that tombstone. */
export interface DeleteIfUnchanged {
  readonly holder: string;
  readonly partition: PartitionId;
  readonly tombstones: readonly TombstoneRef[];
}

/** The holders of a partition: its owners in every active layout plus nodes still offloading it (sorted, unique). */
export function gcHolders(activeOwners: readonly (readonly string[])[], offloading: readonly string[]): string[] {
  return [...new Set([...activeOwners.flat(), ...offloading])].sort();
}

/** The collector's side: plans rounds and decides when phase two may go out. */
export class TombstoneCollector {
  private readonly batchMax: number;
  private readonly roundsMax: number;
  private readonly rounds = new Map<number, { round: GcRound; acked: Set<string> }>();
  private nextId = 1;

  constructor(options: TombstoneCollectorOptions = {}) {
    this.batchMax = options.batchMax ?? gcBatchMaxDefault;
    this.roundsMax = options.roundsMax ?? gcRoundsMaxDefault;
    assert(Number.isInteger(this.batchMax) && this.batchMax > 0, `batchMax ${this.batchMax}`);
    assert(Number.isInteger(this.roundsMax) && this.roundsMax > 0, `roundsMax ${this.roundsMax}`);
  }

  /** The tombstones of `candidates` that may be collected now: strictly below `watermark`, at most batchMax, oldest first. */
  collectable(candidates: readonly TombstoneRef[], watermark: Hlc | undefined): TombstoneRef[] {
    if (watermark === undefined) return [];
    return candidates
      .filter((t) => t.version < watermark && !this.inRound(t.key))
      .sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .slice(0, this.batchMax);
  }

  /**
   * Starts a round over `partition`'s collectable tombstones (phase one: push each to every
   * holder). Undefined when nothing is collectable, no holders are known, or roundsMax are open.
   */
  plan(partition: PartitionId, candidates: readonly TombstoneRef[], watermark: Hlc | undefined, holders: readonly string[]): GcRound | undefined {
    if (this.rounds.size >= this.roundsMax || holders.length === 0) return undefined;
    const tombstones = this.collectable(candidates, watermark);
    if (tombstones.length === 0) return undefined;
    const round: GcRound = { id: this.nextId++, partition, tombstones, holders: [...new Set(holders)].sort() };
    this.rounds.set(round.id, { round, acked: new Set() });
    return round;
  }

  /** `holder` applied round `id`'s tombstones durably (phase one). Unknown rounds (finished, abandoned) are ignored. */
  acknowledge(id: number, holder: string): void {
    this.rounds.get(id)?.acked.add(holder);
  }

  /** The holders of round `id` (among `holders`, the current ones) that have not acknowledged phase one. */
  missing(id: number, holders: readonly string[]): string[] {
    const open = this.rounds.get(id);
    if (open === undefined) return [];
    return [...new Set(holders)].filter((h) => !open.acked.has(h)).sort();
  }

  /**
   * Phase two for round `id`, once every current holder (`holders`: recomputed now, so a
   * holder added by a layout change since the round started must have acknowledged too) has
   * acknowledged phase one; the round is then finished. Undefined while one is missing.
   */
  phaseTwo(id: number, holders: readonly string[]): DeleteIfUnchanged[] | undefined {
    const open = this.rounds.get(id);
    if (open === undefined || holders.length === 0 || this.missing(id, holders).length > 0) return undefined;
    this.rounds.delete(id);
    const { partition, tombstones } = open.round;
    return [...new Set(holders)].sort().map((holder) => ({ holder, partition, tombstones }));
  }

  /** Gives up round `id` (a holder removed, the collector no longer collector); its tombstones may be planned again. */
  abandon(id: number): void {
    this.rounds.delete(id);
  }

  /** The open rounds (for status and for the runtime to resend phase one). */
  open(): GcRound[] {
    return [...this.rounds.values()].map((r) => r.round);
  }

  private inRound(key: string): boolean {
    for (const { round } of this.rounds.values()) if (round.tombstones.some((t) => t.key === key)) return true;
    return false;
  }
}

/** What a holder's store has for a key: absent, a live value, or a tombstone, with its version. */
export type RowState = { readonly kind: 'absent' } | { readonly kind: 'value' | 'tombstone'; readonly version: Hlc };

/** The holder's side: per-partition collected floors and the phase-two decision. */
export class CollectedFloors {
  private readonly floors = new Map<PartitionId, Hlc>();

  /** The highest version collected in `partition` (0 when none). */
  floor(partition: PartitionId): Hlc {
    return this.floors.get(partition) ?? 0n;
  }

  /** Raises `partition`'s floor to `version` (restoring persisted floors at start, or after a delete). */
  raise(partition: PartitionId, version: Hlc): void {
    if (version > this.floor(partition)) this.floors.set(partition, version);
  }

  /**
   * Phase two at a holder: the keys of `request` whose row (`row(key)`) is still exactly the
   * tombstone, to delete (store, Merkle tree, key filter) in one batch; the floor is raised to
   * the highest of them. A row that changed (a newer write, or already gone) is left alone.
   */
  deleteIfUnchanged(partition: PartitionId, tombstones: readonly TombstoneRef[], row: (key: string) => RowState): string[] {
    const deleted: string[] = [];
    for (const t of tombstones) {
      const current = row(t.key);
      if (current.kind !== 'tombstone' || current.version !== t.version) continue;
      deleted.push(t.key);
      this.raise(partition, t.version);
    }
    return deleted;
  }

  /**
   * Whether a row for an absent key at `version` must be refused in `partition` (sync,
   * delivery, read repair): at or below the collected floor it may be a collected key coming
   * back from a stale node.
   */
  refuseResurrection(partition: PartitionId, version: Hlc): boolean {
    return version <= this.floor(partition);
  }

  /** Partitions with a floor (for persistence; bounded by the partition count). */
  entries(): [PartitionId, Hlc][] {
    return [...this.floors.entries()].sort((a, b) => a[0] - b[0]);
  }
}
