/**
 * The deterministic simulator: N nodes run the real core (Replica, SyncInitiator/Responder,
 * and production's Membership, which owns the sync scheduling) over memory stores, and one
 * seeded event queue plays the network, the disks and the faults. Everything random comes
 * from one Prng, so a seed replays exactly.
 *
 * Model:
 * - Disk: a write becomes durable 0-3 ms after it is issued; a crash before then loses it
 *   (the writer is never acknowledged). Each incarnation of a node writes through a fence
 *   that a crash closes, so a dead incarnation can never write again.
 * - Gossip: every acknowledged local write is broadcast to each reachable node, with loss,
 *   duplication and random delay (so reordering).
 * - Sync sessions: each side runs the core's session driver over a frame channel; frames
 *   (and the close that ends a side) travel in order (a stream) with random delay; a lost
 *   frame, a partition or a crash breaks the session on both sides (both channels fail); a
 *   session times out after 10 s.
 * - Membership: a link is a connection; both ends' Membership is told of it (with the other's
 *   incarnation, as identify tells it in production) and of its loss. Membership messages
 *   (alive, leave) travel like gossip, lossy and late, and the network also replays old ones.
 * - Checkpoints: each node runs production's checkpoint schedule (checkpoint-schedule.ts,
 *   shorter times) and saves its snapshot while running; the snapshot is durable 0-3 ms
 *   later, like a write.
 * - Faults, during the fault window only: partitions and heals, crashes and restarts (some
 *   with the wall clock set back), a write with a checkpoint right behind it and a crash a
 *   few ms later, clean stops (a leave, then a restart), per-node clock
 *   skew, one node sometimes beyond the drift limit. Writes (puts and deletes over a small
 *   key space, so conflicts are common) also happen only in the window.
 * Afterwards the network is clean and clocks are close; nodes keep syncing for `settleMs`,
 * then schedulers stop and the queue drains, and the checker runs:
 * 1. all nodes hold identical entries and identical Merkle roots;
 * 2. every acknowledged write is present or superseded by a greater version;
 * 3. no node ever replaced a version with an older one (a deleted key never comes back
 *    with an older version);
 * 4. each node's acknowledged stamps strictly increase, across restarts (its HLC never
 *    went backwards), and none is more than the drift limit ahead of its own clock when
 *    acknowledged (a clock set back across a restart leaves the bound ahead: writes are
 *    refused until the clock catches up, not stamped where peers refuse them);
 * 5. every node shows every other up, at its current incarnation, even after every leave ever
 *    sent is replayed to every node at the end (old news loses).
 * 6. the applied sequence: each node's index holds one row per stored key, at the seq stored
 *    with its entry, and no seq above the replica's last (checked at the end); every seq a
 *    commit gives is above every seq before it on that node, across restarts (checked at
 *    each commit);
 * 7. a delta is complete: when an initiator that received a delta reaches the descent (the
 *    delta merged), it holds, for every index row of the responder up to the position the
 *    responder reported, that version or a newer one (what a full descent from scratch would
 *    have given it), except versions stamped beyond its drift limit, which it refuses;
 * 8. tombstone bounds at open (from the snapshot or the scan): no partition's bound is above
 *    the oldest tombstone stored in it (GC would skip it and keep that tombstone forever);
 *    checked at every start, caught by the bounds canary. A start from a snapshot (a clean
 *    stop's or a checkpoint's, with the entries written after it replayed) must give the state a scan of the same disk gives (root,
 *    tombstone count, clock); a checkpoint saved beside a commit in flight is caught (the
 *    checkpoint canary).
 * 9. catch-up watermarks are current at the end: no node's watermark for a peer lags any of
 *    its own applied entries (watermark-refresh.ts, here with a lag of 1 entry: the sim writes
 *    few). Without the refresh a node proves a peer's watermark only when its periodic round
 *    picks that peer, which a few seeds' settles never do for some pair; caught by the
 *    refresh canary.
 * 10. periodic sync rounds put off during a burst of writes (scheduler.ts; here a burst is 4
 *    entries a round, as the simulator writes ~10 a second) are put off at most
 *    syncBurstRoundsDeferMax times in a row, so anti-entropy still runs while writes flow;
 *    caught by the burst canary (no limit in a row).
 * 11. stored rows are canonical: a received entry kept with the bytes it came in as (not
 *    encoded again, Replica.applyRemote's `encodings`) holds exactly encodeEntry's bytes of
 *    it. Every third node is a padding peer (its Entries frames carry non-minimal varints),
 *    whose entries must be encoded again; caught by the encoding canary (no canonical check).
 * Every replica runs with its version cache (src/core/version-cache.ts), so commits over
 * recently written keys take the replaced version from it; a cache that commits do not update
 * (the version-cache canary) makes later commits merge against old versions and delete the
 * wrong index rows, caught by invariants 7 and 8 on every one of the first 20 seeds.
 */
import { Replica, sameRoot, type AppliedChange } from '../../src/core/replica.js';
import { compareVersions, encodeEntry, keyHashText, lastWriterWins, type Entry, type HashText, type MergeRule, type Version } from '../../src/core/entry.js';
import type { ReceivedEntries } from '../../src/core/received-entries.js';
import { hlcToString, hlcWallMs, type Hlc } from '../../src/core/hlc.js';
import { clockDriftMsMax, inboundSessionsMax, syncBurstRoundsDeferMax, valueBytesMax } from '../../src/core/limits.js';
import { Membership, type MemberMessage, type MembershipEffect } from '../../src/core/membership.js';
import { FullReplication, holds, partitionCount, partitionOfHash } from '../../src/core/placement.js';
import { noTombstone } from '../../src/core/tombstone-bounds.js';
import { FrameType, RefuseReason, decodeFrame } from '../../src/core/sync-frames.js';
import { FrameChannel } from '../../src/core/frame-channel.js';
import { driveSession, type FrameTransport } from '../../src/core/session-driver.js';
import { SyncInitiator, SyncResponder, type SyncEffect, type SyncResult } from '../../src/core/sync-session.js';
import { ByteWriter, toHex, utf8 } from '../../src/core/bytes.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { ScanKeysOptions, SequencedEntry, Store, TakenSnapshot, WriteIndex } from '../../src/core/store.js';
import { CheckpointSchedule } from '../../src/core/checkpoint-schedule.js';
import { EventQueue, type RunReport } from './event-queue.js';
import { Prng } from './prng.js';

export interface SimOptions {
  seed: number;
  nodes: number;
  /** Client writes spread over the fault window. */
  writes?: number;
  /** Size of the key space; small, so that writers conflict. */
  keys?: number;
  faultWindowMs?: number;
  settleMs?: number;
  /** Only the canary changes this. */
  mergeRule?: MergeRule;
  /** Only the membership canary sets this false (see MembershipOptions.staleMessagesLose). */
  staleMessagesLose?: boolean;
  /** Only the clock canary sets this false (see ReplicaOptions.refuseWhenClockAhead). */
  clockGuard?: boolean;
  /** Only the delta canary sets this (see ReplicaOptions.dropLastDeltaEntry). */
  dropLastDeltaEntry?: boolean;
  /** Only the bounds canary sets this (see ReplicaOptions.claimNoTombstonesAtOpen). */
  claimNoTombstonesAtOpen?: boolean;
  /** Only the checkpoint canary sets this (see ReplicaOptions.checkpointBesideWrites). */
  checkpointBesideWrites?: boolean;
  /** Only the version-cache canary sets this (see ReplicaOptions.versionCacheNotUpdated). */
  versionCacheNotUpdated?: boolean;
  /** Only the bulk-apply canary sets this (see ReplicaOptions.receivedIgnoresStored). */
  receivedIgnoresStored?: boolean;
  /**
   * Only the snapshot canary sets this: the disk hands out the last snapshot saved on it as
   * current even after a write made it stale (a store that forgot to mark it stale).
   */
  snapshotNeverStale?: boolean;
  /**
   * Only the replay canary sets this (ReplicaOptions.replayAddsOnly): a start from a snapshot
   * behind the entries XORs the tail's digests in without taking out the versions they replaced.
   */
  replayAddsOnly?: boolean;
  /** Only the refresh canary sets this false (no MembershipOptions.watermarks). */
  watermarkRefresh?: boolean;
  /**
   * Only the burst canary sets this: periodic rounds are put off during bursts with no limit
   * in a row (MembershipOptions.syncBurst.roundsDeferMax), so anti-entropy stops while writes flow.
   */
  burstDeferUnbounded?: boolean;
  /**
   * Only the encoding canary sets this (SyncContext.encodingsUnchecked): received entries keep
   * the bytes they came in as, padded or not, so a padding peer's bytes are stored.
   */
  encodingsUnchecked?: boolean;
}

export interface SimReport extends RunReport<SimStats> {
  nodes: number;
  depth: number;
}

export interface SimStats {
  acknowledgedWrites: number;
  sessions: number;
  sessionsFailed: number;
  crashes: number;
  stops: number;
  /** Starts whose tree came from a snapshot (a clean stop's or a checkpoint's; each checked against a scan). */
  snapshotStarts: number;
  /** Of those, starts that replayed the entries written after the snapshot (replica-replay.ts). */
  replayStarts: number;
  /** Checkpoints saved by running nodes (Replica.checkpoint), and crashes that came right after one. */
  checkpoints: number;
  checkpointCrashes: number;
  partitions: number;
  gossipDelivered: number;
  memberMessages: number;
  clockDriftRejections: number;
  simulatedMs: number;
  entries: number;
  /** Sessions that received a delta, and delta checks (invariant 7) run. */
  deltaSessions: number;
  watermarksRecorded: number;
  /** Periodic sync rounds put off during bursts (invariant 10 bounds how many in a row). */
  roundsDeferred: number;
  /** Entries frames a padding node sent with non-minimal varints (invariant 11). */
  paddedFrames: number;
  /** Rows stored at the end with the bytes they were received in (not encoded again; invariant 11). */
  rowsKeptAsReceived: number;
  /** Commits a sync session's entries made from their bytes (Replica.applyReceived's bulk path). */
  receivedCommits: number;
}

const epochMs = 1_700_000_000_000;
const cluster = 'sim';
const sessionTimeoutMs = 10_000;
const tickMsMax = 100;
/** Checkpoints in simulated time: often enough to happen inside a 12 s fault window. */
const simCheckpointTimes = { quietMs: 200, entriesMin: 4, intervalMs: 1_000 };
/** Entries applied between two periodic rounds that make a burst (production: syncBurstEntriesMin). */
const simBurstEntriesMin = 4;

interface SimNode {
  index: number;
  /** Production's checkpoint schedule (with shorter times), driven by the node's tick. */
  checkpoints: CheckpointSchedule;
  nodeId: string;
  disk: MemoryStore;
  fence: Fence | undefined;
  replica: Replica | undefined;
  membership: Membership | undefined;
  /** Boots of this node: fences off a dead boot's callbacks. */
  incarnation: number;
  /** The membership incarnation kept on its disk (raised each boot and by refutations). */
  memberIncarnation: number;
  peerId: string;
  skewMs: number;
  group: number;
  inbound: number;
  lastAckedHlc: Hlc;
  /** Periodic sync rounds this boot put off in a row (invariant 10), and whether that was reported. */
  roundsDeferredInARow: number;
  burstViolationNoted: boolean;
}

interface Side {
  node: SimNode;
  incarnation: number;
  /** Frames from the other side, pushed by events of the queue. */
  inbox: FrameChannel;
  lastDeliveryAtMs: number;
  result: SyncResult | undefined;
}

interface Session {
  initiator: Side;
  responder: Side;
  over: boolean;
  /** When it started (each side reports it: a session running before a leave revives no one). */
  startedMs: number;
}

/** A store that stops working when its incarnation crashes, and writes with disk latency. */
class Fence implements Store {
  alive = true;
  constructor(private readonly disk: MemoryStore, private readonly sim: Simulation) {}

  private check(): void {
    if (!this.alive) throw new Error('node crashed');
  }
  open(): Promise<void> {
    return this.disk.open();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  get(key: string): Promise<Entry | undefined> {
    this.check();
    return this.disk.get(key);
  }
  getMany(keys: readonly string[], keyHashes?: readonly HashText[], seqsOut?: (number | undefined)[]): Promise<(Entry | undefined)[]> {
    this.check();
    return this.disk.getMany(keys, keyHashes, seqsOut);
  }
  readSeqLast(): Promise<number> {
    this.check();
    return this.disk.readSeqLast();
  }
  async *scanSince(seqAfter: number, seqUpTo: number): AsyncIterable<SequencedEntry> {
    this.check();
    yield* this.disk.scanSince(seqAfter, seqUpTo);
  }
  readHlc(): Promise<Hlc> {
    this.check();
    return this.disk.readHlc();
  }
  write(entries: readonly Entry[], hlcLast: Hlc, keyHashes?: readonly HashText[], index?: WriteIndex): Promise<void> {
    this.check();
    return new Promise((resolve, reject) => {
      this.sim.queue.schedule(this.sim.rng.int(0, 3), () => {
        if (!this.alive) return reject(new Error('node crashed before the write was durable'));
        // Invariant 6: a durable commit's seqs come after every seq this disk holds or held.
        if (index === undefined || index.seqFirst <= this.sim.seqIssued(this.disk)) {
          this.sim.violation(`a commit numbered from ${index?.seqFirst ?? '(none)'} after seq ${this.sim.seqIssued(this.disk)} was made durable on this disk`);
          return reject(new Error('seq out of order'));
        }
        this.sim.issueSeqs(this.disk, index.seqFirst + entries.length - 1);
        this.disk.write(entries, hlcLast, keyHashes, index).then(resolve, reject);
      });
    });
  }
  async *scanHash(prefix: string): AsyncIterable<Entry> {
    this.check();
    yield* this.disk.scanHash(prefix);
  }
  /** Encoded rows, as LevelStore hands them out: a start's scan (replica-scan.ts) and a new node's whole state read them. */
  async *scanAllEncoded(): AsyncIterable<readonly Uint8Array[]> {
    this.check();
    yield* this.disk.scanAllEncoded();
  }
  async *scanHashPrefixes(prefixes: readonly string[]): AsyncIterable<Entry> {
    this.check();
    yield* this.disk.scanHashPrefixes(prefixes);
  }
  scanKeys(options?: ScanKeysOptions): AsyncIterable<Entry> {
    this.check();
    return this.disk.scanKeys(options);
  }
  getMeta(name: string): Promise<Uint8Array | undefined> {
    return this.disk.getMeta(name);
  }
  putMeta(name: string, value: Uint8Array): Promise<void> {
    return this.disk.putMeta(name, value);
  }
  sizeBytes(): Promise<number> {
    return this.disk.sizeBytes();
  }
  /** Durable 0-3 ms later, as a write: a crash before then loses it. */
  saveSnapshot(bytes: Uint8Array): Promise<void> {
    this.check();
    return new Promise((resolve, reject) => {
      this.sim.queue.schedule(this.sim.rng.int(0, 3), () => {
        if (!this.alive) return reject(new Error('node crashed before the snapshot was durable'));
        if (this.sim.snapshotNeverStale) this.sim.snapshotsSaved.set(this.disk, bytes.slice());
        this.disk.saveSnapshot(bytes).then(resolve, reject);
      });
    });
  }
  async readSnapshot(): Promise<TakenSnapshot> {
    this.check();
    const taken = await this.disk.readSnapshot();
    const saved = this.sim.snapshotsSaved.get(this.disk);
    return this.sim.snapshotNeverStale && saved !== undefined ? { state: 'current', bytes: saved.slice() } : taken;
  }
}

export class Simulation {
  readonly queue = new EventQueue();
  readonly rng: Prng;
  private readonly placement = new FullReplication();
  private readonly options: Required<Omit<SimOptions, 'mergeRule'>> & { mergeRule: MergeRule };
  private readonly nodes: SimNode[] = [];
  private readonly depth: number;
  private readonly violations: string[] = [];
  private readonly acked = new Map<string, Version>();
  /** Per disk, the greatest seq a commit was given (invariant 6). */
  private readonly seqsIssued = new Map<MemoryStore, number>();
  /** The snapshot canary's copy of each disk's last saved snapshot (see SimOptions.snapshotNeverStale). */
  readonly snapshotsSaved = new Map<MemoryStore, Uint8Array>();
  private readonly sessions = new Set<Session>();
  /** Connected pairs, as "a:b" with a < b. */
  private readonly links = new Set<string>();
  /** Every membership message sent, for replays. */
  private readonly sentMemberMessages: MemberMessage[] = [];
  private faultsOver = false;
  private stopped = false;
  private gossipLoss: number;
  private gossipDuplication: number;
  private frameLoss: number;
  private delayMsMax: number;
  private readonly stats: SimReport['stats'] = {
    acknowledgedWrites: 0,
    sessions: 0,
    sessionsFailed: 0,
    crashes: 0,
    stops: 0,
    snapshotStarts: 0,
    replayStarts: 0,
    checkpoints: 0,
    checkpointCrashes: 0,
    partitions: 0,
    gossipDelivered: 0,
    memberMessages: 0,
    clockDriftRejections: 0,
    simulatedMs: 0,
    entries: 0,
    deltaSessions: 0,
    watermarksRecorded: 0,
    roundsDeferred: 0,
    paddedFrames: 0,
    rowsKeptAsReceived: 0,
    receivedCommits: 0,
  };

  constructor(options: SimOptions) {
    this.options = {
      writes: 120,
      keys: 24,
      faultWindowMs: 12_000,
      settleMs: 40_000,
      mergeRule: lastWriterWins,
      staleMessagesLose: true,
      clockGuard: true,
      dropLastDeltaEntry: false,
      claimNoTombstonesAtOpen: false,
      watermarkRefresh: true,
      checkpointBesideWrites: false,
      versionCacheNotUpdated: false,
      receivedIgnoresStored: false,
      snapshotNeverStale: false,
      replayAddsOnly: false,
      burstDeferUnbounded: false,
      encodingsUnchecked: false,
      ...options,
    };
    this.rng = new Prng(options.seed);
    this.depth = this.rng.int(1, 4);
    this.gossipLoss = this.rng.float() * 0.4;
    this.gossipDuplication = this.rng.float() * 0.1;
    this.frameLoss = this.rng.float() * 0.02;
    this.delayMsMax = this.rng.int(2, 80);
  }

  async run(): Promise<SimReport> {
    const { nodes, writes, faultWindowMs, settleMs } = this.options;
    const beyondDrift = this.rng.chance(0.3) ? this.rng.int(0, nodes - 1) : -1;
    for (let i = 0; i < nodes; i++) {
      // Half the clocks agree exactly, so simultaneous writes tie on HLC and the node-id
      // tie-break is exercised; one node is sometimes beyond the drift limit.
      const skewMs = i === beyondDrift ? this.rng.int(700, 1500) : this.rng.chance(0.5) ? 0 : this.rng.int(-200, 200);
      this.nodes.push({
        index: i,
        checkpoints: new CheckpointSchedule(simCheckpointTimes),
        nodeId: i.toString(16).padStart(16, '0'),
        disk: new MemoryStore(),
        fence: undefined,
        replica: undefined,
        membership: undefined,
        incarnation: 0,
        memberIncarnation: 0,
        peerId: `peer-${i}`,
        skewMs,
        group: 0,
        inbound: 0,
        lastAckedHlc: 0n,
        roundsDeferredInARow: 0,
        burstViolationNoted: false,
      });
    }
    for (const node of this.nodes) await this.boot(node);
    for (const node of this.nodes) this.connectAll(node);

    for (let w = 0; w < writes; w++) this.queue.schedule(this.rng.int(0, faultWindowMs - 1), () => this.clientWrite());
    this.scheduleFaults();
    this.queue.schedule(faultWindowMs, () => void this.endFaults());
    this.queue.schedule(faultWindowMs + settleMs, () => {
      this.stopped = true;
    });

    const limitMs = faultWindowMs + settleMs + 5 * sessionTimeoutMs;
    for (let event = this.queue.pop(); event; event = this.queue.pop()) {
      event.run();
      await drainMicrotasks();
      if (this.queue.nowMs > limitMs) {
        this.violations.push(`the event queue did not drain by ${limitMs} ms`);
        break;
      }
    }
    this.stats.simulatedMs = this.queue.nowMs;
    this.replayOldLeaves();
    await this.check();
    return {
      seed: this.options.seed,
      nodes,
      depth: this.depth,
      ok: this.violations.length === 0,
      violations: this.violations,
      stats: this.stats,
    };
  }

  get snapshotNeverStale(): boolean {
    return this.options.snapshotNeverStale;
  }

  seqIssued(disk: MemoryStore): number {
    return this.seqsIssued.get(disk) ?? 0;
  }

  issueSeqs(disk: MemoryStore, seqLast: number): void {
    this.seqsIssued.set(disk, seqLast);
  }

  violation(text: string): void {
    this.violations.push(text);
  }

  // --- nodes -------------------------------------------------------------------------------

  private async boot(node: SimNode): Promise<void> {
    node.incarnation++;
    const incarnation = node.incarnation;
    node.fence = new Fence(node.disk, this);
    const replica = await Replica.open({
      nodeId: node.nodeId,
      store: node.fence,
      depth: this.depth,
      wallClockMs: () => this.wallOf(node),
      mergeRule: this.options.mergeRule,
      // As production: placement over membership's layout decides what this node holds.
      holds: (keyHash) => !node.membership || holds(this.placement, node.membership.layout(), node.nodeId, keyHash),
      clockAheadOfPeersMs: () => node.membership?.clockAheadOfPeersMs() ?? 0,
      refuseWhenClockAhead: this.options.clockGuard,
      rng: () => this.rng.float(),
      dropLastDeltaEntry: this.options.dropLastDeltaEntry,
      claimNoTombstonesAtOpen: this.options.claimNoTombstonesAtOpen,
      checkpointBesideWrites: this.options.checkpointBesideWrites,
      versionCacheNotUpdated: this.options.versionCacheNotUpdated,
      receivedIgnoresStored: this.options.receivedIgnoresStored,
      replayAddsOnly: this.options.replayAddsOnly,
      onApplied: (changes) => {
        for (const change of changes) this.onApplied(node, incarnation, change);
      },
    });
    // Tombstone GC skips a partition by its bound: one above a stored tombstone would keep it forever.
    const oldest = new Array<bigint>(partitionCount).fill(noTombstone);
    for await (const entry of node.disk.scanHash('')) {
      const partition = partitionOfHash(keyHashText(entry.key));
      if (entry.value === null && entry.version.hlc < oldest[partition]!) oldest[partition] = entry.version.hlc;
    }
    const bounds = replica.tombstoneBounds.bounds();
    const above = bounds.findIndex((bound, partition) => bound > oldest[partition]!);
    if (above >= 0) this.violations.push(`node ${node.index} started (${replica.openedFrom.source}) with partition ${above}'s tombstone bound above its oldest stored tombstone`);
    if (replica.openedFrom.source === 'snapshot') {
      // Nothing writes this disk until node.replica is set: a scan now must build the same state.
      this.stats.snapshotStarts++;
      if (replica.openedFrom.replayed !== undefined) this.stats.replayStarts++;
      const scanned = await Replica.open({ nodeId: node.nodeId, store: node.disk, depth: this.depth, wallClockMs: () => this.wallOf(node), useSnapshot: false });
      if (!sameRoot(replica, scanned) || replica.tombstoneCount !== scanned.tombstoneCount || replica.hlcLast !== scanned.hlcLast) {
        this.violations.push(`node ${node.index} started from its snapshot with a state a scan does not give (root, tombstones or clock)`);
      }
    }
    node.replica = replica;
    node.checkpoints = new CheckpointSchedule(simCheckpointTimes);
    node.memberIncarnation++;
    node.roundsDeferredInARow = 0;
    node.membership = new Membership(
      {
        self: { nodeId: node.nodeId, peerId: node.peerId, incarnation: node.memberIncarnation },
        rng: () => this.rng.float(),
        staleMessagesLose: this.options.staleMessagesLose,
        placement: this.placement,
        ...(this.options.watermarkRefresh
          ? { watermarks: { seqLast: () => replica.seqApplied, lagging: (entriesMin: number) => replica.laggingWatermarks(entriesMin) }, watermarkRefresh: { lagEntriesMin: 1 } }
          : {}),
        // The simulator writes ~10 entries a second: a burst here is a few entries a round.
        syncBurst: { entriesMin: simBurstEntriesMin, ...(this.options.burstDeferUnbounded ? { roundsDeferMax: 1_000_000 } : {}) },
      },
      this.queue.nowMs,
    );
    node.membership.setAddresses([`sim/${node.index}`]);
    this.scheduleTick(node, incarnation, 1);
  }

  /** A node's wall clock: simulated time plus its skew. */
  private wallOf(node: SimNode): number {
    return epochMs + this.queue.nowMs + node.skewMs;
  }

  private isUp(node: SimNode): boolean {
    return node.replica !== undefined;
  }

  private reachable(a: SimNode, b: SimNode): boolean {
    return this.isUp(a) && this.isUp(b) && a.group === b.group;
  }

  private connectAll(node: SimNode): void {
    for (const other of this.nodes) if (other !== node) this.connect(node, other);
  }

  private linkOf(a: SimNode, b: SimNode): string {
    return a.index < b.index ? `${a.index}:${b.index}` : `${b.index}:${a.index}`;
  }

  /** A connection: each end is told who the other is (node id, peer id, incarnation). */
  private connect(a: SimNode, b: SimNode): void {
    if (!this.reachable(a, b) || this.links.has(this.linkOf(a, b))) return;
    this.links.add(this.linkOf(a, b));
    const now = this.queue.nowMs;
    const introduce = (to: SimNode, about: SimNode): void =>
      this.carryOut(to, to.membership!.connected({ nodeId: about.nodeId, peerId: about.peerId, incarnation: about.memberIncarnation, addresses: [`sim/${about.index}`] }, now));
    introduce(a, b);
    introduce(b, a);
  }

  private disconnect(a: SimNode, b: SimNode): void {
    if (this.links.delete(this.linkOf(a, b))) {
      if (a.membership) this.carryOut(a, a.membership.disconnected(b.peerId, this.queue.nowMs));
      if (b.membership) this.carryOut(b, b.membership.disconnected(a.peerId, this.queue.nowMs));
    }
    for (const session of this.sessions) {
      const pair = [session.initiator.node, session.responder.node];
      if (pair.includes(a) && pair.includes(b)) this.abort(session);
    }
  }

  private crash(node: SimNode): void {
    if (!this.isUp(node)) return;
    this.stats.crashes++;
    node.fence!.alive = false;
    for (const other of this.nodes) if (other !== node) this.disconnect(node, other);
    node.replica = undefined;
    node.membership = undefined;
    node.inbound = 0;
  }

  /** A clean stop: the node announces its leave, then goes (its acknowledged writes are durable). */
  private stop(node: SimNode): void {
    if (!this.isUp(node)) return;
    this.stats.stops++;
    this.carryOut(node, node.membership!.leave());
    // As production: writes drain, then the snapshot is saved; unless the stop (a crash 1 ms
    // later) comes first, as it does when a write is still on its way to disk.
    const replica = node.replica!;
    void replica
      .close()
      .then(() => replica.saveSnapshot())
      .catch(() => undefined);
    this.queue.schedule(1, () => this.crash(node));
  }

  private async restart(node: SimNode): Promise<void> {
    if (this.isUp(node)) return;
    await this.boot(node);
    this.connectAll(node);
  }

  private scheduleTick(node: SimNode, incarnation: number, afterMs: number): void {
    this.queue.schedule(afterMs, () => {
      if (this.stopped || node.incarnation !== incarnation || !node.membership) return;
      const now = this.queue.nowMs;
      const membership = node.membership;
      const [dueBefore, deferredBefore] = [membership.syncRoundsDue, membership.syncRoundsDeferred];
      this.carryOut(node, membership.tick(now));
      this.checkBurstDeferral(node, membership.syncRoundsDue - dueBefore, membership.syncRoundsDeferred - deferredBefore);
      this.checkpointIfDue(node, incarnation);
      const wakeMs = node.membership.wakeAtMs(now) - now;
      this.scheduleTick(node, incarnation, Math.min(tickMsMax, Math.max(1, wakeMs)));
    });
  }

  /**
   * Invariant 10: a periodic round put off during a burst is put off at most
   * syncBurstRoundsDeferMax times in a row, so anti-entropy still runs while writes flow.
   * Counted per incarnation from the membership's counters of rounds due and put off.
   */
  private checkBurstDeferral(node: SimNode, due: number, deferred: number): void {
    if (due === 0) return;
    this.stats.roundsDeferred += deferred;
    node.roundsDeferredInARow = deferred === due ? node.roundsDeferredInARow + deferred : deferred;
    if (node.roundsDeferredInARow > syncBurstRoundsDeferMax && !node.burstViolationNoted) {
      node.burstViolationNoted = true;
      this.violations.push(`node ${node.index} put off ${node.roundsDeferredInARow} periodic sync rounds in a row during a burst (at most ${syncBurstRoundsDeferMax})`);
    }
  }

  /** As production's checkpointer (src/node/checkpointer.ts), on the simulated clock. */
  private checkpointIfDue(node: SimNode, incarnation: number): void {
    const replica = node.replica!;
    if (!node.checkpoints.due(this.queue.nowMs, replica.storeChangeCount)) return;
    this.checkpoint(node, incarnation).then(
      (changes) => node.checkpoints.saved(this.queue.nowMs, changes),
      () => node.checkpoints.failed(this.queue.nowMs),
    );
  }

  /** A checkpoint of a running node; resolves with the change count it holds. */
  private async checkpoint(node: SimNode, incarnation: number): Promise<number> {
    const { saved, changes } = await node.replica!.checkpoint();
    if (saved && node.incarnation === incarnation) this.stats.checkpoints++;
    return changes;
  }

  /**
   * A write, a checkpoint asked for right behind it, and a crash a few ms later: the
   * checkpoint must hold the write (it waits for its commit) or be stale by it, never be
   * current without it; the start after the crash is checked against a scan (boot).
   */
  private checkpointThenCrash(): void {
    if (this.faultsOver) return;
    const node = this.rng.pick(this.nodes);
    if (!this.isUp(node)) return;
    this.writeOn(node, `k${this.rng.int(0, this.options.keys - 1)}`);
    this.checkpoint(node, node.incarnation).catch(() => undefined);
    this.queue.schedule(this.rng.int(2, 8), () => {
      if (!this.isUp(node)) return;
      this.stats.checkpointCrashes++;
      this.crash(node);
      this.queue.schedule(this.rng.int(100, 3000), () => void this.restart(node));
    });
  }

  // --- membership effects ------------------------------------------------------------------

  private carryOut(node: SimNode, effects: MembershipEffect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'sync':
          this.startSession(node, this.byNodeId(effect.nodeId));
          break;
        case 'dial':
          this.connect(node, this.byNodeId(this.nodeIdOfPeer(effect.peerId)));
          break;
        case 'announce':
          this.broadcastMember(node, effect.message);
          break;
        case 'persist-incarnation':
          node.memberIncarnation = effect.incarnation;
          break;
        case 'log':
          break;
      }
    }
  }

  private byNodeId(nodeId: string): SimNode {
    return this.nodes[parseInt(nodeId, 16)]!;
  }

  private nodeIdOfPeer(peerId: string): string {
    return this.nodes[Number(peerId.slice('peer-'.length))]!.nodeId;
  }

  /** Membership messages travel like gossip: lossy, duplicated, late. Signatures are modelled as always valid. */
  private broadcastMember(from: SimNode, message: MemberMessage): void {
    this.sentMemberMessages.push(message);
    for (const other of this.nodes) {
      if (other === from) continue;
      const copies = this.rng.chance(this.gossipDuplication) ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        if (!this.reachable(from, other) || this.rng.chance(this.gossipLoss)) continue;
        this.queue.schedule(this.rng.int(1, this.delayMsMax), () => this.deliverMember(other, message));
      }
    }
  }

  private deliverMember(to: SimNode, message: MemberMessage): void {
    if (!to.membership) return;
    this.stats.memberMessages++;
    this.carryOut(to, to.membership.message(message, message.peerId, this.queue.nowMs));
  }

  /** At the end, every leave ever sent reaches every node again: old news must lose. */
  private replayOldLeaves(): void {
    for (const message of this.sentMemberMessages) {
      if (message.type !== 'leave') continue;
      for (const node of this.nodes) if (node.nodeId !== message.nodeId) this.deliverMember(node, message);
    }
  }

  // --- writes and gossip -------------------------------------------------------------------

  /** One client write; a fifth of them race a write of the same key on another node. */
  private clientWrite(): void {
    const key = `k${this.rng.int(0, this.options.keys - 1)}`;
    this.writeOn(this.rng.pick(this.nodes), key);
    if (this.rng.chance(0.2)) this.writeOn(this.rng.pick(this.nodes), key);
  }

  private writeOn(node: SimNode, key: string): void {
    const replica = node.replica;
    if (!replica) return;
    const isDelete = this.rng.chance(0.25);
    const incarnation = node.incarnation;
    const write = isDelete ? replica.delete(key) : replica.put(key, utf8(`${node.index}@${this.queue.nowMs}`));
    write.then(
      (version) => {
        if (node.incarnation !== incarnation) return; // acknowledged to no one: the node died
        this.stats.acknowledgedWrites++;
        if (version.hlc <= node.lastAckedHlc) {
          this.violations.push(`node ${node.index} stamped ${hlcToString(version.hlc)} after ${hlcToString(node.lastAckedHlc)}: its HLC went backwards`);
        }
        node.lastAckedHlc = version.hlc;
        const aheadMs = hlcWallMs(version.hlc) - this.wallOf(node);
        if (aheadMs > clockDriftMsMax) {
          this.violations.push(`node ${node.index} acknowledged a write stamped ${aheadMs} ms ahead of its clock: its peers refuse it`);
        }
        const best = this.acked.get(key);
        if (!best || compareVersions(version, best) > 0) this.acked.set(key, version);
      },
      () => undefined, // a crash before the write was durable: never acknowledged
    );
  }

  private onApplied(node: SimNode, incarnation: number, change: AppliedChange): void {
    if (change.previous && compareVersions(change.entry.version, change.previous) <= 0) {
      this.violations.push(
        `node ${node.index} replaced ${change.entry.key}@${versionText(change.previous)} with older ${versionText(change.entry.version)}`,
      );
    }
    if (change.origin !== 'local' || node.incarnation !== incarnation) return;
    for (const other of this.nodes) {
      if (other === node) continue;
      const copies = this.rng.chance(this.gossipDuplication) ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        if (!this.reachable(node, other) || this.rng.chance(this.gossipLoss)) continue;
        this.queue.schedule(this.rng.int(1, this.delayMsMax), () => {
          if (!this.reachable(node, other)) return;
          this.stats.gossipDelivered++;
          void other.replica!.applyRemote([change.entry]).then(
            (report) => (this.stats.clockDriftRejections += report.rejectedClockDrift),
            () => undefined,
          );
        });
      }
    }
  }

  // --- sync sessions -----------------------------------------------------------------------

  private startSession(from: SimNode, to: SimNode): void {
    if (!this.reachable(from, to)) {
      from.membership!.sessionEnded(to.nodeId, { ok: false, result: 'unreachable', inSync: false, startedMs: this.queue.nowMs }, this.queue.nowMs);
      return;
    }
    this.stats.sessions++;
    const busy = to.inbound >= inboundSessionsMax || !to.membership!.acceptsInbound();
    const refuse = busy ? { reason: RefuseReason.busy, message: 'busy' } : undefined;
    to.inbound++;
    const side = (node: SimNode): Side => ({
      node,
      incarnation: node.incarnation,
      inbox: new FrameChannel(),
      lastDeliveryAtMs: 0,
      result: undefined,
    });
    const unchecked = { encodingsUnchecked: this.options.encodingsUnchecked };
    const initiator = new SyncInitiator(
      { ...from.replica!.syncContext({ cluster, wallClockMs: () => this.wallOf(from), peerNodeId: to.nodeId }), ...unchecked },
      this.rng.u32(),
    );
    this.checkDeltaOnDescent(from, to, initiator);
    const responder = new SyncResponder({ ...to.replica!.syncContext({ cluster }), ...unchecked }, refuse ? { refuse } : {});
    const session: Session = { initiator: side(from), responder: side(to), over: false, startedMs: this.queue.nowMs };
    this.sessions.add(session);
    this.queue.schedule(sessionTimeoutMs, () => this.abort(session));
    this.drive(session, session.initiator, initiator);
    this.drive(session, session.responder, responder);
  }

  /**
   * Invariant 7: wrap the initiator's frame handling so that at its first Children frame after
   * a delta (the driver has merged everything received before it), it holds every version the
   * responder's index lists up to the position the responder reported.
   */
  private checkDeltaOnDescent(from: SimNode, to: SimNode, initiator: SyncInitiator): void {
    const handle = initiator.handle.bind(initiator);
    let checked = false;
    const incarnation = from.incarnation;
    // An entry refused for clock drift during the session was stamped past this node's wall
    // at that time plus the drift limit: those are rightly missing. The wall grows, except when
    // the faults end and every skew is reset (at most once a session): the lower of the wall
    // at the start and at the check bounds it.
    const refusedAboveMs = this.wallOf(from) + clockDriftMsMax;
    initiator.handle = (bytes: Uint8Array): AsyncGenerator<SyncEffect> => {
      if (!checked && bytes[1] === FrameType.children && initiator.deltaAnnounced && from.incarnation === incarnation) {
        checked = true;
        this.stats.deltaSessions++;
        const upTo = initiator.peerPosition!.seq;
        const wallMs = this.wallOf(from);
        for (const [seq, key] of to.disk.indexRows()) {
          if (seq > upTo) break;
          const theirs = to.disk.peekEntry(key)!;
          if (hlcWallMs(theirs.version.hlc) > Math.min(refusedAboveMs, wallMs + clockDriftMsMax)) continue;
          const ours = from.disk.peekEntry(key);
          if (ours === undefined || compareVersions(ours.version, theirs.version) < 0) {
            this.violations.push(
              `node ${from.index} (wall ${wallMs}) merged a delta from node ${to.index} since ${from.replica?.watermarkOf(to.nodeId)?.seq} up to seq ${upTo} but lacks ${key}@${versionText(theirs.version)} (row ${seq}; holds ${ours ? versionText(ours.version) : 'nothing'})`,
            );
            break;
          }
        }
      }
      return handle(bytes);
    };
  }

  /**
   * Every third node (index 1, 4, 7) is a padding peer: the Entries frames it sends carry each
   * entry with its key length as a two-byte varint (non-minimal, still valid to decode), as a
   * peer with another encoder could. Receivers must store those entries encoded again, not as
   * received (invariant 11). Chosen by index, not by the Prng, so the seeds' runs stay as they were.
   */
  private padded(node: SimNode, frame: Uint8Array): Uint8Array {
    if (node.index % 3 !== 1 || frame[1] !== FrameType.entries) return frame;
    const decoded = decodeFrame(frame, 1, valueBytesMax);
    if (decoded.type !== FrameType.entries) return frame;
    const w = new ByteWriter().u8(frame[0]!).u8(FrameType.entries).varint(decoded.entries.length);
    let padded = false;
    for (const entry of decoded.entries) {
      const bytes = encodeEntry(entry);
      const keyBytes = bytes[0]!;
      if (keyBytes >= 0x80) w.raw(bytes);
      else {
        w.u8(0x80 | keyBytes).u8(0).raw(bytes.subarray(1));
        padded = true;
      }
    }
    if (padded) this.stats.paddedFrames++;
    return w.finish();
  }

  /** Run one side through the core's session driver; its frames go out through `transmit`. */
  private drive(session: Session, side: Side, machine: SyncInitiator | SyncResponder): void {
    const transport: FrameTransport = {
      send: (frame) => this.transmit(session, side, (to) => to.inbox.push(this.padded(side.node, frame)), true),
      receive: () => side.inbox.receive(),
      close: () => this.transmit(session, side, (to) => to.inbox.close(), false),
    };
    const apply = async (entries: ReceivedEntries): Promise<void> => {
      const replica = !session.over && side.node.incarnation === side.incarnation ? side.node.replica : undefined;
      if (!replica) throw new Error('session aborted or node down');
      const commitsBefore = replica.receivedCommitCount;
      const report = await replica.applyReceived(entries);
      // Commits of this or another session's frames that ran meanwhile: a count that the path ran.
      this.stats.receivedCommits += replica.receivedCommitCount - commitsBefore;
      this.stats.clockDriftRejections += report.rejectedClockDrift;
    };
    // As production: the responder measures the initiator's clock from its Hello.
    const onHello = (peerWallMs: number, entryCount: number): void => {
      const peer = side === session.responder ? session.initiator.node : undefined;
      if (peer && side.node.incarnation === side.incarnation) side.node.membership?.hello(peer.peerId, peerWallMs, entryCount, this.wallOf(side.node));
    };
    driveSession(machine, transport, { apply, onHello }).then(
      (result) => this.finish(session, side, result),
      () => this.abort(session),
    );
  }

  /** Deliver a frame (or the close) to the other side, in order, after a random delay. */
  private transmit(session: Session, from: Side, deliver: (to: Side) => void, lossy: boolean): void {
    if (session.over) throw new Error('session aborted');
    const to = from === session.initiator ? session.responder : session.initiator;
    if (!this.reachable(from.node, to.node) || (lossy && this.rng.chance(this.frameLoss))) {
      this.abort(session);
      throw new Error('link broke');
    }
    const atMs = Math.max(this.queue.nowMs + this.rng.int(1, this.delayMsMax), to.lastDeliveryAtMs);
    to.lastDeliveryAtMs = atMs;
    this.queue.schedule(atMs - this.queue.nowMs, () => {
      if (!session.over) deliver(to);
    });
  }

  private finish(session: Session, side: Side, result: SyncResult): void {
    if (session.over) return; // aborted while its last effects ran: as if never finished
    side.result = result;
    if (side === session.initiator) {
      const ok = result.outcome === 'in-sync' || result.outcome === 'synced';
      if (!ok) this.stats.sessionsFailed++;
      if (side.node.incarnation === side.incarnation && side.node.replica?.recordSession(session.responder.node.nodeId, result)) this.stats.watermarksRecorded++;
      if (side.node.incarnation === side.incarnation) side.node.membership?.sessionEnded(session.responder.node.nodeId, { ok, result: result.outcome, inSync: ok, startedMs: session.startedMs, refusedBusy: result.refuseReason === 'busy' }, this.queue.nowMs);
    } else {
      const ok = result.outcome === 'in-sync' || result.outcome === 'synced';
      const watermarkHeld = side.node.replica?.watermarkOf(session.initiator.node.nodeId) !== undefined;
      if (side.node.incarnation === side.incarnation) side.node.membership?.sessionServed(session.initiator.node.peerId, { ok, result: result.outcome, watermarkHeld }, this.queue.nowMs);
    }
    if (session.initiator.result && session.responder.result) this.close(session);
  }

  private abort(session: Session): void {
    if (session.over) return;
    if (!session.initiator.result) {
      this.stats.sessionsFailed++;
      const { node, incarnation } = session.initiator;
      if (node.incarnation === incarnation) node.membership?.sessionEnded(session.responder.node.nodeId, { ok: false, result: 'aborted', inSync: false, startedMs: session.startedMs }, this.queue.nowMs);
    }
    const broken = new Error('session aborted');
    session.initiator.inbox.fail(broken);
    session.responder.inbox.fail(broken);
    this.close(session);
  }

  private close(session: Session): void {
    if (session.over) return;
    session.over = true;
    this.sessions.delete(session);
    const { node, incarnation } = session.responder;
    if (node.incarnation === incarnation) node.inbound = Math.max(0, node.inbound - 1);
  }

  // --- faults ------------------------------------------------------------------------------

  private scheduleFaults(): void {
    const windowMs = this.options.faultWindowMs;
    // One crash whose restart sets the clock back, always; then 1..6 faults of any kind.
    this.queue.schedule(this.rng.int(0, windowMs - 1), () => this.crashSomeone(true));
    const faults = this.rng.int(1, 6);
    for (let f = 0; f < faults; f++) {
      const atMs = this.rng.int(0, windowMs - 1);
      const kind = this.rng.int(0, 2);
      if (kind === 0) this.queue.schedule(atMs, () => this.partition());
      else if (kind === 1) this.queue.schedule(atMs, () => this.crashSomeone());
      else this.queue.schedule(atMs, () => this.stopSomeone());
    }
    for (let c = this.rng.int(1, 4); c > 0; c--) this.queue.schedule(this.rng.int(0, windowMs - 1), () => this.checkpointThenCrash());
    // The network replays old membership messages now and then (a relay delivering late).
    for (let r = this.rng.int(0, 5); r > 0; r--) {
      this.queue.schedule(this.rng.int(0, windowMs - 1), () => {
        if (this.faultsOver || this.sentMemberMessages.length === 0) return;
        this.deliverMember(this.rng.pick(this.nodes), this.rng.pick(this.sentMemberMessages));
      });
    }
  }

  private partition(): void {
    if (this.faultsOver) return;
    this.stats.partitions++;
    const before = this.nodes.map((n) => n.group);
    for (const node of this.nodes) node.group = this.rng.int(0, 1);
    for (const a of this.nodes) {
      for (const b of this.nodes) {
        if (a.index < b.index && before[a.index] === before[b.index] && a.group !== b.group) this.disconnect(a, b);
      }
    }
    this.queue.schedule(this.rng.int(300, 5000), () => this.heal());
  }

  private heal(): void {
    for (const node of this.nodes) node.group = 0;
    for (const node of this.nodes) if (this.isUp(node)) this.connectAll(node);
  }

  /** A crash and a restart; the clock is sometimes (always with `setBack`) set back across it. */
  private crashSomeone(setBack = false): void {
    if (this.faultsOver) return;
    const node = this.rng.pick(this.nodes);
    if (!this.isUp(node)) return;
    this.crash(node);
    setBack ||= this.rng.chance(0.3);
    // Set back by more than the downtime plus the drift limit: the stored bound is then ahead.
    this.queue.schedule(setBack ? this.rng.int(100, 400) : this.rng.int(100, 5000), () => {
      if (!setBack) return void this.restart(node);
      node.skewMs -= this.rng.int(1500, 3000); // clock set back across the restart
      // Its client writes to it again at once: the write must not be stamped where peers refuse it.
      void this.restart(node).then(() => {
        for (let i = 0; i < 3; i++) this.writeOn(node, `k${this.rng.int(0, this.options.keys - 1)}`);
      });
    });
  }

  private stopSomeone(): void {
    if (this.faultsOver) return;
    const node = this.rng.pick(this.nodes);
    if (!this.isUp(node)) return;
    this.stop(node);
    this.queue.schedule(this.rng.int(100, 5000), () => void this.restart(node));
  }

  private async endFaults(): Promise<void> {
    this.faultsOver = true;
    this.gossipLoss = 0;
    this.gossipDuplication = 0;
    this.frameLoss = 0;
    for (const node of this.nodes) node.skewMs = this.rng.int(-50, 50);
    this.heal();
    for (const node of this.nodes) await this.restart(node);
  }

  // --- the checker -------------------------------------------------------------------------

  /** Invariant 6 at the end: one index row per stored key, at its entry's seq, none past the replica's last seq. */
  private checkIndex(node: SimNode): void {
    const rows = node.disk.indexRows();
    const seen = new Set<string>();
    let previous = 0;
    for (const [seq, key] of rows) {
      if (seq <= previous) this.violations.push(`node ${node.index}'s index is out of order at seq ${seq}`);
      previous = seq;
      if (seen.has(key)) this.violations.push(`node ${node.index}'s index has two rows for ${key}`);
      seen.add(key);
      if (node.disk.seqOf(key) !== seq) this.violations.push(`node ${node.index}'s index row ${seq} names ${key}, stored at seq ${node.disk.seqOf(key) ?? 'none'}`);
    }
    if (seen.size !== node.replica!.entryCount) this.violations.push(`node ${node.index}'s index has ${seen.size} rows for ${node.replica!.entryCount} entries`);
    if (previous > node.replica!.position().seq) this.violations.push(`node ${node.index}'s index has seq ${previous} past the replica's ${node.replica!.position().seq}`);
  }

  /** Invariant 11: every row stored with the bytes it was received in holds encodeEntry's bytes of its entry. */
  private checkCanonicalRows(node: SimNode): void {
    for (const { entry, encoded } of node.disk.storedEncodings()) {
      if (encoded === undefined) continue;
      this.stats.rowsKeptAsReceived++;
      if (Buffer.compare(encoded, encodeEntry(entry)) !== 0) {
        this.violations.push(`node ${node.index} stores ${entry.key} with bytes that are not its encoding (${encoded.byteLength} bytes, canonical ${encodeEntry(entry).byteLength})`);
        return;
      }
    }
  }

  private async check(): Promise<void> {
    const states: Map<string, string>[] = [];
    for (const node of this.nodes) {
      if (!node.replica) {
        this.violations.push(`node ${node.index} is down at the end`);
        return;
      }
      const state = new Map<string, string>();
      for await (const entry of node.disk.scanHash('')) {
        state.set(entry.key, `${versionText(entry.version)}=${entry.value === null ? 'tombstone' : toHex(entry.value)}`);
      }
      states.push(state);
    }
    const reference = states[0]!;
    this.stats.entries = reference.size;
    const root0 = toHex(this.nodes[0]!.replica!.root().digest);
    for (let i = 1; i < states.length; i++) {
      const diff = describeDifference(reference, states[i]!);
      if (diff) this.violations.push(`node ${i} differs from node 0: ${diff}`);
      const root = toHex(this.nodes[i]!.replica!.root().digest);
      if (root !== root0) this.violations.push(`node ${i} root ${root.slice(0, 12)} != node 0 root ${root0.slice(0, 12)}`);
    }
    for (const node of this.nodes) {
      const members = new Map(node.membership!.list().map((m) => [m.nodeId, m]));
      for (const other of this.nodes) {
        if (other === node) continue;
        const member = members.get(other.nodeId);
        if (member?.state !== 'up' || member.incarnation !== other.memberIncarnation) {
          this.violations.push(
            `node ${node.index} shows node ${other.index} as ${member ? `${member.state} at incarnation ${member.incarnation}` : 'unknown'}, not up at incarnation ${other.memberIncarnation}`,
          );
        }
      }
    }
    for (const node of this.nodes) this.checkIndex(node);
    for (const node of this.nodes) this.checkCanonicalRows(node);
    for (const node of this.nodes) {
      const lagging = node.replica!.laggingWatermarks(1);
      if (lagging.length > 0) {
        this.violations.push(`node ${node.index} ends with catch-up watermarks behind its own applied entries for ${lagging.map((id) => `node ${Number.parseInt(id, 16)}`).join(', ')}`);
      }
    }
    for (const node of this.nodes) {
      for (const [key, version] of this.acked) {
        const held = (await node.disk.get(key))?.version;
        if (!held || compareVersions(held, version) < 0) {
          this.violations.push(
            `node ${node.index} lost acknowledged write ${key}@${versionText(version)} (holds ${held ? versionText(held) : 'nothing'})`,
          );
        }
      }
    }
  }
}

function versionText(version: Version): string {
  return `${hlcToString(version.hlc)}/${version.node.replace(/^0+(?=.)/, '')}`;
}

function describeDifference(a: Map<string, string>, b: Map<string, string>): string | undefined {
  for (const [key, value] of a) if (b.get(key) !== value) return `${key}: ${value} vs ${b.get(key) ?? 'missing'}`;
  for (const [key, value] of b) if (!a.has(key)) return `${key}: missing vs ${value}`;
  return undefined;
}

function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function runSimulation(options: SimOptions): Promise<SimReport> {
  return new Simulation(options).run();
}
