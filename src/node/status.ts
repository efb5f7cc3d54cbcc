/**
 * One status of a node, assembled here and nowhere else: gRPC `Status` and `Peers`
 * (src/control/server.ts), `/api/status`, `/events` and the status page (src/http/snapshot.ts)
 * and `/metrics` (src/http/metrics.ts) are views of the object readStatus returns.
 *
 * This is also the one place that reads the membership view (`cluster.peerList()`) and the
 * replica's Merkle root and clock, so a change of their shape is fixed here once.
 */
import { toHex } from '../core/bytes.js';
import type { Hlc } from '../core/hlc.js';
import type { DeliveryStats } from '../core/delivery-queue.js';
import type { Replica } from '../core/replica.js';
import { ckvVersion, type NodeConfig } from '../config.js';
import type { BootstrapView } from '../net/bootstrap-health.js';
import type { ClusterNetwork } from '../net/cluster.js';
import type { PartitionedStatus } from '../net/layout-service.js';
import type { Counters, CounterValues } from '../util/counters.js';
import type { StatsView, WriteStats } from './write-stats.js';
import type { GcStatus } from './gc.js';

export type PeerState = 'up' | 'left' | 'unreachable';

export type { BootstrapView };

export interface PeerView {
  peerId: string;
  /** Its ckv node id (members are keyed by it). */
  nodeId: string;
  addresses: string[];
  state: PeerState;
  /** Wall ms when a session with it last ended; 0 = never. */
  lastSyncMs: number;
  lastSyncResult: string;
  /** Its wall clock minus ours, from its last sync Hello. */
  clockOffsetMs: number;
  inSync: boolean;
  /** Its membership incarnation: rises on every start of it. */
  incarnation: number;
  /** Entries (tombstones included) it held at its last sync Hello to us; null = unknown. */
  entryCount: number | null;
  /** Wall ms of its last change of state. */
  sinceMs: number;
}

export interface NodeStatus {
  /** When it was read (this node's wall clock, epoch ms). */
  timeMs: number;
  nodeId: string;
  /** libp2p peer id; '' while the cluster network is not up. */
  peerId: string;
  listenAddresses: string[];
  cluster: string;
  version: string;
  dataDir: string;
  /** The status page's URL, '' when HTTP is off. */
  httpUrl: string;
  /** This node's membership incarnation (0 while the cluster network is not up). */
  incarnation: number;
  /**
   * How far this node would stamp ahead: its HLC bound past its wall clock, and its wall clock
   * past its peers' (Replica.clockAhead). `warning` is '' unless one is past `driftMsMax`, when
   * local writes are refused.
   */
  clock: { boundAheadMs: number; peersAheadMs: number; driftMsMax: number; warning: string };
  uptimeMs: number;
  /** The HLC reading now, without issuing a stamp. */
  hlcNow: Hlc;
  /** Merkle root digest, hex. */
  merkleRoot: string;
  stopping: boolean;
  keys: number;
  tombstones: number;
  /** Bytes of the LevelDB files (0 if they could not be read). */
  bytesOnDisk: number;
  /** Every declared counter (src/util/counters.ts), zeros included. */
  counters: CounterValues;
  peers: PeerView[];
  /**
   * Each `--bootstrap` address (but our own): state (dialing, connected, failing, foreign),
   * peer id, the likely cause and last error while it fails, since when, failed dials.
   */
  bootstrap: BootstrapView[];
  /** Writes per second and convergence times, last minute. */
  writes: StatsView;
  /** Partitioned mode (--replicas K): the layout as this node sees it; undefined in full-replication mode. */
  partitioned?: PartitionedStatus;
  /** Partitioned mode: writes kept for owners that have not acknowledged them (./delivery.ts); undefined in full-replication mode. */
  delivery?: DeliveryStats;
  /** Tombstone GC (./gc.ts): the watermark, who holds it back, collectable and collected tombstones. */
  gc?: GcStatus;
}

export type { PartitionedStatus };

/** What readStatus reads: the node's parts (CkvNode passes its own). */
export interface StatusSources {
  config: NodeConfig;
  startedAtMs: number;
  httpUrl: string;
  stopping: boolean;
  replica: Replica;
  cluster: ClusterNetwork | undefined;
  counters: Counters;
  writeStats: WriteStats;
  sizeBytes(): Promise<number>;
  delivery?: () => DeliveryStats | undefined;
  gc?: () => GcStatus | undefined;
}

export async function readStatus(node: StatusSources): Promise<NodeStatus> {
  const bytesOnDisk = await node.sizeBytes().catch(() => 0);
  // No await below: every other field is read at one moment.
  const timeMs = Date.now();
  const { replica, cluster } = node;
  const partitioned = cluster?.partitionedStatus();
  const delivery = partitioned ? node.delivery?.() : undefined;
  const gc = node.gc?.();
  return {
    timeMs,
    nodeId: replica.nodeId,
    peerId: cluster?.peerId ?? '',
    listenAddresses: cluster?.listenAddresses() ?? [],
    cluster: node.config.cluster,
    version: ckvVersion,
    dataDir: node.config.dataDir,
    httpUrl: node.httpUrl,
    incarnation: cluster?.incarnation ?? 0,
    clock: clockView(replica),
    uptimeMs: timeMs - node.startedAtMs,
    hlcNow: replica.hlcNow(),
    merkleRoot: toHex(replica.root().digest),
    stopping: node.stopping,
    keys: replica.liveCount,
    tombstones: replica.tombstoneCount,
    bytesOnDisk,
    counters: node.counters.snapshot(),
    peers: (cluster?.peerList() ?? []).map((p) => ({
      peerId: p.peerId,
      nodeId: p.nodeId,
      addresses: [...p.addresses],
      state: p.state,
      lastSyncMs: p.lastSyncMs,
      lastSyncResult: p.lastSyncResult,
      clockOffsetMs: p.clockOffsetMs,
      inSync: p.inSync,
      incarnation: p.incarnation,
      entryCount: p.entryCount >= 0 ? p.entryCount : null,
      sinceMs: p.sinceMs,
    })),
    bootstrap: cluster?.bootstrapList() ?? [],
    writes: node.writeStats.view(timeMs),
    ...(partitioned ? { partitioned } : {}),
    ...(delivery ? { delivery } : {}),
    ...(gc ? { gc } : {}),
  };
}

function clockView(replica: Replica): NodeStatus['clock'] {
  const { boundMs, peersMs, driftMsMax } = replica.clockAhead();
  const warning =
    boundMs > driftMsMax
      ? `writes refused: clock bound ${boundMs} ms ahead of this host's clock (restart with --reset-clock-bound after checking the peers' clocks)`
      : peersMs > driftMsMax
        ? `writes refused: clock ${peersMs} ms ahead of the peers' (fix this host's clock)`
        : '';
  return { boundAheadMs: boundMs, peersAheadMs: peersMs, driftMsMax, warning };
}
