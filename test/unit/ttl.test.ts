/**
 * TTL (src/core/ttl.ts, the entry encoding's expiry, Replica.expireUnchanged): the duration
 * text, the encoding round trip and rows of the format before TTLs, the expiry decision at its
 * boundary, and the deterministic tombstone: two replicas that sweep at different times (or
 * one not at all) hold the same root, and a re-write that came after a TTL write survives a
 * sweep by a replica that had not seen it yet.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ByteReader, ByteWriter } from '../../src/core/bytes.js';
import { decodeEntry, encodedEntryBytes, encodeEntry, entryDigest, readEntry, writeEntry, type Entry } from '../../src/core/entry.js';
import { MalformedError } from '../../src/core/errors.js';
import { hlcPack, hlcWallMs } from '../../src/core/hlc.js';
import { ttlMsMax } from '../../src/core/limits.js';
import { checkTtlMs, expiredTombstone, isExpired, parseTtl, visibleAt, visibleEntries } from '../../src/core/ttl.js';
import { Replica, sameRoot } from '../../src/core/replica.js';
import { LevelStore } from '../../src/store/level-store.js';
import { countEntries } from '../../src/cli/backup-format.js';
import { decodeWatchFrame, encodeChangeFrame } from '../../src/net/watch-protocol.js';
import { keyHashText } from '../../src/core/entry.js';
import { allEntries, memoryReplica, syncPair, value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const wallMs = 1_700_000_000_000;

function ttlEntry(ttlMs: number, key = 'k', text = 'v'): Entry {
  return { key, value: value(text), version: { hlc: hlcPack(wallMs, 3), node: nodeA }, expiresAtMs: wallMs + ttlMs };
}

describe('TTL text', () => {
  it('reads every unit', () => {
    assert.equal(parseTtl('500ms'), 500);
    assert.equal(parseTtl('30s'), 30_000);
    assert.equal(parseTtl('5m'), 300_000);
    assert.equal(parseTtl('2h'), 7_200_000);
    assert.equal(parseTtl('7d'), 604_800_000);
    assert.equal(parseTtl('365d'), ttlMsMax);
  });

  it('refuses what is not a duration, zero and past the limit, with a one-line reason', () => {
    for (const bad of ['', '30', 's', '1.5s', '-1s', '30 sec', '1w', '0s', '366d', '99999999999999d']) {
      const result = parseTtl(bad);
      assert.equal(typeof result, 'string', bad);
      assert.ok(!(result as string).includes('\n'));
    }
    assert.equal(typeof checkTtlMs(0), 'string');
    assert.equal(typeof checkTtlMs(ttlMsMax + 1), 'string');
    assert.equal(checkTtlMs(ttlMsMax), ttlMsMax);
  });
});

describe('entry encoding with an expiry', () => {
  it('round-trips through every encoder; the size agrees', () => {
    const entry = ttlEntry(30_000);
    const bytes = encodeEntry(entry);
    assert.equal(bytes.byteLength, encodedEntryBytes(entry, 1));
    assert.deepEqual(decodeEntry(bytes), entry);
    const writer = new ByteWriter();
    writeEntry(writer, entry);
    assert.deepEqual(Buffer.from(writer.finish()), Buffer.from(bytes));
    assert.equal(decodeEntry(encodeEntry(ttlEntry(ttlMsMax))).expiresAtMs, wallMs + ttlMsMax);
  });

  it('a row without an expiry is the byte-for-byte format from before TTLs, and reads the same', () => {
    // The format before TTLs, written by hand: varint key length, key, flags, u64 hlc, node, value.
    const old = new ByteWriter().string('k').u8(0).u64(hlcPack(wallMs, 3)).raw(Buffer.from(nodeA, 'hex')).bytes(value('v')).finish();
    const entry: Entry = decodeEntry(old);
    assert.deepEqual(entry, { key: 'k', value: value('v'), version: { hlc: hlcPack(wallMs, 3), node: nodeA } });
    assert.deepEqual(Buffer.from(encodeEntry(entry)), Buffer.from(old));
    const oldTombstone = new ByteWriter().string('k').u8(1).u64(hlcPack(wallMs, 3)).raw(Buffer.from(nodeA, 'hex')).finish();
    assert.equal(decodeEntry(oldTombstone).value, null);
  });

  it('a tombstone never carries an expiry; the digest ignores it (one version, one write)', () => {
    const tombstone = expiredTombstone(ttlEntry(1000));
    assert.deepEqual(decodeEntry(encodeEntry({ ...tombstone, expiresAtMs: wallMs + 5 })), tombstone);
    assert.deepEqual(entryDigest('k', ttlEntry(1000).version), entryDigest('k', tombstone.version));
  });

  it('backup blocks count entries with an expiry (the CLI walks their lengths)', () => {
    const raw = Buffer.concat([encodeEntry(ttlEntry(30_000, 'a')), encodeEntry({ key: 'b', value: value('x'), version: ttlEntry(1).version }), encodeEntry(expiredTombstone(ttlEntry(1, 'c')))]);
    assert.equal(countEntries(raw), 3);
    const bad = Buffer.from(encodeEntry(ttlEntry(30_000)));
    bad[1 + 1 + 1 + 8 + 8] = 0; // the TTL varint: 0 is out of range
    assert.equal(countEntries(bad), undefined);
  });

  it('refuses unknown flags, a tombstone flagged to expire, and a TTL outside 1..ttlMsMax', () => {
    const row = (flags: number, ttl?: number): Uint8Array => {
      const w = new ByteWriter().string('k').u8(flags).u64(hlcPack(wallMs, 0)).raw(Buffer.from(nodeA, 'hex'));
      if (ttl !== undefined) w.varint(ttl);
      if ((flags & 1) === 0) w.bytes(value('v'));
      return w.finish();
    };
    assert.throws(() => decodeEntry(row(4)), MalformedError);
    assert.throws(() => decodeEntry(row(3, 10)), MalformedError);
    assert.throws(() => decodeEntry(row(2, 0)), MalformedError);
    assert.throws(() => decodeEntry(row(2, ttlMsMax + 1)), MalformedError);
    assert.equal(readEntry(new ByteReader(row(2, 10))).expiresAtMs, wallMs + 10);
  });
});

describe('partitioned watch frames', () => {
  it('carry the expiry of a value with a TTL (frame 3), and none otherwise (frame 1, as before)', () => {
    const change = (entry: Entry) => ({ entry, keyHash: keyHashText(entry.key), previous: undefined, origin: 'local' as const });
    const expiring = encodeChangeFrame(change(ttlEntry(30_000)));
    assert.equal(expiring[0], 3);
    assert.deepEqual(decodeWatchFrame(expiring), { entry: { key: 'k', value: new Uint8Array(0), version: ttlEntry(1).version, expiresAtMs: wallMs + 30_000 }, valueBytes: 1 });
    const plain = encodeChangeFrame(change({ key: 'k', value: value('v'), version: ttlEntry(1).version }));
    assert.equal(plain[0], 1);
    assert.equal((decodeWatchFrame(plain) as { entry: Entry }).entry.expiresAtMs, undefined);
  });
});

describe('the expiry decision', () => {
  it('a value is present before its expiry and absent (its tombstone, same version) from it on', () => {
    const entry = ttlEntry(1000);
    assert.equal(isExpired(entry, wallMs + 999), false);
    assert.equal(visibleAt(entry, wallMs + 999), entry);
    assert.equal(isExpired(entry, wallMs + 1000), true);
    assert.deepEqual(visibleAt(entry, wallMs + 1000), { key: 'k', value: null, version: entry.version });
    const plain: Entry = { key: 'k', value: value('v'), version: entry.version };
    assert.equal(isExpired(plain, Number.MAX_SAFE_INTEGER), false);
    assert.equal(visibleAt(undefined, wallMs), undefined);
  });

  it('a scan sees each expired value as its tombstone, the rest as stored; stopping early closes the source', async () => {
    let closed = false;
    async function* source(): AsyncGenerator<Entry> {
      try {
        yield ttlEntry(1000, 'a');
        yield { key: 'b', value: value('v'), version: ttlEntry(1).version };
        yield ttlEntry(5000, 'c');
      } finally {
        closed = true;
      }
    }
    const seen: Entry[] = [];
    for await (const entry of visibleEntries(source(), wallMs + 1000)) seen.push(entry);
    assert.deepEqual(seen.map((e) => [e.key, e.value === null]), [['a', true], ['b', false], ['c', false]]);
    for await (const entry of visibleEntries(source(), wallMs)) if (entry.key === 'a') break;
    assert.ok(closed);
  });
});

describe('Replica with TTLs', () => {
  it('a local put gets expiresAtMs from its own stamp; stamp() (partitioned coordinator) too', async () => {
    const clock = { ms: wallMs };
    const replica = await memoryReplica(nodeA, clock);
    const version = await replica.put('k', value('v'), undefined, 5000);
    const stored = await replica.get('k');
    assert.equal(stored?.expiresAtMs, hlcWallMs(version.hlc) + 5000);
    assert.equal(replica.stamp('j', value('v'), 10).expiresAtMs, hlcWallMs(replica.hlcLast) + 10);
    assert.equal(replica.stamp('j', null, 10).expiresAtMs, undefined);
    const [many] = await replica.writeMany([{ key: 'm', value: value('v'), ttlMs: 7 }]);
    assert.equal((await replica.get('m'))?.expiresAtMs, hlcWallMs((many as { hlc: bigint }).hlc) + 7);
  });

  it('if-absent holds on an expired value (it reads as absent)', async () => {
    const clock = { ms: wallMs };
    const replica = await memoryReplica(nodeA, clock);
    await replica.put('k', value('v'), undefined, 100);
    await assert.rejects(replica.put('k', value('w'), { ifAbsent: true }), { name: 'ConditionFailedError' });
    clock.ms += 100;
    await replica.put('k', value('w'), { ifAbsent: true });
    assert.equal((await replica.get('k'))?.expiresAtMs, undefined);
  });

  it('expireUnchanged: only an expired value still at that version becomes its tombstone', async () => {
    const clock = { ms: wallMs };
    const replica = await memoryReplica(nodeA, clock);
    const v1 = await replica.put('k', value('v'), undefined, 100);
    assert.deepEqual(await replica.expireUnchanged([{ key: 'k', version: v1 }]), []); // not yet
    const rootBefore = replica.root();
    clock.ms += 100;
    const made = await replica.expireUnchanged([{ key: 'k', version: v1 }, { key: 'absent', version: v1 }]);
    assert.deepEqual(made, [{ key: 'k', value: null, version: v1 }]);
    assert.deepEqual(await replica.get('k'), { key: 'k', value: null, version: v1 });
    assert.deepEqual(replica.root(), rootBefore); // same version, same digest
    assert.equal(replica.tombstoneCount, 1);
    const v2 = await replica.put('j', value('v'), undefined, 100);
    await replica.put('j', value('w'));
    clock.ms += 100;
    assert.deepEqual(await replica.expireUnchanged([{ key: 'j', version: v2 }]), []); // re-written
    assert.equal((await replica.get('j'))?.value?.byteLength, 1);
  });

  it('two replicas agree on the root whether or not, and whenever, each swept', async () => {
    const clockA = { ms: wallMs };
    const clockB = { ms: wallMs + 40 }; // skewed
    const a = await memoryReplica(nodeA, clockA);
    const b = await memoryReplica(nodeB, clockB);
    const version = await a.put('k', value('v'), undefined, 1000);
    await b.applyRemote([(await a.get('k'))!]);
    assert.ok(sameRoot(a, b));
    clockB.ms += 1000; // B's clock passes the expiry first
    assert.equal((await b.expireUnchanged([{ key: 'k', version }])).length, 1);
    assert.ok(sameRoot(a, b), 'one swept, the other not: same root');
    assert.equal((await syncPair(a, b)).initiator.outcome, 'in-sync');
    clockA.ms += 1000;
    assert.equal((await a.expireUnchanged([{ key: 'k', version }])).length, 1);
    assert.deepEqual(await allEntries(a), await allEntries(b));
    assert.ok(sameRoot(a, b));
  });

  it('a re-write after a TTL write survives a sweep on a replica that had not seen it', async () => {
    const clock = { ms: wallMs };
    const a = await memoryReplica(nodeA, clock);
    const b = await memoryReplica(nodeB, clock);
    const v1 = await a.put('k', value('ttl'), undefined, 100);
    await b.applyRemote([(await a.get('k'))!]);
    clock.ms += 50;
    await a.put('k', value('forever')); // before the expiry, without TTL; B does not hear of it yet
    clock.ms += 100;
    assert.equal((await b.expireUnchanged([{ key: 'k', version: v1 }])).length, 1);
    await syncPair(a, b);
    for (const replica of [a, b]) {
      const entry = await replica.get('k');
      assert.equal(Buffer.from(entry!.value!).toString(), 'forever');
    }
    assert.ok(sameRoot(a, b));
  });

  it('a TTL write that arrives after its expiry is stored and reads as absent; the sweep makes the same tombstone', async () => {
    const clock = { ms: wallMs };
    const a = await memoryReplica(nodeA, clock);
    const late = await memoryReplica(nodeB, clock);
    const version = await a.put('k', value('v'), undefined, 100);
    clock.ms += 500;
    await syncPair(a, late); // anti-entropy, long after the expiry
    const held = await late.get('k');
    assert.equal(visibleAt(held, late.nowMs())?.value, null);
    await late.expireUnchanged([{ key: 'k', version }]);
    assert.ok(sameRoot(a, late));
  });

  it('LevelStore keeps the expiry across a reopen', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckv-ttl-'));
    try {
      const clock = { ms: wallMs };
      let replica = await Replica.open({ nodeId: nodeA, store: new LevelStore(dir), wallClockMs: () => clock.ms });
      const version = await replica.put('k', value('v'), undefined, 60_000);
      await replica.close();
      await (replica as unknown as { store: LevelStore }).store.close();
      replica = await Replica.open({ nodeId: nodeA, store: new LevelStore(dir), wallClockMs: () => clock.ms, useSnapshot: false });
      assert.equal((await replica.get('k'))?.expiresAtMs, hlcWallMs(version.hlc) + 60_000);
      await replica.close();
      await (replica as unknown as { store: LevelStore }).store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
