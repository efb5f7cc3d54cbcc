import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runLayoutSimulation, type LayoutSimOptions, type LayoutSimReport } from './layout-sim.js';

/** Seeds run by npm test; more on demand: npm run sim -- --layout --seeds 500 [--nodes 50]. */
const seedCount = 20;
const nodesFor = (seed: number): number => 3 + (seed % 10);

function failureText(report: LayoutSimReport): string {
  return `seed ${report.seed} failed (replay: npm run sim -- --layout --seed ${report.seed} --nodes ${report.nodes}):\n  ${report.violations.slice(0, 8).join('\n  ')}`;
}

/** The first of seeds 1..20 (3..12 nodes) whose run the checker fails, with these options. */
function firstFailure(options: Omit<LayoutSimOptions, 'seed' | 'nodes'>): LayoutSimReport | undefined {
  for (let seed = 1; seed <= 20; seed++) {
    const report = runLayoutSimulation({ seed, nodes: nodesFor(seed), ...options });
    if (!report.ok) return report;
  }
  return undefined;
}

describe('layout simulation (partitioned mode)', () => {
  it(`converges with every invariant over ${seedCount} seeds of 3..12 nodes, K=3`, () => {
    const failures: string[] = [];
    const totals = { joins: 0, leaves: 0, removes: 0, crashes: 0, partitions: 0, replicaChanges: 0, conflicts: 0, refusedAcks: 0, malformed: 0, retirements: 0, joinsChecked: 0 };
    for (let seed = 1; seed <= seedCount; seed++) {
      const report = runLayoutSimulation({ seed, nodes: nodesFor(seed) });
      if (!report.ok) failures.push(failureText(report));
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += report.stats[key];
    }
    assert.deepEqual(failures, []);
    // The faults and the lies really happened: a run without them would prove little.
    for (const [key, value] of Object.entries(totals)) assert.ok(value >= 5, `only ${value} ${key}`);
  });

  it('converges at 50 nodes, K=3', () => {
    const report = runLayoutSimulation({ seed: 7, nodes: 50 });
    assert.ok(report.ok, failureText(report));
    assert.ok(report.stats.joins >= 10 && report.stats.retirements > 0);
  });

  it('replays a seed exactly', () => {
    assert.deepEqual(runLayoutSimulation({ seed: 4242, nodes: 8 }), runLayoutSimulation({ seed: 4242, nodes: 8 }));
  });

  // The canaries: the checker must be able to fail. Each bug must be caught on one of the first
  // 20 seeds, and the report names the seed.
  const canaries: [string, Omit<LayoutSimOptions, 'seed' | 'nodes'>, RegExp][] = [
    ['a placement that is not rendezvous (partition modulo the members): a join moves far more than its share', { placement: 'modulo' }, /moved partition \d+ to another node too|changed partition \d+, which it did not own/],
    ['a history that believes any ack (about another node, of partitions not owned): a layout retires early', { trustAnyAck: true }, /retired layouts .* while (owner \d+ had not synced|node \d+ had not switched)|before node \d+ knew it/],
    ['a history that keeps its own layout on a same-version conflict: nodes disagree for good', { resolveConflicts: false }, /ends on layout/],
  ];
  for (const [name, options, pattern] of canaries) {
    it(`catches ${name}`, () => {
      const caught = firstFailure(options);
      assert.ok(caught, 'the simulator did not notice');
      assert.match(caught.violations.join('\n'), pattern);
      assert.match(failureText(caught), new RegExp(`seed ${caught.seed} failed`));
    });
  }
});
