/**
 * A/B of the unary control path of two builds in one period: CPU per call, which other work
 * on the shared machine moves far less than rates or latencies.
 *
 * One cluster of each build (`--nodes`, default 1: the gRPC server and the commit alone; 3
 * adds gossip), started side by side; then `--rounds` rounds, each build's turn alternating
 * first: `--puts` unary puts to n00 with 64 in flight, then as many Gets, through the build's
 * own ControlClient. For each round and build: calls/s, and the CPU ms per call of n00 (from
 * /proc) and of this process (the client; process.cpuUsage). Medians over the rounds.
 *
 * Each build is a directory holding a built ckv (`dist/`, `bin/`, `node_modules`), as for
 * bench/ack-ab.ts.
 *
 * Run: node dist/bench/unary-ab.js DIR_A DIR_B [--rounds 6] [--puts 5000] [--nodes 1]
 */
import { performance } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { printSeries, runMain } from './lib/ab.js';
import { processCpuMs } from './lib/cpu-load.js';
import { quantile } from './lib/stats.js';

const usage = 'usage: node dist/bench/unary-ab.js DIR_A DIR_B [--rounds N] [--puts N] [--nodes N]';
const inFlight = 64;
const value = new Uint8Array(100).fill(7);

interface Client {
  put(key: string, value: Uint8Array): Promise<unknown>;
  get(key: string): Promise<unknown>;
}
interface Side {
  name: string;
  cluster: { nodes: { client: Client; pid: number }[]; waitMesh(ms: number): Promise<void>; stop(): Promise<void> };
  series: Map<string, number[]>;
}

function option(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name);
  const n = at >= 0 ? Number(args[at + 1]) : fallback;
  if (!Number.isInteger(n) || n < 1) throw new Error(usage);
  return n;
}

async function startSide(name: string, dir: string, nodes: number): Promise<Side> {
  const url = pathToFileURL(join(resolve(dir), 'dist', 'bench', 'lib', 'cluster.js')).href;
  const { startCluster } = (await import(url)) as { startCluster: (n: number) => Promise<Side['cluster']> };
  const cluster = await startCluster(nodes);
  if (nodes > 1) await cluster.waitMesh(30_000);
  return { name: `${name} (${dir})`, cluster, series: new Map() };
}

function record(side: Side, name: string, v: number): void {
  const list = side.series.get(name) ?? [];
  list.push(v);
  side.series.set(name, list);
}

/** `count` calls, `inFlight` outstanding; records calls/s and CPU ms per call of n00 and of this process. */
async function measure(side: Side, what: string, count: number, call: (client: Client, i: number) => Promise<unknown>): Promise<void> {
  const node = side.cluster.nodes[0]!;
  const nodeCpu0 = processCpuMs(node.pid);
  const clientCpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) await call(node.client, i);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const ms = performance.now() - t0;
  const client = process.cpuUsage(clientCpu0);
  record(side, `${what} calls/s`, (count / ms) * 1000);
  record(side, `${what} n00 CPU ms/call`, (processCpuMs(node.pid) - nodeCpu0) / count);
  record(side, `${what} client CPU ms/call`, (client.user + client.system) / 1000 / count);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dirs = args.filter((a, i) => !a.startsWith('--') && !(args[i - 1] ?? '').startsWith('--'));
  if (dirs.length !== 2) throw new Error(usage);
  const rounds = option(args, '--rounds', 6);
  const puts = option(args, '--puts', 5000);
  const nodes = option(args, '--nodes', 1);
  const sides: Side[] = [];
  try {
    for (const [i, dir] of dirs.entries()) sides.push(await startSide(i === 0 ? 'A' : 'B', dir, nodes));
    for (const side of sides) await measure(side, 'warm-up', 1000, (client, i) => client.put(`warm/${i}`, value));
    for (const side of sides) side.series.clear();
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) await measure(side, 'put', puts, (client, i) => client.put(`ab/${round}/${i}`, value));
      for (const side of order) await measure(side, 'get', puts, (client, i) => client.get(`ab/${round}/${i}`));
    }
  } finally {
    for (const side of sides) await side.cluster.stop();
  }
  printSeries(sides, 26, (values) => `${quantile(values, 0.5).toFixed(4)} [${values.map((v) => v.toFixed(3)).join(' ')}]`);
}

runMain(main);
