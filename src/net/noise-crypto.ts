/**
 * The crypto noise uses: the library's default, with key derivation and X25519 done by
 * node:crypto the cheap way.
 *
 * Key derivation (HKDF-SHA-256). @chainsafe/libp2p-noise's default crypto (17.0.0) hashes,
 * encrypts and agrees keys through node:crypto, but derives keys with @noble/hashes' HKDF:
 * SHA-256 in JavaScript. A handshake derives keys four times (three mixKey steps and the split),
 * and in a node that just started that code runs cold: a restarted node's profile showed 8-15
 * ms of its start in noble's SHA-256 for its two handshakes (docs/measurements.md, 2026-12-05
 * (evening)). Node's `hkdfSync` gives the same bytes (RFC 5869 with an empty info; the noise
 * specification's HKDF is that construction).
 *
 * X25519. The default makes every key pair as DER (PKCS #8 and SPKI) and every Diffie-Hellman
 * step imports both keys back from DER: OpenSSL 3's decoders cost ~0.5 ms an import, ~2.4 ms of
 * the three DH steps of a handshake in a fresh process (~1.9 ms warm). Here a key pair we make
 * keeps its private KeyObject (in a WeakMap keyed by the private key's bytes, the object noise
 * hands back to `generateX25519SharedKey`), and the peer's public key is imported from its raw
 * bytes as a JWK (Node makes it from the raw point, no decoder): ~0.6 ms a handshake cold,
 * ~0.3 warm (docs/measurements.md, 2026-12-07 (5)). A private key we did not make (a static key
 * from a seed) goes the library's way. Same bytes either way.
 *
 * Both are checked against the library's own implementation in test/unit/noise-crypto.test.ts.
 */
import { createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import type { Uint8ArrayList } from 'uint8arraylist';

/** Noise's HKDF output: three 32-byte keys (the specification's HKDF with num_outputs = 3). */
const hkdfOutputBytes = 96;
const emptyInfo = new Uint8Array(0);
/** An X25519 key, public or private, is 32 bytes (RFC 7748). */
const x25519KeyBytes = 32;

/** HKDF(ck, ikm) as noise defines it: salt = the chaining key, no info, three 32-byte outputs. */
export function nodeHkdf(ck: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, emptyInfo, hkdfOutputBytes));
  return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)];
}

/** The KeyObject of each private key made by nodeX25519KeyPair, by the bytes handed to noise. */
const privateKeyObjects = new WeakMap<Uint8Array, KeyObject>();

const fromBase64Url = (text: unknown): Uint8Array => {
  if (typeof text !== 'string') throw new Error('an X25519 JWK without its key bytes');
  return new Uint8Array(Buffer.from(text, 'base64url'));
};

/** A fresh X25519 key pair as raw bytes; its private KeyObject is kept for nodeX25519SharedKey. */
export function nodeX25519KeyPair(): { publicKey: Uint8Array; privateKey: Uint8Array } {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pair = { publicKey: fromBase64Url(jwk.x), privateKey: fromBase64Url(jwk.d) };
  privateKeyObjects.set(pair.privateKey, privateKey);
  return pair;
}

/** X25519(ours, theirs): from the kept KeyObject when nodeX25519KeyPair made ours, else as the library does. */
export function nodeX25519SharedKey(privateKey: Uint8Array | Uint8ArrayList, publicKey: Uint8Array | Uint8ArrayList): Uint8Array {
  const ours = privateKey instanceof Uint8Array ? privateKeyObjects.get(privateKey) : undefined;
  const theirs = publicKey instanceof Uint8Array ? publicKey : publicKey.subarray();
  if (ours === undefined || theirs.byteLength !== x25519KeyBytes) return defaultCrypto.generateX25519SharedKey(privateKey, publicKey);
  const x = Buffer.from(theirs.buffer, theirs.byteOffset, theirs.byteLength).toString('base64url');
  return diffieHellman({ privateKey: ours, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' }) });
}

/** The library's default crypto with HKDF and X25519 from node:crypto (above). */
export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  getHKDF: nodeHkdf,
  generateX25519KeyPair: nodeX25519KeyPair,
  generateX25519SharedKey: nodeX25519SharedKey,
};
