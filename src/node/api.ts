/**
 * NodeApi: everything the front ends of a node (the gRPC control server, src/control/, and
 * the HTTP server, src/http/) may ask of it. They are given a NodeApi, never the CkvNode
 * class, so they cannot reach into the replica, the store or the cluster: what a node reports
 * about itself is `status()` (one status object, assembled once in src/node/status.ts), and
 * each request is one method here. Errors thrown are the kinds of src/errors.ts.
 */
import type { Entry, Version, WriteCondition } from '../core/entry.js';
import type { NodeEvent } from './events.js';
import type { ClusterHealth } from './health.js';
import type { AppliedChange, LocalWrite } from '../core/replica.js';
import type { Logger } from '../util/logger.js';
import type { Consistency } from '../core/ownership.js';
import type { OwnerAnswer, ReadSource } from './coordinator.js';
import type { NodeStatus, PeerView } from './status.js';
import type { PurgeReport } from '../net/partition-pulls.js';
import type { LayoutChangeRequest } from '../net/layout-service.js';
import type { LayoutView } from '../net/layout-view.js';

export type { PurgeReport };
import type { GcStatus } from './gc.js';
import type { GcRunReport } from './gc-collector.js';
export type { GcStatus, GcRunReport };

/** One step of `balance`: what is left to pull, per active layout, and who blocks it. */
export interface BalanceStep {
  /** Every active layout's version, oldest first. */
  activeVersions: number[];
  /** Partitions left to pull, per layout version (versions with none left are not listed). */
  pending: { version: number; partitions: number }[];
  /** Partitions pulled since the node started. */
  pulled: number;
  /** Nodes whose absence blocks a pull (remove them if they are gone: ckv node remove). */
  blockedBy: string[];
  /** Nothing left (the last step). */
  done: boolean;
}

export interface ChangeEvent extends Omit<AppliedChange, 'origin' | 'hlc' | 'expires'> {
  /**
   * 'local', 'remote', or 'expired': this node's TTL sweeper turned an expired value into its
   * tombstone (the same version as the value; src/core/ttl.ts). Each node sweeps by its own
   * clock, so a watcher on each node sees the expiry when its node sweeps.
   */
  readonly origin: AppliedChange['origin'] | 'expired';
  appliedAtMs: number;
  /** The value's size when `entry.value` does not carry it (a change another member reported). */
  valueBytes?: number;
}

/** One step of `sync`: a session with a peer started, or ended with its figures. */
export type SyncStep =
  | { phase: 'started'; peerId: string }
  | {
      phase: 'finished' | 'failed';
      peerId: string;
      /** in-sync, synced, incomplete, refused, error */
      outcome: string;
      rounds: number;
      entriesSent: number;
      entriesReceived: number;
      bytesSent: number;
      bytesReceived: number;
      /** Why it failed or was refused; '' otherwise. */
      message: string;
    };

/** One node's version of a key (`whereIs`), or why that node could not answer. */
export interface KeyHolder {
  peerId: string;
  nodeId?: string;
  version?: Version;
  deleted?: boolean;
  error?: string;
}

/** What `importEntries` did with its entries: each is counted once. */
export interface ImportReport {
  /** Newer than what the node held: stored (and published to the cluster). */
  applied: number;
  /** Older than or equal to the version the node holds: not applied. */
  notNewer: number;
  /** Stamped too far in this node's future (clock drift limit): refused. */
  refusedClock: number;
  /** Key or value outside the limits: refused. */
  refusedInvalid: number;
  /** A key this node does not hold (placement): refused. */
  refusedNotHeld: number;
}

/** A key's partition and its owners in each active layout (`whereis`). */
export interface KeyOwners {
  partition: number;
  layouts: { version: number; owners: { nodeId: string; peerId: string; up: boolean }[] }[];
  /** The owners a read asks (readOwners), highest rank first. */
  readOwners: string[];
}

/** A write's result: its version and, in partitioned mode, its owners and those that acked. */
export interface WriteReply {
  version: Version;
  /** Node ids of the key's owners (every active layout); empty in full-replication mode. */
  owners: string[];
  /** The owners that acknowledged in time (this node included when it is one); empty in full mode. */
  acked: string[];
}

/** Options of a single write (`put`, `delete`). */
export interface WriteOptions {
  condition?: WriteCondition | undefined;
  /** Partitioned mode: acks asked of the owners (default quorum); ignored in full mode. */
  consistency?: Consistency | undefined;
  /** A put's value expires this long after its stamp (ms; 1..ttlMsMax, src/core/ttl.ts); ignored for a delete. */
  ttlMs?: number | undefined;
}

/** Options of a single-key read. */
export interface ReadOptions {
  /** Partitioned mode: where to read (default local if this node holds the key, else one owner); ignored in full mode. */
  from?: ReadSource | undefined;
  /** Accept fewer owner answers than `from` asks. */
  allowPartial?: boolean | undefined;
}

/** A read's result: the entry and, in partitioned mode, who was asked and what they answered. */
export interface ReadReply {
  entry: Entry | undefined;
  /** 'local' in full-replication mode. */
  from: ReadSource;
  owners: string[];
  asked: number;
  answers: OwnerAnswer[];
}

/** Where a prefix read comes from, in partitioned mode (ignored in full-replication mode). */
export interface ScanReadOptions {
  /** 'local': this node's copy only; undefined: every partition from its owners. */
  from?: 'local' | undefined;
  /** Go on without the partitions no owner answered for (counted in `partial`). */
  allowPartial?: boolean | undefined;
  /** Filled in as the read goes: partitions no owner answered for (with allowPartial). */
  partial?: { partitionsMissing: number } | undefined;
}

export interface ScanOptions extends ScanReadOptions {
  prefix?: string;
  startAfter?: string;
  limit?: number;
  /** Partitioned reads from owners: carry values (default true; keys need none). */
  withValues?: boolean;
}

export interface NodeApi {
  readonly nodeId: string;
  /** The largest value a put accepts (bytes). */
  readonly valueBytesMax: number;
  readonly logger: Logger;
  /** True from the moment stop() is called: front ends refuse new requests (node stopping). */
  readonly isStopping: boolean;

  /** With a condition: only if it holds when the write is merged, else ConditionFailedError. */
  put(key: string, value: Uint8Array, condition?: WriteCondition): Promise<Version>;
  delete(key: string, condition?: WriteCondition): Promise<Version>;
  /** Many puts and deletes (value null) for one promise; each write's version or error (partitioned mode: each acknowledged at `consistency`, default quorum). */
  writeMany(writes: readonly LocalWrite[], consistency?: Consistency): Promise<(Version | Error)[]>;
  /** A put (value) or delete (null) with its options; the reply names the owners that acked (partitioned mode). */
  write(key: string, value: Uint8Array | null, options?: WriteOptions): Promise<WriteReply>;
  /** A single-key read with its options (partitioned mode: from the owners). */
  read(key: string, options?: ReadOptions): Promise<ReadReply>;
  /** Partitioned mode: the key's partition and owners in each active layout; undefined in full mode. */
  owners(key: string): KeyOwners | undefined;
  /** The entry (a tombstone has value null), or undefined. Throws InvalidKeyError for a bad key. */
  get(key: string): Promise<Entry | undefined>;
  /**
   * Entries under a prefix in key order, tombstones included. Full-replication mode, or
   * `from: 'local'`: this node's copy. Partitioned mode: every partition from one of its read
   * owners (scatter-gather, PartitionedPath.scan); partitions no owner answered for throw
   * OwnersUnavailableError unless `allowPartial` (then counted in `partial.partitionsMissing`).
   */
  scan(options: ScanOptions): AsyncIterable<Entry>;
  /**
   * Every entry under `prefix`, tombstones included, from one snapshot of the store (writes
   * during the scan are not seen): with a prefix in key order (the key index, one explicit
   * snapshot); without one in storage order (one iterator over the entries, whose implicit
   * snapshot LevelDB holds; about 3x faster than walking the key index).
   */
  exportEntries(prefix: string, read?: ScanReadOptions): AsyncIterable<Entry>;
  /**
   * Entries from a backup, with their versions: merged like a peer's (the normal merge: an
   * older or equal version is not applied), and those applied are published to the cluster
   * like local writes. Throws when the node is stopping (some entries may have been applied).
   */
  importEntries(entries: readonly Entry[]): Promise<ImportReport>;
  /**
   * Calls `listener` for every change applied (local and remote) until the returned function
   * is called. Partitioned mode: also the changes every up member applies under `prefix`
   * (each write once), and `onBehind` if a member dropped this watcher for being slow.
   */
  watch(listener: (change: ChangeEvent) => void, options?: { prefix?: string; onBehind?: () => void }): () => void;
  /** Each convergence sample (ms) of a remote write as it is taken (for a histogram); returns an unsubscribe. */
  observeConvergence(observer: (ms: number) => void): () => void;

  /** The node's status: identity, counts, clock, counters, peers, write statistics. */
  status(): Promise<NodeStatus>;
  /** Known peers (the `peers` of status()). */
  peers(): Promise<PeerView[]>;
  /** This node and every member it knows, each up member asked for its own report (`ckv health`). */
  health(): Promise<ClusterHealth>;
  /** Recent events (members up/down/left, failed syncs, clock warnings) with seq > after, oldest first, at most limit. */
  recentEvents(after: number, limit: number): { events: NodeEvent[]; lastSeq: number; dropped: number };
  /** Forgets a peer; false if it was not known. */
  forget(peerId: string): Promise<boolean>;
  /** Anti-entropy now with one peer or every connected one. Throws NoPeersError, UnknownPeerError. */
  sync(peerId?: string): AsyncIterable<SyncStep>;
  /** This node's version of `key` (if any), then every connected peer's. */
  whereIs(key: string): Promise<KeyHolder[]>;
  /**
   * Partitioned mode: offload the partitions this node no longer holds to their owners and
   * drop them now (dry: only count them). Throws NotPartitionedError in full-replication mode.
   */
  purge(dry: boolean): Promise<PurgeReport>;
  /**
   * Partitioned mode: run the pulls now; a progress step after each round (and at least every
   * second) until nothing is left to pull and, with `singleLayout`, one layout is active.
   * Throws NotPartitionedError in full-replication mode.
   */
  balance(singleLayout: boolean): AsyncIterable<BalanceStep>;
  /** Tombstone GC (`ckv gc`): the watermark, who holds it back, collectable and collected tombstones. */
  gcStatus(): GcStatus;
  /** One tombstone collection run now (`ckv gc --run`); what it did. */
  gcRun(): Promise<GcRunReport>;

  // Partitioned mode (--replicas K); each throws NotPartitionedError in full-replication mode.
  /** The layout as this node sees it (`ckv layout`). */
  layout(): Promise<LayoutView>;
  /** Stage a change, or apply or revert the staged ones (`ckv layout add|remove|weight|replicas|apply|revert`). */
  layoutChange(request: LayoutChangeRequest): Promise<LayoutView>;
  /** Stage and commit the removal of a node that is down (`ckv node remove`). */
  removeNode(node: string): Promise<LayoutView>;
  /** Commit this node's own removal (`ckv node leave`, which then waits for the hand-off and stops the node). */
  leaveCluster(): Promise<LayoutView>;

  /** Idempotent: refuses new requests, closes the front ends, drains queued writes, closes the store. */
  stop(reason?: string): Promise<void>;
}

/** What the node closes first when it stops: its control and HTTP servers. */
export interface FrontEnd {
  close(): Promise<void>;
  /**
   * Decode requests and encode replies of the hot calls on throwaway data, touching nothing
   * else: run by the node's warm-up (./warm-up.ts) so that a fresh process's first calls do
   * not run on code V8 has not optimised yet.
   */
  warmUp?(): void;
}
