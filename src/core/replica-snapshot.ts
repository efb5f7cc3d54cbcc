/**
 * What a replica saves at a clean stop so that its next start skips the full scan: the Merkle
 * tree, the key filter, the tombstone count and the greatest entry stamp, in one checksummed
 * blob (the store keeps it beside the entries: Store.saveSnapshot / readSnapshot). Rebuilding
 * the same state from the store costs two SHA-256s per entry plus a LevelDB scan of every
 * entry; reading the blob costs one read of ~2.6 MiB (depth 4): every level of the tree is
 * saved, so none is computed at start (that pass ran on code V8 had not compiled yet), and the
 * tree keeps its digests where the read put them (format 4 places them 4-byte aligned), so
 * they are not copied either.
 *
 * Trust: the store hands the blob back only if no write() or remove() happened after it was
 * saved (the batch of the first one makes it stale, atomically: see store.ts), so a node that
 * crashes before a write finds it again, and one that crashes after writes finds it behind and
 * replays them (replica-replay.ts), or scans when that is not possible or worth it.
 * What the store cannot vouch for, this file checks: the format version, the
 * depth (a start with another --merkle depth scans), the lengths, a SHA-256 over everything,
 * and that the counts add up to the entry count (the root's, or with leaves only, the leaves').
 * Any doubt -> `rejected` with a reason, and the replica scans: a snapshot can make a start
 * faster, never make a tree wrong. The inner nodes of a format-3 tree are taken as saved: the
 * checksum vouches for them as for the leaves (encodeSnapshot writes the tree as it is).
 *
 * Layout (integers big-endian):
 *   u8 format (snapshotFormat) | u8 depth | u32 entries | u32 tombstones | u64 entryHlcMax
 *   | format 4: two zero bytes, so that every digest below starts at a multiple of 4
 *   | formats 3 and 4: per level, root (0) to leaves (depth): fanout^level digests (32 bytes
 *     each), then fanout^level counts (u32 each)
 *     formats 1 and 2: the leaves only: fanout^depth digests, then fanout^depth counts
 *   | u8 filter layers | per layer: u32 words, u32 count, words (u32 each)
 *   | formats 2 to 4: per partition (256) its tombstone bound (tombstone-bounds.ts): u8 kind
 *     (0 unknown, 1 no tombstone, 2 the u64 that follows), u64 HLC (0 unless kind 2)
 *   | SHA-256 of everything before (32 bytes)
 * Formats 1 to 3 are still read (1 and 2: the inner nodes computed from the leaves; 3: the
 * digests copied, being unaligned); a format 1's bounds are unknown, as they were when it was
 * saved.
 */
import { hash } from 'node:crypto';
import { readU32ArrayBigEndian, writeU32ArrayBigEndian } from './bytes.js';
import type { Hlc } from './hlc.js';
import { KeyFilter } from './key-filter.js';
import { merkleDepthMax, merkleFanout, snapshotFilterLayersMax } from './limits.js';
import { MerkleTree } from './merkle.js';
import { partitionCount } from './placement.js';
import { noTombstone, unknownBound } from './tombstone-bounds.js';

/**
 * The format saved. Only append new formats (a new value): an old one is still recognised,
 * and read or refused, never misread. 1: leaves, no tombstone bounds. 2: leaves, bounds.
 * 3: every level of the tree, bounds. 4: as 3, with the header padded to 20 bytes.
 */
export const snapshotFormat = 4;
const formatLeavesWithoutBounds = 1;
const formatLeavesWithBounds = 2;
const formatEveryLevelUnaligned = 3;
/** Bytes of one partition's tombstone bound: the kind and the HLC. */
const boundBytes = 1 + 8;
/** Kinds of a saved bound. Only append: the values are part of the saved format. */
const boundKind = { unknown: 0, none: 1, hlc: 2 } as const;

const digestBytes = 32;
/** Format, depth, entries, tombstones, entryHlcMax. */
const headerBytes = 1 + 1 + 4 + 4 + 8;
/** Format 4's zero bytes after the header: 20 bytes, then blocks of 36 bytes a node, keep every digest 4-byte aligned. */
const alignmentBytes = 2;

export interface ReplicaState {
  readonly tree: MerkleTree;
  readonly keys: KeyFilter;
  readonly tombstones: number;
  /** The greatest HLC of any stored entry (0n if none): the clock resumes above it. */
  readonly entryHlcMax: Hlc;
  /** Per partition, the oldest tombstone it may hold (TombstoneBounds); undefined: not known. */
  readonly tombstoneBounds?: readonly Hlc[];
}

/** Why a saved snapshot was not used. */
export type SnapshotRejection = 'format' | 'depth' | 'corrupt';

export function encodeSnapshot(state: ReplicaState): Uint8Array {
  const levels = state.tree.levels();
  const layers = state.keys.layerStates();
  let total = headerBytes + alignmentBytes + 1;
  for (const { digests, counts } of levels) total += digests.byteLength + 4 * counts.length;
  for (const layer of layers) total += 8 + 4 * layer.words.length;
  total += partitionCount * boundBytes + digestBytes;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  out[at++] = snapshotFormat;
  out[at++] = state.tree.depth;
  view.setUint32(at, state.tree.rootCount);
  view.setUint32(at + 4, state.tombstones);
  view.setBigUint64(at + 8, state.entryHlcMax);
  at += 16 + alignmentBytes; // the pad bytes are zero (new Uint8Array)
  for (const { digests, counts } of levels) {
    out.set(digests, at);
    at += digests.byteLength;
    writeU32ArrayBigEndian(out, at, counts);
    at += 4 * counts.length;
  }
  out[at++] = layers.length;
  for (const layer of layers) {
    view.setUint32(at, layer.words.length);
    view.setUint32(at + 4, layer.count);
    at += 8;
    writeU32ArrayBigEndian(out, at, layer.words);
    at += 4 * layer.words.length;
  }
  for (let p = 0; p < partitionCount; p++, at += boundBytes) {
    const bound = state.tombstoneBounds?.[p] ?? unknownBound;
    if (bound === unknownBound) out[at] = boundKind.unknown;
    else if (bound === noTombstone) out[at] = boundKind.none;
    else {
      out[at] = boundKind.hlc;
      view.setBigUint64(at + 1, bound);
    }
  }
  out.set(hash('sha256', out.subarray(0, at), 'buffer'), at);
  return out;
}

/**
 * The state a snapshot holds, or why it cannot be trusted for a tree of `depth`. The caller
 * gives `bytes` up: the tree may keep their memory as its own and change it.
 */
export function decodeSnapshot(bytes: Uint8Array, depth: number): { state: ReplicaState } | { rejected: SnapshotRejection } {
  if (bytes.byteLength < headerBytes + digestBytes) return { rejected: 'corrupt' };
  const format = bytes[0];
  if (format !== snapshotFormat && format !== formatEveryLevelUnaligned && format !== formatLeavesWithBounds && format !== formatLeavesWithoutBounds) {
    return { rejected: 'format' };
  }
  const everyLevel = format === snapshotFormat || format === formatEveryLevelUnaligned;
  const body = bytes.subarray(0, bytes.byteLength - digestBytes);
  const sum = hash('sha256', body, 'buffer');
  if (Buffer.compare(sum, bytes.subarray(body.byteLength)) !== 0) return { rejected: 'corrupt' };
  const savedDepth = bytes[1]!;
  if (savedDepth !== depth) return { rejected: 'depth' };
  if (depth < 1 || depth > merkleDepthMax) return { rejected: 'corrupt' };
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const entries = view.getUint32(2);
  const tombstones = view.getUint32(6);
  const entryHlcMax = view.getBigUint64(10);
  let at = headerBytes;
  if (format === snapshotFormat) {
    if (body.byteLength < at + alignmentBytes || body[at] !== 0 || body[at + 1] !== 0) return { rejected: 'corrupt' };
    at += alignmentBytes;
  }
  // Formats 3 and 4: every level; formats 1 and 2: the leaves only.
  const levels: { digests: Uint8Array; counts: Uint32Array }[] = [];
  for (let level = everyLevel ? 0 : depth; level <= depth; level++) {
    const nodes = merkleFanout ** level;
    if (body.byteLength < at + nodes * (digestBytes + 4) + 1) return { rejected: 'corrupt' };
    const digests = body.subarray(at, at + nodes * digestBytes);
    at += nodes * digestBytes;
    levels.push({ digests, counts: readU32ArrayBigEndian(body, at, nodes) });
    at += 4 * nodes;
  }
  let counted = 0;
  if (everyLevel) counted = levels[0]!.counts[0]!;
  else for (const count of levels[0]!.counts) counted += count;
  if (counted !== entries || tombstones > entries) return { rejected: 'corrupt' };
  const layerCount = body[at++]!;
  if (layerCount > snapshotFilterLayersMax) return { rejected: 'corrupt' };
  const layers: { words: Uint32Array; count: number }[] = [];
  for (let l = 0; l < layerCount; l++) {
    if (body.byteLength < at + 8) return { rejected: 'corrupt' };
    const wordCount = view.getUint32(at);
    const count = view.getUint32(at + 4);
    at += 8;
    if (body.byteLength < at + 4 * wordCount) return { rejected: 'corrupt' };
    const words = readU32ArrayBigEndian(body, at, wordCount);
    at += 4 * wordCount;
    layers.push({ words, count });
  }
  let tombstoneBounds: Hlc[] | undefined;
  if (format !== formatLeavesWithoutBounds) {
    if (body.byteLength !== at + partitionCount * boundBytes) return { rejected: 'corrupt' };
    tombstoneBounds = [];
    for (let p = 0; p < partitionCount; p++, at += boundBytes) {
      const kind = body[at]!;
      const hlc = view.getBigUint64(at + 1);
      if (kind === boundKind.unknown && hlc === 0n) tombstoneBounds.push(unknownBound);
      else if (kind === boundKind.none && hlc === 0n) tombstoneBounds.push(noTombstone);
      else if (kind === boundKind.hlc && hlc !== 0n) tombstoneBounds.push(hlc);
      else return { rejected: 'corrupt' };
    }
  }
  if (at !== body.byteLength) return { rejected: 'corrupt' };
  const keys = KeyFilter.fromLayers(layers);
  // Every stored key is in the filter: a filter that took fewer keys than there are entries lost some.
  if (keys === undefined || layers.reduce((sum, layer) => sum + layer.count, 0) < entries) return { rejected: 'corrupt' };
  // The digests are views of `bytes` (the caller's: Store.readSnapshot), kept as the tree's
  // memory when aligned (format 4 read into memory of its own), copied otherwise.
  const tree = everyLevel ? MerkleTree.adoptLevels(depth, levels) : MerkleTree.fromLeaves(depth, levels[0]!.digests, levels[0]!.counts);
  return { state: tombstoneBounds === undefined ? { tree, keys, tombstones, entryHlcMax } : { tree, keys, tombstones, entryHlcMax, tombstoneBounds } };
}
