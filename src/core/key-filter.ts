/**
 * Which keys the store may hold: a Bloom filter over SHA-256(key), so that a write of a key
 * the store surely lacks skips the store read before the merge (for LevelDB, a point read
 * that cost more than the write of the entry). A false positive only costs that read.
 *
 * Keys never leave the store (a delete is a tombstone), so the filter never needs removal.
 * It grows as a chain of layers, each twice the size of the one before (a scalable Bloom
 * filter): adds go to the newest layer, a lookup asks every layer, nothing is rebuilt (a clean
 * stop saves the layers: `layerStates`, `fromLayers`, replica-snapshot.ts). Each
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

/** One Bloom filter of the chain: a bit array of fixed size and how many keys it took. */
export class Layer {
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
  /**
   * Never empty: a filter starts with its first layer. (An empty array is one V8 holds in
   * another form than an array of layers: code compiled for a filter in use, such as the
   * warm-up's, would be thrown away at a fresh node's first write. node/warm-up.ts.)
   */
  private readonly layers: Layer[];

  constructor(layers: Layer[] = [new Layer(firstLayerBits)]) {
    assert(layers.length > 0, 'a key filter has a layer');
    this.layers = layers;
  }

  /** Record a key the store now holds. Adding a key twice only costs capacity. */
  add(keyHash: HashText): void {
    assert(keyHash.length >= 4 + 4 * probes, 'key filter needs a SHA-256 key hash');
    let top = this.layers[this.layers.length - 1]!;
    if (top.count >= top.capacity) {
      top = new Layer(top.words.length * 64);
      this.layers.push(top);
    }
    top.add(keyHash);
  }

  /** False only if the key was never added. */
  mayHave(keyHash: HashText): boolean {
    for (const layer of this.layers) if (layer.has(keyHash)) return true;
    return false;
  }

  /** Each layer's bit array (a view, not a copy) and how many keys it took, oldest first. */
  layerStates(): { words: Uint32Array; count: number }[] {
    return this.layers.map((layer) => ({ words: layer.words, count: layer.count }));
  }

  /**
   * A filter with these layers (as `layerStates` gave them; copied), or undefined if they
   * are not a chain this class builds: the first of firstLayerBits, each next twice the one
   * before, every layer but the newest full, none past full.
   */
  static fromLayers(states: readonly { words: Uint32Array; count: number }[]): KeyFilter | undefined {
    if (states.length === 0) return new KeyFilter();
    const layers: Layer[] = [];
    let bits = firstLayerBits;
    for (const [i, state] of states.entries()) {
      if (state.words.length * 32 !== bits) return undefined;
      const layer = new Layer(bits);
      const newest = i === states.length - 1;
      // add() opens a new layer once count >= capacity (a fraction): a full layer holds ceil(capacity).
      const full = Math.ceil(layer.capacity);
      if (!Number.isInteger(state.count) || state.count < 0 || state.count > full || (!newest && state.count !== full)) return undefined;
      layer.words.set(state.words);
      layer.count = state.count;
      layers.push(layer);
      bits *= 2;
    }
    return new KeyFilter(layers);
  }

  get bytes(): number {
    let total = 0;
    for (const layer of this.layers) total += layer.words.byteLength;
    return total;
  }
}
