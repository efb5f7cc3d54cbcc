/**
 * One client writing one key at a time on a running cluster: a put to n00, then a wait until
 * every other node's Watch stream has delivered it, then the next put. This is the definition
 * issue 13's side-by-side table uses for every system ("write on node 1 until readable on
 * every other node"), so these figures are the ones to hold against it; the convergence
 * runs at a fixed rate (convergence-run.ts) measure a cluster under a steady load instead.
 *
 * Nothing else is in flight, so a write never queues behind another; the rate is whatever the
 * round trips allow (a few hundred a second here). The wait is woken by the streams
 * themselves (ChangeRecorder.whenSeen), so the bench adds no polling to the machine's load.
 * A write that some node has not delivered after `perWriteDeadlineMs` is counted as missing
 * and the client goes on; after `missingMax` of them (a stream or a node is gone, and every
 * further write would wait out its deadline) the run ends early with what it has.
 */
import { performance } from 'node:perf_hooks';
import type { Cluster } from '../../harness/index.js';
import { processesCpuMs } from '../lib/cpu-load.js';
import { ChangeRecorder } from '../lib/watch.js';
import { randomValue } from './common.js';

export interface SequentialRunOptions {
  writes: number;
  valueBytes: number;
  /** Unique per run: keys are `sq/<tag>/<i>`. */
  tag: string;
  rng: () => number;
  perWriteDeadlineMs: number;
  /** Missing writes after which the run stops early (default 3). */
  missingMax?: number;
}

export interface SequentialRun {
  /** Per write that every other node delivered: put sent -> the last other node's Watch delivery. */
  convergeMs: number[];
  /** Per write: put sent -> its reply. */
  ackMs: number[];
  /** Writes some other node had not delivered within perWriteDeadlineMs. */
  missing: number;
  /** Writes sent (fewer than asked if the run stopped early). */
  sent: number;
  writesPerSec: number;
  /** CPU ms all node processes used per write during the run (Watch streams included). */
  nodeCpuMsPerWrite: number;
  watchErrors: string[];
}

export async function sequentialRun(cluster: Cluster, options: SequentialRunOptions): Promise<SequentialRun> {
  const nodes = cluster.nodes;
  const prefix = `sq/${options.tag}/`;
  const recorder = new ChangeRecorder(nodes, prefix);
  await recorder.start(20_000);
  const others = nodes.map((_, k) => k).slice(1);
  const value = randomValue(options.rng, options.valueBytes);
  const convergeMs: number[] = [];
  const ackMs: number[] = [];
  let missing = 0;
  let sent = 0;
  const pids = nodes.map((n) => n.pid);
  const cpuBefore = processesCpuMs(pids);
  const started = performance.now();
  try {
    for (let i = 0; i < options.writes && missing < (options.missingMax ?? 3); i++) {
      const key = `${prefix}${i}`;
      const sentAt = performance.now();
      const seen = recorder.whenSeen(key, others, options.perWriteDeadlineMs);
      sent++;
      await nodes[0]!.client.put(key, value);
      ackMs.push(performance.now() - sentAt);
      if (!(await seen)) {
        missing++;
        continue;
      }
      let last = sentAt;
      for (const k of others) last = Math.max(last, recorder.arrivals[k]!.get(key)!.atMs);
      convergeMs.push(last - sentAt);
    }
  } finally {
    await recorder.stop();
  }
  const elapsedMs = performance.now() - started;
  return {
    convergeMs,
    ackMs,
    missing,
    sent,
    writesPerSec: (sent * 1000) / elapsedMs,
    nodeCpuMsPerWrite: (processesCpuMs(pids) - cpuBefore) / Math.max(1, sent),
    watchErrors: recorder.errors,
  };
}
