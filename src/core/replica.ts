/**
 * A replica: one node's entries, Merkle tree and clock, and the only path by which entries
 * change. Local writes (`put`, `delete`) and remote entries (`applyRemote`, from gossip or
 * sync) go through one queue that folds whatever is waiting into a single storage batch
 * (group commit): a burst of writes costs one LevelDB batch, not one each, and the merge for
 * a key never races with another write to it.
 *
 * For each queued entry: a remote stamp too far in the future is refused (ClockDriftError,
 * counted; sync offers it again later); otherwise the merge rule decides against the current
 * version, read from the store unless a key filter says the store cannot hold the key. Each
 * key is hashed once a batch; the store and the tree reuse the hash. Winners are written
 * atomically with the HLC bound; their tree digests are computed while the store writes, but
 * only after the write succeeds are the tree updated (O(depth) per key), the callers
 * acknowledged and `onApplied` told.
 *
 * At open, the tree and key filter come from the snapshot the last clean stop saved
 * (`saveSnapshot`; replica-snapshot.ts), or a checkpoint while running (`checkpoint`, in its
 * own turn of the write queue), if the store vouches no write came after it and it passes
 * its checks; or from it with the writes after it replayed (replica-replay.ts: each commit
 * stores its tombstone count for that); else from one scan of every entry (`openedFrom` says
 * which, and why).
 *
 * The applied sequence (docs/design-applied-sequence.md): every commit numbers its winners
 * after the last seq, gap-free, in the order they are written; the store keeps them with the
 * entries and indexes them (store.ts), deleting each key's previous index row in the same
 * batch (the commit read the previous version, and its seq, anyway). `seqLast` moves with the
 * tree, in one synchronous step after the write is durable, so a position (epoch, seq) read
 * together with the root describes exactly that root. The store epoch (16 random bytes, meta
 * 'epoch', made at the first open) tells a peer's watermark from another life of this store.
 * The replica also keeps the sync watermarks (sync-watermarks.ts), persisted as a meta row.
 *
 * TTL (src/core/ttl.ts): a local write may carry a TTL; its entry gets `expiresAtMs` from its
 * own stamp. A conditional write judges an expired value as the tombstone it reads as, and
 * `expireUnchanged` (the sweeper's hook) replaces expired values by their tombstones, same
 * version, in a commit of the write queue.
 *
 * Pure: the store, the wall clock, the randomness and the merge rule are passed in.
 */
import {
  checkValue,
  compareVersions,
  conditionHolds,
  decodeEntry,
  encodedEntryExpires,
  conditionText,
  versionToText,
  type WriteCondition,
  entryDigest,
  canonicalEntryDigestText,
  entryDigestText,
  isNodeId,
  keyHashText,
  lastWriterWins,
  type Entry,
  type HashText,
  type MergeRule,
  type NodeId,
  type Version,
  validateKey,
} from './entry.js';
import { ClockAheadError, ClockDriftError, CkvError, ConditionFailedError, VersionFromFutureError, assert } from './errors.js';
import { HybridClock, hlcPack, hlcWallMs, type Hlc } from './hlc.js';
import { expiredTombstone, isExpired, stampedEntry, visibleAt } from './ttl.js';
import { KeyFilter } from './key-filter.js';
import { keyBytesMax, merkleDepthDefault, remoteQueueEntriesMax, valueBytesMax, versionCacheBytesMax, writeBatchOpsMax } from './limits.js';
import { VersionCache } from './version-cache.js';
import { MerkleTree } from './merkle.js';
import { partitionCount, partitionHexDigits, partitionOfHash, type PartitionId } from './placement.js';
import type { Rng, WallClockMs } from './ports.js';
import { epochBytes, type SyncPosition } from './sync-frames.js';
import { SyncWatermarks } from './sync-watermarks.js';
import { decodeSnapshot, encodeSnapshot, type ReplicaState, type SnapshotRejection } from './replica-snapshot.js';
import { replayTail } from './replica-replay.js';
import { scanReplicaState } from './replica-scan.js';
import type { ReceivedEntries } from './received-entries.js';
import type { Store } from './store.js';
import { noTombstone, TombstoneBounds } from './tombstone-bounds.js';
import type { SyncContext, SyncResult } from './sync-session.js';

/** Meta rows the replica owns. */
const epochMetaName = 'epoch';
const watermarksMetaName = 'sync-watermarks';

export type Origin = 'local' | 'remote';

export interface AppliedChange {
  /** Made when first asked for, for a change applied from received bytes (Replica.applyReceived). */
  readonly entry: Entry;
  /** entry.version.hlc, without making the entry. */
  readonly hlc: Hlc;
  /** Whether the entry carries an expiry (entry.expiresAtMs), without making the entry. */
  readonly expires: boolean;
  /** keyHashText(entry.key), computed once by the commit: placement and gossip reuse it. */
  readonly keyHash: HashText;
  readonly previous: Version | undefined;
  readonly origin: Origin;
}

export interface ApplyReport {
  applied: number;
  /** Older than or equal to what we hold: nothing to do. */
  stale: number;
  /** Stamped too far in our future: refused for now. */
  rejectedClockDrift: number;
  /** Key or value outside the limits: a peer bug or attack; dropped. */
  rejectedInvalid: number;
  /** A key this node does not hold (placement): not ours to store; dropped. */
  rejectedNotHeld: number;
  /** What became of each entry, in order (only when asked: the replicate protocol answers per entry). */
  outcomes?: ApplyOutcome[];
}

/** What applyRemote did with one entry (the counts of ApplyReport, per entry). */
export type ApplyOutcome = 'applied' | 'stale' | 'clock-drift' | 'invalid' | 'not-held';

export interface ReplicaOptions {
  nodeId: NodeId;
  store: Store;
  /** The wall clock in milliseconds; the core never reads one itself. */
  wallClockMs: WallClockMs;
  depth?: number;
  driftMsMax?: number;
  valueBytesMax?: number;
  /** Only the simulator's canary replaces this. */
  mergeRule?: MergeRule;
  /** Remote entries queued before applyRemote waits for room (default remoteQueueEntriesMax). */
  remoteQueueEntriesMax?: number;
  /**
   * Whether this node holds the key with this hash (src/core/placement.ts). Remote entries of
   * keys it does not hold are refused and counted (rejectedNotHeld). Default: every key (full
   * replication). Local writes are not checked: routing them to owners is the caller's job.
   */
  holds?: (keyHash: HashText) => boolean;
  /**
   * How far this node's wall clock is ahead of its peers' (ms; membership measures it from
   * their Hellos). Past driftMsMax, local writes are refused (ClockAheadError): peers would
   * refuse their stamps. Default: 0 (no peers, or not measured).
   */
  clockAheadOfPeersMs?: () => number;
  /**
   * Start the clock at the wall clock even if the persisted bound, or a stored entry, is
   * ahead of it: the operator's way out after running with a clock set ahead (`ckv node
   * start --reset-clock-bound`). Entries stamped in the future keep their versions; a local
   * write to one of those keys is refused (VersionFromFutureError) until the clock passes it.
   */
  resetClockBound?: boolean;
  /** Only the simulator's canary sets this false: local writes are then stamped however far ahead. */
  refuseWhenClockAhead?: boolean;
  /** Use a snapshot saved at a clean stop or a checkpoint, if current or behind (default true; tests set false to force the scan). */
  useSnapshot?: boolean;
  /** Only the simulator's replay canary sets this (replica-replay.ts, ReplayOptions.addsOnly). */
  replayAddsOnly?: boolean;
  /**
   * Randomness for the store epoch, made once when the store has none. Without it (tests) the
   * epoch is derived from the node id and the wall clock: distinct across a wipe and restart.
   */
  rng?: Rng;
  /**
   * Memory for the versions of keys being rewritten (src/core/version-cache.ts): a commit over
   * a cached key reads nothing from the store. Default versionCacheBytesMax; 0 turns it off.
   */
  versionCacheBytesMax?: number;
  /** Only the simulator's version-cache canary sets this: commits do not update the cache (it goes stale). */
  versionCacheNotUpdated?: boolean;
  /**
   * Only the simulator's bulk-apply canary sets this: a commit of received bytes
   * (commitReceived) takes every key for one held nowhere, reading no stored version, so an
   * older received version replaces a newer one.
   */
  receivedIgnoresStored?: boolean;
  /** Only the simulator's delta canary sets this (SyncContext.dropLastDeltaEntry). */
  dropLastDeltaEntry?: boolean;
  /** Only the simulator's bounds canary sets this: the open claims no partition holds a tombstone (a wrong bound). */
  claimNoTombstonesAtOpen?: boolean;
  /**
   * Only the simulator's checkpoint canary sets this: `checkpoint()` saves at once, beside a
   * commit in flight, instead of in its turn in the write queue (a wrong snapshot).
   */
  checkpointBesideWrites?: boolean;
  /**
   * Tombstone GC (src/node/gc-holder.ts): whether a remote entry of a key this replica does not
   * hold must be refused because its version is at or below the collected floor of its
   * partition (a collected key coming back from a stale node). Refused entries count as stale.
   * `entry`: the entry object the caller of applyRemote handed over; undefined for one applied
   * from received bytes (applyReceived), which no caller holds.
   * Default: none refused.
   */
  refuseResurrection?: (keyHash: HashText, hlc: Hlc, entry: Entry | undefined) => boolean;
  /**
   * Told of each commit's changes once they are durable: one call a commit, its changes in
   * commit order, never with none. A commit's changes share what the node reads once for them
   * (the wall clock, whether anyone watches, its counters): a catch-up commits thousands at a
   * time.
   */
  onApplied?: (changes: readonly AppliedChange[]) => void;
}

/** What a sync session needs besides the replica's tree and store (see `Replica.syncContext`). */
export interface SyncContextOptions {
  cluster: string;
  /** Initiator only: projection width it asks for (default childDigestBytesDefault). */
  childDigestBytes?: number;
  /** Initiator only: the wall clock sent in Hello, so the responder can measure our offset. */
  wallClockMs?: WallClockMs;
  /** Initiator only: the peer's node id, to name its watermark as `since` (catch-up by delta). */
  peerNodeId?: string;
  /** Initiator only: false toward a peer that does not read positions (sync protocol 1.0.0). */
  positions?: boolean;
  /**
   * Initiator only: false to leave `since` out (no delta; the Position is still asked for, so
   * an in-sync session still records a watermark). Default true.
   */
  delta?: boolean;
  /**
   * Partitioned mode: the partitions a session with this peer covers (a bitmap, layout.ts:
   * `ownership.sharedPartitions(peer)`); undefined: every partition (full replication).
   */
  partitions?: Uint8Array | undefined;
}

/** The Merkle root: what two replicas compare first. */
export interface ReplicaRoot {
  /** 32 bytes, a copy. */
  readonly digest: Uint8Array;
  /** Entries held, tombstones included. */
  readonly count: number;
}

/**
 * How `Replica.open` built its tree and key filter: from the snapshot a clean stop or a
 * checkpoint saved (`replayed`: the entries written after it, replayed on top of it,
 * replica-replay.ts; absent when none were), or by scanning every entry, and then why: no
 * snapshot, a stale one (changed in a way a replay cannot follow), one too far behind to
 * replay (`behind`: more entries written after it than replaying is worth), or one it refused.
 */
export type OpenedFrom =
  | { readonly source: 'snapshot'; readonly replayed?: number }
  | { readonly source: 'scan'; readonly snapshot: 'none' | 'stale' | 'behind' | 'unused' | SnapshotRejection };

/** A local write: a value, or null for a tombstone; applied only if `condition` holds. */
export interface LocalWrite {
  readonly key: string;
  readonly value: Uint8Array | null;
  readonly condition?: WriteCondition | undefined;
  /** A value that expires this long after its stamp (ms, checked by the caller: ttl.ts checkTtlMs). */
  readonly ttlMs?: number | undefined;
}

type RemoteOp = {
  kind: 'remote';
  entries: readonly Entry[];
  /** Per entry, its canonical bytes as received, if known (applyRemote's `encodings`). */
  encodings: readonly (Uint8Array | undefined)[] | undefined;
  outcomes: boolean;
  origin: Origin;
  resolve: (r: ApplyReport) => void;
  reject: (e: Error) => void;
};

/** applyReceived's op: entries as their received bytes (received-entries.ts), all canonical. */
type ReceivedOp = {
  kind: 'received';
  batch: ReceivedEntries;
  outcomes: boolean;
  origin: Origin;
  resolve: (r: ApplyReport) => void;
  reject: (e: Error) => void;
};

/** An entry the purge drops if it still holds exactly this version (see `dropUnchanged`). */
export interface DropRequest {
  readonly key: string;
  readonly version: Version;
}

/** What `dropUnchanged` removed: entries, and their keys' and values' bytes. */
export interface DropReport {
  dropped: number;
  bytes: number;
  /** Changed since the version given (or gone): kept. */
  changed: number;
}

type DropOp = { kind: 'drop'; drops: readonly DropRequest[]; resolve: (report: DropReport) => void; reject: (e: Error) => void };
/** A checkpoint (see `checkpoint`): alone in its turn of the queue, so no write comes between its state and its save. */
type CheckpointOp = { kind: 'checkpoint'; resolve: (result: CheckpointResult) => void; reject: (e: Error) => void };

/** What `checkpoint` did: saved a snapshot, or found the last one still current; either way the store holds one as of `changes` (storeChangeCount). */
export interface CheckpointResult {
  saved: boolean;
  changes: number;
}
/** Ops that run alone, not merged into a commit. */
type AloneOp = DropOp | CheckpointOp;
/** The sweeper's request: the tombstones of these expired values, if the keys still hold them. */
type ExpireOp = { kind: 'expire'; expiring: readonly DropRequest[]; resolve: (expired: Entry[]) => void; reject: (e: Error) => void };

type Op =
  | AloneOp
  | { kind: 'local'; key: string; value: Uint8Array | null; condition: WriteCondition | undefined; ttlMs: number | undefined; resolve: (v: Version) => void; reject: (e: Error) => void }
  | { kind: 'localMany'; writes: readonly LocalWrite[]; resolve: (v: (Version | Error)[]) => void; reject: (e: Error) => void }
  | RemoteOp
  | ReceivedOp
  | ExpireOp;

/** Ops a commit takes together (applyReceived's are decoded first unless all are: commitReceived). */
type CommitOp = Exclude<Op, AloneOp | ReceivedOp>;

/** Entries a remote op holds (what it counts against remoteQueueEntriesMax). */
function remoteEntries(op: RemoteOp | ReceivedOp): number {
  return op.kind === 'remote' ? op.entries.length : op.batch.length;
}

/** A key touched by one commit. */
interface Slot {
  readonly key: string;
  readonly hash: HashText;
  before: Entry | undefined;
  /** The seq stored with `before` (its index row, which the commit deletes). */
  beforeSeq: number | undefined;
  winner: Entry | undefined;
  /** encodeEntry(winner) as a peer sent it, when the winner is a received entry whose bytes came along; else undefined. */
  winnerEncoding: Uint8Array | undefined;
}

/** The keys of one commit: by key, and in first-touch order (the order they are written in). */
interface Slots {
  readonly byKey: Map<string, Slot>;
  readonly list: Slot[];
}

type OpResult = Version | (Version | Error)[] | ApplyReport | Entry[] | Error;

/** What merge decided: the slots with a winner, the changes for onApplied, a result per op. */
interface Merged {
  readonly written: Slot[];
  readonly changes: AppliedChange[];
  readonly results: OpResult[];
}

export class ReplicaClosedError extends CkvError {
  constructor() {
    super('ERR_REPLICA_CLOSED', 'the node is stopping');
    this.name = 'ReplicaClosedError';
  }
}

export class Replica {
  readonly nodeId: NodeId;
  readonly valueBytesMax: number;
  private readonly tree: MerkleTree;
  private readonly clock: HybridClock;
  private readonly store: Store;
  private readonly wallClockMs: WallClockMs;
  private readonly mergeRule: MergeRule;
  private readonly onApplied: ((changes: readonly AppliedChange[]) => void) | undefined;
  private readonly holds: ((keyHash: HashText) => boolean) | undefined;
  private readonly clockAheadOfPeersMs: (() => number) | undefined;
  private readonly refuseWhenClockAhead: boolean;
  private queue: Op[] = [];
  private readonly remoteQueueEntriesMax: number;
  /** Remote entries admitted to `queue` and not yet committed (queued or in the current batch). */
  private remoteQueued = 0;
  /** applyRemote calls waiting for room, in call order. */
  private readonly waitingForRoom: (RemoteOp | ReceivedOp)[] = [];
  private roomListeners: { entries: number; resolve: () => void }[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private tombstones = 0;
  /**
   * Which partitions may hold a tombstone older than a given HLC (tombstone GC reads only
   * those): known at open (the scan's, or the snapshot's), then every tombstone made durable
   * is noted by persist().
   */
  readonly tombstoneBounds: TombstoneBounds;
  /** Keys the store may hold: a write of any other key skips the store read. */
  private readonly keys: KeyFilter;
  /** The greatest HLC of any stored entry: saved in the snapshot, so a start from it resumes the clock as a scan would. */
  private entryHlcMax: Hlc;
  readonly openedFrom: OpenedFrom;
  /** The last seq given to a durable change (moves with the tree). */
  private seqLast: number;
  /** This store's epoch (16 bytes). */
  readonly epoch: Uint8Array;
  private readonly watermarks: SyncWatermarks;
  /** The last watermark row write: they run one at a time, in order. */
  private watermarksWrite: Promise<void> = Promise.resolve();
  private readonly dropLastDeltaEntry: boolean;
  /** The last stored version of keys being rewritten (./version-cache.ts): what collect need not read. */
  private readonly versions: VersionCache;
  private readonly versionCacheNotUpdated: boolean;
  private readonly receivedIgnoresStored: boolean;
  private receivedCommits = 0;
  private readonly checkpointBesideWrites: boolean;
  /** Entries written or removed since open (counted as the store write starts). */
  private storeChanges = 0;
  /** `storeChanges` when the last checkpoint was saved; undefined: none saved since open (the open took the last one). */
  private checkpointedChanges: number | undefined;
  /** A store write failed since open (storeWriteFailed): no snapshot may be saved from this tree. */
  private treeUncertain = false;
  private readonly refuseResurrection: ((keyHash: HashText, hlc: Hlc, entry: Entry | undefined) => boolean) | undefined;
  /** The clock bound when the commit in progress started: every local stamp at or below it is durable. */
  private settledBound: Hlc = 0n;

  private constructor(
    options: ReplicaOptions,
    state: ReplicaState,
    clock: HybridClock,
    openedFrom: OpenedFrom,
    sequence: { seqLast: number; epoch: Uint8Array; watermarks: SyncWatermarks },
  ) {
    this.seqLast = sequence.seqLast;
    this.epoch = sequence.epoch;
    this.watermarks = sequence.watermarks;
    this.watermarks.assumeProvenAt(this.seqLast);
    this.dropLastDeltaEntry = options.dropLastDeltaEntry ?? false;
    this.versions = new VersionCache(options.versionCacheBytesMax ?? versionCacheBytesMax);
    this.versionCacheNotUpdated = options.versionCacheNotUpdated ?? false;
    this.receivedIgnoresStored = options.receivedIgnoresStored ?? false;
    this.checkpointBesideWrites = options.checkpointBesideWrites ?? false;
    this.refuseResurrection = options.refuseResurrection;
    this.nodeId = options.nodeId;
    this.store = options.store;
    this.wallClockMs = options.wallClockMs;
    this.valueBytesMax = options.valueBytesMax ?? valueBytesMax;
    this.mergeRule = options.mergeRule ?? lastWriterWins;
    this.onApplied = options.onApplied;
    this.holds = options.holds;
    this.clockAheadOfPeersMs = options.clockAheadOfPeersMs;
    this.refuseWhenClockAhead = options.refuseWhenClockAhead ?? true;
    this.remoteQueueEntriesMax = options.remoteQueueEntriesMax ?? remoteQueueEntriesMax;
    this.tree = state.tree;
    this.tombstoneBounds = new TombstoneBounds(options.claimNoTombstonesAtOpen ? new Array<Hlc>(partitionCount).fill(noTombstone) : state.tombstoneBounds);
    this.clock = clock;
    this.tombstones = state.tombstones;
    this.keys = state.keys;
    this.entryHlcMax = state.entryHlcMax;
    this.openedFrom = openedFrom;
  }

  /**
   * Open the store and rebuild the tree and key filter: from the snapshot the last clean stop
   * or checkpoint saved, if the store says no write came after it and it checks out
   * (replica-snapshot.ts); from it and the writes after it, replayed, if only writes came
   * after it and they are few enough (replica-replay.ts); else in one scan of every entry. A
   * current snapshot stays current until the first write (the store's rule), so a crash
   * before it starts from the snapshot again. The clock resumes above anything stored.
   */
  static async open(options: ReplicaOptions): Promise<Replica> {
    await options.store.open();
    const depth = options.depth ?? merkleDepthDefault;
    const taken = await options.store.readSnapshot();
    let state: ReplicaState | undefined;
    let openedFrom: OpenedFrom;
    if (taken.state === 'none' || taken.state === 'stale') openedFrom = { source: 'scan', snapshot: taken.state };
    else if (options.useSnapshot === false) openedFrom = { source: 'scan', snapshot: 'unused' };
    else {
      const decoded = decodeSnapshot(taken.bytes, depth);
      if (!('state' in decoded)) openedFrom = { source: 'scan', snapshot: decoded.rejected };
      else if (taken.state === 'current') {
        state = decoded.state;
        openedFrom = { source: 'snapshot' };
      } else {
        const replayed = await replayTail(options.store, decoded.state, taken, { addsOnly: options.replayAddsOnly === true });
        state = replayed?.state;
        openedFrom = replayed === undefined ? { source: 'scan', snapshot: 'behind' } : { source: 'snapshot', replayed: replayed.entries };
      }
    }
    state ??= await scanReplicaState(options.store, depth);
    let last: Hlc = await options.store.readHlc();
    if (state.entryHlcMax > last) last = state.entryHlcMax;
    if (options.resetClockBound) {
      const wall = hlcPack(options.wallClockMs(), 0);
      if (last > wall) last = wall;
    }
    const clockOptions = options.driftMsMax === undefined ? { last } : { last, driftMsMax: options.driftMsMax };
    const sequence = {
      seqLast: await options.store.readSeqLast(),
      epoch: await Replica.openEpoch(options),
      watermarks: SyncWatermarks.decode(await options.store.getMeta(watermarksMetaName)),
    };
    return new Replica(options, state, new HybridClock(clockOptions), openedFrom, sequence);
  }

  /** The store's epoch, made (and kept) at the first open; one of another length is replaced. */
  private static async openEpoch(options: ReplicaOptions): Promise<Uint8Array> {
    const stored = await options.store.getMeta(epochMetaName);
    if (stored !== undefined && stored.byteLength === epochBytes) return stored;
    const epoch = new Uint8Array(epochBytes);
    if (options.rng) for (let i = 0; i < epochBytes; i++) epoch[i] = Math.floor(options.rng() * 256) & 0xff;
    else {
      // Deterministic for tests: the node id's bytes mixed with the wall clock.
      const seed = `${options.nodeId}:${options.wallClockMs()}`;
      for (let i = 0; i < seed.length; i++) epoch[i % epochBytes] = (epoch[i % epochBytes]! * 31 + seed.charCodeAt(i)) & 0xff;
    }
    await options.store.putMeta(epochMetaName, epoch);
    return epoch;
  }

  /**
   * After close(): save the tree, key filter and counts with the store (Store.saveSnapshot),
   * so the next open skips the scan. Valid until the store's next write.
   */
  async saveSnapshot(): Promise<void> {
    assert(this.closed && this.flushing === undefined, 'saveSnapshot after close(): no write may follow it');
    if (this.treeUncertain) throw uncertainTreeError();
    await this.store.saveSnapshot(this.encodeState());
  }

  /**
   * While running: save the same snapshot a clean stop saves, so that a start after a crash
   * or a kill that comes before the next write skips the scan (src/node/checkpointer.ts calls
   * this once the node has been quiet). It runs in its turn in the write queue, alone: the
   * state it encodes is that of every durable commit, nothing commits until the store holds
   * it, and the store forgets it at the next write (Store.saveSnapshot). Saves nothing when
   * nothing changed since the last checkpoint (the one saved is still current).
   */
  checkpoint(): Promise<CheckpointResult> {
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    if (this.checkpointBesideWrites) return this.commitCheckpoint();
    return new Promise((resolve, reject) => this.enqueue({ kind: 'checkpoint', resolve, reject }));
  }

  /** Entries written or removed since open: a checkpoint stays current while this does not move. */
  /** Commits made from received bytes (commitReceived) since the open: what the simulator checks it drives. */
  get receivedCommitCount(): number {
    return this.receivedCommits;
  }

  get storeChangeCount(): number {
    return this.storeChanges;
  }

  /**
   * A store write or removal failed: it may still have reached the store, and the tree does
   * not have it. A snapshot of this tree could then be current without that change, so none
   * is saved from now on (a checkpoint fails, so does saveSnapshot at the stop; the next start
   * scans). Rethrows.
   */
  private storeWriteFailed(error: unknown): never {
    this.treeUncertain = true;
    // The batch may or may not have reached the store: no cached version can be trusted.
    this.versions.clear();
    throw error;
  }

  private async commitCheckpoint(): Promise<CheckpointResult> {
    if (this.treeUncertain) throw uncertainTreeError();
    const changes = this.storeChanges;
    if (this.checkpointedChanges === changes) return { saved: false, changes };
    // No flush here: it can take ~100 ms after a large burst, and writes wait for this turn.
    await this.store.saveSnapshot(this.encodeState(), { flush: false });
    this.checkpointedChanges = changes;
    return { saved: true, changes };
  }

  private encodeState(): Uint8Array {
    return encodeSnapshot({
      tree: this.tree,
      keys: this.keys,
      tombstones: this.tombstones,
      entryHlcMax: this.entryHlcMax,
      tombstoneBounds: this.tombstoneBounds.bounds(),
    });
  }

  /** Entries held, tombstones included. */
  get entryCount(): number {
    return this.tree.rootCount;
  }

  /** Entries held (tombstones included) in a partition (partitioned mode): its level-2 subtree's count. */
  partitionEntryCount(partition: PartitionId): number {
    assert(this.tree.depth >= partitionHexDigits, 'partitions need a Merkle depth of 2 or more');
    return this.tree.count(partitionHexDigits, partition);
  }

  /** Merkle depth: both sides of a sync session must use the same. */
  get depth(): number {
    return this.tree.depth;
  }

  root(): ReplicaRoot {
    return { digest: this.tree.rootDigest.slice(), count: this.tree.rootCount };
  }

  /** The HLC upper bound: every stamp issued or received so far is at most this. */
  get hlcLast(): Hlc {
    return this.clock.last;
  }

  /** The HLC reading now (the wall clock, or the bound if that is ahead), without issuing a stamp. */
  hlcNow(): Hlc {
    const wall = hlcPack(this.wallClockMs(), 0);
    return wall > this.clock.last ? wall : this.clock.last;
  }

  /**
   * An HLC such that every local write stamped below it is durable (or failed): the clock now
   * while no commit runs, else the bound when the running commit started (commits run one at
   * a time and stamp only inside themselves). Tombstone GC's floors (src/node/gc-floor.ts).
   */
  settledHlc(): Hlc {
    return this.flushing === undefined ? this.hlcNow() : this.settledBound;
  }

  /**
   * What a SyncInitiator or SyncResponder reads: this replica's tree and store. The session
   * only reads them; entries it receives come back through `applyRemote`.
   */
  syncContext(options: SyncContextOptions): SyncContext {
    return {
      tree: this.tree,
      store: this.store,
      cluster: options.cluster,
      valueBytesMax: this.valueBytesMax,
      childDigestBytes: options.childDigestBytes,
      wallClockMs: options.wallClockMs,
      position: () => this.position(),
      since: options.peerNodeId === undefined || options.delta === false ? undefined : this.watermarks.get(options.peerNodeId),
      ...(options.positions === undefined ? {} : { positions: options.positions }),
      dropLastDeltaEntry: this.dropLastDeltaEntry,
      ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
    };
  }

  /** The last seq given to a durable change. */
  get seqApplied(): number {
    return this.seqLast;
  }

  /** Where this replica is in its applied sequence: its epoch and the last seq made durable. */
  position(): SyncPosition {
    return { epoch: this.epoch, seq: this.seqLast };
  }

  /** The watermark recorded for a peer, if any. */
  watermarkOf(peerNodeId: string): SyncPosition | undefined {
    return this.watermarks.get(peerNodeId);
  }

  /** Peers whose watermark was last proven `entriesMin` or more applied entries ago (watermark-refresh.ts). */
  laggingWatermarks(entriesMin: number): string[] {
    return this.watermarks.lagging(this.seqLast, entriesMin);
  }

  /**
   * After a session we initiated with `peerNodeId`: if it proved we hold the peer's position
   * (`heldPosition`), record it as that peer's watermark and persist the watermarks (one meta
   * row, written in the background one write at a time; a failed write only costs the next
   * catch-up a descent). Returns whether a watermark was recorded.
   */
  recordSession(peerNodeId: string, result: SyncResult): boolean {
    if (result.heldPosition === undefined || this.closed) return false;
    const recorded = this.watermarks.record(peerNodeId, result.heldPosition);
    // Proven now even if it did not move (the peer applied nothing since): not lagging.
    this.watermarks.noteProven(peerNodeId, this.seqLast);
    if (!recorded) return false;
    const bytes = this.watermarks.encode();
    this.watermarksWrite = this.watermarksWrite.then(
      () => this.store.putMeta(watermarksMetaName, bytes).catch(() => undefined),
    );
    return true;
  }

  /** Entries, tombstones included, whose key-hash prefix starts with `hexPrefix` ('' = all); any order. */
  scanHash(hexPrefix = ''): AsyncIterable<Entry> {
    return this.store.scanHash(hexPrefix);
  }

  /**
   * Every stored entry that carries an expiry (only live values do), in any order: the TTL
   * sweeper's scan for expiries written before this start. With a store that hands out its
   * rows encoded (scanAllEncoded), each row's flags byte is read in place and only the rows
   * with an expiry are decoded; decoding every entry made the scan ~3x slower in a store of
   * 100k entries with few TTLs (docs/measurements.md, 2026-12-03 (late evening)).
   */
  async *scanExpiring(): AsyncIterable<Entry> {
    if (this.store.scanAllEncoded === undefined) {
      for await (const entry of this.store.scanHash('')) if (entry.expiresAtMs !== undefined && entry.value !== null) yield entry;
      return;
    }
    for await (const batch of this.store.scanAllEncoded()) {
      // A plain view: decoding a Buffer (what LevelDB hands out) would make the value a Buffer.
      for (const bytes of batch) if (encodedEntryExpires(bytes)) yield decodeEntry(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }
  }

  get tombstoneCount(): number {
    return this.tombstones;
  }

  get liveCount(): number {
    return this.tree.rootCount - this.tombstones;
  }

  get(key: string): Promise<Entry | undefined> {
    return this.store.get(key);
  }

  /** The time reads judge expiry by (ttl.ts): the HLC reading now, in wall ms. */
  nowMs(): number {
    return hlcWallMs(this.hlcNow());
  }

  /**
   * The sweeper's hook (TTL): each value of `expiring` whose key still holds exactly that
   * version and has expired by nowMs() becomes its tombstone (same version: the same Merkle
   * digest on every node), in one commit of the write queue; resolves with the tombstones
   * written. Not told to onApplied: peers make the same tombstone themselves.
   */
  expireUnchanged(expiring: readonly DropRequest[]): Promise<Entry[]> {
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    assert(expiring.length <= writeBatchOpsMax, `at most ${writeBatchOpsMax} expiries a call`);
    if (expiring.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => this.enqueue({ kind: 'expire', expiring, resolve, reject }));
  }

  /**
   * Stamp and store a value; resolves with its version once it is durable. With a
   * `condition`, the write happens only if it holds when the write is merged (atomically:
   * no other write to the key comes between the check and the write on this node); else it
   * rejects with ConditionFailedError and nothing is written.
   */
  put(key: string, value: Uint8Array, condition?: WriteCondition, ttlMs?: number): Promise<Version> {
    validateKey(key);
    checkValue(value, this.valueBytesMax);
    return this.enqueueLocal(key, value, condition, ttlMs);
  }

  /**
   * How far ahead this node would stamp: `bound`, the HLC bound past the wall clock (a clock
   * that was set ahead left it there); `peers`, the wall clock past the peers' (0 if unknown).
   */
  clockAhead(): { boundMs: number; peersMs: number; driftMsMax: number } {
    const boundMs = Math.max(0, hlcWallMs(this.clock.last) - this.wallClockMs());
    return { boundMs, peersMs: Math.max(0, this.clockAheadOfPeersMs?.() ?? 0), driftMsMax: this.clock.driftMsMax };
  }

  /** The reason local writes are refused now, if any. */
  private clockRefusal(): ClockAheadError | undefined {
    if (!this.refuseWhenClockAhead) return undefined;
    const { boundMs, peersMs, driftMsMax } = this.clockAhead();
    if (boundMs > driftMsMax) return new ClockAheadError(boundMs, driftMsMax, 'bound');
    if (peersMs > driftMsMax) return new ClockAheadError(peersMs, driftMsMax, 'peers');
    return undefined;
  }

  /**
   * A version for a write this node coordinates but does not store (partitioned mode: it does
   * not hold the key's partition; the owners store it). Checked like a local write (key, value,
   * clock ahead); the stamp advances the clock like one. The clock's bound is persisted with the
   * next commit only: a node that stamps without storing and restarts with its wall clock set
   * back could stamp lower than before (a gateway's stamps then lose to its own older ones).
   */
  stamp(key: string, value: Uint8Array | null, ttlMs?: number): Entry {
    if (this.closed) throw new ReplicaClosedError();
    validateKey(key);
    if (value !== null) checkValue(value, this.valueBytesMax);
    const refusal = this.clockRefusal();
    if (refusal) throw refusal;
    return stampedEntry(key, value, { hlc: this.clock.now(this.wallClockMs()), node: this.nodeId }, ttlMs);
  }

  /** Write a tombstone; resolves with its version once it is durable. `condition` as for put. */
  delete(key: string, condition?: WriteCondition): Promise<Version> {
    validateKey(key);
    return this.enqueueLocal(key, null, condition, undefined);
  }

  /**
   * Many puts (or deletes, value null) as one queued op with one promise: each is stamped and
   * merged as if written alone, in order, and all are acknowledged together once durable.
   * Each result is the write's version, or the error that refused it (key or value invalid).
   */
  writeMany(writes: readonly LocalWrite[]): Promise<(Version | Error)[]> {
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    const refusal = this.clockRefusal();
    if (refusal) return Promise.reject(refusal);
    const results: (Version | Error | undefined)[] = [];
    const valid: LocalWrite[] = [];
    for (const write of writes) {
      try {
        validateKey(write.key);
        if (write.value !== null) checkValue(write.value, this.valueBytesMax);
        valid.push(write);
        results.push(undefined);
      } catch (error) {
        results.push(error as Error);
      }
    }
    if (valid.length === 0) return Promise.resolve(results as Error[]);
    return new Promise<(Version | Error)[]>((resolve, reject) => this.enqueue({ kind: 'localMany', writes: valid, resolve, reject })).then(
      (versions) => {
        let next = 0;
        return results.map((result) => result ?? versions[next++]!);
      },
    );
  }

  /**
   * Merge entries from a peer. Never throws for bad entries: they are counted. Backpressure:
   * while `remoteQueueEntriesMax` remote entries are queued, the call waits (in call order)
   * until a commit makes room, then resolves as usual once its entries are durable; nothing
   * is dropped. A call larger than the bound waits until nothing else is queued. With
   * `outcomes`, the report also says what became of each entry. `origin` 'local' is for
   * entries this node stamped itself (`stamp`; the partitioned coordinator stores them while
   * it sends them to the other owners): merged like remote ones, told to onApplied as local
   * writes. `encodings`, per entry: its bytes as received when they are exactly
   * encodeEntry(entry) (canonicalEncoding, or ReceivedEntries.encodings; undefined where not known): the store keeps them
   * as they are instead of encoding the entry again, and its digest is hashed from them.
   */
  applyRemote(
    entries: readonly Entry[],
    options: { outcomes?: boolean; origin?: Origin; encodings?: readonly (Uint8Array | undefined)[] | undefined } = {},
  ): Promise<ApplyReport> {
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    assert(options.encodings === undefined || options.encodings.length === entries.length, 'an encoding (or undefined) per entry');
    return new Promise((resolve, reject) => {
      const op: RemoteOp = { kind: 'remote', entries, encodings: options.encodings, outcomes: options.outcomes ?? false, origin: options.origin ?? 'remote', resolve, reject };
      if (this.waitingForRoom.length === 0 && this.hasRoomFor(entries.length)) this.admit(op);
      else this.waitingForRoom.push(op);
    });
  }

  /**
   * applyRemote for entries kept as their received bytes (a sync frame's or a gossip message's:
   * received-entries.ts). When their bytes are canonical, a commit of such calls alone works
   * from the bytes (commitReceived: keys and digests hashed in place, a version object only where
   * one is compared, rows made from the bytes, an entry object made only when asked for); otherwise, or when the
   * commit also takes other writes, they are decoded and applied as applyRemote's, with the
   * same result.
   */
  applyReceived(batch: ReceivedEntries, options: { outcomes?: boolean; origin?: Origin } = {}): Promise<ApplyReport> {
    if (!batch.canonical) return this.applyRemote(batch.entries(), { ...options, encodings: batch.encodings() });
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    return new Promise((resolve, reject) => {
      const op: ReceivedOp = { kind: 'received', batch, outcomes: options.outcomes ?? false, origin: options.origin ?? 'remote', resolve, reject };
      if (this.waitingForRoom.length === 0 && this.hasRoomFor(batch.length)) this.admit(op);
      else this.waitingForRoom.push(op);
    });
  }

  /**
   * Resolves once an applyRemote of `entries` entries would be queued at once (immediately if
   * it would now, or if the replica is closed). Gossip awaits this before it applies a message.
   */
  whenRoom(entries = 1): Promise<void> {
    if (this.closed || (this.waitingForRoom.length === 0 && this.hasRoomFor(entries))) return Promise.resolve();
    return new Promise((resolve) => this.roomListeners.push({ entries, resolve }));
  }

  /**
   * Calls (puts, writeMany and applyRemote calls) waiting for the next commit: above 0 while
   * writes arrive faster than commits end (the node then gossips without delay).
   */
  get queuedCalls(): number {
    return this.queue.length;
  }

  /** Remote entries queued or being committed (at most remoteQueueEntriesMax, or one larger call). */
  get remoteQueuedEntries(): number {
    return this.remoteQueued;
  }

  private hasRoomFor(entries: number): boolean {
    return this.remoteQueued === 0 || this.remoteQueued + entries <= this.remoteQueueEntriesMax;
  }

  private admit(op: RemoteOp | ReceivedOp): void {
    this.remoteQueued += remoteEntries(op);
    this.enqueue(op);
  }

  /** After a commit: admit waiting calls in order while they fit, then wake whenRoom(). */
  private makeRoom(committed: number): void {
    this.remoteQueued -= committed;
    assert(this.remoteQueued >= 0, 'remote queue count below zero');
    while (this.waitingForRoom.length > 0 && this.hasRoomFor(remoteEntries(this.waitingForRoom[0]!))) {
      this.admit(this.waitingForRoom.shift()!);
    }
    if (this.waitingForRoom.length === 0 && this.roomListeners.length > 0) {
      const woken = this.roomListeners.filter((listener) => this.hasRoomFor(listener.entries));
      if (woken.length === 0) return;
      this.roomListeners = this.roomListeners.filter((listener) => !woken.includes(listener));
      for (const listener of woken) listener.resolve();
    }
  }

  /**
   * Partitioned mode, purge: remove each entry of `drops` if it still holds exactly that
   * version (delete-if-unchanged: a write that came after the caller read it is kept), from
   * the store (entry, key-order and applied-sequence rows, Store.remove), the tree and the
   * tombstone count, in one commit of its own in the write queue (no write to these keys
   * comes between the check and the removal). The key filter is a Bloom filter and keeps the
   * keys: a dropped key only costs a store read if it is ever written again. At most
   * writeBatchOpsMax drops a call.
   */
  dropUnchanged(drops: readonly DropRequest[]): Promise<DropReport> {
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    assert(drops.length <= writeBatchOpsMax, `at most ${writeBatchOpsMax} drops a call`);
    if (this.store.remove === undefined) return Promise.reject(new Error('ckv assertion: this store cannot remove entries'));
    if (drops.length === 0) return Promise.resolve({ dropped: 0, bytes: 0, changed: 0 });
    return new Promise((resolve, reject) => this.enqueue({ kind: 'drop', drops, resolve, reject }));
  }

  /** One drop op, alone in its commit. */
  private async commitDrop(op: DropOp): Promise<void> {
    const keys = [...new Set(op.drops.map((drop) => drop.key))];
    // Before the store changes: a removed key must be read (and found gone) by the next commit.
    const hashes = keys.map((key) => keyHashText(key));
    for (const hash of hashes) this.versions.delete(hash);
    const seqs: (number | undefined)[] = [];
    const stored = await this.store.getMany(keys, hashes, seqs);
    const wanted = new Map(op.drops.map((drop) => [drop.key, drop.version]));
    const rows: { key: string; keyHash: HashText; seq: number; entry: Entry }[] = [];
    for (let i = 0; i < keys.length; i++) {
      const entry = stored[i];
      const version = wanted.get(keys[i]!)!;
      if (entry === undefined || seqs[i] === undefined || compareVersions(entry.version, version) !== 0) continue;
      rows.push({ key: keys[i]!, keyHash: hashes[i]!, seq: seqs[i]!, entry });
    }
    if (rows.length > 0) {
      this.storeChanges += rows.length; // before the write: one that fails may still have reached the store
      await this.store.remove!(rows, this.clock.last).catch((error: unknown) => this.storeWriteFailed(error));
    }
    let bytes = 0;
    for (const { keyHash, entry } of rows) {
      this.tree.update(Buffer.from(keyHash, 'latin1'), entryDigest(entry.key, entry.version), undefined);
      if (entry.value === null) this.tombstones--;
      bytes += Buffer.byteLength(entry.key, 'utf8') + (entry.value?.byteLength ?? 0);
    }
    op.resolve({ dropped: rows.length, bytes, changed: op.drops.length - rows.length });
  }

  /** Stop taking writes and wait for the queue to drain. The caller closes the store. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.watermarksWrite;
  }

  private enqueueLocal(key: string, value: Uint8Array | null, condition: WriteCondition | undefined, ttlMs: number | undefined): Promise<Version> {
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    const refusal = this.clockRefusal();
    if (refusal) return Promise.reject(refusal);
    return new Promise((resolve, reject) => this.enqueue({ kind: 'local', key, value, condition, ttlMs, resolve, reject }));
  }

  private enqueue(op: Op): void {
    this.queue.push(op);
    if (this.flushing === undefined) this.flushing = this.flushLoop();
  }

  /**
   * Drains the queue. `flushing` is cleared synchronously with the final empty-queue check:
   * clearing it later (in a .finally) would leave a window in which an enqueued op sees a
   * loop still "running" and is never flushed.
   */
  private async flushLoop(): Promise<void> {
    for (;;) {
      if (this.queue.length === 0) {
        this.flushing = undefined;
        return;
      }
      this.settledBound = this.clock.last;
      // A drop (purge) is a commit of its own.
      const head = this.queue[0]!;
      if (head.kind === 'drop') {
        this.queue.shift();
        await this.commitDrop(head).catch((error: unknown) => head.reject(error as Error));
        continue;
      }
      if (head.kind === 'checkpoint') {
        this.queue.shift();
        await this.commitCheckpoint().then(head.resolve, head.reject);
        continue;
      }
      let size = 0;
      let take = 0;
      while (take < this.queue.length && (take === 0 || size < writeBatchOpsMax)) {
        const op = this.queue[take]!;
        if (op.kind === 'drop' || op.kind === 'checkpoint') break;
        size += op.kind === 'local' ? 1 : op.kind === 'localMany' ? op.writes.length : op.kind === 'expire' ? op.expiring.length : remoteEntries(op);
        take++;
      }
      const ops = this.queue.splice(0, take) as Exclude<Op, AloneOp>[];
      let remote = 0;
      for (const op of ops) if (op.kind === 'remote' || op.kind === 'received') remote += remoteEntries(op);
      // Once, when the batch is durable (before its callers hear of it) or has failed;
      // synchronously with the loop's next empty-queue check, so an admitted call is flushed.
      const release = (): void => {
        this.makeRoom(remote);
        remote = 0;
      };
      try {
        if (ops.every((op) => op.kind === 'received')) await this.commitReceived(ops as ReceivedOp[], release);
        else await this.commit(ops.map(decodedOp), release);
      } catch (error) {
        release();
        for (const op of ops) op.reject(error as Error);
      }
    }
  }

  /**
   * One batch: collect (a slot per key, read before write), merge (decide winners, in
   * memory), persist (one atomic store write, then the tree), publish (acknowledge, tell
   * onApplied). A failure before publish rejects every op of the batch (flushLoop). Once
   * durable, the batch's remote entries leave the bounded remote queue (releaseRemoteRoom).
   */
  private async commit(ops: CommitOp[], releaseRemoteRoom: () => void): Promise<void> {
    const slots = await this.collect(ops);
    const merged = this.merge(ops, slots);
    await this.persist(merged.written);
    releaseRemoteRoom();
    this.publish(ops, merged);
  }

  /**
   * One slot per key the batch touches, in first-touch order: its hash (computed once,
   * reused by the store and the tree) and the entry the store held before: for every key the
   * key filter says the store may hold, from the version cache (a key being rewritten again)
   * or else read in one getMany, whose results the cache then records.
   */
  private async collect(ops: CommitOp[]): Promise<Slots> {
    const byKey = new Map<string, Slot>();
    const list: Slot[] = [];
    const touch = (key: string): void => {
      if (byKey.has(key)) return;
      const slot: Slot = { key, hash: keyHashText(key), before: undefined, beforeSeq: undefined, winner: undefined, winnerEncoding: undefined };
      byKey.set(key, slot);
      list.push(slot);
    };
    for (const op of ops) {
      if (op.kind === 'local') touch(op.key);
      else if (op.kind === 'localMany') for (const write of op.writes) touch(write.key);
      else if (op.kind === 'expire') for (const request of op.expiring) touch(request.key);
      else for (const entry of op.entries) if (typeof entry.key === 'string') touch(entry.key);
    }
    assert(byKey.size === list.length, 'a key has two slots (it would be hashed and written twice)');
    const toRead: Slot[] = [];
    for (const slot of list) {
      if (!this.keys.mayHave(slot.hash)) continue;
      const cached = this.versions.get(slot.key, slot.hash);
      if (cached === undefined) {
        toRead.push(slot);
      } else {
        slot.before = cached.entry;
        slot.beforeSeq = cached.seq;
      }
    }
    if (toRead.length > 0) {
      const seqs: (number | undefined)[] = [];
      const stored = await this.store.getMany(
        toRead.map((slot) => slot.key),
        toRead.map((slot) => slot.hash),
        seqs,
      );
      assert(stored.length === toRead.length && seqs.length === toRead.length, 'getMany returned a result and a seq per key');
      for (let i = 0; i < toRead.length; i++) {
        toRead[i]!.before = stored[i];
        toRead[i]!.beforeSeq = seqs[i];
        if (stored[i] !== undefined && seqs[i] !== undefined) this.versions.set(stored[i]!, toRead[i]!.hash, seqs[i]!);
      }
    }
    return { byKey, list };
  }

  /**
   * Decide, in op order, what each write does to its slot: stamp local writes, check remote
   * ones (limits, clock drift) and ask the merge rule against the slot's current version
   * (this batch's winner so far, else what the store held). Synchronous and without I/O:
   * nothing else can touch the slots meanwhile. The clock advances here (stamps and received
   * remote stamps); it is persisted with the winners.
   */
  private merge(ops: CommitOp[], slots: Slots): Merged {
    const lww = this.mergeRule === lastWriterWins;
    const changes: AppliedChange[] = [];
    const results: OpResult[] = [];
    const local = (key: string, value: Uint8Array | null, condition: WriteCondition | undefined, ttlMs: number | undefined): Version | Error => {
      const slot = slots.byKey.get(key)!;
      if (condition !== undefined) {
        // Against this batch's winner so far, else the store: the same current version the
        // merge rule sees, so nothing can come between the check and the write. An expired
        // value counts as the tombstone it reads as.
        const current = visibleAt(slot.winner ?? slot.before, this.nowMs());
        if (!conditionHolds(condition, current)) {
          return new ConditionFailedError(key, conditionText(condition), current && versionToText(current.version), current?.value === null);
        }
      }
      const last = this.clock.last;
      const wallMs = this.wallClockMs();
      const version: Version = { hlc: this.clock.now(wallMs), node: this.nodeId };
      assert(version.hlc > last, 'a local stamp is greater than every stamp before it');
      const entry = stampedEntry(key, value, version, ttlMs);
      const previous = (slot.winner ?? slot.before)?.version;
      // Under last-writer-wins a fresh local stamp always wins, except over a version stamped
      // in the future that a reset clock bound left behind (Replica.open, resetClockBound):
      // that write is refused, not silently lost. The rule is asked anyway so that an injected
      // rule is applied uniformly.
      if (this.mergeRule(version, previous)) {
        slot.winner = entry;
        slot.winnerEncoding = undefined;
        changes.push({ entry, keyHash: slot.hash, previous, origin: 'local', hlc: version.hlc, expires: entry.expiresAtMs !== undefined });
      } else if (lww) {
        return new VersionFromFutureError(key, hlcWallMs(previous!.hlc) - wallMs);
      }
      return version;
    };
    for (const op of ops) {
      if (op.kind === 'local') {
        results.push(local(op.key, op.value, op.condition, op.ttlMs));
        continue;
      }
      if (op.kind === 'localMany') {
        results.push(op.writes.map((write) => local(write.key, write.value, write.condition, write.ttlMs)));
        continue;
      }
      if (op.kind === 'expire') {
        results.push(this.mergeExpiries(op, slots));
        continue;
      }
      const outcomes: ApplyOutcome[] = [];
      const report: ApplyReport = { applied: 0, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0 };
      if (op.outcomes) report.outcomes = outcomes;
      const encodings = op.encodings;
      for (let i = 0; i < op.entries.length; i++) {
        const entry = op.entries[i]!;
        if (!this.valid(entry)) {
          report.rejectedInvalid++;
          outcomes.push('invalid');
          continue;
        }
        const slot = slots.byKey.get(entry.key)!;
        // Before the clock sees it: an entry we refuse must not move our HLC.
        if (this.holds && !this.holds(slot.hash)) {
          report.rejectedNotHeld++;
          outcomes.push('not-held');
          continue;
        }
        try {
          this.clock.receive(entry.version.hlc, this.wallClockMs());
        } catch (error) {
          if (!(error instanceof ClockDriftError)) throw error;
          report.rejectedClockDrift++;
          outcomes.push('clock-drift');
          continue;
        }
        const previous = (slot.winner ?? slot.before)?.version;
        if (previous === undefined && this.refuseResurrection?.(slot.hash, entry.version.hlc, entry)) {
          report.stale++;
          outcomes.push('stale');
          continue;
        }
        if (this.mergeRule(entry.version, previous)) {
          assert(!lww || previous === undefined || compareVersions(entry.version, previous) > 0, 'an older version won under last-writer-wins');
          slot.winner = entry;
          slot.winnerEncoding = encodings?.[i];
          changes.push({ entry, keyHash: slot.hash, previous, origin: op.origin, hlc: entry.version.hlc, expires: entry.expiresAtMs !== undefined });
          report.applied++;
          outcomes.push('applied');
        } else {
          report.stale++;
          outcomes.push('stale');
        }
      }
      assert(
        report.applied + report.stale + report.rejectedClockDrift + report.rejectedInvalid + report.rejectedNotHeld === op.entries.length,
        'every remote entry is counted once',
      );
      results.push(report);
    }
    assert(results.length === ops.length, 'a result per op');
    return { written: slots.list.filter((slot) => slot.winner !== undefined), changes, results };
  }

  /** The tombstones an expire op makes: of each value that still holds its version and has expired. */
  private mergeExpiries(op: ExpireOp, slots: Slots): Entry[] {
    const nowMs = this.nowMs();
    const made: Entry[] = [];
    for (const { key, version } of op.expiring) {
      const slot = slots.byKey.get(key)!;
      const current = slot.winner ?? slot.before;
      if (current === undefined || compareVersions(current.version, version) !== 0 || !isExpired(current, nowMs)) continue;
      slot.winner = expiredTombstone(current);
      slot.winnerEncoding = undefined;
      made.push(slot.winner);
    }
    return made;
  }

  /**
   * Write the winners atomically with the HLC bound, then update the tree (O(depth) a key),
   * the tombstone count and the key filter: only what is durable is ever visible to sync.
   * The digests are computed while the store writes: pure work that would otherwise wait.
   */
  private async persist(written: Slot[]): Promise<void> {
    if (written.length === 0) return;
    // Numbered after the last durable seq: commits run one at a time, so nothing else takes
    // these numbers; a failed write leaves seqLast as it was (no gap).
    const seqFirst = this.seqLast + 1;
    this.storeChanges += written.length; // before the write: one that fails may still have reached the store
    // The count once this batch is applied, stored with it: a start replaying the entries
    // written after a snapshot cannot tell which versions they replaced were tombstones
    // (replica-replay.ts). Not known once a write failed (the tree is uncertain).
    let tombstones = this.tombstones;
    let encoded = false;
    for (const { before, winner, winnerEncoding } of written) {
      tombstones += (winner!.value === null ? 1 : 0) - (before && before.value === null ? 1 : 0);
      if (winnerEncoding !== undefined) encoded = true;
    }
    const writing = this.store
      .write(
        written.map((slot) => slot.winner!),
        this.clock.last,
        written.map((slot) => slot.hash),
        {
          seqFirst,
          previousSeqs: written.map((slot) => slot.beforeSeq),
          ...(this.treeUncertain ? {} : { tombstones }),
          ...(encoded ? { encodings: written.map((slot) => slot.winnerEncoding) } : {}),
        },
      )
      .catch((error: unknown) => this.storeWriteFailed(error));
    const digests: (HashText | undefined)[] = [];
    try {
      for (const { key, before, winner, winnerEncoding } of written) {
        digests.push(
          before ? entryDigestText(before.key, before.version) : undefined,
          winnerEncoding !== undefined ? canonicalEntryDigestText(winnerEncoding) : entryDigestText(key, winner!.version),
        );
      }
    } finally {
      await writing;
    }
    assert(digests.length === 2 * written.length, 'two digests per written slot');
    for (let i = 0; i < written.length; i++) {
      const { hash, before, winner } = written[i]!;
      // Only keys rewritten: a key written once is never read back by a commit, and recording
      // it would cost every write of new keys (./version-cache.ts).
      if (before !== undefined && !this.versionCacheNotUpdated) this.versions.set(winner!, hash, seqFirst + i);
      this.tree.updateText(hash, digests[2 * i], digests[2 * i + 1]!);
      if (winner!.value === null) this.tombstoneBounds.noteTombstone(partitionOfHash(hash), winner!.version.hlc);
      if (before === undefined) this.keys.add(hash);
      if (winner!.version.hlc > this.entryHlcMax) this.entryHlcMax = winner!.version.hlc;
    }
    this.tombstones = tombstones; // counted before the write, for the store
    // With the tree, in the same synchronous step: a position read with the root matches it.
    this.seqLast = seqFirst + written.length - 1;
  }

  /** Acknowledge every op of the batch (it is durable), then tell onApplied of its changes. */
  private publish(ops: Op[], merged: Merged): void {
    for (let i = 0; i < ops.length; i++) {
      const result = merged.results[i];
      if (result instanceof Error) ops[i]!.reject(result);
      else (ops[i]!.resolve as (value: unknown) => void)(result);
    }
    if (this.onApplied && merged.changes.length > 0) this.onApplied(merged.changes);
  }

  /**
   * A commit of applyReceived calls only (docs/design-bulk-apply.md): what collect, merge,
   * persist and publish do, from the entries' bytes. A slot per key hash (in first-touch
   * order), the key decoded only when the key filter says the store may hold it (its version is
   * then read as in collect); each entry checked and merged in call order (its value's length,
   * `holds`, the clock, resurrection, the merge rule against the slot's winner so far or what
   * the store held: a version object is made only when there is one to compare with); the
   * winners written from their bytes (Store.writeReceived, else decoded for write()) with the
   * HLC bound; then the tree, tombstone bounds, key filter and version cache exactly as
   * persist updates them; each call's report; onApplied told of changes whose entry is made
   * when asked for.
   */
  private async commitReceived(ops: readonly ReceivedOp[], releaseRemoteRoom: () => void): Promise<void> {
    this.receivedCommits++;
    // Collect.
    const slotOf = new Map<HashText, number>();
    const hashes: HashText[] = [];
    const firstBatch: ReceivedEntries[] = [];
    const firstIndex: number[] = [];
    const slotsOfOps: Int32Array[] = [];
    for (const { batch } of ops) {
      const slots = new Int32Array(batch.length);
      for (let i = 0; i < batch.length; i++) {
        const hash = batch.keyHashText(i);
        let slot = slotOf.get(hash);
        if (slot === undefined) {
          slot = hashes.length;
          slotOf.set(hash, slot);
          hashes.push(hash);
          firstBatch.push(batch);
          firstIndex.push(i);
        }
        slots[i] = slot;
      }
      slotsOfOps.push(slots);
    }
    const slotCount = hashes.length;
    const before: (Entry | undefined)[] = new Array<Entry | undefined>(slotCount).fill(undefined);
    const beforeSeq: (number | undefined)[] = new Array<number | undefined>(slotCount).fill(undefined);
    const toRead: number[] = [];
    const toReadKeys: string[] = [];
    for (let slot = 0; slot < slotCount; slot++) {
      if (this.receivedIgnoresStored || !this.keys.mayHave(hashes[slot]!)) continue;
      const key = firstBatch[slot]!.key(firstIndex[slot]!);
      const cached = this.versions.get(key, hashes[slot]!);
      if (cached === undefined) {
        toRead.push(slot);
        toReadKeys.push(key);
      } else {
        before[slot] = cached.entry;
        beforeSeq[slot] = cached.seq;
      }
    }
    if (toRead.length > 0) {
      const seqs: (number | undefined)[] = [];
      const stored = await this.store.getMany(toReadKeys, toRead.map((slot) => hashes[slot]!), seqs);
      assert(stored.length === toRead.length && seqs.length === toRead.length, 'getMany returned a result and a seq per key');
      for (let r = 0; r < toRead.length; r++) {
        const slot = toRead[r]!;
        before[slot] = stored[r];
        beforeSeq[slot] = seqs[r];
        if (stored[r] !== undefined && seqs[r] !== undefined) this.versions.set(stored[r]!, hashes[slot]!, seqs[r]!);
      }
    }

    // Merge.
    const lww = this.mergeRule === lastWriterWins;
    const winnerBatch: (ReceivedEntries | undefined)[] = new Array<ReceivedEntries | undefined>(slotCount).fill(undefined);
    const winnerIndex = new Int32Array(slotCount);
    const winnerHlc: Hlc[] = new Array<Hlc>(slotCount).fill(0n);
    const changes: AppliedChange[] = [];
    const reports: ApplyReport[] = [];
    const wallMs = this.wallClockMs();
    for (let o = 0; o < ops.length; o++) {
      const { batch, origin } = ops[o]!;
      const slots = slotsOfOps[o]!;
      // Per entry only when asked (the replicate protocol): a catch-up does not.
      const outcomes: ApplyOutcome[] | undefined = ops[o]!.outcomes ? [] : undefined;
      const report: ApplyReport = { applied: 0, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0 };
      if (outcomes) report.outcomes = outcomes;
      for (let i = 0; i < batch.length; i++) {
        // The decoder checked the key and the flags; the value's limit is this replica's.
        if (batch.valueBytes(i) > this.valueBytesMax) {
          report.rejectedInvalid++;
          outcomes?.push('invalid');
          continue;
        }
        const slot = slots[i]!;
        const hash = hashes[slot]!;
        if (this.holds && !this.holds(hash)) {
          report.rejectedNotHeld++;
          outcomes?.push('not-held');
          continue;
        }
        const hlc = batch.hlc(i);
        try {
          this.clock.receive(hlc, wallMs);
        } catch (error) {
          if (!(error instanceof ClockDriftError)) throw error;
          report.rejectedClockDrift++;
          outcomes?.push('clock-drift');
          continue;
        }
        const winner = winnerBatch[slot];
        const previous = winner !== undefined ? winner.version(winnerIndex[slot]!) : before[slot]?.version;
        if (previous === undefined && this.refuseResurrection?.(hash, hlc, undefined)) {
          report.stale++;
          outcomes?.push('stale');
          continue;
        }
        // Under last-writer-wins an entry of a key held nowhere wins without a version object.
        if (previous === undefined && lww ? true : this.mergeRule(batch.version(i), previous)) {
          assert(!lww || previous === undefined || compareVersions(batch.version(i), previous) > 0, 'an older version won under last-writer-wins');
          winnerBatch[slot] = batch;
          winnerIndex[slot] = i;
          winnerHlc[slot] = hlc;
          changes.push(new ReceivedChange(batch, i, hash, hlc, previous, origin));
          report.applied++;
          outcomes?.push('applied');
        } else {
          report.stale++;
          outcomes?.push('stale');
        }
      }
      assert(
        report.applied + report.stale + report.rejectedClockDrift + report.rejectedInvalid + report.rejectedNotHeld === batch.length,
        'every remote entry is counted once',
      );
      reports.push(report);
    }

    // Persist (as persist(): the numbering, the count, the digests while the store writes).
    const written: number[] = [];
    for (let slot = 0; slot < slotCount; slot++) if (winnerBatch[slot] !== undefined) written.push(slot);
    if (written.length > 0) {
      const seqFirst = this.seqLast + 1;
      this.storeChanges += written.length;
      let tombstones = this.tombstones;
      const batches: ReceivedEntries[] = [];
      const indexes: number[] = [];
      const writtenHashes: HashText[] = [];
      const previousSeqs: (number | undefined)[] = [];
      for (const slot of written) {
        const batch = winnerBatch[slot]!;
        const i = winnerIndex[slot]!;
        tombstones += (batch.isTombstone(i) ? 1 : 0) - (before[slot]?.value === null ? 1 : 0);
        batches.push(batch);
        indexes.push(i);
        writtenHashes.push(hashes[slot]!);
        previousSeqs.push(beforeSeq[slot]);
      }
      const index = { seqFirst, previousSeqs, ...(this.treeUncertain ? {} : { tombstones }) };
      const writing = (
        this.store.writeReceived
          ? this.store.writeReceived({ batches, indexes }, this.clock.last, writtenHashes, index)
          : this.store.write(
              batches.map((batch, w) => batch.entry(indexes[w]!)),
              this.clock.last,
              writtenHashes,
              { ...index, encodings: batches.map((batch, w) => batch.encoding(indexes[w]!)) },
            )
      ).catch((error: unknown) => this.storeWriteFailed(error));
      const digests: (HashText | undefined)[] = [];
      try {
        for (let w = 0; w < written.length; w++) {
          const previous = before[written[w]!];
          digests.push(previous ? entryDigestText(previous.key, previous.version) : undefined, batches[w]!.digestText(indexes[w]!));
        }
      } finally {
        await writing;
      }
      let hlcMax = this.entryHlcMax;
      for (let w = 0; w < written.length; w++) {
        const slot = written[w]!;
        const hash = hashes[slot]!;
        const batch = batches[w]!;
        const i = indexes[w]!;
        if (before[slot] !== undefined && !this.versionCacheNotUpdated) this.versions.set(batch.entry(i), hash, seqFirst + w);
        this.tree.updateText(hash, digests[2 * w], digests[2 * w + 1]!);
        if (batch.isTombstone(i)) this.tombstoneBounds.noteTombstone(partitionOfHash(hash), winnerHlc[slot]!);
        if (before[slot] === undefined) this.keys.add(hash);
        if (winnerHlc[slot]! > hlcMax) hlcMax = winnerHlc[slot]!;
      }
      this.entryHlcMax = hlcMax;
      this.tombstones = tombstones;
      this.seqLast = seqFirst + written.length - 1;
    }
    releaseRemoteRoom();

    // Publish.
    for (let o = 0; o < ops.length; o++) ops[o]!.resolve(reports[o]!);
    if (this.onApplied && changes.length > 0) this.onApplied(changes);
  }

  private valid(entry: Entry): boolean {
    if (typeof entry.key !== 'string' || entry.key.length === 0) return false;
    if (!isNodeId(entry.version.node) || typeof entry.version.hlc !== 'bigint') return false;
    if (Buffer.byteLength(entry.key, 'utf8') > keyBytesMax) return false;
    if (entry.value !== null && entry.value.byteLength > this.valueBytesMax) return false;
    return true;
  }
}

/** A received op decoded (its entries as objects, their bytes as encodings), for commit(). */
function decodedOp(op: Exclude<Op, AloneOp>): CommitOp {
  if (op.kind !== 'received') return op;
  const { batch, outcomes, origin, resolve, reject } = op;
  return { kind: 'remote', entries: batch.entries(), encodings: batch.encodings(), outcomes, origin, resolve, reject };
}

/**
 * A change commitReceived applied: its entry is made from the received bytes when first asked
 * for (a watcher, an expiry, an import), and kept. Holding the change holds its frame.
 */
class ReceivedChange implements AppliedChange {
  private made: Entry | undefined;

  constructor(
    private readonly batch: ReceivedEntries,
    private readonly index: number,
    readonly keyHash: HashText,
    readonly hlc: Hlc,
    readonly previous: Version | undefined,
    readonly origin: Origin,
  ) {}

  get entry(): Entry {
    return (this.made ??= this.batch.entry(this.index));
  }

  get expires(): boolean {
    return this.batch.expires(this.index);
  }
}

/** Why no snapshot is saved after a failed store write (Replica.storeWriteFailed). */
function uncertainTreeError(): Error {
  return new Error('a store write failed since this start: no snapshot is saved from this tree (the next start scans)');
}

/** For tests: assert two replicas hold the same root. */
export function sameRoot(a: Replica, b: Replica): boolean {
  assert(a.depth === b.depth, 'depths differ');
  const [ra, rb] = [a.root(), b.root()];
  return Buffer.compare(ra.digest, rb.digest) === 0 && ra.count === rb.count;
}
