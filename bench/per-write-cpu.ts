/**
 * Where a node's CPU goes per write at a steady rate, fixed costs apart (issue 13).
 *
 * Starts N nodes (bench cluster settings), waits for the mesh, warms up, then measures two
 * windows on each node's /proc CPU time: idle (no writes: gossipsub heartbeat, anti-entropy
 * sessions, pings, timers) and load (one convergence run, bench/scenarios/convergence-run.ts:
 * W writes at R/s to random nodes, every node watched). With --profile the nodes run under
 * --cpu-prof and each window is cut out of the profiles by time (V8's profile timestamps and
 * process.hrtime are both CLOCK_MONOTONIC), then every sample is charged to the first
 * category in `categories` that matches a frame of its stack (so, for example, the Watch
 * stream's writes are counted as Watch even when they run inside a commit). The profiler
 * itself adds ~30 ms/s per node: compare /proc figures without --profile. Also counted, from
 * /proc/<pid>/io: write and read system calls per write per node (sockets and files); writes
 * queued behind a busy socket go out together, so these move with load too (1.6-2.0 write
 * calls per write per node for the same code in one evening).
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/per-write-cpu.js [--nodes 5] [--idle-s 10]
 *      [--writes 3000] [--rate 500] [--warmup 200] [--profile DIR] [--json FILE]
 * --json writes the figures and the two windows (monotonic microseconds), so saved profiles
 * can be cut again.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster } from './lib/cluster.js';
import { processesCpuMs, processIo } from './lib/cpu-load.js';
import { findProfiles } from './lib/profile-top.js';
import { unbundleFrames } from './lib/profile-sources.js';
import { rng32 } from './scenarios/common.js';
import { summarizeRuns } from './scenarios/convergence.js';
import { convergenceRun } from './scenarios/convergence-run.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface Profile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  startTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** In priority order: a sample goes to the first whose test matches any frame of its stack. */
const categories: [string, (f: CallFrame) => boolean][] = [
  ['Watch: listener', (f) => f.url.includes('control/server.js') && f.functionName === 'listener'],
  ['Watch: grpc-js stream write (http2)', (f) => /grpc-js\/(build\/)?src\/server-call\.(js|ts)$/.test(f.url) && f.functionName === '_write'],
  ['commit: LevelDB batch', (f) => f.url.includes('store/level-store.js') && f.functionName === 'write'],
  ['commit: onApplied (counters, stats)', (f) => f.url.includes('node/node.js') && f.functionName === 'onApplied'],
  ['gossip publish (gossipsub, to N-1 peers)', (f) => f.url.includes('gossipsub') && f.functionName === 'publish'],
  ['gossip: collect and encode our writes', (f) => f.url.includes('net/gossip.js') && /publish|flush/.test(f.functionName)],
  ['anti-entropy sessions', (f) => /session-driver|sync-protocol|sync-session|sync-frames/.test(f.url)],
  ['commit: rest (merge, tree, acks)', (f) => f.url.includes('core/replica.js') && /commit|flush|persist/.test(f.functionName)],
  ['gossip validate (decode, hand over)', (f) => f.url.includes('net/gossip.js')],
  ['gossipsub heartbeat', (f) => f.url.includes('gossipsub') && /heartbeat/i.test(f.functionName)],
  ['gossipsub receive (ids, seen cache, score)', (f) => f.url.includes('gossipsub')],
  ['membership, scheduler', (f) => /membership|net\/cluster|scheduler/.test(f.url)],
  ['gRPC server: Put calls', (f) => f.url.includes('@grpc') || /control\/(server|requests|messages)\.js/.test(f.url) || f.url.includes('node:internal/http2')],
  ['status, metrics, HTTP', (f) => /node\/status|http\/|write-stats|counters/.test(f.url)],
  ['libp2p per-stream (identify, peer store)', (f) => /identify|peer-store/.test(f.url)],
  ['libp2p transport (noise, yamux, tcp)', (f) => /noise|yamux|libp2p\/tcp|libp2p\/utils|as-chacha|socket-to-conn/.test(f.url)],
  ['LevelDB other', (f) => /level/.test(f.url)],
  ['garbage collector', (f) => f.functionName === '(garbage collector)'],
  ['(program)', (f) => f.functionName === '(program)'],
];

/** Busy microseconds by category within [fromUs, toUs]. */
function categorize(file: string, fromUs: number, toUs: number): Map<string, number> {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  unbundleFrames(profile.nodes.map((node) => node.callFrame)); // the node's bundle back to its modules
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const sums = new Map<string, number>();
  let t = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const leaf = byId.get(samples[i]!)?.callFrame;
    if (!leaf || leaf.functionName === '(idle)') continue;
    const frames: CallFrame[] = [];
    for (let id: number | undefined = samples[i]; id !== undefined; id = parent.get(id)) frames.push(byId.get(id)!.callFrame);
    const category = categories.find(([, test]) => frames.some(test))?.[0] ?? 'other';
    sums.set(category, (sums.get(category) ?? 0) + (deltas[i + 1] ?? 0));
  }
  return sums;
}

function printBreakdown(title: string, files: string[], window: [number, number], usPerUnit: number, unit: string): void {
  const total = new Map<string, number>();
  for (const file of files) for (const [k, v] of categorize(file, ...window)) total.set(k, (total.get(k) ?? 0) + v);
  const busy = [...total.values()].reduce((a, b) => a + b, 0);
  console.log(`\n${title} (shares of sampled busy time, all nodes; ${unit} from /proc)`);
  for (const [name, us] of [...total].sort((a, b) => b[1] - a[1])) {
    console.log(`${((100 * us) / busy).toFixed(1).padStart(6)} % ${((usPerUnit * us) / busy).toFixed(1).padStart(7)} ${unit}  ${name}`);
  }
}

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

const nodes = arg('--nodes', 5);
const idleS = arg('--idle-s', 10);
const writes = arg('--writes', 3000);
const rate = arg('--rate', 500);
// A fresh node's code is not optimised yet: at 5 nodes and 500 writes/s a write cost 1.5x the CPU
// at first that it cost after ~8,000 (docs/measurements.md, 2026-12-08 (1)); 200 is a quick look.
const warmupWrites = arg('--warmup', 200);
const profileAt = process.argv.indexOf('--profile');
const profileDir = profileAt >= 0 ? process.argv[profileAt + 1] : undefined;
const jsonAt = process.argv.indexOf('--json');
const jsonFile = jsonAt >= 0 ? process.argv[jsonAt + 1] : undefined;
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));
const cluster = await startCluster(nodes, profileDir !== undefined ? { cpuProfDir: profileDir } : {});
let idle: [number, number];
let load: [number, number];
let idleMsPerS: number[];
let loadUsPerWrite: number[];
let converged: { p50Ms: number; p99Ms: number; missing: number };
let syscallsPerWrite: { write: number[]; read: number[] };
try {
  await cluster.waitMesh(30_000);
  const pids = cluster.nodes.map((node) => node.pid);
  const cpu = (): number[] => pids.map((pid) => processesCpuMs([pid]));
  const rng = rng32(7);
  await convergenceRun(cluster, { writes: warmupWrites, ratePerSec: rate, valueBytes: 100, tag: 'warm', rng, drainTimeoutMs: 10_000 });
  await sleep(1000);
  let before = cpu();
  idle = [nowUs(), 0];
  await sleep(idleS * 1000);
  let after = cpu();
  idle[1] = nowUs();
  idleMsPerS = after.map((ms, i) => (ms - before[i]!) / idleS);
  before = cpu();
  const ioBefore = pids.map(processIo);
  load = [nowUs(), 0];
  const run = await convergenceRun(cluster, { writes, ratePerSec: rate, valueBytes: 100, tag: 'load', rng, drainTimeoutMs: 15_000 });
  after = cpu();
  load[1] = nowUs();
  const ioAfter = pids.map(processIo);
  syscallsPerWrite = {
    write: ioAfter.map((io, i) => (io.syscw - ioBefore[i]!.syscw) / writes),
    read: ioAfter.map((io, i) => (io.syscr - ioBefore[i]!.syscr) / writes),
  };
  loadUsPerWrite = after.map((ms, i) => (1000 * (ms - before[i]!)) / writes);
  const s = summarizeRuns([run]);
  converged = { p50Ms: s.converge.p50, p99Ms: s.converge.p99, missing: s.missing };
  console.log(`${nodes} nodes, ${writes} writes at ${rate}/s: converged p50 ${s.converge.p50.toFixed(1)} ms, p99 ${s.converge.p99.toFixed(1)} ms, missing ${s.missing}`);
} finally {
  await cluster.stop();
}
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`idle CPU per node: ${idleMsPerS.map((x) => x.toFixed(1)).join(' / ')} ms/s (mean ${mean(idleMsPerS).toFixed(1)}; at ${rate} writes/s that is ${((1000 * mean(idleMsPerS)) / rate).toFixed(0)} us per write per node)`);
console.log(`load CPU per write per node: ${loadUsPerWrite.map((x) => x.toFixed(0)).join(' / ')} us (mean ${mean(loadUsPerWrite).toFixed(0)})`);
console.log(`system calls per write per node: write ${syscallsPerWrite.write.map((x) => x.toFixed(2)).join(' / ')} (mean ${mean(syscallsPerWrite.write).toFixed(2)}), read ${syscallsPerWrite.read.map((x) => x.toFixed(2)).join(' / ')} (mean ${mean(syscallsPerWrite.read).toFixed(2)})`);
if (jsonFile !== undefined) {
  writeFileSync(jsonFile, JSON.stringify({ nodes, writes, rate, idleS, idleWindowUs: idle, loadWindowUs: load, idleMsPerS, loadUsPerWrite, syscallsPerWrite, converged }, null, 1));
}
if (profileDir !== undefined) {
  const files = findProfiles(profileDir);
  printBreakdown('load window', files, load, mean(loadUsPerWrite), 'us per write per node');
  printBreakdown('idle window', files, idle, mean(idleMsPerS), 'ms/s per node');
  console.log(`\nprofiles: ${join(profileDir)}`);
}
