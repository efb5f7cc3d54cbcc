/**
 * The TTL sweeper (src/node/ttl-sweeper.ts) over a real Replica on a MemoryStore with a test
 * clock: values scheduled as they are applied are swept once due (not before), values stored
 * before the sweeper started are found by its start scan, and past its bound of remembered
 * expiries the rest are found by a later scan. Waits are polls with deadlines.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/util/counters.js';
import { silentLogger } from '../../src/util/logger.js';
import { TtlSweeper } from '../../src/node/ttl-sweeper.js';
import type { Replica } from '../../src/core/replica.js';
import { memoryReplica, value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';

async function until(condition: () => Promise<boolean>, what: string, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function tombstones(replica: Replica, keys: string[]): Promise<number> {
  let n = 0;
  for (const key of keys) if ((await replica.get(key))?.value === null) n++;
  return n;
}

describe('TtlSweeper', () => {
  it('sweeps scheduled values once due, not before; a re-written key is left', async () => {
    const clock = { ms: 1_700_000_000_000 };
    const counters = new Counters();
    const replica = await memoryReplica(nodeA, clock);
    const sweeper = new TtlSweeper({ replica, counters, logger: silentLogger, intervalMs: 10, startScanDelayMs: 60_000 });
    sweeper.start();
    try {
      for (const key of ['a', 'b', 'c']) {
        await replica.put(key, value('v'), undefined, 1000);
        sweeper.schedule((await replica.get(key))!);
      }
      await replica.put('c', value('kept'));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await tombstones(replica, ['a', 'b', 'c']), 0, 'nothing swept before the expiry');
      clock.ms += 1000;
      await until(async () => (await tombstones(replica, ['a', 'b'])) === 2, 'a and b to be swept');
      assert.equal(Buffer.from((await replica.get('c'))!.value!).toString(), 'kept');
      assert.equal(counters.snapshot().ttl_swept, 2);
      assert.equal(sweeper.pending, 0);
    } finally {
      await sweeper.stop();
    }
  });

  it('finds values stored before it started (start scan), and those past its bound (a later scan)', async () => {
    const clock = { ms: 1_700_000_000_000 };
    const counters = new Counters();
    const replica = await memoryReplica(nodeA, clock);
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    for (const key of keys) await replica.put(key, value('v'), undefined, 100);
    const sweeper = new TtlSweeper({ replica, counters, logger: silentLogger, intervalMs: 10, startScanDelayMs: 10, pendingMax: 5 });
    sweeper.start();
    try {
      clock.ms += 100;
      await until(async () => (await tombstones(replica, keys)) === keys.length, 'every key to be swept');
      assert.equal(counters.snapshot().ttl_swept, keys.length);
      assert.ok(counters.snapshot().ttl_pending_full > 0, 'the bound was hit');
    } finally {
      await sweeper.stop();
    }
  });
});
