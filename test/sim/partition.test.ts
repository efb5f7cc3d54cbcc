import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runPartitionSimulation, type PartitionCanary, type PartitionSimReport } from './partition-sim.js';

/** Seeds run by npm test; more on demand: npm run sim -- --partitioned --seeds 2000 [--nodes 50]. */
const seedCount = 300;
const nodesFor = (seed: number): number => 5 + (seed % 5);

function failureText(report: PartitionSimReport): string {
  return `seed ${report.seed} failed (replay: npm run sim -- --partitioned --seed ${report.seed} --nodes ${report.nodes}):\n  ${report.violations.slice(0, 8).join('\n  ')}`;
}

/** The first of seeds 1..40 (5..9 nodes) whose run the checker fails with this canary. */
async function firstFailure(canary: PartitionCanary, delivery = false): Promise<PartitionSimReport | undefined> {
  for (let seed = 1; seed <= 40; seed++) {
    const report = await runPartitionSimulation({ seed, nodes: nodesFor(seed), canary, delivery });
    if (!report.ok) return report;
  }
  return undefined;
}

describe('partitioned data simulation (placement-aware)', () => {
  it(`keeps every invariant over ${seedCount} seeds of 5..9 nodes, K=3`, async () => {
    const failures: string[] = [];
    const totals = { joins: 0, leaves: 0, deaths: 0, crashes: 0, partitions: 0, acknowledgedWrites: 0, reads: 0, retirements: 0, purges: 0, purgedRows: 0 };
    for (let seed = 1; seed <= seedCount; seed++) {
      const report = await runPartitionSimulation({ seed, nodes: nodesFor(seed) });
      if (!report.ok) failures.push(failureText(report));
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += report.stats[key];
    }
    assert.deepEqual(failures, []);
    // The faults and the moves really happened: a run without them would prove little.
    for (const [key, value] of Object.entries(totals)) assert.ok(value >= seedCount / 10, `only ${value} ${key}`);
  });

  it('keeps every invariant at 50 nodes, K=3', async () => {
    const report = await runPartitionSimulation({ seed: 7, nodes: 50 });
    assert.ok(report.ok, failureText(report));
    assert.ok(report.stats.joins >= 10 && report.stats.retirements > 0 && report.stats.purges > 0, JSON.stringify(report.stats));
  });

  // Delivery until acknowledged (partition-delivery.ts): anti-entropy off, so delivery rows are
  // the only repair; every acknowledged write must still reach all K owners and every node's
  // pending rows must reach zero once faults stop.
  it('with delivery rows and no anti-entropy: every acknowledged write on all K owners, nothing left pending (60 seeds)', async () => {
    const failures: string[] = [];
    let crashes = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const report = await runPartitionSimulation({ seed, nodes: nodesFor(seed), delivery: true });
      if (!report.ok) failures.push(failureText(report));
      crashes += report.stats.crashes;
    }
    assert.deepEqual(failures, []);
    assert.ok(crashes >= 30, `only ${crashes} crashes`);
  });

  const deliveryCanaries: [PartitionCanary, string][] = [
    ['hints-lost-on-crash', 'delivery rows kept in memory only (lost on a crash)'],
    ['hints-removed-early', 'delivery rows removed when sent, not when acknowledged'],
  ];
  for (const [canary, name] of deliveryCanaries) {
    it(`catches ${name}`, async () => {
      const caught = await firstFailure(canary, true);
      assert.ok(caught, 'the simulator did not notice');
      assert.match(caught.violations.join('\n'), /lost acknowledged|partition \d+: owner/);
    });
  }

  it('replays a seed exactly', async () => {
    assert.deepEqual(await runPartitionSimulation({ seed: 4242, nodes: 7 }), await runPartitionSimulation({ seed: 4242, nodes: 7 }));
  });

  // The canaries: placement bugs the checker must catch on one of the first 40 seeds; the
  // report names the seed.
  const canaries: [PartitionCanary, string, RegExp][] = [
    ['modulo-holds', 'replicas that read ownership from a modulo placement', /which it does not own|partition \d+: owner|lost acknowledged/],
    ['early-purge', 'a node that purges before the new owners pulled (and without offload)', /lost acknowledged|read k\d+ from a quorum/],
    ['newest-only', 'a coordinator that writes to the newest layout\'s owners only during a change', /read k\d+ from a quorum|lost acknowledged/],
  ];
  for (const [canary, name, pattern] of canaries) {
    it(`catches ${name}`, async () => {
      const caught = await firstFailure(canary);
      assert.ok(caught, 'the simulator did not notice');
      assert.match(caught.violations.join('\n'), pattern);
      assert.match(failureText(caught), new RegExp(`seed ${caught.seed} failed`));
    });
  }
});
