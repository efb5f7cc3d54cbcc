import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compareVersions, encodeEntry, keyHashText, type Entry, type HashText, type Version } from '../../src/core/entry.js';
import { InvalidKeyError, ValueTooLargeError } from '../../src/core/errors.js';
import { hlcPack } from '../../src/core/hlc.js';
import { Replica, ReplicaClosedError, sameRoot, type AppliedChange, type ReplicaOptions } from '../../src/core/replica.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { allEntries, memoryReplica as openMemoryReplica, value, type TestClock } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const baseMs = 1_700_000_000_000;

/** A memory store that records, synchronously, the last version written per key. */
class SpyStore extends MemoryStore {
  readonly written = new Map<string, Version>();
  override async write(entries: readonly Entry[], hlcLast: bigint): Promise<void> {
    await super.write(entries, hlcLast);
    for (const entry of entries) this.written.set(entry.key, entry.version);
  }
}

/** A memory store that records every key the replica reads before a merge. */
class ReadCountingStore extends MemoryStore {
  readonly read: string[] = [];
  override async getMany(keys: readonly string[], keyHashes?: readonly HashText[], seqsOut?: (number | undefined)[]): Promise<(Entry | undefined)[]> {
    this.read.push(...keys);
    return super.getMany(keys, keyHashes, seqsOut);
  }
}

/**
 * A promise from a memory-backed replica settles within microtasks. This fails the test at the
 * next macrotask turn instead of letting a stranded write drain the event loop, which would
 * cancel every remaining test in the file.
 */
async function settlesPromptly<T>(promise: Promise<T>, what: string): Promise<T> {
  const pending = Symbol('pending');
  const turn = new Promise<typeof pending>((resolve) => setImmediate(() => resolve(pending)));
  const result = await Promise.race([promise, turn]);
  if (result === pending) assert.fail(`${what} never settled (write stranded in the replica queue)`);
  return result as T;
}

/** A replica whose write methods fail fast instead of hanging (see settlesPromptly). */
function guarded(replica: Replica): Replica {
  const put = replica.put.bind(replica);
  const del = replica.delete.bind(replica);
  const applyRemote = replica.applyRemote.bind(replica);
  replica.put = (key, val) => settlesPromptly(put(key, val), `put(${JSON.stringify(key.slice(0, 20))})`);
  replica.delete = (key) => settlesPromptly(del(key), `delete(${JSON.stringify(key.slice(0, 20))})`);
  replica.applyRemote = (entries, options) => settlesPromptly(applyRemote(entries, options), `applyRemote(${entries.length} entries)`);
  return replica;
}

async function memoryReplica(nodeId: string, clock?: TestClock, extra: Partial<ReplicaOptions> = {}): Promise<Replica> {
  return guarded(await openMemoryReplica(nodeId, clock, extra));
}

function text(entry: Entry | undefined): string | null | undefined {
  if (entry === undefined) return undefined;
  return entry.value === null ? null : Buffer.from(entry.value).toString('utf8');
}

function remote(key: string, val: string | null, hlc: bigint, node = nodeB): Entry {
  return { key, value: val === null ? null : value(val), version: { hlc, node } };
}

describe('Replica local writes', () => {
  // put stores the value at the returned version; get reads it back; delete leaves a tombstone.
  it('put, get and delete', async () => {
    const clock = { ms: baseMs };
    const replica = await memoryReplica(nodeA, clock);
    assert.equal(await replica.get('k'), undefined);
    const v1 = await replica.put('k', value('one'));
    assert.equal(v1.node, nodeA);
    assert.deepEqual(await replica.get('k'), { key: 'k', value: value('one'), version: v1 });
    const v2 = await replica.put('k', value('two'));
    assert.ok(compareVersions(v2, v1) > 0);
    assert.equal(text(await replica.get('k')), 'two');
    const v3 = await replica.delete('k');
    assert.ok(compareVersions(v3, v2) > 0);
    const tombstone = await replica.get('k');
    assert.deepEqual(tombstone, { key: 'k', value: null, version: v3 });
    assert.equal(replica.entryCount, 1);
    // Deleting a key never written also leaves a tombstone.
    await replica.delete('never');
    assert.equal((await replica.get('never'))?.value, null);
    // An empty value is a value, not a tombstone.
    await replica.put('empty', new Uint8Array(0));
    assert.deepEqual((await replica.get('empty'))?.value, new Uint8Array(0));
  });

  // The store keeps its own copy: changing the caller's buffer after put changes nothing.
  it('copies values on put', async () => {
    const replica = await memoryReplica(nodeA);
    const buffer = value('abc');
    await replica.put('k', buffer);
    buffer.fill(0);
    assert.equal(text(await replica.get('k')), 'abc');
  });

  // Invalid keys and oversized values are refused synchronously with typed errors, and nothing is stored.
  it('refuses invalid keys and values', async () => {
    const replica = await memoryReplica(nodeA, undefined, { valueBytesMax: 8 });
    assert.throws(() => replica.put('', value('x')), InvalidKeyError);
    assert.throws(() => replica.put('k'.repeat(1025), value('x')), InvalidKeyError);
    assert.throws(() => replica.put('\ud800', value('x')), InvalidKeyError);
    assert.throws(() => replica.delete(''), InvalidKeyError);
    assert.throws(() => replica.put('k', new Uint8Array(9)), ValueTooLargeError);
    await replica.put('k', new Uint8Array(8));
    assert.equal(replica.entryCount, 1);
  });

  // After close, writes are refused with ReplicaClosedError.
  it('refuses writes after close', async () => {
    const replica = await memoryReplica(nodeA);
    await replica.close();
    await assert.rejects(replica.put('k', value('v')), ReplicaClosedError);
    await assert.rejects(replica.applyRemote([remote('k', 'v', 1n)]), ReplicaClosedError);
  });
});

describe('Replica.applyRemote', () => {
  // An older remote version is stale and leaves the entry alone; a newer one wins; an equal one is stale.
  it('keeps the greatest version: older is stale, newer wins, equal is idempotent', async () => {
    const clock = { ms: baseMs };
    const replica = await memoryReplica(nodeA, clock);
    const local = await replica.put('k', value('local'));
    const rootBefore = Buffer.from(replica.root().digest);

    const older = await replica.applyRemote([remote('k', 'older', local.hlc - 1n)]);
    assert.deepEqual(older, { applied: 0, stale: 1, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0 });
    // Same stamp, smaller node id: also older.
    const tieLower = await replica.applyRemote([remote('k', 'tie', local.hlc, '00000000000000a9')]);
    assert.equal(tieLower.stale, 1);
    assert.deepEqual(await replica.get('k'), { key: 'k', value: value('local'), version: local });
    assert.deepEqual(Buffer.from(replica.root().digest), rootBefore);

    const newer = remote('k', 'newer', local.hlc + 1n);
    assert.deepEqual(await replica.applyRemote([newer]), { applied: 1, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0 });
    assert.deepEqual(await replica.get('k'), newer);
    const rootAfter = Buffer.from(replica.root().digest);
    assert.notDeepEqual(rootAfter, rootBefore);

    const again = await replica.applyRemote([newer, { ...newer }]);
    assert.deepEqual(again, { applied: 0, stale: 2, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0 });
    assert.deepEqual(await replica.get('k'), newer);
    assert.deepEqual(Buffer.from(replica.root().digest), rootAfter);
    assert.equal(replica.entryCount, 1);
  });

  // Entries applied with their bytes as received (decodeFrame's encodings) end as entries
  // applied without: the same rows, root and counts. The store keeps the winner's bytes only
  // when the winner is the entry that came with them: not when a later entry of the same
  // commit (one without bytes, or a local write) replaced it.
  it('applies entries with their encodings as it does without', async () => {
    const t = hlcPack(baseMs - 1_000, 0);
    const batch = [remote('a', 'a1', t + 1n), remote('b', null, t + 2n), remote('c', 'c1', t + 3n), remote('c', 'c2', t + 4n), remote('d', 'd1', t + 5n)];
    const encodings = batch.map((entry, i) => (i === 3 ? undefined : encodeEntry(entry)));
    const withStore = new MemoryStore();
    const withBytes = guarded(await Replica.open({ nodeId: nodeA, store: withStore, wallClockMs: () => baseMs }));
    const without = await memoryReplica(nodeA, { ms: baseMs });
    const pending = withBytes.applyRemote(batch, { encodings });
    const local = withBytes.put('d', value('local')); // the same commit: replaces d's remote winner
    assert.deepEqual(await pending, await without.applyRemote(batch));
    await without.put('d', value('local'));
    await local;
    assert.ok(sameRoot(withBytes, without));
    assert.equal(withBytes.entryCount, without.entryCount);
    assert.equal(withBytes.tombstoneCount, without.tombstoneCount);
    const kept = new Map([...withStore.storedEncodings()].map(({ entry, encoded }) => [entry.key, encoded && Buffer.from(encoded).toString('hex')]));
    assert.deepEqual(Object.fromEntries(kept), {
      a: Buffer.from(encodeEntry(batch[0]!)).toString('hex'),
      b: Buffer.from(encodeEntry(batch[1]!)).toString('hex'),
      c: undefined,
      d: undefined,
    });
    assert.throws(() => withBytes.applyRemote(batch, { encodings: encodings.slice(1) }), /an encoding \(or undefined\) per entry/);
  });

  // Within one batch the greatest version of a key wins, whatever its position.
  it('applies the greatest of several versions of a key in one batch', async () => {
    const replica = await memoryReplica(nodeA);
    const t = hlcPack(baseMs - 1_000, 0);
    const report = await replica.applyRemote([remote('k', 'b', t + 2n), remote('k', 'c', t + 5n), remote('k', 'a', t + 1n)]);
    assert.deepEqual(report, { applied: 2, stale: 1, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0 });
    assert.equal(text(await replica.get('k')), 'c');
    assert.equal(replica.entryCount, 1);
  });

  // Placement: a remote entry of a key this node does not hold is refused and counted, and
  // does not move the clock; held keys apply as usual; onApplied carries the key hash.
  it('refuses remote entries of keys it does not hold', async () => {
    const changes: AppliedChange[] = [];
    const held = (keyHash: string): boolean => keyHash.charCodeAt(0) % 2 === 0;
    const replica = await memoryReplica(nodeA, { ms: baseMs }, { holds: held, onApplied: (applied) => changes.push(...applied) });
    const keys = Array.from({ length: 16 }, (_, i) => `k${i}`);
    const heldKeys = keys.filter((key) => held(keyHashText(key)));
    assert.ok(heldKeys.length > 0 && heldKeys.length < keys.length, 'the sample has held and other keys');
    const lastBefore = replica.hlcLast;
    const report = await replica.applyRemote(keys.map((key, i) => remote(key, 'v', hlcPack(baseMs + (heldKeys.includes(key) ? 0 : 400), i))));
    assert.deepEqual(report, { applied: heldKeys.length, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: keys.length - heldKeys.length });
    assert.equal(replica.entryCount, heldKeys.length);
    assert.ok(replica.hlcLast < hlcPack(baseMs + 400, 0), 'a refused entry moved the clock');
    assert.ok(lastBefore <= replica.hlcLast);
    assert.deepEqual(changes.map((c) => c.keyHash), changes.map((c) => keyHashText(c.entry.key)));
  });

  // A stamp 10 s ahead is refused (counted, not stored, clock not dragged); 10 s later it applies.
  it('refuses a stamp 10 s in the future until the wall clock catches up', async () => {
    const clock = { ms: baseMs };
    const replica = await memoryReplica(nodeA, clock);
    const lastBefore = replica.hlcLast;
    const future = remote('f', 'from the future', hlcPack(baseMs + 10_000, 3));
    const refused = await replica.applyRemote([future, remote('ok', 'fine', hlcPack(baseMs, 0))]);
    assert.deepEqual(refused, { applied: 1, stale: 0, rejectedClockDrift: 1, rejectedInvalid: 0, rejectedNotHeld: 0 });
    assert.equal(await replica.get('f'), undefined);
    assert.equal(replica.entryCount, 1);
    assert.ok(replica.hlcLast < future.version.hlc, 'clock was dragged to the refused stamp');
    assert.ok(lastBefore <= replica.hlcLast);

    clock.ms += 10_000;
    const applied = await replica.applyRemote([future]);
    assert.deepEqual(applied, { applied: 1, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0 });
    assert.deepEqual(await replica.get('f'), future);
    // The clock now covers the accepted stamp.
    const next = await replica.put('g', value('after'));
    assert.ok(next.hlc > future.version.hlc);
  });

  // Entries outside the limits (key over 1024 bytes, empty key, oversized value) are counted and dropped.
  it('counts and drops invalid entries', async () => {
    const replica = await memoryReplica(nodeA, undefined, { valueBytesMax: 16 });
    const t = hlcPack(baseMs, 0);
    const report = await replica.applyRemote([
      remote('k'.repeat(1025), 'x', t),
      remote('é'.repeat(512) + 'a', 'x', t),
      remote('', 'x', t),
      { key: 'big', value: new Uint8Array(17), version: { hlc: t, node: nodeB } },
      remote('é'.repeat(512), 'max key', t),
      { key: 'limit', value: new Uint8Array(16), version: { hlc: t, node: nodeB } },
    ]);
    assert.deepEqual(report, { applied: 2, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 4, rejectedNotHeld: 0 });
    assert.equal(replica.entryCount, 2);
    assert.equal(await replica.get('big'), undefined);
    assert.equal(text(await replica.get('é'.repeat(512))), 'max key');
  });
});

describe('Replica notifications and counts', () => {
  // onApplied is told of each commit's changes once, after they are durable, with their origin and the version each replaced.
  it('onApplied reports each change with origin and previous version', async () => {
    const changes: AppliedChange[] = [];
    const calls: number[] = [];
    const durable: boolean[] = [];
    const clock = { ms: baseMs };
    const store = new SpyStore();
    const replica = guarded(await Replica.open({
      nodeId: nodeA,
      store,
      wallClockMs: () => clock.ms,
      onApplied: (applied) => {
        calls.push(applied.length);
        for (const change of applied) {
          changes.push(change);
          const written = store.written.get(change.entry.key);
          durable.push(written !== undefined && compareVersions(written, change.entry.version) === 0);
        }
      },
    }));
    const v1 = await replica.put('k', value('1'));
    const v2 = await replica.put('k', value('2'));
    const r = remote('k', 'remote', v2.hlc + 10n);
    await replica.applyRemote([r]);
    await replica.applyRemote([r, remote('k', 'old', v1.hlc)]); // both stale: no notification
    const v3 = await replica.delete('k');
    await replica.applyRemote([remote('other', 'x', v1.hlc)]);

    const summary = changes.map((c) => ({ key: c.entry.key, origin: c.origin, version: c.entry.version, previous: c.previous }));
    assert.deepEqual(summary, [
      { key: 'k', origin: 'local', version: v1, previous: undefined },
      { key: 'k', origin: 'local', version: v2, previous: v1 },
      { key: 'k', origin: 'remote', version: r.version, previous: v2 },
      { key: 'k', origin: 'local', version: v3, previous: r.version },
      { key: 'other', origin: 'remote', version: { hlc: v1.hlc, node: nodeB }, previous: undefined },
    ]);
    assert.equal(changes[3]!.entry.value, null);
    assert.deepEqual(durable, [true, true, true, true, true]);
    // One call a commit with all its changes; a commit of stale entries only makes none.
    await replica.applyRemote([remote('a', '1', v1.hlc), remote('b', '2', v1.hlc), remote('k', 'stale', v1.hlc)]);
    assert.deepEqual(calls, [1, 1, 1, 1, 1, 2]);
    assert.deepEqual(changes.slice(5).map((c) => c.entry.key), ['a', 'b']);
  });

  // 500 concurrent puts to 50 keys: all resolve, versions increase in call order, the last put per key
  // wins, and the tree equals a fresh replica's that received the final entries remotely.
  it('concurrent puts are ordered, durable and tree-consistent', async () => {
    const clock = { ms: baseMs };
    const changes: AppliedChange[] = [];
    const replica = await memoryReplica(nodeA, clock, { onApplied: (applied) => changes.push(...applied) });
    const writes = Array.from({ length: 500 }, (_, i) => ({ key: `key-${(i * 7) % 50}`, val: `value-${i}` }));
    const versions = await Promise.all(writes.map((w) => replica.put(w.key, value(w.val))));
    assert.equal(versions.length, 500);
    for (let i = 1; i < versions.length; i++) {
      assert.ok(compareVersions(versions[i]!, versions[i - 1]!) > 0, `put ${i} not after put ${i - 1}`);
    }
    assert.equal(changes.length, 500);

    const last = new Map<string, { val: string; version: Version }>();
    writes.forEach((w, i) => last.set(w.key, { val: w.val, version: versions[i]! }));
    assert.equal(last.size, 50);
    for (const [key, { val, version }] of last) {
      const entry = await replica.get(key);
      assert.equal(text(entry), val, key);
      assert.deepEqual(entry?.version, version);
    }
    assert.equal(replica.entryCount, 50);
    assert.equal(replica.liveCount, 50);

    const fresh = await memoryReplica(nodeB, clock);
    const finals = [...last].map(([key, { val, version }]): Entry => ({ key, value: value(val), version }));
    const report = await fresh.applyRemote(finals);
    assert.equal(report.applied, 50);
    assert.ok(sameRoot(replica, fresh), 'roots differ');
    assert.deepEqual(await allEntries(fresh), await allEntries(replica));
  });

  // tombstoneCount and liveCount follow puts, deletes, overwrites and remote entries, and survive a reopen.
  it('tracks live and tombstone counts', async () => {
    const clock = { ms: baseMs };
    const store = new MemoryStore();
    const replica = guarded(await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms }));
    const counts = () => [replica.liveCount, replica.tombstoneCount, replica.entryCount];
    assert.deepEqual(counts(), [0, 0, 0]);
    await replica.put('a', value('1'));
    await replica.put('b', value('1'));
    await replica.put('c', value('1'));
    assert.deepEqual(counts(), [3, 0, 3]);
    await replica.put('a', value('2')); // overwrite
    assert.deepEqual(counts(), [3, 0, 3]);
    await replica.delete('a');
    assert.deepEqual(counts(), [2, 1, 3]);
    await replica.delete('a'); // tombstone over tombstone
    assert.deepEqual(counts(), [2, 1, 3]);
    await replica.delete('z'); // tombstone for an unknown key
    assert.deepEqual(counts(), [2, 2, 4]);
    await replica.put('a', value('3')); // resurrect
    assert.deepEqual(counts(), [3, 1, 4]);
    const t = replica.hlcLast;
    await replica.applyRemote([remote('b', null, t + 1n), remote('r', null, t + 2n)]);
    assert.deepEqual(counts(), [2, 3, 5]);
    await replica.applyRemote([remote('z', 'back', t + 3n)]);
    assert.deepEqual(counts(), [3, 2, 5]);
    // Concurrent mixed writes in one batch: the final state decides the counts.
    await Promise.all([replica.delete('c'), replica.put('c', value('x')), replica.delete('c'), replica.put('d', value('y'))]);
    assert.deepEqual(counts(), [3, 3, 6]);

    await replica.close();
    await store.close();
    const reopened = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms });
    assert.deepEqual([reopened.liveCount, reopened.tombstoneCount, reopened.entryCount], [3, 3, 6]);
    assert.ok(sameRoot(replica, reopened));
  });
});

describe('Replica write queue', () => {
  // A write issued at any microtask offset after the previous write resolved still completes.
  // (Regression: a write enqueued after the flush loop drained but before its `finally` ran was stranded.)
  it('never strands a write issued just after the queue drains', async () => {
    const stranded: number[] = [];
    for (let ticks = 0; ticks <= 6; ticks++) {
      for (const kind of ['put', 'delete', 'applyRemote'] as const) {
        const replica = await openMemoryReplica(nodeA);
        await replica.put('a', value('1'));
        for (let i = 0; i < ticks; i++) await null;
        const write =
          kind === 'put'
            ? replica.put('b', value('2'))
            : kind === 'delete'
              ? replica.delete('b')
              : replica.applyRemote([remote('b', '2', hlcPack(baseMs, 1))]);
        let settled = false;
        void write.then(() => (settled = true));
        await new Promise((resolve) => setImmediate(resolve));
        if (!settled) stranded.push(ticks);
        // Unblock the stranded write (a later write restarts the queue) so nothing leaks.
        await replica.applyRemote([]);
        await write;
      }
    }
    assert.deepEqual(stranded, [], `writes stranded when issued this many microtasks after a write resolved: ${stranded}`);
  });

  // A read followed by a write (a common handler shape) completes.
  it('completes a write issued right after awaiting a read', async () => {
    const replica = await openMemoryReplica(nodeA);
    await replica.put('k', value('1'));
    await replica.get('k');
    const write = replica.put('k', value('2'));
    let settled = false;
    void write.then(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    const wasSettled = settled;
    await replica.applyRemote([]); // unblock if stranded
    await write;
    assert.ok(wasSettled, 'put after get never settled until another write arrived');
  });
});

describe('Replica key filter', () => {
  // New keys skip the store read; stored keys (also after a reopen) are read, so merges and
  // the tree see the versions they replace.
  it('reads only keys the store may hold, and the tree stays exact across a reopen', async () => {
    const clock = { ms: baseMs };
    const store = new ReadCountingStore();
    // The version cache off: it would answer for the keys just written (version-cache.test.ts).
    const first = guarded(await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms, versionCacheBytesMax: 0 }));
    await Promise.all(Array.from({ length: 100 }, (_, i) => first.put(`k${i}`, value('old'))));
    assert.deepEqual(store.read, [], 'new keys are not read');
    await first.put('k1', value('again'));
    assert.deepEqual(store.read, ['k1']);
    await first.close();

    store.read.length = 0;
    const reopened = guarded(await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms, versionCacheBytesMax: 0 }));
    clock.ms += 1;
    await Promise.all(Array.from({ length: 50 }, (_, i) => reopened.put(`k${i}`, value('new'))));
    await reopened.put('fresh', value('x'));
    const stale = await reopened.applyRemote([remote('k99', 'stale', 1n)]);
    assert.equal(stale.stale, 1, 'a stored newer version wins over a stale remote one');
    assert.deepEqual(new Set(store.read), new Set([...Array.from({ length: 50 }, (_, i) => `k${i}`), 'k99']));
    assert.equal(reopened.entryCount, 101);
    assert.equal(text(await reopened.get('k0')), 'new');
    await reopened.close();
    const rebuilt = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms });
    assert.ok(sameRoot(reopened, rebuilt), 'the updated tree equals one rebuilt from the store');
  });
});

describe('Replica.writeMany', () => {
  // Each write is stamped in order and merged as if alone; invalid ones get their own error.
  it('returns a version or an error for each write, in order, and applies the valid ones', async () => {
    const changes: AppliedChange[] = [];
    const replica = await memoryReplica(nodeA, undefined, { onApplied: (applied) => changes.push(...applied) });
    await replica.put('d', value('before'));
    const results = await settlesPromptly(
      replica.writeMany([
        { key: 'a', value: value('1') },
        { key: '', value: value('x') },
        { key: 'a', value: value('2') },
        { key: 'big', value: new Uint8Array(replica.valueBytesMax + 1) },
        { key: 'd', value: null },
      ]),
      'writeMany',
    );
    assert.ok(results[1] instanceof InvalidKeyError);
    assert.ok(results[3] instanceof ValueTooLargeError);
    const [first, second, deleted] = [results[0], results[2], results[4]] as Version[];
    assert.ok(compareVersions(first!, second!) < 0 && compareVersions(second!, deleted!) < 0, 'stamped in order');
    assert.equal(text(await replica.get('a')), '2');
    assert.deepEqual((await replica.get('a'))?.version, second);
    assert.equal(text(await replica.get('d')), null);
    assert.equal(await replica.get('big'), undefined);
    assert.deepEqual(
      changes.slice(1).map((change) => [change.entry.key, change.origin]),
      [['a', 'local'], ['a', 'local'], ['d', 'local']],
    );
    assert.deepEqual(changes[2]!.previous, first, 'the second write to a key replaces the first');
    assert.equal(replica.liveCount, 1);
    assert.equal(replica.tombstoneCount, 1);
  });

  it('resolves at once when nothing is valid, and refuses after close', async () => {
    const replica = await memoryReplica(nodeA);
    const [only] = await settlesPromptly(replica.writeMany([{ key: '', value: null }]), 'writeMany');
    assert.ok(only instanceof InvalidKeyError);
    assert.deepEqual(await settlesPromptly(replica.writeMany([]), 'writeMany'), []);
    await replica.close();
    await assert.rejects(replica.writeMany([{ key: 'a', value: value('1') }]), ReplicaClosedError);
  });
});

/** A memory store whose writes wait until the test opens the gate; records each batch's size. */
class GatedStore extends MemoryStore {
  readonly batches: number[] = [];
  private gate: Promise<void> = Promise.resolve();
  private openGate: () => void = () => undefined;
  close_(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }
  open_(): void {
    this.openGate();
  }
  override async write(entries: readonly Entry[], hlcLast: bigint): Promise<void> {
    this.batches.push(entries.length);
    await this.gate;
    await super.write(entries, hlcLast);
  }
}

function macrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('Replica remote queue bound', () => {
  // Past remoteQueueEntriesMax, applyRemote (and whenRoom) wait until a commit makes room;
  // every entry is applied in the end, none is dropped, and the queue never holds more.
  it('makes applyRemote wait for room past the bound, and loses nothing', async () => {
    const store = new GatedStore();
    const replica = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, remoteQueueEntriesMax: 4 });
    const entries = Array.from({ length: 9 }, (_, i) => remote(`k${i}`, `v${i}`, hlcPack(baseMs, i)));
    store.close_();
    const settled: string[] = [];
    const first = replica.applyRemote(entries.slice(0, 3)).then((r) => (settled.push('first'), r));
    await macrotask(); // the first batch is now in store.write, held by the gate
    assert.deepEqual(store.batches, [3]);
    const second = replica.applyRemote(entries.slice(3, 5)).then((r) => (settled.push('second'), r)); // 3 + 2 > 4: waits
    const third = replica.applyRemote(entries.slice(5, 6)).then((r) => (settled.push('third'), r)); // behind the second, in order
    let roomAt = -1;
    const room = replica.whenRoom().then(() => (roomAt = settled.length));
    await macrotask();
    assert.equal(replica.remoteQueuedEntries, 3, 'the waiting calls were queued past the bound');
    assert.deepEqual(settled, []);
    assert.equal(roomAt, -1, 'whenRoom resolved while the queue was full');

    store.open_();
    const reports = await Promise.all([first, second, third]);
    await room;
    assert.deepEqual(settled, ['first', 'second', 'third']);
    assert.ok(roomAt >= 0, 'whenRoom resolved once the first batch was durable');
    // After the first batch: the second and third (3 entries) fit together in one batch.
    assert.deepEqual(store.batches, [3, 3]);
    assert.deepEqual(
      reports.map((r) => r.applied),
      [3, 2, 1],
    );

    // A call larger than the bound is admitted alone once nothing else is queued.
    const newer = entries.slice(0, 3).map((e) => ({ ...e, version: { ...e.version, hlc: e.version.hlc + 100n } }));
    const big = await replica.applyRemote([...entries.slice(6), ...newer]);
    assert.equal(big.applied, 6);
    assert.equal(replica.remoteQueuedEntries, 0);
    const held = await allEntries(replica);
    assert.equal(held.size, 9, 'every entry was applied');
    for (const entry of [...newer, ...entries.slice(3)]) assert.deepEqual(held.get(entry.key)?.version, entry.version);
  });

  // Gossip waits for room for a whole message of N entries: whenRoom(n) resolves only once
  // an applyRemote of n would be queued at once, while whenRoom(1) may resolve earlier.
  it('whenRoom(n) waits until n entries fit (or nothing is queued)', async () => {
    const store = new GatedStore();
    const replica = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, remoteQueueEntriesMax: 4 });
    const entries = Array.from({ length: 12 }, (_, i) => remote(`k${i}`, `v${i}`, hlcPack(baseMs, i)));
    store.close_();
    const first = replica.applyRemote(entries.slice(0, 3)); // in store.write, held by the gate
    await macrotask();
    const woke: string[] = [];
    const one = replica.whenRoom(1).then(() => woke.push('one'));
    const two = replica.whenRoom(2).then(() => woke.push('two'));
    const big = replica.whenRoom(9).then(() => woke.push('nine'));
    await macrotask();
    assert.deepEqual(woke, ['one'], 'room for 1 of 4 with 3 queued; not for 2, nor 9');

    store.open_();
    await first;
    await Promise.all([two, big]);
    assert.deepEqual(woke, ['one', 'two', 'nine'], 'an empty queue has room for anything (a call larger than the bound is admitted alone)');
    await one;
  });
});

describe('Replica clock guard', () => {
  const hour = 3_600_000;

  // Run with the clock an hour ahead, then restarted with the clock fixed: the persisted bound
  // is an hour ahead, so every stamp would be; writes are refused with a way out, not acked.
  it('refuses local writes while its clock bound is beyond the drift limit; --reset-clock-bound is the way out', async () => {
    const store = new MemoryStore();
    const ahead = { ms: baseMs + hour };
    const first = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => ahead.ms });
    const future = await first.put('written-ahead', value('v'));
    await first.close();

    const fixed = { ms: baseMs };
    const second = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => fixed.ms });
    assert.ok(second.clockAhead().boundMs >= hour - 1);
    await assert.rejects(second.put('k', value('v')), (error: Error) => error.name === 'ClockAheadError' && /--reset-clock-bound/.test(error.message));
    await assert.rejects(second.delete('k'), { name: 'ClockAheadError' });
    await assert.rejects(second.writeMany([{ key: 'k', value: value('v') }]), { name: 'ClockAheadError' });
    assert.equal(await second.get('k'), undefined);
    await second.close();

    const reset = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => fixed.ms, resetClockBound: true });
    assert.equal(reset.clockAhead().boundMs, 0);
    const version = await reset.put('k', value('now'));
    assert.ok(version.hlc < future.hlc, 'stamped at the wall clock, not an hour ahead');
    // The key written an hour ahead keeps its version; a write to it is refused, not lost.
    await assert.rejects(reset.put('written-ahead', value('w')), { name: 'VersionFromFutureError' });
    const [ok, refused] = await reset.writeMany([
      { key: 'k2', value: value('x') },
      { key: 'written-ahead', value: null },
    ]);
    assert.ok(!(ok instanceof Error));
    assert.equal((refused as Error).name, 'VersionFromFutureError');
    assert.deepEqual((await reset.get('written-ahead'))?.version, future);
    fixed.ms += hour + 1_000; // once the clock passes it, the key takes writes again
    assert.ok((await reset.put('written-ahead', value('later'))).hlc > future.hlc);
  });

  // A wall clock ahead of the peers' (as membership measures it) also refuses writes.
  it('refuses local writes while its clock is ahead of its peers beyond the drift limit', async () => {
    let aheadOfPeers = hour;
    const replica = await memoryReplica(nodeA, { ms: baseMs }, { clockAheadOfPeersMs: () => aheadOfPeers });
    await assert.rejects(replica.put('k', value('v')), (error: Error) => error.name === 'ClockAheadError' && /ahead of its peers/.test(error.message));
    aheadOfPeers = 400; // within the 500 ms limit
    await replica.put('k', value('v'));
    assert.equal(text(await replica.get('k')), 'v');
  });
});
