/**
 * A ckv node: the wiring of one process. It owns the real clock, the LevelDB store, the
 * replica (pure core), the change feed for watchers, the cluster network (`src/net/`) and
 * the control server. Local writes go to the cluster (gossip) as they are applied.
 *
 * Start order matters: the store's lock is taken first, so a second node on the same data
 * directory fails before touching anything; then the cluster and the HTTP server (src/http/)
 * start, and only then is a stale control socket (left by a kill -9) removed and the socket
 * bound, so a node that answers Status is fully up. Stop order is the reverse (control and
 * HTTP, cluster with its leave announcement, replica, store) and waits for queued writes to
 * reach disk, so no acknowledged write is lost.
 */
import { EventEmitter } from 'node:events';
import { mkdir, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { toHex } from './core/bytes.js';
import type { Entry, Version } from './core/entry.js';
import { isNodeId } from './core/entry.js';
import { nodeIdBytes } from './core/limits.js';
import { Replica, type AppliedChange, type LocalWrite } from './core/replica.js';
import { LevelStore } from './store/level-store.js';
import type { NodeConfig } from './config.js';
import { Counters } from './util/counters.js';
import type { Logger } from './util/logger.js';
import { ControlServer } from './control/server.js';
import { ClusterNetwork, loadPrivateKey } from './net/cluster.js';
import { HttpServer, isLoopbackHost, parseHttpAddress } from './http/server.js';
import { WriteStats } from './http/stats.js';

export interface ChangeEvent extends AppliedChange {
  appliedAtMs: number;
}

/** Socket paths longer than this do not fit in sockaddr_un on Linux. */
const socketPathBytesMax = 107;

export class CkvNode {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly counters = new Counters();
  /** Writes per second and convergence time of remote writes, last minute (status page, /metrics). */
  readonly writeStats = new WriteStats();
  readonly startedAtMs = Date.now();
  /** 'change' events (ChangeEvent) for watchers, local and remote. */
  readonly changes = new EventEmitter();
  private store!: LevelStore;
  replica!: Replica;
  /** The cluster network; undefined only while starting. */
  cluster: ClusterNetwork | undefined;
  private control: ControlServer | undefined;
  private http: HttpServer | undefined;
  private stopping: Promise<void> | undefined;
  private readonly stopListeners: (() => void)[] = [];

  private constructor(config: NodeConfig, logger: Logger) {
    this.config = config;
    this.logger = logger;
    this.changes.setMaxListeners(0);
  }

  static async start(config: NodeConfig, logger: Logger): Promise<CkvNode> {
    const node = new CkvNode(config, logger);
    await node.open();
    return node;
  }

  get nodeId(): string {
    return this.replica.nodeId;
  }

  /** The status page's URL (`http://host:port/`), or '' when HTTP is off. */
  get httpUrl(): string {
    return this.http?.url ?? '';
  }

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  private async open(): Promise<void> {
    const { dataDir, socketPath } = this.config;
    if (Buffer.byteLength(socketPath) > socketPathBytesMax) {
      throw new Error(`control socket path is ${Buffer.byteLength(socketPath)} bytes, over the ${socketPathBytesMax}-byte limit of Unix sockets: ${socketPath}`);
    }
    const httpAddress = parseHttpAddress(this.config.http); // a bad --http fails before anything opens
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    this.store = new LevelStore(join(dataDir, 'db'));
    await this.store.open(); // throws StoreLockedError if another node holds the directory
    try {
      const nodeId = await this.loadNodeId();
      this.replica = await Replica.open({
        nodeId,
        store: this.store,
        wallClockMs: Date.now,
        depth: this.config.merkleDepth,
        driftMsMax: this.config.clockDriftMsMax,
        valueBytesMax: this.config.valueBytesMax,
        onApplied: (change) => this.onApplied(change),
      });
      const privateKey = await loadPrivateKey(this.store);
      this.cluster = await ClusterNetwork.start(this.config, {
        replica: this.replica,
        counters: this.counters,
        logger: this.logger,
        privateKey,
      });
      if (httpAddress) {
        // Before the control socket: once Status answers, it can report the HTTP URL.
        this.http = new HttpServer(this);
        const url = await this.http.listen(httpAddress);
        this.logger.info('http listening', { url, ...(isLoopbackHost(httpAddress.host) ? {} : { warning: 'not loopback: anyone who can reach it can read and write keys' }) });
      }
      await rm(socketPath, { force: true }); // stale socket of a dead node: we hold the lock
      this.control = new ControlServer(this);
      await this.control.listen(socketPath);
    } catch (error) {
      await this.http?.close().catch(() => undefined);
      await this.cluster?.stop().catch(() => undefined);
      await this.store.close();
      throw error;
    }
    this.logger.info('node started', {
      node: this.nodeId,
      peer: this.cluster.peerId,
      cluster: this.config.cluster,
      listen: this.cluster.listenAddresses(),
      dataDir,
      socket: socketPath,
      http: this.httpUrl || 'off',
      keys: this.replica.liveCount,
      tombstones: this.replica.tombstoneCount,
    });
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

  private onApplied(change: AppliedChange): void {
    this.counters.add(change.origin === 'local' ? 'writes_local' : 'writes_remote');
    const appliedAtMs = Date.now();
    this.writeStats.record(change.origin, change.entry.version.hlc, appliedAtMs);
    if (change.origin === 'local') this.cluster?.publishChange(change);
    // Called for every write: the event is only built when a watcher listens.
    if (this.changes.listenerCount('change') > 0) this.changes.emit('change', { ...change, appliedAtMs } satisfies ChangeEvent);
  }

  put(key: string, value: Uint8Array): Promise<Version> {
    return this.replica.put(key, value);
  }

  delete(key: string): Promise<Version> {
    return this.replica.delete(key);
  }

  /** Many puts and deletes (value null) for one promise: cheaper than a put each (Replica.writeMany). */
  writeMany(writes: readonly LocalWrite[]): Promise<(Version | Error)[]> {
    return this.replica.writeMany(writes);
  }

  get(key: string): Promise<Entry | undefined> {
    return this.replica.get(key);
  }

  scan(options: { prefix?: string; startAfter?: string; limit?: number }): AsyncIterable<Entry> {
    return this.store.scanKeys(options);
  }

  sizeBytes(): Promise<number> {
    return this.store.sizeBytes();
  }

  /** The HLC reading now, without issuing a stamp. */
  hlcNow(): bigint {
    return this.replica.hlcNow();
  }

  onStop(listener: () => void): void {
    this.stopListeners.push(listener);
  }

  /** Idempotent. Refuses new requests, drains queued writes, closes the socket and the store. */
  stop(reason = 'stop requested'): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(reason);
    return this.stopping;
  }

  private async doStop(reason: string): Promise<void> {
    this.logger.info('node stopping', { reason });
    await Promise.all([this.control?.close(), this.http?.close()]);
    await this.cluster?.stop();
    await this.replica.close();
    await this.store.close();
    await rm(this.config.socketPath, { force: true });
    this.logger.info('node stopped');
    for (const listener of this.stopListeners) listener();
  }
}

/** Whether a path exists and is a socket (used by the client for a clear error). */
export async function isSocket(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isSocket();
  } catch {
    return false;
  }
}
