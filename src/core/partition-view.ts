/**
 * The Merkle tree as a sync session restricted to some partitions sees it (partitioned mode).
 *
 * A partition is a level-2 subtree (placement.ts). A `PartitionView` over a tree and a bitmap
 * of partitions (bit p & 7 of byte p >> 3, layout.ts) answers like the tree for the subtrees of
 * partitions in the bitmap and as empty (count 0, zero digest) for every other subtree; levels
 * 0 and 1 are the XOR (digest) and sum (count) of the level-2 nodes under them that are in the
 * bitmap, computed on demand (at most 256 nodes of 32 bytes: cheap, and always the tree's
 * current state). Both sides of a restricted session look at the same bitmap, so partitions
 * outside it look empty on both: equal, never descended, never pulled or pushed. The session
 * also filters entries by `has` (sent and received), which is what guarantees nothing outside
 * the bitmap travels, whatever a peer asks for.
 *
 * Pure: no I/O. Needs a tree of depth 2 or more (partitions are level-2 subtrees).
 */
import { assert } from './errors.js';
import { partitionBitmapBytes } from './layout.js';
import { merkleFanout } from './limits.js';
import type { MerkleTree, MerkleView } from './merkle.js';
import { partitionHexDigits, type PartitionId } from './placement.js';

const digestBytes = 32;

export class PartitionView implements MerkleView {
  readonly depth: number;

  constructor(
    private readonly tree: MerkleTree,
    readonly bitmap: Uint8Array,
  ) {
    assert(tree.depth >= partitionHexDigits, `a restricted session needs a Merkle depth of ${partitionHexDigits} or more, not ${tree.depth}`);
    assert(bitmap.byteLength === partitionBitmapBytes, `a partition bitmap is ${partitionBitmapBytes} bytes`);
    this.depth = tree.depth;
  }

  /** Whether the partition is in the bitmap. */
  hasPartition(partition: PartitionId): boolean {
    return (this.bitmap[partition >> 3]! & (1 << (partition & 7))) !== 0;
  }

  /** Whether a key hash (bytes) lies in a partition of the bitmap: its first byte names the partition. */
  has(keyHash: Uint8Array): boolean {
    return this.hasPartition(keyHash[0]!);
  }

  /** Whether node (level, index), level >= 2, lies in a partition of the bitmap. */
  private covers(level: number, index: number): boolean {
    return this.hasPartition(Math.floor(index / merkleFanout ** (level - partitionHexDigits)));
  }

  leafOf(keyHash: Uint8Array): number {
    return this.tree.leafOf(keyHash);
  }

  count(level: number, index: number): number {
    if (level >= partitionHexDigits) return this.covers(level, index) ? this.tree.count(level, index) : 0;
    let total = 0;
    for (let c = 0; c < merkleFanout; c++) total += this.count(level + 1, index * merkleFanout + c);
    return total;
  }

  digest(level: number, index: number): Uint8Array {
    if (level >= partitionHexDigits) return this.covers(level, index) ? this.tree.digest(level, index) : new Uint8Array(digestBytes);
    const out = new Uint8Array(digestBytes);
    for (let c = 0; c < merkleFanout; c++) {
      const child = this.digest(level + 1, index * merkleFanout + c);
      for (let i = 0; i < digestBytes; i++) out[i]! ^= child[i]!;
    }
    return out;
  }

  get rootDigest(): Uint8Array {
    return this.digest(0, 0);
  }

  get rootCount(): number {
    return this.count(0, 0);
  }
}

/** The partitions in both bitmaps. */
export function bitmapAnd(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(partitionBitmapBytes);
  for (let i = 0; i < out.length; i++) out[i] = a[i]! & b[i]!;
  return out;
}

/** Whether every partition of `a` is in `b`. */
export function bitmapSubset(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < partitionBitmapBytes; i++) if ((a[i]! & ~b[i]!) !== 0) return false;
  return true;
}

export function bitmapsEqual(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < partitionBitmapBytes; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Every partition. */
export function fullBitmap(): Uint8Array {
  return new Uint8Array(partitionBitmapBytes).fill(0xff);
}
