/**
 * Replica.dropUnchanged (the purge of partitions a partitioned node no longer holds), over
 * both stores: only entries still at the version given go; the tree, the tombstone count and
 * the applied-sequence index stay those of the store (a reopen that rebuilds everything from
 * a scan agrees with the live replica); a removal makes a saved snapshot stale.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keyHash, keyHashText, type Entry } from '../../src/core/entry.js';
import { Replica } from '../../src/core/replica.js';
import type { Store } from '../../src/core/store.js';
import { LevelStore } from '../../src/store/level-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';

interface Subject {
  name: string;
  /** A fresh store, and a function giving a (closed) store over the same data. */
  make(): { store: Store; again: () => Store; dispose: () => void };
}

const subjects: Subject[] = [
  {
    name: 'MemoryStore',
    make() {
      const store = new MemoryStore();
      return { store, again: () => store, dispose: () => undefined };
    },
  },
  {
    name: 'LevelStore',
    make() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckv-drop-'));
      return { store: new LevelStore(dir), again: () => new LevelStore(dir), dispose: () => fs.rmSync(dir, { recursive: true, force: true }) };
    },
  },
];

function open(store: Store, clock: { ms: number }): Promise<Replica> {
  return Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms, useSnapshot: false });
}

async function entries(replica: Replica): Promise<Map<string, Entry>> {
  const map = new Map<string, Entry>();
  for await (const entry of replica.scanHash('')) map.set(entry.key, entry);
  return map;
}

async function indexKeys(store: Store): Promise<string[]> {
  const keys: string[] = [];
  for await (const { entry } of store.scanSince(0, Number.MAX_SAFE_INTEGER)) keys.push(entry.key);
  return keys.sort();
}

for (const subject of subjects) {
  describe(`Replica.dropUnchanged over ${subject.name}`, () => {
    it('drops only unchanged entries and keeps tree, index and count consistent with the store across a reopen', async () => {
      const { store, again, dispose } = subject.make();
      try {
        const clock = { ms: 1_700_000_000_000 };
        const replica = await open(store, clock);
        for (let i = 0; i < 300; i++) {
          clock.ms++;
          if (i % 7 === 0) await replica.delete(`k${i}`);
          else await replica.put(`k${i}`, value(`v${i}`));
        }
        // Partition 0x00..0x7f is dropped: read its versions first, as the purge does.
        const inLower = (key: string): boolean => keyHash(key)[0]! < 0x80;
        const before = await entries(replica);
        const drops = [...before.values()].filter((entry) => inLower(entry.key)).map((entry) => ({ key: entry.key, version: entry.version }));
        assert.ok(drops.length > 50);
        // Two keys change after the versions were read: they must stay.
        const rewritten = drops.slice(0, 2).map((drop) => drop.key);
        for (const key of rewritten) {
          clock.ms++;
          await replica.put(key, value('newer'));
        }
        const liveBefore = replica.liveCount;
        const report = await replica.dropUnchanged(drops.concat({ key: 'never-stored', version: drops[0]!.version }));
        assert.equal(report.dropped, drops.length - 2);
        assert.equal(report.changed, 3);
        assert.ok(report.bytes > 0);
        const after = await entries(replica);
        for (const [key] of before) assert.equal(after.has(key), !inLower(key) || rewritten.includes(key), key);
        assert.equal(replica.entryCount, after.size);
        const droppedLive = drops.filter((drop) => !rewritten.includes(drop.key) && before.get(drop.key)!.value !== null).length;
        assert.equal(replica.liveCount, liveBefore - droppedLive);
        assert.deepEqual(await indexKeys(store), [...after.keys()].sort(), 'one index row per stored entry');
        // A dropped key written again is a new key.
        clock.ms++;
        await replica.put(drops[5]!.key, value('back'));
        const root = replica.root();
        const live = replica.liveCount;
        await replica.close();
        await replica.saveSnapshot();
        await store.close();

        // Rebuilt from a scan: the same root and counts as the live replica had.
        const reopenedStore = again();
        const reopened = await open(reopenedStore, clock);
        assert.deepEqual(reopened.root(), root);
        assert.equal(reopened.liveCount, live);
        assert.deepEqual(await indexKeys(reopenedStore), [...(await entries(reopened)).keys()].sort());
        await reopened.close();
        await reopenedStore.close();
      } finally {
        dispose();
      }
    });

    it('Store.remove makes a saved snapshot stale', async () => {
      const { store, dispose } = subject.make();
      try {
        const clock = { ms: 1_700_000_000_000 };
        const replica = await open(store, clock);
        for (let i = 0; i < 20; i++) await replica.put(`k${i}`, value('v'));
        await replica.close();
        const seqs: (number | undefined)[] = [];
        await store.getMany(['k3'], undefined, seqs);
        await store.saveSnapshot(new Uint8Array([1, 2, 3]));
        await store.remove!([{ key: 'k3', keyHash: keyHashText('k3'), seq: seqs[0]! }], await store.readHlc());
        assert.equal((await store.readSnapshot()).state, 'stale');
        assert.equal(await store.get('k3'), undefined);
        await store.close();
      } finally {
        dispose();
      }
    });
  });
}
