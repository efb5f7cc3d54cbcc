/**
 * The Merkle tree over SHA-256(key): fanout 16 (one hex digit a level), fixed depth.
 *
 * Each node holds a 32-byte digest and a count. A node's digest is the XOR of the digests of
 * every entry below it, so it is independent of insertion order and a write updates one leaf
 * and its ancestors in O(depth): XOR out the old entry digest, XOR in the new one. Nothing is
 * rebuilt except at start: from one scan of the store, or from the leaves a clean stop saved
 * (`leaves`, `fromLeaves`; see replica-snapshot.ts).
 *
 * Memory: 32 bytes + 4 a node; depth 4 is 69,905 nodes, about 2.4 MiB.
 *
 * Sessions compare children by salted projections (`Projector`): a few bytes of a random
 * linear map of the digest, chosen afresh each session (see limits.childDigestBytesDefault).
 */
import type { HashText } from './entry.js';
import { assert } from './errors.js';
import { merkleDepthMax, merkleFanout } from './limits.js';

const digestBytes = 32;

/**
 * What a sync session reads of a tree: the tree itself, or a view of some of its partitions
 * (partition-view.ts, partitioned mode). Digests are views or copies: never written through.
 */
export interface MerkleView {
  readonly depth: number;
  leafOf(keyHash: Uint8Array): number;
  digest(level: number, index: number): Uint8Array;
  count(level: number, index: number): number;
  readonly rootDigest: Uint8Array;
  readonly rootCount: number;
}

export class MerkleTree implements MerkleView {
  readonly depth: number;
  private readonly digests: Uint8Array[];
  private readonly counts: Uint32Array[];
  /** The digests again as 32-bit words: an update XORs 8 words a level instead of 32 bytes. */
  private readonly digestWords: Uint32Array[];
  private readonly deltaWords = new Uint32Array(digestBytes / 4);
  private readonly delta = new Uint8Array(this.deltaWords.buffer);

  /** An empty tree; with `levels` (adoptLevels), a tree that keeps those arrays as its memory. */
  constructor(depth: number, levels?: readonly { digests: Uint8Array; counts: Uint32Array }[]) {
    assert(Number.isInteger(depth) && depth >= 1 && depth <= merkleDepthMax, `merkle depth ${depth}`);
    assert(levels === undefined || levels.length === depth + 1, 'a level per depth, root included');
    this.depth = depth;
    this.digests = [];
    this.digestWords = [];
    this.counts = [];
    for (let level = 0; level <= depth; level++) {
      const nodes = merkleFanout ** level;
      const given = levels?.[level];
      if (given !== undefined) {
        assert(given.digests.byteLength === nodes * digestBytes && given.counts.length === nodes, `level ${level} of the wrong size`);
        assert(given.digests.byteOffset % 4 === 0, `level ${level}'s digests are not 4-byte aligned`);
      }
      const digests = given?.digests ?? new Uint8Array(nodes * digestBytes);
      this.digestWords.push(new Uint32Array(digests.buffer, digests.byteOffset, digests.byteLength / 4));
      this.digests.push(digests);
      this.counts.push(given?.counts ?? new Uint32Array(nodes));
    }
  }

  /** Leaf index of a key hash: its first `depth` hex digits. */
  leafOf(keyHash: Uint8Array): number {
    const top = ((keyHash[0]! << 16) | (keyHash[1]! << 8) | keyHash[2]!) >>> 0; // 24 bits
    return top >>> (24 - 4 * this.depth);
  }

  /**
   * Record a change of one key: `before` is the digest of the entry it replaces (undefined
   * for a new key), `after` the digest of the new entry (undefined for a removal: the purge of a
   * partition a node no longer holds; a user delete is a tombstone entry).
   */
  update(keyHash: Uint8Array, before: Uint8Array | undefined, after: Uint8Array | undefined): void {
    const delta = this.delta;
    for (let i = 0; i < digestBytes; i++) delta[i] = (before ? before[i]! : 0) ^ (after ? after[i]! : 0);
    this.applyDelta(this.leafOf(keyHash), (after ? 1 : 0) - (before ? 1 : 0));
  }

  /** `update` with hashes as HashText (the write path's form): no conversion to bytes. */
  updateText(keyHash: HashText, before: HashText | undefined, after: HashText): void {
    const delta = this.delta;
    if (before === undefined) for (let i = 0; i < digestBytes; i++) delta[i] = after.charCodeAt(i);
    else for (let i = 0; i < digestBytes; i++) delta[i] = before.charCodeAt(i) ^ after.charCodeAt(i);
    const top = ((keyHash.charCodeAt(0) << 16) | (keyHash.charCodeAt(1) << 8) | keyHash.charCodeAt(2)) >>> 0;
    this.applyDelta(top >>> (24 - 4 * this.depth), before === undefined ? 1 : 0);
  }

  /**
   * Set one leaf to this digest and count; its ancestors change by the difference. A start
   * that replays a snapshot's tail recomputes the leaves the tail touched (replica-replay.ts):
   * it knows their entries now, not the versions the tail replaced.
   */
  replaceLeaf(leaf: number, digest: Uint8Array, count: number): void {
    assert(digest.byteLength === digestBytes && Number.isInteger(count) && count >= 0, 'a leaf digest and count');
    const old = this.digest(this.depth, leaf);
    const delta = this.delta;
    for (let i = 0; i < digestBytes; i++) delta[i] = old[i]! ^ digest[i]!;
    this.applyDelta(leaf, count - this.counts[this.depth]![leaf]!);
  }

  /** XOR `delta` into a leaf and its ancestors. */
  private applyDelta(leaf: number, countDelta: number): void {
    let index = leaf;
    // The same XOR applies at every level: apply it word by word.
    const deltaWords = this.deltaWords;
    for (let level = this.depth; level >= 0; level--) {
      const words = this.digestWords[level]!;
      const offset = index * deltaWords.length;
      for (let i = 0; i < deltaWords.length; i++) words[offset + i]! ^= deltaWords[i]!;
      this.counts[level]![index]! += countDelta;
      index = Math.floor(index / merkleFanout);
    }
  }

  /** Leaves at `depth`, in order: fanout^depth nodes. */
  get leafCount(): number {
    return this.counts[this.depth]!.length;
  }

  /**
   * The leaf level, as views (not copies): each leaf's 32-byte digest and its count. With
   * `fromLeaves` this is the whole tree: every inner node is the XOR (and sum) of its children.
   */
  leaves(): { digests: Uint8Array; counts: Uint32Array } {
    return { digests: this.digests[this.depth]!, counts: this.counts[this.depth]! };
  }

  /** Every level, root (0) to leaves (depth), as views (not copies): what `fromLevels` takes back. */
  levels(): { digests: Uint8Array; counts: Uint32Array }[] {
    return this.digests.map((digests, level) => ({ digests, counts: this.counts[level]! }));
  }

  /**
   * The tree with these levels (as `levels()` returned them), copied as they are: no node is
   * computed, so the caller vouches that each inner node is its children's XOR and sum (a
   * snapshot's checksum does). A start reads a saved tree this way (adoptLevels, which copies
   * only unaligned levels): computing the inner nodes from the leaves took ~15-40 ms of code
   * V8 had not compiled yet.
   */
  static fromLevels(depth: number, levels: readonly { digests: Uint8Array; counts: Uint32Array }[]): MerkleTree {
    const tree = new MerkleTree(depth);
    assert(levels.length === depth + 1, 'a level per depth, root included');
    for (let level = 0; level <= depth; level++) {
      const { digests, counts } = levels[level]!;
      assert(digests.byteLength === tree.digests[level]!.byteLength && counts.length === tree.counts[level]!.length, `level ${level} of the wrong size`);
      tree.digests[level]!.set(digests);
      tree.counts[level]!.set(counts);
    }
    return tree;
  }

  /**
   * The tree with these levels as its own memory, not copies: the caller gives the arrays up
   * (a start's snapshot, read into memory of its own: copying its ~2.4 MiB of digests into
   * fresh memory cost a start ~6 ms on a VM where new pages are slow). Levels whose digests are
   * not 4-byte aligned (the update XORs 32-bit words) are copied. The caller vouches for the
   * inner nodes, as with fromLevels.
   */
  static adoptLevels(depth: number, levels: readonly { digests: Uint8Array; counts: Uint32Array }[]): MerkleTree {
    assert(levels.length === depth + 1, 'a level per depth, root included');
    if (levels.every(({ digests }) => digests.byteOffset % 4 === 0)) return new MerkleTree(depth, levels);
    return MerkleTree.fromLevels(depth, levels);
  }

  /**
   * The tree whose leaves are these (digests: 32 bytes a leaf; counts: one a leaf), inner
   * nodes computed bottom-up: the same tree as updating an empty one with every entry below
   * those leaves, in any order (XOR and sum are order-free).
   */
  static fromLeaves(depth: number, digests: Uint8Array, counts: Uint32Array): MerkleTree {
    const tree = new MerkleTree(depth);
    assert(digests.byteLength === tree.leafCount * digestBytes && counts.length === tree.leafCount, 'leaf arrays of the wrong size');
    tree.digests[depth]!.set(digests);
    tree.counts[depth]!.set(counts);
    const words = digestBytes / 4;
    for (let level = depth - 1; level >= 0; level--) {
      const parentWords = tree.digestWords[level]!;
      const childWords = tree.digestWords[level + 1]!;
      const parentCounts = tree.counts[level]!;
      const childCounts = tree.counts[level + 1]!;
      for (let parent = 0; parent < parentCounts.length; parent++) {
        let count = 0;
        for (let c = 0; c < merkleFanout; c++) {
          const child = parent * merkleFanout + c;
          count += childCounts[child]!;
          for (let i = 0; i < words; i++) parentWords[parent * words + i]! ^= childWords[child * words + i]!;
        }
        parentCounts[parent] = count;
      }
    }
    return tree;
  }

  digest(level: number, index: number): Uint8Array {
    return this.digests[level]!.subarray(index * digestBytes, (index + 1) * digestBytes);
  }

  count(level: number, index: number): number {
    return this.counts[level]![index]!;
  }

  get rootDigest(): Uint8Array {
    return this.digest(0, 0);
  }

  get rootCount(): number {
    return this.count(0, 0);
  }

  /** Hex prefix of SHA-256(key) that every key under node (level, index) starts with. */
  static hashPrefix(level: number, index: number): string {
    return level === 0 ? '' : index.toString(16).padStart(level, '0');
  }
}

/** Leaves (at `a.depth`) whose digests differ between two trees, found top-down. */
export function differingLeaves(a: MerkleTree, b: MerkleTree): number[] {
  assert(a.depth === b.depth, 'trees of different depth');
  let frontier = [0];
  for (let level = 0; level < a.depth; level++) {
    const next: number[] = [];
    for (const parent of frontier) {
      for (let c = 0; c < merkleFanout; c++) {
        const child = parent * merkleFanout + c;
        if (!digestsEqual(a.digest(level + 1, child), b.digest(level + 1, child))) next.push(child);
      }
    }
    frontier = next;
  }
  return frontier.filter((leaf) => !digestsEqual(a.digest(a.depth, leaf), b.digest(b.depth, leaf)));
}

export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < digestBytes; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A salted projection of 32-byte digests to `width` bytes (1..4), returned as a number.
 * Each output bit is a random GF(2)-linear combination of the same bit of the 32 input
 * bytes, so for any two different digests a fresh salt makes them collide with probability
 * about 2^-(8*width). The mask comes from a seeded PRNG (mulberry32): pure and portable.
 */
export class Projector {
  private readonly masks: Uint8Array;

  constructor(readonly salt: number, readonly width: number) {
    assert(width >= 1 && width <= 4, `projection width ${width}`);
    this.masks = new Uint8Array(width * digestBytes);
    let state = salt >>> 0;
    for (let i = 0; i < this.masks.length; i++) {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      this.masks[i] = (t ^ (t >>> 14)) & 0xff;
    }
  }

  project(digest: Uint8Array): number {
    let out = 0;
    for (let o = 0; o < this.width; o++) {
      let byte = 0;
      const base = o * digestBytes;
      for (let j = 0; j < digestBytes; j++) byte ^= digest[j]! & this.masks[base + j]!;
      out = out * 256 + byte;
    }
    return out;
  }
}
