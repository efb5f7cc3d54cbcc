/**
 * The cluster bench's use of the harness (harness/cluster.ts): `startCluster` starts a
 * harness Cluster whose nodes keep the log lines scenarios time events by ('member up',
 * 'sync', ...) with their arrival time, keep only the last 32 KiB of each log, are polled
 * for readiness every 10 ms, and run under --cpu-prof when a profile directory is given (and
 * with further Node.js flags when given: `nodeFlags`). It refuses to start nodes from a stale
 * node bundle (node-code.ts says why).
 * `settledStatus` waits for a node's sync byte counters to settle.
 */
import { performance } from 'node:perf_hooks';
import type { StatusMessage } from '../../src/control/proto.js';
import { Cluster, counter, sleep, type ClusterOptions, type NodeProcess } from '../../harness/index.js';
import { assertNodeBundleFresh } from './node-code.js';

/** Log events kept with their arrival time (others only go to the bounded log tail). */
const keptEvents = / info (peer up|peer down|peer left|member up|member down|member left|sync|node started) | warn | error /;

/** Starts `n` nodes (harness Cluster.start) with the bench's node settings (see the top comment). */
export function startCluster(n: number, options: ClusterOptions & { cpuProfDir?: string | undefined; nodeFlags?: string[] | undefined } = {}): Promise<Cluster> {
  const { cpuProfDir, nodeFlags, ...clusterOptions } = options;
  assertNodeBundleFresh();
  return Cluster.start(n, {
    ...clusterOptions,
    node: {
      keepLines: keptEvents,
      stderrCharsMax: 32 * 1024,
      readyIntervalMs: 10,
      ...(cpuProfDir !== undefined ? { cpuProfDir } : {}),
      ...(nodeFlags !== undefined && nodeFlags.length > 0 ? { nodeFlags } : {}),
    },
  });
}

/**
 * The node's Status once its sync byte counters have settled. A session adds its bytes only
 * when it ends, after it applied its entries, and a second session started at the same time
 * (another peer pushing the same entries) may still be running when the roots already match.
 * Settled = sync_bytes_in grew by under 1 KiB (periodic in-sync sessions add ~60 B each) over
 * a quiet window of `quietMs`, clamped to 1-15 s (callers pass the duration of the transfer,
 * so a concurrent session that started with it has ended); at most 60 s in all.
 */
export async function settledStatus(node: NodeProcess, quietMs: number): Promise<StatusMessage> {
  const window = Math.min(15_000, Math.max(1000, quietMs));
  const until = performance.now() + 60_000;
  let mark = await node.status();
  let markAt = performance.now();
  for (;;) {
    await sleep(Math.min(500, window / 4));
    const status = await node.status();
    if (counter(status, 'sync_bytes_in') - counter(mark, 'sync_bytes_in') >= 1024) {
      mark = status;
      markAt = performance.now();
    } else if (performance.now() - markAt >= window) {
      return status;
    }
    if (performance.now() >= until) return status;
  }
}
