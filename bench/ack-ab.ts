/**
 * A/B of two builds of ckv in one period, for a machine whose load comes and goes (other work
 * on the shared 2 cores moves a whole `npm run bench` run by 2x and more): one 3-node cluster
 * of each build, started side by side, and the measurements alternated between them in small
 * blocks, so both see the same load.
 *
 * - idle: single puts and Gets of a stored key, `gapMs` apart (as the idle scenario times
 *   them), to n00 of each cluster through ControlClient;
 * - convergence: the convergence scenario's own run (bench/scenarios/convergence-run.ts: put
 *   ack, origin watch, write -> all nodes) at 10 and 500 writes/s;
 * - throughput: converged writes/s as the throughput scenario measures them (writes to n00
 *   until every node holds them all): 10,000 puts by PutMany of 1000 (4 in flight), and 3,000
 *   unary puts (64 in flight).
 *
 * Each build is a directory holding a built ckv (`dist/`, `bin/`, `src/control/ckv.proto`,
 * `node_modules`), e.g. `git archive <commit> | tar -x -C /tmp/a && ln -s $PWD/node_modules
 * /tmp/a/ && (cd /tmp/a && npx tsc -p tsconfig.json)`. Each build's own harness and bench code
 * runs its clusters.
 *
 * Run: node dist/bench/ack-ab.js DIR_A DIR_B [--blocks N] [--no-convergence] [--no-throughput]
 */
import { performance } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { printSeries, runMain, timeCalls } from './lib/ab.js';
import { quantile } from './lib/stats.js';

const usage = 'usage: node dist/bench/ack-ab.js DIR_A DIR_B [--blocks N] [--no-convergence] [--no-throughput]';
const callsPerBlock = 20;
const gapMs = 10;
const valueBytes = 100;

/** The parts of a build this bench drives (its harness and its convergence run), loosely typed: two builds' types differ. */
interface Client {
  put(key: string, value: Uint8Array): Promise<unknown>;
  get(key: string): Promise<unknown>;
}
type Status = { keyCount: string; merkleRoot: string };
interface Harness {
  putMany(client: Client, count: number, keyOf: (i: number) => string, valueOf: (i: number) => Uint8Array, inFlight: number): Promise<number>;
  putChunked(client: Client, count: number, keyOf: (i: number) => string, valueOf: (i: number) => Uint8Array, chunk: number, inFlight: number): Promise<number>;
  sameState(statuses: readonly Status[]): boolean;
  waitFor(condition: () => Promise<boolean>, options: { what: string; deadlineMs: number; intervalMs?: number }): Promise<void>;
}
interface Side {
  name: string;
  harness: Harness;
  cluster: { nodes: { client: Client; status(): Promise<Status> }[]; waitMesh(ms: number): Promise<void>; stop(): Promise<void> };
  convergenceRun: (cluster: unknown, options: object) => Promise<Record<string, number[] | number>>;
  series: Map<string, number[]>;
}

function record(side: Side, name: string, values: readonly number[]): void {
  const list = side.series.get(name) ?? [];
  list.push(...values.filter((v) => Number.isFinite(v)));
  side.series.set(name, list);
}

async function startSide(name: string, dir: string): Promise<Side> {
  const load = (path: string): Promise<Record<string, unknown>> => import(pathToFileURL(join(resolve(dir), 'dist', path)).href);
  const { startCluster } = (await load('bench/lib/cluster.js')) as { startCluster: (n: number) => Promise<Side['cluster']> };
  const { convergenceRun } = (await load('bench/scenarios/convergence-run.js')) as { convergenceRun: Side['convergenceRun'] };
  const harness = (await load('harness/index.js')) as unknown as Harness;
  const cluster = await startCluster(3);
  await cluster.waitMesh(30_000);
  return { name: `${name} (${dir})`, harness, cluster, convergenceRun, series: new Map() };
}

/** Writes/s from the first put to every node holding the same root with all `writes` keys. */
async function convergedRate(side: Side, writes: number, write: (client: Client) => Promise<number>): Promise<number> {
  const nodes = side.cluster.nodes;
  const expected = Number((await nodes[0]!.status()).keyCount) + writes;
  const t0 = performance.now();
  await write(nodes[0]!.client);
  await side.harness.waitFor(
    async () => {
      const statuses = await Promise.all(nodes.map((node) => node.status()));
      return side.harness.sameState(statuses) && Number(statuses[0]!.keyCount) === expected;
    },
    { what: `${nodes.length} nodes to converge on ${expected} keys`, deadlineMs: 120_000, intervalMs: 10 },
  );
  return (writes / (performance.now() - t0)) * 1000;
}

const timed = (count: number, call: (i: number) => Promise<unknown>): Promise<number[]> => timeCalls(count, gapMs, call);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dirs = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--blocks');
  if (dirs.length !== 2) throw new Error(usage);
  const blocksAt = args.indexOf('--blocks');
  const blocks = blocksAt >= 0 ? Number(args[blocksAt + 1]) : 10;
  if (!Number.isInteger(blocks) || blocks < 1) throw new Error(usage);
  const sides: Side[] = [];
  try {
    for (const [i, dir] of dirs.entries()) sides.push(await startSide(i === 0 ? 'A' : 'B', dir));
    const value = new Uint8Array(valueBytes).fill(7);
    for (const side of sides) for (let i = 0; i < callsPerBlock; i++) await side.cluster.nodes[0]!.client.put(`ab/stored/${i}`, value);
    // Alternate which side goes first, so neither always follows the other's load.
    const order = (block: number): Side[] => (block % 2 === 0 ? sides : [...sides].reverse());
    for (let block = 0; block < blocks; block++) {
      for (const side of order(block)) record(side, 'idle put ms', await timed(callsPerBlock, (i) => side.cluster.nodes[0]!.client.put(`ab/put/${block}/${i}`, value)));
      for (const side of order(block)) record(side, 'idle Get ms', await timed(callsPerBlock, (i) => side.cluster.nodes[0]!.client.get(`ab/stored/${i}`)));
    }
    if (!args.includes('--no-convergence')) {
      let seed = 1;
      const rng = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
      const plan: [rate: number, writes: number][] = [[10, 60], [500, 1000], [10, 60], [500, 1000]];
      for (const [block, [rate, writes]] of plan.entries()) {
        for (const side of order(block)) {
          const run = await side.convergenceRun(side.cluster, { writes, ratePerSec: rate, valueBytes, tag: `ab-${block}`, rng, drainTimeoutMs: 5000 });
          record(side, `${rate}/s write -> all ms`, run.convergeMs as number[]);
          record(side, `${rate}/s put ack ms`, run.ackMs as number[]);
          record(side, `${rate}/s origin watch ms`, run.localMs as number[]);
          record(side, `${rate}/s node CPU ms per write`, [run.nodeCpuMsPerWrite as number]);
        }
      }
    }
    if (!args.includes('--no-throughput')) {
      const valueOf = (): Uint8Array => value;
      for (let block = 0; block < 3; block++) {
        for (const side of order(block)) {
          const bulkKey = (i: number): string => `ab/bulk/${block}/${String(i).padStart(6, '0')}`;
          record(side, 'bulk converged writes/s', [await convergedRate(side, 10_000, (client) => side.harness.putChunked(client, 10_000, bulkKey, valueOf, 1000, 4))]);
          const unaryKey = (i: number): string => `ab/unary/${block}/${String(i).padStart(6, '0')}`;
          record(side, 'unary converged writes/s', [await convergedRate(side, 3000, (client) => side.harness.putMany(client, 3000, unaryKey, valueOf, 64))]);
        }
      }
    }
  } finally {
    for (const side of sides) await side.cluster.stop();
  }
  printSeries(sides, 30, (values) => `p50 ${quantile(values, 0.5).toFixed(3)} p90 ${quantile(values, 0.9).toFixed(3)} (${values.length})`);
}

runMain(main);
