/**
 * Rebalancing in a partitioned node (docs/partitioned-mode.md "Rebalancing"): the pull loop,
 * which fetches the partitions a new layout gives this node, and the purge, which hands the
 * partitions it no longer holds to their owners and then drops them. Both run sessions
 * restricted to partitions (sync 1.2.0, src/core/sync-session.ts) through `session`.
 *
 * Pulls. One loop, woken by a layout change, by a peer coming up, by `ckv balance`, and by its
 * own timer: a retry backoff (1 s doubling to 30 s while a pull is left; reset on progress),
 * and a poll each second while a change is in progress (our pulls are listed only once every
 * node knows the new layout, which peers' acks tell, and those fire no layout change).
 * A round lists `ownership.pulls()` first, then: a pull with no sources (this node owned the
 * partition in every older layout) is acknowledged at once; the others are grouped by source
 * in two waves and each source gets sessions restricted to the partitions it is asked for.
 * Wave one asks one source per partition (spread by partition number over the sources that
 * are up and did not fail last round, so a transfer cut by a dead source resumes from
 * another); the partitions this node has no row of go in sessions of their own: a whole
 * transfer, where the source streams the partitions in one range scan in frames of 256 KiB,
 * applied in batches while the next frames arrive (the session driver's bounded pipeline), and
 * nothing descends (counted `partitions_pulled_whole`; `partitions_pulled_descended` if a
 * write arrived before it started). What a cut transfer delivered stays applied; the partition
 * is then not empty and its next session descends for the rest. Wave two asks the other
 * sources, whose sessions then find equal subtrees and carry only differences; only for the
 * partitions wave one covered (one whose first source was busy stays empty for a whole
 * transfer next round, instead of arriving by descent from every other source). Periodic
 * anti-entropy leaves a partition alone while either side is gaining it
 * (`Ownership.settledSharedPartitions`), so it arrives once, not from every co-owner. (At most
 * `partitionsPerSessionMax` a session, `sessionsMax` sessions at a time, so a rebalance leaves
 * room for normal syncs and writes). A partition is acknowledged (`ownership.pulled`) once
 * every source of it succeeded in a session of this round (started after the pull was listed)
 * that covered it: a write acknowledged with consistency `one` may be on one old owner only.
 * A departed source (a node the newest layout no longer has) that is not up is skipped: it
 * was removed dead, and waiting for it would block the change that removed it for good (a
 * leaving node, up, is waited for: it hands its partitions off). Any other source that is
 * not up, or whose sessions fail, blocks its partitions: it is logged once
 * (until it stops blocking) and shown in the status (`blockedBy`); an operator who knows it
 * is gone removes it (`ckv node remove`), which changes the layout and the sources. So does a
 * node of a new layout that is down and has not acknowledged it (`ownership.awaitingAcks`):
 * no sync of that layout starts before every node of it knows it, so it holds the change on
 * every node, also one with nothing to pull.
 *
 * Purge. After the pulls of a round, if the node holds rows of partitions it no longer holds
 * (`ownership.holds(p)` false: every layout that gave it p retired), for each group of such
 * partitions with the same current owners: read the versions of their rows (at most
 * `purgeEntriesPerRoundMax` a round), offload with a session restricted to them with each
 * current owner (so rows only this node has reach them; an owner's replica takes them because
 * it holds them), and only if every owner covered a partition, drop its rows that are still at
 * the version read (Replica.dropUnchanged, in batches of writeBatchOpsMax). Never without an
 * owner to hand them to, never before the first layout, never in full-replication mode (this
 * module is not started there). Rows of such partitions still there after a purge (written
 * while it ran, or past its budget) make the loop come back in pollMs (`afterPurge`) instead of
 * sleeping until the next layout change. `purgeNow` runs one purge at once (`ckv purge`);
 * purges never overlap.
 */
import { keyHash, type Entry } from '../core/entry.js';
import { bitmapHas, partitionBitmap } from '../core/layout.js';
import { writeBatchOpsMax } from '../core/limits.js';
import type { Ownership, PartitionPull } from '../core/ownership.js';
import { partitionCount, type PartitionId } from '../core/placement.js';
import type { DropRequest, Replica } from '../core/replica.js';
import type { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';
import type { SessionReport } from './sync-protocol.js';

/** Sessions a pull round runs at once. */
export const sessionsMax = 2;
/** Partitions one pull or offload session covers at most: a session stays well within its time bound. */
export const partitionsPerSessionMax = 16;
/** Row versions one purge round reads (and may drop) at most; the rest waits for the next round. */
export const purgeEntriesPerRoundMax = 200_000;
const retryMsMin = 1_000;
/** While a layout change is in progress and nothing is listed to pull yet: look again this often. */
const pollMs = 1_000;
const retryMsMax = 30_000;

export interface PartitionSyncComponents {
  /** Who holds what now; undefined before the first layout or while the node refuses to serve. */
  ownership: () => Ownership | undefined;
  replica: Replica;
  /** One session with node `nodeId` restricted to `partitions`; undefined when it is not up. */
  session: (nodeId: string, partitions: Uint8Array) => Promise<SessionReport | undefined>;
  /**
   * Whether node `nodeId` is up now. A pull's departed source (no longer a node of the newest
   * layout) that is down is skipped: it is a removed dead node, and waiting for it would block
   * for good the change that removed it. A departed source that is up (a leaving node handing
   * off) is waited for.
   */
  isUp: (nodeId: string) => boolean;
  counters: Counters;
  logger: Logger;
}

/** What this node still has to pull, for the status and `ckv balance`. */
export interface PullProgress {
  /** Partitions left to pull, per layout version (only versions with some left). */
  pending: { version: number; partitions: number }[];
  /** Partitions pulled since this process started. */
  pulled: number;
  /** Node ids whose absence or failures block a pull now, sorted. */
  blockedBy: string[];
}

/** What a purge did (or, dry, would do). */
export interface PurgeReport {
  /** Partitions this node holds rows of but no longer holds. */
  partitions: number;
  /** Entries (tombstones included) and their key and value bytes dropped (dry: found). */
  entries: number;
  bytes: number;
  /** Partitions not purged because an owner was not up or did not take them. */
  blocked: number;
  blockedBy: string[];
}

export class PartitionSync {
  private stopped = true;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private loop: Promise<void> | undefined;
  private retryMs = retryMsMin;
  private pulledTotal = 0;
  private readonly blocking = new Set<string>();
  /** Nodes already logged as blocking (logged again only after they stopped blocking). */
  private readonly loggedBlocking = new Set<string>();
  /** The purge running now, if any: purges never overlap. */
  private purging: Promise<PurgeReport> | undefined;
  /** Resolved at the end of each pull round (ckv balance waits on it). */
  private roundListeners: (() => void)[] = [];

  constructor(private readonly components: PartitionSyncComponents) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loop;
  }

  /** Run a round soon (a layout changed, a peer came up, an operator asked). */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Resolves after the next pull round ends (or at once if stopped). */
  nextRound(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.roundListeners.push(resolve));
  }

  progress(): PullProgress {
    const byVersion = new Map<number, number>();
    for (const pull of this.components.ownership()?.pulls() ?? []) byVersion.set(pull.version, (byVersion.get(pull.version) ?? 0) + 1);
    return {
      pending: [...byVersion].sort(([a], [b]) => a - b).map(([version, partitions]) => ({ version, partitions })),
      pulled: this.pulledTotal,
      blockedBy: [...this.blocking].sort(),
    };
  }

  /** One purge now (or, dry, what it would drop): `ckv purge`. */
  async purgeNow(dry: boolean): Promise<PurgeReport> {
    if (dry) return this.purgeDry();
    while (this.purging) await this.purging.catch(() => undefined);
    return this.purge();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      this.woken = false;
      let state: 'idle' | 'retry' | 'poll' = 'idle';
      try {
        state = await this.pullRound();
        if (!this.purging && !this.stopped) {
          const report = await this.purge();
          state = afterPurge(state, report.blocked, this.unheldRowsLeft());
        }
      } catch (error) {
        state = 'retry';
        this.components.logger.warn('rebalance round failed', { error });
      }
      for (const listener of this.roundListeners.splice(0)) listener();
      if (this.stopped) break;
      if (this.woken) continue;
      // Retries back off (a dead source costs a failed dial a round); polls stay short.
      await this.sleep(state === 'retry' ? this.retryMs : state === 'poll' ? pollMs : undefined);
      this.retryMs = state === 'retry' ? Math.min(retryMsMax, this.retryMs * 2) : retryMsMin;
    }
    for (const listener of this.roundListeners.splice(0)) listener();
  }

  /** Until woken, or `ms` (undefined: until woken). */
  private sleep(ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      if (ms !== undefined) {
        timer = setTimeout(done, ms);
        timer.unref();
      }
      this.wakeUp = done;
      if (this.woken || this.stopped) done();
    });
  }

  /** One round of pulls: whether anything is left to pull ('retry'), a change waits to list ours ('poll'), or neither. */
  private async pullRound(): Promise<'idle' | 'retry' | 'poll'> {
    const ownership = this.components.ownership();
    if (ownership === undefined) return 'idle';
    let pulls = ownership.pulls();
    const blocking = new Set<string>();
    // A change whose sync may not start yet waits for its nodes' acks: one that is down blocks it.
    for (const nodeId of ownership.awaitingAcks()) if (!this.components.isUp(nodeId)) blocking.add(nodeId);
    if (pulls.length === 0) {
      this.setBlocking(blocking);
      // During a change our pulls may not be listed yet (they wait until every node knows the
      // new layout: peers' acks, which do not fire onLayoutChange): look again soon.
      return ownership.writeSets(0).length > 1 ? 'poll' : 'idle';
    }
    // A removed node that is down never answers: its partitions come from the other sources.
    pulls = pulls.map((pull) => {
      const skipped = pull.departed.filter((nodeId) => !this.components.isUp(nodeId));
      return skipped.length === 0 ? pull : { ...pull, sources: pull.sources.filter((nodeId) => !skipped.includes(nodeId)) };
    });
    const immediate = pulls.filter((pull) => pull.sources.length === 0);
    this.acknowledge(ownership, immediate);
    // Two waves. First each partition from one of its sources (spread over them): the new
    // owner is empty there, so that session brings the whole partition. Then the other
    // sources, whose sessions now find equal subtrees and carry only what the first missed.
    // All at once, an empty new owner received the partition from every source (K times the
    // bytes of the ideal, measured by the partitioned bench).
    // In wave one, the partitions this node has no row of travel in sessions of their own
    // (whole transfers: the source streams them in one range scan, no descent; one partition
    // with a row would make the whole session descend). A partition a broken transfer left
    // partial is no longer empty: its next attempt descends and fetches only what is missing.
    // Wave two asks only for partitions wave one covered: one whose first source was busy or
    // failed is not acknowledged this round anyway, and the other sources would fill it by
    // descent (K times the bytes), so the next round could no longer ask it whole.
    const plan = planWaves(
      pulls,
      (nodeId) => this.components.isUp(nodeId) && !this.blocking.has(nodeId),
      (partition) => this.components.replica.partitionEntryCount(partition) === 0,
    );
    const covered = new Map<string, Set<PartitionId>>();
    for (const source of plan.sources) covered.set(source, new Set());
    const runWave = async (wave: Map<string, WaveJob>): Promise<void> => {
      const jobs: { source: string; partitions: PartitionId[]; whole: boolean }[] = [];
      for (const [source, { whole, partial }] of wave) {
        for (let i = 0; i < whole.length; i += partitionsPerSessionMax) jobs.push({ source, partitions: whole.slice(i, i + partitionsPerSessionMax), whole: true });
        for (let i = 0; i < partial.length; i += partitionsPerSessionMax) jobs.push({ source, partitions: partial.slice(i, i + partitionsPerSessionMax), whole: false });
      }
      await this.runJobs(jobs, async (job) => {
        if (blocking.has(job.source)) return; // failed already this round (or down and awaited)
        // A write that arrived since the partition was found empty makes the session descend
        // (counted partitions_pulled_descended): still correct, only slower.
        const got = await this.covering(job.source, job.partitions, job.whole);
        if (got === undefined) blocking.add(job.source);
        else for (const p of got) covered.get(job.source)!.add(p);
      });
    };
    await runWave(plan.waveOne);
    await runWave(waveTwoAfter(plan, covered));
    const done = pulls.filter((pull) => pull.sources.length > 0 && pull.sources.every((source) => covered.get(source)!.has(pull.partition)));
    this.acknowledge(ownership, done);
    this.components.logger.info('pull round', {
      pulls: pulls.length,
      pulled: done.length + immediate.length,
      sources: [...plan.sources].join(','),
      ...(blocking.size > 0 ? { blockedBy: [...blocking].join(',') } : {}),
    });
    this.setBlocking(blocking);
    return done.length + immediate.length < pulls.length ? 'retry' : 'poll';
  }

  /** Acknowledge pulls, grouped by layout version. */
  private acknowledge(ownership: Ownership, pulls: readonly PartitionPull[]): void {
    const byVersion = new Map<number, PartitionId[]>();
    for (const pull of pulls) {
      let partitions = byVersion.get(pull.version);
      if (partitions === undefined) byVersion.set(pull.version, (partitions = []));
      partitions.push(pull.partition);
    }
    for (const [version, partitions] of byVersion) {
      ownership.pulled(version, partitions);
      this.pulledTotal += partitions.length;
      this.components.counters.add('partitions_pulled', partitions.length);
    }
    if (pulls.length > 0) this.retryMs = retryMsMin;
  }

  /**
   * A session with `nodeId` over `partitions`: the partitions it covered, if it succeeded
   * (none if the peer was busy: it is syncing with us, or serving its limit); undefined if
   * the node is not up or the session failed.
   */
  private async covering(nodeId: string, partitions: readonly PartitionId[], whole = false): Promise<PartitionId[] | undefined> {
    const report = await this.components.session(nodeId, partitionBitmap(partitions));
    const result = report?.result;
    if (report?.outcome === 'skipped' || (result?.outcome === 'refused' && result.refuseReason === 'busy')) return [];
    if (report === undefined || result === undefined || (result.outcome !== 'synced' && result.outcome !== 'in-sync') || report.error !== undefined) {
      if (report !== undefined) this.components.counters.add('partition_pull_sessions_failed');
      return undefined;
    }
    const bitmap = result.partitions;
    const got = bitmap === undefined ? [...partitions] : partitions.filter((p) => bitmapHas(bitmap, p));
    if (whole) {
      // Asked whole. One round trip (the Hello): the source streamed them in one scan, nothing descended.
      this.components.counters.add(result.rounds <= 1 ? 'partitions_pulled_whole' : 'partitions_pulled_descended', got.length);
      this.components.counters.add('partition_pull_whole_received_bytes', report.bytesReceived);
    }
    return got;
  }

  private setBlocking(now: Set<string>): void {
    for (const nodeId of now) {
      if (this.loggedBlocking.has(nodeId)) continue;
      this.loggedBlocking.add(nodeId);
      this.components.logger.warn('rebalance blocked by a node', {
        node: nodeId,
        detail: 'it is not up or its sessions fail; if it is gone for good, remove it (ckv node remove)',
      });
    }
    for (const nodeId of this.loggedBlocking) if (!now.has(nodeId)) this.loggedBlocking.delete(nodeId);
    this.blocking.clear();
    for (const nodeId of now) this.blocking.add(nodeId);
  }

  /** At most sessionsMax jobs at a time, in order. */
  private async runJobs<T>(jobs: readonly T[], run: (job: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length && !this.stopped) await run(jobs[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(sessionsMax, jobs.length) }, worker));
  }

  // --- purge ----------------------------------------------------------------------------------

  /** Partitions this node has rows of but does not hold, grouped by their current owners (this node excluded). */
  private unheld(ownership: Ownership): { owners: string[]; partitions: PartitionId[] }[] {
    const groups = new Map<string, { owners: string[]; partitions: PartitionId[] }>();
    for (let p = 0; p < partitionCount; p++) {
      if (this.components.replica.partitionEntryCount(p) === 0 || ownership.holds(p)) continue;
      const owners = ownership.writeOwners(p).filter((nodeId) => nodeId !== ownership.self);
      const key = owners.join(',');
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = { owners, partitions: [] }));
      group.partitions.push(p);
    }
    return [...groups.values()];
  }

  /**
   * Whether rows of partitions this node no longer holds are left that have an owner to take
   * them: a write committed between a purge's read of the versions and its drop is kept
   * (drop-if-unchanged), and a round's budget may end first; the next round purges them.
   */
  private unheldRowsLeft(): boolean {
    const ownership = this.components.ownership();
    return ownership !== undefined && this.unheld(ownership).some((group) => group.owners.length > 0);
  }

  private async purgeDry(): Promise<PurgeReport> {
    const ownership = this.components.ownership();
    const report: PurgeReport = { partitions: 0, entries: 0, bytes: 0, blocked: 0, blockedBy: [] };
    if (ownership === undefined) return report;
    for (const group of this.unheld(ownership)) {
      for (const p of group.partitions) {
        report.partitions++;
        for await (const entry of this.components.replica.scanHash(partitionPrefix(p))) {
          report.entries++;
          report.bytes += entryBytes(entry);
        }
      }
    }
    return report;
  }

  private purge(): Promise<PurgeReport> {
    const purging = this.purgeOnce().finally(() => {
      if (this.purging === purging) this.purging = undefined;
    });
    this.purging = purging;
    return purging;
  }

  private async purgeOnce(): Promise<PurgeReport> {
    const report: PurgeReport = { partitions: 0, entries: 0, bytes: 0, blocked: 0, blockedBy: [] };
    const ownership = this.components.ownership();
    if (ownership === undefined) return report;
    const blockedBy = new Set<string>();
    let budget = purgeEntriesPerRoundMax;
    for (const group of this.unheld(ownership)) {
      report.partitions += group.partitions.length;
      if (group.owners.length === 0) {
        // Nobody to hand them to (every owner removed at once?): keep them.
        report.blocked += group.partitions.length;
        continue;
      }
      for (let i = 0; i < group.partitions.length && budget > 0 && !this.stopped; i += partitionsPerSessionMax) {
        const partitions = group.partitions.slice(i, i + partitionsPerSessionMax);
        // The versions first: only rows unchanged since the offload began are dropped.
        const drops: DropRequest[] = [];
        for (const p of partitions) {
          for await (const entry of this.components.replica.scanHash(partitionPrefix(p))) {
            if (drops.length >= budget) break;
            drops.push({ key: entry.key, version: entry.version });
          }
        }
        budget -= drops.length;
        let offloaded = new Set(partitions);
        for (const owner of group.owners) {
          const got = await this.covering(owner, partitions);
          if (got === undefined) blockedBy.add(owner);
          offloaded = new Set(got === undefined ? [] : [...offloaded].filter((p) => got.includes(p)));
          if (offloaded.size === 0) break;
        }
        report.blocked += partitions.length - offloaded.size;
        const dropping = drops.filter((drop) => offloaded.has(partitionOfKey(drop.key)));
        for (let at = 0; at < dropping.length; at += writeBatchOpsMax) {
          const dropped = await this.components.replica.dropUnchanged(dropping.slice(at, at + writeBatchOpsMax));
          report.entries += dropped.dropped;
          report.bytes += dropped.bytes;
          this.components.counters.add('purge_dropped_entries', dropped.dropped);
          this.components.counters.add('purge_dropped_bytes', dropped.bytes);
        }
        for (const p of offloaded) if (this.components.replica.partitionEntryCount(p) === 0) this.components.counters.add('partitions_purged');
      }
    }
    report.blockedBy = [...blockedBy].sort();
    if (report.entries > 0) {
      this.components.logger.info('purged partitions no longer held', { entries: report.entries, bytes: report.bytes, blocked: report.blocked });
    }
    return report;
  }
}

/**
 * The loop's state after a round's purge: `retry` (backing off) if a partition stayed blocked;
 * else `poll` (again in pollMs) if rows of partitions no longer held are left, so a write that
 * came in while the purge ran does not stay on this non-owner until the next layout change
 * wakes the loop; else the pull round's state.
 */
export function afterPurge(state: 'idle' | 'retry' | 'poll', blocked: number, unheldRowsLeft: boolean): 'idle' | 'retry' | 'poll' {
  if (blocked > 0) return 'retry';
  if (unheldRowsLeft && state === 'idle') return 'poll';
  return state;
}

/**
 * The source a pull's wave one asks for the whole partition: spread over the sources by
 * partition, skipping those `usable` rejects (down, or failing: a transfer cut by a dead source
 * resumes from another) unless none is usable. Undefined when the pull has no source.
 */
export function firstSource(pull: PartitionPull, usable: (nodeId: string) => boolean): string | undefined {
  const sources = pull.sources;
  if (sources.length === 0) return undefined;
  for (let i = 0; i < sources.length; i++) {
    const source = sources[(pull.partition + i) % sources.length]!;
    if (usable(source)) return source;
  }
  return sources[pull.partition % sources.length];
}

/** The sessions of one wave, per source: partitions asked whole (empty here), and the others. */
export interface WaveJob {
  whole: PartitionId[];
  partial: PartitionId[];
}

/** A pull round's plan: wave one asks each partition of its first source, wave two of the others. */
export interface WavePlan {
  /** Every source asked in either wave. */
  sources: Set<string>;
  /** Each partition's wave-one source. */
  first: Map<PartitionId, string>;
  waveOne: Map<string, WaveJob>;
  /** Before `waveTwoAfter` drops what wave one did not cover. */
  waveTwo: Map<string, WaveJob>;
}

/**
 * Plan a round: each pull's first source (`firstSource`, among the `usable`) in wave one,
 * asked whole when the partition is `empty` here; its other sources in wave two (never whole:
 * by then the partition has rows).
 */
export function planWaves(pulls: readonly PartitionPull[], usable: (nodeId: string) => boolean, empty: (partition: PartitionId) => boolean): WavePlan {
  const plan: WavePlan = { sources: new Set(), first: new Map(), waveOne: new Map(), waveTwo: new Map() };
  for (const pull of pulls) {
    const first = firstSource(pull, usable);
    if (first === undefined) continue;
    plan.first.set(pull.partition, first);
    const whole = empty(pull.partition);
    for (const source of pull.sources) {
      plan.sources.add(source);
      const wave = source === first ? plan.waveOne : plan.waveTwo;
      let job = wave.get(source);
      if (job === undefined) wave.set(source, (job = { whole: [], partial: [] }));
      const partitions = source === first && whole ? job.whole : job.partial;
      if (!partitions.includes(pull.partition)) partitions.push(pull.partition);
    }
  }
  return plan;
}

/** Wave two, keeping only the partitions their wave-one source covered (`covered`: per source). */
export function waveTwoAfter(plan: WavePlan, covered: ReadonlyMap<string, ReadonlySet<PartitionId>>): Map<string, WaveJob> {
  const coveredFirst = (p: PartitionId): boolean => covered.get(plan.first.get(p)!)?.has(p) === true;
  const out = new Map<string, WaveJob>();
  for (const [source, job] of plan.waveTwo) {
    const partial = job.partial.filter(coveredFirst);
    if (partial.length > 0) out.set(source, { whole: [], partial });
  }
  return out;
}

/** The hash prefix (two hex digits) of a partition's keys. */
function partitionPrefix(partition: PartitionId): string {
  return partition.toString(16).padStart(2, '0');
}

function partitionOfKey(key: string): PartitionId {
  return keyHash(key)[0]!;
}

function entryBytes(entry: Entry): number {
  return Buffer.byteLength(entry.key, 'utf8') + (entry.value?.byteLength ?? 0);
}
