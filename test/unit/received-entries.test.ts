/**
 * A frame's entries decoded as their bytes (src/core/received-entries.ts): the same entries,
 * checks and encodings as readEntry and canonicalEncoding give, and every fact the replica's bulk
 * path reads in place (hashes, digests, stamps, lengths) equal to what the entry object says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../../src/core/bytes.js';
import { canonicalEncoding, encodeEntry, entryDigestText, keyHash, keyHashText, readEntry, type Entry } from '../../src/core/entry.js';
import { MalformedError } from '../../src/core/errors.js';
import { hlcWallMs } from '../../src/core/hlc.js';
import { receivedEncodingBytesMax, ttlMsMax } from '../../src/core/limits.js';
import { decodeReceivedEntries } from '../../src/core/received-entries.js';
import { entryArb, record, keyArb, versionArb } from '../helpers/core-gen.js';

const valueLimit = 1 << 20;

/** Entries with a TTL as well (a live value whose expiry is 1..ttlMsMax ms after its stamp). */
const anyEntryArb: fc.Arbitrary<Entry> = fc.oneof(
  { arbitrary: entryArb, weight: 4 },
  {
    arbitrary: record({ key: keyArb, value: fc.uint8Array({ maxLength: 32 }), version: versionArb, ttlMs: fc.integer({ min: 1, max: ttlMsMax }) })
      .filter(({ version }) => Number.isSafeInteger(hlcWallMs(version.hlc) + ttlMsMax))
      .map(({ key, value, version, ttlMs }) => ({ key, value, version, expiresAtMs: hlcWallMs(version.hlc) + ttlMs })),
    weight: 1,
  },
);

function concat(parts: readonly Uint8Array[], before = 0): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.alloc(before, 0xee), ...parts]));
}

/** What decodeFrame read before: readEntry per entry, canonicalEncoding of its bytes. */
function readOneByOne(bytes: Uint8Array, from: number, count: number): { entries: Entry[]; encodings: (Uint8Array | undefined)[] } {
  const reader = new ByteReader(bytes);
  reader.skip(from);
  const entries: Entry[] = [];
  const encodings: (Uint8Array | undefined)[] = [];
  for (let i = 0; i < count; i++) {
    const start = reader.position;
    const entry = readEntry(reader, valueLimit);
    entries.push(entry);
    encodings.push(canonicalEncoding(bytes, start, reader.position, entry));
  }
  return { entries, encodings };
}

const hex = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('hex'));

describe('received entries', () => {
  it('decode to the entries readEntry gives, with the same encodings, hashes, digests and facts', () => {
    fc.assert(
      fc.property(fc.array(anyEntryArb, { maxLength: 30 }), fc.nat(5), (entries, before) => {
        const bytes = concat(entries.map(encodeEntry), before);
        const { entries: received, end } = decodeReceivedEntries(bytes, before, entries.length, valueLimit);
        assert.equal(end, bytes.byteLength);
        assert.equal(received.length, entries.length);
        const expected = readOneByOne(bytes, before, entries.length);
        assert.deepStrictEqual(received.entries(), expected.entries);
        assert.deepStrictEqual(received.encodings().map(hex), expected.encodings.map(hex));
        assert.equal(received.canonical, expected.encodings.every((encoding) => encoding !== undefined));
        entries.forEach((entry, i) => {
          assert.deepStrictEqual(received.entry(i), expected.entries[i]);
          assert.equal(received.key(i), entry.key);
          assert.equal(received.keyHashText(i), keyHashText(entry.key));
          assert.deepStrictEqual(Buffer.from(received.keyHash(i)), Buffer.from(keyHash(entry.key)));
          assert.equal(received.digestText(i), entryDigestText(entry.key, entry.version));
          assert.equal(received.hlc(i), entry.version.hlc);
          assert.deepStrictEqual(received.version(i), entry.version);
          assert.equal(received.isTombstone(i), entry.value === null);
          assert.equal(received.expires(i), entry.expiresAtMs !== undefined);
          assert.equal(received.valueBytes(i), entry.value?.byteLength ?? 0);
          assert.equal(received.keyBytes(i), Buffer.byteLength(entry.key, 'utf8'));
          assert.equal(received.keyIsAscii(i), [...entry.key].every((unit) => unit.charCodeAt(0) < 0x80));
          assert.deepStrictEqual(Buffer.from(bytes.subarray(received.keyStart(i), received.keyEnd(i))), Buffer.from(entry.key, 'utf8'));
        });
      }),
      { numRuns: 300 },
    );
  });

  it('copy their values: an entry made from them does not change with the frame', () => {
    const entry: Entry = { key: 'k', value: new Uint8Array([1, 2, 3]), version: { hlc: 5n, node: '00000000000000aa' } };
    const bytes = concat([encodeEntry(entry)]);
    const { entries: received } = decodeReceivedEntries(bytes, 0, 1, valueLimit);
    const made = received.entries()[0]!;
    const one = received.entry(0);
    bytes.fill(0);
    assert.deepStrictEqual(made, entry);
    assert.deepStrictEqual(one, entry);
  });

  it('slice and filter keep the entries asked for, in order', () => {
    const entries = Array.from({ length: 7 }, (_, i): Entry => ({ key: `k${i}`, value: new Uint8Array([i]), version: { hlc: BigInt(i + 1), node: '00000000000000aa' } }));
    const { entries: received } = decodeReceivedEntries(concat(entries.map(encodeEntry)), 0, entries.length, valueLimit);
    assert.deepStrictEqual(received.slice(2, 5).entries(), entries.slice(2, 5));
    assert.deepStrictEqual(received.slice(5, 100).entries(), entries.slice(5));
    assert.equal(received.slice(0, 7), received);
    assert.deepStrictEqual(received.filter((i) => i % 3 === 0).entries(), [entries[0], entries[3], entries[6]]);
    assert.equal(received.filter(() => false).length, 0);
  });

  it('call an entry with a padded varint not canonical, and decode it all the same', () => {
    const entry: Entry = { key: 'key', value: new Uint8Array(5).fill(7), version: { hlc: 9n, node: '00000000000000aa' } };
    const encoded = encodeEntry(entry);
    // The key length 3 written in two bytes (0x83 0x00): the same number, not the shortest form.
    const padded = concat([Uint8Array.of(0x83, 0x00), encoded.subarray(1)]);
    const bytes = concat([encoded, padded, encoded]);
    const { entries: received } = decodeReceivedEntries(bytes, 0, 3, valueLimit);
    assert.equal(received.canonical, false);
    assert.deepStrictEqual(received.entries(), [entry, entry, entry]);
    assert.deepStrictEqual(received.encodings().map(hex), [hex(encoded), undefined, hex(encoded)]);
    // The simulator's canary calls every entry canonical.
    const unchecked = decodeReceivedEntries(bytes, 0, 3, valueLimit, true).entries;
    assert.equal(unchecked.canonical, true);
    assert.equal(hex(unchecked.encodings()[1]), hex(padded));
  });

  it('call an entry above receivedEncodingBytesMax not canonical (its view would pin the frame)', () => {
    const entry: Entry = { key: 'big', value: new Uint8Array(receivedEncodingBytesMax), version: { hlc: 9n, node: '00000000000000aa' } };
    const { entries: received } = decodeReceivedEntries(encodeEntry(entry), 0, 1, receivedEncodingBytesMax * 2);
    assert.equal(received.canonical, false);
    assert.deepStrictEqual(received.encodings(), [undefined]);
    assert.deepStrictEqual(received.entries(), [entry]);
  });

  it('refuse what readEntry refuses, as malformed', () => {
    const node = Buffer.from('00000000000000aa', 'hex');
    const hlc = Buffer.alloc(8, 1);
    const entry = (keyBytes: Uint8Array, flags: number, ...tail: number[]) =>
      new ByteWriter().varint(keyBytes.byteLength).raw(keyBytes).u8(flags).raw(hlc).raw(node).raw(Uint8Array.from(tail)).finish();
    const k = Buffer.from('k');
    const cases: [string, Uint8Array, number, RegExp][] = [
      ['an empty key', entry(new Uint8Array(0), 0, 0), 1, /empty key/],
      ['a key that is not UTF-8', entry(Uint8Array.of(0xc3, 0x28), 0, 0), 1, /UTF-8/],
      ['an overlong UTF-8 key', entry(Uint8Array.of(0xc0, 0xaf), 0, 0), 1, /UTF-8/],
      ['a key over the limit', new ByteWriter().varint(100_000).raw(new Uint8Array(40)).finish(), 1, /limit/],
      ['unknown flags', entry(k, 4, 0), 1, /flags/],
      ['a tombstone with an expiry', entry(k, 3, 5), 1, /tombstone with an expiry/],
      ['a TTL of 0', entry(k, 2, 0, 0), 1, /TTL/],
      ['a value over the limit', new ByteWriter().raw(entry(k, 0)).varint(valueLimit + 1).finish(), 1, /limit/],
      ['a value cut short', entry(k, 0, 5, 1, 2), 1, /truncated/],
      ['an entry cut short', entry(k, 0).subarray(0, 10), 1, /truncated/],
      ['more entries than bytes', entry(k, 0, 0), 2, /truncated/],
      ['a varint of 9 bytes', Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, ...new Array<number>(30).fill(0)), 1, /varint/],
    ];
    for (const [what, bytes, count, message] of cases) {
      assert.throws(() => decodeReceivedEntries(bytes, 0, count, valueLimit), (error: unknown) => error instanceof MalformedError && message.test(error.message), what);
      assert.throws(() => readOneByOne(bytes, 0, count), MalformedError, `readEntry refuses ${what} too`);
    }
  });
});
