/**
 * The status snapshot: one JSON object with everything the status page shows, served as
 * `GET /api/status` and pushed once a second on `GET /events`. Field names are stable: the
 * page and scripts read them. It is a view of the node's one status (src/node/status.ts),
 * built without reading the node again.
 */
import { hlcToString } from '../core/hlc.js';
import type { NodeStatus, PeerView } from '../node/status.js';
import type { StatsView } from '../node/write-stats.js';

export type { PeerView };

export interface StatusSnapshot {
  /** When the snapshot was taken: ISO time and epoch ms (this node's clock). */
  time: string;
  timeMs: number;
  self: {
    nodeId: string;
    peerId: string;
    addresses: string[];
    cluster: string;
    version: string;
    uptimeMs: number;
    hlcNow: string;
    merkleRoot: string;
    httpUrl: string;
    stopping: boolean;
    /** '' or why this node refuses writes (its clock is too far ahead). */
    clockWarning: string;
  };
  totals: {
    keys: number;
    tombstones: number;
    /** keys + tombstones: what peers compare with their entryCount. */
    entries: number;
    bytesOnDisk: number;
    writes: { local: number; remote: number };
    writesPerSec: { local: number; remote: number };
    /** Sessions this node started, by outcome (in_sync, synced, incomplete, refused, error). */
    syncSessions: Record<string, number>;
    syncSessionsTotal: number;
    syncBytes: { in: number; out: number };
    syncEntriesApplied: number;
    peersUp: number;
  };
  peers: PeerView[];
  /** Each --bootstrap address: connected, or why not and since when (NodeStatus.bootstrap). */
  bootstrap: NodeStatus['bootstrap'];
  convergence: StatsView['convergence'];
  series: StatsView['series'];
  counters: NodeStatus['counters'];
  /** Partitioned mode: one line on pending deliveries ('' in full-replication mode). */
  delivery: string;
  /** Partitioned mode only (absent with full replication): the status's `partitioned` block. */
  partitioned?: NodeStatus['partitioned'];
}

/** The snapshot view of a node's status (src/node/status.ts): a pure reshaping, no reads of its own. */
export function toSnapshot(status: NodeStatus): StatusSnapshot {
  const { counters, writes } = status;
  const syncSessions: Record<string, number> = {};
  for (const [name, value] of Object.entries(counters)) {
    if (name.startsWith('sync_sessions_')) syncSessions[name.slice('sync_sessions_'.length)] = value;
  }
  return {
    time: new Date(status.timeMs).toISOString(),
    timeMs: status.timeMs,
    self: {
      nodeId: status.nodeId,
      peerId: status.peerId,
      addresses: status.listenAddresses,
      cluster: status.cluster,
      version: status.version,
      uptimeMs: status.uptimeMs,
      hlcNow: hlcToString(status.hlcNow),
      merkleRoot: status.merkleRoot,
      httpUrl: status.httpUrl,
      stopping: status.stopping,
      clockWarning: status.clock.warning,
    },
    totals: {
      keys: status.keys,
      tombstones: status.tombstones,
      entries: status.keys + status.tombstones,
      bytesOnDisk: status.bytesOnDisk,
      writes: { local: counters.writes_local, remote: counters.writes_remote },
      writesPerSec: writes.writesPerSec,
      syncSessions,
      syncSessionsTotal: Object.values(syncSessions).reduce((sum, n) => sum + n, 0),
      syncBytes: { in: counters.sync_bytes_in, out: counters.sync_bytes_out },
      syncEntriesApplied: counters.sync_entries_applied,
      peersUp: status.peers.filter((p) => p.state === 'up').length,
    },
    peers: status.peers,
    bootstrap: status.bootstrap,
    convergence: writes.convergence,
    series: writes.series,
    counters,
    delivery: deliveryLine(status.delivery),
    ...(status.partitioned ? { partitioned: status.partitioned } : {}),
  };
}

/** "delivery: 500 pending (8.0 MiB) for 1 owner, oldest 12 s" (partitioned mode), or ''. */
export function deliveryLine(delivery: NodeStatus['delivery']): string {
  if (delivery === undefined) return '';
  if (delivery.pendingRows === 0) return 'delivery: nothing pending';
  const owners = delivery.targets.length;
  return `delivery: ${delivery.pendingRows} writes pending (${delivery.pendingBytes} bytes) for ${owners} owner${owners === 1 ? '' : 's'} (${delivery.targets.map((t) => t.node).join(', ')}), oldest ${Math.round(delivery.oldestAgeMs / 1000)} s`;
}
