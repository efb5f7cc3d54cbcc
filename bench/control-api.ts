/**
 * bench/control-api: what the control API costs a user, against a real node.
 *
 * Why. The control API (gRPC over the node's Unix socket) is how every user and script talks
 * to ckv. Three things decide whether that is pleasant: how long one `ckv get` takes from
 * the shell, how many writes per second a client can push through the socket compared with
 * what LevelDB itself can take, and how much memory a maximal (64 MiB) value costs on the way
 * in and out. Each number is set against a baseline measured in the same run on the same
 * machine, so a slow or noisy machine moves both.
 *
 * Setup. One real node: `node bin/ckv.js node start --data-dir TMP/data` (socket
 * TMP/data/ckv.sock; also --no-mdns, --http off and a loopback /tcp/0 listen address so the
 * bench never meets LAN peers or fixed ports), in a fresh temp dir. Readiness = the socket
 * exists and a Status call succeeds, polled against a 20 s deadline (no fixed sleeps).
 * CKV_SOCKET and CKV_DATA_DIR point into TMP for every child, so nothing touches the user's
 * data. Every process and temp dir is removed on every exit path (also on error or Ctrl-C).
 *
 * 1. `ckv get` latency: wall time from spawn() of `node bin/ckv.js --socket S get KEY` to
 *    its exit, `--runs` (20) runs after 2 warm-up runs; median and p90. Baseline: `node -e ''`
 *    the same way, interleaved run by run. Also `ckv --version` (every import, no RPC), to
 *    split "loading the CLI" from "talking to the node". Target (issue): median < 150 ms.
 *    If the target is missed (or with --profile), a breakdown: (a) a child that performs
 *    the CLI's work step by step (node bootstrap, each heavy import the CLI really loads,
 *    the rest of the cli/main.js graph, commander setup, the HTTP/2 channel, first RPC,
 *    exit) and reports per-step medians; (b) `node --cpu-prof` on the real `ckv get`,
 *    sampled time split by the package responsible (bench/lib/cpu-profile.ts); (c) a
 *    census of the modules `import cli/main.js` loads (ESM load hook + require.cache),
 *    grouped; (d) what each heavy import costs alone in a fresh process (grpc-js and
 *    proto-loader for comparison: the CLI's client now uses node:http2 and hand-written
 *    codecs, src/control/h2.ts and wire.ts).
 * 2. Put throughput: one ControlClient, `--puts` (20,000) puts of 100-byte random values
 *    on one PutPipeline stream (each put acknowledged on its own); puts/s, median of
 *    `--reps` (5) repeats (after a 1,000-put warm-up; each repeat writes fresh keys). PutPipeline keeps 1,024 puts in flight (a full storage
 *    batch); `--inflight` is for the unary rows. For context, the same puts as one unary
 *    Put call each and as PutMany calls of 1,000. Baseline: raw `level` with the same
 *    20,000 keys and values, db.batch of 256 at a time, fresh dir per repeat, interleaved
 *    with the node's repeats. Target: node >= 50% of raw level. For context: 1 in flight
 *    (`--serial-puts`, 2,000; latency-bound), and diagnostics that place the loss: the
 *    node's storage layout in process (LevelStore.write, batches of 256), the node's
 *    Replica in process (group commit, 256 in flight, no gRPC), and a gRPC ceiling (Get of
 *    a missing key through the socket, 256 in flight).
 * 3. Memory for a 64 MiB value (`--big-mib`): `ckv put KEY -f FILE` then `ckv get KEY -o
 *    FILE2`, files compared by SHA-256. The node's VmRSS/VmHWM from /proc/<pid>/status
 *    before; VmHWM is reset (clear_refs 5) before each command, so the peak read after it is
 *    that command's own (if the reset is refused, the cumulative peak is reported and
 *    marked). The CLI processes' peak RSS from `/usr/bin/time -v` (else polled VmHWM, a lower
 *    bound). Baselines: the node's RSS before, and `node -e ''`'s peak RSS.
 *
 * Verdicts: PASS/MISS against the targets; a MISS is reported, not fatal (exit 0). A wrong
 * answer (get output differs, round trip differs, a command fails) exits 1; a bench that
 * cannot run (node does not start, ...) exits 2. The CPU count and load average are printed:
 * on a shared machine, compare ratios to the same-run baselines, not absolute numbers.
 *
 * Runtime: about 4-7 minutes with the defaults (most of it in part 2's gRPC calls).
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/control-api.js [--json FILE] [--runs N]
 *      [--puts N] [--inflight N] [--reps N] [--serial-puts N] [--big-mib N]
 *      [--profile | --no-profile]
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { Level } from 'level';
import { ControlClient } from '../src/control/client.js';
import { hlcPack } from '../src/core/hlc.js';
import type { Entry } from '../src/core/entry.js';
import { Replica } from '../src/core/replica.js';
import { LevelStore } from '../src/store/level-store.js';
import { attributeProfile, type CpuProfile } from './lib/cpu-profile.js';
import {
  ProcessTracker,
  gnuTimeAvailable,
  parseGnuTimeMaxRss,
  readProcStatus,
  resetPeakRss,
  runTimed,
  stopChild,
  type RunResult,
} from './lib/process.js';
import { formatInt, formatMiB, formatMs, formatPercent, median, quantile } from './lib/stats.js';
import { markdownTable, type Align } from './lib/table.js';

const getTargetMs = 150;
const throughputTargetRatio = 0.5;
const valueBytes = 100;
const levelBatchOps = 256;
const warmupPuts = 1000;
/**
 * Puts unanswered on the PutPipeline at once: its window. 1024 = writeBatchOpsMax, so the
 * replica's group commit can fill a storage batch while the previous one is written.
 */
const pipelineWindow = 1024;
/** Puts per PutMany call in the context row. */
const putManyBatch = 1000;
const readyDeadlineMs = 20_000;
const phaseRuns = 10;
const cpuProfileRuns = 5;
const benchNodeId = '00000000000000b1';

interface Options {
  runs: number;
  puts: number;
  inflight: number;
  reps: number;
  serialPuts: number;
  bigMib: number;
  profile: 'auto' | 'on' | 'off';
  json: string | undefined;
}

const usage =
  'usage: node dist/bench/control-api.js [--json FILE] [--runs N] [--puts N] [--inflight N] [--reps N] [--serial-puts N] [--big-mib N] [--profile | --no-profile]';

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { runs: 20, puts: 20_000, inflight: 256, reps: 5, serialPuts: 2000, bigMib: 64, profile: 'auto', json: undefined };
  const positive = (name: string, text: string | undefined): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} needs a positive integer\n${usage}`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '--runs':
        options.runs = positive(arg, argv[++i]);
        break;
      case '--puts':
        options.puts = positive(arg, argv[++i]);
        break;
      case '--inflight':
        options.inflight = positive(arg, argv[++i]);
        break;
      case '--reps':
        options.reps = positive(arg, argv[++i]);
        break;
      case '--serial-puts':
        options.serialPuts = positive(arg, argv[++i]);
        break;
      case '--big-mib':
        options.bigMib = positive(arg, argv[++i]);
        break;
      case '--profile':
        options.profile = 'on';
        break;
      case '--no-profile':
        options.profile = 'off';
        break;
      case '--json': {
        const file = argv[++i];
        if (!file) throw new Error(`--json needs a file\n${usage}`);
        options.json = file;
        break;
      }
      case '--help':
      case '-h':
        process.stdout.write(`${usage}\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${arg}\n${usage}`);
    }
  }
  return options;
}

/** A wrong answer (as opposed to a slow one): the bench exits 1. */
class BenchFailure extends Error {}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const ckvBin = join(repoRoot, 'bin', 'ckv.js');
const nodeExe = process.execPath;

/** Everything that must be undone on the way out. */
const tracker = new ProcessTracker();
const tempDirs: string[] = [];

function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

process.on('exit', () => {
  tracker.killAllNow();
  removeTempDirs();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}: cleaning up\n`);
    process.exit(130); // the 'exit' handler kills children and removes temp dirs
  });
}

function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

interface Ctx {
  options: Options;
  work: string;
  dataDir: string;
  socket: string;
  env: NodeJS.ProcessEnv;
  node: ChildProcess;
  nodePid: number;
  nodeLog: string;
  client: ControlClient;
  gnuTime: boolean;
}

// ---------------------------------------------------------------------------------------
// Node lifecycle

async function startNode(options: Options): Promise<{ ctx: Ctx; readyMs: number }> {
  const work = mkdtempSync(join(tmpdir(), 'ckvb-'));
  tempDirs.push(work);
  const dataDir = join(work, 'data');
  const socket = join(dataDir, 'ckv.sock');
  const env = { ...process.env, CKV_SOCKET: socket, CKV_DATA_DIR: dataDir };
  const nodeLog = join(work, 'node.log');
  const logFd = openSync(nodeLog, 'w');
  const started = performance.now();
  let node: ChildProcess;
  try {
    node = tracker.spawn(
      nodeExe,
      [ckvBin, 'node', 'start', '--data-dir', dataDir, '--no-mdns', '--http', 'off', '--listen', '/ip4/127.0.0.1/tcp/0'],
      { cwd: repoRoot, env, stdio: ['ignore', logFd, logFd] },
    );
  } finally {
    closeSync(logFd);
  }
  if (node.pid === undefined) throw new Error('could not spawn the node');
  const deadline = Date.now() + readyDeadlineMs;
  let client: ControlClient | undefined;
  let lastError = 'socket not there yet';
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (node.exitCode !== null || node.signalCode !== null) {
      throw new Error(`the node exited during start (code ${node.exitCode}, signal ${node.signalCode}):\n${tail(nodeLog)}`);
    }
    if (existsSync(socket)) {
      client ??= new ControlClient(socket);
      try {
        await withTimeout(client.status(), 2000, 'status');
        const readyMs = performance.now() - started;
        const gnuTime = gnuTimeAvailable();
        return { ctx: { options, work, dataDir, socket, env, node, nodePid: node.pid, nodeLog, client, gnuTime }, readyMs };
      } catch (error) {
        lastError = (error as Error).message;
      }
    }
    await delay(Math.min(100, 10 + attempt * 5)); // polling interval, bounded by the deadline
  }
  client?.close();
  throw new Error(`the node was not ready within ${readyDeadlineMs} ms (${lastError}):\n${tail(nodeLog)}`);
}

async function stopNode(ctx: Ctx): Promise<string> {
  ctx.client.close();
  const end = await stopChild(ctx.node, 10_000);
  return end.forced ? 'killed (did not stop within 10 s of SIGTERM)' : `exited (code ${end.code}, signal ${end.signal})`;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function checkRun(result: RunResult, what: string): void {
  if (result.timedOut) throw new BenchFailure(`${what}: timed out`);
  if (result.code !== 0) throw new BenchFailure(`${what}: exit code ${result.code} signal ${result.signal}: ${result.stderr.trim()}`);
}

// ---------------------------------------------------------------------------------------
// 1. `ckv get` latency

interface CliLatency {
  getMs: number[];
  versionMs: number[];
  baselineMs: number[];
}

async function measureCliLatency(ctx: Ctx, key: string, expected: Buffer): Promise<CliLatency> {
  const { runs } = ctx.options;
  const result: CliLatency = { getMs: [], versionMs: [], baselineMs: [] };
  const runOptions = { env: ctx.env, cwd: repoRoot, timeoutMs: 30_000 };
  const get = async (): Promise<number> => {
    const r = await runTimed(tracker, nodeExe, [ckvBin, '--socket', ctx.socket, 'get', key], runOptions);
    checkRun(r, 'ckv get');
    if (!r.stdout.equals(expected)) throw new BenchFailure(`ckv get printed ${JSON.stringify(r.stdout.toString())}, expected ${JSON.stringify(expected.toString())}`);
    return r.wallMs;
  };
  const version = async (): Promise<number> => {
    const r = await runTimed(tracker, nodeExe, [ckvBin, '--version'], runOptions);
    checkRun(r, 'ckv --version');
    return r.wallMs;
  };
  const baseline = async (): Promise<number> => {
    const r = await runTimed(tracker, nodeExe, ['-e', ''], runOptions);
    checkRun(r, "node -e ''");
    return r.wallMs;
  };
  for (let i = 0; i < 2; i++) {
    await baseline();
    await get();
    await version();
  }
  for (let i = 0; i < runs; i++) {
    result.baselineMs.push(await baseline());
    result.getMs.push(await get());
    result.versionMs.push(await version());
  }
  return result;
}

/** The CLI's work, step by step, in a child; prints [label, ms since process start][] at exit. */
const phaseScript = String.raw`
import { writeSync } from 'node:fs';
const t0 = performance.now();
const cfg = JSON.parse(process.env.CKV_BENCH_PHASES);
const marks = [['node bootstrap (process start to first user code)', t0]];
const mark = (label) => marks.push([label, performance.now()]);
process.on('exit', () => {
  mark('event loop drains after close, process exits');
  writeSync(1, JSON.stringify(marks));
});
await import(cfg.polyfill); mark('import polyfill');
for (const step of cfg.steps) {
  for (const url of step.urls) {
    try { await import(url); } catch { /* not importable alone: its cost lands in the next step */ }
  }
  mark(step.label);
}
const { buildProgram } = await import(cfg.main); mark('import ckv dist modules (rest of cli/main.js graph)');
buildProgram(); mark('buildProgram (commander: register the commands)');
const { ControlClient } = await import(cfg.client);
const client = ControlClient.connect(cfg.socket); mark('ControlClient constructor (HTTP/2 channel)');
const reply = await client.get(cfg.key); mark('first Get RPC (connect + call + reply)');
if (!reply.found) throw new Error('phase child: key not found');
client.close(); mark('client.close()');
`;

/** The networking dependencies named in package.json (they arrive with src/net/). */
function libp2pStack(): string[] {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  return Object.keys(pkg.dependencies ?? {}).filter(
    (name) => name === 'libp2p' || ['@libp2p/', '@chainsafe/', '@multiformats/', 'it-'].some((prefix) => name.startsWith(prefix)),
  );
}

/**
 * Which modules the CLI loads before it does anything: ES modules seen by a load hook, plus
 * CommonJS files in require.cache. Run once, untimed (the hook thread slows loading).
 */
const censusScript = String.raw`
import { register, createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const cfg = JSON.parse(process.env.CKV_BENCH_CENSUS);
const hooks = 'let out; import { appendFileSync } from "node:fs";' +
  'export async function initialize(data) { out = data.out; }' +
  'export async function load(url, context, next) { appendFileSync(out, url + String.fromCharCode(10)); return next(url, context); }';
register('data:text/javascript,' + encodeURIComponent(hooks), { data: { out: cfg.out } });
await import(cfg.polyfill);
await import(cfg.main);
const esm = readFileSync(cfg.out, 'utf8').split(String.fromCharCode(10)).filter((u) => u.startsWith('file:'));
const cjs = Object.keys(createRequire(import.meta.url).cache).map((p) => 'file://' + p);
process.stdout.write(JSON.stringify({ esm, cjs }));
`;

interface ModuleCensus {
  esmModules: number;
  cjsModules: number;
  packages: number;
  packageNames: string[];
  byGroup: { group: string; modules: number }[];
}

function groupOf(url: string, stack: readonly string[]): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm < 0) return url.includes('/dist/') || url.includes('/bin/') ? 'ckv (dist, bin)' : 'other';
  const parts = url.slice(nm + '/node_modules/'.length).split('/');
  const name = parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? '');
  if (name.startsWith('@grpc/') || name === 'protobufjs' || name.startsWith('@protobufjs/') || name === 'long' || name === 'lodash.camelcase' || name === '@js-sdsl/ordered-map') {
    return 'gRPC + protobufjs (@grpc/*, protobufjs, @protobufjs/*, long, ...)';
  }
  if (name === 'level' || name === 'classic-level' || name.includes('level') || name === 'node-gyp-build' || name === 'maybe-combine-errors' || name === 'module-error') {
    return 'LevelDB (level, classic-level, abstract-level, ...)';
  }
  if (name === 'commander') return 'commander';
  if (stack.includes(name)) return 'libp2p stack: direct deps (libp2p, @libp2p/*, @chainsafe/*, ...)';
  return 'other packages (mostly libp2p transitive deps)';
}

async function measureModuleCensus(ctx: Ctx): Promise<ModuleCensus | undefined> {
  const config = {
    polyfill: new URL('../src/util/polyfill.js', import.meta.url).href,
    main: new URL('../src/cli/main.js', import.meta.url).href,
    out: join(ctx.work, 'census.txt'),
  };
  const r = await runTimed(tracker, nodeExe, ['--input-type=module', '-e', censusScript], {
    env: { ...ctx.env, CKV_BENCH_CENSUS: JSON.stringify(config) },
    cwd: repoRoot,
    timeoutMs: 60_000,
    stdoutBytesMax: 16 * 1024 * 1024,
  });
  if (r.code !== 0) {
    log(`    module census failed (skipped): ${r.stderr.trim().split('\n')[0] ?? r.code}`);
    return undefined;
  }
  const { esm, cjs } = JSON.parse(r.stdout.toString('utf8')) as { esm: string[]; cjs: string[] };
  const all = new Set([...esm, ...cjs].map((u) => decodeURI(u)));
  const stack = libp2pStack();
  const counts = new Map<string, number>();
  const packages = new Set<string>();
  for (const url of all) {
    const group = groupOf(url, stack);
    counts.set(group, (counts.get(group) ?? 0) + 1);
    const nm = url.lastIndexOf('/node_modules/');
    if (nm >= 0) {
      const parts = url.slice(nm + '/node_modules/'.length).split('/');
      packages.add(parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? ''));
    }
  }
  return {
    esmModules: esm.length,
    cjsModules: cjs.length,
    packages: packages.size,
    packageNames: [...packages].sort(),
    byGroup: [...counts].map(([group, modules]) => ({ group, modules })).sort((a, b) => b.modules - a.modules),
  };
}

interface PhaseBreakdown {
  steps: { label: string; medianMs: number }[];
  wallMedianMs: number;
  inProcessMedianMs: number;
}

/**
 * The heavy packages, imported one group at a time before cli/main.js so that each group's
 * cost shows on its own. Only groups the CLI really loads (per the census) are included.
 */
function phaseSteps(loaded: ReadonlySet<string> | undefined): { label: string; urls: string[] }[] {
  const groups: { label: string; packages: string[] }[] = [
    { label: 'import @grpc/grpc-js', packages: ['@grpc/grpc-js'] },
    { label: 'import @grpc/proto-loader (+ protobufjs, descriptor ext)', packages: ['@grpc/proto-loader'] },
    { label: 'import commander', packages: ['commander'] },
    { label: 'import level (classic-level, native addon)', packages: ['level'] },
    { label: 'import @grpc/reflection', packages: ['@grpc/reflection'] },
  ];
  const stack = libp2pStack().filter((name) => !loaded || loaded.has(name));
  groups.push({ label: `import libp2p stack (its direct deps the CLI loads: ${stack.length})`, packages: stack });
  return groups.flatMap(({ label, packages }) => {
    const wanted = packages.filter((name) => !loaded || loaded.has(name));
    const urls = wanted.flatMap((name) => {
      try {
        return [import.meta.resolve(name)];
      } catch {
        return [];
      }
    });
    return urls.length > 0 ? [{ label, urls }] : [];
  });
}

async function measurePhases(ctx: Ctx, key: string, loaded: ReadonlySet<string> | undefined): Promise<PhaseBreakdown> {
  const config = {
    polyfill: new URL('../src/util/polyfill.js', import.meta.url).href,
    steps: phaseSteps(loaded),
    main: new URL('../src/cli/main.js', import.meta.url).href,
    client: new URL('../src/control/client.js', import.meta.url).href,
    socket: ctx.socket,
    key,
  };
  const env = { ...ctx.env, CKV_BENCH_PHASES: JSON.stringify(config) };
  const perStep = new Map<string, number[]>();
  const walls: number[] = [];
  const inProcess: number[] = [];
  for (let run = 0; run < phaseRuns + 1; run++) {
    const r = await runTimed(tracker, nodeExe, ['--input-type=module', '-e', phaseScript], { env, cwd: repoRoot, timeoutMs: 30_000 });
    checkRun(r, 'phase child');
    if (run === 0) continue; // warm-up
    const marks = JSON.parse(r.stdout.toString('utf8')) as [string, number][];
    let previous = 0;
    for (const [label, at] of marks) {
      const list = perStep.get(label) ?? [];
      list.push(at - previous);
      perStep.set(label, list);
      previous = at;
    }
    walls.push(r.wallMs);
    inProcess.push(previous);
  }
  const steps = [...perStep].map(([label, values]) => ({ label, medianMs: median(values) }));
  return { steps, wallMedianMs: median(walls), inProcessMedianMs: median(inProcess) };
}

/** What each import costs alone in a fresh process: the current heavy ones and lighter alternatives. */
const importAlternatives: { label: string; specifiers: string[] }[] = [
  { label: '@grpc/grpc-js', specifiers: ['@grpc/grpc-js'] },
  { label: '@grpc/proto-loader (incl. full protobufjs)', specifiers: ['@grpc/proto-loader'] },
  { label: 'level', specifiers: ['level'] },
  { label: 'commander', specifiers: ['commander'] },
  { label: 'node:http2 + node:net (what the CLI\'s gRPC client uses now)', specifiers: ['node:http2', 'node:net'] },
];

const importScript = String.raw`
const t0 = performance.now();
for (const url of JSON.parse(process.env.CKV_BENCH_IMPORTS)) await import(url);
process.stdout.write(String(performance.now() - t0));
`;

interface ImportCost {
  label: string;
  medianMs: number | undefined;
  /** Whether `ckv get` loads it today (from the census), when known. */
  loadedByCli: boolean | undefined;
}

async function measureImportAlternatives(ctx: Ctx, loaded: ReadonlySet<string> | undefined): Promise<ImportCost[]> {
  const resolved = importAlternatives.map(({ label, specifiers }) => {
    try {
      return { label, urls: specifiers.map((s) => (s.startsWith('node:') ? s : import.meta.resolve(s))) };
    } catch {
      return { label, urls: undefined }; // not installed here (e.g. not hoisted)
    }
  });
  const samples = new Map<string, number[]>();
  for (let run = 0; run < phaseRuns + 1; run++) {
    for (const { label, urls } of resolved) {
      if (!urls) continue;
      const env = { ...ctx.env, CKV_BENCH_IMPORTS: JSON.stringify(urls) };
      const r = await runTimed(tracker, nodeExe, ['--input-type=module', '-e', importScript], { env, cwd: repoRoot, timeoutMs: 30_000 });
      if (r.code !== 0 || r.timedOut) {
        log(`    import ${label} failed (skipped): ${r.stderr.trim().split('\n').find((line) => line.includes('Error')) ?? r.code}`);
        continue;
      }
      if (run === 0) continue; // warm-up
      const list = samples.get(label) ?? [];
      list.push(Number(r.stdout.toString('utf8')));
      samples.set(label, list);
    }
  }
  return importAlternatives.map(({ label, specifiers }) => {
    const list = samples.get(label);
    const packages = specifiers.filter((s) => !s.startsWith('node:')).map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
    const alternative = label.startsWith('alternative');
    const loadedByCli = alternative || loaded === undefined || packages.length === 0 ? undefined : packages.every((name) => loaded.has(name));
    return { label, medianMs: list ? median(list) : undefined, loadedByCli };
  });
}

interface CpuBreakdown {
  owners: { owner: string; medianMs: number }[];
  profiledMedianMs: number;
  wallMedianMs: number;
}

async function measureCpuProfile(ctx: Ctx, key: string): Promise<CpuBreakdown> {
  const perOwner = new Map<string, number[]>();
  const totals: number[] = [];
  const walls: number[] = [];
  const marker = pathToFileURL(repoRoot).href;
  for (let run = 0; run < cpuProfileRuns; run++) {
    const dir = join(ctx.work, `cpuprof-${run}`);
    const r = await runTimed(
      tracker,
      nodeExe,
      ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '250', ckvBin, '--socket', ctx.socket, 'get', key],
      { env: ctx.env, cwd: repoRoot, timeoutMs: 30_000 },
    );
    checkRun(r, 'ckv get --cpu-prof');
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const { byOwner, totalMs } = attributeProfile(profile, marker);
    for (const owner of new Set([...perOwner.keys(), ...byOwner.keys()])) {
      const list = perOwner.get(owner) ?? new Array<number>(run).fill(0);
      list.push(byOwner.get(owner) ?? 0);
      perOwner.set(owner, list);
    }
    for (const list of perOwner.values()) if (list.length < run + 1) list.push(0);
    totals.push(totalMs);
    walls.push(r.wallMs);
  }
  const owners = [...perOwner]
    .map(([owner, values]) => ({ owner, medianMs: median(values) }))
    .sort((a, b) => b.medianMs - a.medianMs);
  return { owners, profiledMedianMs: median(totals), wallMedianMs: median(walls) };
}

// ---------------------------------------------------------------------------------------
// 2. Put throughput

interface Workload {
  keys: string[];
  values: Uint8Array[];
}

function workload(tag: string, count: number): Workload {
  const pool = randomBytes(count * valueBytes);
  const keys: string[] = [];
  const values: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    keys.push(`bench:${tag}:${String(i).padStart(6, '0')}`);
    values.push(new Uint8Array(pool.buffer, pool.byteOffset + i * valueBytes, valueBytes));
  }
  return { keys, values };
}

/** Runs task(0..n-1) with at most `width` pending at once; the first failure stops new tasks. */
async function inFlight(n: number, width: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < n) {
      const i = next++;
      try {
        await task(i);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

async function timedRate(count: number, fn: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fn();
  return count / ((performance.now() - started) / 1000);
}

/** One unary Put call per put. */
async function nodePuts(client: ControlClient, w: Workload, width: number): Promise<number> {
  return timedRate(w.keys.length, () => inFlight(w.keys.length, width, (i) => client.put(w.keys[i]!, w.values[i]!)));
}

/** Puts on one PutPipeline stream, `width` unanswered at a time, each acknowledged on its own. */
async function pipelinePuts(client: ControlClient, w: Workload, width: number): Promise<number> {
  return timedRate(w.keys.length, async () => {
    const pipeline = client.pipeline();
    try {
      await inFlight(w.keys.length, width, (i) => pipeline.put(w.keys[i]!, w.values[i]!));
    } finally {
      await pipeline.close();
    }
  });
}

/** PutMany calls of putManyBatch puts, 4 calls in flight. */
async function putManyPuts(client: ControlClient, w: Workload): Promise<number> {
  const calls = Math.ceil(w.keys.length / putManyBatch);
  return timedRate(w.keys.length, () =>
    inFlight(calls, 4, async (c) => {
      const puts = [];
      for (let i = c * putManyBatch; i < Math.min((c + 1) * putManyBatch, w.keys.length); i++) puts.push({ key: w.keys[i]!, value: w.values[i]! });
      const { results } = await client.putMany(puts);
      const refused = results.find((r) => r.error);
      if (refused) throw new BenchFailure(`PutMany refused a put: ${refused.error}`);
    }),
  );
}

async function rawLevelPuts(dir: string, w: Workload): Promise<number> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    return await timedRate(w.keys.length, async () => {
      for (let start = 0; start < w.keys.length; start += levelBatchOps) {
        const ops = [];
        for (let i = start; i < Math.min(start + levelBatchOps, w.keys.length); i++) {
          ops.push({ type: 'put' as const, key: w.keys[i]!, value: w.values[i]! });
        }
        await db.batch(ops);
      }
    });
  } finally {
    await db.close();
  }
}

/** The node's storage layout alone: LevelStore.write (entry + key index + HLC meta), 256 a batch. */
async function levelStorePuts(dir: string, w: Workload): Promise<number> {
  const store = new LevelStore(dir);
  await store.open();
  try {
    const wall = Date.now();
    return await timedRate(w.keys.length, async () => {
      for (let start = 0; start < w.keys.length; start += levelBatchOps) {
        const entries: Entry[] = [];
        for (let i = start; i < Math.min(start + levelBatchOps, w.keys.length); i++) {
          entries.push({ key: w.keys[i]!, value: w.values[i]!, version: { hlc: hlcPack(wall, i % 0xffff), node: benchNodeId } });
        }
        await store.write(entries, entries.at(-1)!.version.hlc);
      }
    });
  } finally {
    await store.close();
  }
}

/** The node's write path without gRPC: Replica.put (group commit) on a LevelStore, `width` in flight. */
async function replicaPuts(dir: string, w: Workload, width: number): Promise<number> {
  const store = new LevelStore(dir);
  await store.open();
  try {
    const replica = await Replica.open({ nodeId: benchNodeId, store, wallClockMs: Date.now });
    const rate = await timedRate(w.keys.length, () => inFlight(w.keys.length, width, (i) => replica.put(w.keys[i]!, w.values[i]!)));
    await replica.close();
    return rate;
  } finally {
    await store.close();
  }
}

/** gRPC round trips with almost no work behind them: Get of a key that does not exist. */
async function grpcCeiling(client: ControlClient, count: number, width: number): Promise<number> {
  return timedRate(count, () => inFlight(count, width, () => client.get('bench:absent')));
}

interface Throughput {
  /** PutPipeline: the headline "many in flight" number. */
  pipelineRates: number[];
  putManyRates: number[];
  /** One unary Put per put. */
  nodeRates: number[];
  levelRates: number[];
  storeRates: number[];
  replicaRates: number[];
  grpcRates: number[];
  serialRates: number[];
}

async function measureThroughput(ctx: Ctx): Promise<Throughput> {
  const { puts, inflight, reps, serialPuts } = ctx.options;
  const out: Throughput = { pipelineRates: [], putManyRates: [], nodeRates: [], levelRates: [], storeRates: [], replicaRates: [], grpcRates: [], serialRates: [] };
  await nodePuts(ctx.client, workload('warm', warmupPuts), inflight);
  await pipelinePuts(ctx.client, workload('warm-pipe', warmupPuts), pipelineWindow);
  for (let rep = 0; rep < reps; rep++) {
    const w = workload(`r${rep}`, puts);
    out.levelRates.push(await rawLevelPuts(join(ctx.work, `level-${rep}`), w));
    rmSync(join(ctx.work, `level-${rep}`), { recursive: true, force: true });
    out.pipelineRates.push(await pipelinePuts(ctx.client, { keys: w.keys.map((k) => `${k}:pipe`), values: w.values }, pipelineWindow));
    out.nodeRates.push(await nodePuts(ctx.client, w, inflight));
    out.putManyRates.push(await putManyPuts(ctx.client, { keys: w.keys.map((k) => `${k}:many`), values: w.values }));
    out.storeRates.push(await levelStorePuts(join(ctx.work, `store-${rep}`), w));
    rmSync(join(ctx.work, `store-${rep}`), { recursive: true, force: true });
    out.replicaRates.push(await replicaPuts(join(ctx.work, `replica-${rep}`), w, inflight));
    rmSync(join(ctx.work, `replica-${rep}`), { recursive: true, force: true });
    out.grpcRates.push(await grpcCeiling(ctx.client, puts, inflight));
    log(`  rep ${rep + 1}/${reps}: PutPipeline ${formatInt(out.pipelineRates.at(-1)!)}/s, Put ${formatInt(out.nodeRates.at(-1)!)}/s, PutMany ${formatInt(out.putManyRates.at(-1)!)}/s, raw level ${formatInt(out.levelRates.at(-1)!)}/s`);
  }
  for (let rep = 0; rep < Math.min(reps, 3); rep++) {
    out.serialRates.push(await nodePuts(ctx.client, workload(`s${rep}`, serialPuts), 1));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// 3. Memory for a maximal value

interface BigValue {
  valueBytes: number;
  nodeRssBefore: number;
  nodeHwmBefore: number;
  peakReset: boolean;
  nodePeakPut: number;
  nodePeakGet: number;
  nodeRssAfter: number;
  cliPutPeak: number;
  cliGetPeak: number;
  cliPeakSource: string;
  baselinePeak: number;
  putWallMs: number;
  getWallMs: number;
  identical: boolean;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Runs a CLI command and returns its peak RSS (bytes) and wall time. */
async function runWithPeak(ctx: Ctx, args: readonly string[], what: string): Promise<{ peak: number; wallMs: number }> {
  const runOptions = { env: ctx.env, cwd: repoRoot, timeoutMs: 180_000 };
  if (ctx.gnuTime) {
    const report = join(ctx.work, 'time.txt');
    const r = await runTimed(tracker, '/usr/bin/time', ['-v', '-o', report, nodeExe, ...args], runOptions);
    checkRun(r, what);
    const peak = parseGnuTimeMaxRss(readFileSync(report, 'utf8'));
    if (peak === undefined) throw new Error(`${what}: no "Maximum resident set size" in the /usr/bin/time report`);
    return { peak, wallMs: r.wallMs };
  }
  const r = await runTimed(tracker, nodeExe, args, { ...runOptions, pollPeakRss: true });
  checkRun(r, what);
  return { peak: r.polledPeakRssBytes ?? Number.NaN, wallMs: r.wallMs };
}

async function measureBigValue(ctx: Ctx): Promise<BigValue> {
  const size = ctx.options.bigMib * 1024 * 1024;
  const input = join(ctx.work, 'big.in');
  const output = join(ctx.work, 'big.out');
  const fd = openSync(input, 'w');
  try {
    const chunk = 1024 * 1024;
    for (let written = 0; written < size; written += chunk) writeSync(fd, randomBytes(Math.min(chunk, size - written)));
  } finally {
    closeSync(fd);
  }
  const baseline = await runWithPeak(ctx, ['-e', ''], "node -e ''");
  const before = readProcStatus(ctx.nodePid);
  if (!before || before.VmRSS === undefined || before.VmHWM === undefined) throw new Error('cannot read the node’s /proc status');
  const peakReset = resetPeakRss(ctx.nodePid);
  const put = await runWithPeak(ctx, [ckvBin, '--socket', ctx.socket, 'put', 'bench:big', '-f', input], 'ckv put -f');
  const afterPut = readProcStatus(ctx.nodePid);
  if (peakReset) resetPeakRss(ctx.nodePid);
  const get = await runWithPeak(ctx, [ckvBin, '--socket', ctx.socket, 'get', 'bench:big', '-o', output], 'ckv get -o');
  const afterGet = readProcStatus(ctx.nodePid);
  const [a, b] = await Promise.all([sha256File(input), sha256File(output)]);
  rmSync(input, { force: true });
  rmSync(output, { force: true });
  return {
    valueBytes: size,
    nodeRssBefore: before.VmRSS,
    nodeHwmBefore: before.VmHWM,
    peakReset,
    nodePeakPut: afterPut?.VmHWM ?? Number.NaN,
    nodePeakGet: afterGet?.VmHWM ?? Number.NaN,
    nodeRssAfter: afterGet?.VmRSS ?? Number.NaN,
    cliPutPeak: put.peak,
    cliGetPeak: get.peak,
    cliPeakSource: ctx.gnuTime ? '/usr/bin/time -v' : 'polled VmHWM (lower bound)',
    baselinePeak: baseline.peak,
    putWallMs: put.wallMs,
    getWallMs: get.wallMs,
    identical: a === b,
  };
}

// ---------------------------------------------------------------------------------------
// Report

function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'MISS';
}

function report(
  ctx: Ctx,
  readyMs: number,
  cli: CliLatency,
  tp: Throughput,
  big: BigValue,
): { table: string; getMedian: number; ratio: number } {
  const getMedian = median(cli.getMs);
  const baseMedian = median(cli.baselineMs);
  const versionMedian = median(cli.versionMs);
  const nodeRate = median(tp.pipelineRates);
  const levelRate = median(tp.levelRates);
  const ratio = nodeRate / levelRate;
  const copies = (bytes: number): string => `${(bytes / big.valueBytes).toFixed(2)}× value`;
  const mib = formatMiB;
  const peakNote = big.peakReset ? 'VmHWM reset before the command' : 'cumulative VmHWM (reset refused)';
  const { runs, puts, inflight, reps, serialPuts } = ctx.options;
  const rows: string[][] = [
    ['1', `\`ckv get\` wall time, median (${runs} runs)`, formatMs(getMedian), `\`node -e ''\` ${formatMs(baseMedian)}`, `+${formatMs(getMedian - baseMedian)}`, `< ${getTargetMs} ms`, verdict(getMedian < getTargetMs)],
    ['1', '`ckv get` wall time, p90', formatMs(quantile(cli.getMs, 0.9)), `\`node -e ''\` ${formatMs(quantile(cli.baselineMs, 0.9))}`, `+${formatMs(quantile(cli.getMs, 0.9) - quantile(cli.baselineMs, 0.9))}`, '', ''],
    ['1', '`ckv --version` wall time, median (all imports, no RPC)', formatMs(versionMedian), `\`node -e ''\` ${formatMs(baseMedian)}`, `+${formatMs(versionMedian - baseMedian)}`, '', 'context'],
    ['2', `puts/s, PutPipeline, ${pipelineWindow} in flight (${formatInt(puts)} × ${valueBytes} B, median of ${reps})`, formatInt(nodeRate), `raw level batch(${levelBatchOps}) ${formatInt(levelRate)}`, formatPercent(ratio), `>= ${formatPercent(throughputTargetRatio)}`, verdict(ratio >= throughputTargetRatio)],
    ['2', `puts/s, one Put call per put, ${inflight} in flight`, formatInt(median(tp.nodeRates)), `raw level ${formatInt(levelRate)}`, formatPercent(median(tp.nodeRates) / levelRate), '', 'context'],
    ['2', `puts/s, PutMany of ${putManyBatch}, 4 calls in flight`, formatInt(median(tp.putManyRates)), `raw level ${formatInt(levelRate)}`, formatPercent(median(tp.putManyRates) / levelRate), '', 'context'],
    ['2', `puts/s, 1 in flight (${formatInt(serialPuts)} puts, median of ${tp.serialRates.length})`, formatInt(median(tp.serialRates)), `raw level ${formatInt(levelRate)}`, formatPercent(median(tp.serialRates) / levelRate), '', 'context'],
    ['2', `diag: LevelStore.write in process, batch(${levelBatchOps})`, formatInt(median(tp.storeRates)), `raw level ${formatInt(levelRate)}`, formatPercent(median(tp.storeRates) / levelRate), '', 'diagnostic'],
    ['2', `diag: Replica.put in process, ${inflight} in flight`, formatInt(median(tp.replicaRates)), `raw level ${formatInt(levelRate)}`, formatPercent(median(tp.replicaRates) / levelRate), '', 'diagnostic'],
    ['2', `diag: gRPC calls/s with no work behind them (GetStream of a missing key), ${inflight} in flight`, formatInt(median(tp.grpcRates)), `raw level ${formatInt(levelRate)}`, formatPercent(median(tp.grpcRates) / levelRate), '', 'diagnostic'],
    ['3', `node peak RSS during \`ckv put -f\` (${mib(big.valueBytes, 0)})`, mib(big.nodePeakPut), `node RSS before ${mib(big.nodeRssBefore)}`, `+${copies(big.nodePeakPut - big.nodeRssBefore)}`, '', peakNote],
    ['3', 'node peak RSS during `ckv get -o`', mib(big.nodePeakGet), `node RSS before ${mib(big.nodeRssBefore)}`, `+${copies(big.nodePeakGet - big.nodeRssBefore)}`, '', peakNote],
    ['3', 'node RSS after both / VmHWM before (since start)', mib(big.nodeRssAfter), `VmHWM before ${mib(big.nodeHwmBefore)}`, '', '', 'context'],
    ['3', '`ckv put -f` CLI peak RSS', mib(big.cliPutPeak), `\`node -e ''\` ${mib(big.baselinePeak)}`, `+${copies(big.cliPutPeak - big.baselinePeak)}`, '', big.cliPeakSource],
    ['3', '`ckv get -o` CLI peak RSS', mib(big.cliGetPeak), `\`node -e ''\` ${mib(big.baselinePeak)}`, `+${copies(big.cliGetPeak - big.baselinePeak)}`, '', big.cliPeakSource],
    ['3', 'big value round trip (SHA-256 of FILE = FILE2)', big.identical ? 'identical' : 'DIFFERENT', '', `put ${formatMs(big.putWallMs, 0)}, get ${formatMs(big.getWallMs, 0)}`, 'identical', big.identical ? 'PASS' : 'FAIL'],
    ['-', 'node start to first successful Status', formatMs(readyMs, 0), '', '', '', 'context'],
  ];
  const align: Align[] = ['left', 'left', 'right', 'left', 'right', 'left', 'left'];
  const table = markdownTable(['#', 'measurement', 'result', 'baseline (same run)', 'vs baseline', 'target', 'verdict'], rows, align);
  return { table, getMedian, ratio };
}

function phaseTable(phases: PhaseBreakdown): string {
  const rows = phases.steps.map((s) => [s.label, formatMs(s.medianMs), formatPercent(s.medianMs / phases.wallMedianMs)]);
  rows.push(['(in-process total, process start to exit handler)', formatMs(phases.inProcessMedianMs), formatPercent(phases.inProcessMedianMs / phases.wallMedianMs)]);
  rows.push(['(outside the process clock: spawn, teardown)', formatMs(phases.wallMedianMs - phases.inProcessMedianMs), formatPercent((phases.wallMedianMs - phases.inProcessMedianMs) / phases.wallMedianMs)]);
  rows.push(['wall time of the step-by-step child (spawn to exit)', formatMs(phases.wallMedianMs), '100%']);
  return markdownTable([`step (median of ${phaseRuns} runs)`, 'time', 'of wall'], rows, ['left', 'right', 'right']);
}

function censusTable(census: ModuleCensus): string {
  const rows = census.byGroup.map((g) => [g.group, formatInt(g.modules)]);
  rows.push([`total: ${census.esmModules} ES modules + ${census.cjsModules} CommonJS files, from ${census.packages} packages`, formatInt(census.esmModules + census.cjsModules)]);
  return markdownTable(['modules loaded by `import cli/main.js` (what every ckv command pays)', 'files'], rows, ['left', 'right']);
}

function importTable(costs: ImportCost[]): string {
  const rows = costs.map((c) => [
    c.label,
    c.medianMs === undefined ? 'not available' : formatMs(c.medianMs),
    c.loadedByCli === undefined ? '-' : c.loadedByCli ? 'yes' : 'no',
  ]);
  return markdownTable([`import alone in a fresh process (median of ${phaseRuns})`, 'time', 'loaded by `ckv get` today'], rows, ['left', 'right', 'left']);
}

function cpuTable(cpu: CpuBreakdown): string {
  const rows = cpu.owners
    .filter((o) => o.medianMs >= 0.5)
    .map((o) => [o.owner, formatMs(o.medianMs), formatPercent(o.medianMs / cpu.profiledMedianMs)]);
  rows.push(['(profiled span, median)', formatMs(cpu.profiledMedianMs), '100%']);
  rows.push(['(wall time of `ckv get` under --cpu-prof, median)', formatMs(cpu.wallMedianMs), '']);
  return markdownTable([`sampled time by package responsible (median of ${cpuProfileRuns} \`ckv get --cpu-prof\`)`, 'time', 'of profile'], rows, ['left', 'right', 'right']);
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const loadAtStart = loadavg()[0]!;
  log(`bench/control-api: starting a node (node ${process.version}, ${process.platform})`);
  const { ctx, readyMs } = await startNode(options);
  let nodeEnd = 'not stopped';
  try {
    const key = 'bench:get';
    const value = Buffer.from(randomBytes(50).toString('hex'), 'utf8');
    await ctx.client.put(key, value);

    log(`1/3: ckv get latency (${options.runs} runs)`);
    const cli = await measureCliLatency(ctx, key, value);
    const profile = options.profile === 'on' || (options.profile === 'auto' && median(cli.getMs) >= getTargetMs);
    let phases: PhaseBreakdown | undefined;
    let cpu: CpuBreakdown | undefined;
    let imports: ImportCost[] | undefined;
    let census: ModuleCensus | undefined;
    if (profile) {
      log(`    profiling ckv get (${phaseRuns} step-by-step runs, ${cpuProfileRuns} --cpu-prof runs, import costs)`);
      census = await measureModuleCensus(ctx);
      const loaded = census ? new Set(census.packageNames) : undefined;
      phases = await measurePhases(ctx, key, loaded);
      cpu = await measureCpuProfile(ctx, key);
      imports = await measureImportAlternatives(ctx, loaded);
    }

    log(`2/3: put throughput (${options.reps} repeats of ${options.puts} puts)`);
    const tp = await measureThroughput(ctx);

    log(`3/3: memory for a ${options.bigMib} MiB value`);
    const big = await measureBigValue(ctx);

    const nodeStatus = readProcStatus(ctx.nodePid);
    nodeEnd = await stopNode(ctx);
    const { table, getMedian, ratio } = report(ctx, readyMs, cli, tp, big);
    const out: string[] = ['', '## bench/control-api', '', table, ''];
    if (phases) out.push('### (1) where `ckv get` spends its time: step by step', '', phaseTable(phases), '');
    if (cpu) out.push('### (1) `ckv get` under --cpu-prof', '', cpuTable(cpu), '');
    if (census) out.push('### (1) what `ckv get` loads', '', censusTable(census), '');
    if (imports) out.push('### (1) import costs, current and alternatives', '', importTable(imports), '');
    out.push(`node: pid ${ctx.nodePid}, ${nodeEnd}; /usr/bin/time -v ${ctx.gnuTime ? 'used' : 'not available'}`);
    out.push(`machine: ${availableParallelism()} CPUs, load average (1 min) ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end`);
    process.stdout.write(out.join('\n') + '\n');

    if (options.json) {
      writeFileSync(
        options.json,
        JSON.stringify(
          {
            bench: 'control-api',
            node: process.version,
            options,
            readyMs,
            cli: { ...cli, medianMs: getMedian, p90Ms: quantile(cli.getMs, 0.9), targetMs: getTargetMs },
            phases,
            cpu,
            imports,
            census,
            throughput: { ...tp, ratio, target: throughputTargetRatio },
            bigValue: big,
            nodeStatusAtEnd: nodeStatus,
            machine: { cpus: availableParallelism(), loadAtStart, loadAtEnd: loadavg()[0] },
          },
          null,
          2,
        ) + '\n',
      );
      log(`wrote ${options.json}`);
    }
    return big.identical ? 0 : 1;
  } catch (error) {
    const state = ctx.node.exitCode !== null || ctx.node.signalCode !== null ? `the node had exited (code ${ctx.node.exitCode}, signal ${ctx.node.signalCode})` : 'the node was still running';
    log(`bench failed; ${state}; node log tail:\n${tail(ctx.nodeLog)}`);
    throw error;
  } finally {
    if (nodeEnd === 'not stopped') await stopNode(ctx).catch(() => undefined);
    removeTempDirs();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof BenchFailure ? 1 : 2;
    tracker.killAllNow();
    removeTempDirs();
  },
);
