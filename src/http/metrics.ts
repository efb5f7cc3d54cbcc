/**
 * `GET /metrics`: Prometheus text exposition through prom-client, on a registry of this node
 * (never prom-client's global one, so two nodes in one process would not mix).
 *
 * Counters and gauges are read from the node at scrape time (`collect`): the node keeps its
 * own counters (src/util/counters.ts) and the metrics are a view of them, so nothing is
 * counted twice. The convergence histogram is the exception: it observes each sample as the
 * node takes it.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ckvVersion } from '../config.js';
import type { CkvNode } from '../node.js';

/** Convergence lag buckets, seconds: 1 ms to 10 s. */
export const convergenceBucketsSec = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Session outcomes always exported (0 until seen), so dashboards have every series. */
const sessionOutcomes = ['in_sync', 'synced', 'incomplete', 'refused', 'error'];

export interface NodeMetrics {
  registry: Registry;
  /** Stops observing the node (the histogram's subscription). */
  close(): void;
}

export function createMetrics(node: CkvNode): NodeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const count = (name: string): number => node.counters.get(name);

  /** A counter whose value is read from the node's counters at scrape time. */
  const mirror = (name: string, help: string, counterName: string): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(count(counterName));
      },
    });
  };

  new Gauge({
    name: 'ckv_info',
    help: 'Always 1; labels identify the node.',
    labelNames: ['node_id', 'peer_id', 'cluster', 'version'],
    registers,
    collect() {
      this.reset();
      this.set({ node_id: node.nodeId, peer_id: node.cluster?.peerId ?? '', cluster: node.config.cluster, version: ckvVersion }, 1);
    },
  });
  new Counter({
    name: 'ckv_writes_applied_total',
    help: 'Writes applied to this replica, by origin (local: through this node; remote: from gossip or sync).',
    labelNames: ['origin'],
    registers,
    collect() {
      this.reset();
      this.inc({ origin: 'local' }, count('writes_local'));
      this.inc({ origin: 'remote' }, count('writes_remote'));
    },
  });
  mirror('ckv_gossip_messages_rejected_total', 'Gossip messages rejected (undecodable or invalid entries).', 'gossip_rejected');
  mirror('ckv_gossip_messages_received_total', 'Gossip messages received.', 'gossip_received');
  mirror('ckv_gossip_messages_published_total', 'Gossip messages published.', 'gossip_published');
  new Counter({
    name: 'ckv_sync_sessions_total',
    help: 'Anti-entropy sessions this node started, by result.',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const seen = new Set(sessionOutcomes);
      for (const name of Object.keys(node.counters.snapshot())) {
        if (name.startsWith('sync_sessions_')) seen.add(name.slice('sync_sessions_'.length));
      }
      for (const result of seen) this.inc({ result }, count(`sync_sessions_${result}`));
    },
  });
  mirror('ckv_sync_bytes_in_total', 'Bytes received in anti-entropy sessions (both roles).', 'sync_bytes_in');
  mirror('ckv_sync_bytes_out_total', 'Bytes sent in anti-entropy sessions (both roles).', 'sync_bytes_out');
  mirror('ckv_sync_entries_applied_total', 'Entries repaired by anti-entropy: received in a session and newer than ours.', 'sync_entries_applied');
  mirror('ckv_sync_rejected_total', 'Sync sessions or entries rejected as malformed or invalid.', 'sync_rejected');
  mirror('ckv_sync_refused_busy_total', 'Inbound sync sessions refused because this node was busy.', 'sync_refused_busy');
  mirror('ckv_clock_drift_rejected_total', 'Remote entries refused because their stamp was too far in our future.', 'clock_drift_rejected');

  const histogram = new Histogram({
    name: 'ckv_convergence_lag_seconds',
    help: 'Remote writes: time applied here minus the wall time of their HLC stamp (clamped at 0).',
    buckets: convergenceBucketsSec,
    registers,
  });
  const unsubscribe = node.writeStats.observe((ms) => histogram.observe(ms / 1000));

  new Gauge({
    name: 'ckv_keys',
    help: 'Live keys held by this node.',
    registers,
    collect() {
      this.set(node.replica.liveCount);
    },
  });
  new Gauge({
    name: 'ckv_tombstones',
    help: 'Tombstones (deleted keys) held by this node.',
    registers,
    collect() {
      this.set(node.replica.tombstoneCount);
    },
  });
  new Gauge({
    name: 'ckv_disk_bytes',
    help: "Bytes of the node's LevelDB files.",
    registers,
    async collect() {
      this.set(await node.sizeBytes().catch(() => 0));
    },
  });
  new Gauge({
    name: 'ckv_peers_connected',
    help: 'Peers of this cluster connected now.',
    registers,
    collect() {
      this.set(node.cluster?.peerList().filter((p) => p.state === 'up').length ?? 0);
    },
  });
  new Gauge({
    name: 'ckv_peers',
    help: 'Known peers by state (up, left, unreachable).',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      const peers = node.cluster?.peerList() ?? [];
      for (const state of ['up', 'left', 'unreachable']) this.set({ state }, peers.filter((p) => p.state === state).length);
    },
  });

  return { registry, close: unsubscribe };
}
