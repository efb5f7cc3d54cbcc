/**
 * LevelStore.write hands every row to classic-level's native batch as a view of one scratch
 * memory (src/store/batch-rows.ts). That is right only while the native batch copies a row
 * the moment it is added: the first case checks that assumption against the installed
 * classic-level, so an upgrade that changed it fails here instead of storing the wrong bytes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Level } from 'level';
import type { Entry } from '../../src/core/entry.js';
import { hlcPack } from '../../src/core/hlc.js';
import { batchRows, RowScratch } from '../../src/store/batch-rows.js';
import { LevelStore } from '../../src/store/level-store.js';

const nodeA = '0123456789abcdef';

async function withDirectory(run: (directory: string) => Promise<void>): Promise<void> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'ckv-batch-rows-'));
  try {
    await run(directory);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

const text = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : Buffer.from(bytes).toString('latin1'));

describe('batch rows', () => {
  it("classic-level's native batch copies each row as it is added (the scratch is reused at once)", async () => {
    await withDirectory(async (directory) => {
      const db = new Level<Uint8Array, Uint8Array>(directory, { keyEncoding: 'view', valueEncoding: 'view' });
      await db.open();
      try {
        const batch = db.batch();
        const { put, del, copies } = batchRows(batch);
        assert.equal(copies, true, 'the native batch is taken as one that copies');
        const scratch = Buffer.alloc(8);
        const view = new Uint8Array(scratch.buffer, scratch.byteOffset, 4);
        for (const [key, value] of [['key1', 'one!'], ['key2', 'two!'], ['key3', 'gone']] as const) {
          scratch.write(key, 0, 'latin1');
          const keyView = new Uint8Array(view.slice());
          scratch.write(value, 0, 'latin1');
          put(keyView, view);
        }
        scratch.write('key3', 0, 'latin1');
        del(view);
        scratch.write('XXXX', 0, 'latin1'); // after every row: changes nothing the batch holds
        batch.put(Buffer.from('last'), Buffer.from('row!'));
        await batch.write();
        const values = await db.getMany(['key1', 'key2', 'key3', 'last'].map((key) => Buffer.from(key)));
        assert.deepEqual(values.map(text), ['one!', 'two!', undefined, 'row!']);
      } finally {
        await db.close();
      }
    });
  });

  it('a batch that keeps what it is given is told apart, and gets copies', () => {
    class KeepingBatch {
      readonly rows: Uint8Array[] = [];
      put(key: Uint8Array, value: Uint8Array): void {
        this.rows.push(key, value);
      }
      del(key: Uint8Array): void {
        this.rows.push(key);
      }
    }
    const batch = new KeepingBatch();
    const { put, copies } = batchRows(batch);
    assert.equal(copies, false);
    const scratch = new RowScratch();
    scratch.keyBytes.write('abc', 0, 'latin1');
    scratch.valueBytesFor(3).write('xyz', 0, 'latin1');
    put(scratch.keyCopy(3), scratch.valueCopy(3));
    scratch.keyBytes.write('ZZZ', 0, 'latin1');
    scratch.valueBytesFor(3).write('ZZZ', 0, 'latin1');
    assert.deepEqual(batch.rows.map(text), ['abc', 'xyz']);
  });

  it('views are made once per length; a row larger than the scratch gets memory of its own', () => {
    const scratch = new RowScratch();
    assert.equal(scratch.keyView(10), scratch.keyView(10));
    assert.notEqual(scratch.keyView(10), scratch.keyView(11));
    const small = scratch.valueBytesFor(100);
    assert.equal(scratch.valueView(100), scratch.valueView(100));
    const large = scratch.valueBytesFor(200 * 1024);
    assert.notEqual(large.buffer, small.buffer, 'a large row is not written over the scratch');
    large.fill(7);
    const view = scratch.valueView(200 * 1024);
    assert.equal(view.byteLength, 200 * 1024);
    assert.equal(view.buffer, large.buffer);
    assert.equal(scratch.valueBytesFor(100), small, 'the next small row is back on the scratch');
  });

  it('a LevelStore batch of mixed rows (long, multi-byte and large, tombstones, rewrites) reads back as written', async () => {
    await withDirectory(async (directory) => {
      const store = new LevelStore(directory);
      await store.open();
      try {
        const value = (length: number, fill: number): Uint8Array => new Uint8Array(length).fill(fill);
        const first: Entry[] = [
          { key: 'a', value: value(1, 1), version: { hlc: hlcPack(1000, 0), node: nodeA } },
          { key: 'k'.repeat(1024), value: value(300 * 1024, 2), version: { hlc: hlcPack(1000, 1), node: nodeA } },
          { key: 'é€😀'.repeat(100), value: value(0, 0), version: { hlc: hlcPack(1000, 2), node: nodeA } },
          { key: 'gone', value: null, version: { hlc: hlcPack(1000, 3), node: nodeA } },
          { key: 'b', value: value(70 * 1024, 3), version: { hlc: hlcPack(1000, 4), node: nodeA } },
          { key: 'c', value: value(5, 4), version: { hlc: hlcPack(1000, 5), node: nodeA } },
        ];
        await store.write(first, hlcPack(1000, 5));
        const second: Entry[] = [
          { key: 'c', value: value(9, 5), version: { hlc: hlcPack(2000, 0), node: nodeA } },
          { key: 'a', value: null, version: { hlc: hlcPack(2000, 1), node: nodeA } },
        ];
        await store.write(second, hlcPack(2000, 1));
        const expected = new Map([...first, ...second].map((entry) => [entry.key, entry]));
        const keys = [...expected.keys()];
        assert.deepEqual(await store.getMany(keys), keys.map((key) => expected.get(key)));
        const sequenced = [];
        for await (const each of store.scanSince(0, 100)) sequenced.push([each.seq, each.entry.key]);
        assert.deepEqual(sequenced, [
          [2, 'k'.repeat(1024)],
          [3, 'é€😀'.repeat(100)],
          [4, 'gone'],
          [5, 'b'],
          [7, 'c'],
          [8, 'a'],
        ], 'each rewrite moved its key to the new seq (the old index row deleted)');
        const ordered = [];
        for await (const entry of store.scanKeys()) ordered.push(entry.key);
        assert.deepEqual(ordered, [...keys].sort());
      } finally {
        await store.close();
      }
    });
  });
});
