/**
 * `GET /metrics`: Prometheus text exposition through prom-client, on a registry of this node
 * (never prom-client's global one, so two nodes in one process would not mix).
 *
 * Everything but the histogram is read from one status of the node per scrape (`readStatus`,
 * src/node/status.ts), so `/metrics`, `/api/status` and `ckv status` never disagree. Counter
 * metrics are generated from the declared counter list (src/util/counters.ts): every counter
 * is exported, 0 until it counts. The convergence histogram is the exception: it observes
 * each sample as the node takes it.
 *
 * prom-client (with @opentelemetry/api, which it loads) is loaded on the first scrape, not when
 * the node starts: until then the histogram's samples wait in a list (at most
 * `pendingSamplesMax`, past which prom-client is loaded anyway), so every sample since the
 * start is counted. The default process metrics (collectDefaultMetrics) start with it.
 *
 * The HTTP server adds what only it knows (`HttpGauges`): the event streams open now.
 */
import type * as PromClient from 'prom-client';
import type { NodeApi } from '../node/api.js';
import type { NodeStatus } from '../node/status.js';
import { counterMetrics, counterNames, counterSpecs, type CounterMetricName } from '../util/counters.js';

/** Convergence lag buckets, seconds: 1 ms to 10 s. */
export const convergenceBucketsSec = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const peerStates = ['up', 'left', 'unreachable'] as const;

export interface NodeMetrics {
  /** The Prometheus text of one scrape. */
  scrape(): Promise<string>;
  contentType: string;
  /** Stops observing the node (the histogram's subscription). */
  close(): void;
}

/** What the HTTP server itself reports. */
export interface HttpGauges {
  /** Event streams (GET /events) open now. */
  eventStreams(): number;
  /** The most event streams served at once; more get 503. */
  eventStreamsMax: number;
}

/** Convergence samples kept while prom-client is not loaded yet. */
const pendingSamplesMax = 4096;

/** The metrics of one node, built once prom-client is loaded. */
interface LoadedMetrics {
  scrape(): Promise<string>;
  contentType: string;
  observe(ms: number): void;
}

export function createMetrics(node: NodeApi, http: HttpGauges): NodeMetrics {
  let loaded: LoadedMetrics | undefined;
  let loading: Promise<LoadedMetrics> | undefined;
  const pending: number[] = [];
  const load = (): Promise<LoadedMetrics> =>
    // `.default`: the CommonJS package's exports, in Node and in the esbuild bundle alike.
    (loading ??= import('prom-client').then((module) => {
      loaded = buildMetrics(node, http, module.default);
      for (const ms of pending.splice(0)) loaded.observe(ms);
      return loaded;
    }));
  const unsubscribe = node.observeConvergence((ms) => {
    if (loaded) return loaded.observe(ms);
    pending.push(ms);
    if (pending.length >= pendingSamplesMax) load().catch(() => undefined); // a scrape reports the failure
  });
  return {
    scrape: async () => (await load()).scrape(),
    get contentType() {
      return loaded?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8';
    },
    close: unsubscribe,
  };
}

function buildMetrics(node: NodeApi, http: HttpGauges, prom: Pick<typeof PromClient, 'Counter' | 'Gauge' | 'Histogram' | 'Registry' | 'collectDefaultMetrics'>): LoadedMetrics {
  const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = prom;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  /** The status of the scrape in progress (scrapes run one at a time). */
  let current: NodeStatus | undefined;
  const gauge = (name: string, help: string, read: (status: NodeStatus) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (current) this.set(read(current));
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
      if (current) this.set({ node_id: current.nodeId, peer_id: current.peerId, cluster: current.cluster, version: current.version }, 1);
    },
  });
  for (const [metric, { help, labelNames }] of Object.entries(counterMetrics)) {
    const members = counterNames.filter((name) => counterSpecs[name].metric === (metric as CounterMetricName));
    new Counter({
      name: metric,
      help,
      labelNames: [...labelNames],
      registers,
      collect() {
        this.reset();
        if (!current) return;
        for (const name of members) this.inc(counterSpecs[name].labels, current.counters[name]);
      },
    });
  }

  const histogram = new Histogram({
    name: 'ckv_convergence_lag_seconds',
    help: 'Remote writes: time applied here minus the wall time of their HLC stamp (clamped at 0).',
    buckets: convergenceBucketsSec,
    registers,
  });

  gauge('ckv_keys', 'Live keys held by this node.', (s) => s.keys);
  gauge('ckv_tombstones', 'Tombstones (deleted keys) held by this node.', (s) => s.tombstones);
  gauge('ckv_disk_bytes', "Bytes of the node's LevelDB files (measured at most once a second).", (s) => s.bytesOnDisk);
  // Partitioned mode (0 in full-replication mode).
  gauge('ckv_layout_version', "The newest layout's version (partitioned mode; 0 before the first or in full-replication mode).", (s) => s.partitioned?.layoutVersion ?? 0);
  gauge('ckv_partitions_owned', 'Partitions this node owns in the newest layout (partitioned mode).', (s) => s.partitioned?.partitionsOwned ?? 0);
  gauge('ckv_partitions_under_replicated', 'Partitions of the newest layout with fewer than K owners up (partitioned mode).', (s) => s.partitioned?.partitionsUnderReplicated ?? 0);
  gauge('ckv_rebalance_pending', 'During a layout change: partition-replicas of the newest layout not yet synced.', (s) => s.partitioned?.rebalance.pending ?? 0);
  // Delivery until acknowledged (partitioned mode): per target owner, and the oldest row's age.
  const deliveryGauge = (name: string, help: string, read: (target: NonNullable<NodeStatus['delivery']>['targets'][number]) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['target'],
      registers,
      collect() {
        this.reset();
        for (const target of current?.delivery?.targets ?? []) this.set({ target: target.node }, read(target));
      },
    });
  };
  deliveryGauge('ckv_delivery_pending_rows', 'Writes kept for an owner (target) that has not acknowledged them (partitioned mode).', (t) => t.rows);
  deliveryGauge('ckv_delivery_pending_bytes', "Bytes of the writes kept for an owner that has not acknowledged them.", (t) => t.bytes);
  gauge('ckv_delivery_oldest_age_seconds', 'Age of the oldest write kept for an owner that has not acknowledged it (0: none pending).', (s) => (s.delivery?.oldestAgeMs ?? 0) / 1000);
  gauge('ckv_gc_watermark_age_seconds', 'Tombstone GC: age of the watermark at the last run (-1: none, a member holds it back).', (s) => (s.gc?.watermarkAgeMs === undefined ? -1 : s.gc.watermarkAgeMs / 1000));
  gauge('ckv_gc_collectable', 'Tombstone GC: tombstones below the watermark found by the last run.', (s) => s.gc?.collectable ?? 0);
  gauge('ckv_gc_open_rounds', 'Tombstone GC: collection rounds open now.', (s) => s.gc?.openRounds ?? 0);
  gauge('ckv_peers_connected', 'Peers of this cluster connected now.', (s) => s.peers.filter((p) => p.state === 'up').length);
  new Gauge({
    name: 'ckv_clock_ahead_ms',
    help: "How far this node would stamp ahead: its HLC bound past its wall clock (of=bound), its wall clock past its peers' (of=peers). Past 500 ms local writes are refused.",
    labelNames: ['of'],
    registers,
    collect() {
      this.set({ of: 'bound' }, current?.clock.boundAheadMs ?? 0);
      this.set({ of: 'peers' }, current?.clock.peersAheadMs ?? 0);
    },
  });
  new Gauge({
    name: 'ckv_peers',
    help: 'Known peers by state (up, left, unreachable).',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      const peers = current?.peers ?? [];
      for (const state of peerStates) this.set({ state }, peers.filter((p) => p.state === state).length);
    },
  });

  new Gauge({
    name: 'ckv_http_event_streams',
    help: `Event streams (GET /events, the status page's live feed) open now; at most ${http.eventStreamsMax}, more get 503.`,
    registers,
    collect() {
      this.set(http.eventStreams());
    },
  });

  let previous: Promise<unknown> = Promise.resolve();
  return {
    scrape() {
      const run = previous.then(async () => {
        current = await node.status();
        try {
          return await registry.metrics();
        } finally {
          current = undefined;
        }
      });
      previous = run.catch(() => undefined);
      return run;
    },
    contentType: registry.contentType,
    observe: (ms) => histogram.observe(ms / 1000),
  };
}
