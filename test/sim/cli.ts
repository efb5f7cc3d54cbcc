/**
 * `npm run sim -- --seeds 2000 --nodes 7` runs many seeds and prints the seed of every
 * failure; `--seed N` replays one and prints its violations. Without --nodes, each seed picks
 * 3..9 nodes. Exit code 1 if any seed failed.
 *
 * `--layout` runs the layout simulator (partitioned mode, layout-sim.ts) instead: without
 * --nodes each seed picks 3..12 nodes; `--nodes 50` runs the largest clusters; `--replicas K`;
 * `--trace` prints every commit, conflict, retirement and hand-off.
 *
 * `--partitioned` runs the placement-aware data simulator (partition-sim.ts): without --nodes
 * each seed picks 5..9 nodes; `--nodes 50` the largest; `--replicas K`; `--canary NAME` runs
 * with a placement bug (modulo-holds, early-purge, newest-only); `--wait-for-removed-sources`
 * waits for every pull source as production does today; `--trace`.
 */
import { parseArgs } from 'node:util';
import { runSimulation } from './simulation.js';
import { runLayoutSimulation } from './layout-sim.js';
import { runPartitionSimulation, type PartitionCanary } from './partition-sim.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '200' },
    seed: { type: 'string' },
    first: { type: 'string', default: '1' },
    nodes: { type: 'string' },
    writes: { type: 'string' },
    layout: { type: 'boolean', default: false },
    replicas: { type: 'string' },
    trace: { type: 'boolean', default: false },
    partitioned: { type: 'boolean', default: false },
    canary: { type: 'string' },
    'wait-for-removed-sources': { type: 'boolean', default: false },
  },
});

const writes = values.writes ? Number(values.writes) : undefined;

if (values.partitioned) {
  const canaries = ['modulo-holds', 'early-purge', 'newest-only'];
  if (values.canary !== undefined && !canaries.includes(values.canary)) {
    console.error(`--canary must be one of ${canaries.join(', ')}, not ${JSON.stringify(values.canary)}`);
    process.exit(2);
  }
  const nodesOf = (seed: number): number => (values.nodes ? Number(values.nodes) : 5 + (seed % 5));
  const list = values.seed ? [Number(values.seed)] : range(Number(values.first), Number(values.seeds));
  const failed: number[] = [];
  const started = performance.now();
  const extra = `${values.replicas ? ` --replicas ${values.replicas}` : ''}${values.canary ? ` --canary ${values.canary}` : ''}${values['wait-for-removed-sources'] ? ' --wait-for-removed-sources' : ''}`;
  for (const seed of list) {
    const nodes = nodesOf(seed);
    const report = await runPartitionSimulation({
      seed,
      nodes,
      ...(values.replicas ? { replicas: Number(values.replicas) } : {}),
      ...(writes ? { writes } : {}),
      ...(values.canary ? { canary: values.canary as PartitionCanary } : {}),
      ...(values['wait-for-removed-sources'] ? { waitForRemovedSources: true } : {}),
      ...(values.trace ? { trace: (line: string) => console.log(`  ${line}`) } : {}),
    });
    if (!report.ok) {
      failed.push(seed);
      console.log(`FAIL seed ${seed} (${nodes} nodes): replay with npm run sim -- --partitioned --seed ${seed} --nodes ${nodes}${extra}`);
      for (const violation of report.violations.slice(0, 10)) console.log(`  ${violation}`);
    } else if (values.seed) {
      console.log(`ok seed ${seed} (${nodes} nodes): ${JSON.stringify(report.stats)}`);
    }
  }
  console.log(`${list.length - failed.length} passed, ${failed.length} failed (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  if (failed.length > 0) console.log(`failing seeds: ${failed.join(' ')}`);
  process.exit(failed.length > 0 ? 1 : 0);
}

if (values.layout) {
  const layoutNodesFor = (seed: number): number => (values.nodes ? Number(values.nodes) : 3 + (seed % 10));
  const layoutSeeds = values.seed ? [Number(values.seed)] : range(Number(values.first), Number(values.seeds));
  const failed: number[] = [];
  const started = performance.now();
  for (const seed of layoutSeeds) {
    const nodes = layoutNodesFor(seed);
    const report = runLayoutSimulation({
      seed,
      nodes,
      ...(values.replicas ? { replicas: Number(values.replicas) } : {}),
      ...(values.trace ? { trace: (line: string) => console.log(`  ${line}`) } : {}),
    });
    if (!report.ok) {
      failed.push(seed);
      console.log(`FAIL seed ${seed} (${nodes} nodes): replay with npm run sim -- --layout --seed ${seed} --nodes ${nodes}${values.replicas ? ` --replicas ${values.replicas}` : ''}`);
      for (const violation of report.violations.slice(0, 10)) console.log(`  ${violation}`);
    } else if (values.seed) {
      console.log(`ok seed ${seed} (${nodes} nodes): ${JSON.stringify(report.stats)}`);
    }
  }
  console.log(`${layoutSeeds.length - failed.length} passed, ${failed.length} failed (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  if (failed.length > 0) console.log(`failing seeds: ${failed.join(' ')}`);
  process.exit(failed.length > 0 ? 1 : 0);
}

const nodesFor = (seed: number): number => (values.nodes ? Number(values.nodes) : 3 + (seed % 7));
const seeds = values.seed ? [Number(values.seed)] : range(Number(values.first), Number(values.seeds));
const failures: number[] = [];
const startedMs = performance.now();
for (const seed of seeds) {
  const report = await runSimulation({ seed, nodes: nodesFor(seed), ...(writes ? { writes } : {}) });
  if (!report.ok) {
    failures.push(seed);
    console.log(`FAIL seed ${seed} (${report.nodes} nodes, depth ${report.depth}): replay with npm run sim -- --seed ${seed}${values.nodes ? ` --nodes ${values.nodes}` : ''}`);
    for (const violation of report.violations.slice(0, 10)) console.log(`  ${violation}`);
  } else if (values.seed) {
    console.log(`ok seed ${seed}: ${JSON.stringify(report.stats)}`);
  }
}
const seconds = ((performance.now() - startedMs) / 1000).toFixed(1);
console.log(`${seeds.length - failures.length} passed, ${failures.length} failed (${seconds} s)`);
if (failures.length > 0) console.log(`failing seeds: ${failures.join(' ')}`);
process.exit(failures.length > 0 ? 1 : 0);

function range(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}
