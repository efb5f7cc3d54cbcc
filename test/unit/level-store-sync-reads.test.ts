/**
 * LevelStore's small point reads run on the calling thread (syncReadKeysMax): with every thread
 * of libuv's pool busy, a Get and a small getMany still answer before any pool job ends, while
 * a larger getMany waits its turn on the pool. Ordering, not timing: each promise records when
 * it settled relative to the others.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2 } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Entry, NodeId } from '../../src/core/entry.js';
import { hlcPack } from '../../src/core/hlc.js';
import { LevelStore, syncReadKeysMax } from '../../src/store/level-store.js';

const nodeA = '00000000000000aa' as NodeId;

const entries = (count: number, prefix: string): Entry[] =>
  Array.from({ length: count }, (_, i) => ({ key: `${prefix}${i}`, value: new Uint8Array(100).fill(i & 0xff), version: { hlc: hlcPack(1000, i), node: nodeA } }));

/** Every libuv pool thread busy with pbkdf2 jobs long enough for the reads to be queued behind them. */
function busyPool(): Promise<unknown>[] {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  return Array.from({ length: threads }, () => promisify(pbkdf2)('p', 's', 300_000, 32, 'sha256'));
}

describe('LevelStore point reads on the calling thread', () => {
  it('answers a Get and a small getMany while the pool is busy; a large getMany waits for the pool', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckv-sync-reads-'));
    const store = new LevelStore(dir);
    try {
      await store.open();
      const stored = entries(syncReadKeysMax + 1, 'k');
      await store.write(stored, hlcPack(2000, 0));

      const settled: string[] = [];
      const note = <T>(name: string, promise: Promise<T>): Promise<T> =>
        promise.then((value) => {
          settled.push(name);
          return value;
        });
      const pool = busyPool().map((job, i) => note(`pool ${i}`, job));
      const large = note('large getMany', store.getMany(stored.map((each) => each.key)));
      const one = note('get', store.get('k3'));
      const small = note('small getMany', store.getMany(['k1', 'absent', 'k2']));
      const missing = note('get absent', store.get('absent'));
      const [oneEntry, smallEntries, missingEntry, largeEntries] = await Promise.all([one, small, missing, large, ...pool]);

      assert.deepStrictEqual(oneEntry, stored[3]);
      assert.deepStrictEqual(smallEntries, [stored[1], undefined, stored[2]]);
      assert.equal(missingEntry, undefined);
      assert.deepStrictEqual(largeEntries, stored);
      const firstPool = settled.findIndex((name) => name.startsWith('pool'));
      assert.ok(firstPool >= 0);
      for (const name of ['get', 'small getMany', 'get absent']) {
        assert.ok(settled.indexOf(name) < firstPool, `${name} settled before every pool job (order: ${settled.join(', ')})`);
      }
      assert.ok(settled.indexOf('large getMany') > firstPool, `a getMany of ${syncReadKeysMax + 1} keys goes to the pool, behind its jobs (order: ${settled.join(', ')})`);
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
