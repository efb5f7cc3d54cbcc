/**
 * A replica: one node's entries, Merkle tree and clock, and the only path by which entries
 * change. Local writes (`put`, `delete`) and remote entries (`applyRemote`, from gossip or
 * sync) go through one queue that folds whatever is waiting into a single storage batch
 * (group commit): a burst of writes costs one LevelDB batch, not one each, and the merge for
 * a key never races with another write to it.
 *
 * For each queued entry: a remote stamp too far in the future is refused (ClockDriftError,
 * counted; sync offers it again later); otherwise the merge rule decides against the current
 * version. Winners are written atomically with the HLC bound; only after the write succeeds
 * are the tree updated (O(depth) per key), the callers acknowledged and `onApplied` told.
 *
 * Pure: the store, the wall clock and the merge rule are passed in.
 */
import {
  checkKey,
  checkValue,
  entryDigest,
  isNodeId,
  keyHash,
  lastWriterWins,
  type Entry,
  type MergeRule,
  type NodeId,
  type Version,
} from './entry.js';
import { ClockDriftError, CkvError, assert } from './errors.js';
import { HybridClock, type Hlc } from './hlc.js';
import { keyBytesMax, merkleDepthDefault, valueBytesMax, writeBatchOpsMax } from './limits.js';
import { MerkleTree } from './merkle.js';
import type { Store } from '../store/store.js';

export type Origin = 'local' | 'remote';

export interface AppliedChange {
  readonly entry: Entry;
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
}

export interface ReplicaOptions {
  nodeId: NodeId;
  store: Store;
  /** The wall clock in milliseconds; the core never reads one itself. */
  wallClockMs: () => number;
  depth?: number;
  driftMsMax?: number;
  valueBytesMax?: number;
  /** Only the simulator's canary replaces this. */
  mergeRule?: MergeRule;
  onApplied?: (change: AppliedChange) => void;
}

type Op =
  | { kind: 'local'; key: string; value: Uint8Array | null; resolve: (v: Version) => void; reject: (e: Error) => void }
  | { kind: 'remote'; entries: readonly Entry[]; resolve: (r: ApplyReport) => void; reject: (e: Error) => void };

export class ReplicaClosedError extends CkvError {
  constructor() {
    super('ERR_REPLICA_CLOSED', 'the node is stopping');
    this.name = 'ReplicaClosedError';
  }
}

export class Replica {
  readonly nodeId: NodeId;
  readonly tree: MerkleTree;
  readonly clock: HybridClock;
  readonly store: Store;
  readonly valueBytesMax: number;
  private readonly wallClockMs: () => number;
  private readonly mergeRule: MergeRule;
  private readonly onApplied: ((change: AppliedChange) => void) | undefined;
  private queue: Op[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private tombstones = 0;

  private constructor(options: ReplicaOptions, tree: MerkleTree, clock: HybridClock, tombstones: number) {
    this.nodeId = options.nodeId;
    this.store = options.store;
    this.wallClockMs = options.wallClockMs;
    this.valueBytesMax = options.valueBytesMax ?? valueBytesMax;
    this.mergeRule = options.mergeRule ?? lastWriterWins;
    this.onApplied = options.onApplied;
    this.tree = tree;
    this.clock = clock;
    this.tombstones = tombstones;
  }

  /** Open the store and rebuild the tree in one scan; the clock resumes above anything stored. */
  static async open(options: ReplicaOptions): Promise<Replica> {
    await options.store.open();
    const tree = new MerkleTree(options.depth ?? merkleDepthDefault);
    let last: Hlc = await options.store.readHlc();
    let tombstones = 0;
    for await (const entry of options.store.scanHash('')) {
      tree.update(keyHash(entry.key), undefined, entryDigest(entry.key, entry.version));
      if (entry.value === null) tombstones++;
      if (entry.version.hlc > last) last = entry.version.hlc;
    }
    const clockOptions = options.driftMsMax === undefined ? { last } : { last, driftMsMax: options.driftMsMax };
    return new Replica(options, tree, new HybridClock(clockOptions), tombstones);
  }

  /** Entries held, tombstones included. */
  get entryCount(): number {
    return this.tree.rootCount;
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

  /** Stamp and store a value; resolves with its version once it is durable. */
  put(key: string, value: Uint8Array): Promise<Version> {
    checkKey(key);
    checkValue(value, this.valueBytesMax);
    return this.enqueueLocal(key, value);
  }

  /** Write a tombstone; resolves with its version once it is durable. */
  delete(key: string): Promise<Version> {
    checkKey(key);
    return this.enqueueLocal(key, null);
  }

  /** Merge entries from a peer. Never throws for bad entries: they are counted. */
  applyRemote(entries: readonly Entry[]): Promise<ApplyReport> {
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    return new Promise((resolve, reject) => this.enqueue({ kind: 'remote', entries, resolve, reject }));
  }

  /** Stop taking writes and wait for the queue to drain. The caller closes the store. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
  }

  private enqueueLocal(key: string, value: Uint8Array | null): Promise<Version> {
    if (this.closed) return Promise.reject(new ReplicaClosedError());
    return new Promise((resolve, reject) => this.enqueue({ kind: 'local', key, value, resolve, reject }));
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
      let size = 0;
      let take = 0;
      while (take < this.queue.length && (take === 0 || size < writeBatchOpsMax)) {
        const op = this.queue[take]!;
        size += op.kind === 'local' ? 1 : op.entries.length;
        take++;
      }
      const ops = this.queue.splice(0, take);
      try {
        await this.commit(ops);
      } catch (error) {
        for (const op of ops) op.reject(error as Error);
      }
    }
  }

  private async commit(ops: Op[]): Promise<void> {
    // The version each touched key had in the store before this batch, and its newest winner.
    const before = new Map<string, Entry | undefined>();
    const winners = new Map<string, Entry>();
    const changes: AppliedChange[] = [];
    const results: (Version | ApplyReport)[] = [];
    // One read for every key the batch touches, instead of one per key.
    const keys = new Set<string>();
    for (const op of ops) {
      if (op.kind === 'local') keys.add(op.key);
      else for (const entry of op.entries) if (typeof entry.key === 'string') keys.add(entry.key);
    }
    const keyList = [...keys];
    const stored = await this.store.getMany(keyList);
    keyList.forEach((key, i) => before.set(key, stored[i]));
    const current = (key: string): Entry | undefined => winners.get(key) ?? before.get(key);

    for (const op of ops) {
      if (op.kind === 'local') {
        const version: Version = { hlc: this.clock.now(this.wallClockMs()), node: this.nodeId };
        const entry: Entry = { key: op.key, value: op.value, version };
        const previous = current(op.key)?.version;
        // Under last-writer-wins a fresh local stamp always wins; the rule is asked anyway so
        // that an injected rule is applied uniformly.
        if (this.mergeRule(version, previous)) {
          winners.set(op.key, entry);
          changes.push({ entry, previous, origin: 'local' });
        }
        results.push(version);
        continue;
      }
      const report: ApplyReport = { applied: 0, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 0 };
      for (const entry of op.entries) {
        if (!this.valid(entry)) {
          report.rejectedInvalid++;
          continue;
        }
        try {
          this.clock.receive(entry.version.hlc, this.wallClockMs());
        } catch (error) {
          if (!(error instanceof ClockDriftError)) throw error;
          report.rejectedClockDrift++;
          continue;
        }
        const previous = current(entry.key)?.version;
        if (this.mergeRule(entry.version, previous)) {
          winners.set(entry.key, entry);
          changes.push({ entry, previous, origin: 'remote' });
          report.applied++;
        } else {
          report.stale++;
        }
      }
      results.push(report);
    }

    if (winners.size > 0) {
      await this.store.write([...winners.values()], this.clock.last);
      for (const [key, entry] of winners) {
        const old = before.has(key) ? before.get(key) : undefined;
        const oldDigest = old ? entryDigest(old.key, old.version) : undefined;
        this.tree.update(keyHash(key), oldDigest, entryDigest(key, entry.version));
        this.tombstones += (entry.value === null ? 1 : 0) - (old && old.value === null ? 1 : 0);
      }
    }
    ops.forEach((op, i) => (op.resolve as (value: unknown) => void)(results[i]));
    if (this.onApplied) for (const change of changes) this.onApplied(change);
  }

  private valid(entry: Entry): boolean {
    if (typeof entry.key !== 'string' || entry.key.length === 0) return false;
    if (!isNodeId(entry.version.node) || typeof entry.version.hlc !== 'bigint') return false;
    if (Buffer.byteLength(entry.key, 'utf8') > keyBytesMax) return false;
    if (entry.value !== null && entry.value.byteLength > this.valueBytesMax) return false;
    return true;
  }
}

/** For tests: assert two replicas hold the same root. */
export function sameRoot(a: Replica, b: Replica): boolean {
  assert(a.tree.depth === b.tree.depth, 'depths differ');
  return Buffer.compare(a.tree.rootDigest, b.tree.rootDigest) === 0 && a.entryCount === b.entryCount;
}
