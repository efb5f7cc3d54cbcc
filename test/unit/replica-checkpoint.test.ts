/**
 * Checkpoints of a running replica (Replica.checkpoint, src/node/checkpointer.ts): the snapshot
 * a clean stop saves, saved while the replica runs. A crash (here: the store closed under a
 * replica never closed, as a kill leaves it) before the next write starts from it with exactly
 * the state a scan builds; a write after it makes it stale; a checkpoint asked while a write
 * is in flight holds that write; one with nothing changed saves nothing. Over MemoryStore and
 * LevelStore (a real directory).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hlcPack } from '../../src/core/hlc.js';
import { Replica, ReplicaClosedError, sameRoot } from '../../src/core/replica.js';
import type { Store } from '../../src/core/store.js';
import { value } from '../helpers/replicas.js';
import { storeSubjects } from '../helpers/store-subjects.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const baseMs = 1_700_000_000_000;

const subjects = storeSubjects('ckv-checkpoint-');

async function fill(replica: Replica, keys: number, round: number): Promise<void> {
  await replica.writeMany(Array.from({ length: keys }, (_, i) => ({ key: `k${i}`, value: i % 7 === 0 ? null : value(`v${i}.${round}`) })));
  await replica.applyRemote(Array.from({ length: keys / 2 }, (_, i) => ({ key: `r${i}`, value: value(`r${i}`), version: { hlc: hlcPack(baseMs + 200 + round, i), node: nodeB } })));
}

/** Opens the store again as a start after a crash would, and checks the state against a scan. */
async function restart(store: () => Store, crashed: Store): Promise<{ replica: Replica; s: Store }> {
  await crashed.close();
  const s = store();
  const reopened = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
  const scanned = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3, useSnapshot: false });
  assert.ok(sameRoot(reopened, scanned), 'the same root as a scan');
  assert.equal(reopened.tombstoneCount, scanned.tombstoneCount);
  assert.equal(reopened.hlcLast, scanned.hlcLast);
  return { replica: reopened, s };
}

function text(bytes: Uint8Array | null | undefined): string | undefined {
  return bytes ? Buffer.from(bytes).toString() : undefined;
}

for (const subject of subjects) {
  describe(`Replica checkpoints over ${subject.name}`, () => {
    it('a crash after a checkpoint starts from it; one after a write after it replays the write on top', async () => {
      const { store, dispose } = subject.make();
      try {
        let s = store();
        let replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        await fill(replica, 40, 0);
        assert.deepStrictEqual(await replica.checkpoint(), { saved: true, changes: 60 });
        const root = replica.root();
        // Crash: the replica is never closed and saves nothing more.
        ({ replica, s } = await restart(store, s));
        assert.deepStrictEqual(replica.openedFrom, { source: 'snapshot' });
        assert.deepStrictEqual(replica.root(), root);
        // The open took the snapshot: a checkpoint with nothing written saves one again.
        assert.deepStrictEqual(await replica.checkpoint(), { saved: true, changes: 0 });
        await replica.put('after', value('x'));
        ({ replica, s } = await restart(store, s));
        assert.deepStrictEqual(replica.openedFrom, { source: 'snapshot', replayed: 1 });
        assert.equal(text((await replica.get('after'))?.value), 'x');
        await replica.close();
        await s.close();
      } finally {
        dispose();
      }
    });

    it('a checkpoint asked while a write is in flight holds the write; one with nothing changed saves nothing', async () => {
      const { store, dispose } = subject.make();
      try {
        const s = store();
        const replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        await fill(replica, 20, 0);
        assert.equal((await replica.checkpoint()).saved, true);
        assert.deepStrictEqual(await replica.checkpoint(), { saved: false, changes: 30 });
        const put = replica.put('racing', value('y'));
        const checkpoint = replica.checkpoint();
        await put;
        assert.deepStrictEqual(await checkpoint, { saved: true, changes: 31 });
        const { replica: reopened, s: again } = await restart(store, s);
        assert.deepStrictEqual(reopened.openedFrom, { source: 'snapshot' });
        assert.equal(text((await reopened.get('racing'))?.value), 'y');
        await reopened.close();
        await reopened.checkpoint().then(
          () => assert.fail('a closed replica saved a checkpoint'),
          (error: unknown) => assert.ok(error instanceof ReplicaClosedError),
        );
        await again.close();
      } finally {
        dispose();
      }
    });
  });
}

describe('Replica checkpoints after a failed store write', () => {
  it('saves no snapshot from a tree that may lack a write the store took (checkpoint and stop both refuse)', async () => {
    /** A store whose next write stores the entries and then fails, as a write whose reply was lost. */
    class FailingStore extends MemoryStore {
      failNext = false;
      /** The next write fails without storing anything. */
      refuseNext = false;
      override async write(...args: Parameters<MemoryStore['write']>): Promise<void> {
        if (this.refuseNext) {
          this.refuseNext = false;
          throw new Error('disk said no');
        }
        await super.write(...args);
        if (this.failNext) {
          this.failNext = false;
          throw new Error('disk said no');
        }
      }
    }
    const store = new FailingStore();
    const replica = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, depth: 3 });
    await replica.put('a', value('1'));
    assert.equal((await replica.checkpoint()).saved, true);
    store.failNext = true;
    await assert.rejects(replica.put('b', value('2')), /disk said no/);
    await assert.rejects(replica.checkpoint(), /no snapshot is saved from this tree/);
    // The write reached the store (with its tombstone count, in the same batch) after the
    // checkpoint: a start now replays it on top, as a scan would find it.
    const replayed = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, depth: 3 });
    assert.deepStrictEqual(replayed.openedFrom, { source: 'snapshot', replayed: 1 });
    assert.equal(text((await replayed.get('b'))?.value), '2');
    const scan = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, depth: 3, useSnapshot: false });
    assert.ok(sameRoot(replayed, scan), 'the same root as a scan');
    await replica.close();
    await assert.rejects(replica.saveSnapshot(), /no snapshot is saved from this tree/);

    // Writes after a failure carry no tombstone count (the tree may lack a change): a start after them scans.
    const other = new FailingStore();
    const writer = await Replica.open({ nodeId: nodeA, store: other, wallClockMs: () => baseMs, depth: 3 });
    await writer.put('a', value('1'));
    assert.equal((await writer.checkpoint()).saved, true);
    other.refuseNext = true;
    await assert.rejects(writer.put('b', value('2')), /disk said no/);
    await writer.put('c', value('3'));
    const reopened = await Replica.open({ nodeId: nodeA, store: other, wallClockMs: () => baseMs, depth: 3 });
    assert.deepStrictEqual(reopened.openedFrom, { source: 'scan', snapshot: 'stale' });
    assert.equal(text((await reopened.get('c'))?.value), '3');
    await writer.close();
  });
});
