/**
 * bench/run: the cluster bench. Real `ckv node start` processes on 127.0.0.1 in temp dirs,
 * driven through the control API (gRPC on each node's socket); every figure comes with a
 * baseline measured in the same run, and the verdicts are ratios or absolute targets
 * reported as PASS/MISS (never asserted: the exit code is 0 unless something broke).
 *
 * Scenarios (bench/scenarios/): convergence, throughput, catch-up, new-node, idle, scaling,
 * partition, start, partitioned. See README.md "Benchmarks" for what each measures and how.
 *
 * Run: npm run bench [-- --quick] [-- --scenario NAME[,NAME...]] [-- --out DIR]
 *      [-- --profile] [-- --seed N]
 * Output: DIR/<timestamp>.json, DIR/<timestamp>.md, DIR/<timestamp>-*.svg (DIR defaults to
 * bench/results/), the markdown on stdout, a progress bar on stderr.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cpuSnapshot, cpuUse, type CpuUse } from './lib/cpu-load.js';
import { cleanupNow, exitOnSignals, repoRoot } from '../harness/index.js';
import { Progress, formatElapsed } from './lib/progress.js';
import { assertNodeBundleFresh } from './lib/node-code.js';
import { markdownTable, type Align } from './lib/table.js';
import { charts } from './charts.js';
import type { Ctx, ScenarioResult, Scenario, Target } from './scenarios/common.js';
import { convergence } from './scenarios/convergence.js';
import { throughput } from './scenarios/throughput.js';
import { catchUp } from './scenarios/catch-up.js';
import { newNode } from './scenarios/new-node.js';
import { idle } from './scenarios/idle.js';
import { scaling } from './scenarios/scaling.js';
import { partition } from './scenarios/partition.js';
import { start } from './scenarios/start.js';
import { partitioned } from './scenarios/partitioned.js';

export const scenarios: Scenario[] = [convergence, throughput, catchUp, newNode, idle, scaling, partition, start, partitioned];

interface Options {
  quick: boolean;
  only: string[] | undefined;
  out: string;
  profile: boolean;
  seed: number;
}

const usage = `usage: npm run bench -- [--quick] [--scenario NAME[,NAME...]] [--out DIR] [--profile] [--seed N]
scenarios: ${scenarios.map((s) => s.name).join(', ')}`;

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { quick: false, only: undefined, out: join(repoRoot, 'bench', 'results'), profile: false, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${arg} needs a value\n${usage}`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--profile') options.profile = true;
    else if (arg === '--scenario') {
      const names = value().split(',').map((s) => s.trim()).filter(Boolean);
      for (const name of names) if (!scenarios.some((s) => s.name === name)) throw new Error(`unknown scenario '${name}'\n${usage}`);
      options.only = [...(options.only ?? []), ...names];
    } else if (arg === '--out') options.out = resolve(value());
    else if (arg === '--seed') options.seed = Number(value());
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument '${arg}'\n${usage}`);
  }
  return options;
}

function timestamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

function fmtCpu(cpu: CpuUse | undefined): string {
  if (!cpu || !Number.isFinite(cpu.machineCores)) return 'machine load unknown';
  return `machine ${cpu.machineCores.toFixed(2)} cores busy, bench + nodes ${cpu.benchCores.toFixed(2)}, other processes ${cpu.otherCores.toFixed(2)}`;
}

function fmtTargetValue(t: Target): string {
  const v = t.unit === 'x' ? `${t.value.toFixed(2)}x` : t.unit === 'ms' ? `${t.value.toFixed(1)} ms` : `${Math.round(t.value).toLocaleString('en-US')} ${t.unit}`;
  const l = t.unit === 'x' ? `${t.limit}x` : t.unit === 'ms' ? `${t.limit.toFixed(1)} ms` : `${Math.round(t.limit).toLocaleString('en-US')} ${t.unit}`;
  return `${Number.isFinite(t.value) ? v : '-'} ${t.comparison} ${l}`;
}

export function renderMarkdown(report: { mode: string; startedAt: string; durationS: number; machine: Record<string, unknown> }, results: ScenarioResult[], failures: { scenario: string; error: string }[]): string {
  const out: string[] = [];
  out.push(`# ckv cluster bench (${report.mode})`);
  out.push('');
  const m = report.machine;
  out.push(`${report.startedAt}, ${formatElapsed(report.durationS * 1000)} total; ${m.cpus} x ${m.cpuModel}, node ${m.node}, load average at start ${m.loadavgStart}`);
  out.push('');
  out.push('## Summary (medians over repeated runs; baselines measured in the same run)');
  out.push('');
  const summaryRows = results.flatMap((r) => r.summary.map((s) => [s.scenario, s.measure, s.ckv, s.baseline, s.ratio]));
  out.push(markdownTable(['scenario', 'measure', 'ckv', 'baseline', 'ckv / baseline'], summaryRows, ['left', 'left', 'right', 'left', 'right']));
  out.push('');
  const targets = results.flatMap((r) => r.targets);
  if (targets.length > 0) {
    out.push('## Targets');
    out.push('');
    out.push(
      markdownTable(
        ['scenario', 'target', 'measured', 'how', 'verdict'],
        targets.map((t) => [t.scenario, t.name, fmtTargetValue(t), t.detail, t.pass ? 'PASS' : 'MISS']),
        ['left', 'left', 'right', 'left', 'left'],
      ),
    );
    out.push('');
  }
  if (failures.length > 0) {
    out.push('## Failed scenarios');
    out.push('');
    for (const f of failures) out.push(`- ${f.scenario}: ${f.error.split('\n')[0]}`);
    out.push('');
  }
  for (const result of results) {
    out.push(`## ${result.name}${result.seconds !== undefined ? ` (${result.seconds.toFixed(0)} s)` : ''}`);
    out.push('');
    out.push(`CPU during the scenario: ${fmtCpu(result.cpu)}.`);
    out.push('');
    for (const table of result.details) {
      out.push(`${table.title}`);
      out.push('');
      const align: Align[] = table.headers.map((_, c) => (table.numeric?.includes(c) ? 'right' : 'left'));
      out.push(markdownTable(table.headers, table.rows, align));
      out.push('');
    }
    for (const note of result.notes) out.push(`- ${note}`);
    if (result.notes.length > 0) out.push('');
    for (const profile of result.profiles ?? []) {
      out.push(`CPU profile ${profile.file.split('/').slice(-2).join('/')}: ${(profile.busyMs / 1000).toFixed(1)} s busy of ${(profile.totalMs / 1000).toFixed(1)} s sampled (whole process life, start-up included).`);
      out.push('');
      out.push(`By package: ${profile.byPackage.map((p) => `${p.owner} ${(p.share * 100).toFixed(0)}%`).join(', ')}.`);
      out.push('');
      out.push('Top self time (share of busy time):');
      out.push('');
      out.push(
        markdownTable(
          ['function', 'where', 'self ms', 'share'],
          profile.top.slice(0, 12).map((row) => [row.function, row.location, row.selfMs.toFixed(0), `${(row.share * 100).toFixed(1)}%`]),
          ['left', 'left', 'right', 'right'],
        ),
      );
      out.push('');
    }
  }
  return out.join('\n');
}

async function main(): Promise<number> {
  exitOnSignals('bench');
  const options = parseArgs(process.argv.slice(2));
  assertNodeBundleFresh(); // before any scenario: each would fail on it after its baselines
  const selected = scenarios.filter((s) => options.only === undefined || options.only.includes(s.name));
  const started = new Date();
  const startedMs = performance.now();
  const stem = timestamp(started);
  mkdirSync(options.out, { recursive: true });
  const progress = new Progress();
  progress.plan(selected.map((s) => ({ name: s.name, estimateS: s.estimateS(options.quick) })));
  const ctx: Ctx = {
    quick: options.quick,
    progress,
    seed: options.seed,
    profileRoot: options.profile ? join(options.out, `${stem}-profiles`) : undefined,
  };
  const loadStart = loadavg().map((v) => v.toFixed(2)).join(' ');
  const results: ScenarioResult[] = [];
  const failures: { scenario: string; error: string }[] = [];
  for (const scenario of selected) {
    progress.stage(scenario.name);
    const t0 = performance.now();
    const cpu0 = cpuSnapshot([]);
    try {
      const result = await scenario.run(ctx);
      result.seconds = (performance.now() - t0) / 1000;
      result.cpu = cpuUse(cpu0, cpuSnapshot([]));
      results.push(result);
      const misses = result.targets.filter((t) => !t.pass).length;
      progress.log(
        `bench: ${scenario.name} done in ${result.seconds.toFixed(0)} s${result.targets.length ? `, targets ${result.targets.length - misses} PASS / ${misses} MISS` : ''}; ${fmtCpu(result.cpu)}`,
      );
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      failures.push({ scenario: scenario.name, error: message });
      progress.log(`bench: ${scenario.name} FAILED: ${message}`);
    }
  }
  progress.done();
  const durationS = (performance.now() - startedMs) / 1000;
  const cpu = cpus()[0];
  const machine = {
    cpus: availableParallelism(),
    cpuModel: cpu?.model ?? 'unknown',
    memTotalMiB: Math.round(totalmem() / 1024 / 1024),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadavgStart: loadStart,
    loadavgEnd: loadavg().map((v) => v.toFixed(2)).join(' '),
  };
  const chartFiles = charts(results, options.out, stem);
  const report = {
    schema: 'ckv-cluster-bench/1',
    mode: options.quick ? 'quick' : 'full',
    args: process.argv.slice(2),
    seed: options.seed,
    startedAt: started.toISOString(),
    durationS: Math.round(durationS * 10) / 10,
    machine,
    scenarios: Object.fromEntries(results.map((r) => [r.name, { title: selected.find((s) => s.name === r.name)?.title, seconds: r.seconds, cpu: r.cpu, config: r.config, data: r.data, targets: r.targets, notes: r.notes, profiles: r.profiles ?? [] }])),
    targets: results.flatMap((r) => r.targets),
    failures,
    charts: chartFiles,
  };
  const jsonFile = join(options.out, `${stem}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  const markdown = renderMarkdown(report, results, failures);
  writeFileSync(join(options.out, `${stem}.md`), `${markdown}\n`);
  process.stdout.write(`${markdown}\n`);
  const targets = results.flatMap((r) => r.targets);
  process.stdout.write(
    `\nTargets: ${targets.filter((t) => t.pass).length} PASS, ${targets.filter((t) => !t.pass).length} MISS` +
      `${failures.length ? `; ${failures.length} scenario(s) FAILED` : ''}\nwrote ${jsonFile} (+ .md, ${chartFiles.length} SVG charts) in ${formatElapsed(durationS * 1000)}\n`,
  );
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    cleanupNow();
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    cleanupNow();
    process.exit(2);
  },
);
