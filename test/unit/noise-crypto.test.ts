import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pureJsCrypto } from '@chainsafe/libp2p-noise';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import { Uint8ArrayList } from 'uint8arraylist';
import { nodeHkdf, nodeX25519KeyPair, nodeX25519SharedKey, noiseCrypto } from '../../src/net/noise-crypto.js';

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

  // Both ends of a handshake must agree on every Diffie-Hellman result, whichever crypto each uses.
  it('agrees X25519 keys with the library, both ways, for our key pairs and others', () => {
    assert.equal(noiseCrypto.generateX25519KeyPair, nodeX25519KeyPair);
    assert.equal(noiseCrypto.generateX25519SharedKey, nodeX25519SharedKey);
    for (let round = 0; round < 20; round++) {
      const ours = nodeX25519KeyPair();
      const theirs = pureJsCrypto.generateX25519KeyPair();
      assert.equal(ours.publicKey.byteLength, 32);
      assert.equal(ours.privateKey.byteLength, 32);
      // Our public key is the one the library derives from our private key.
      assert.deepEqual(Buffer.from(pureJsCrypto.generateX25519KeyPairFromSeed(ours.privateKey).publicKey), Buffer.from(ours.publicKey));
      const mine = nodeX25519SharedKey(ours.privateKey, theirs.publicKey);
      assert.equal(mine.byteLength, 32);
      assert.deepEqual(Buffer.from(mine), Buffer.from(pureJsCrypto.generateX25519SharedKey(theirs.privateKey, ours.publicKey)));
      // The peer's key as a list of chunks (as noise reads it from a message) gives the same.
      const list = new Uint8ArrayList(theirs.publicKey.subarray(0, 7), theirs.publicKey.subarray(7));
      assert.deepEqual(Buffer.from(nodeX25519SharedKey(ours.privateKey, list)), Buffer.from(mine));
      // A private key we did not make (a copy of our bytes, a seed) goes the library's way, same result.
      assert.deepEqual(Buffer.from(nodeX25519SharedKey(Uint8Array.from(ours.privateKey), theirs.publicKey)), Buffer.from(mine));
      assert.deepEqual(
        Buffer.from(nodeX25519SharedKey(theirs.privateKey, ours.publicKey)),
        Buffer.from(defaultCrypto.generateX25519SharedKey(theirs.privateKey, ours.publicKey)),
      );
    }
  });

  // Noise reads keys as fixed 32-byte fields, so this cannot come from a peer; if it did, the
  // answer would be the library's (which refuses a short key and reads a long one's prefix).
  it('treats a peer key of another length as the library does', () => {
    const ours = nodeX25519KeyPair();
    const outcome = (compute: () => Uint8Array): string => {
      try {
        return Buffer.from(compute()).toString('hex');
      } catch (error) {
        return `throws ${(error as { code?: string }).code}`;
      }
    };
    for (const bytes of [31, 33, 0, 64]) {
      const key = randomBytes(bytes);
      const mine = outcome(() => nodeX25519SharedKey(ours.privateKey, key));
      assert.equal(mine, outcome(() => defaultCrypto.generateX25519SharedKey(Uint8Array.from(ours.privateKey), key)), `${bytes}-byte key`);
      if (bytes < 32) assert.match(mine, /^throws /);
    }
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
