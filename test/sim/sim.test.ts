import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation, type SimOptions, type SimReport } from './simulation.js';
import type { MergeRule } from '../../src/core/entry.js';

const seedCount = 300;

function failureText(report: SimReport): string {
  return `seed ${report.seed} failed (replay: npm run sim -- --seed ${report.seed}):\n  ${report.violations.slice(0, 8).join('\n  ')}`;
}

/** The first of seeds 1..20 (5 nodes unless told) whose run the checker fails, with these options. */
async function firstFailure(options: Omit<SimOptions, 'seed' | 'nodes'>, nodes = 5): Promise<SimReport | undefined> {
  for (let seed = 1; seed <= 20; seed++) {
    const report = await runSimulation({ seed, nodes, ...options });
    if (!report.ok) return report;
  }
  return undefined;
}

describe('deterministic simulation', () => {
  it(`converges with no lost acknowledged write over ${seedCount} seeds of 3..9 nodes`, async () => {
    const failures: string[] = [];
    let crashes = 0;
    let stops = 0;
    let snapshotStarts = 0;
    let replayStarts = 0;
    let checkpoints = 0;
    let partitions = 0;
    let deltaSessions = 0;
    let roundsDeferred = 0;
    let paddedFrames = 0;
    let rowsKeptAsReceived = 0;
    let receivedCommits = 0;
    for (let seed = 1; seed <= seedCount; seed++) {
      const report = await runSimulation({ seed, nodes: 3 + (seed % 7) });
      if (!report.ok) failures.push(failureText(report));
      crashes += report.stats.crashes;
      stops += report.stats.stops;
      snapshotStarts += report.stats.snapshotStarts;
      replayStarts += report.stats.replayStarts;
      checkpoints += report.stats.checkpoints;
      partitions += report.stats.partitions;
      deltaSessions += report.stats.deltaSessions;
      roundsDeferred += report.stats.roundsDeferred;
      paddedFrames += report.stats.paddedFrames;
      rowsKeptAsReceived += report.stats.rowsKeptAsReceived;
      receivedCommits += report.stats.receivedCommits;
    }
    assert.deepEqual(failures, []);
    assert.ok(roundsDeferred > seedCount, `periodic rounds were put off during bursts in these runs (${roundsDeferred})`);
    // The faults really happened: a run without them would prove little.
    assert.ok(crashes > seedCount / 2, `only ${crashes} crashes`);
    assert.ok(partitions > seedCount / 2, `only ${partitions} partitions`);
    assert.ok(stops > seedCount / 2, `only ${stops} clean stops`);
    assert.ok(snapshotStarts > seedCount / 4, `only ${snapshotStarts} starts from a snapshot`);
    assert.ok(replayStarts > seedCount / 8, `only ${replayStarts} starts that replayed writes after a snapshot`);
    assert.ok(checkpoints > seedCount, `only ${checkpoints} checkpoints of running nodes`);
    assert.ok(deltaSessions > seedCount, `only ${deltaSessions} sessions caught up by delta`);
    // Both kinds of received entries were stored: as received (canonical), and encoded again (padded).
    assert.ok(paddedFrames > seedCount, `only ${paddedFrames} entries frames from padding peers`);
    assert.ok(rowsKeptAsReceived > seedCount, `only ${rowsKeptAsReceived} rows stored as received`);
    assert.ok(receivedCommits > seedCount, `only ${receivedCommits} commits made from received bytes`);
  });

  it('replays a seed exactly', async () => {
    const a = await runSimulation({ seed: 4242, nodes: 6 });
    const b = await runSimulation({ seed: 4242, nodes: 6 });
    assert.deepEqual(a, b);
  });

  // The canaries: the checker must be able to fail. Each wrong rule must be caught on some
  // of the first 20 seeds, and the report names the seed.
  const wrongRules: [string, MergeRule][] = [
    ['the incoming version always wins', () => true],
    ['HLC only, no node-id tie-break', (incoming, current) => current === undefined || incoming.hlc > current.hlc],
  ];
  // The membership canary: a membership that takes old news (a replayed leave of a past
  // incarnation) marks a running node left; the checker must see it.
  it('catches a membership that lets old news win', async () => {
    const caught = await firstFailure({ staleMessagesLose: false });
    assert.ok(caught, 'the simulator did not notice a membership that takes stale messages');
    assert.match(caught.violations.join('\n'), /as left/);
  });

  // The clock canary: a replica that stamps local writes however far its bound is ahead of its
  // clock (after a restart with the clock set back) acknowledges writes its peers refuse.
  it('catches a replica that writes while its clock bound is ahead', async () => {
    const caught = await firstFailure({ clockGuard: false });
    assert.ok(caught, 'the simulator did not notice writes stamped ahead of the clock');
    assert.match(caught.violations.join('\n'), /ms ahead of its clock/);
  });

  // The delta canary: a responder that leaves out the last entry of a delta; the descent would
  // repair it, so only the delta invariant (an initiator holds everything up to the position
  // once the delta is merged) can see it.
  it('catches a delta that leaves out its last entry', async () => {
    const caught = await firstFailure({ dropLastDeltaEntry: true });
    assert.ok(caught, 'the simulator did not notice an incomplete delta');
    assert.match(caught.violations.join('\n'), /merged a delta from node \d+ since \d+ up to seq \d+ but lacks/);
  });

  // The bounds canary: an open that claims no partition holds a tombstone would let GC skip
  // (and keep forever) tombstones stored before the start.
  it('catches tombstone bounds at open above the stored tombstones', async () => {
    const caught = await firstFailure({ claimNoTombstonesAtOpen: true });
    assert.ok(caught, 'the simulator did not notice a tombstone bound above a stored tombstone');
    assert.match(caught.violations.join('\n'), /tombstone bound above its oldest stored tombstone/);
  });

  // The refresh canary: without the refresh after a burst, a node proves a peer's catch-up
  // watermark only when a periodic round picks that peer; at 9 nodes some settles never do,
  // and the end check (invariant 9) sees a watermark behind the node's own applied entries.
  it('catches catch-up watermarks left behind without the refresh', async () => {
    const caught = await firstFailure({ watermarkRefresh: false }, 9);
    assert.ok(caught, 'the simulator did not notice watermarks left lagging');
    assert.match(caught.violations.join('\n'), /ends with catch-up watermarks behind its own applied entries/);
  });

  // The burst canary: periodic rounds put off for as long as writes flow (no limit in a row)
  // would stop anti-entropy under a steady load; invariant 10 bounds the deferrals in a row.
  it('catches periodic sync rounds put off without a limit during bursts', async () => {
    const caught = await firstFailure({ burstDeferUnbounded: true });
    assert.ok(caught, 'the simulator did not notice periodic rounds put off without a limit');
    assert.match(caught.violations.join('\n'), /put off \d+ periodic sync rounds in a row during a burst/);
  });

  // The checkpoint canary: a checkpoint saved at once, beside a commit in flight, can be saved
  // after that commit's write reached the store and so be current without it; a crash then
  // starts the node from a tree that lacks the write (caught by the check of each snapshot
  // start against a scan, invariant 8 or the end state).
  it('catches a checkpoint saved beside a commit in flight', async () => {
    const caught = await firstFailure({ checkpointBesideWrites: true });
    assert.ok(caught, 'the simulator did not notice a checkpoint that missed a write');
    assert.match(caught.violations.join('\n'), /started (from its snapshot with a state a scan does not give|\(snapshot\) with partition)/);
  });

  // The snapshot canary: a store reads a snapshot back as current after writes made it stale
  // (the start keeps a current snapshot until the first write, Store.readSnapshot); a crash
  // then starts the node from a tree that lacks those writes.
  it('catches a snapshot handed out after a write made it stale', async () => {
    const caught = await firstFailure({ snapshotNeverStale: true });
    assert.ok(caught, 'the simulator did not notice a stale snapshot used at a start');
    assert.match(caught.violations.join('\n'), /started (from its snapshot with a state a scan does not give|\(snapshot\) with partition)/);
  });

  // The replay canary: a start from a snapshot behind the entries XORs the digests of the
  // entries written since into the tree without taking out the versions they replaced
  // (replica-replay.ts recomputes the leaves they touched instead).
  it('catches a replay that does not take replaced versions out of the tree', async () => {
    const caught = await firstFailure({ replayAddsOnly: true });
    assert.ok(caught, 'the simulator did not notice a wrong replay');
    assert.match(caught.violations.join('\n'), /started from its snapshot with a state a scan does not give/);
  });

  // The encoding canary: received entries stored with the bytes they came in as, without the
  // check that those are the entry's canonical encoding; a padding peer's bytes then reach a
  // store (invariant 11), whose scans hand them on.
  it('catches received bytes stored without the canonical check', async () => {
    const caught = await firstFailure({ encodingsUnchecked: true });
    assert.ok(caught, 'the simulator did not notice a padded encoding stored as received');
    assert.match(caught.violations.join('\n'), /stores .* with bytes that are not its encoding/);
  });

  // The version-cache canary: commits that do not update the replica's version cache leave it
  // holding a version the store has since replaced (src/core/version-cache.ts). A later commit
  // over that key then merges against the old version and deletes the wrong index row: a
  // stale write wins over a newer one, or the index keeps two rows for a key.
  it('catches a version cache that commits do not update', async () => {
    const caught = await firstFailure({ versionCacheNotUpdated: true });
    assert.ok(caught, 'the simulator did not notice a stale version cache');
    assert.match(caught.violations.join('\n'), /merged a delta from node \d+ since \d+ up to seq \d+ but lacks|a state a scan does not give|lost|index/);
  });

  // The bulk-apply canary: a commit of received bytes (Replica.applyReceived) that reads no
  // stored version lets an older version a sync session brings replace a newer one held.
  it('catches a bulk apply that does not read the versions it replaces', async () => {
    const caught = await firstFailure({ receivedIgnoresStored: true });
    assert.ok(caught, 'the simulator did not notice received entries merged against nothing');
    assert.match(caught.violations.join('\n'), /merged a delta from node \d+ since \d+ up to seq \d+ but lacks|a state a scan does not give|lost/);
  });

  for (const [name, rule] of wrongRules) {
    it(`catches a wrong merge rule: ${name}`, async () => {
      const caught = await firstFailure({ mergeRule: rule });
      assert.ok(caught, 'the simulator did not notice a wrong merge rule');
      assert.ok(caught.violations.length > 0);
      assert.match(failureText(caught), new RegExp(`seed ${caught.seed}`));
    });
  }
});
