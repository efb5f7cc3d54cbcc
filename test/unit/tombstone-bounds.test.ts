/**
 * TombstoneBounds (src/core/tombstone-bounds.ts): which partitions tombstone GC must read. A
 * partition is skipped only when a complete read showed every tombstone at or above the
 * watermark, and nothing older was stored since; and the replica notes every tombstone it
 * makes durable, whatever path it came by.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keyHashText, type Entry } from '../../src/core/entry.js';
import { partitionCount, partitionOfHash } from '../../src/core/placement.js';
import { Replica } from '../../src/core/replica.js';
import { TombstoneBounds, noTombstone } from '../../src/core/tombstone-bounds.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';

describe('TombstoneBounds', () => {
  it('knows nothing at first: every partition may hold anything', () => {
    const bounds = new TombstoneBounds();
    assert.equal(bounds.knownPartitions(), 0);
    for (const p of [0, 17, 255]) assert.equal(bounds.mayHoldBelow(p, 1n), true);
  });

  it('starts from bounds known at open (a scan of the store, a snapshot): skips what they allow, and hands out copies', () => {
    const known = new Array<bigint>(partitionCount).fill(noTombstone);
    known[7] = 100n;
    const bounds = new TombstoneBounds(known);
    known[8] = 1n; // the caller's array is not kept
    assert.equal(bounds.knownPartitions(), partitionCount);
    assert.equal(bounds.mayHoldBelow(7, 100n), false);
    assert.equal(bounds.mayHoldBelow(7, 101n), true);
    assert.equal(bounds.mayHoldBelow(8, 1n << 62n), false);
    const saved = bounds.bounds();
    saved[9] = 1n;
    assert.equal(bounds.mayHoldBelow(9, 2n), false, 'bounds() is a copy');
    assert.throws(() => new TombstoneBounds([1n]), /256 bounds/);
  });

  it('a complete read with nothing left skips the partition until a tombstone is stored there', () => {
    const bounds = new TombstoneBounds();
    bounds.scanStarted(7);
    bounds.scanFinished(7, true, noTombstone);
    assert.equal(bounds.mayHoldBelow(7, 1n << 63n), false);
    assert.equal(bounds.mayHoldBelow(8, 1n << 63n), true, 'other partitions stay unknown');
    bounds.noteTombstone(7, 500n);
    assert.equal(bounds.mayHoldBelow(7, 500n), false, 'a tombstone at the watermark is not below it');
    assert.equal(bounds.mayHoldBelow(7, 501n), true);
  });

  it('keeps the oldest young tombstone a read left: skipped until the watermark passes it', () => {
    const bounds = new TombstoneBounds();
    bounds.scanStarted(3);
    bounds.scanFinished(3, true, 1000n);
    assert.equal(bounds.mayHoldBelow(3, 900n), false);
    assert.equal(bounds.mayHoldBelow(3, 1000n), false);
    assert.equal(bounds.mayHoldBelow(3, 1001n), true);
    bounds.noteTombstone(3, 2000n);
    assert.equal(bounds.mayHoldBelow(3, 1001n), true, 'a younger tombstone does not raise the bound');
  });

  it('a tombstone stored while a read runs counts, whatever the read found (it may have passed its key)', () => {
    const bounds = new TombstoneBounds();
    bounds.scanStarted(9);
    bounds.noteTombstone(9, 40n);
    bounds.scanFinished(9, true, noTombstone);
    assert.equal(bounds.mayHoldBelow(9, 41n), true);
    assert.equal(bounds.mayHoldBelow(9, 40n), false);
  });

  it('an incomplete read (a limit, an error) records nothing', () => {
    const bounds = new TombstoneBounds();
    bounds.scanStarted(1);
    bounds.scanFinished(1, false, noTombstone);
    assert.equal(bounds.mayHoldBelow(1, 2n), true, 'still unknown');
    bounds.scanStarted(1);
    bounds.scanFinished(1, true, noTombstone);
    bounds.scanStarted(1);
    bounds.noteTombstone(1, 10n);
    bounds.scanFinished(1, false, noTombstone);
    assert.equal(bounds.mayHoldBelow(1, 11n), true, 'the tombstone noted during the failed read stays counted');
  });

  it('refuses a finish without a start (a programmer error)', () => {
    assert.throws(() => new TombstoneBounds().scanFinished(4, true, noTombstone), /without scanStarted/);
  });
});

describe('the replica notes every tombstone it stores', () => {
  const keyIn = (partition: number, tag: string): string => {
    for (let i = 0; ; i++) if (partitionOfHash(keyHashText(`${tag}-${i}`)) === partition) return `${tag}-${i}`;
  };

  it('local deletes, remote tombstones and expiry sweeps lower their partition bound; live writes do not', async () => {
    let wall = 1_000_000;
    const replica = await Replica.open({ nodeId: nodeA, store: new MemoryStore(), wallClockMs: () => wall++, driftMsMax: 1e12 });
    const bounds = replica.tombstoneBounds;
    for (const p of [10, 20, 30, 40]) {
      bounds.scanStarted(p);
      bounds.scanFinished(p, true, noTombstone);
    }
    const watermarkFar = 1n << 62n;

    await replica.put(keyIn(10, 'live'), value('v'));
    assert.equal(bounds.mayHoldBelow(10, watermarkFar), false, 'a live write is not a tombstone');

    const local = keyIn(10, 'local');
    await replica.put(local, value('v'));
    const deleted = await replica.delete(local);
    assert.equal(bounds.mayHoldBelow(10, deleted.hlc), false);
    assert.equal(bounds.mayHoldBelow(10, deleted.hlc + 1n), true, 'a local delete is noted at its version');

    const remote: Entry = { key: keyIn(20, 'remote'), value: null, version: { hlc: 5_000n << 16n, node: nodeB } };
    await replica.applyRemote([remote]);
    assert.equal(bounds.mayHoldBelow(20, remote.version.hlc + 1n), true, 'a remote tombstone (gossip, sync, delivery, phase one) is noted');

    const expiring = keyIn(30, 'ttl');
    const put = await replica.put(expiring, value('v'), undefined, 1);
    wall += 10_000;
    const swept = await replica.expireUnchanged([{ key: expiring, version: put }]);
    assert.equal(swept.length, 1, 'the expired value became its tombstone');
    assert.equal(bounds.mayHoldBelow(30, put.hlc + 1n), true, 'a TTL sweep is noted');

    assert.equal(bounds.mayHoldBelow(40, watermarkFar), false, 'an untouched partition stays skipped');
  });
});
