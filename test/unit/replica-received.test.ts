/**
 * Replica.applyReceived (a commit from the entries' received bytes: commitReceived, and
 * LevelStore.writeReceived) against applyRemote of the decoded entries with their encodings,
 * the path it replaces: the same reports, changes, clock, tree, counts, entries, and on
 * LevelDB the same rows, over random rounds of received frames (keys rewritten, tombstones,
 * TTLs, duplicates within a frame, stale and future stamps, several calls in one commit, local
 * writes in the same commit).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Level } from 'level';
import { encodeEntry, type Entry } from '../../src/core/entry.js';
import { hlcPack } from '../../src/core/hlc.js';
import { decodeReceivedEntries } from '../../src/core/received-entries.js';
import { Replica, type AppliedChange, type ApplyReport } from '../../src/core/replica.js';
import type { Store } from '../../src/core/store.js';
import { LevelStore } from '../../src/store/level-store.js';
import { storeSubjects } from '../helpers/store-subjects.js';

const nodeId = '00000000000000bb';
const baseMs = 1_700_000_000_000;
const valueLimit = 1 << 20;

const entryArb: fc.Arbitrary<Entry> = fc
  .record({
    key: fc.oneof(fc.constantFrom('a', 'b', 'c', 'k/1', 'k/2', 'ключ', '\uFEFFbom'), fc.string({ minLength: 1, maxLength: 6 })),
    kind: fc.constantFrom('value', 'value', 'tombstone', 'ttl'),
    // Mostly in the past; some past the drift limit (refused); small counters so stamps tie.
    ms: fc.oneof({ arbitrary: fc.integer({ min: -5_000, max: 0 }), weight: 9 }, { arbitrary: fc.constant(60_000), weight: 1 }),
    counter: fc.integer({ min: 0, max: 3 }),
    node: fc.constantFrom('00000000000000aa', '00000000000000bb', '00000000000000cc'),
    value: fc.uint8Array({ maxLength: 24 }),
  })
  .map(({ key, kind, ms, counter, node, value }) => {
    const version = { hlc: hlcPack(baseMs + ms, counter), node };
    if (kind === 'tombstone') return { key, value: null, version };
    if (kind === 'ttl') return { key, value, version, expiresAtMs: baseMs + ms + 60_000 };
    return { key, value, version };
  });

/** A round: one or more frames handed over together (one commit), maybe with a local write among them. */
const roundArb = fc.record({ frames: fc.array(fc.array(entryArb, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 3 }), local: fc.option(fc.constantFrom('a', 'z'), { nil: undefined }) });

function frameOf(entries: readonly Entry[]) {
  const bytes = new Uint8Array(Buffer.concat(entries.map((entry) => encodeEntry(entry))));
  return decodeReceivedEntries(bytes, 0, entries.length, valueLimit).entries;
}

interface Observed {
  reports: ApplyReport[];
  changes: string[];
}

function changeText(change: AppliedChange): string {
  const { entry } = change;
  assert.equal(change.hlc, entry.version.hlc, 'a change says its entry\'s stamp');
  assert.equal(change.expires, entry.expiresAtMs !== undefined, 'a change says whether its entry expires');
  return JSON.stringify([entry.key, entry.value && Buffer.from(entry.value).toString('hex'), String(entry.version.hlc), entry.version.node, entry.expiresAtMs, change.previous && String(change.previous.hlc), change.previous?.node, change.origin, change.keyHash.length]);
}

async function run(store: Store, rounds: readonly { frames: Entry[][]; local: string | undefined }[], received: boolean): Promise<{ replica: Replica; observed: Observed }> {
  const observed: Observed = { reports: [], changes: [] };
  let now = baseMs;
  const replica = await Replica.open({ nodeId, store, wallClockMs: () => now, onApplied: (changes) => observed.changes.push(...changes.map(changeText)) });
  for (const round of rounds) {
    now += 1;
    const calls: Promise<unknown>[] = round.frames.map((entries) => {
      const frame = frameOf(entries);
      return received ? replica.applyReceived(frame) : replica.applyRemote(frame.entries(), { encodings: frame.encodings() });
    });
    if (round.local !== undefined) calls.splice(1, 0, replica.put(round.local, Uint8Array.of(1)));
    for (const result of await Promise.all(calls)) if (typeof result === 'object' && result !== null && 'applied' in result) observed.reports.push(result as ApplyReport);
  }
  return { replica, observed };
}

async function rows(dir: string): Promise<string[]> {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  const out: string[] = [];
  for await (const [key, value] of db.iterator()) {
    const name = Buffer.from(key).toString('latin1');
    if (name === '!m!epoch') continue; // each store's own
    out.push(`${Buffer.from(key).toString('hex')}=${Buffer.from(value).toString('hex')}`);
  }
  await db.close();
  return out;
}

describe('Replica.applyReceived', () => {
  for (const subject of storeSubjects('ckv-received-')) {
    it(`does what applyRemote of the decoded entries does (${subject.name})`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(roundArb, { minLength: 1, maxLength: 6 }), async (rounds) => {
          const [viaBytes, viaEntries] = [subject.make(), subject.make()];
          const [storeA, storeB] = [viaBytes.store(), viaEntries.store()];
          try {
            const a = await run(storeA, rounds, true);
            const b = await run(storeB, rounds, false);
            assert.deepStrictEqual(a.observed, b.observed);
            assert.deepStrictEqual(a.replica.root(), b.replica.root());
            assert.equal(a.replica.entryCount, b.replica.entryCount);
            assert.equal(a.replica.tombstoneCount, b.replica.tombstoneCount);
            assert.equal(a.replica.hlcLast, b.replica.hlcLast);
            assert.deepStrictEqual(a.replica.position().seq, b.replica.position().seq);
            const all = async (replica: Replica) => {
              const out: Entry[] = [];
              for await (const entry of replica.scanHash('')) out.push(entry);
              return out;
            };
            assert.deepStrictEqual(await all(a.replica), await all(b.replica));
            await a.replica.close();
            await b.replica.close();
            if (storeA instanceof LevelStore && storeB instanceof LevelStore) {
              await storeA.close();
              await storeB.close();
              assert.deepStrictEqual(await rows(storeA.location), await rows(storeB.location));
            }
          } finally {
            viaBytes.dispose();
            viaEntries.dispose();
          }
        }),
        { numRuns: subject.name === 'LevelStore' ? 25 : 100 },
      );
    });
  }

  it('decodes a frame that is not canonical and applies it as applyRemote does', async () => {
    const entry: Entry = { key: 'key', value: Uint8Array.of(7), version: { hlc: hlcPack(baseMs - 10, 0), node: '00000000000000aa' } };
    const encoded = encodeEntry(entry);
    const padded = new Uint8Array(Buffer.concat([Buffer.from([0x83, 0x00]), encoded.subarray(1)]));
    const frame = decodeReceivedEntries(padded, 0, 1, valueLimit).entries;
    assert.equal(frame.canonical, false);
    const changes: AppliedChange[] = [];
    const { replica } = { replica: await Replica.open({ nodeId, store: storeSubjects('x')[0]!.make().store(), wallClockMs: () => baseMs, onApplied: (applied) => changes.push(...applied) }) };
    assert.deepEqual(await replica.applyReceived(frame, { outcomes: true }), { applied: 1, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0, outcomes: ['applied'] });
    assert.deepStrictEqual(await replica.get('key'), entry);
    assert.deepStrictEqual(changes.map((change) => change.entry), [entry]);
  });

  it('refuses a value above its own limit, a key it does not hold and a stamp too far ahead, in order, and says so per entry', async () => {
    const replica = await Replica.open({ nodeId, store: storeSubjects('x')[0]!.make().store(), wallClockMs: () => baseMs, valueBytesMax: 4, holds: (hash) => hash.charCodeAt(0) % 2 === 0 });
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const entries: Entry[] = keys.map((key, i) => ({ key, value: new Uint8Array(i % 3 === 0 ? 8 : 2), version: { hlc: hlcPack(baseMs + (i % 4 === 1 ? 60_000 : -1), i), node: '00000000000000aa' } }));
    const frame = frameOf(entries);
    const viaEntries = await Replica.open({ nodeId, store: storeSubjects('x')[0]!.make().store(), wallClockMs: () => baseMs, valueBytesMax: 4, holds: (hash) => hash.charCodeAt(0) % 2 === 0 });
    const expected = await viaEntries.applyRemote(frame.entries(), { outcomes: true });
    const report = await replica.applyReceived(frame, { outcomes: true });
    assert.deepStrictEqual(report, expected);
    assert.ok(report.rejectedInvalid > 0 && report.rejectedNotHeld > 0 && report.rejectedClockDrift > 0 && report.applied > 0, JSON.stringify(report));
    assert.equal(replica.hlcLast, viaEntries.hlcLast, 'a refused entry did not move the clock');
  });
});
