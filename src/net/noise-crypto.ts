/**
 * The crypto noise uses, with its key derivation (HKDF-SHA-256) done by node:crypto.
 *
 * @chainsafe/libp2p-noise's default crypto (17.0.0) hashes, encrypts and agrees keys through
 * node:crypto, but derives keys with @noble/hashes' HKDF: SHA-256 in JavaScript. A handshake
 * derives keys four times (three mixKey steps and the split), and in a node that just started
 * that code runs cold: a restarted node's profile showed 8-15 ms of its start in noble's
 * SHA-256 for its two handshakes (docs/measurements.md, 2026-12-05 (evening)). Node's
 * `hkdfSync` gives the same bytes (RFC 5869 with an empty info; the noise specification's
 * HKDF is that construction), checked against the library's own implementation in
 * test/unit/noise-crypto.test.ts; everything else is the library's default.
 */
import { hkdfSync } from 'node:crypto';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';

/** Noise's HKDF output: three 32-byte keys (the specification's HKDF with num_outputs = 3). */
const hkdfOutputBytes = 96;
const emptyInfo = new Uint8Array(0);

/** HKDF(ck, ikm) as noise defines it: salt = the chaining key, no info, three 32-byte outputs. */
export function nodeHkdf(ck: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, emptyInfo, hkdfOutputBytes));
  return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)];
}

/** The library's default crypto with `getHKDF` from node:crypto. */
export const noiseCrypto: ICryptoInterface = { ...defaultCrypto, getHKDF: nodeHkdf };
