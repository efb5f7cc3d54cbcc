/**
 * What one client's puts cost when each waits for the one before (a script of `ckv put`s, a
 * client without pipelining), and which threads of the origin pay it (issue 13).
 *
 * Starts N nodes (bench cluster settings), waits for the mesh, warms up (`--warmup` puts, back to back), then
 * sends `--puts` unary Puts to n00 one at a time, `--gap-ms` apart (0: back to back). Prints
 * the calls' latency (p50 / p90), the rate, every node's CPU per put and, for n00, each thread's
 * (/proc/<pid>/task/<tid>/stat: the main thread is the one whose tid is the pid; V8's platform
 * workers are GC helpers and background compilers; libuv's pool runs LevelDB's batch writes).
 * A pipelined client (`--scenario throughput`, 64 in flight) pays a fraction of this per write:
 * group commit and gossip batching share one commit and one message among many writes.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sequential-puts.js [--nodes 3] [--puts 2000] [--gap-ms 0] [--warmup 3000]
 *        [--profile DIR]   (each node under --cpu-prof; the window's monotonic times are printed, to cut it out)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { cleanupNow, exitOnSignals, sleep } from '../harness/index.js';
import { startCluster } from './lib/cluster.js';
import { processCpuMs } from './lib/cpu-load.js';
import { quantile } from './lib/stats.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    puts: { type: 'string', default: '2000' },
    'gap-ms': { type: 'string', default: '0' },
    warmup: { type: 'string', default: '3000' },
    profile: { type: 'string' },
  },
});
const nodes = Number(values.nodes);
const puts = Number(values.puts);
const gapMs = Number(values['gap-ms']);
/** Puts before the measurement: V8 is still compiling the put path hot after a few hundred (its compiler threads showed ~0.2 ms a put after 300). */
const warmupPuts = Number(values.warmup);

/** CPU ms (user, system) of every thread of `pid`, by "tid name". */
function threadCpuMs(pid: number): Map<string, [number, number]> {
  const ticksMs = 10; // USER_HZ is 100 on Linux
  const threads = new Map<string, [number, number]>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const raw = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const name = raw.slice(raw.indexOf('(') + 1, raw.lastIndexOf(')'));
    const fields = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    threads.set(`${tid === String(pid) ? 'main' : tid} ${name}`, [Number(fields[11]) * ticksMs, Number(fields[12]) * ticksMs]);
  }
  return threads;
}

exitOnSignals('sequential-puts');
const cluster = await startCluster(nodes, { bootstrap: 'all', ...(values.profile !== undefined ? { cpuProfDir: values.profile } : {}) });
try {
  if (nodes > 1) await cluster.waitMesh(30_000);
  const origin = cluster.nodes[0]!;
  const value = new Uint8Array(100);
  for (let i = 0; i < warmupPuts; i++) await origin.client.put(`warmup/${i}`, value);
  const threadsBefore = threadCpuMs(origin.pid);
  const nodesBefore = cluster.nodes.map((node) => processCpuMs(node.pid));
  const latencies: number[] = [];
  const started = performance.now();
  const windowStartUs = process.hrtime.bigint() / 1000n;
  for (let i = 0; i < puts; i++) {
    if (gapMs > 0) await sleep(gapMs);
    const sent = performance.now();
    await origin.client.put(`seq/${i}`, value);
    latencies.push(performance.now() - sent);
  }
  const elapsedMs = performance.now() - started;
  const windowEndUs = process.hrtime.bigint() / 1000n;
  const threadsAfter = threadCpuMs(origin.pid);
  const nodesAfter = cluster.nodes.map((node) => processCpuMs(node.pid));
  const perPut = (ms: number): string => (ms / puts).toFixed(3);
  console.log(`${nodes} node(s), ${puts} puts one at a time, ${gapMs} ms apart: p50 ${quantile(latencies, 0.5).toFixed(2)} ms, p90 ${quantile(latencies, 0.9).toFixed(2)} ms, ${Math.round((puts / elapsedMs) * 1000)} puts/s`);
  console.log(`CPU ms per put, by node: ${nodesAfter.map((after, i) => `${cluster.nodes[i]!.name} ${perPut(after - nodesBefore[i]!)}`).join(', ')}`);
  if (values.profile !== undefined) console.log(`measured window, monotonic us (as in the profiles): ${windowStartUs} ${windowEndUs}`);
  console.log('n00 by thread (user / system ms per put; threads under 0.005 left out):');
  for (const [thread, [user, system]] of threadsAfter) {
    const [userBefore, systemBefore] = threadsBefore.get(thread) ?? [0, 0];
    if ((user - userBefore + system - systemBefore) / puts < 0.005) continue;
    console.log(`  ${thread.padEnd(24)} ${perPut(user - userBefore)} / ${perPut(system - systemBefore)}`);
  }
} finally {
  await Promise.all(cluster.nodes.map((node) => node.stop()));
  cleanupNow();
}
