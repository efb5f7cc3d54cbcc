/**
 * A start from a snapshot that is behind the entries: the replica's derived state (Merkle
 * tree, key filter, tombstone count and bounds, greatest stamp) as the snapshot saved it, then
 * brought up to date with the entries written after it, instead of a scan of every entry.
 *
 * A running node saves a checkpoint once it has been quiet for a second (checkpoint-schedule.ts);
 * a node killed after writes that came later used to scan everything at its next start (100k
 * keys: ~240 ms of a ~420 ms start, docs/measurements.md). The store says when only writes came
 * after the snapshot (Store.readSnapshot 'behind': a remove() leaves no row to replay) and
 * where they start (the seq it was saved at): the entries written since are one range of the
 * applied-sequence index, scanSince(seqAt). Each is a key whose leaf changed:
 * - the tree: the tree is an XOR of entry digests, and the versions the tail replaced are gone
 *   from the store, so the leaves the tail touched are recomputed from every entry they hold
 *   now (scanHashPrefixes over those leaves) and set (MerkleTree.replaceLeaf);
 * - the key filter: the tail's keys are added (it never removes, as at runtime);
 * - the greatest stamp: the greater of the snapshot's and the tail's (a write only replaces a
 *   version with a greater one, so the snapshot's greatest is still stored or beaten);
 * - tombstone bounds: lowered by the tail's tombstones; a bound may stay below a tombstone the
 *   tail overwrote, as at runtime (a bound is a lower bound, tombstone-bounds.ts);
 * - the tombstone count: whether a replaced version was a tombstone is not in the store any
 *   more, so each write carries the replica's count (WriteIndex.tombstones) and the store hands
 *   back the last one.
 * The result equals a scan's (test/unit/replica-replay.test.ts; the simulator checks every
 * start from a snapshot against a scan, and its replay canary that the check catches a replay
 * that XORs the tail in without taking the replaced versions out).
 *
 * A long tail costs more than a scan (each leaf it touched is a LevelDB seek, ~60-100 us):
 * `replayCostFractionMax`, `replayLeafCostEntries` and `replayTailAlwaysEntries` (limits.ts)
 * decide. With 100k keys a tail of up to ~1,200 entries is replayed.
 */
import { entryDigest, entryDigestText, keyHashText, type HashText } from './entry.js';
import type { Hlc } from './hlc.js';
import { replayCostFractionMax, replayLeafCostEntries, replayTailAlwaysEntries } from './limits.js';
import { MerkleTree } from './merkle.js';
import { partitionOfHash } from './placement.js';
import type { ReplicaState } from './replica-snapshot.js';
import type { Store } from './store.js';

const digestBytes = 32;

/** What the replay needs of the snapshot the store found behind (Store.readSnapshot). */
export interface SnapshotBehind {
  readonly seqAt: number;
  readonly tombstones: number;
}

export interface ReplayOptions {
  /** Only the simulator's replay canary sets this: XOR the tail's digests in, without recomputing their leaves. */
  readonly addsOnly?: boolean;
}

/**
 * `state` (decoded from the snapshot; changed in place and returned) brought up to the store's
 * last seq, with the number of tail entries replayed; undefined if the tail is too long to
 * replay (the caller scans).
 */
export async function replayTail(
  store: Pick<Store, 'readSeqLast' | 'scanSince' | 'scanHashPrefixes'>,
  state: ReplicaState,
  behind: SnapshotBehind,
  options: ReplayOptions = {},
): Promise<{ state: ReplicaState; entries: number } | undefined> {
  const { tree } = state;
  const seqLast = await store.readSeqLast();
  // Index rows in the range: at most one a seq (overwritten keys' rows are gone).
  const tailMax = seqLast - behind.seqAt;
  if (tailMax < 0) return undefined;
  const entriesPerLeaf = tree.rootCount / tree.leafCount;
  const cost = tailMax * (1 + entriesPerLeaf) + Math.min(tailMax, tree.leafCount) * replayLeafCostEntries;
  if (tailMax > replayTailAlwaysEntries && cost > replayCostFractionMax * tree.rootCount) return undefined;
  const touched = new Set<number>();
  let entries = 0;
  let entryHlcMax: Hlc = state.entryHlcMax;
  const bounds = state.tombstoneBounds === undefined ? undefined : [...state.tombstoneBounds];
  for await (const { entry } of store.scanSince(behind.seqAt, seqLast)) {
    entries++;
    const hash = keyHashText(entry.key);
    state.keys.add(hash);
    if (entry.value === null && bounds !== undefined) {
      const partition = partitionOfHash(hash);
      if (entry.version.hlc < bounds[partition]!) bounds[partition] = entry.version.hlc;
    }
    if (entry.version.hlc > entryHlcMax) entryHlcMax = entry.version.hlc;
    if (options.addsOnly) tree.updateText(hash, undefined, entryDigestText(entry.key, entry.version));
    else touched.add(leafOfText(tree, hash));
  }
  const leaves = [...touched].sort((a, b) => a - b);
  const digests = new Uint8Array(leaves.length * digestBytes);
  const counts = new Uint32Array(leaves.length);
  const slotOf = new Map(leaves.map((leaf, slot) => [leaf, slot]));
  if (leaves.length > 0) {
    for await (const entry of store.scanHashPrefixes(leaves.map((leaf) => MerkleTree.hashPrefix(tree.depth, leaf)))) {
      const slot = slotOf.get(leafOfText(tree, keyHashText(entry.key)));
      if (slot === undefined) continue; // not below a leaf asked for: the store's business, not ours
      const digest = entryDigest(entry.key, entry.version);
      for (let i = 0; i < digestBytes; i++) digests[slot * digestBytes + i]! ^= digest[i]!;
      counts[slot]!++;
    }
  }
  for (let slot = 0; slot < leaves.length; slot++) tree.replaceLeaf(leaves[slot]!, digests.subarray(slot * digestBytes, (slot + 1) * digestBytes), counts[slot]!);
  return { state: { ...state, entryHlcMax, tombstones: behind.tombstones, ...(bounds === undefined ? {} : { tombstoneBounds: bounds }) }, entries };
}

/** MerkleTree.leafOf for a HashText (its first 3 characters are the hash's first 3 bytes). */
function leafOfText(tree: MerkleTree, hash: HashText): number {
  const top = ((hash.charCodeAt(0) << 16) | (hash.charCodeAt(1) << 8) | hash.charCodeAt(2)) >>> 0;
  return top >>> (24 - 4 * tree.depth);
}
