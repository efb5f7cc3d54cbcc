/**
 * Acked unary writes/s, full replication against partitioned mode, on the same machine in one
 * run (the gap of the `partitioned` scenario against `throughput`'s unary figure, profiled).
 *
 * For each mode: starts N nodes (bench cluster settings; partitioned: `--replicas K` and the
 * test helpers' flags, waits for one settled layout), warms up, then times `writes` unary puts
 * (default consistency), `inFlight` outstanding, sent either all to n00 (`--target n00`, the
 * throughput scenario's load) or round robin over the nodes (`--target rr`, the partitioned
 * scenario's). Prints acked writes/s per mode, their ratio, and each node's CPU ms per write
 * from /proc. With --profile DIR the nodes run under --cpu-prof (into DIR/<mode>/) and the
 * top self-time functions and packages of each profile are printed (whole process life, so
 * start-up is in them; the load dominates with enough writes).
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/partitioned-writes.js [--nodes 3]
 *      [--replicas 3] [--writes 5000] [--in-flight 64] [--target rr|n00]
 *      [--modes full,partitioned] [--profile DIR]
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { counter, type Cluster } from '../harness/index.js';
import { partitionedArgs, waitSettled } from '../test/helpers/partitioned.js';
import { startCluster } from './lib/cluster.js';
import { processCpuMs } from './lib/cpu-load.js';
import { findProfiles, summarizeProfile } from './lib/profile-top.js';
import { randomValue, rng32 } from './scenarios/common.js';

interface Options {
  nodes: number;
  replicas: number;
  writes: number;
  inFlight: number;
  target: 'rr' | 'n00';
  modes: ('full' | 'partitioned')[];
  profile: string | undefined;
}

function parse(argv: string[]): Options {
  const o: Options = { nodes: 3, replicas: 3, writes: 5000, inFlight: 64, target: 'rr', modes: ['full', 'partitioned'], profile: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--nodes') o.nodes = Number(value());
    else if (arg === '--replicas') o.replicas = Number(value());
    else if (arg === '--writes') o.writes = Number(value());
    else if (arg === '--in-flight') o.inFlight = Number(value());
    else if (arg === '--target') o.target = value() === 'n00' ? 'n00' : 'rr';
    else if (arg === '--modes') o.modes = value().split(',') as Options['modes'];
    else if (arg === '--profile') o.profile = value();
    else throw new Error(`unknown argument ${arg}`);
  }
  return o;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

async function load(cluster: Cluster, o: Options, prefix: string, writes: number, value: Uint8Array): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    for (let i = next++; i < writes; i = next++) {
      const node = o.target === 'n00' ? cluster.nodes[0]! : cluster.nodes[i % cluster.nodes.length]!;
      await node.client.put(`${prefix}/${String(i).padStart(7, '0')}`, value);
    }
  };
  await Promise.all(Array.from({ length: o.inFlight }, () => worker()));
  return performance.now() - t0;
}

async function runMode(mode: 'full' | 'partitioned', o: Options, value: Uint8Array): Promise<number> {
  const cpuProfDir = o.profile === undefined ? undefined : join(o.profile, mode);
  const cluster = await startCluster(o.nodes, { args: mode === 'partitioned' ? partitionedArgs(o.replicas) : [], cpuProfDir });
  try {
    if (mode === 'partitioned') await waitSettled(cluster.nodes, 60_000, 'one settled layout', 1, o.replicas);
    else await cluster.waitMesh(30_000);
    await load(cluster, o, `pw/${mode}/warm`, Math.min(1000, o.writes), value);
    const framesOf = async (): Promise<[number, number]> => {
      const statuses = await Promise.all(cluster.nodes.map((n) => n.status()));
      return [sum(statuses.map((s) => counter(s, 'replicate_entries_received'))), sum(statuses.map((s) => counter(s, 'replicate_frames_received')))];
    };
    const frames0 = await framesOf();
    const cpu0 = cluster.nodes.map((n) => processCpuMs(n.pid));
    const ms = await load(cluster, o, `pw/${mode}/run`, o.writes, value);
    const cpu = cluster.nodes.map((n, i) => (processCpuMs(n.pid) - cpu0[i]!) / o.writes);
    const frames1 = await framesOf();
    const perFrame = (frames1[0] - frames0[0]) / Math.max(1, frames1[1] - frames0[1]);
    const rate = (o.writes / ms) * 1000;
    console.log(`${mode}: ${o.writes} puts, ${o.inFlight} in flight to ${o.target}: ${rate.toFixed(0)} acked writes/s; CPU ms/write per node ${cpu.map((c) => c.toFixed(3)).join(', ')} (sum ${sum(cpu).toFixed(3)})${mode === 'partitioned' ? `; ${perFrame.toFixed(1)} entries per replicate frame` : ''}`);
    return rate;
  } finally {
    await cluster.stop();
    if (cpuProfDir !== undefined) {
      for (const file of findProfiles(cpuProfDir)) {
        const s = summarizeProfile(file, 25);
        console.log(`\n${file}: ${(s.busyMs / 1000).toFixed(1)} s busy of ${(s.totalMs / 1000).toFixed(1)} s`);
        console.log(`  by package: ${s.byPackage.map((p) => `${p.owner} ${(p.share * 100).toFixed(0)}%`).join(', ')}`);
        for (const row of s.top) console.log(`  ${(row.share * 100).toFixed(1).padStart(5)}%  ${row.selfMs.toFixed(0).padStart(6)} ms  ${row.function} ${row.location}`);
      }
    }
  }
}

const o = parse(process.argv.slice(2));
const value = randomValue(rng32(7), 100);
const rates = new Map<string, number>();
for (const mode of o.modes) rates.set(mode, await runMode(mode, o, value));
if (rates.has('full') && rates.has('partitioned')) console.log(`partitioned / full: ${(rates.get('partitioned')! / rates.get('full')!).toFixed(2)}`);
