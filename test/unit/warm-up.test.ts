/**
 * The warm-up of a fresh node (src/node/warm-up.ts) on a real LevelDB in a temporary data
 * directory: it runs to the end when the node stays idle (counted, logged, its store removed,
 * the front ends' exercise run), gives way as soon as the node's replica commits (before it
 * began, or between two batches) or the node stops, never runs when off, removes a store a
 * crash left behind, and a failure in it is logged and counted without escaping.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../harness/wait.js';
import { WarmUp, warmUpDirName, type WarmUpOptions } from '../../src/node/warm-up.js';
import { Counters } from '../../src/util/counters.js';
import type { Logger } from '../../src/util/logger.js';

const nodeId = '00000000000000aa';

function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const note = (level: string) => (event: string, fields?: Record<string, unknown>) => void lines.push(`${level} ${event} ${JSON.stringify(fields ?? {})}`);
  return { logger: { info: note('info'), warn: note('warn'), error: note('error') }, lines };
}

/** A data directory, a stand-in for the node's replica (its commit count is ours to move) and the options. */
async function setup(overrides: Partial<WarmUpOptions> = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ckv-warm-up-'));
  const replica = { storeChangeCount: 0, nodeId };
  const counters = new Counters();
  const { logger, lines } = recordingLogger();
  const options: WarmUpOptions = { dataDir, replica, counters, logger, wallClockMs: () => Date.now(), entries: 600, delayMs: 0, ...overrides };
  return { dataDir, replica, counters, lines, options, storeDir: join(dataDir, warmUpDirName), done: () => rm(dataDir, { recursive: true, force: true }) };
}

/** Waits (with a deadline) until the warm-up has begun, then for its outcome. */
async function outcomeOf(warmUp: WarmUp): Promise<string> {
  await waitFor(() => warmUp.finished !== undefined, { deadlineMs: 10_000, what: 'the warm-up to begin' });
  return await warmUp.finished!;
}

describe('warm-up', { timeout: 60_000 }, () => {
  it('runs to the end on an idle node: counted, logged, the front ends exercised, its store removed', async () => {
    let exercised = 0;
    const t = await setup({ frontEnds: () => [() => void exercised++] });
    try {
      const warmUp = new WarmUp(t.options);
      warmUp.start();
      warmUp.start(); // idempotent: one run
      assert.equal(await outcomeOf(warmUp), 'done');
      assert.equal(t.counters.get('warmup_done'), 1);
      assert.equal(t.counters.get('warmup_interrupted'), 0);
      assert.ok(exercised >= 1, 'the front ends exercise their codecs');
      assert.ok(t.lines.some((line) => line.startsWith('info warm-up {"outcome":"done"')), t.lines.join('\n'));
      assert.equal(existsSync(t.storeDir), false, 'its store is removed');
      await warmUp.stop();
      await warmUp.stop();
      assert.equal(t.counters.get('warmup_done'), 1);
    } finally {
      await t.done();
    }
  });

  // The node's own replica hooks (placement, resurrection) are the ones its replica calls: a
  // node that holds only some keys (partitioned mode) is sent only those, so every one applies.
  it("calls the node's replica hooks, and receives only keys the node holds", async () => {
    const asked = { holds: 0, refuse: 0 };
    const evenLeaf = (keyHash: string): boolean => keyHash.charCodeAt(0) % 2 === 0;
    const t = await setup({
      replicaHooks: {
        holds: (keyHash) => (asked.holds++, evenLeaf(keyHash)),
        refuseResurrection: () => (asked.refuse++, false),
        clockAheadOfPeersMs: () => 0,
        depth: 3,
      },
    });
    try {
      const warmUp = new WarmUp(t.options);
      warmUp.start();
      assert.equal(await outcomeOf(warmUp), 'done', t.lines.join('\n'));
      assert.ok(asked.holds > 0, 'placement asked');
      assert.ok(asked.refuse > 0, 'resurrection asked (keys new to the replica)');
      await warmUp.stop();
    } finally {
      await t.done();
    }
  });

  it('gives way when the node commits between two batches, and removes its store', async () => {
    const t = await setup({ entries: 4000 });
    // The node's first real write lands while the warm-up's first batch is being written.
    t.options.frontEnds = () => [() => void (t.replica.storeChangeCount = 1)];
    try {
      const warmUp = new WarmUp(t.options);
      warmUp.start();
      assert.equal(await outcomeOf(warmUp), 'interrupted');
      assert.equal(t.counters.get('warmup_interrupted'), 1);
      assert.equal(t.counters.get('warmup_done'), 0);
      assert.equal(existsSync(t.storeDir), false);
    } finally {
      await t.done();
    }
  });

  it('does not begin when the node committed before its delay ran out', async () => {
    const t = await setup({ delayMs: 50 });
    try {
      const warmUp = new WarmUp(t.options);
      warmUp.start();
      t.replica.storeChangeCount = 7; // a catch-up's first commit
      assert.equal(await outcomeOf(warmUp), 'interrupted');
      assert.equal(existsSync(t.storeDir), false);
    } finally {
      await t.done();
    }
  });

  it('ends at stop(), which waits for its store to be removed', async () => {
    let stopping: Promise<void> | undefined;
    const t = await setup({ entries: 20_000 });
    try {
      const warmUp = new WarmUp(t.options);
      // stop() is called from inside the run (as a node stopping during it would), at its first batch.
      t.options.frontEnds = () => [() => void (stopping ??= warmUp.stop())];
      warmUp.start();
      await waitFor(() => stopping !== undefined, { deadlineMs: 10_000, what: 'the first batch' });
      await stopping;
      assert.equal(await warmUp.finished, 'interrupted');
      assert.equal(existsSync(t.storeDir), false);
    } finally {
      await t.done();
    }
  });

  it('off (0 entries): never runs, but still removes a store a crash left behind', async () => {
    const t = await setup({ entries: 0 });
    try {
      await mkdir(t.storeDir);
      await writeFile(join(t.storeDir, 'CURRENT'), 'MANIFEST-000001\n');
      const warmUp = new WarmUp(t.options);
      warmUp.start();
      await warmUp.stop(); // waits for the leftover's removal
      assert.equal(existsSync(t.storeDir), false);
      assert.equal(warmUp.finished, undefined);
      assert.equal(t.counters.get('warmup_done') + t.counters.get('warmup_interrupted') + t.counters.get('warmup_failed'), 0);
    } finally {
      await t.done();
    }
  });

  it('a failure is logged and counted, and its store removed', async () => {
    const t = await setup({
      frontEnds: () => [
        () => {
          throw new Error('codec exploded');
        },
      ],
    });
    try {
      const warmUp = new WarmUp(t.options);
      warmUp.start();
      assert.equal(await outcomeOf(warmUp), 'failed');
      assert.equal(t.counters.get('warmup_failed'), 1);
      assert.ok(t.lines.some((line) => line.startsWith('warn warm-up failed') && line.includes('codec exploded')), t.lines.join('\n'));
      assert.equal(existsSync(t.storeDir), false);
    } finally {
      await t.done();
    }
  });
});
