import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { byteRange } from '../../src/core/bytes.js';

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
