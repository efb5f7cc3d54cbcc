/**
 * Tombstone GC, the collector's loop (docs/design-delivery-gc.md section 2). One per node,
 * every `gcIntervalMs` (and on `ckv gc --run`), one run at a time:
 *
 * 1. Watermark: every member of the view (this node included) is asked its floor
 *    (./gc-floor.ts, over the gc protocol); the answers feed a FloorBook made for this run
 *    (only answers heard now count: a member that does not answer, or whose floor does not
 *    cover every member this node knows, holds the watermark back entirely). The watermark is
 *    the minimum; `holdsBack` names who sets it.
 * 2. For each partition this node collects (full replication: every partition, on the member
 *    with the smallest node id, which is a holder of everything, so when it is down nothing
 *    could be collected anyway; partitioned: the first owner of the newest layout once no
 *    pull is left), the partition's tombstones below the watermark are read from the store
 *    (a prefix scan of the partition; a partition-less store with no tombstone is skipped)
 *    and TombstoneCollector plans a round of at most `gcBatchMax`. Only partitions that may
 *    hold a tombstone below the watermark are read (the replica's TombstoneBounds, recorded
 *    by the previous read of the partition and lowered by every tombstone stored since): a
 *    store of live keys with a few young tombstones is not read in full at every run.
 * 3. Phase one: the round's tombstones are pushed to every holder (this node's own holder is
 *    called directly); each acknowledges once they are durable there. Phase two only if every
 *    *current* holder acknowledged (TombstoneCollector.phaseTwo; else the round is abandoned
 *    and planned again next run): delete-if-unchanged to every holder.
 *
 * A holder that missed phase two keeps its tombstone; so that it does not stay forever (the
 * collector no longer has the key to plan it), every other holder also collects its own
 * tombstones below the watermark, but only every `gcBackupEvery`-th run (the collector goes
 * first). Rounds from two collectors on one key are harmless: phase one is an ordinary write
 * (refused by a floor that already collected it, which counts as held), phase two deletes only
 * an unchanged row.
 *
 * Bounded: at most `gcRoundsPerRunMax` rounds a run, `gcBatchMax` tombstones a round, one
 * partition's candidates in memory at a time (at most gcCandidatesMax kept while scanning).
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { versionToText, type Version } from '../core/entry.js';
import { FloorBook } from '../core/gc-watermark.js';
import { hlcWallMs, type Hlc } from '../core/hlc.js';
import { partitionCount, type PartitionId } from '../core/placement.js';
import type { Replica } from '../core/replica.js';
import { noTombstone } from '../core/tombstone-bounds.js';
import { TombstoneCollector, type TombstoneRef } from '../core/tombstone-gc.js';
import type { GcProtocol, GcTombstone } from '../net/gc-protocol.js';
import type { Counters } from '../util/counters.js';
import { errorText } from '../util/error-text.js';
import type { Logger } from '../util/logger.js';
import type { GcHolder } from './gc-holder.js';

/** Rounds one run starts at most (the rest wait for the next run). */
export const gcRoundsPerRunMax = 64;
/** A non-collector holder collects its own leftover tombstones every this many runs. */
export const gcBackupEvery = 5;
/** Candidates kept while scanning one partition (the oldest batchMax of them are planned). */
const gcCandidatesMax = 4096;

/** Who holds and who collects, now (mode-specific; built by the node). */
export interface GcView {
  /** The members whose floors make the watermark (this node included). */
  readonly members: readonly string[];
  /** Full replication: a floor counts only if it covers every member of `members`. */
  readonly coverMembers: boolean;
  /** The holders of `partition` (this node included if it holds it). */
  holders(partition: PartitionId): readonly string[];
  /** Whether this node collects `partition` first ('primary'), as a backup, or not at all. */
  role(partition: PartitionId): 'primary' | 'backup' | undefined;
  /** The primary collector (status): full replication's smallest id, or undefined (per partition). */
  readonly collector: string | undefined;
  /** Full replication: members a peer named that this node did not know (kept from now on). */
  learn?: (nodeIds: readonly string[]) => void;
  /** Resolves once the view's member set is durable (a run starts only then). */
  durable?: () => Promise<void>;
}

export interface GcRunReport {
  watermark: Hlc | undefined;
  holdsBack: string | undefined;
  /** Tombstones below the watermark found in the partitions scanned. */
  collectable: number;
  /** Partitions read this run (the others held no tombstone below the watermark, or none at all). */
  partitionsScanned: number;
  rounds: number;
  roundsAbandoned: number;
  /** Rows deleted by this run's phase two, on every holder. */
  deleted: number;
  /** Why the run stopped early or a holder failed, if it did. */
  errors: string[];
}

export class GcCollector {
  private readonly core: TombstoneCollector;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<GcRunReport> | undefined;
  private runs = 0;
  private stopped = false;
  /** The last run's report and when it ended (wall ms). */
  last: { report: GcRunReport; atMs: number } | undefined;
  /** Rows deleted by rounds this node ran, on every holder, since it started. */
  deletedTotal = 0;

  constructor(
    private readonly deps: {
      selfId: string;
      replica: Replica;
      holder: GcHolder;
      protocol: GcProtocol;
      view: () => GcView | undefined;
      peerIdOf: (nodeId: string) => string | undefined;
      counters: Counters;
      logger: Logger;
      wallClockMs: () => number;
      intervalMs: number;
      batchMax: number;
    },
  ) {
    this.core = new TombstoneCollector({ batchMax: deps.batchMax });
  }

  start(): void {
    if (this.deps.intervalMs <= 0) return;
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  openRounds(): number {
    return this.core.open().length;
  }

  /** One run now (or the one in progress). */
  run(): Promise<GcRunReport> {
    this.running ??= this.runOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.run()
        .catch((error: unknown) => this.deps.logger.warn('gc run failed', { error: errorText(error) }))
        .finally(() => this.arm());
    }, this.deps.intervalMs);
    this.timer.unref();
  }

  private async runOnce(): Promise<GcRunReport> {
    this.runs++;
    const report: GcRunReport = { watermark: undefined, holdsBack: undefined, collectable: 0, partitionsScanned: 0, rounds: 0, roundsAbandoned: 0, deleted: 0, errors: [] };
    const view = this.deps.view();
    if (view === undefined || this.stopped) return this.finish(report);
    await view.durable?.();
    const { watermark, holdsBack } = await this.watermark(view, report);
    report.watermark = watermark;
    report.holdsBack = holdsBack;
    if (watermark === undefined || this.deps.replica.tombstoneCount === 0) return this.finish(report);
    const backup = this.runs % gcBackupEvery === 0;
    const bounds = this.deps.replica.tombstoneBounds;
    for (let p = 0; p < partitionCount && report.rounds < gcRoundsPerRunMax && !this.stopped; p++) {
      const role = view.role(p);
      if (role === undefined || (role === 'backup' && !backup)) continue;
      if (this.deps.replica.partitionEntryCount(p) === 0) continue;
      // Nothing below the watermark here (every tombstone is younger, or there is none): no read.
      if (!bounds.mayHoldBelow(p, watermark)) continue;
      bounds.scanStarted(p);
      let complete = false;
      let oldestLeft = noTombstone;
      try {
        const versions = new Map<string, Version>();
        const scan = await this.candidates(p, watermark, versions);
        const { candidates } = scan;
        report.partitionsScanned++;
        report.collectable += candidates.length;
        oldestLeft = scan.oldestYoung;
        while (report.rounds < gcRoundsPerRunMax && !this.stopped) {
          const round = this.core.plan(p, candidates, watermark, view.holders(p));
          if (round === undefined) break;
          report.rounds++;
          const tombstones: GcTombstone[] = round.tombstones.map((t) => ({ key: t.key, version: versions.get(t.key)! }));
          const deletedHere = await this.round(round.id, p, round.holders, tombstones, report);
          // Gone from this store unless this node's phase two did not run: then still here.
          if (!deletedHere) oldestLeft = oldestOf(round.tombstones, oldestLeft);
          const done = new Set(round.tombstones.map((t) => t.key));
          const rest = candidates.filter((c) => !done.has(c.key));
          candidates.length = 0;
          candidates.push(...rest);
        }
        oldestLeft = oldestOf(candidates, oldestLeft); // never planned this run
        complete = scan.complete;
      } finally {
        bounds.scanFinished(p, complete, oldestLeft);
      }
    }
    this.deps.counters.add('gc_partitions_scanned', report.partitionsScanned);
    return this.finish(report);
  }

  private finish(report: GcRunReport): GcRunReport {
    this.last = { report, atMs: this.deps.wallClockMs() };
    this.deletedTotal += report.deleted;
    return report;
  }

  /**
   * The watermark from the floors every member answers now. A member some answer names but
   * the view lacks (one this node never saw) is unheard: it holds the watermark back, and the
   * view learns it (`learn`).
   */
  private async watermark(view: GcView, report: GcRunReport): Promise<{ watermark: Hlc | undefined; holdsBack: string | undefined }> {
    const book = new FloorBook();
    const named = new Set<string>();
    await Promise.all(
      view.members.map(async (member) => {
        try {
          const answer = member === this.deps.selfId ? this.deps.holder.floor() : await this.deps.protocol.floor(this.peer(member));
          for (const m of answer.members) named.add(m);
          if (answer.floor === undefined) return;
          if (view.coverMembers) {
            const covered = new Set([...answer.members, member]);
            if (!view.members.every((m) => covered.has(m))) return;
          }
          book.hear(member, answer.floor, 0);
        } catch (error) {
          report.errors.push(`floor of ${member}: ${errorText(error)}`);
        }
      }),
    );
    const unknown = [...named].filter((m) => !view.members.includes(m));
    if (view.coverMembers && unknown.length > 0) {
      view.learn?.(unknown);
      return { watermark: undefined, holdsBack: unknown.sort()[0] };
    }
    return book.watermark(view.members);
  }

  /**
   * `partition`'s tombstones below the watermark, at most gcCandidatesMax (`complete`: the
   * scan read every row), and the oldest tombstone at or above it (`noTombstone` if none).
   */
  private async candidates(
    partition: PartitionId,
    watermark: Hlc,
    versions: Map<string, Version>,
  ): Promise<{ candidates: TombstoneRef[]; oldestYoung: Hlc; complete: boolean }> {
    const found: TombstoneRef[] = [];
    let oldestYoung = noTombstone;
    for await (const entry of this.deps.replica.scanHash(partition.toString(16).padStart(2, '0'))) {
      if (entry.value !== null) continue;
      if (entry.version.hlc >= watermark) {
        if (entry.version.hlc < oldestYoung) oldestYoung = entry.version.hlc;
        continue;
      }
      found.push({ key: entry.key, version: entry.version.hlc });
      versions.set(entry.key, entry.version);
      if (found.length >= gcCandidatesMax) return { candidates: found, oldestYoung, complete: false };
    }
    return { candidates: found, oldestYoung, complete: true };
  }

  private peer(nodeId: string): ReturnType<typeof peerIdFromString> {
    const peerId = this.deps.peerIdOf(nodeId);
    if (peerId === undefined) throw new Error(`${nodeId} is not up`);
    return peerIdFromString(peerId);
  }

  /**
   * Phase one to every holder, then (if all acknowledged) phase two to every current holder.
   * Resolves whether this node's own phase two ran (its rows of the round are gone, or were
   * replaced by newer writes).
   */
  private async round(id: number, partition: PartitionId, holders: readonly string[], tombstones: GcTombstone[], report: GcRunReport): Promise<boolean> {
    const { counters } = this.deps;
    counters.add('gc_rounds');
    await Promise.all(
      holders.map(async (holder) => {
        try {
          const ok =
            holder === this.deps.selfId
              ? await this.deps.holder.push(partition, tombstones.map((t) => ({ key: t.key, value: null, version: t.version })))
              : await this.deps.protocol.push(this.peer(holder), partition, tombstones);
          if (ok) this.core.acknowledge(id, holder);
          else report.errors.push(`${holder} did not acknowledge phase one`);
        } catch (error) {
          report.errors.push(`phase one to ${holder}: ${errorText(error)}`);
        }
      }),
    );
    const current = this.deps.view()?.holders(partition) ?? [];
    const deletes = this.core.phaseTwo(id, current);
    if (deletes === undefined) {
      this.core.abandon(id);
      report.roundsAbandoned++;
      counters.add('gc_rounds_abandoned');
      return false;
    }
    let deletedHere = false;
    await Promise.all(
      deletes.map(async ({ holder }) => {
        try {
          report.deleted +=
            holder === this.deps.selfId ? await this.deps.holder.deleteIfUnchanged(partition, tombstones) : await this.deps.protocol.delete(this.peer(holder), partition, tombstones);
          if (holder === this.deps.selfId) deletedHere = true;
        } catch (error) {
          report.errors.push(`phase two to ${holder}: ${errorText(error)}`);
        }
      }),
    );
    return deletedHere;
  }
}

/** The oldest version among `tombstones`, or `than` if it is older. */
function oldestOf(tombstones: readonly TombstoneRef[], than: Hlc): Hlc {
  let oldest = than;
  for (const t of tombstones) if (t.version < oldest) oldest = t.version;
  return oldest;
}

/** The watermark as text: the HLC and its age against `nowMs`. */
export function watermarkText(watermark: Hlc | undefined, nowMs: number): { hlc: string; ageMs: number | undefined } {
  if (watermark === undefined) return { hlc: 'none', ageMs: undefined };
  return { hlc: versionToText({ hlc: watermark, node: '0000000000000000' }).split('@')[0]!, ageMs: nowMs - hlcWallMs(watermark) };
}
