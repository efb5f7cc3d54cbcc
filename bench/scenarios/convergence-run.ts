/**
 * One convergence measurement on a running cluster (shared by the convergence and scaling
 * scenarios): `writes` puts at a steady `ratePerSec`, each to a node picked at random; every
 * node's Watch stream timestamps each change on arrival (bench clock). For write i sent at
 * s_i to node o_i, node k's delay is arrival[k][i] - s_i; the write has converged when the
 * last other node has it: converge_i = max over k != o_i of arrival[k][i] - s_i.
 *
 * Also kept, to split the figure: the put's ack (gRPC round trip + group commit), the origin
 * node's own watch event (put + commit + watch delivery), and remote - local (the gossip hop
 * plus the receivers' commit; the watch leg cancels out).
 */
import { performance } from 'node:perf_hooks';
import type { Cluster } from '../../harness/index.js';
import { processesCpuMs } from '../lib/cpu-load.js';
import { counter, sleep } from '../../harness/index.js';
import { ChangeRecorder } from '../lib/watch.js';
import { randomValue } from './common.js';

export interface ConvergenceRunOptions {
  writes: number;
  ratePerSec: number;
  valueBytes: number;
  /** Unique per run: keys are `cv/<tag>/<i>`. */
  tag: string;
  rng: () => number;
  /** How long to wait for stragglers after the last put (anti-entropy repairs lost gossip). */
  drainTimeoutMs: number;
  onProgress?: (fraction: number) => void;
}

export interface ConvergenceRun {
  /** Per write: ms until every other node had it (NaN if one never did). */
  convergeMs: number[];
  /** Per (write, other node): ms until that node had it. */
  hopMs: number[];
  /** Per write: origin node's watch event - send. */
  localMs: number[];
  /** Per write: put reply - send. */
  ackMs: number[];
  /** Per write: last other node's arrival - origin node's arrival. */
  remoteMinusLocalMs: number[];
  /** (write, node) pairs not seen by the end of the drain. */
  missing: number;
  /** How far behind schedule puts went out (p99, ms): a loaded bench process shows here. */
  sendLagP99Ms: number;
  /** CPU ms all node processes used per write during the run (watch streams included). */
  nodeCpuMsPerWrite: number;
  /** Remote applies during the run (all nodes) and how many of them came by anti-entropy sync rather than gossip. */
  remoteApplied: number;
  viaSync: number;
  watchErrors: string[];
}

export async function convergenceRun(cluster: Cluster, options: ConvergenceRunOptions): Promise<ConvergenceRun> {
  const nodes = cluster.nodes;
  const prefix = `cv/${options.tag}/`;
  const recorder = new ChangeRecorder(nodes, prefix);
  await recorder.start(20_000);
  const keys: string[] = [];
  const origin: number[] = [];
  const sentAt: number[] = [];
  const ackAt: number[] = new Array(options.writes).fill(Number.NaN);
  const lags: number[] = [];
  const pending: Promise<unknown>[] = [];
  const value = randomValue(options.rng, options.valueBytes);
  const pids = nodes.map((n) => n.pid);
  const countersBefore = await Promise.all(nodes.map((n) => n.status()));
  const cpuBefore = processesCpuMs(pids);
  let cpuAfter = Number.NaN;
  try {
    const started = performance.now();
    const intervalMs = 1000 / options.ratePerSec;
    let i = 0;
    while (i < options.writes) {
      const due = started + i * intervalMs;
      const now = performance.now();
      if (now < due) {
        await sleep(Math.max(0, due - now - 0.2));
        continue;
      }
      const target = Math.floor(options.rng() * nodes.length);
      const key = `${prefix}${i}`;
      keys.push(key);
      origin.push(target);
      lags.push(now - due);
      const index = i;
      sentAt.push(performance.now());
      pending.push(
        nodes[target]!.client.put(key, value).then(
          () => (ackAt[index] = performance.now()),
          () => undefined,
        ),
      );
      i++;
      if (i % 100 === 0) options.onProgress?.((0.8 * i) / options.writes);
    }
    await Promise.all(pending);
    // Wait until every node has every key (or the drain deadline).
    const deadline = performance.now() + options.drainTimeoutMs;
    while (performance.now() < deadline) {
      if (recorder.arrivals.every((seen) => seen.size >= keys.length + nodes.length && keys.every((k) => seen.has(k)))) break;
      await sleep(20);
    }
    cpuAfter = processesCpuMs(pids);
    options.onProgress?.(1);
  } finally {
    await recorder.stop();
  }

  const convergeMs: number[] = [];
  const hopMs: number[] = [];
  const localMs: number[] = [];
  const remoteMinusLocalMs: number[] = [];
  let missing = 0;
  keys.forEach((key, i) => {
    const sent = sentAt[i]!;
    let last = -Infinity;
    let complete = true;
    nodes.forEach((_, k) => {
      const arrival = recorder.arrivals[k]!.get(key);
      if (arrival === undefined) {
        missing++;
        complete = false;
        return;
      }
      if (k === origin[i]) return;
      hopMs.push(arrival.atMs - sent);
      last = Math.max(last, arrival.atMs);
    });
    const local = recorder.arrivals[origin[i]!]!.get(key);
    if (local) localMs.push(local.atMs - sent);
    convergeMs.push(complete ? last - sent : Number.NaN);
    if (complete && local) remoteMinusLocalMs.push(last - local.atMs);
  });
  lags.sort((a, b) => a - b);
  const countersAfter = await Promise.all(nodes.map((n) => n.status()));
  const delta = (name: string): number => countersAfter.reduce((sum, st, i) => sum + counter(st, name) - counter(countersBefore[i]!, name), 0);
  return {
    remoteApplied: delta('writes_remote'),
    viaSync: delta('sync_entries_applied'),
    convergeMs,
    hopMs,
    localMs,
    ackMs: ackAt.map((at, i) => at - sentAt[i]!),
    remoteMinusLocalMs,
    missing,
    sendLagP99Ms: lags[Math.floor(0.99 * (lags.length - 1))] ?? 0,
    nodeCpuMsPerWrite: (cpuAfter - cpuBefore) / keys.length,
    watchErrors: recorder.errors,
  };
}
