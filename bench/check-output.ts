/**
 * CI smoke check of a cluster-bench run (`npm run bench -- --quick --out DIR`): the newest
 * DIR/*.json has every quick scenario, each with finite numbers where the figures go, no
 * failed scenario, and the SVG charts it lists exist and look like SVG. No timing assertions:
 * a slow machine passes, a broken bench does not.
 *
 * Run: node dist/bench/check-output.js DIR
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const quickScenarios = ['convergence', 'throughput', 'catch-up', 'new-node', 'idle', 'scaling', 'partition', 'start', 'partitioned'];
const expectedCharts = ['convergence-cdf', 'p99-vs-n', 'catchup-vs-k'];

/** Paths (dot-separated) under scenarios.<name>.data that must hold finite numbers. */
const requiredNumbers: Record<string, string[]> = {
  convergence: ['n3.converge.p50', 'n3.converge.p99', 'n5.converge.p50', 'n5.converge.p99', 'n3.oneAtATime.converge.p50', 'n5.oneAtATime.converge.p99', 'baseline.rawGossipHop.p50', 'baseline.rawGossipHop.p99'],
  throughput: [
    'convergedWritesPerSec',
    'ackedWritesPerSec',
    'rawLevelWritesPerSec',
    'cases.n3bulk.convergedWritesPerSec',
    'cases.n3unary.convergedWritesPerSec',
    'cases.n5bulk.convergedWritesPerSec',
    'cases.n5unary.convergedWritesPerSec',
    'cases.n3bulk.nodeCpuMsPerWrite.0',
    'cases.n5unary.nodeCpuMsPerWrite.4',
    'firstBurst.n3.writesPerSec',
    'firstBurst.n5.heldByAllMs',
    'warmup.0.convergedWritesPerSec',
    'warmup.3.convergedWritesPerSec',
  ],
  'catch-up': ['k2000.catchUpMs', 'k2000.rawLevelMs', 'k2000.bytesIn', 'k2000.rawBytes'],
  'new-node': ['joinMs', 'rawLevelMs', 'bytesIn', 'rawBytes'],
  idle: ['rounds', 'bytesTotal', 'ack.p50Ms', 'ack.p99Ms', 'ack.getP50Ms', 'ack.floorP50Ms'],
  scaling: ['rawGossipHop.p50', 'rawGossipHop.p99', 'processRoundTrip.p50', 'processRoundTrip.at500PerSec.p50', 'fitP50.slope', 'fitP50.r2', 'points.0.p50', 'points.0.p99', 'points.1.p99'],
  partition: ['healMs'],
  partitioned: ['n3.ackedWritesPerSec', 'n3.convergedWritesPerSec', 'n3.allOwnersP50Ms', 'n3.allOwnersP99Ms', 'n3.storageShareMax', 'n3.join.ms', 'n3.join.copiesRatio'],
  start: ['bareNodeMs', 'k0.servingMs', 'k10000.servingMs', 'k10000.rawLevelOpenScanMs', 'k10000.afterKill.servingMs', 'k10000.afterKillScan.servingMs', 'k10000.afterCheckpointKill.servingMs'],
};

function at(value: unknown, path: string): unknown {
  let cursor = value;
  for (const part of path.split('.')) {
    if (cursor === null || typeof cursor !== 'object') return undefined;
    cursor = (cursor as Record<string, unknown>)[part];
  }
  return cursor;
}

function main(): number {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node dist/bench/check-output.js DIR');
    return 2;
  }
  const jsons = existsSync(dir) ? readdirSync(dir).filter((name) => /^\d{4}-.*Z\.json$/.test(name)) : [];
  if (jsons.length === 0) {
    console.error(`check-output: no bench JSON in ${dir}`);
    return 1;
  }
  const newest = jsons.sort((a, b) => statSync(join(dir, b)).mtimeMs - statSync(join(dir, a)).mtimeMs)[0]!;
  const file = join(dir, newest);
  const report = JSON.parse(readFileSync(file, 'utf8')) as {
    mode?: string;
    scenarios?: Record<string, { data?: unknown; targets?: { value: unknown; pass: unknown }[] }>;
    failures?: { scenario: string; error: string }[];
    charts?: string[];
  };
  const problems: string[] = [];
  if (report.mode !== 'quick') problems.push(`mode is ${report.mode}, expected quick`);
  for (const failure of report.failures ?? []) problems.push(`scenario ${failure.scenario} failed: ${failure.error.split('\n')[0]}`);
  for (const name of quickScenarios) {
    const scenario = report.scenarios?.[name];
    if (!scenario) {
      problems.push(`scenario ${name} missing`);
      continue;
    }
    for (const path of requiredNumbers[name] ?? []) {
      const value = at(scenario.data, path);
      if (typeof value !== 'number' || !Number.isFinite(value)) problems.push(`${name}: data.${path} is ${JSON.stringify(value)}, expected a finite number`);
    }
    for (const t of scenario.targets ?? []) {
      if (typeof t.pass !== 'boolean') problems.push(`${name}: a target has no PASS/MISS verdict`);
    }
  }
  const charts = report.charts ?? [];
  for (const chart of expectedCharts) {
    const name = charts.find((c) => c.endsWith(`-${chart}.svg`));
    if (!name) {
      problems.push(`chart ${chart} not listed`);
      continue;
    }
    const path = join(dir, name);
    if (!existsSync(path)) problems.push(`chart ${name} listed but missing`);
    else {
      const text = readFileSync(path, 'utf8');
      if (!text.startsWith('<svg') || !text.trimEnd().endsWith('</svg>') || !text.includes('<path')) problems.push(`chart ${name} is not a drawn SVG`);
    }
  }
  const stem = newest.replace(/\.json$/, '');
  if (!existsSync(join(dir, `${stem}.md`))) problems.push(`${stem}.md missing`);
  if (problems.length > 0) {
    console.error(`check-output: ${file}: ${problems.length} problem(s):\n${problems.map((p) => `- ${p}`).join('\n')}`);
    return 1;
  }
  console.log(`check-output: ${file}: ${quickScenarios.length} scenarios with numbers, ${expectedCharts.length} charts: OK`);
  return 0;
}

process.exitCode = main();
