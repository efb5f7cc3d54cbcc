/**
 * The TTL sweeper (src/node/ttl-sweeper.ts) over a real Replica on a MemoryStore with a test
 * clock: values scheduled as they are applied are swept once due (not before), values stored
 * before the sweeper started are found by its start scan, and past its bound of remembered
 * expiries the rest are found by a later scan. Waits are polls with deadlines. The start
 * scan's source, Replica.scanExpiring, yields exactly the stored values with an expiry, over
 * a real LevelStore (rows passed over by their flags byte) and over a store with no encoded
 * scan (the decoding fallback).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Replica as ReplicaClass } from '../../src/core/replica.js';
import type { Store } from '../../src/core/store.js';
import { LevelStore } from '../../src/store/level-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
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

describe('Replica.scanExpiring', () => {
  /** Values with and without an expiry, tombstones, and expiring values overwritten or deleted since. */
  async function fill(replica: Replica): Promise<string[]> {
    const expiring: string[] = [];
    for (let i = 0; i < 300; i++) {
      const key = `k${i}`;
      if (i % 3 === 0) {
        await replica.put(key, value(`v${i}`), undefined, 60_000 + i);
        expiring.push(key);
      } else if (i % 3 === 1) {
        await replica.put(key, value(`v${i}`));
      } else {
        await replica.put(key, value(`v${i}`), undefined, 60_000);
        if (i % 2 === 0) await replica.put(key, value('no expiry now'));
        else await replica.delete(key);
      }
    }
    return expiring;
  }

  async function check(store: Store): Promise<void> {
    const clock = { ms: 1_700_000_000_000 };
    const replica = await ReplicaClass.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms });
    try {
      const expiring = await fill(replica);
      const seen = new Map<string, unknown>();
      for await (const entry of replica.scanExpiring()) seen.set(entry.key, entry);
      assert.deepEqual([...seen.keys()].sort(), [...expiring].sort());
      for (const key of expiring) assert.deepEqual(seen.get(key), await replica.get(key));
    } finally {
      await replica.close();
    }
  }

  it('yields exactly the values with an expiry, over a LevelStore', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckv-ttl-scan-'));
    const store = new LevelStore(dir);
    await store.open();
    try {
      await check(store);
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('yields the same over a store without encoded scans (decodes every entry)', async () => {
    const memory = new MemoryStore();
    await memory.open();
    // The same store with scanAllEncoded hidden: Replica.scanExpiring takes its other path.
    const store = new Proxy(memory, {
      get(target, property) {
        if (property === 'scanAllEncoded') return undefined;
        const member = Reflect.get(target, property, target) as unknown;
        return typeof member === 'function' ? (member as (...args: unknown[]) => unknown).bind(target) : member;
      },
    });
    assert.equal(store.scanAllEncoded, undefined);
    await check(store);
  });
});
