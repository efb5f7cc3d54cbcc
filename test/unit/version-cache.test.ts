import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keyHashText, type Entry, type HashText } from '../../src/core/entry.js';
import { hlcPack } from '../../src/core/hlc.js';
import { Replica, sameRoot } from '../../src/core/replica.js';
import { VersionCache, cachedLiveValue, versionCacheSlotBytes } from '../../src/core/version-cache.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const baseMs = 1_700_000_000_000;

/** Counts the keys the replica reads from the store; the next write can be made to fail (storing nothing). */
class CountingStore extends MemoryStore {
  readonly read: string[] = [];
  failNextWrite = false;
  override async getMany(keys: readonly string[], keyHashes?: readonly HashText[], seqsOut?: (number | undefined)[]): Promise<(Entry | undefined)[]> {
    this.read.push(...keys);
    return super.getMany(keys, keyHashes, seqsOut);
  }
  override async write(...args: Parameters<MemoryStore['write']>): Promise<void> {
    if (this.failNextWrite) {
      this.failNextWrite = false;
      throw new Error('disk said no');
    }
    await super.write(...args);
  }
}

function entry(key: string, val: string | null, hlc: bigint, node = nodeB): Entry {
  return { key, value: val === null ? null : value(val), version: { hlc, node } };
}

/** The store's applied-sequence index: [seq, key] for every row. */
async function indexOf(store: MemoryStore): Promise<[number, string][]> {
  const rows: [number, string][] = [];
  for await (const row of store.scanSince(0, Number.MAX_SAFE_INTEGER)) rows.push([row.seq, row.entry.key]);
  return rows;
}

const text = (e: Entry | undefined): string | null | undefined => (e === undefined ? undefined : e.value === null ? null : Buffer.from(e.value).toString());

describe('VersionCache', () => {
  const h = (key: string): string => keyHashText(key);
  /** Not narrowed by an earlier assert on `capacity`. */
  const capacityOf = (cache: VersionCache): number => cache.capacity;

  it('keeps versions, not values: a live entry comes back with the empty placeholder, a tombstone null', () => {
    const cache = new VersionCache(1 << 20);
    cache.set({ key: 'a', value: value('payload'), version: { hlc: 5n, node: nodeA }, expiresAtMs: 9 }, h('a'), 3);
    cache.set(entry('b', null, 6n), h('b'), 4);
    assert.deepEqual(cache.get('a', h('a')), { entry: { key: 'a', value: cachedLiveValue, version: { hlc: 5n, node: nodeA }, expiresAtMs: 9 }, seq: 3 });
    assert.equal(cache.get('a', h('a'))!.entry.value!.byteLength, 0);
    assert.deepEqual(cache.get('b', h('b')), { entry: { key: 'b', value: null, version: { hlc: 6n, node: nodeB } }, seq: 4 });
    assert.equal(cache.get('c', h('c')), undefined, 'never set');
    cache.delete(h('a'));
    assert.equal(cache.get('a', h('a')), undefined);
    cache.clear();
    assert.equal(cache.get('b', h('b')), undefined);
  });

  // A full set pushes a key out for a new one: that key is not found (then read from the
  // store), never answered with another key's version.
  it('answers only for the keys its slots hold: a key pushed out by another is not found', () => {
    const cache = new VersionCache(4 * versionCacheSlotBytes);
    assert.equal(cache.capacity, 4);
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    keys.forEach((key, i) => cache.set(entry(key, 'v', BigInt(i + 1)), h(key), i + 1));
    const found = keys.filter((key) => cache.get(key, h(key)) !== undefined);
    assert.equal(found.length, 4, `${found.length} keys found in 4 slots (one set, so it can not grow past its bytes)`);
    for (const key of found) assert.equal(cache.get(key, h(key))!.seq, keys.indexOf(key) + 1, 'each found key with its own version');
    assert.ok(found.includes('k39'), 'the last key written is found');
  });

  it('is sized in slots of a power of two within its bytes, and off under one set of 4', () => {
    assert.equal(new VersionCache(1000 * versionCacheSlotBytes).capacity, 512);
    assert.equal(new VersionCache(4 * versionCacheSlotBytes).capacity, 4);
    const off = new VersionCache(3 * versionCacheSlotBytes);
    assert.equal(off.capacity, 0);
    off.set(entry('a', 'v', 1n), h('a'), 1);
    assert.equal(off.get('a', h('a')), undefined);
  });

  it('grows from 1,024 slots when half hold keys, up to its bytes, and keeps what it held', () => {
    const cache = new VersionCache(8192 * versionCacheSlotBytes);
    assert.equal(cache.capacity, 1024);
    assert.equal(cache.capacityMax, 8192);
    // A small set rewritten over and over stays in the first table, every key found.
    const few = Array.from({ length: 50 }, (_, i) => `few${i}`);
    for (let round = 0; round < 100; round++) few.forEach((key, i) => cache.set(entry(key, 'v', BigInt(round + 1)), h(key), round * 100 + i));
    assert.equal(capacityOf(cache), 1024, 'no growth for 50 keys');
    assert.deepEqual(few.filter((key, i) => cache.get(key, h(key))?.seq !== 9900 + i), [], 'every key of the set is found, with its last seq');
    // More keys: the table doubles once 512 slots hold keys, moving what it holds.
    let grownAt = -1;
    let foundBefore: string[] = [];
    const fillers: string[] = [];
    for (let i = 0; i < 5000 && grownAt < 0; i++) {
      const key = `fill${i}`;
      if (i >= 400) foundBefore = fillers.filter((each) => cache.get(each, h(each)) !== undefined);
      fillers.push(key);
      cache.set(entry(key, 'v', 2n), h(key), 1000 + i);
      if (capacityOf(cache) === 2048) grownAt = i;
    }
    assert.ok(grownAt >= 462 && grownAt <= 600, `grew at the ${grownAt + 1}th filler (50 keys were there before)`);
    const lost = foundBefore.filter((key) => cache.get(key, h(key))?.seq !== 1000 + fillers.indexOf(key));
    assert.deepEqual(lost, [], 'every key held before the growth is found after it, with its seq');
    for (let i = 0; i < 40_000; i++) cache.set(entry(`more${i}`, 'v', 3n), h(`more${i}`), 3);
    assert.equal(capacityOf(cache), 8192, 'never past its bytes');
  });

  it('keeps nothing for a key whose node id does not fit its table, and forgets what it had', () => {
    const cache = new VersionCache(1 << 16);
    for (let i = 0; i < 4096; i++) cache.set(entry('filler', 'v', 1n, i.toString(16).padStart(16, '0')), h('filler'), 1);
    cache.set(entry('x', 'v', 1n, nodeA), h('x'), 1);
    assert.ok(cache.get('x', h('x')) === undefined || cache.get('x', h('x'))!.entry.version.node === nodeA);
    cache.set(entry('y', 'v', 1n, '0000000000000fff'), h('y'), 2);
    assert.equal(cache.get('y', h('y'))!.seq, 2, 'a known node id is kept');
    cache.set(entry('y', 'v', 2n, 'ffffffffffffffff'), h('y'), 3);
    assert.equal(cache.get('y', h('y')), undefined, 'a version of an unknown node id is not kept, and the old one is forgotten');
  });
});

describe('Replica with its version cache', () => {
  // Overwriting keys written a moment ago reads nothing from the store, and the result is the
  // same as with every version read: the stored entries, the index, the tree.
  // A key's first rewrite reads the version it replaces from the store; later rewrites find
  // it in the cache. Either way the outcome is the one a read gives: the stored entries, the
  // index, the tree, conditions and stale remote versions.
  it('rewrites a key a second time without reading it, with the same outcome as a read', async () => {
    const clock = { ms: baseMs };
    const cached = new CountingStore();
    const uncached = new CountingStore();
    const open = (store: CountingStore, bytes?: number) =>
      Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms, ...(bytes === undefined ? {} : { versionCacheBytesMax: bytes }) });
    const a = await open(cached);
    const b = await open(uncached, 0);
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    for (const replica of [a, b]) {
      await Promise.all(keys.map((key) => replica.put(key, value('1'))));
      await Promise.all(keys.map((key) => replica.put(key, value('2'))));
    }
    assert.deepEqual(new Set(cached.read), new Set(keys), 'a first rewrite reads');
    assert.deepEqual(new Set(uncached.read), new Set(keys));
    cached.read.length = 0;
    uncached.read.length = 0;
    clock.ms += 10;
    for (const replica of [a, b]) {
      await replica.delete('k3');
      await replica.applyRemote([entry('k4', 'remote', hlcPack(clock.ms + 1, 0)), entry('k5', 'stale', 1n)]);
      // A condition against a cached tombstone: it counts as absent.
      await replica.put('k3', value('3'), { ifAbsent: true });
      await assert.rejects(replica.put('k5', value('x'), { ifAbsent: true }), /expected the key to be absent/);
      await Promise.all(keys.map((key) => replica.put(key, value('4'))));
      const stale = await replica.applyRemote([entry('k6', 'late', 2n)]);
      assert.equal(stale.stale, 1, 'a stale remote version loses against the cached newer one');
    }
    assert.deepEqual(cached.read, [], 'every later rewrite found the version it replaces in the cache');
    assert.ok(uncached.read.length >= keys.length, 'without the cache every rewrite reads');
    assert.ok(sameRoot(a, b), 'the same tree with and without the cache');
    assert.deepEqual(await cached.getMany(keys), await uncached.getMany(keys));
    assert.deepEqual(await indexOf(cached), await indexOf(uncached), 'the same index rows');
    await a.close();
    // After a reopen the cache is empty: the first rewrite reads again.
    cached.read.length = 0;
    const reopened = await open(cached);
    await reopened.put('k1', value('5'));
    await reopened.put('k1', value('6'));
    assert.deepEqual(cached.read, ['k1']);
    assert.equal(text(await reopened.get('k1')), '6');
    await reopened.close();
    await b.close();
  });

  it('forgets the keys a drop removes: the next write finds them gone', async () => {
    const store = new CountingStore();
    const replica = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs });
    await replica.put('gone', value('1'));
    const version = await replica.put('gone', value('2')); // a rewrite: now in the cache
    assert.equal((await replica.dropUnchanged([{ key: 'gone', version }])).dropped, 1);
    store.read.length = 0;
    const changes = await replica.applyRemote([entry('gone', 'back', 1n)], { outcomes: true });
    assert.deepEqual(changes.outcomes, ['applied'], 'an old version is applied to a key that is gone, not judged stale against a forgotten one');
    assert.equal(replica.entryCount, 1);
    await replica.close();
    const rebuilt = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs });
    assert.ok(sameRoot(replica, rebuilt));
  });

  // A store write that fails may or may not have stored its batch (a reply lost), so the
  // replica trusts no cached version after one: the next commit reads again.
  it('empties after a failed store write', async () => {
    const store = new CountingStore();
    const replica = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs });
    for (const round of ['1', '2']) for (const key of ['a', 'b']) await replica.put(key, value(round)); // rewritten: in the cache
    store.read.length = 0;
    await replica.put('b', value('3'));
    assert.deepEqual(store.read, [], 'b was in the cache');
    store.failNextWrite = true;
    await assert.rejects(replica.put('a', value('2')), /disk said no/);
    store.read.length = 0;
    await replica.put('b', value('2'));
    assert.deepEqual(store.read, ['b'], 'read from the store again');
    await replica.close();
  });
});
