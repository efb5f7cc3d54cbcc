/**
 * The scatter-gather of partitioned prefix reads (src/core/scatter-read.ts) over fake owners,
 * and the scan page codec of the query protocol: every key of every partition once, in key
 * order, paged (each page at most what was asked), an owner that fails mid-read replaced by the next without a key lost or repeated,
 * partitions with no owner reported (or the read failed), hostile pages (out of order, outside
 * the prefix, of another partition, too many, a continuation that does not advance) refused,
 * and the reply decoder refusing every cut and bad count; the watch protocol's frames (cuts,
 * unknown types, random bytes) and its dedupe of the copies each owner reports.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../../src/core/bytes.js';
import { keyHash, writeEntry, type Entry } from '../../src/core/entry.js';
import { MalformedError } from '../../src/core/errors.js';
import { assign, checkPage, scatterScan, type PageRequest, type ScanPage } from '../../src/core/scatter-read.js';
import { decodeScanReply } from '../../src/net/query-protocol.js';
import { ChangeDedupe, decodeWatchFrame, encodeChangeFrame } from '../../src/net/watch-protocol.js';

const nodes = ['000000000000000a', '000000000000000b', '000000000000000c', '000000000000000d', '000000000000000e'];
const self = nodes[0]!;

function partitionOfKey(key: string): number {
  return keyHash(key)[0]!;
}

/** Three owners per partition, rotating over the five nodes. */
function readOwners(p: number): readonly string[] {
  return [nodes[p % 5]!, nodes[(p + 1) % 5]!, nodes[(p + 2) % 5]!];
}

function entry(key: string, hlc = 1n, node = self, value: Uint8Array | null = new Uint8Array([1])): Entry {
  return { key, value, version: { hlc, node } };
}

/** Each node's store: the keys of the partitions it owns (as readOwners says). */
function stores(keys: readonly string[], hlcOf: (key: string, owner: string) => bigint = () => 1n): Map<string, Entry[]> {
  const byNode = new Map<string, Entry[]>(nodes.map((n) => [n, []]));
  for (const key of [...keys].sort()) for (const owner of readOwners(partitionOfKey(key))) byNode.get(owner)!.push(entry(key, hlcOf(key, owner), owner));
  return byNode;
}

/** A well-behaved owner: the page the query protocol's readPage would build (entries only, no byte bound). */
function pageOf(store: readonly Entry[], request: PageRequest): ScanPage {
  const asked = new Set(request.partitions);
  const entries: Entry[] = [];
  for (const e of store) {
    if (!e.key.startsWith(request.prefix) || (request.startAfter !== undefined && e.key <= request.startAfter)) continue;
    if (!asked.has(partitionOfKey(e.key))) continue;
    entries.push(e);
    if (entries.length >= request.pageEntries) return { entries, resumeAfter: e.key };
  }
  return { entries, resumeAfter: undefined };
}

async function collect(iterable: AsyncIterable<Entry>): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of iterable) out.push(e);
  return out;
}

function keysOf(count: number, prefix = 'k/'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(5, '0')}`);
}

describe('scatter-gather prefix reads', () => {
  it('assign: this node for the partitions it reads, else the first usable owner; none: missing', () => {
    const { byOwner, missing } = assign([0, 1, 2, 3, 4], readOwners, self, () => true);
    assert.deepEqual(missing, []);
    // self (node a) is an owner of partitions 0, 3 and 4 (owners p, p+1, p+2 mod 5).
    assert.deepEqual(byOwner.get(self), [0, 3, 4]);
    assert.deepEqual(byOwner.get(nodes[1]!), [1]);
    assert.deepEqual(byOwner.get(nodes[2]!), [2]);
    const down = new Set([nodes[1]!, nodes[2]!, nodes[3]!]);
    const partial = assign([1, 2], readOwners, self, (n) => !down.has(n));
    assert.deepEqual(partial.missing, [1]); // owners b, c, d: all down
    assert.deepEqual(partial.byOwner.get(nodes[4]!), [2]); // owners c, d, e: e is up
  });

  it('every key once, in key order, paged, whatever the page size and limit', async () => {
    const keys = keysOf(700);
    const byNode = stores(keys);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 64 }), fc.option(fc.integer({ min: 0, max: 800 }), { nil: undefined }), async (pageEntries, limit) => {
        let largest = 0;
        const got = await collect(
          scatterScan({
            prefix: 'k/',
            limit,
            pageEntries,
            self,
            readOwners,
            usable: () => true,
            fetch: async (request) => {
              const page = pageOf(byNode.get(request.owner)!, request);
              largest = Math.max(largest, page.entries.length);
              return page;
            },
            onMissing: () => assert.fail('no partition is missing'),
          }),
        );
        const expected = limit === undefined ? keys : keys.slice(0, limit);
        assert.deepEqual(
          got.map((e) => e.key),
          expected,
        );
        assert.ok(largest <= pageEntries, 'no page holds more than asked');
      }),
      { numRuns: 30 },
    );
  });

  it('startAfter and prefix: only the keys after it under the prefix', async () => {
    const keys = [...keysOf(100, 'a/'), ...keysOf(100, 'b/')];
    const byNode = stores(keys);
    const got = await collect(
      scatterScan({ prefix: 'b/', startAfter: 'b/00049', pageEntries: 7, self, readOwners, usable: () => true, fetch: async (r) => pageOf(byNode.get(r.owner)!, r), onMissing: () => assert.fail('none missing') }),
    );
    assert.deepEqual(
      got.map((e) => e.key),
      keysOf(100, 'b/').slice(50),
    );
  });

  it('an owner that fails mid-read is replaced by the next owner: no key lost or repeated', async () => {
    const keys = keysOf(600);
    const byNode = stores(keys);
    const failing = nodes[1]!;
    let pagesOfFailing = 0;
    const failed: string[] = [];
    const got = await collect(
      scatterScan({
        prefix: 'k/',
        pageEntries: 5,
        self,
        readOwners,
        usable: () => true,
        fetch: async (request) => {
          if (request.owner === failing && ++pagesOfFailing > 3) throw new Error('connection reset');
          return pageOf(byNode.get(request.owner)!, request);
        },
        onMissing: () => assert.fail('another owner holds every partition'),
        onOwnerFailed: (owner) => failed.push(owner),
      }),
    );
    assert.deepEqual(
      got.map((e) => e.key),
      keys,
    );
    assert.deepEqual(failed, [failing]);
  });

  it('partitions with no owner: onMissing (which may fail the read); the others are read', async () => {
    const keys = keysOf(400);
    const byNode = stores(keys);
    const down = new Set([nodes[1]!, nodes[2]!, nodes[3]!]); // partitions whose owners are b, c, d
    const missing: number[] = [];
    const got = await collect(
      scatterScan({ prefix: 'k/', pageEntries: 50, self, readOwners, usable: (n) => !down.has(n), fetch: async (r) => pageOf(byNode.get(r.owner)!, r), onMissing: (ps) => missing.push(...ps) }),
    );
    const lost = new Set(missing);
    assert.ok(lost.size > 0 && [...lost].every((p) => p % 5 === 1), 'exactly the partitions owned by b, c, d');
    assert.deepEqual(
      got.map((e) => e.key),
      keys.filter((k) => !lost.has(partitionOfKey(k))),
    );
    await assert.rejects(
      collect(
        scatterScan({
          prefix: 'k/',
          pageEntries: 50,
          self,
          readOwners,
          usable: (n) => !down.has(n),
          fetch: async (r) => pageOf(byNode.get(r.owner)!, r),
          onMissing: (ps) => {
            throw new Error(`${ps.length} partitions missing`);
          },
        }),
      ),
      /partitions missing/,
    );
  });

  it('hostile pages are refused (checkPage) and the owner replaced', async () => {
    const request: PageRequest = { owner: nodes[1]!, partitions: [partitionOfKey('k/1'), partitionOfKey('k/2')], prefix: 'k/', startAfter: 'k/0', pageEntries: 2 };
    const [k1, k2] = ['k/1', 'k/2'];
    const ok = (page: ScanPage): void => checkPage(page, request);
    ok({ entries: [entry(k1), entry(k2)], resumeAfter: k2 });
    const bad: [string, ScanPage][] = [
      ['out of order', { entries: [entry(k2), entry(k1)], resumeAfter: undefined }],
      ['repeated', { entries: [entry(k1), entry(k1)], resumeAfter: undefined }],
      ['not after startAfter', { entries: [entry('k/0')], resumeAfter: undefined }],
      ['outside the prefix', { entries: [entry('x/1')], resumeAfter: undefined }],
      ['too many', { entries: [entry(k1), entry(k2), entry('k/3')], resumeAfter: undefined }],
      ['continuation not advancing', { entries: [], resumeAfter: 'k/0' }],
      ['continuation before its last key', { entries: [entry(k2)], resumeAfter: 'k/10' }],
    ];
    const other = keysOf(200).find((k) => !request.partitions.includes(partitionOfKey(k)) && k > 'k/0')!;
    bad.push(['another partition', { entries: [entry(other)], resumeAfter: undefined }]);
    for (const [what, page] of bad) assert.throws(() => ok(page), MalformedError, what);

    // In a read: a liar's pages are dropped, its partitions read from the next owner.
    const keys = keysOf(300);
    const byNode = stores(keys);
    const rejected: boolean[] = [];
    const got = await collect(
      scatterScan({
        prefix: 'k/',
        pageEntries: 20,
        self,
        readOwners,
        usable: () => true,
        fetch: async (r) => (r.owner === nodes[2]! ? { entries: [entry('k/zzz'), entry('k/aaa')], resumeAfter: undefined } : pageOf(byNode.get(r.owner)!, r)),
        onMissing: () => assert.fail('others hold every partition'),
        onOwnerFailed: (_owner, _error, wasRejected) => rejected.push(wasRejected),
      }),
    );
    assert.deepEqual(
      got.map((e) => e.key),
      keys,
    );
    assert.deepEqual(rejected, [true]);
  });

  it('the scan reply decoder refuses every cut, a bad flag and an impossible count', () => {
    const w = new ByteWriter().u8(1).string('k/2').varint(2);
    writeEntry(w, entry('k/1'));
    writeEntry(w, entry('k/2', 3n, nodes[2]!, null));
    const bytes = w.finish();
    const page = decodeScanReply(new ByteReader(bytes), 1024);
    assert.deepEqual(
      page.entries.map((e) => e.key),
      ['k/1', 'k/2'],
    );
    assert.equal(page.resumeAfter, 'k/2');
    assert.equal(page.entries[1]!.value, null);
    const full = (b: Uint8Array): void => {
      const r = new ByteReader(b);
      decodeScanReply(r, 1024);
      r.end();
    };
    for (let cut = 0; cut < bytes.byteLength; cut++) assert.throws(() => full(bytes.subarray(0, cut)), MalformedError, `cut at ${cut}`);
    assert.throws(() => full(Uint8Array.from([2, 0])), MalformedError, 'unknown flag');
    assert.throws(() => full(new ByteWriter().u8(0).varint(1000).finish()), MalformedError, 'a count the bytes cannot hold');
    assert.throws(() => full(new ByteWriter().u8(0).varint(1_000_000).finish()), MalformedError, 'a count over the page limit');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (random) => {
        try {
          full(random);
        } catch (error) {
          assert.ok(error instanceof MalformedError, `random bytes: ${(error as Error).message}`);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('the watch protocol frames', () => {
  it('a change round-trips; cuts, unknown types and bad sizes are refused', () => {
    const change = { entry: entry('w/1', 5n, nodes[1]!, new Uint8Array(9)), keyHash: '', previous: undefined, origin: 'local' as const };
    const bytes = encodeChangeFrame(change);
    const decoded = decodeWatchFrame(bytes);
    assert.notEqual(decoded, 'behind');
    if (decoded === 'behind') return;
    assert.equal(decoded.entry.key, 'w/1');
    assert.equal(decoded.valueBytes, 9);
    assert.deepEqual(decoded.entry.version, change.entry.version);
    const tombstone = decodeWatchFrame(encodeChangeFrame({ ...change, entry: entry('w/2', 6n, nodes[1]!, null) }));
    assert.ok(tombstone !== 'behind' && tombstone.entry.value === null);
    assert.equal(decodeWatchFrame(Uint8Array.of(2)), 'behind');
    for (let cut = 0; cut < bytes.byteLength; cut++) assert.throws(() => decodeWatchFrame(bytes.subarray(0, cut)), MalformedError, `cut at ${cut}`);
    assert.throws(() => decodeWatchFrame(Uint8Array.of(9)), MalformedError, 'unknown frame type');
    assert.throws(() => decodeWatchFrame(Uint8Array.of(2, 0)), MalformedError, 'trailing bytes');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (random) => {
        try {
          decodeWatchFrame(random);
        } catch (error) {
          assert.ok(error instanceof MalformedError, (error as Error).message);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('ChangeDedupe: each (key, version) once, within a bounded memory; an expiry (the same version as a tombstone) is a change of its own', () => {
    const dedupe = new ChangeDedupe();
    assert.equal(dedupe.first(entry('a', 1n)), true);
    assert.equal(dedupe.first(entry('a', 1n)), false);
    assert.equal(dedupe.first(entry('a', 2n)), true);
    assert.equal(dedupe.first(entry('b', 1n)), true);
    assert.equal(dedupe.first(entry('a', 1n, self, null)), true, "a's expiry");
    assert.equal(dedupe.first(entry('a', 1n, self, null)), false, "the expiry from another owner");
  });
});
