/**
 * A node killed (SIGKILL, as a crash) and restarted after it missed writes, the way a user
 * meets it: 3 nodes hold `--base` keys, the cluster is quiet for `--pause-ms` (long enough,
 * at the default, for the node to save a checkpoint: src/node/checkpointer.ts), n02 is
 * killed, n00 takes `--missed` puts (100-byte values), and n02 is restarted on its data
 * directory. Prints, per run, spawn -> answers Status, spawn -> first 'member up' line, that
 * line -> root equal to the others (the catch-up), spawn -> root equal, how n02 built its tree
 * (snapshot, snapshot and replay, or scan), its CPU time and page faults until then (Linux /proc)
 * and the sync sessions that carried entries. `--cpu-prof-dir DIR` runs
 * every node under `node --cpu-prof` (a profile per process, written when it exits: the
 * killed one's is lost). `--node-flags="FLAGS"` starts every node with these Node.js/V8 flags
 * (space-separated; docs/measurements.md, 2026-12-06 (3), lists those tried), and
 * `--node-args="ARGS"` with further `ckv node start` arguments (e.g. `--warm-up-entries 0`). The
 * bench's `node dist/bench/run.js --scenario catch-up` measures the same after a clean stop (SIGTERM).
 *
 *   npm run build && node dist/bench/kill-catch-up.js [--runs 3] [--base 10000] [--missed 10000] [--pause-ms 2500] [--cpu-prof-dir DIR] [--node-flags="--max-semi-space-size=64"] [--node-args="--warm-up-entries 0"]
 */
import { parseArgs } from 'node:util';
import { cleanupNow, counter, exitOnSignals, putMany, sleep } from '../harness/index.js';
import { startCluster } from './lib/cluster.js';
import { timeJoin } from './scenarios/rejoin.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    base: { type: 'string', default: '10000' },
    missed: { type: 'string', default: '10000' },
    'pause-ms': { type: 'string', default: '2500' },
    'cpu-prof-dir': { type: 'string' },
    'node-flags': { type: 'string' },
    'node-args': { type: 'string' },
  },
});
const runs = Number(values.runs);
const base = Number(values.base);
const missed = Number(values.missed);
const pauseMs = Number(values['pause-ms']);
const value = new Uint8Array(100).map((_, i) => (i * 37) & 0xff);

exitOnSignals('kill-catch-up');
const cluster = await startCluster(3, {
  cpuProfDir: values['cpu-prof-dir'],
  nodeFlags: values['node-flags']?.split(' ').filter((flag) => flag !== ''),
  args: values['node-args']?.split(' ').filter((arg) => arg !== ''),
});
try {
  await cluster.waitMesh(30_000);
  if (base > 0) await putMany(cluster.nodes[0]!.client, base, (i) => `base/${i}`, () => value, 256);
  await cluster.waitConverged(60_000);
  for (let run = 0; run < runs; run++) {
    await sleep(pauseMs);
    const victim = cluster.nodes[2]!;
    await victim.kill();
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    await putMany(a.client, missed, (i) => `run${run}/${i}`, () => value, 256);
    const [status] = await cluster.waitConverged(60_000, 25, [a, b]);
    const r = await timeJoin(cluster, () => cluster.respawn(victim), status!.merkleRoot, status!.keyCount, 60_000);
    const started = await r.node.status();
    const tree = counter(started, 'start_tree_snapshot') > 0 ? 'snapshot' : counter(started, 'start_tree_replay') > 0 ? 'snapshot and replay' : 'scan';
    const sessions = r.sessions.map((s) => `${s.node}<-${s.peer} ${s.outcome} received=${s.received} ms=${s.ms}`).join('; ');
    const cost = r.costAtDone === undefined ? '' : `, n02 CPU ${r.costAtDone.userMs.toFixed(0)} user + ${r.costAtDone.sysMs.toFixed(0)} sys ms, ${r.costAtDone.minorFaults} page faults`;
    console.log(
      `run ${run + 1}/${runs}: spawn->ready ${r.readyMs.toFixed(0)} ms, spawn->member up ${r.peerUpMs.toFixed(0)} ms, catch-up ${r.catchUpMs.toFixed(0)} ms, spawn->root equal ${r.totalMs.toFixed(0)} ms${cost}, tree from ${tree} | ${sessions}`,
    );
    await cluster.waitConverged(60_000);
  }
} finally {
  await cluster.stop();
  cleanupNow();
}
