/**
 * The key browser's value preview (src/http/preview.ts): UTF-8 text cut to 200 bytes without
 * splitting a character, binary named as such, sizes always reported.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { previewBytesMax, valuePreview } from '../../src/http/preview.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('valuePreview', () => {
  it('short text as it is', () => {
    assert.deepEqual(valuePreview(enc('hello\nworld\t!')), { bytes: 13, text: 'hello\nworld\t!', binary: false, truncated: false });
    assert.deepEqual(valuePreview(new Uint8Array(0)), { bytes: 0, text: '', binary: false, truncated: false });
  });

  it('long text cut at 200 bytes, never inside a character', () => {
    const long = 'a'.repeat(199) + '\u00e9' + 'b'.repeat(500); // é is 2 bytes at 199..200
    const p = valuePreview(enc(long));
    assert.equal(p.binary, false);
    assert.equal(p.truncated, true);
    assert.equal(p.text, 'a'.repeat(199));
    assert.equal(p.bytes, 701);
    const emoji = valuePreview(enc('\u{1F600}'.repeat(100)));
    assert.equal(emoji.text, '\u{1F600}'.repeat(previewBytesMax / 4));
  });

  it('binary: invalid UTF-8 or control characters', () => {
    assert.deepEqual(valuePreview(new Uint8Array([0xff, 0xfe, 0x00, 0x01])), { bytes: 4, text: '', binary: true, truncated: false });
    assert.equal(valuePreview(enc('abc\u0000def')).binary, true);
    assert.equal(valuePreview(new Uint8Array([0x61, 0xc3])).binary, true, 'a whole value ending mid-character is not text');
    const big = new Uint8Array(1_000_000).fill(7);
    assert.deepEqual(valuePreview(big), { bytes: 1_000_000, text: '', binary: true, truncated: false });
  });
});
