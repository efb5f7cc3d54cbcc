/**
 * Tombstone GC in a node (docs/design-delivery-gc.md section 2), kept out of node.ts: the
 * holder side (./gc-holder.ts: collected floors, refusals, phase one and two at this node),
 * this node's floor (./gc-floor.ts), the gc protocol (src/net/gc-protocol.ts) and the
 * collector loop (./gc-collector.ts), with the view of who holds and who collects:
 *
 * - Full replication: the members are this node and every member it knows (up, unreachable,
 *   left: not removed or expired); every member holds every partition; the collector is the
 *   member with the smallest node id (the others collect their leftovers as backups).
 * - Partitioned: the members are the newest layout's nodes (and any other node up); a partition's holders are its
 *   owners in every active layout (gcHolders); its collector is the first of its owners in the
 *   newest layout, and only once no holder is still gaining it (a new holder's floor would
 *   otherwise refuse rows it has not pulled yet); other holders are backups.
 *
 * `holder` exists from the node's start (the replica's refusals need the floors before any
 * remote entry is applied); `attach` starts the rest once the cluster is up.
 */
import type { NodeConfig } from '../config.js';
import { bitmapHas } from '../core/layout.js';
import type { Replica } from '../core/replica.js';
import type { Store } from '../core/store.js';
import { gcHolders } from '../core/tombstone-gc.js';
import type { ClusterNetwork } from '../net/cluster.js';
import { GcProtocol } from '../net/gc-protocol.js';
import type { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';
import { GcCollector, watermarkText, type GcRunReport, type GcView } from './gc-collector.js';
import { GcFloor } from './gc-floor.js';
import { GcHolder } from './gc-holder.js';
import { GcMembers } from './gc-members.js';

/** The `gc` block of the status and what `ckv gc` shows. */
export interface GcStatus {
  /** The last run's watermark as HLC text ('none': a member holds it back entirely), and its age. */
  watermark: string;
  watermarkAgeMs: number | undefined;
  /** The member whose floor (or silence) sets the watermark. */
  holdsBack: string | undefined;
  /** The primary collector (full replication), or 'per partition'. */
  collector: string;
  /** Tombstones held here now. */
  tombstones: number;
  /** Tombstones below the watermark found by the last run. */
  collectable: number;
  /** Rows this node deleted by GC since it started (phase two here). */
  collected: number;
  /** Rows deleted on every holder by rounds this node ran, since it started. */
  collectedByRounds: number;
  openRounds: number;
  /** Wall ms of the last run's end, if any. */
  lastRunAtMs: number | undefined;
  /** Errors of the last run (holders that did not answer...), at most 8. */
  lastErrors: string[];
  intervalMs: number;
  /** Partitions with a collected floor here. */
  partitionsWithFloor: number;
}

export class NodeGc {
  readonly holder: GcHolder;
  /** Full replication: every member ever known, until forgotten (./gc-members.ts). */
  readonly members: GcMembers;
  private floorSource: GcFloor | undefined;
  private protocol: GcProtocol | undefined;
  private collector: GcCollector | undefined;
  private cluster: ClusterNetwork | undefined;

  constructor(
    private readonly parts: {
      config: NodeConfig;
      store: Store;
      replica: () => Replica;
      counters: Counters;
      logger: Logger;
      wallClockMs: () => number;
    },
  ) {
    this.members = new GcMembers(parts.store);
    this.holder = new GcHolder({
      store: parts.store,
      replica: parts.replica,
      counters: parts.counters,
      floor: () => this.floorSource?.answer() ?? { floor: undefined, members: [] },
    });
  }

  /** Tell the floor of an in-sync session this node initiated (ClusterComponents.onSessionInSync). */
  sessionInSync(nodeId: string, settled: bigint): void {
    this.floorSource?.sessionInSync(nodeId, settled);
  }

  /** Starts the floor, the protocol and the collector once the cluster is up. */
  async attach(cluster: ClusterNetwork, pendingOldest?: () => bigint | undefined): Promise<void> {
    const { config, counters, logger, wallClockMs } = this.parts;
    const replica = this.parts.replica();
    const partitioned = config.replicas !== undefined;
    this.cluster = cluster;
    this.floorSource = new GcFloor({
      settledHlc: () => replica.settledHlc(),
      members: () => (partitioned ? (cluster.ownership()?.newest()?.nodes ?? []) : this.fullMembers(cluster)).filter((n) => n !== replica.nodeId),
      pendingOldest,
      partitioned,
    });
    this.protocol = new GcProtocol({ libp2p: cluster.libp2p, counters, valueBytesMax: config.valueBytesMax }, config.cluster, () => this.holder);
    await this.protocol.start();
    this.collector = new GcCollector({
      selfId: replica.nodeId,
      replica,
      holder: this.holder,
      protocol: this.protocol,
      view: () => (partitioned ? partitionedView(cluster, replica.nodeId) : this.fullView(cluster)),
      peerIdOf: (nodeId) => cluster.peerIdOf(nodeId),
      counters,
      logger,
      wallClockMs,
      intervalMs: config.gcIntervalMs,
      batchMax: config.gcBatchMax,
    });
    this.collector.start();
  }

  async stop(): Promise<void> {
    this.collector?.stop();
    await this.protocol?.stop();
  }

  /** One collection run now (`ckv gc --run`). */
  async run(): Promise<GcRunReport> {
    if (!this.collector) throw new Error('gc is not started yet');
    return this.collector.run();
  }

  /** Loads what the holder and the member set persisted (before the replica opens). */
  async load(): Promise<void> {
    await this.holder.load();
    await this.members.load();
  }

  /** `ckv peers forget`: a member gone for good no longer holds GC back. */
  forget(nodeId: string): boolean {
    return this.members.forget(nodeId);
  }

  /** Full replication: this node, the members it knows now, and every one known before (until forgotten). */
  private fullMembers(cluster: ClusterNetwork): string[] {
    const self = this.parts.replica().nodeId;
    this.members.add(cluster.peerList().map((m) => m.nodeId));
    return [...new Set([self, ...this.members.list()])].sort();
  }

  /** Full replication: every member holds everything; the smallest node id collects. */
  private fullView(cluster: ClusterNetwork): GcView {
    const self = this.parts.replica().nodeId;
    const members = this.fullMembers(cluster);
    const collector = members[0]!;
    return {
      members,
      coverMembers: true,
      holders: () => members,
      role: () => (collector === self ? 'primary' : 'backup'),
      collector,
      learn: (nodeIds) => this.members.add(nodeIds),
      durable: () => this.members.durable(),
    };
  }

  status(): GcStatus {
    const last = this.collector?.last;
    const nowMs = this.parts.wallClockMs();
    const { hlc, ageMs } = watermarkText(last?.report.watermark, nowMs);
    return {
      watermark: hlc,
      watermarkAgeMs: ageMs,
      holdsBack: last?.report.holdsBack,
      collector: this.parts.config.replicas !== undefined ? 'per partition' : this.cluster ? this.fullView(this.cluster).collector! : 'unknown',
      tombstones: this.parts.replica().tombstoneCount,
      collectable: last?.report.collectable ?? 0,
      collected: this.holder.collected,
      collectedByRounds: this.collector?.deletedTotal ?? 0,
      openRounds: this.collector?.openRounds() ?? 0,
      lastRunAtMs: last?.atMs,
      lastErrors: (last?.report.errors ?? []).slice(0, 8),
      intervalMs: this.parts.config.gcIntervalMs,
      partitionsWithFloor: this.holder.partitionsWithFloor(),
    };
  }
}

/** Partitioned: the newest layout's members; per partition, its owners in every active layout. */
function partitionedView(cluster: ClusterNetwork, self: string): GcView | undefined {
  const ownership = cluster.ownership();
  const newest = ownership?.newest();
  if (ownership === undefined || newest === undefined || cluster.refusal()) return undefined;
  // The newest layout's nodes, and any node up that is not one (a node that joins by an
  // operator's hand can coordinate writes before it is added): their floors count too.
  const up = cluster.peerList().filter((m) => m.state === 'up').map((m) => m.nodeId);
  const members = [...new Set([...newest.nodes, ...up, self])].sort();
  return {
    members,
    coverMembers: false,
    holders: (p) => gcHolders(ownership.writeSets(p), []),
    role: (p) => {
      if (!ownership.holds(p)) return undefined;
      const holders = gcHolders(ownership.writeSets(p), []);
      // Collected only once no holder is still pulling it.
      if (holders.some((h) => bitmapHas(ownership.gaining(h), p))) return undefined;
      const sets = ownership.writeSets(p);
      return sets[sets.length - 1]?.[0] === self ? 'primary' : 'backup';
    },
    collector: undefined,
  };
}
