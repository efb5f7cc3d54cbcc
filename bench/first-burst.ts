/**
 * A fresh cluster's first burst of writes, with the warm-up (src/node/warm-up.ts) and
 * without it (`--warm-up-entries 0`). Each round starts a fresh cluster of `--nodes` nodes per
 * variant (alternated, so load from elsewhere falls on both), waits for the full mesh, leaves
 * it quiet for `--settle-ms` (a fresh node's warm-up runs then), then times a burst of
 * `--writes` puts on n00 through PutMany of 1,000, 4 in flight, until every node holds the last
 * (a Get of it on each node every 2 ms): issue 13's "burst of 5,000 writes until every node
 * holds the last". A second burst follows on the same cluster, whose code is warm either way:
 * the baseline each first burst is set against. Prints per round and variant both bursts, the
 * CPU every node spent on the first (/proc), and how many nodes had finished their warm-up
 * before it; then the medians.
 *
 *   npm run build && node dist/bench/first-burst.js [--nodes 3] [--rounds 3] [--writes 5000] [--settle-ms 2000]
 */
import { parseArgs } from 'node:util';
import { cleanupNow, counter, exitOnSignals, sleep, type Cluster } from '../harness/index.js';
import { burstUntilHeld } from './lib/burst.js';
import { processCost } from './lib/cpu-load.js';
import { startCluster } from './lib/cluster.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    writes: { type: 'string', default: '5000' },
    'settle-ms': { type: 'string', default: '2000' },
  },
});
const nodes = Number(values.nodes);
const rounds = Number(values.rounds);
const writes = Number(values.writes);
const settleMs = Number(values['settle-ms']);
const value = new Uint8Array(100).fill(0x62);
const variants = [
  { name: 'warm-up off', args: ['--warm-up-entries', '0'] },
  { name: 'warm-up on', args: [] as string[] },
] as const;

/** ms from the first put to every node holding the last one (../lib/burst.ts). */
async function burst(cluster: Cluster, label: string): Promise<number> {
  return (await burstUntilHeld(cluster, writes, (i) => `${label}/${i}`, () => value, 1000, 4)).heldMs;
}

exitOnSignals('first-burst');
const results = new Map<string, { first: number[]; second: number[] }>(variants.map((v) => [v.name, { first: [], second: [] }]));
console.log(`first burst of ${writes} writes on a fresh ${nodes}-node cluster, ${settleMs} ms after the mesh formed; ${rounds} rounds, variants alternated`);
try {
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const variant of order) {
      const cluster = await startCluster(nodes, { args: [...variant.args] });
      try {
        await cluster.waitMesh(30_000);
        await sleep(settleMs);
        const statuses = await Promise.all(cluster.nodes.map((node) => node.status()));
        const warmedUp = statuses.filter((status) => counter(status, 'warmup_done') > 0).length;
        const before = cluster.nodes.map((node) => processCost(node.pid));
        const first = await burst(cluster, 'first');
        const cpuMs = cluster.nodes.map((node, i) => {
          const [a, b] = [before[i], processCost(node.pid)];
          return a === undefined || b === undefined ? Number.NaN : b.userMs + b.sysMs - a.userMs - a.sysMs;
        });
        const second = await burst(cluster, 'second');
        results.get(variant.name)!.first.push(first);
        results.get(variant.name)!.second.push(second);
        console.log(
          `round ${round + 1} ${variant.name.padEnd(11)}: first burst ${first.toFixed(0)} ms (${Math.round((writes / first) * 1000)}/s), second ${second.toFixed(0)} ms; ` +
            `nodes' CPU on the first ${cpuMs.map((ms) => ms.toFixed(0)).join(' / ')} ms; warm-up done on ${warmedUp} of ${nodes} nodes`,
        );
      } finally {
        await cluster.stop();
      }
    }
  }
  for (const [name, r] of results) {
    console.log(`${name.padEnd(11)}: first burst median ${median(r.first).toFixed(0)} ms, second ${median(r.second).toFixed(0)} ms (first / second ${(median(r.first) / median(r.second)).toFixed(2)}x)`);
  }
} finally {
  cleanupNow();
}
