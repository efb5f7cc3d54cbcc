import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pureJsCrypto } from '@chainsafe/libp2p-noise';
import { nodeHkdf, noiseCrypto } from '../../src/net/noise-crypto.js';

const concat = (parts: Uint8Array[]): Buffer => Buffer.concat(parts.map((part) => Buffer.from(part)));

describe('noise crypto', () => {
  // A node that derives keys differently from its peer cannot finish a handshake with it, so
  // the derivation must match the library's own (and any other noise implementation's).
  it('derives the same keys as the library HKDF, for handshake-sized and empty input keying material', () => {
    for (const ikmBytes of [32, 0, 1, 64]) {
      for (let round = 0; round < 20; round++) {
        const ck = randomBytes(32);
        const ikm = randomBytes(ikmBytes);
        const ours = nodeHkdf(ck, ikm);
        const theirs = pureJsCrypto.getHKDF(ck, ikm);
        assert.equal(ours.length, 3);
        for (let i = 0; i < 3; i++) {
          assert.equal(ours[i]!.byteLength, 32);
          assert.deepEqual(Buffer.from(ours[i]!), Buffer.from(theirs[i]!), `output ${i + 1} for ${ikmBytes}-byte ikm`);
        }
      }
    }
  });

  it('is RFC 5869 HKDF-SHA-256 with no info (test case 3: empty salt)', () => {
    const okm = concat(nodeHkdf(new Uint8Array(0), Buffer.alloc(22, 0x0b)));
    const expected = '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8';
    assert.equal(okm.subarray(0, expected.length / 2).toString('hex'), expected);
  });

  it('keeps the library default for everything else', () => {
    assert.equal(noiseCrypto.getHKDF, nodeHkdf);
    const plaintext = randomBytes(2000);
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const ad = randomBytes(16);
    const sealed = noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key);
    const opened = pureJsCrypto.chaCha20Poly1305Decrypt(sealed instanceof Uint8Array ? sealed : sealed.subarray(), nonce, ad, key);
    assert.deepEqual(Buffer.from(opened instanceof Uint8Array ? opened : opened.subarray()), plaintext);
  });
});
