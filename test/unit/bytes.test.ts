import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { byteRange, ByteReader, fromUtf8, utf8 } from '../../src/core/bytes.js';
import { MalformedError } from '../../src/core/errors.js';

describe('byteRange', () => {
  it('is a plain Uint8Array over the same memory, for a Buffer too', () => {
    const buffer = Buffer.from('abcdefgh');
    const range = byteRange(buffer.subarray(2), 1, 4);
    assert.equal(Buffer.isBuffer(range), false);
    assert.equal(Object.getPrototypeOf(range), Uint8Array.prototype);
    assert.deepEqual([...range], [...Buffer.from('def')]);
    buffer[3] = 0x7a; // 'd' -> 'z', seen through the range
    assert.equal(range[0], 0x7a);
  });

  it('an empty range at the end', () => {
    const bytes = new Uint8Array(4);
    assert.equal(byteRange(bytes, 4, 4).byteLength, 0);
  });
});

describe('ByteReader.skip', () => {
  // skip() steps over bytes read in place through `source`, and is bounded like every read.
  it('returns the offset of the bytes stepped over in source, and refuses to pass the end', () => {
    const reader = new ByteReader(Buffer.from([1, 2, 3, 4, 5]).subarray(1));
    assert.equal(reader.u8(), 2);
    const at = reader.skip(2);
    assert.equal(at, 1);
    assert.deepEqual([reader.source[at], reader.source[at + 1]], [3, 4]);
    assert.equal(reader.remaining, 1);
    assert.throws(() => reader.skip(2), MalformedError);
    assert.equal(reader.u8(), 5);
  });
});

describe('fromUtf8', () => {
  // A leading U+FEFF is a character of the text, not a byte-order mark to drop: a key may begin
  // with one, and every node must read the key it was sent (the decoder once dropped it).
  it('keeps a leading U+FEFF, and refuses bytes that are not UTF-8', () => {
    for (const text of ['\uFEFF', '\uFEFFa', '\uFEFF\uFEFFb', 'a\uFEFF', '\uFEFF\u0000'])
      assert.equal(fromUtf8(utf8(text)), text, JSON.stringify(text));
    assert.equal(new ByteReader(new Uint8Array([3, 0xef, 0xbb, 0xbf])).string(10), '\uFEFF');
    assert.throws(() => fromUtf8(new Uint8Array([0xff])), MalformedError);
  });
});
