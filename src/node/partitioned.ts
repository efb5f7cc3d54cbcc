/**
 * The partitioned data path of a node, kept out of node.ts: the replicate service (this node
 * as an owner), the replicate client and the coordinator (this node as a coordinator), and
 * `whereis`'s view of a key's owners. Built once the cluster network is up; every method but
 * `active()` is only called while `active()` is true (a layout is known). In full-replication
 * mode (`ownership()` undefined) the node never routes anything here, so nothing changes.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { keyHashText, type Entry } from '../core/entry.js';
import { LayoutOwnership, type Consistency, type Ownership } from '../core/ownership.js';
import type { AppliedChange, LocalWrite, Replica } from '../core/replica.js';
import { WatchService, type RemoteChange } from '../net/watch-protocol.js';
import type { NodeConfig } from '../config.js';
import type { ClusterNetwork } from '../net/cluster.js';
import { libp2pDial, ReplicateClient, ReplicateService } from '../net/replicate-protocol.js';
import type { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';
import { OwnersUnavailableError } from '../errors.js';
import { partitionCount } from '../core/placement.js';
import { scatterScan } from '../core/scatter-read.js';
import type { Store } from '../core/store.js';
import { readPage, scanPageEntriesMax } from '../net/query-protocol.js';
import type { ImportReport, KeyOwners } from './api.js';
import { Delivery } from './delivery.js';
import { Coordinator, writeAckTimeoutMs, type ReadResult, type ReadSource, type WriteResult } from './coordinator.js';

/** How often a request that arrived before this node's first layout looks for it. */
const layoutPollMs = 25;
/** How long it waits for one: with the write's own deadline after it, within a client's 10 s. */
const layoutWaitMsDefault = 3_000;

export class PartitionedPath {
  readonly coordinator: Coordinator;
  /** Delivery until acknowledged: the rows kept for owners that did not ack (./delivery.ts). */
  readonly delivery: Delivery;
  private readonly service: ReplicateService;
  private readonly client: ReplicateClient;
  private readonly watches: WatchService;
  private stopped = false;

  constructor(
    private readonly parts: {
      config: NodeConfig;
      cluster: ClusterNetwork;
      replica: Replica;
      store: Store;
      counters: Counters;
      logger: Logger;
      wallClockMs: () => number;
      /** This node's own applied changes (what a remote watcher is sent). */
      onChange: (listener: (change: AppliedChange) => void) => () => void;
    },
  ) {
    const { config, cluster, replica, counters } = parts;
    this.watches = new WatchService({ libp2p: cluster.libp2p, counters, onChange: parts.onChange, upPeerIds: () => cluster.upPeerIds() }, config.cluster);
    this.service = new ReplicateService({ libp2p: cluster.libp2p, replica, counters }, { cluster: config.cluster, valueBytesMax: config.valueBytesMax });
    this.client = new ReplicateClient({ counters }, { cluster: config.cluster, valueBytesMax: config.valueBytesMax, dial: libp2pDial(cluster.libp2p, peerIdFromString) });
    this.delivery = new Delivery({
      store: parts.store,
      replica,
      ownership: () => this.coordinator.partitioned(),
      peerIdOf: (nodeId) => this.peerIdOf(nodeId),
      apply: (peerId, entry) => this.client.apply(peerId, entry),
      counters,
      logger: parts.logger,
      wallClockMs: parts.wallClockMs,
      valueBytesMax: config.valueBytesMax,
      ...(config.deliveryBytesMax !== undefined ? { bytesMax: config.deliveryBytesMax } : {}),
    });
    this.coordinator = new Coordinator({
      hints: this.delivery,
      replica,
      ownership: () => this.ownership(),
      peerIdOf: (nodeId) => this.peerIdOf(nodeId),
      transport: this.client,
      counters,
      logger: parts.logger,
      wallClockMs: parts.wallClockMs,
    });
  }

  async start(): Promise<void> {
    await this.service.start();
    await this.delivery.start();
    this.parts.cluster.onLayoutChange(() => this.delivery.layoutChanged());
    if (this.parts.config.replicas !== undefined) await this.watches.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.coordinator.stop();
    await this.delivery.stop();
    this.client.stop();
    await this.service.stop();
    await this.watches.stop();
  }

  /** Every up member's changes under `prefix` (watch-protocol.ts); returns the function that ends it. */
  watchMembers(prefix: string, listener: (change: RemoteChange) => void, onBehind: () => void): () => void {
    return this.watches.watch(prefix, listener, onBehind);
  }

  ownership(): Ownership | undefined {
    return this.parts.cluster.ownership();
  }

  peerIdOf(nodeId: string): string | undefined {
    return this.parts.cluster.peerIdOf(nodeId);
  }

  /** Whether writes and reads go through the coordinator now (a layout is known). */
  active(): boolean {
    return this.coordinator.partitioned() !== undefined;
  }

  /**
   * Partitioned mode before this node knows a layout: it owns nothing and knows no owner, so
   * it refuses reads and writes (OwnersUnavailableError) rather than store keys locally.
   */
  waitingRefusal(): OwnersUnavailableError | undefined {
    if (this.parts.config.replicas === undefined || this.active()) return undefined;
    return new OwnersUnavailableError('partitioned mode: this node has no layout yet (it joins one in a few seconds; see ckv layout)');
  }

  /**
   * The refusal, after waiting up to `layoutWaitMs` for a layout to arrive: a node that just
   * started (a joiner taking requests as soon as it serves) gets the cluster's layout from its
   * peers within moments, and a request that came first waits for it rather than failing.
   * Polled every `layoutPollMs` (no timer when a layout is known).
   */
  async refusalAfterWait(layoutWaitMs = layoutWaitMsDefault): Promise<OwnersUnavailableError | undefined> {
    const untilMs = this.parts.wallClockMs() + layoutWaitMs;
    while (this.waitingRefusal() !== undefined && this.parts.wallClockMs() < untilMs && !this.stopped) {
      await new Promise((resolve) => setTimeout(resolve, layoutPollMs));
    }
    return this.waitingRefusal();
  }

  write(writes: readonly LocalWrite[], consistency?: Consistency): Promise<(WriteResult | Error)[]> {
    return this.coordinator.write(writes, consistency);
  }

  read(key: string, from: ReadSource | undefined, allowPartial: boolean): Promise<ReadResult> {
    return this.coordinator.read(key, from, allowPartial);
  }

  /**
   * Imported entries (with their versions) to their owners: applied here for partitions this
   * node holds, sent to every other owner, each waiting up to writeAckTimeoutMs. Counted by the
   * best outcome among the owners (applied somewhere: applied; else older somewhere: notNewer;
   * else the refusal; no owner reachable: refusedNotHeld, the entry is on no owner).
   */
  async importEntries(entries: readonly Entry[]): Promise<ImportReport> {
    const ownership = this.coordinator.partitioned();
    const report: ImportReport = { applied: 0, notNewer: 0, refusedClock: 0, refusedInvalid: 0, refusedNotHeld: 0 };
    if (ownership === undefined) return report;
    const local: Entry[] = [];
    const best = new Map<Entry, number>();
    const rank = { applied: 4, older: 3, 'refused-clock': 2, 'refused-invalid': 1, 'not-owner': 0 } as const;
    const note = (entry: Entry, outcome: keyof typeof rank): void => {
      best.set(entry, Math.max(best.get(entry) ?? -1, rank[outcome]));
    };
    const sends: Promise<void>[] = [];
    for (const entry of entries) {
      const owners = ownership.writeOwners(ownership.partitionOf(keyHashText(entry.key)));
      for (const nodeId of owners) {
        if (nodeId === ownership.self) {
          local.push(entry);
          continue;
        }
        const peerId = this.peerIdOf(nodeId);
        if (peerId === undefined) continue;
        sends.push(
          withTimeout(this.client.apply(peerId, entry), writeAckTimeoutMs).then(
            (outcome) => note(entry, outcome),
            () => undefined,
          ),
        );
      }
    }
    if (local.length > 0) {
      const applied = await this.parts.replica.applyRemote(local, { outcomes: true });
      const map = { applied: 'applied', stale: 'older', 'clock-drift': 'refused-clock', invalid: 'refused-invalid', 'not-held': 'not-owner' } as const;
      applied.outcomes?.forEach((outcome, i) => note(local[i]!, map[outcome]));
    }
    await Promise.all(sends);
    for (const entry of entries) {
      const r = best.get(entry) ?? 0;
      if (r === 4) report.applied++;
      else if (r === 3) report.notNewer++;
      else if (r === 2) report.refusedClock++;
      else if (r === 1) report.refusedInvalid++;
      else report.refusedNotHeld++;
    }
    return report;
  }

  /**
   * Every entry under the prefix (tombstones included) from the read owners of every
   * partition, merged in key order (scatterScan, src/core/scatter-read.ts): this node answers
   * for the partitions it reads locally, each other partition is asked of one up read owner
   * by the query protocol's scan pages. Partitions no owner can answer for: OwnersUnavailableError
   * naming their count, unless `allowPartial` (then `missing` counts them, and the read goes on).
   */
  scan(options: { prefix: string; startAfter?: string | undefined; limit?: number | undefined; withValues: boolean; allowPartial: boolean }): {
    entries: AsyncIterable<Entry>;
    missing: () => number;
  } {
    const ownership = this.coordinator.partitioned();
    if (ownership === undefined) throw new OwnersUnavailableError('partitioned mode: this node has no layout yet');
    const missing = new Set<number>();
    const { cluster, store, counters, logger, config } = this.parts;
    const entries = scatterScan({
      prefix: options.prefix,
      startAfter: options.startAfter,
      limit: options.limit,
      pageEntries: scanPageEntriesMax,
      self: ownership.self,
      readOwners: (p) => ownership.readOwners(p),
      usable: (nodeId) => this.peerIdOf(nodeId) !== undefined,
      fetch: (request) => {
        if (request.owner === ownership.self) {
          const asked = new Set(request.partitions);
          return readPage((o) => store.scanKeys(o), { ...request, withValues: options.withValues, asked: (p) => asked.has(p) });
        }
        const peerId = this.peerIdOf(request.owner);
        if (peerId === undefined) return Promise.reject(new Error(`owner ${request.owner} is not up`));
        return cluster.scanPage(peerId, request, options.withValues, config.valueBytesMax);
      },
      onMissing: (partitions) => {
        for (const p of partitions) missing.add(p);
        if (!options.allowPartial) {
          throw new OwnersUnavailableError(
            `${missing.size} of ${partitionCount} partitions have no read owner that answered (down or unreachable); use --allow-partial to list the others, or --from local for this node's copy`,
          );
        }
      },
      onOwnerFailed: (owner, error, rejected) => {
        counters.add('scan_owner_failed');
        if (rejected) counters.add('query_rejected'); // a reply that decoded but broke checkPage's rules
        logger.info('prefix read: an owner failed, its partitions go to the next owner', { owner, error: error.message });
      },
    });
    return { entries, missing: () => missing.size };
  }

  /** The key's partition and owners per active layout (undefined in full-replication mode). */
  owners(key: string): KeyOwners | undefined {
    const ownership = this.coordinator.partitioned();
    if (ownership === undefined) return undefined;
    const partition = ownership.partitionOf(keyHashText(key));
    const sets = ownership.writeSets(partition);
    const versions = ownership instanceof LayoutOwnership ? ownership.history.active().map((layout) => layout.version) : sets.map((_, i) => i + 1);
    return {
      partition,
      layouts: sets.map((set, i) => ({
        version: versions[i] ?? i + 1,
        owners: set.map((nodeId) => {
          const peerId = this.peerIdOf(nodeId);
          return { nodeId, peerId: peerId ?? '', up: peerId !== undefined };
        }),
      })),
      readOwners: [...ownership.readOwners(partition)],
    };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
