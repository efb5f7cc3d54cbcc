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
 * Setup. One real node started by the harness (harness/node-process.ts): `node bin/ckv.js
 * node start --data-dir TMP/data` on loopback only (--no-mdns, --http off, /tcp/0), ready
 * once its socket accepts connections and answers Status (20 s deadline, no fixed sleeps).
 * CKV_SOCKET and CKV_DATA_DIR point into TMP for every child, so nothing touches the user's
 * data. The harness cleanup registry removes every process and temp dir on every exit path.
 *
 * 1. `ckv get` latency: wall time from spawn() of `node bin/ckv.js --socket S get KEY` to
 *    its exit, `--runs` (20) runs after 2 warm-up runs; median and p90. Baseline: `node -e ''`
 *    the same way, interleaved run by run. Target (issue): median < 150 ms.
 * 2. Put throughput: one ControlClient, `--puts` (20,000) puts of 100-byte random values
 *    on one PutPipeline stream (each put acknowledged on its own, 1,024 in flight: a full
 *    storage batch); puts/s, median of `--reps` (5) repeats (after a 1,000-put warm-up; each
 *    repeat writes fresh keys). For context, the same puts as PutMany calls of 1,000 (4 in
 *    flight) and as one unary Put call each (`--inflight`, 256, in flight). Baseline: raw
 *    `level` with the same keys and values, db.batch of 256 at a time, fresh dir per repeat,
 *    interleaved with the node's repeats. Target: node >= 50% of raw level.
 * 3. Memory for a 64 MiB value (`--big-mib`): `ckv put KEY -f FILE` then `ckv get KEY -o
 *    FILE2`, files compared by SHA-256. The node's VmRSS from /proc/<pid>/status before;
 *    VmHWM is reset (clear_refs 5) before each command, so the peak read after it is that
 *    command's own (if the reset is refused, the cumulative peak is reported and marked).
 *    The CLI processes' peak RSS from `/usr/bin/time -v` (else polled VmHWM, a lower bound).
 *    Baselines: the node's RSS before, and `node -e ''`'s peak RSS.
 *
 * Verdicts: PASS/MISS against the targets; a MISS is reported, not fatal (exit 0). A wrong
 * answer (get output differs, round trip differs, a command fails) exits 1; a bench that
 * cannot run (node does not start, ...) exits 2. The CPU count and load average are printed:
 * on a shared machine, compare ratios to the same-run baselines, not absolute numbers.
 *
 * Runtime: about 3-5 minutes with the defaults; `--quick` (5 runs, 5,000 puts, 2 repeats,
 * 16 MiB) about a minute, to check that it works, not for figures.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/control-api.js [--quick] [--json FILE]
 *      [--runs N] [--puts N] [--inflight N] [--reps N] [--big-mib N]
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Level } from 'level';
import type { ControlClient } from '../src/control/client.js';
import { ckvBin, cleanupNow, exitOnSignals, repoRoot, startNode, tempDir, type NodeProcess } from '../harness/index.js';
import { ckvChildEnv } from '../src/util/child-env.js';
import { assertNodeBundleFresh } from './lib/node-code.js';
import { gnuTimeAvailable, parseGnuTimeMaxRss, readProcStatus, resetPeakRss, runTimed, type RunResult } from './lib/process.js';
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

interface Options {
  runs: number;
  puts: number;
  inflight: number;
  reps: number;
  bigMib: number;
  json: string | undefined;
}

const usage = 'usage: node dist/bench/control-api.js [--quick] [--json FILE] [--runs N] [--puts N] [--inflight N] [--reps N] [--big-mib N]';

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { runs: 20, puts: 20_000, inflight: 256, reps: 5, bigMib: 64, json: undefined };
  const positive = (name: string, text: string | undefined): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} needs a positive integer\n${usage}`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '--quick':
        Object.assign(options, { runs: 5, puts: 5000, reps: 2, bigMib: 16 });
        break;
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
      case '--big-mib':
        options.bigMib = positive(arg, argv[++i]);
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

const nodeExe = process.execPath;

function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

interface Ctx {
  options: Options;
  work: string;
  socket: string;
  env: NodeJS.ProcessEnv;
  node: NodeProcess;
  nodePid: number;
  client: ControlClient;
  gnuTime: boolean;
}

// ---------------------------------------------------------------------------------------
// Node lifecycle

async function startBenchNode(options: Options): Promise<{ ctx: Ctx; readyMs: number }> {
  assertNodeBundleFresh();
  const work = tempDir('ckvb-');
  const dataDir = join(work, 'data');
  const socket = join(dataDir, 'ckv.sock');
  const env = { CKV_SOCKET: socket, CKV_DATA_DIR: dataDir };
  const node = await startNode({ name: 'the node', dataDir, env, logFile: join(work, 'node.log'), readyIntervalMs: 10 });
  const readyMs = node.readyAtMs - node.spawnedAtMs;
  const ctx: Ctx = { options, work, socket, env: ckvChildEnv(process.env, env), node, nodePid: node.pid, client: node.client, gnuTime: gnuTimeAvailable() };
  return { ctx, readyMs };
}

async function stopNode(ctx: Ctx): Promise<string> {
  try {
    const end = await ctx.node.stop(10_000);
    return `exited (code ${end.code}, signal ${end.signal})`;
  } catch {
    return 'killed (did not stop within 10 s of SIGTERM)';
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
  baselineMs: number[];
}

async function measureCliLatency(ctx: Ctx, key: string, expected: Buffer): Promise<CliLatency> {
  const { runs } = ctx.options;
  const result: CliLatency = { getMs: [], baselineMs: [] };
  const runOptions = { env: ctx.env, cwd: repoRoot, timeoutMs: 30_000 };
  const get = async (): Promise<number> => {
    const r = await runTimed(nodeExe, [ckvBin, '--socket', ctx.socket, 'get', key], runOptions);
    checkRun(r, 'ckv get');
    if (!r.stdout.equals(expected)) throw new BenchFailure(`ckv get printed ${JSON.stringify(r.stdout.toString())}, expected ${JSON.stringify(expected.toString())}`);
    return r.wallMs;
  };
  const baseline = async (): Promise<number> => {
    const r = await runTimed(nodeExe, ['-e', ''], runOptions);
    checkRun(r, "node -e ''");
    return r.wallMs;
  };
  for (let i = 0; i < 2; i++) {
    await baseline();
    await get();
  }
  for (let i = 0; i < runs; i++) {
    result.baselineMs.push(await baseline());
    result.getMs.push(await get());
  }
  return result;
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

interface Throughput {
  /** PutPipeline: the headline "many in flight" number. */
  pipelineRates: number[];
  putManyRates: number[];
  /** One unary Put per put. */
  nodeRates: number[];
  levelRates: number[];
}

async function measureThroughput(ctx: Ctx): Promise<Throughput> {
  const { puts, inflight, reps } = ctx.options;
  const out: Throughput = { pipelineRates: [], putManyRates: [], nodeRates: [], levelRates: [] };
  await nodePuts(ctx.client, workload('warm', warmupPuts), inflight);
  await pipelinePuts(ctx.client, workload('warm-pipe', warmupPuts), pipelineWindow);
  for (let rep = 0; rep < reps; rep++) {
    const w = workload(`r${rep}`, puts);
    out.levelRates.push(await rawLevelPuts(join(ctx.work, `level-${rep}`), w));
    rmSync(join(ctx.work, `level-${rep}`), { recursive: true, force: true });
    out.pipelineRates.push(await pipelinePuts(ctx.client, { keys: w.keys.map((k) => `${k}:pipe`), values: w.values }, pipelineWindow));
    out.nodeRates.push(await nodePuts(ctx.client, w, inflight));
    out.putManyRates.push(await putManyPuts(ctx.client, { keys: w.keys.map((k) => `${k}:many`), values: w.values }));
    log(`  rep ${rep + 1}/${reps}: PutPipeline ${formatInt(out.pipelineRates.at(-1)!)}/s, Put ${formatInt(out.nodeRates.at(-1)!)}/s, PutMany ${formatInt(out.putManyRates.at(-1)!)}/s, raw level ${formatInt(out.levelRates.at(-1)!)}/s`);
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
    const r = await runTimed('/usr/bin/time', ['-v', '-o', report, nodeExe, ...args], runOptions);
    checkRun(r, what);
    const peak = parseGnuTimeMaxRss(readFileSync(report, 'utf8'));
    if (peak === undefined) throw new Error(`${what}: no "Maximum resident set size" in the /usr/bin/time report`);
    return { peak, wallMs: r.wallMs };
  }
  const r = await runTimed(nodeExe, args, { ...runOptions, pollPeakRss: true });
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
  const nodeRate = median(tp.pipelineRates);
  const levelRate = median(tp.levelRates);
  const ratio = nodeRate / levelRate;
  const copies = (bytes: number): string => `${(bytes / big.valueBytes).toFixed(2)}× value`;
  const mib = formatMiB;
  const peakNote = big.peakReset ? 'VmHWM reset before the command' : 'cumulative VmHWM (reset refused)';
  const { runs, puts, inflight, reps } = ctx.options;
  const rows: string[][] = [
    ['1', `\`ckv get\` wall time, median (${runs} runs)`, formatMs(getMedian), `\`node -e ''\` ${formatMs(baseMedian)}`, `+${formatMs(getMedian - baseMedian)}`, `< ${getTargetMs} ms`, verdict(getMedian < getTargetMs)],
    ['1', '`ckv get` wall time, p90', formatMs(quantile(cli.getMs, 0.9)), `\`node -e ''\` ${formatMs(quantile(cli.baselineMs, 0.9))}`, `+${formatMs(quantile(cli.getMs, 0.9) - quantile(cli.baselineMs, 0.9))}`, '', ''],
    ['2', `puts/s, PutPipeline, ${pipelineWindow} in flight (${formatInt(puts)} × ${valueBytes} B, median of ${reps})`, formatInt(nodeRate), `raw level batch(${levelBatchOps}) ${formatInt(levelRate)}`, formatPercent(ratio), `>= ${formatPercent(throughputTargetRatio)}`, verdict(ratio >= throughputTargetRatio)],
    ['2', `puts/s, one Put call per put, ${inflight} in flight`, formatInt(median(tp.nodeRates)), `raw level ${formatInt(levelRate)}`, formatPercent(median(tp.nodeRates) / levelRate), '', 'context'],
    ['2', `puts/s, PutMany of ${putManyBatch}, 4 calls in flight`, formatInt(median(tp.putManyRates)), `raw level ${formatInt(levelRate)}`, formatPercent(median(tp.putManyRates) / levelRate), '', 'context'],
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

// ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const loadAtStart = loadavg()[0]!;
  log(`bench/control-api: starting a node (node ${process.version}, ${process.platform})`);
  exitOnSignals('bench');
  const { ctx, readyMs } = await startBenchNode(options);
  let nodeEnd = 'not stopped';
  try {
    const key = 'bench:get';
    const value = Buffer.from(randomBytes(50).toString('hex'), 'utf8');
    await ctx.client.put(key, value);

    log(`1/3: ckv get latency (${options.runs} runs)`);
    const cli = await measureCliLatency(ctx, key, value);

    log(`2/3: put throughput (${options.reps} repeats of ${options.puts} puts)`);
    const tp = await measureThroughput(ctx);

    log(`3/3: memory for a ${options.bigMib} MiB value`);
    const big = await measureBigValue(ctx);

    const nodeStatus = readProcStatus(ctx.nodePid);
    nodeEnd = await stopNode(ctx);
    const { table, getMedian, ratio } = report(ctx, readyMs, cli, tp, big);
    const out: string[] = ['', '## bench/control-api', '', table, ''];
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
    const child = ctx.node.process;
    const state = ctx.node.running ? 'the node was still running' : `the node had exited (code ${child.exitCode}, signal ${child.signalCode})`;
    log(`bench failed; ${state}; node log tail:\n${ctx.node.logTail(20)}`);
    throw error;
  } finally {
    if (nodeEnd === 'not stopped') await stopNode(ctx);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof BenchFailure ? 1 : 2;
    cleanupNow();
  },
);
