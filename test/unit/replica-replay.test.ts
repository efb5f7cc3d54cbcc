/**
 * A start from a snapshot behind the entries (src/core/replica-replay.ts): the replica opened
 * that way must hold exactly what a scan of the same store builds (every tree node and count,
 * tombstones, clock, entry count; bounds never above the truth; a filter with every key),
 * after random runs of puts, deletes, overwrites of live and deleted keys and remote entries
 * stamped ahead, crashed and reopened again and again from the same old snapshot. A purge
 * after the snapshot makes it stale (no row says what went). The canary's replay, which XORs
 * the tail in without taking the replaced versions out, must differ from the scan, so the
 * comparison can fail. Over MemoryStore and LevelStore (a real directory).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keyHashText } from '../../src/core/entry.js';
import { hlcPack } from '../../src/core/hlc.js';
import type { KeyFilter } from '../../src/core/key-filter.js';
import { merkleFanout } from '../../src/core/limits.js';
import { partitionCount, partitionOfHash } from '../../src/core/placement.js';
import { Replica, sameRoot } from '../../src/core/replica.js';
import type { Store } from '../../src/core/store.js';
import { noTombstone } from '../../src/core/tombstone-bounds.js';
import { seededRng } from '../helpers/core-gen.js';
import { value } from '../helpers/replicas.js';
import { storeSubjects } from '../helpers/store-subjects.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const baseMs = 1_700_000_000_000;
const depth = 3;

function open(store: Store, options: { useSnapshot?: boolean; replayAddsOnly?: boolean } = {}): Promise<Replica> {
  return Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, depth, ...options });
}

/** A few random writes over `keys` keys: local puts and deletes, remote entries (some ahead of the clock). */
async function randomWrites(replica: Replica, random: () => number, writes: number, keys: number, round: number): Promise<void> {
  for (let i = 0; i < writes; i++) {
    const key = `k${Math.floor(random() * keys)}`;
    const pick = random();
    if (pick < 0.5) await replica.put(key, value(`v${round}.${i}`));
    else if (pick < 0.75) await replica.delete(key);
    else {
      const stamp = hlcPack(baseMs + 100 + round, i);
      await replica.applyRemote([{ key, value: random() < 0.3 ? null : value(`r${round}.${i}`), version: { hlc: stamp, node: nodeB } }]);
    }
  }
}

async function assertSameAsScan(replica: Replica, store: Store, what: string): Promise<void> {
  const scanned = await open(store, { useSnapshot: false });
  const a = replica.syncContext({ cluster: 'test' }).tree;
  const b = scanned.syncContext({ cluster: 'test' }).tree;
  for (let level = 0; level <= depth; level++) {
    for (let index = 0; index < merkleFanout ** level; index++) {
      assert.equal(a.count(level, index), b.count(level, index), `${what}: count at level ${level} node ${index}`);
      assert.deepStrictEqual(a.digest(level, index), b.digest(level, index), `${what}: digest at level ${level} node ${index}`);
    }
  }
  assert.equal(replica.tombstoneCount, scanned.tombstoneCount, `${what}: tombstones`);
  assert.equal(replica.entryCount, scanned.entryCount, `${what}: entries`);
  assert.equal(replica.hlcLast, scanned.hlcLast, `${what}: clock`);
  const oldest = new Array<bigint>(partitionCount).fill(noTombstone);
  const keys = (replica as unknown as { keys: KeyFilter }).keys;
  for await (const entry of store.scanHash('')) {
    const hash = keyHashText(entry.key);
    assert.ok(keys.mayHave(hash), `${what}: the filter lacks ${entry.key}`);
    if (entry.value === null && entry.version.hlc < oldest[partitionOfHash(hash)]!) oldest[partitionOfHash(hash)] = entry.version.hlc;
  }
  const bounds = replica.tombstoneBounds.bounds();
  for (let p = 0; p < partitionCount; p++) assert.ok(bounds[p]! <= oldest[p]!, `${what}: partition ${p}'s bound above its oldest tombstone`);
}

for (const subject of storeSubjects('ckv-replay-')) {
  describe(`Replica replay over ${subject.name}`, () => {
    for (const seed of [1, 2, 3]) {
      it(`seed ${seed}: crashes after random writes start from the old snapshot, replay them, and equal a scan`, async () => {
        const { store, dispose } = subject.make();
        const random = seededRng(seed);
        try {
          let s = store();
          let replica = await open(s);
          await randomWrites(replica, random, 300, 120, 0);
          await replica.close();
          await replica.saveSnapshot();
          await s.close();
          for (let crash = 1; crash <= 4; crash++) {
            s = store();
            replica = await open(s);
            assert.equal(replica.openedFrom.source, 'snapshot', `crash ${crash}`);
            if (crash > 1) assert.ok((replica.openedFrom as { replayed?: number }).replayed! > 0, `crash ${crash}: replayed`);
            await assertSameAsScan(replica, s, `seed ${seed} crash ${crash}`);
            // Then "crash": writes, no close, no saveSnapshot (the snapshot stays the first one).
            await randomWrites(replica, random, 12, 120, crash);
            await s.close();
          }
        } finally {
          dispose();
        }
      });
    }

    it('a purge after the snapshot makes it stale: the start scans', async () => {
      const { store, dispose } = subject.make();
      try {
        let s = store();
        let replica = await open(s);
        await randomWrites(replica, seededRng(9), 100, 50, 0);
        await replica.close();
        await replica.saveSnapshot();
        await s.close();
        s = store();
        replica = await open(s);
        await replica.put('late', value('x'));
        const victim = (await replica.get('late'))!;
        assert.equal((await replica.dropUnchanged([{ key: 'late', version: victim.version }])).dropped, 1);
        await replica.put('later', value('y'));
        await s.close();
        s = store();
        replica = await open(s);
        assert.deepStrictEqual(replica.openedFrom, { source: 'scan', snapshot: 'stale' });
        await assertSameAsScan(replica, s, 'after a purge');
        await s.close();
      } finally {
        dispose();
      }
    });

    // The canary of the comparison above (the simulator has its own): a replay that only XORs
    // the tail in keeps the replaced versions in the tree, and a scan tells.
    it('a replay that does not take the replaced versions out differs from a scan', async () => {
      const { store, dispose } = subject.make();
      try {
        let s = store();
        let replica = await open(s);
        await replica.writeMany(Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: value(`v${i}`) })));
        await replica.close();
        await replica.saveSnapshot();
        await s.close();
        s = store();
        replica = await open(s);
        await replica.put('k3', value('overwritten'));
        await s.close();
        s = store();
        const wrong = await open(s, { replayAddsOnly: true });
        assert.deepStrictEqual(wrong.openedFrom, { source: 'snapshot', replayed: 1 });
        const scanned = await open(s, { useSnapshot: false });
        assert.ok(!sameRoot(wrong, scanned), 'the canary replay must differ from a scan');
        const right = await open(s);
        assert.ok(sameRoot(right, scanned), 'the replay equals a scan');
        await s.close();
      } finally {
        dispose();
      }
    });
  });
}
