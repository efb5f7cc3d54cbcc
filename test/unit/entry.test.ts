import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { ByteReader, ByteWriter, fromHex, toHex, utf8 } from '../../src/core/bytes.js';
import {
  canonicalEncoding,
  canonicalEntryDigestText,
  checkKey,
  checkValue,
  compareVersions,
  decodeEntry,
  encodeEntry,
  encodeEntryInto,
  encodedEntryBytes,
  encodedEntryExpires,
  entryDigest,
  entryDigestText,
  hashPrefixOf,
  keyHash,
  keyHashPrefix,
  keyHashText,
  lastWriterWins,
  mergeEntries,
  readEntry,
  ReceivedValues,
  validateKey,
  versionEquals,
  writeEntry,
  writeVersion,
  type Entry,
  type Version,
} from '../../src/core/entry.js';
import { InvalidKeyError, MalformedError, ValueTooLargeError } from '../../src/core/errors.js';
import { keyBytesMax, receivedValuesChunkBytesMax, receivedValuesSharedBytesMax, ttlMsMax, valueBytesMax } from '../../src/core/limits.js';
import { hlcWallMs } from '../../src/core/hlc.js';
import { decodesOrMalformed, entryArb, keyArb, nodeIdArb, thrown, versionArb } from '../helpers/core-gen.js';

/** The version's bytes as they go on the wire: u64 hlc then the 8 node bytes. */
function versionBytes(version: Version): Uint8Array {
  return new ByteWriter(16).u64(version.hlc).raw(fromHex(version.node)).finish();
}

/** An entry whose value is a function of its version: equal versions mean the same write. */
function entryOf(key: string, version: Version): Entry {
  const value = version.hlc % 5n === 0n ? null : utf8(`${version.hlc}@${version.node}`);
  return { key, value, version };
}

describe('versions', () => {
  // compareVersions is antisymmetric, reflexive on equal versions, and agrees with versionEquals.
  it('compareVersions is antisymmetric and consistent with versionEquals', () => {
    fc.assert(
      fc.property(versionArb, versionArb, (a, b) => {
        const ab = compareVersions(a, b);
        const ba = compareVersions(b, a);
        assert.ok([-1, 0, 1].includes(ab));
        assert.equal(ab, -ba || 0);
        assert.equal(ab === 0, versionEquals(a, b));
        assert.equal(compareVersions(a, { ...a }), 0);
      }),
      { numRuns: 2000 },
    );
  });

  // compareVersions is transitive, so sorting by it is a total order.
  it('compareVersions is transitive', () => {
    fc.assert(
      fc.property(versionArb, versionArb, versionArb, (a, b, c) => {
        const [x, y, z] = [a, b, c].sort(compareVersions) as [Version, Version, Version];
        assert.ok(compareVersions(x, y) <= 0 && compareVersions(y, z) <= 0);
        assert.ok(compareVersions(x, z) <= 0, 'x <= y <= z but x > z');
        if (compareVersions(x, y) < 0 || compareVersions(y, z) < 0) assert.ok(compareVersions(x, z) < 0);
      }),
      { numRuns: 2000 },
    );
  });

  // The order is the byte order of the encoded version (hlc, then node bytes): every node agrees on it.
  it('compareVersions matches the byte order of the encoded version', () => {
    fc.assert(
      fc.property(versionArb, versionArb, (a, b) => {
        assert.equal(compareVersions(a, b), Math.sign(Buffer.compare(versionBytes(a), versionBytes(b))));
      }),
      { numRuns: 2000 },
    );
  });

  // lastWriterWins accepts exactly the versions strictly greater than the current one (or any if none).
  it('lastWriterWins agrees with compareVersions', () => {
    fc.assert(
      fc.property(versionArb, versionArb, (incoming, current) => {
        assert.equal(lastWriterWins(incoming, current), compareVersions(incoming, current) > 0);
        assert.equal(lastWriterWins(incoming, undefined), true);
        assert.equal(lastWriterWins(incoming, incoming), false);
        // Never both directions: at most one of two different writes wins over the other.
        assert.ok(!(lastWriterWins(incoming, current) && lastWriterWins(current, incoming)));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('mergeEntries', () => {
  const sameKeyEntries = fc.array(versionArb, { minLength: 3, maxLength: 3 }).map((vs) => vs.map((v) => entryOf('k', v)));

  // merge(a, b) = merge(b, a), and the result is the entry with the greatest version.
  it('is commutative and picks the greatest version', () => {
    fc.assert(
      fc.property(sameKeyEntries, ([a, b]) => {
        const ab = mergeEntries(a!, b!);
        assert.deepEqual(ab, mergeEntries(b!, a!));
        assert.ok(compareVersions(ab.version, a!.version) >= 0 && compareVersions(ab.version, b!.version) >= 0);
        assert.ok(ab === a || ab === b);
      }),
      { numRuns: 1000 },
    );
  });

  // merge(merge(a, b), c) = merge(a, merge(b, c)).
  it('is associative', () => {
    fc.assert(
      fc.property(sameKeyEntries, ([a, b, c]) => {
        assert.deepEqual(mergeEntries(mergeEntries(a!, b!), c!), mergeEntries(a!, mergeEntries(b!, c!)));
      }),
      { numRuns: 1000 },
    );
  });

  // merge(a, a) = a, and merging in any order of a list gives the same winner.
  it('is idempotent and order-independent over a list', () => {
    fc.assert(
      fc.property(
        fc.array(versionArb, { minLength: 1, maxLength: 20 }).map((vs) => vs.map((v) => entryOf('k', v))),
        fc.nat(),
        (entries, seed) => {
          for (const e of entries) assert.deepEqual(mergeEntries(e, e), e);
          const forward = entries.reduce(mergeEntries);
          const rotated = [...entries.slice(seed % entries.length), ...entries.slice(0, seed % entries.length)];
          assert.deepEqual(rotated.reduceRight(mergeEntries), forward);
          assert.deepEqual(mergeEntries(forward, forward), forward);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('entry encoding', () => {
  it('decodes each node id right in runs of one writer and of several (the decoder keeps the last one read)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(entryArb, fc.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 30 }), fc.array(nodeIdArb, { minLength: 3, maxLength: 3 }), (rows, ids) => {
        for (const [entry, which] of rows) {
          const withNode: Entry = { ...entry, version: { ...entry.version, node: ids[which]! } };
          assert.equal(decodeEntry(encodeEntry(withNode)).version.node, ids[which]);
        }
      }),
      { numRuns: 300 },
    );
  });

  // decodeEntry(encodeEntry(e)) = e for live entries, empty values, tombstones and Unicode keys.
  it('round-trips', () => {
    fc.assert(
      fc.property(entryArb, (entry) => {
        const bytes = encodeEntry(entry);
        const decoded = decodeEntry(bytes);
        assert.deepEqual(decoded, entry);
        // Re-encoding is canonical.
        assert.deepEqual(encodeEntry(decoded), bytes);
        // The decoded value is a copy: reusing the input buffer cannot change it.
        if (entry.value !== null && entry.value.byteLength > 0) {
          bytes.fill(0xee);
          assert.deepEqual(decoded.value, entry.value);
        }
      }),
      { numRuns: 1000 },
    );
  });

  // Boundary entries round-trip: a 1024-byte key, empty value, tombstone, extreme versions.
  it('round-trips boundary entries', () => {
    const maxKey = 'é'.repeat(keyBytesMax / 2);
    assert.equal(utf8(maxKey).byteLength, keyBytesMax);
    const cases: Entry[] = [
      { key: maxKey, value: new Uint8Array(0), version: { hlc: 0n, node: '0000000000000000' } },
      { key: 'x', value: null, version: { hlc: 2n ** 64n - 1n, node: 'ffffffffffffffff' } },
      { key: '😀 κλειδί 鍵', value: new Uint8Array(300).fill(7), version: { hlc: 12345n, node: '0123456789abcdef' } },
    ];
    for (const entry of cases) assert.deepEqual(decodeEntry(encodeEntry(entry)), entry);
  });

  // The flags byte read in place says what decoding says, for live values with and without an
  // expiry and for tombstones; bytes that end before the flags are refused, never misread.
  it('encodedEntryExpires agrees with decodeEntry and refuses bytes that end before the flags', () => {
    const withExpiry = fc
      .tuple(entryArb, fc.integer({ min: 1, max: ttlMsMax }))
      .map(([entry, ttlMs]): Entry => (entry.value === null ? entry : { ...entry, expiresAtMs: hlcWallMs(entry.version.hlc) + ttlMs }));
    fc.assert(
      fc.property(fc.oneof(entryArb, withExpiry), (entry) => {
        const bytes = encodeEntry(entry);
        assert.equal(encodedEntryExpires(bytes), decodeEntry(bytes).expiresAtMs !== undefined);
        // The flags follow the key's varint length (1 byte below 128, else 2) and the key.
        const keyBytes = utf8(entry.key).byteLength;
        const flagsAt = (keyBytes < 128 ? 1 : 2) + keyBytes;
        assert.equal(bytes[flagsAt]! & ~3, 0, 'the byte at flagsAt is the flags');
        for (const cut of new Set([0, 1, flagsAt - 1, flagsAt])) assert.throws(() => encodedEntryExpires(bytes.subarray(0, cut)), MalformedError);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const error = thrown(() => encodedEntryExpires(bytes));
        assert.ok(error === undefined || error instanceof MalformedError, `threw ${String(error)}`);
      }),
      { numRuns: 2000 },
    );
  });

  // A received entry's digest hashed from its canonical bytes (in place for a live value
  // without expiry, through a copy for a tombstone or one with an expiry) is its digest; and
  // canonicalEncoding takes encodeEntry's bytes, read anywhere in a larger buffer, as they are.
  it('canonicalEntryDigestText and canonicalEncoding agree with the entry', () => {
    const withExpiry = fc
      .tuple(entryArb, fc.integer({ min: 1, max: ttlMsMax }))
      .map(([entry, ttlMs]): Entry => (entry.value === null ? entry : { ...entry, expiresAtMs: hlcWallMs(entry.version.hlc) + ttlMs }));
    fc.assert(
      fc.property(fc.oneof(entryArb, withExpiry), fc.nat({ max: 9 }), (entry, before) => {
        const bytes = encodeEntry(entry);
        assert.equal(canonicalEntryDigestText(bytes), entryDigestText(entry.key, entry.version));
        const framed = Buffer.concat([Buffer.alloc(before, 7), bytes, Buffer.alloc(3, 7)]);
        const kept = canonicalEncoding(framed, before, before + bytes.byteLength, decodeEntry(bytes));
        assert.ok(kept !== undefined && Buffer.compare(kept, bytes) === 0);
      }),
      { numRuns: 500 },
    );
  });

  // Random bytes never decode into anything but an entry or a MalformedError.
  it('decodeEntry of random bytes throws only MalformedError', { timeout: 5_000 }, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(0, 1, 16, valueBytesMax), (bytes, limit) => {
        decodesOrMalformed(() => decodeEntry(bytes, limit));
      }),
      { numRuns: 3000 },
    );
  });

  // Every strict prefix of a valid encoding, and any trailing byte, is rejected with MalformedError.
  it('truncated or extended encodings throw MalformedError', { timeout: 5_000 }, () => {
    fc.assert(
      fc.property(entryArb, fc.nat(), (entry, cut) => {
        const bytes = encodeEntry(entry);
        const prefix = bytes.subarray(0, cut % bytes.byteLength);
        assert.throws(() => decodeEntry(prefix), MalformedError);
        const extended = new Uint8Array(bytes.byteLength + 1);
        extended.set(bytes);
        assert.throws(() => decodeEntry(extended), MalformedError);
      }),
      { numRuns: 1000 },
    );
  });

  // Valid encodings with random bytes changed either decode or throw MalformedError, nothing else.
  it('corrupted encodings throw only MalformedError', { timeout: 5_000 }, () => {
    fc.assert(
      fc.property(
        entryArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        (entry, flips) => {
          const bytes = encodeEntry(entry);
          for (const [at, xor] of flips) bytes[at % bytes.byteLength]! ^= xor;
          decodesOrMalformed(() => decodeEntry(bytes));
        },
      ),
      { numRuns: 2000 },
    );
  });

  // Specific hostile inputs: invalid UTF-8 key, empty key, unknown flags, oversized lengths.
  it('rejects hostile encodings with MalformedError', () => {
    const valid = encodeEntry({ key: 'k', value: utf8('v'), version: { hlc: 1n, node: '00000000000000aa' } });
    const cases: [string, Uint8Array][] = [
      ['empty input', new Uint8Array(0)],
      ['invalid utf-8 key', Uint8Array.from([1, 0xff, ...valid.subarray(2)])],
      ['empty key', Uint8Array.from([0, ...valid.subarray(2)])],
      ['unknown flag', Uint8Array.from([...valid.subarray(0, 2), 2, ...valid.subarray(3)])],
      ['key longer than 1024 bytes', new ByteWriter().varint(1025).raw(new Uint8Array(1025).fill(97)).finish()],
      ['value length 2^50', new ByteWriter().raw(valid.subarray(0, 19)).varint(2 ** 50).finish()],
      ['varint longer than 8 bytes', Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])],
    ];
    for (const [what, bytes] of cases) assert.throws(() => decodeEntry(bytes), MalformedError, what);
    // A value over the caller's limit is malformed too.
    assert.throws(() => decodeEntry(valid, 0), MalformedError);
    assert.equal(decodeEntry(valid, 1).value?.byteLength, 1);
  });
});

describe('checkKey and checkValue', () => {
  // Keys must be non-empty, at most 1024 UTF-8 bytes, and well-formed Unicode.
  it('checkKey enforces emptiness, the byte limit and well-formedness', () => {
    const invalid = (key: string) => {
      const error = thrown(() => checkKey(key));
      assert.ok(error instanceof InvalidKeyError, `checkKey(${JSON.stringify(key.slice(0, 20))}): ${String(error)}`);
      assert.equal(error.name, 'InvalidKeyError');
      assert.equal(error.code, 'ERR_INVALID_KEY');
    };
    invalid('');
    assert.deepEqual(checkKey('a'.repeat(1024)), utf8('a'.repeat(1024)));
    invalid('a'.repeat(1025));
    // Multi-byte characters count in bytes, not UTF-16 units.
    assert.equal(checkKey('é'.repeat(512)).byteLength, 1024);
    invalid('é'.repeat(512) + 'a');
    assert.equal(checkKey('€'.repeat(341) + 'a').byteLength, 1024);
    invalid('€'.repeat(341) + 'aa');
    assert.equal(checkKey('😀'.repeat(256)).byteLength, 1024);
    invalid('😀'.repeat(256) + 'a');
    // Lone surrogates are not text.
    invalid('\ud800');
    invalid('a\udc00b');
    invalid('x'.repeat(10) + '\ud83d');
    assert.deepEqual(checkKey('\ud83d\ude00'), utf8('😀'));
  });

  // Any generated valid key passes and checkKey returns its UTF-8 bytes.
  it('checkKey accepts every well-formed key up to the limit', () => {
    fc.assert(
      fc.property(keyArb, (key) => {
        assert.deepEqual(checkKey(key), utf8(key));
      }),
    );
  });

  // Values over the limit throw ValueTooLargeError; at the limit they pass.
  it('checkValue enforces the value limit', () => {
    assert.doesNotThrow(() => checkValue(new Uint8Array(10), 10));
    const error = thrown(() => checkValue(new Uint8Array(11), 10));
    assert.ok(error instanceof ValueTooLargeError);
    assert.equal(error.name, 'ValueTooLargeError');
    assert.equal(error.valueBytes, 11);
    assert.equal(error.valueBytesMax, 10);
    assert.doesNotThrow(() => checkValue(new Uint8Array(0)));
    const big = new Uint8Array(valueBytesMax + 1);
    assert.doesNotThrow(() => checkValue(big.subarray(0, valueBytesMax)));
    assert.throws(() => checkValue(big), ValueTooLargeError);
  });
});

describe('entryDigest', () => {
  // Equal inputs give equal digests (and the shared scratch buffer leaks nothing between calls).
  it('is equal for equal inputs, whatever was digested in between', () => {
    fc.assert(
      fc.property(keyArb, versionArb, keyArb, versionArb, (key, version, otherKey, otherVersion) => {
        const first = toHex(entryDigest(key, version));
        entryDigest(otherKey, otherVersion);
        assert.equal(toHex(entryDigest(key, { ...version })), first);
        assert.equal(entryDigest(key, version).byteLength, 32);
      }),
      { numRuns: 500 },
    );
  });

  // A different key, stamp or node gives a different digest.
  it('differs when the key or any part of the version differs', () => {
    fc.assert(
      fc.property(keyArb, keyArb, versionArb, versionArb, nodeIdArb, (k1, k2, v1, v2, node) => {
        const d = toHex(entryDigest(k1, v1));
        if (k1 !== k2) assert.notEqual(toHex(entryDigest(k2, v1)), d);
        if (!versionEquals(v1, v2)) assert.notEqual(toHex(entryDigest(k1, v2)), d);
        if (node !== v1.node) assert.notEqual(toHex(entryDigest(k1, { hlc: v1.hlc, node })), d);
        assert.notEqual(toHex(entryDigest(k1, { hlc: v1.hlc ^ 1n, node: v1.node })), d);
      }),
      { numRuns: 500 },
    );
  });

  // The key/version boundary is unambiguous: moving bytes between key and stamp changes the digest.
  it('separates the key from the version', () => {
    const v = { hlc: 0n, node: '0000000000000000' };
    assert.notEqual(toHex(entryDigest('a', v)), toHex(entryDigest('a\0', v)));
    const w = new ByteWriter();
    writeVersion(w, v);
    assert.equal(w.finish().byteLength, 16);
  });
});

describe('write-path encodings', () => {
  // The one-shot and text forms are the same SHA-256 as the reference createHash chain.
  it('keyHash, keyHashText, entryDigest and entryDigestText match SHA-256 of their definitions', () => {
    fc.assert(
      fc.property(keyArb, versionArb, (key, version) => {
        const reference = createHash('sha256').update(key, 'utf8').digest();
        assert.deepEqual(Buffer.from(keyHash(key)), reference);
        assert.deepEqual(Buffer.from(keyHashText(key), 'latin1'), reference);
        assert.equal(keyHashPrefix(key), reference.toString('hex').slice(0, 8));
        assert.equal(hashPrefixOf(keyHashText(key)), keyHashPrefix(key));
        const input = Buffer.concat([Buffer.from(key, 'utf8'), Buffer.from([0]), versionBytes(version)]);
        const digest = createHash('sha256').update(input).digest();
        assert.deepEqual(Buffer.from(entryDigest(key, version)), digest);
        assert.deepEqual(Buffer.from(entryDigestText(key, version), 'latin1'), digest);
      }),
      { numRuns: 300 },
    );
  });

  // A key longer than the digest buffer's first size (256 bytes) digests like any other.
  it('entryDigest grows its input buffer for long keys', () => {
    const key = 'é'.repeat(512);
    const version = { hlc: 5n, node: '0123456789abcdef' };
    const input = Buffer.concat([Buffer.from(key, 'utf8'), Buffer.from([0]), versionBytes(version)]);
    assert.equal(toHex(entryDigest(key, version)), createHash('sha256').update(input).digest('hex'));
  });

  // encodeEntryInto writes exactly writeEntry's bytes, at any offset, and encodedEntryBytes is their length.
  it('encodeEntryInto and encodeEntry equal writeEntry', () => {
    fc.assert(
      fc.property(entryArb, fc.nat(7), (entry, offset) => {
        const writer = new ByteWriter(8);
        writeEntry(writer, entry);
        const expected = writer.finish();
        const keyBytes = Buffer.byteLength(entry.key, 'utf8');
        assert.equal(encodedEntryBytes(entry, keyBytes), expected.byteLength);
        const target = Buffer.alloc(offset + expected.byteLength + 3, 0xee);
        assert.equal(encodeEntryInto(target, offset, entry, keyBytes), offset + expected.byteLength);
        assert.deepEqual(new Uint8Array(target.subarray(offset, offset + expected.byteLength)), expected);
        assert.equal(target[offset + expected.byteLength], 0xee, 'nothing written past the end');
        assert.deepEqual(encodeEntry(entry), expected);
      }),
      { numRuns: 300 },
    );
    // Varint lengths of more than one byte.
    const big: Entry = { key: 'k'.repeat(200), value: new Uint8Array(20_000).fill(7), version: { hlc: 1n, node: '00000000000000aa' } };
    const writer = new ByteWriter();
    writeEntry(writer, big);
    assert.deepEqual(encodeEntry(big), writer.finish());
  });

  // validateKey accepts and refuses exactly what checkKey does, and returns the UTF-8 length.
  it('validateKey agrees with checkKey', () => {
    for (const key of ['a', 'é'.repeat(512), 'a'.repeat(1025), '', '\ud800', '\u{1f511}']) {
      let expected: number | unknown;
      try {
        expected = checkKey(key).byteLength;
      } catch (error) {
        expected = error;
      }
      if (typeof expected === 'number') assert.equal(validateKey(key), expected);
      else assert.throws(() => validateKey(key), InvalidKeyError);
    }
  });
});

/** Entries back to back, as a sync frame or gossip message carries them. */
function frameOf(entries: Entry[]): Uint8Array {
  const writer = new ByteWriter();
  for (const entry of entries) writeEntry(writer, entry);
  return writer.finish();
}

function readAll(frame: Uint8Array, values: ReceivedValues | undefined): Entry[] {
  const reader = new ByteReader(frame);
  const out: Entry[] = [];
  while (reader.remaining > 0) out.push(readEntry(reader, valueBytesMax, values));
  return out;
}

describe('ReceivedValues (the values of one received frame, copied into shared chunks)', () => {
  // The same entries as a copy per value, none of them sharing the frame's memory.
  it('decodes what a copy per value decodes, and nothing keeps the frame', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { minLength: 1, maxLength: 20 }), (entries) => {
        const frame = frameOf(entries);
        const decoded = readAll(frame, new ReceivedValues(frame.byteLength));
        assert.deepEqual(decoded, readAll(frame, undefined));
        for (const entry of decoded) if (entry.value !== null) assert.notEqual(entry.value.buffer, frame.buffer, 'a value is a view of the frame');
        frame.fill(0xee);
        assert.deepEqual(decoded, entries);
      }),
      { numRuns: 300 },
    );
  });

  it('shares a chunk among small values, sized by the frame, at most receivedValuesChunkBytesMax; a large value gets its own memory', () => {
    const node = '0123456789abcdef';
    const small = (i: number, bytes: number): Entry => ({ key: `k${i}`, value: new Uint8Array(bytes).fill(i & 0xff), version: { hlc: BigInt(i + 1), node } });
    // One entry: a chunk about its value, not a full chunk.
    const one = frameOf([small(1, 100)]);
    const [single] = readAll(one, new ReceivedValues(one.byteLength));
    assert.ok(single!.value!.buffer.byteLength <= one.byteLength, `a one-entry frame's chunk is ${single!.value!.buffer.byteLength} bytes`);
    // Many small values: a few chunks, none above the bound.
    const entries = Array.from({ length: 2000 }, (_, i) => small(i, 100));
    const frame = frameOf(entries);
    const decoded = readAll(frame, new ReceivedValues(frame.byteLength));
    const chunks = new Set(decoded.map((entry) => entry.value!.buffer));
    assert.ok(chunks.size <= Math.ceil((2000 * 100) / receivedValuesChunkBytesMax) + 1, `${chunks.size} chunks for 2000 values of 100 bytes`);
    for (const chunk of chunks) assert.ok(chunk.byteLength <= receivedValuesChunkBytesMax);
    // Plain Uint8Arrays: slice() copies (a Buffer's would be a view of the chunk).
    assert.equal(Buffer.isBuffer(decoded[0]!.value), false);
    assert.notEqual(decoded[0]!.value!.slice().buffer, decoded[0]!.value!.buffer);
    // A value above receivedValuesSharedBytesMax has memory of its own, exactly its size.
    const mixed = frameOf([small(1, 10), small(2, receivedValuesSharedBytesMax + 1), small(3, 10)]);
    const [a, large, b] = readAll(mixed, new ReceivedValues(mixed.byteLength));
    assert.equal(large!.value!.buffer.byteLength, receivedValuesSharedBytesMax + 1);
    assert.equal(a!.value!.buffer, b!.value!.buffer, 'the small values around it share a chunk');
  });
});
