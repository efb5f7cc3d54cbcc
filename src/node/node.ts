/**
 * A ckv node: one process's replica and what it owns. CkvNode holds the real clock, the
 * LevelDB store, the replica (pure core), the change feed for watchers, the write statistics,
 * the counters and the cluster network (`src/net/`). It implements NodeApi (./api.ts), the
 * only face the control server (src/control/) and the HTTP server (src/http/) see; it imports
 * neither of them. The servers are wired to it in one place, ./wiring.ts (`startNode`), and
 * registered back as front ends, which the node closes first when it stops.
 *
 * Start order matters: the store's lock is taken first, so a second node on the same data
 * directory fails before touching anything; the data directory's cluster is checked (it keeps
 * the name of its first start and refuses another unless `--rebind-cluster`); then the
 * cluster starts (CkvNode.open); then the wiring starts the HTTP server, and only then
 * removes a stale control socket (left by a kill -9; one another node answers on is refused)
 * and binds the socket, so a node that answers Status is fully up. Stop order is the reverse
 * (front ends: control and HTTP, which answer the calls in flight first, so a put that
 * arrived is stored and acknowledged; the cluster with its leave announcement; replica, then
 * its snapshot, so the next start skips the full scan (src/core/replica-snapshot.ts); store)
 * and waits for queued writes to reach disk, so no acknowledged write is lost. stop()
 * is idempotent: every caller gets the same promise.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { toHex } from '../core/bytes.js';
import type { Entry, Version, WriteCondition } from '../core/entry.js';
import { isNodeId, keyHashText } from '../core/entry.js';
import { nodeIdBytes, remoteQueueEntriesMax } from '../core/limits.js';
import { Replica, type AppliedChange, type ApplyReport, type LocalWrite } from '../core/replica.js';
import { LevelStore } from '../store/level-store.js';
import type { NodeConfig } from '../config.js';
import { ClusterMismatchError, NodeStoppingError, NotPartitionedError } from '../errors.js';
import { parseLayoutChange, type LayoutChangeRequest } from '../net/layout-service.js';
import type { LayoutView } from '../net/layout-view.js';
import { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';
import { ClusterNetwork, NoPeersError } from '../net/cluster.js';
import type {
  BalanceStep,
  ChangeEvent,
  FrontEnd,
  ImportReport,
  KeyHolder,
  KeyOwners,
  NodeApi,
  PurgeReport,
  GcStatus,
  GcRunReport,
  ReadOptions,
  ReadReply,
  ScanOptions,
  ScanReadOptions,
  SyncStep,
  WriteOptions,
  WriteReply,
} from './api.js';
import { PartitionedPath } from './partitioned.js';
import { ChangeDedupe } from '../net/watch-protocol.js';
import type { Consistency } from '../core/ownership.js';
import { clusterHealth, selfReport, type ClusterHealth } from './health.js';
import { EventRing, type NodeEvent } from './events.js';
import { readStatus, type NodeStatus, type PeerView } from './status.js';
import { WriteStats } from './write-stats.js';
import { TtlSweeper } from './ttl-sweeper.js';
import { Checkpointer } from './checkpointer.js';
import { WarmUp, type WarmUpReplicaHooks } from './warm-up.js';
import { visibleAt, visibleEntries } from '../core/ttl.js';
import { NodeGc } from './gc.js';

/** `balance` reports progress at least this often while it waits. */
const balanceStepMs = 1_000;

/** How long `ckv health` waits for each member's report (they are asked at once). */
const healthAnswerTimeoutMs = 2_000;

/**
 * How old the store's size on disk in a status may be. Measuring it is a readdir and a stat
 * per LevelDB file, on the thread pool LevelDB's own reads and writes queue in; pollers read
 * status often (the status page every second, scrapes, `ckv status --watch`, benches every
 * 10 ms while a node catches up), so one measurement serves every status of this window.
 */
const diskSizeMaxAgeMs = 1_000;

export class CkvNode implements NodeApi {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly counters = new Counters();
  /** Writes per second and convergence time of remote writes, last minute (status page, /metrics). */
  readonly writeStats = new WriteStats();
  readonly startedAtMs = Date.now();
  /** Recent events for the status page's timeline (bounded ring, ./events.ts). */
  private readonly events = new EventRing();
  /** The clock warning last seen by status(): a change is a timeline event. */
  private lastClockWarning = '';
  /** The last measurement of the store's size on disk (storeSizeBytes). */
  private diskSize: { atMs: number; bytes: Promise<number> } | undefined;
  /** 'change' events (ChangeEvent) for watchers, local and remote. */
  private readonly changes = new EventEmitter();
  private store!: LevelStore;
  private replica!: Replica;
  /** Turns expired values into tombstones (TTL; ./ttl-sweeper.ts). */
  private sweeper: TtlSweeper | undefined;
  /** Saves the replica's snapshot once quiet, for a start after a crash (./checkpointer.ts). */
  private checkpointer: Checkpointer | undefined;
  /** Runs the write path on throwaway data while the fresh node is idle (./warm-up.ts). */
  private warmUp: WarmUp | undefined;
  /** The cluster network; undefined only while starting. */
  private cluster: ClusterNetwork | undefined;
  /** Partitioned mode's writes and reads (./partitioned.ts); idle in full-replication mode. */
  private partitioned: PartitionedPath | undefined;
  /** Tombstone GC (./gc.ts); the holder side exists from the start, the rest once the cluster is up. */
  gc!: NodeGc;
  private readonly frontEnds: FrontEnd[] = [];
  private stopping: Promise<void> | undefined;
  private readonly stopListeners: (() => void)[] = [];
  /**
   * The entries of each importEntries call in progress: when one is applied (origin 'remote',
   * the replica passes the same object to onApplied) it is published like a local write. A
   * Set per call, dropped when the call ends (a WeakSet of a million entries cost ~5x more,
   * most of it in the garbage collector).
   */
  private readonly importing = new Set<ReadonlySet<Entry>>();
  /**
   * The last import slice handed to the replica: slices of every import call go one after
   * another, so at most one waits for room in the remote queue and gossip and sync sessions
   * (which wait for room too) get their turn between slices instead of after a whole import.
   */
  private importTail: Promise<unknown> = Promise.resolve();
  /**
   * Local writes and imported entries applied but not yet handed to gossip: see publishSoon.
   */
  private unpublished: AppliedChange[] = [];
  /** How long Replica.open took (logged by logReplicaOpened). */
  private replicaOpenMs = 0;
  /** The status page's URL (`http://host:port/`), or '' when HTTP is off; set by the wiring. */
  httpUrl = '';

  /** This node's wall clock (the host's, plus a skew only tests set). */
  readonly wallClockMs: () => number;

  private constructor(config: NodeConfig, logger: Logger) {
    this.config = config;
    const skewMs = config.testClockSkewMs;
    this.wallClockMs = skewMs === 0 ? Date.now : () => Date.now() + skewMs;
    this.logger = logger;
    this.changes.setMaxListeners(0);
  }

  /**
   * Opens the store (its lock first), the replica and the cluster network, in a data directory
   * the caller has prepared (prepareDataDir: startNode does it first, so that a directory that
   * cannot be used fails before anything else). The front ends are not started here: see
   * startNode (./wiring.ts). On failure everything opened is closed.
   */
  static async open(config: NodeConfig, logger: Logger): Promise<CkvNode> {
    const node = new CkvNode(config, logger);
    await node.openParts();
    return node;
  }

  get nodeId(): string {
    return this.replica.nodeId;
  }

  get valueBytesMax(): number {
    return this.config.valueBytesMax;
  }

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  private async openParts(): Promise<void> {
    this.store = new LevelStore(join(this.config.dataDir, 'db'));
    this.store.prefetchSnapshot(); // read beside LevelDB's open (the replica takes it)
    await this.store.open(); // throws StoreLockedError if another node holds the directory
    try {
      await this.bindCluster();
      const nodeId = await this.loadNodeId();
      this.gc = new NodeGc({ config: this.config, store: this.store, replica: () => this.replica, counters: this.counters, logger: this.logger, wallClockMs: this.wallClockMs });
      await this.gc.load();
      const openingAtMs = performance.now();
      // The warm-up's replica is opened with these too (warm-up.ts, WarmUpReplicaHooks).
      const replicaHooks: WarmUpReplicaHooks = {
        depth: this.config.merkleDepth,
        driftMsMax: this.config.clockDriftMsMax,
        valueBytesMax: this.config.valueBytesMax,
        // Placement lives with membership in the cluster; until it is up, the node holds everything.
        holds: (keyHash) => this.cluster?.holds(keyHash) ?? true,
        clockAheadOfPeersMs: () => this.cluster?.clockAheadOfPeersMs() ?? 0,
        // An import restores what a backup held: it may bring back a collected key on purpose.
        // (An entry applied from received bytes is no import's: imports hand over their objects.)
        refuseResurrection: (keyHash, hlc, entry) => !(entry !== undefined && this.importing.size > 0 && this.isImported(entry)) && this.gc.holder.refuse(keyHash, hlc),
      };
      this.replica = await Replica.open({
        ...replicaHooks,
        nodeId,
        store: this.store,
        wallClockMs: this.wallClockMs,
        resetClockBound: this.config.resetClockBound,
        // The store epoch, made once per data directory (catch-up by delta).
        rng: () => randomBytes(4).readUInt32BE(0) / 2 ** 32,
        onApplied: (changes) => this.onApplied(changes),
      });
      this.replicaOpenMs = performance.now() - openingAtMs;
      this.sweeper = new TtlSweeper({ replica: this.replica, counters: this.counters, logger: this.logger, onExpired: (tombstones) => this.onExpired(tombstones) });
      this.sweeper.start();
      this.checkpointer = new Checkpointer({ replica: this.replica, counters: this.counters, logger: this.logger, flush: () => this.store.flush() });
      this.countOpenedFrom();
      const { boundMs, driftMsMax } = this.replica.clockAhead();
      if (boundMs > driftMsMax) {
        this.logger.warn('clock bound ahead: writes refused', {
          aheadMs: boundMs,
          why: 'this node ran with its clock set ahead; peers refuse its stamps',
          fix: "check the peers' clocks, then restart with --reset-clock-bound (or wait)",
        });
      }
      this.cluster = await ClusterNetwork.start(this.config, {
        replica: this.replica,
        counters: this.counters,
        logger: this.logger,
        store: this.store,
        wallClockMs: this.wallClockMs,
        healthReport: async () => selfReport(await this.status()),
        onEvent: (event) => {
          this.events.add({ timeMs: this.wallClockMs(), ...event });
          if (event.kind === 'member up') this.partitioned?.delivery.connected(event.nodeId);
        },
        onSessionInSync: (peerNodeId, settled) => this.gc.sessionInSync(peerNodeId, settled),
      });
      this.partitioned = new PartitionedPath({
        config: this.config,
        cluster: this.cluster,
        replica: this.replica,
        store: this.store,
        counters: this.counters,
        logger: this.logger,
        wallClockMs: this.wallClockMs,
        onChange: (listener) => {
          this.changes.on('change', listener);
          return () => this.changes.off('change', listener);
        },
      });
      await this.partitioned.start();
      const partitioned = this.partitioned;
      await this.gc.attach(this.cluster, () => minHlc(partitioned.coordinator.oldestUnsettled(), partitioned.delivery.oldestHlc()));
      this.events.add({ timeMs: this.wallClockMs(), kind: 'node started', nodeId, peerId: this.cluster.peerId, detail: `cluster ${this.config.cluster}` });
      this.checkpointer.start();
      this.warmUp = new WarmUp({
        dataDir: this.config.dataDir,
        replica: this.replica,
        counters: this.counters,
        logger: this.logger,
        wallClockMs: this.wallClockMs,
        entries: this.config.warmUpEntries,
        frontEnds: () => this.frontEnds.flatMap((frontEnd) => (frontEnd.warmUp ? [() => frontEnd.warmUp!()] : [])),
        replicaHooks,
      });
      this.warmUp.start();
    } catch (error) {
      await this.warmUp?.stop();
      await this.checkpointer?.stop();
      await this.gc?.stop().catch(() => undefined);
      await this.partitioned?.stop().catch(() => undefined);
      await this.cluster?.stop().catch(() => undefined);
      await this.sweeper?.stop();
      await this.store.close();
      throw error;
    }
  }

  /** Counts how the replica built its tree: from the snapshot of a clean stop, or by a scan (and why). */
  private countOpenedFrom(): void {
    const from = this.replica.openedFrom;
    if (from.source === 'snapshot') this.counters.add(from.replayed === undefined ? 'start_tree_snapshot' : 'start_tree_replay');
    else if (from.snapshot === 'behind') this.counters.add('start_tree_scan_behind');
    else if (from.snapshot === 'none' || from.snapshot === 'unused') this.counters.add('start_tree_scan_no_snapshot');
    else if (from.snapshot === 'stale') this.counters.add('start_tree_scan_stale');
    else this.counters.add('start_tree_scan_rejected');
  }

  /**
   * Logs how the replica built its tree, with a warning if a snapshot was stale or refused.
   * Called by the wiring once the node started: a start that fails prints only its error.
   */
  logReplicaOpened(): void {
    const from = this.replica.openedFrom;
    this.logger.info('replica opened', {
      tree: from.source,
      ...(from.source === 'scan' ? { snapshot: from.snapshot } : {}),
      ...(from.source === 'snapshot' && from.replayed !== undefined ? { replayed: from.replayed } : {}),
      keys: this.replica.entryCount,
      ms: Math.round(this.replicaOpenMs),
    });
    if (from.source === 'scan' && from.snapshot === 'stale') {
      this.logger.warn('start snapshot stale: tree rebuilt by a scan', {
        why: "changed after the last snapshot (a clean stop's or a checkpoint's) in a way a replay cannot follow: a purge of partitions or a failed write, then a kill or crash",
      });
    } else if (from.source === 'scan' && from.snapshot === 'behind') {
      this.logger.warn('start snapshot behind: tree rebuilt by a scan', {
        why: 'more entries were written after the last snapshot than replaying them is worth: the node was killed or crashed during a long run of writes',
      });
    } else if (from.source === 'scan' && from.snapshot !== 'none' && from.snapshot !== 'unused') {
      this.logger.warn('start snapshot rejected: tree rebuilt by a scan', { reason: from.snapshot });
    }
  }

  /**
   * A data directory belongs to one cluster: the name it first started with is kept in the
   * store ('cluster'). Another name is refused (ClusterMismatchError: exit 2), so its data is
   * not carried into that cluster by a mistyped flag, unless `--rebind-cluster` says to move
   * it. A directory from before names were kept is bound to the name it starts with now.
   */
  private async bindCluster(): Promise<void> {
    const stored = await this.store.getMeta('cluster');
    const bound = stored ? new TextDecoder().decode(stored) : undefined;
    const wanted = this.config.cluster;
    if (bound === wanted) return;
    if (bound !== undefined && !this.config.rebindCluster) throw new ClusterMismatchError(this.config.dataDir, bound, wanted);
    await this.store.putMeta('cluster', new TextEncoder().encode(wanted));
    if (bound !== undefined) this.logger.warn('cluster rebound', { from: bound, to: wanted, dataDir: this.config.dataDir });
  }

  private async loadNodeId(): Promise<string> {
    const stored = await this.store.getMeta('node-id');
    if (stored) {
      const id = toHex(stored);
      if (!isNodeId(id)) throw new Error(`data directory has a corrupt node id (${id})`);
      return id;
    }
    const fresh = new Uint8Array(randomBytes(nodeIdBytes));
    await this.store.putMeta('node-id', fresh);
    return toHex(fresh);
  }

  /**
   * A commit's changes, durable (the replica tells each commit once): counted, their
   * convergence recorded, local ones (and imports) handed to gossip, expiring ones to the
   * sweeper, and each told to watchers. The commit's changes share one wall-clock read, and the
   * cluster is told once that entries were applied: a catch-up commits thousands at a time.
   */
  private onApplied(changes: readonly AppliedChange[]): void {
    const appliedAtMs = this.wallClockMs();
    this.cluster?.noteApplied();
    const importing = this.importing.size > 0;
    // The event (and a received change's entry) is only made when a watcher listens.
    const watched = this.changes.listenerCount('change') > 0;
    let local = 0;
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i]!;
      if (change.origin === 'local') local++;
      // An imported entry was written long ago: its age is not a convergence time.
      const imported = importing && change.origin === 'remote' && this.isImported(change.entry);
      if (!imported) this.writeStats.record(change.origin, change.hlc, appliedAtMs);
      if (change.origin === 'local' || imported) this.publishSoon(change);
      if (change.expires) this.sweeper?.schedule(change.entry);
      if (watched) {
        const { entry, keyHash, previous, origin } = change;
        this.changes.emit('change', { entry, keyHash, previous, origin, appliedAtMs } satisfies ChangeEvent);
      }
    }
    if (local > 0) this.counters.add('writes_local', local);
    if (local < changes.length) this.counters.add('writes_remote', changes.length - local);
  }

  /**
   * The sweeper's tombstones, for watchers only: not gossiped (every node sweeps by itself, to
   * the identical tombstone) and not a write of this node's (no counters, no convergence).
   */
  private onExpired(tombstones: readonly Entry[]): void {
    if (this.changes.listenerCount('change') === 0) return;
    const appliedAtMs = this.wallClockMs();
    for (const entry of tombstones) {
      this.changes.emit('change', { entry, keyHash: keyHashText(entry.key), previous: entry.version, origin: 'expired', appliedAtMs } satisfies ChangeEvent);
    }
  }

  /**
   * Hands a change to gossip two event-loop turns after its commit, so the commit's
   * acknowledgements leave first. A gRPC unary reply leaves in two steps: its message in the
   * commit's turn (node:http2 writes in the check phase) and its status in the next turn
   * (grpc-js sends it once the message's write has completed, a libuv callback of that turn).
   * Publishing (encoding, the message id's hash, per peer a noise encryption and socket
   * writes) costs an idle node ~1 ms of CPU, which an idle put's acknowledgement waited for
   * while gossip went first (docs/measurements.md, "idle put acknowledgement"). The changes of
   * every commit of those turns are handed over together, so gossip still sends them as one
   * message (split at its limits). stop() hands over what is left before gossip stops.
   *
   * Not when busy (writes already wait for the next commit): turns are long then, and holding
   * gossip back two of them delayed every peer by more than the acknowledgement gained (the
   * convergence scenario at 500 writes/s on 5 nodes); the change goes at once, as before,
   * with anything still held back ahead of it.
   */
  private publishSoon(change: AppliedChange): void {
    // Partitioned mode: the coordinator hands writes to their owners; gossip carries no writes.
    if (this.partitioned?.active()) return;
    this.unpublished.push(change);
    if (this.replica.queuedCalls > 0) this.publishUnpublished();
    else if (this.unpublished.length === 1) setImmediate(() => setImmediate(this.publishUnpublished));
  }

  private readonly publishUnpublished = (): void => {
    const changes = this.unpublished;
    this.unpublished = [];
    for (const change of changes) this.cluster?.publishChange(change);
  };

  /** A front end (control or HTTP server) to close first when the node stops. */
  addFrontEnd(frontEnd: FrontEnd): void {
    this.frontEnds.push(frontEnd);
  }

  // --- NodeApi ------------------------------------------------------------------------------

  async put(key: string, value: Uint8Array, condition?: WriteCondition): Promise<Version> {
    return (await this.write(key, value, { condition })).version;
  }

  async delete(key: string, condition?: WriteCondition): Promise<Version> {
    return (await this.write(key, null, { condition })).version;
  }

  async writeMany(writes: readonly LocalWrite[], consistency?: Consistency): Promise<(Version | Error)[]> {
    // Only a refused request awaits (full replication's path stays synchronous here).
    const refusal = this.refusal() && (await this.refusalAfterWait());
    if (refusal) throw refusal;
    if (!this.partitioned?.active()) return this.replica.writeMany(writes);
    return (await this.partitioned.write(writes, consistency)).map((result) => (result instanceof Error ? result : result.version));
  }

  async write(key: string, value: Uint8Array | null, options: WriteOptions = {}): Promise<WriteReply> {
    // Only a refused request awaits (full replication's path stays synchronous here).
    const refusal = this.refusal() && (await this.refusalAfterWait());
    if (refusal) throw refusal;
    if (!this.partitioned?.active()) {
      const version = value === null ? await this.replica.delete(key, options.condition) : await this.replica.put(key, value, options.condition, options.ttlMs);
      return { version, owners: [], acked: [] };
    }
    const [result] = await this.partitioned.write([{ key, value, condition: options.condition, ttlMs: options.ttlMs }], options.consistency);
    if (result instanceof Error) throw result;
    return result!;
  }

  async read(key: string, options: ReadOptions = {}): Promise<ReadReply> {
    // Only a refused request awaits (full replication's path stays synchronous here).
    const refusal = this.refusal() && (await this.refusalAfterWait());
    if (refusal) throw refusal;
    if (!this.partitioned?.active()) {
      const entry = this.visibleNow(await this.replica.get(key));
      return { entry, from: 'local', owners: [], asked: 1, answers: [] };
    }
    const reply = await this.partitioned.read(key, options.from, options.allowPartial ?? false);
    return reply.entry?.expiresAtMs === undefined ? reply : { ...reply, entry: this.visibleNow(reply.entry) };
  }

  /** An entry as a read sees it now: an expired value is its tombstone (TTL, src/core/ttl.ts). */
  private visibleNow(entry: Entry | undefined): Entry | undefined {
    return entry?.expiresAtMs === undefined ? entry : visibleAt(entry, this.replica.nowMs());
  }

  owners(key: string): KeyOwners | undefined {
    return this.partitioned?.owners(key);
  }

  /** In partitioned mode: from the owners (local when this node holds the key, else one owner). */
  async get(key: string): Promise<Entry | undefined> {
    return (await this.read(key)).entry;
  }

  async layout(): Promise<LayoutView> {
    return this.requireCluster().partitionedLayout('ckv layout').view();
  }

  async layoutChange(request: LayoutChangeRequest): Promise<LayoutView> {
    const cluster = this.requireCluster();
    const layouts = cluster.partitionedLayout(`ckv layout ${request.action}`);
    return layouts.change(parseLayoutChange(request, (node) => cluster.resolveNode(node)));
  }

  async removeNode(node: string): Promise<LayoutView> {
    const cluster = this.requireCluster();
    const layouts = cluster.partitionedLayout('ckv node remove');
    const nodeId = cluster.resolveNode(node);
    return layouts.removeNode(nodeId, cluster.isUp(nodeId));
  }

  async leaveCluster(): Promise<LayoutView> {
    return this.requireCluster().partitionedLayout('ckv node leave').leave();
  }

  private requireCluster(): ClusterNetwork {
    if (!this.cluster) throw new NodeStoppingError();
    return this.cluster;
  }

  /**
   * Partitioned mode: why this node refuses reads and writes (its --replicas disagrees with
   * the cluster's layout: it would place keys where its peers do not look), if it does.
   */
  private refusal(): Error | undefined {
    return this.cluster?.refusal() ?? this.partitioned?.waitingRefusal();
  }

  /** As `refusal`, but a partitioned node without a layout yet first waits a few seconds for one. */
  private async refusalAfterWait(): Promise<Error | undefined> {
    return this.cluster?.refusal() ?? (await this.partitioned?.refusalAfterWait()) ?? this.cluster?.refusal();
  }

  scan(options: ScanOptions): AsyncIterable<Entry> {
    const { prefix, startAfter, limit } = options;
    if (options.from === 'local' || this.config.replicas === undefined) return this.visible(this.store.scanKeys({ prefix, startAfter, limit }));
    return this.visible(this.ownersScan({ prefix: prefix ?? '', startAfter, limit, withValues: options.withValues ?? true }, options));
  }

  exportEntries(prefix: string, read: ScanReadOptions = {}): AsyncIterable<Entry> {
    if (read.from === 'local' || this.config.replicas === undefined) return this.visible(prefix === '' ? this.store.scanHash('') : this.store.scanKeys({ prefix }));
    return this.visible(this.ownersScan({ prefix, startAfter: undefined, limit: undefined, withValues: true }, read));
  }

  /** Entries as reads see them, judged at the scan's start (TTL: src/core/ttl.ts). */
  private visible(entries: AsyncIterable<Entry>): AsyncIterable<Entry> {
    return visibleEntries(entries, this.replica.nowMs());
  }

  /** Partitioned mode: a prefix read from every partition's owners (refused as other reads are). */
  private async *ownersScan(
    request: { prefix: string; startAfter: string | undefined; limit: number | undefined; withValues: boolean },
    read: ScanReadOptions,
  ): AsyncGenerator<Entry> {
    const refusal = this.refusal() && (await this.refusalAfterWait());
    if (refusal) throw refusal;
    if (!this.partitioned?.active()) {
      yield* this.store.scanKeys({ prefix: request.prefix, startAfter: request.startAfter, limit: request.limit });
      return;
    }
    const scan = this.partitioned.scan({ ...request, allowPartial: read.allowPartial ?? false });
    try {
      yield* scan.entries;
    } finally {
      if (read.partial) read.partial.partitionsMissing = scan.missing();
    }
  }

  /**
   * The normal merge (Replica.applyRemote) in slices of the remote queue's size, one at a time
   * across all import calls (importTail); applied entries are published to the
   * cluster like local writes (onApplied), so they reach the other nodes at once rather than
   * at the next anti-entropy round.
   */
  async importEntries(entries: readonly Entry[]): Promise<ImportReport> {
    if (this.partitioned?.active()) return this.partitioned.importEntries(entries);
    const mine: ReadonlySet<Entry> = new Set(entries);
    this.importing.add(mine);
    const slices: Promise<ApplyReport>[] = [];
    let reports: ApplyReport[];
    try {
      for (let at = 0; at < entries.length; at += remoteQueueEntriesMax) {
        const slice = entries.slice(at, at + remoteQueueEntriesMax);
        const applied = this.importTail.then(() => this.replica.applyRemote(slice));
        this.importTail = applied.catch(() => undefined);
        slices.push(applied);
      }
      // onApplied runs synchronously in the commit, before these promises' continuations.
      reports = await Promise.all(slices);
    } finally {
      // Once every slice has settled: a slice still queued may yet be applied.
      await Promise.allSettled(slices);
      this.importing.delete(mine);
    }
    const report: ImportReport = { applied: 0, notNewer: 0, refusedClock: 0, refusedInvalid: 0, refusedNotHeld: 0 };
    for (const slice of reports) {
      report.applied += slice.applied;
      report.notNewer += slice.stale;
      report.refusedClock += slice.rejectedClockDrift;
      report.refusedInvalid += slice.rejectedInvalid;
      report.refusedNotHeld += slice.rejectedNotHeld;
    }
    return report;
  }

  private isImported(entry: Entry): boolean {
    for (const entries of this.importing) if (entries.has(entry)) return true;
    return false;
  }

  watch(listener: (change: ChangeEvent) => void, options: { prefix?: string; onBehind?: () => void } = {}): () => void {
    if (this.config.replicas === undefined || !this.partitioned) {
      this.changes.on('change', listener);
      return () => this.changes.off('change', listener);
    }
    // Partitioned: this node's changes and every up member's (watch-protocol.ts), each write once.
    const dedupe = new ChangeDedupe();
    const local = (change: ChangeEvent): void => {
      if (dedupe.first(change.entry)) listener(change);
    };
    this.changes.on('change', local);
    const stopRemote = this.partitioned.watchMembers(
      options.prefix ?? '',
      ({ entry, valueBytes }) => {
        if (dedupe.first(entry)) listener({ entry, keyHash: keyHashText(entry.key), previous: undefined, origin: 'remote', appliedAtMs: this.wallClockMs(), valueBytes });
      },
      () => options.onBehind?.(),
    );
    return () => {
      this.changes.off('change', local);
      stopRemote();
    };
  }

  observeConvergence(observer: (ms: number) => void): () => void {
    return this.writeStats.observe(observer);
  }

  async status(): Promise<NodeStatus> {
    const status = await readStatus({
      config: this.config,
      startedAtMs: this.startedAtMs,
      httpUrl: this.httpUrl,
      stopping: this.isStopping,
      replica: this.replica,
      cluster: this.cluster,
      counters: this.counters,
      writeStats: this.writeStats,
      sizeBytes: () => this.storeSizeBytes(),
      delivery: () => this.partitioned?.delivery.stats(),
      gc: () => this.gc?.status(),
    });
    // Clock warnings reach the timeline when a status read sees them appear or clear (the
    // status page reads it every second; so do /metrics scrapes and `ckv status`).
    if (status.clock.warning !== this.lastClockWarning) {
      this.lastClockWarning = status.clock.warning;
      this.events.add({ timeMs: status.timeMs, kind: status.clock.warning ? 'clock warning' : 'clock ok', nodeId: status.nodeId, peerId: status.peerId, detail: status.clock.warning || 'writes accepted again' });
    }
    return status;
  }

  /** The store's size on disk, measured at most once per diskSizeMaxAgeMs (a failed measurement is not kept). */
  private storeSizeBytes(): Promise<number> {
    const nowMs = performance.now();
    if (this.diskSize === undefined || nowMs - this.diskSize.atMs >= diskSizeMaxAgeMs) {
      const measurement = { atMs: nowMs, bytes: this.store.sizeBytes() };
      this.diskSize = measurement;
      measurement.bytes.catch(() => {
        if (this.diskSize === measurement) this.diskSize = undefined;
      });
    }
    return this.diskSize.bytes;
  }

  recentEvents(after: number, limit: number): { events: NodeEvent[]; lastSeq: number; dropped: number } {
    return this.events.since(after, limit);
  }

  /** `ckv health`: this node and every member it knows, each up member asked for its report. */
  async health(): Promise<ClusterHealth> {
    const answers = (await this.cluster?.healthOfPeers(healthAnswerTimeoutMs)) ?? new Map();
    return clusterHealth(await this.status(), answers);
  }

  async peers(): Promise<PeerView[]> {
    return (await this.status()).peers;
  }

  async forget(peerId: string): Promise<boolean> {
    // The member's node id, before membership drops it: GC's member set forgets it too.
    const nodeId = this.cluster?.peerList().find((m) => m.peerId === peerId || m.nodeId === peerId)?.nodeId ?? (isNodeId(peerId) ? peerId : undefined);
    const forgotten = this.cluster?.forget(peerId) ?? false;
    const gcForgot = nodeId !== undefined && this.gc.forget(nodeId);
    return forgotten || gcForgot;
  }

  async *sync(peerId?: string): AsyncGenerator<SyncStep> {
    if (!this.cluster) throw new NoPeersError();
    for await (const step of this.cluster.syncNow(peerId || undefined)) {
      if (step.phase === 'started') {
        yield { phase: 'started', peerId: step.peerId };
        continue;
      }
      const { report } = step;
      yield {
        phase: report.outcome === 'error' || report.outcome === 'refused' ? 'failed' : 'finished',
        peerId: report.peerId,
        outcome: report.outcome,
        rounds: report.result?.rounds ?? 0,
        entriesSent: report.result?.entriesSent ?? 0,
        entriesReceived: report.result?.entriesReceived ?? 0,
        bytesSent: report.bytesSent,
        bytesReceived: report.bytesReceived,
        message: report.error ?? '',
      };
    }
  }

  gcStatus(): GcStatus {
    return this.gc.status();
  }

  gcRun(): Promise<GcRunReport> {
    return this.gc.run();
  }

  async purge(dry: boolean): Promise<PurgeReport> {
    const report = await this.cluster?.purge(dry);
    if (report === undefined) throw new NotPartitionedError('ckv purge');
    return report;
  }

  async *balance(singleLayout: boolean): AsyncGenerator<BalanceStep> {
    const cluster = this.cluster;
    if (cluster?.pullProgress() === undefined) throw new NotPartitionedError('ckv balance');
    // The pulls start now; then a step after each pull round, at least every balanceStepMs,
    // until done (the caller cancels to stop waiting).
    let wake = true;
    for (;;) {
      const progress = cluster.pullProgress()!;
      const activeVersions = cluster.partitionedStatus()?.activeVersions ?? [];
      const done = progress.pending.length === 0 && (!singleLayout || activeVersions.length <= 1);
      yield { activeVersions, pending: progress.pending, pulled: progress.pulled, blockedBy: progress.blockedBy, done };
      if (done || this.isStopping) return;
      await Promise.race([cluster.pullRound(wake), new Promise((resolve) => setTimeout(resolve, balanceStepMs).unref())]);
      wake = false;
    }
  }

  async whereIs(key: string): Promise<KeyHolder[]> {
    const entry = await this.replica.get(key);
    const holders: KeyHolder[] = entry
      ? [{ nodeId: this.nodeId, peerId: this.cluster?.peerId ?? '', version: entry.version, deleted: entry.value === null }]
      : [];
    for (const answer of (await this.cluster?.whereIs(key)) ?? []) {
      if (answer.error) holders.push({ peerId: answer.peerId, error: answer.error });
      else if (answer.holding?.version) {
        const { nodeId, version, deleted } = answer.holding;
        holders.push({ nodeId, peerId: answer.peerId, version, deleted });
      }
    }
    return holders;
  }

  onStop(listener: () => void): void {
    this.stopListeners.push(listener);
  }

  stop(reason = 'stop requested'): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(reason, true);
    return this.stopping;
  }

  /** Closes everything without a word: the node failed to start (the caller reports why). */
  abandon(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop('start failed', false);
    return this.stopping;
  }

  private async doStop(reason: string, log: boolean): Promise<void> {
    if (log) this.logger.info('node stopping', { reason });
    await Promise.all(this.frontEnds.map((frontEnd) => frontEnd.close()));
    // Acknowledged writes not yet handed to gossip go out with the gossip's last flush.
    this.publishUnpublished();
    await this.gc?.stop();
    await this.partitioned?.stop();
    await this.cluster?.stop();
    await this.sweeper?.stop();
    await this.warmUp?.stop();
    await this.checkpointer?.stop();
    await this.replica.close();
    if (log) {
      // A clean stop: save the tree and key filter, so the next start skips the full scan.
      // A failure only costs that start its speed.
      await this.replica.saveSnapshot().catch((error: unknown) => this.logger.warn('snapshot not saved: the next start scans', { error }));
    }
    await this.store.close();
    // The control socket is removed by the control server when it closes, and only if it bound
    // it: a node that failed to start never deletes the socket of another node.
    if (log) this.logger.info('node stopped');
    for (const listener of this.stopListeners) listener();
  }
}

/** The smaller of two optional HLCs. */
function minHlc(a: bigint | undefined, b: bigint | undefined): bigint | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}
