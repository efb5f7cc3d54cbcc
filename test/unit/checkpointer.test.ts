/**
 * The node's checkpointer (src/node/checkpointer.ts) over a real Replica on a MemoryStore, with
 * a shortened schedule: it saves once the replica is quiet (counted, logged, and a start then
 * opens from the snapshot), saves again after more writes, saves nothing while the replica
 * holds fewer than checkpointEntriesHeldMin entries, and its stop() waits for a save under way.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../harness/wait.js';
import { checkpointEntriesHeldMin } from '../../src/core/limits.js';
import { Replica } from '../../src/core/replica.js';
import { Checkpointer } from '../../src/node/checkpointer.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { Counters } from '../../src/util/counters.js';
import type { Logger } from '../../src/util/logger.js';
import { value } from '../helpers/replicas.js';

const nodeId = '00000000000000aa';
const baseMs = 1_700_000_000_000;

async function openReplica(store: MemoryStore, keys: number): Promise<Replica> {
  const replica = await Replica.open({ nodeId, store, wallClockMs: () => baseMs, depth: 3 });
  if (keys > 0) await replica.writeMany(Array.from({ length: keys }, (_, i) => ({ key: `k${i}`, value: value(`v${i}`) })));
  return replica;
}

function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const note = (level: string) => (event: string) => void lines.push(`${level} ${event}`);
  return { logger: { info: note('info'), warn: note('warn'), error: note('error') }, lines };
}

/** Makes the replica's checkpoints wait for release(), and counts them. */
function gateCheckpoints(replica: Replica): { readonly calls: number; release: () => void } {
  const realCheckpoint = replica.checkpoint.bind(replica);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const gated = { calls: 0, release };
  replica.checkpoint = async () => {
    gated.calls++;
    await gate;
    return realCheckpoint();
  };
  return gated;
}

/** Quiet 20 ms; any change is worth a save; no timed saves during a test. */
const schedule = { quietMs: 20, entriesMin: 1, intervalMs: 600_000 };

describe('Checkpointer', () => {
  it('saves once the replica is quiet, counts and logs it, and saves again after more writes', async () => {
    const store = new MemoryStore();
    const replica = await openReplica(store, checkpointEntriesHeldMin + 200);
    const counters = new Counters();
    const { logger, lines } = recordingLogger();
    let flushes = 0;
    const checkpointer = new Checkpointer({ replica, counters, logger, schedule, flush: async () => void flushes++ });
    checkpointer.start();
    checkpointer.start(); // idempotent
    try {
      await waitFor(() => counters.get('checkpoints_saved') >= 1, { deadlineMs: 10_000, what: 'the first checkpoint' });
      assert.equal(flushes, counters.get('checkpoints_saved'), 'the store is flushed after each save');
      assert.ok(lines.includes('info checkpoint saved'), lines.join('\n'));
      // A start from the store now (as after a kill) opens from the snapshot, without a scan.
      const reopened = await Replica.open({ nodeId, store, wallClockMs: () => baseMs, depth: 3 });
      assert.deepStrictEqual(reopened.openedFrom, { source: 'snapshot' });
      assert.deepStrictEqual(reopened.root(), replica.root());
      const saved = counters.get('checkpoints_saved');
      await replica.put('late', value('write'));
      await waitFor(() => counters.get('checkpoints_saved') > saved, { deadlineMs: 10_000, what: 'a checkpoint after a write' });
      assert.equal(counters.get('checkpoints_failed'), 0);
    } finally {
      await checkpointer.stop();
    }
  });

  it(`saves nothing while the replica holds fewer than ${checkpointEntriesHeldMin} entries`, async () => {
    const replica = await openReplica(new MemoryStore(), 50);
    const counters = new Counters();
    let looks = 0;
    const nowMs = (): number => {
      looks++;
      return performance.now();
    };
    const checkpointer = new Checkpointer({ replica, counters, logger: recordingLogger().logger, schedule, nowMs });
    checkpointer.start();
    try {
      // Each look reads the clock once; a store this small waits at most a second between looks.
      await waitFor(() => looks >= 3, { deadlineMs: 10_000, what: 'three looks at the replica' });
      assert.equal(counters.get('checkpoints_saved'), 0);
      assert.equal(replica.storeChangeCount > 0, true, 'the replica did change');
    } finally {
      await checkpointer.stop();
    }
  });

  it('stop() waits for a save under way', async () => {
    const replica = await openReplica(new MemoryStore(), checkpointEntriesHeldMin + 10);
    const gated = gateCheckpoints(replica);
    const counters = new Counters();
    const checkpointer = new Checkpointer({ replica, counters, logger: recordingLogger().logger, schedule });
    checkpointer.start();
    await waitFor(() => gated.calls === 1, { deadlineMs: 10_000, what: 'a save to start' });
    let stopped = false;
    const stopping = checkpointer.stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stopped, false, 'stop() resolved while the save was under way');
    gated.release();
    await stopping;
    assert.equal(counters.get('checkpoints_saved'), 1, 'the save under way completed');
    assert.equal(gated.calls, 1, 'no save after stop()');
  });

  it('a start() during a save adds no second look loop (mocked timers: looks counted over 10 s)', async (t) => {
    const replica = await openReplica(new MemoryStore(), checkpointEntriesHeldMin + 10);
    const gated = gateCheckpoints(replica);
    let clockMs = 0;
    let looks = 0;
    const nowMs = (): number => {
      looks++;
      return clockMs;
    };
    t.mock.timers.enable({ apis: ['setTimeout'] });
    /** Moves the clock and the timers 5 ms at a time, letting promises settle at each step. */
    const advance = async (ms: number, until: () => boolean = () => false): Promise<void> => {
      for (let step = 0; step < ms / 5 && !until(); step++) {
        clockMs += 5;
        t.mock.timers.tick(5);
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const counters = new Counters();
    const checkpointer = new Checkpointer({ replica, counters, logger: recordingLogger().logger, schedule, nowMs });
    try {
      checkpointer.start();
      await advance(5_000, () => gated.calls === 1);
      assert.equal(gated.calls, 1, 'a save started');
      checkpointer.start(); // during the save
      gated.release();
      await advance(5_000, () => counters.get('checkpoints_saved') === 1);
      assert.equal(counters.get('checkpoints_saved'), 1);
      const before = looks;
      await advance(10_000);
      // Quiet and saved: one loop looks once a second (lookIntervalMsMax); two would look twice as often.
      assert.ok(looks - before <= 12, `${looks - before} looks in 10 s: more than one look loop`);
      assert.equal(gated.calls, 1, 'nothing changed: no second save');
    } finally {
      await checkpointer.stop();
    }
  });
});
