/**
 * One compliance suite for every Store implementation: the simulator trusts MemoryStore to
 * behave like LevelStore, so both must pass the same cases. LevelStore runs in a fresh
 * temporary directory per case, removed afterwards. Property tests keep numRuns small so
 * the whole file stays fast.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Level } from 'level';
import { encodeEntry, keyHashPrefix, keyHashText, type Entry } from '../../src/core/entry.js';
import { StoreLockedError } from '../../src/core/errors.js';
import type { Hlc } from '../../src/core/hlc.js';
import { LevelStore } from '../../src/store/level-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { ScanKeysOptions, Store } from '../../src/core/store.js';

const propertyRuns = 25;
const nodeA = '0123456789abcdef';
const nodeB = 'fedcba9876543210';

interface Harness {
  /** Already open. */
  readonly store: Store;
  /** A closed store over the same data, as after a restart: same MemoryStore, new LevelStore. */
  restarted(): Store;
  dispose(): Promise<void>;
}

interface Subject {
  readonly name: string;
  make(): Promise<Harness>;
}

const memorySubject: Subject = {
  name: 'MemoryStore',
  async make() {
    const store = new MemoryStore();
    await store.open();
    return { store, restarted: () => store, dispose: () => store.close() };
  },
};

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ckv-store-'));
}

const levelSubject: Subject = {
  name: 'LevelStore',
  async make() {
    const dir = tempDir();
    const opened: Store[] = [];
    const track = (store: Store): Store => {
      opened.push(store);
      return store;
    };
    const store = track(new LevelStore(dir));
    await store.open();
    return {
      store,
      restarted: () => track(new LevelStore(dir)),
      async dispose() {
        for (const each of opened) await each.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

async function withStore(subject: Subject, run: (harness: Harness) => Promise<void>): Promise<void> {
  const harness = await subject.make();
  try {
    await run(harness);
  } finally {
    await harness.dispose();
  }
}

function entry(key: string, value: Uint8Array | null, hlc: Hlc = 1n, node = nodeA): Entry {
  return { key, value, version: { hlc, node } };
}

async function collect<T>(entries: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const each of entries) all.push(each);
  return all;
}

function keysOf(entries: readonly Entry[]): string[] {
  return entries.map((each) => each.key);
}

/** Keys from a small alphabet share prefixes often; it includes the UTF-16 vs UTF-8 order trap. */
const alphabet = ['a', 'b', 'é', '\u0000', '\uffff', '\u{10000}', '\u{1f511}'];
const smallString = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...alphabet), minLength, maxLength });
const keyArb = fc.oneof(smallString(1, 4), fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }));
const valueArb = fc.option(fc.uint8Array({ maxLength: 16 }), { nil: null });
const entriesArb = fc
  .uniqueArray(keyArb, { maxLength: 40 })
  .chain((keys) => fc.tuple(...keys.map((key) => valueArb.map((value) => entry(key, value, 7n)))));
const hexDigit = fc.constantFrom(...'0123456789abcdef');

function complianceSuite(subject: Subject): void {
  describe(`Store compliance: ${subject.name}`, () => {
    // The applied-sequence index (store.ts): one row per key at its entry's seq; an
    // overwrite moves the key's row in the same batch; scanSince reads a seq range in order.
    it('keeps one index row per key, moved by an overwrite, and scans a seq range in order', async () => {
      await withStore(subject, async ({ store, restarted }) => {
        assert.equal(await store.readSeqLast(), 0);
        await store.write([entry('a', new Uint8Array([1])), entry('b', null), entry('c', new Uint8Array(0))], 1n, undefined, {
          seqFirst: 1,
          previousSeqs: [undefined, undefined, undefined],
        });
        const seqs: (number | undefined)[] = [];
        assert.equal((await store.getMany(['b', 'missing', 'a'], undefined, seqs)).length, 3);
        assert.deepStrictEqual(seqs, [2, undefined, 1]);
        await store.write([entry('a', new Uint8Array([2]), 2n)], 2n, undefined, { seqFirst: 4, previousSeqs: [1] });
        assert.equal(await store.readSeqLast(), 4);
        const all = await collect(store.scanSince(0, 4));
        assert.deepStrictEqual(
          all.map((each) => [each.seq, each.entry.key]),
          [
            [2, 'b'],
            [3, 'c'],
            [4, 'a'],
          ],
        );
        assert.deepStrictEqual(all[2]!.entry, entry('a', new Uint8Array([2]), 2n));
        assert.deepStrictEqual((await collect(store.scanSince(2, 3))).map((each) => each.seq), [3], 'after, up to: both bounds');
        assert.deepStrictEqual(await collect(store.scanSince(4, 9)), []);
        // A write without the replica's numbering numbers after the last seq and finds the old rows itself.
        await store.write([entry('c', new Uint8Array([3]), 3n)], 3n);
        assert.deepStrictEqual((await collect(store.scanSince(0, 9))).map((each) => [each.seq, each.entry.key]), [
          [2, 'b'],
          [4, 'a'],
          [5, 'c'],
        ]);
        // A numbering that goes back is a bug, refused before anything is written.
        await assert.rejects(store.write([entry('d', null)], 4n, undefined, { seqFirst: 5, previousSeqs: [undefined] }));
        await store.close();
        const reopened = restarted();
        await reopened.open();
        assert.equal(await reopened.readSeqLast(), 5);
      });
    });

    // The encoded scans (a sync responder copies their bytes into frames): exactly the entries
    // of scanSince / scanHash(''), each as encodeEntry would write it, nothing else.
    it('encoded scans hand out scanSince and scanHash entries as encodeEntry bytes', async () => {
      await fc.assert(
        fc.asyncProperty(entriesArb, fc.nat({ max: 45 }), async (entries, cut) => {
          await withStore(subject, async ({ store }) => {
            if (store.scanSinceEncoded === undefined || store.scanAllEncoded === undefined) return;
            if (entries.length > 0) await store.write(entries, 9n);
            const seqLast = await store.readSeqLast();
            const flat = async (batches: AsyncIterable<readonly Uint8Array[]>): Promise<string[]> => {
              const out: string[] = [];
              for await (const batch of batches) for (const bytes of batch) out.push(Buffer.from(bytes).toString('hex'));
              return out;
            };
            const since = Math.min(cut, seqLast);
            const expectedSince = (await collect(store.scanSince(since, seqLast))).map((each) => Buffer.from(encodeEntry(each.entry)).toString('hex'));
            assert.deepStrictEqual(await flat(store.scanSinceEncoded(since, seqLast)), expectedSince);
            assert.deepStrictEqual(await flat(store.scanSinceEncoded(seqLast, seqLast)), []);
            const expectedAll = (await collect(store.scanHash(''))).map((each) => Buffer.from(encodeEntry(each)).toString('hex'));
            assert.deepStrictEqual((await flat(store.scanAllEncoded())).sort(), expectedAll.sort());
          });
        }),
        { numRuns: propertyRuns },
      );
    });

    // A received entry's own bytes (WriteIndex.encodings, checked canonical when decoded) are
    // stored as they are instead of encoded again: the same rows as a write without them, so
    // gets, scans and the encoded scans cannot tell the two apart. Some entries come without.
    it('a write with the entries\' own encodings stores what a write without them does', async () => {
      await fc.assert(
        fc.asyncProperty(entriesArb, fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }), async (entries, given) => {
          await withStore(subject, async ({ store }) => {
            await store.write(entries.slice(0, 3), 8n); // some keys are then rewritten
            const previousSeqs: (number | undefined)[] = [];
            await store.getMany(keysOf(entries), undefined, previousSeqs);
            // A copy, in a larger buffer, so a store that keeps a view of the caller's memory is caught.
            const encodings = entries.map((each, i) => (given[i] ? Buffer.concat([Buffer.from([0xee]), encodeEntry(each)]).subarray(1) : undefined));
            await store.write(entries, 9n, undefined, { seqFirst: (await store.readSeqLast()) + 1, previousSeqs, encodings });
            for (const bytes of encodings) bytes?.fill(0);
            assert.deepStrictEqual(await store.getMany(keysOf(entries)), entries);
            const seqLast = await store.readSeqLast();
            const encoded: string[] = [];
            for await (const batch of store.scanSinceEncoded!(0, seqLast)) for (const bytes of batch) encoded.push(Buffer.from(bytes).toString('hex'));
            const expected = (await collect(store.scanSince(0, seqLast))).map((each) => Buffer.from(encodeEntry(each.entry)).toString('hex'));
            assert.deepStrictEqual(encoded, expected);
            assert.deepStrictEqual((await collect(store.scanHash(''))).length, new Set([...keysOf(entries)]).size);
          });
        }),
        { numRuns: propertyRuns },
      );
    });

    // LevelStore reads the next batch of rows while the caller works on one (valueBatches):
    // more entries than one batch holds (1,024 rows), read whole and left after one batch.
    it('encoded scans of several batches: every entry in order, and a scan left early closes', async () => {
      await withStore(subject, async ({ store }) => {
        if (store.scanSinceEncoded === undefined || store.scanAllEncoded === undefined) return;
        const value = new Uint8Array(16).fill(3);
        const keys = Array.from({ length: 2500 }, (_, i) => `many/${i}`);
        for (let i = 0; i < keys.length; i += 500) await store.write(keys.slice(i, i + 500).map((key) => entry(key, value)), 1n);
        const seqLast = await store.readSeqLast();
        assert.equal(seqLast, keys.length);
        const texts = async (batches: AsyncIterable<readonly Uint8Array[]>): Promise<string[]> => {
          const out: string[] = [];
          for await (const batch of batches) for (const bytes of batch) out.push(Buffer.from(bytes).toString('hex'));
          return out;
        };
        const expected = keys.map((key) => Buffer.from(encodeEntry(entry(key, value))).toString('hex'));
        assert.deepStrictEqual(await texts(store.scanSinceEncoded(0, seqLast)), expected);
        assert.deepStrictEqual((await texts(store.scanAllEncoded())).sort(), [...expected].sort());
        for (const scan of [store.scanSinceEncoded(0, seqLast), store.scanAllEncoded()]) {
          for await (const batch of scan) {
            assert.ok(batch.length > 0);
            break; // the iterator closes with the next batch possibly still being read
          }
        }
        // Nothing left open or in flight: another scan reads it all, and the store closes.
        assert.equal((await texts(store.scanSinceEncoded(2000, seqLast))).length, 500);
      });
    });

    // A batch holding a row of several MiB is not read past before the caller comes back
    // (valueBatches' memory bound): the scans still hand out every row, in order.
    it('encoded scans over rows of several MiB, between small ones', async () => {
      await withStore(subject, async ({ store }) => {
        if (store.scanSinceEncoded === undefined || store.scanAllEncoded === undefined) return;
        const large = new Uint8Array(3 * 1024 * 1024).fill(5);
        const small = new Uint8Array(8).fill(1);
        const written = Array.from({ length: 9 }, (_, i) => entry(`mixed/${i}`, i % 3 === 1 ? large : small));
        for (const each of written) await store.write([each], 1n);
        const seqLast = await store.readSeqLast();
        const digests = async (batches: AsyncIterable<readonly Uint8Array[]>): Promise<string[]> => {
          const out: string[] = [];
          for await (const batch of batches) for (const bytes of batch) out.push(createHash('sha256').update(bytes).digest('hex'));
          return out;
        };
        const expected = written.map((each) => createHash('sha256').update(encodeEntry(each)).digest('hex'));
        assert.deepStrictEqual(await digests(store.scanSinceEncoded(0, seqLast)), expected);
        assert.deepStrictEqual((await digests(store.scanAllEncoded())).sort(), [...expected].sort());
      });
    });

    it('index: any sequence of batches leaves one row per key, in seq order, at the seq of its last write', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { minLength: 1, maxLength: 4 }), { maxLength: 8 }), async (batches) => {
          await withStore(subject, async ({ store }) => {
            const lastSeq = new Map<string, number>();
            let seq = 0;
            for (const keys of batches) {
              const unique = [...new Set(keys)];
              await store.write(unique.map((key) => entry(key, null, BigInt(seq + 1))), 1n);
              for (const key of unique) lastSeq.set(key, ++seq);
            }
            const rows = await collect(store.scanSince(0, seq));
            assert.deepStrictEqual(
              rows.map((each) => [each.seq, each.entry.key]),
              [...lastSeq].map(([key, at]) => [at, key]).sort((x, y) => (x[0] as number) - (y[0] as number)),
            );
          });
        }),
        { numRuns: propertyRuns },
      );
    });

    it('get of a missing key is undefined', async () => {
      await withStore(subject, async ({ store }) => {
        assert.equal(await store.get('missing'), undefined);
      });
    });

    it('stores live values with exact bytes, tombstones and versions', async () => {
      await withStore(subject, async ({ store }) => {
        const live = entry('live', new Uint8Array([0, 1, 0, 255, 0, 0]), (1n << 63n) + 5n, nodeB);
        const empty = entry('empty', new Uint8Array(0), 2n);
        const tombstone = entry('gone', null, 3n);
        await store.write([live, empty, tombstone], 10n);
        assert.deepStrictEqual(await store.get('live'), live);
        assert.deepStrictEqual(await store.get('empty'), empty);
        assert.deepStrictEqual(await store.get('gone'), tombstone);
      });
    });

    it('a later write replaces the entry', async () => {
      await withStore(subject, async ({ store }) => {
        await store.write([entry('k', new Uint8Array([1]), 1n)], 1n);
        const next = entry('k', new Uint8Array([2, 2]), 2n, nodeB);
        await store.write([next], 2n);
        assert.deepStrictEqual(await store.get('k'), next);
        await store.write([entry('k', null, 3n)], 3n);
        assert.deepStrictEqual(await store.get('k'), entry('k', null, 3n));
        assert.deepStrictEqual(keysOf(await collect(store.scanHash(''))), ['k']);
        // The key-order index lists the key once, with its latest entry.
        assert.deepStrictEqual(await collect(store.scanKeys({})), [entry('k', null, 3n)]);
      });
    });

    // The replica passes the key hashes it computed; results are the same as without them.
    it('write and getMany with the caller key hashes equal those without', async () => {
      await withStore(subject, async ({ store }) => {
        const withHashes = [entry('h1', new Uint8Array([1])), entry('h\u{1f511}', null, 4n, nodeB)];
        const without = [entry('n1', new Uint8Array(300).fill(2), 2n)];
        await store.write(withHashes, 4n, withHashes.map((each) => keyHashText(each.key)));
        await store.write(without, 5n);
        const keys = ['h1', 'missing', 'n1', 'h\u{1f511}'];
        const expected = [withHashes[0], undefined, without[0], withHashes[1]];
        assert.deepStrictEqual(await store.getMany(keys, keys.map(keyHashText)), expected);
        assert.deepStrictEqual(await store.getMany(keys), expected);
        for (const each of [...withHashes, ...without]) {
          assert.deepStrictEqual(await collect(store.scanHash(keyHashPrefix(each.key))), [each]);
        }
        assert.equal(await store.readHlc(), 5n);
      });
    });

    it('a written value is copied: reusing the caller buffer changes nothing', async () => {
      await withStore(subject, async ({ store }) => {
        const buffer = new Uint8Array([1, 2, 3]);
        await store.write([entry('k', buffer)], 1n);
        buffer.fill(9);
        assert.deepStrictEqual((await store.get('k'))?.value, new Uint8Array([1, 2, 3]));
      });
    });

    it('readHlc is 0n when new and then the last written bound', async () => {
      await withStore(subject, async ({ store }) => {
        assert.equal(await store.readHlc(), 0n);
        await store.write([entry('a', null)], 100n);
        assert.equal(await store.readHlc(), 100n);
        await store.write([], 2n ** 64n - 1n); // an empty batch still moves the bound
        assert.equal(await store.readHlc(), 2n ** 64n - 1n);
      });
    });

    it('open and close are idempotent; close then open keeps entries, hlc and meta', async () => {
      await withStore(subject, async ({ store }) => {
        await store.open();
        const kept = entry('kept', new Uint8Array([0, 7]), 5n);
        await store.write([kept], 42n);
        await store.putMeta('node', new Uint8Array([1, 2]));
        await store.close();
        await store.close();
        await store.open();
        assert.deepStrictEqual(await store.get('kept'), kept);
        assert.equal(await store.readHlc(), 42n);
        assert.deepStrictEqual(await store.getMeta('node'), new Uint8Array([1, 2]));
      });
    });

    it('a restarted store over the same data keeps entries, hlc and meta', async () => {
      await withStore(subject, async (harness) => {
        const kept = [entry('x', new Uint8Array([3])), entry('y', null, 9n, nodeB)];
        await harness.store.write(kept, 9n);
        await harness.store.putMeta('schema', new Uint8Array([1]));
        await harness.store.close();
        const store = harness.restarted();
        await store.open();
        assert.deepStrictEqual(await store.get('x'), kept[0]);
        assert.deepStrictEqual(await store.get('y'), kept[1]);
        assert.equal(await store.readHlc(), 9n);
        assert.deepStrictEqual(await store.getMeta('schema'), new Uint8Array([1]));
        assert.deepStrictEqual(keysOf(await collect(store.scanKeys())), ['x', 'y']);
      });
    });

    it('unicode keys round-trip and scan in UTF-16 code unit order', async () => {
      await withStore(subject, async ({ store }) => {
        const keys = ['ключ', '🔑', '\uffff', '\u{10000}', 'a\u0000b', 'a', 'é', '日本語'];
        await store.write(
          keys.map((key, i) => entry(key, new Uint8Array([i]))),
          1n,
        );
        for (const [i, key] of keys.entries()) assert.deepStrictEqual(await store.get(key), entry(key, new Uint8Array([i])));
        assert.deepStrictEqual(keysOf(await collect(store.scanKeys())), [...keys].sort());
        // U+FFFF is one code unit 0xFFFF; U+10000 starts with 0xD800, so it sorts first.
        assert.deepStrictEqual(keysOf(await collect(store.scanKeys({ prefix: '\u{10000}' }))), ['\u{10000}']);
      });
    });

    it('meta: missing is undefined, put then get, put replaces', async () => {
      await withStore(subject, async ({ store }) => {
        assert.equal(await store.getMeta('node'), undefined);
        await store.putMeta('node', new Uint8Array([0, 1, 0]));
        assert.deepStrictEqual(await store.getMeta('node'), new Uint8Array([0, 1, 0]));
        await store.putMeta('node', new Uint8Array([5]));
        assert.deepStrictEqual(await store.getMeta('node'), new Uint8Array([5]));
        assert.equal(await store.get('node'), undefined); // meta is not an entry
      });
    });

    it('snapshot: none at first; read back as saved, and again until a write; readHlc the same throughout', async () => {
      await withStore(subject, async ({ store }) => {
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'none' });
        await store.write([entry('a', new Uint8Array([1]))], 77n);
        const bytes = new Uint8Array([9, 8, 7, 0, 255]);
        await store.saveSnapshot(bytes);
        bytes.fill(0); // the store keeps a copy
        assert.equal(await store.readHlc(), 77n);
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'current', bytes: new Uint8Array([9, 8, 7, 0, 255]) });
        assert.equal(await store.readHlc(), 77n);
        // Reading does not forget it: a start killed before its first write finds it again.
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'current', bytes: new Uint8Array([9, 8, 7, 0, 255]) });
        assert.equal(await store.readHlc(), 77n);
        assert.deepStrictEqual(await store.get('a'), entry('a', new Uint8Array([1])));
        await store.write([entry('b', null)], 78n);
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'stale' });
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'none' }); // a stale one is forgotten
        assert.equal(await store.readHlc(), 78n);
      });
    });

    it('snapshot: a write after the save makes it stale, even an empty batch', async () => {
      await withStore(subject, async ({ store }) => {
        await store.write([entry('a', null)], 5n);
        await store.saveSnapshot(new Uint8Array([1]));
        await store.write([entry('b', null)], 6n);
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'stale' });
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'none' });
        assert.equal(await store.readHlc(), 6n);
        await store.saveSnapshot(new Uint8Array([2]));
        await store.write([], 7n);
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'stale' });
        assert.equal(await store.readHlc(), 7n);
      });
    });

    it('snapshot: behind after writes that gave their tombstone count (left in place); stale after a remove or a write without one', async () => {
      await withStore(subject, async ({ store }) => {
        const index = (seqFirst: number, count: number, tombstones?: number) => ({ seqFirst, previousSeqs: new Array<undefined>(count).fill(undefined), ...(tombstones === undefined ? {} : { tombstones }) });
        await store.write([entry('a', null), entry('b', new Uint8Array([1]))], 5n, undefined, index(1, 2, 1));
        await store.saveSnapshot(new Uint8Array([1]));
        // An empty batch with a count: nothing written after the snapshot to replay.
        await store.write([], 5n, undefined, index(3, 0, 1));
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'stale' });
        await store.saveSnapshot(new Uint8Array([2]));
        await store.write([entry('c', null)], 6n, undefined, index(3, 1, 2));
        await store.write([entry('d', null)], 7n, undefined, index(4, 1, 3));
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'behind', bytes: new Uint8Array([2]), seqAt: 2, tombstones: 3 });
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'behind', bytes: new Uint8Array([2]), seqAt: 2, tombstones: 3 }, 'left in place');
        assert.deepStrictEqual(
          (await collect(store.scanSince(2, await store.readSeqLast()))).map((row) => row.entry.key),
          ['c', 'd'],
        );
        // A write without a count: the count kept is not the last write's.
        await store.write([entry('e', null)], 8n);
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'stale' });
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'none' });
        // A remove leaves no row to replay, whatever the counts after it.
        await store.saveSnapshot(new Uint8Array([3]));
        await store.write([entry('f', null)], 9n, undefined, index(6, 1, 5));
        await store.remove!([{ key: 'a', keyHash: keyHashText('a'), seq: 1 }], 9n);
        await store.write([entry('g', null)], 10n, undefined, index(7, 1, 5));
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'stale' });
        assert.equal(await store.readHlc(), 10n);
      });
    });

    // A purge removed the row of the greatest seq before the snapshot; after a restart the
    // replica numbers from the last row left (readSeqLast), so that seq is given again: the
    // replay must start below it.
    it('snapshot: behind after a purge of the last seq, a save and a restart: the tail holds every write after the save', async () => {
      await withStore(subject, async (harness) => {
        const index = (seqFirst: number, count: number, tombstones: number) => ({ seqFirst, previousSeqs: new Array<undefined>(count).fill(undefined), tombstones });
        await harness.store.write([entry('a', null), entry('b', null), entry('c', null)], 5n, undefined, index(1, 3, 3));
        await harness.store.remove!([{ key: 'c', keyHash: keyHashText('c'), seq: 3 }], 5n);
        await harness.store.saveSnapshot(new Uint8Array([4]));
        await harness.store.close();
        const store = harness.restarted();
        await store.open();
        const next = (await store.readSeqLast()) + 1;
        await store.write([entry('d', null)], 6n, undefined, index(next, 1, 3));
        await store.write([entry('e', null)], 7n, undefined, index(next + 1, 1, 4));
        const taken = await store.readSnapshot();
        assert.equal(taken.state, 'behind');
        const { seqAt, tombstones } = taken as { seqAt: number; tombstones: number };
        assert.equal(tombstones, 4);
        assert.deepStrictEqual(
          (await collect(store.scanSince(seqAt, await store.readSeqLast()))).map((row) => row.entry.key),
          ['d', 'e'],
        );
      });
    });

    it('snapshot: read at a start and not written to, current at the next start too; the first write after makes it stale', async () => {
      await withStore(subject, async (harness) => {
        await harness.store.write([entry('a', null)], 21n);
        await harness.store.saveSnapshot(new Uint8Array([7, 7]));
        await harness.store.close();
        // Two starts in a row, each killed before any write (a crash loop): both find it.
        for (let start = 0; start < 2; start++) {
          const store = harness.restarted();
          await store.open();
          assert.deepStrictEqual(await store.readSnapshot(), { state: 'current', bytes: new Uint8Array([7, 7]) }, `start ${start}`);
          assert.equal(await store.readHlc(), 21n);
          await store.close();
        }
        const store = harness.restarted();
        await store.open();
        assert.equal((await store.readSnapshot()).state, 'current');
        await store.write([entry('b', new Uint8Array([1]))], 22n);
        await store.close();
        const after = harness.restarted();
        await after.open();
        assert.deepStrictEqual(await after.readSnapshot(), { state: 'stale' });
        assert.equal(await after.readHlc(), 22n);
        assert.deepStrictEqual(await after.get('b'), entry('b', new Uint8Array([1])));
      });
    });

    it('snapshot: saved twice, the second is current; a new store saves one too', async () => {
      await withStore(subject, async ({ store }) => {
        await store.saveSnapshot(new Uint8Array([1]));
        await store.saveSnapshot(new Uint8Array([2]));
        assert.equal(await store.readHlc(), 0n);
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'current', bytes: new Uint8Array([2]) });
        await store.write([entry('a', null)], 3n);
        await store.saveSnapshot(new Uint8Array([3]));
        await store.saveSnapshot(new Uint8Array([4]));
        assert.equal(await store.readHlc(), 3n);
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'current', bytes: new Uint8Array([4]) });
        assert.equal(await store.readHlc(), 3n);
      });
    });

    it('snapshot: survives a restart of the store; a write after the restart makes it stale', async () => {
      await withStore(subject, async (harness) => {
        await harness.store.write([entry('a', null)], 11n);
        await harness.store.saveSnapshot(new Uint8Array([5, 5]));
        await harness.store.close();
        const store = harness.restarted();
        await store.open();
        assert.equal(await store.readHlc(), 11n);
        assert.deepStrictEqual(await store.readSnapshot(), { state: 'current', bytes: new Uint8Array([5, 5]) });
        await store.saveSnapshot(new Uint8Array([6]));
        await store.close();
        const again = harness.restarted();
        await again.open();
        await again.write([entry('b', null)], 12n);
        assert.deepStrictEqual(await again.readSnapshot(), { state: 'stale' });
        assert.equal(await again.readHlc(), 12n);
      });
    });

    it('sizeBytes is positive after writes', async () => {
      await withStore(subject, async ({ store }) => {
        await store.write([entry('k', new Uint8Array(1000))], 1n);
        assert.ok((await store.sizeBytes()) > 0);
      });
    });

    it('scanKeys pages through more keys than one fetch batch', async () => {
      await withStore(subject, async ({ store }) => {
        const keys = Array.from({ length: 600 }, (_, i) => `key${String(i).padStart(4, '0')}`);
        await store.write(
          keys.map((key) => entry(key, null)),
          1n,
        );
        assert.deepStrictEqual(keysOf(await collect(store.scanKeys())), keys);
        assert.deepStrictEqual(keysOf(await collect(store.scanKeys({ limit: 300 }))), keys.slice(0, 300));
        const page = await collect(store.scanKeys({ startAfter: keys[299], limit: 257 }));
        assert.deepStrictEqual(keysOf(page), keys.slice(300, 557));
        assert.deepStrictEqual(keysOf(await collect(store.scanKeys({ limit: 0 }))), []);
      });
    });

    it('scanHash splits keys that share 4 hash digits but differ in the 5th', async () => {
      await withStore(subject, async ({ store }) => {
        // 3000 keys over 65,536 four-digit buckets: dozens of buckets hold two keys.
        const entries = Array.from({ length: 3000 }, (_, i) => entry(`k${i}`, null));
        await store.write(entries, 1n);
        const hashes = new Map(entries.map((each) => [each.key, keyHashPrefix(each.key)]));
        const bucketSizes = new Map<string, number>();
        for (const hash of hashes.values()) bucketSizes.set(hash.slice(0, 4), (bucketSizes.get(hash.slice(0, 4)) ?? 0) + 1);
        const shared = [...hashes.values()].filter((hash) => bucketSizes.get(hash.slice(0, 4))! > 1);
        assert.ok(shared.length > 0);
        for (const hash of shared) {
          for (const digits of [2, 3, 4, 5, 6]) {
            const prefix = hash.slice(0, digits);
            const expected = [...hashes].filter(([, other]) => other.startsWith(prefix)).map(([key]) => key);
            assert.deepStrictEqual(keysOf(await collect(store.scanHash(prefix))).sort(), expected.sort());
          }
        }
      });
    });

    it('scanHash returns exactly the keys whose hash prefix starts with the prefix', async () => {
      await fc.assert(
        fc.asyncProperty(
          entriesArb,
          fc.string({ unit: hexDigit, minLength: 1, maxLength: 5 }),
          async (entries, randomPrefix) => {
            await withStore(subject, async ({ store }) => {
              await store.write(entries, 1n);
              const all = await collect(store.scanHash(''));
              assert.deepStrictEqual(keysOf(all).sort(), keysOf(entries).sort());
              // Prefixes of real keys' hashes (so scans are not all empty) plus a random one.
              const prefixes = [randomPrefix];
              for (const each of entries.slice(0, 3)) {
                for (let digits = 1; digits <= 5; digits++) prefixes.push(keyHashPrefix(each.key).slice(0, digits));
              }
              for (const prefix of prefixes) {
                const expected = entries.filter((each) => keyHashPrefix(each.key).startsWith(prefix));
                const actual = await collect(store.scanHash(prefix));
                const byKey = (a: Entry, b: Entry) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
                assert.deepStrictEqual(actual.sort(byKey), expected.sort(byKey), `prefix ${prefix}`);
              }
            });
          },
        ),
        { numRuns: propertyRuns },
      );
    });

    it('scanKeys with prefix, startAfter and limit matches a sorted reference', async () => {
      await fc.assert(
        fc.asyncProperty(
          entriesArb,
          fc.option(smallString(0, 2), { nil: undefined }),
          fc.option(fc.oneof(fc.nat(), smallString(0, 3)), { nil: undefined }),
          fc.option(fc.nat({ max: 12 }), { nil: undefined }),
          async (entries, prefix, startAfterPick, limit) => {
            // A number picks one of the stored keys, so startAfter often hits a key exactly.
            const startAfter =
              typeof startAfterPick === 'number' ? entries[startAfterPick % Math.max(1, entries.length)]?.key : startAfterPick;
            const options: ScanKeysOptions = {};
            if (prefix !== undefined) options.prefix = prefix;
            if (startAfter !== undefined) options.startAfter = startAfter;
            if (limit !== undefined) options.limit = limit;
            const expected = [...entries]
              .sort((a, b) => (a.key < b.key ? -1 : 1))
              .filter((each) => each.key.startsWith(prefix ?? ''))
              .filter((each) => startAfter === undefined || each.key > startAfter)
              .slice(0, limit ?? Infinity);
            await withStore(subject, async ({ store }) => {
              await store.write(entries, 1n);
              assert.deepStrictEqual(await collect(store.scanKeys(options)), expected);
            });
          },
        ),
        { numRuns: propertyRuns },
      );
    });
  });
}

complianceSuite(memorySubject);
complianceSuite(levelSubject);

describe('LevelStore on-disk layout', () => {
  /** The layout written directly through sublevels, as LevelStore did before root batches. */
  function sublevels(db: Level<string, Uint8Array>) {
    return {
      e: db.sublevel<string, Uint8Array>('e', { keyEncoding: 'utf8', valueEncoding: 'view' }),
      k: db.sublevel<Uint8Array, Uint8Array>('k', { keyEncoding: 'view', valueEncoding: 'view' }),
      m: db.sublevel<string, Uint8Array>('m', { keyEncoding: 'utf8', valueEncoding: 'view' }),
      s: db.sublevel<Uint8Array, Uint8Array>('s', { keyEncoding: 'view', valueEncoding: 'view' }),
    };
  }
  /** A seq as the store keeps it: 8 bytes big-endian. */
  const seqBytes = (seq: number): Uint8Array => {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64BE(BigInt(seq));
    return new Uint8Array(bytes);
  };
  const utf16be = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'utf16le').swap16());
  const hlcBytes = (hlc: bigint): Uint8Array => {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64BE(hlc);
    return new Uint8Array(bytes);
  };
  const entries = [entry('a', new Uint8Array([1, 2])), entry('\u{1f511}x', null, 3n, nodeB), entry('b\uffff', new Uint8Array(0), 2n)];

  // A node restarts with data written through sublevels: every read path finds it.
  it('reads rows written through the sublevels', async () => {
    const dir = tempDir();
    try {
      const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
      await db.open();
      const { e, k, m } = sublevels(db);
      const batch = db.batch();
      for (const each of entries) {
        batch.put(keyHashPrefix(each.key) + each.key, encodeEntry(each), { sublevel: e });
        batch.put(utf16be(each.key), new Uint8Array(0), { sublevel: k });
      }
      batch.put('hlc', hlcBytes(77n), { sublevel: m });
      await batch.write();
      await db.close();
      const store = new LevelStore(dir);
      await store.open();
      try {
        assert.equal(await store.readHlc(), 77n);
        assert.deepStrictEqual(await store.get('a'), entries[0]);
        assert.deepStrictEqual(await store.getMany(entries.map((each) => each.key)), entries);
        assert.deepStrictEqual(keysOf(await collect(store.scanKeys())), ['a', 'b\uffff', '\u{1f511}x']);
        assert.equal((await collect(store.scanHash(''))).length, 3);
        // A directory from before the applied-sequence index: open numbered every entry
        // (in hash order) and built the index, one row each.
        assert.equal(await store.readSeqLast(), 3);
        const indexed = await collect(store.scanSince(0, 3));
        assert.deepStrictEqual(indexed.map((each) => each.seq), [1, 2, 3]);
        assert.deepStrictEqual(new Set(indexed.map((each) => each.entry.key)), new Set(entries.map((each) => each.key)));
        await store.write([entry('a', new Uint8Array([9]), 5n)], 99n);
        assert.deepStrictEqual((await collect(store.scanSince(0, 10))).map((each) => each.seq).length, 3, 'the overwrite moved a row');
        assert.deepStrictEqual((await collect(store.scanSince(3, 10))).map((each) => [each.seq, each.entry.key]), [[4, 'a']]);
      } finally {
        await store.close();
      }
      // Opened again: the format marker is there, nothing is renumbered.
      const again = new LevelStore(dir);
      await again.open();
      try {
        assert.equal(await again.readSeqLast(), 4);
        assert.deepStrictEqual((await collect(again.scanSince(3, 10))).map((each) => [each.seq, each.entry.key]), [[4, 'a']]);
      } finally {
        await again.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // And the reverse: what LevelStore.write puts on disk is exactly what the sublevels hold.
  it('writes the rows the sublevels read', async () => {
    const dir = tempDir();
    try {
      const store = new LevelStore(dir);
      await store.open();
      await store.write(entries, 99n);
      await store.close();
      const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
      const { e, k, m, s } = sublevels(db);
      try {
        for (const [i, each] of entries.entries()) {
          // The entry, then its seq (the store numbered the batch 1..3).
          const rowKey = keyHashPrefix(each.key) + each.key;
          assert.deepStrictEqual(new Uint8Array((await e.get(rowKey))!), new Uint8Array([...encodeEntry(each), ...seqBytes(i + 1)]));
          assert.deepStrictEqual(new Uint8Array((await k.get(utf16be(each.key)))!), new Uint8Array(0));
          assert.deepStrictEqual(new Uint8Array((await s.get(seqBytes(i + 1)))!), encodeEntry(each), 'the index row holds the entry');
        }
        assert.deepStrictEqual(new Uint8Array((await m.get('hlc'))!), hlcBytes(99n));
        assert.deepStrictEqual(new Uint8Array((await m.get('format'))!), new Uint8Array([2]));
        assert.equal((await db.keys().all()).length, 3 * entries.length + 2, 'no other rows');
      } finally {
        await db.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LevelStore snapshot marker', () => {
  it('a write by a program that knows no snapshots (it only puts the hlc row with its entries) makes it stale', async () => {
    const dir = tempDir();
    try {
      const store = new LevelStore(dir);
      await store.open();
      await store.write([entry('a', null)], 3n);
      await store.saveSnapshot(new Uint8Array([1, 2]));
      await store.close();
      // An older ckv's write batch: an `e` row, a `k` row and the hlc row, through the sublevels.
      const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
      const older = entry('b', new Uint8Array([7]), 4n);
      const bound = new Uint8Array(8);
      new DataView(bound.buffer).setBigUint64(0, 4n);
      await db.batch([
        { type: 'put', sublevel: db.sublevel<string, Uint8Array>('e', { valueEncoding: 'view' }), key: keyHashPrefix('b') + 'b', value: encodeEntry(older) },
        { type: 'put', sublevel: db.sublevel<string, Uint8Array>('m', { valueEncoding: 'view' }), key: 'hlc', value: bound },
      ]);
      await db.close();
      const reopened = new LevelStore(dir);
      await reopened.open();
      assert.deepStrictEqual(await reopened.readSnapshot(), { state: 'stale' });
      assert.equal(await reopened.readHlc(), 4n);
      assert.deepStrictEqual(await reopened.get('b'), older);
      await reopened.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LevelStore snapshot file', () => {
  it('is a file beside the tables; one changed behind the marker, or a leftover without one, counts as none', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'CKV-SNAPSHOT');
    try {
      const store = new LevelStore(dir);
      await store.open();
      await store.write([entry('a', null)], 3n);
      await store.saveSnapshot(new Uint8Array([1, 2, 3]));
      assert.deepStrictEqual(new Uint8Array(fs.readFileSync(file)), new Uint8Array([1, 2, 3]));
      assert.deepStrictEqual(await store.readSnapshot(), { state: 'current', bytes: new Uint8Array([1, 2, 3]) });
      assert.deepStrictEqual(new Uint8Array(fs.readFileSync(file)), new Uint8Array([1, 2, 3]), 'read while current: the file stays');
      fs.writeFileSync(file, new Uint8Array([1, 2, 4]));
      assert.deepStrictEqual(await store.readSnapshot(), { state: 'none' });
      assert.equal(fs.existsSync(file), false, 'damaged: forgotten, the file removed');
      assert.equal(await store.readHlc(), 3n, 'the HLC row is back');
      await store.saveSnapshot(new Uint8Array([5]));
      fs.rmSync(file);
      assert.deepStrictEqual(await store.readSnapshot(), { state: 'none' });
      fs.writeFileSync(file, new Uint8Array([6])); // as if a stop died between the file and its marker
      assert.deepStrictEqual(await store.readSnapshot(), { state: 'none' });
      assert.equal(fs.existsSync(file), false, 'a file without a marker is removed');
      await store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LevelStore locking', () => {
  it('a second instance on a held directory throws StoreLockedError; it opens once released', async () => {
    const dir = tempDir();
    const first = new LevelStore(dir);
    const second = new LevelStore(dir);
    try {
      await first.open();
      const error = await second.open().then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      assert.ok(error instanceof StoreLockedError, `expected StoreLockedError, got ${String(error)}`);
      assert.equal(error.name, 'StoreLockedError');
      assert.match(error.message, /in use/);
      await first.close();
      await second.open();
    } finally {
      await first.close();
      await second.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('another process opening a held directory is told it is in use', async () => {
    const dir = tempDir();
    const store = new LevelStore(dir);
    try {
      await store.open();
      // The compiled store module next to this compiled test (dist/test/unit -> dist/src/store).
      const moduleUrl = new URL('../../src/store/level-store.js', import.meta.url).href;
      const script = `
        const { LevelStore } = await import(process.env.CKV_STORE_MODULE);
        try {
          await new LevelStore(process.env.CKV_STORE_DIR).open();
          console.log(JSON.stringify({ opened: true }));
        } catch (error) {
          console.log(JSON.stringify({ name: error.name, message: error.message }));
        }`;
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, CKV_STORE_MODULE: moduleUrl, CKV_STORE_DIR: dir },
        encoding: 'utf8',
        timeout: 10_000,
      });
      assert.equal(child.status, 0, child.stderr);
      const result = JSON.parse(child.stdout.trim()) as { name?: string; message?: string };
      assert.equal(result.name, 'StoreLockedError');
      assert.match(result.message ?? '', /in use/);
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
