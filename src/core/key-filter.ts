/**
 * Which keys the store may hold: a Bloom filter over SHA-256(key), so that a write of a key
 * the store surely lacks skips the store read before the merge (for LevelDB, a point read
 * that cost more than the write of the entry). A false positive only costs that read.
 *
 * Keys never leave the store (a delete is a tombstone), so the filter never needs removal.
 * It grows as a chain of layers, each twice the size of the one before (a scalable Bloom
 * filter): adds go to the newest layer, a lookup asks every layer, nothing is rebuilt. Each
 * layer holds up to bitsPerKey = 10 bits a key (~0.8% false positives when full); the sum
 * over layers stays under ~2%. Memory: about 1.25 bytes a key, at least the first layer.
 */
import type { HashText } from './entry.js';
import { assert } from './errors.js';

const bitsPerKey = 10;
/** Bits set per key: 7 is optimal for 10 bits a key (0.69 x 10). Uses hash bytes 4..31. */
const probes = 7;
/** 2^20 bits (128 KiB): ~100k keys before a second layer. */
const firstLayerBits = 2 ** 20;

class Layer {
  readonly words: Uint32Array;
  readonly mask: number;
  readonly capacity: number;
  count = 0;

  constructor(bits: number) {
    this.words = new Uint32Array(bits / 32);
    this.mask = bits - 1;
    this.capacity = bits / bitsPerKey;
  }

  add(keyHash: HashText): void {
    for (let p = 0; p < probes; p++) {
      const bit = probe(keyHash, p) & this.mask;
      this.words[bit >>> 5]! |= 1 << (bit & 31);
    }
    this.count++;
  }

  has(keyHash: HashText): boolean {
    for (let p = 0; p < probes; p++) {
      const bit = probe(keyHash, p) & this.mask;
      if ((this.words[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** The p-th 32-bit word of the hash after its first 4 bytes (those pick the Merkle leaf). */
function probe(keyHash: HashText, p: number): number {
  const at = 4 + 4 * p;
  return ((keyHash.charCodeAt(at) << 24) | (keyHash.charCodeAt(at + 1) << 16) | (keyHash.charCodeAt(at + 2) << 8) | keyHash.charCodeAt(at + 3)) >>> 0;
}

export class KeyFilter {
  private readonly layers: Layer[] = [];

  /** Record a key the store now holds. Adding a key twice only costs capacity. */
  add(keyHash: HashText): void {
    assert(keyHash.length >= 4 + 4 * probes, 'key filter needs a SHA-256 key hash');
    let top = this.layers.at(-1);
    if (top === undefined || top.count >= top.capacity) {
      top = new Layer(top === undefined ? firstLayerBits : top.words.length * 64);
      this.layers.push(top);
    }
    top.add(keyHash);
  }

  /** False only if the key was never added. */
  mayHave(keyHash: HashText): boolean {
    for (const layer of this.layers) if (layer.has(keyHash)) return true;
    return false;
  }

  get bytes(): number {
    let total = 0;
    for (const layer of this.layers) total += layer.words.byteLength;
    return total;
  }
}
