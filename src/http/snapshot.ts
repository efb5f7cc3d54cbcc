/**
 * The status snapshot: one JSON object with everything the status page shows, served as
 * `GET /api/status` and pushed once a second on `GET /events`. Field names are stable: the
 * page and scripts read them.
 */
import { hlcToString } from '../core/hlc.js';
import { toHex } from '../core/bytes.js';
import { ckvVersion } from '../config.js';
import type { CkvNode } from '../node.js';
import type { StatsView } from './stats.js';

export interface PeerView {
  peerId: string;
  /** Its ckv node id (from identify); '' until known. */
  nodeId: string;
  addresses: string[];
  state: 'up' | 'left' | 'unreachable';
  /** Wall ms when a session with it last ended; 0 = never. */
  lastSyncMs: number;
  lastSyncResult: string;
  /** Its wall clock minus ours, from its last sync Hello. */
  clockOffsetMs: number;
  inSync: boolean;
  /** Entries (tombstones included) it held at its last sync Hello to us; null = unknown. */
  entryCount: number | null;
  /** Wall ms of its last change of state. */
  sinceMs: number;
}

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
  convergence: StatsView['convergence'];
  series: StatsView['series'];
  counters: Record<string, number>;
}

export async function takeSnapshot(node: CkvNode, httpUrl: string): Promise<StatusSnapshot> {
  const bytesOnDisk = await node.sizeBytes().catch(() => 0);
  const nowMs = Date.now();
  const counters = node.counters.snapshot();
  const stats = node.writeStats.view(nowMs);
  const syncSessions: Record<string, number> = {};
  for (const [name, value] of Object.entries(counters)) {
    if (name.startsWith('sync_sessions_')) syncSessions[name.slice('sync_sessions_'.length)] = value;
  }
  const peers: PeerView[] = (node.cluster?.peerList() ?? []).map((p) => ({
    peerId: p.peerId,
    nodeId: p.nodeId,
    addresses: [...p.addresses],
    state: p.state,
    lastSyncMs: p.lastSyncMs,
    lastSyncResult: p.lastSyncResult,
    clockOffsetMs: p.clockOffsetMs,
    inSync: p.inSync,
    entryCount: p.entryCount >= 0 ? p.entryCount : null,
    sinceMs: p.sinceMs,
  }));
  const keys = node.replica.liveCount;
  const tombstones = node.replica.tombstoneCount;
  return {
    time: new Date(nowMs).toISOString(),
    timeMs: nowMs,
    self: {
      nodeId: node.nodeId,
      peerId: node.cluster?.peerId ?? '',
      addresses: node.cluster?.listenAddresses() ?? [],
      cluster: node.config.cluster,
      version: ckvVersion,
      uptimeMs: nowMs - node.startedAtMs,
      hlcNow: hlcToString(node.hlcNow()),
      merkleRoot: toHex(node.replica.root().digest),
      httpUrl,
      stopping: node.isStopping,
    },
    totals: {
      keys,
      tombstones,
      entries: keys + tombstones,
      bytesOnDisk,
      writes: { local: counters.writes_local ?? 0, remote: counters.writes_remote ?? 0 },
      writesPerSec: stats.writesPerSec,
      syncSessions,
      syncSessionsTotal: Object.values(syncSessions).reduce((sum, n) => sum + n, 0),
      syncBytes: { in: counters.sync_bytes_in ?? 0, out: counters.sync_bytes_out ?? 0 },
      syncEntriesApplied: counters.sync_entries_applied ?? 0,
      peersUp: peers.filter((p) => p.state === 'up').length,
    },
    peers,
    convergence: stats.convergence,
    series: stats.series,
    counters,
  };
}
