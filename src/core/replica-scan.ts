/**
 * The replica's derived state (Merkle tree, key filter, tombstone count and per-partition
 * bounds, greatest stamp) rebuilt by one scan of every stored entry: what Replica.open does
 * when no snapshot is current, after a crash or a kill (a clean stop saves one).
 *
 * Per entry the state needs two SHA-256 hashes (of the key, which places it in the tree and
 * the filter; of key, 0, stamp and node id, its digest), whether it is a tombstone and its
 * stamp. With a store that hands out its rows encoded (Store.scanAllEncoded) all of that is
 * read in place (entry.ts, readEncodedEntryFacts): the key hash is over the key's bytes as
 * stored, and the digest's input is the row's own bytes from the key to the end of the version
 * (the flags byte standing where the 0 goes). Decoding every entry into an object first (key
 * string, node id text, a copy of the value) and encoding key and version again for the
 * digest cost a 100k-entry start after a kill ~630 ms of scan (docs/measurements.md,
 * 2026-12-04 (afternoon)). A store without encoded rows is scanned entry by entry; both give
 * the same state (test/unit/replica-scan.test.ts).
 */
import { encodedEntryDigestText, encodedEntryFacts, encodedKeyHashText, entryDigestText, keyHashText, readEncodedEntryFacts } from './entry.js';
import type { Hlc } from './hlc.js';
import { KeyFilter } from './key-filter.js';
import { MerkleTree } from './merkle.js';
import { partitionCount, partitionOfHash } from './placement.js';
import type { ReplicaState } from './replica-snapshot.js';
import type { Store } from './store.js';
import { noTombstone } from './tombstone-bounds.js';

export async function scanReplicaState(store: Pick<Store, 'scanHash' | 'scanAllEncoded'>, depth: number): Promise<ReplicaState> {
  return store.scanAllEncoded !== undefined ? scanEncoded(store.scanAllEncoded(), depth) : scanEntries(store, depth);
}

async function scanEncoded(batches: AsyncIterable<readonly Uint8Array[]>, depth: number): Promise<ReplicaState> {
  const tree = new MerkleTree(depth);
  const keys = new KeyFilter();
  let tombstones = 0;
  // The greatest stamp as two 32-bit halves, made a bigint once at the end.
  let maxHigh = 0;
  let maxLow = 0;
  const tombstoneBounds = new Array<Hlc>(partitionCount).fill(noTombstone);
  const facts = encodedEntryFacts();
  for await (const batch of batches) {
    for (const bytes of batch) {
      readEncodedEntryFacts(bytes, facts);
      const hash = encodedKeyHashText(bytes, facts);
      tree.updateText(hash, undefined, encodedEntryDigestText(bytes, facts));
      keys.add(hash);
      if (facts.tombstone) {
        tombstones++;
        const partition = partitionOfHash(hash);
        const hlc = (BigInt(facts.hlcHigh) << 32n) | BigInt(facts.hlcLow);
        if (hlc < tombstoneBounds[partition]!) tombstoneBounds[partition] = hlc;
      }
      if (facts.hlcHigh > maxHigh || (facts.hlcHigh === maxHigh && facts.hlcLow > maxLow)) {
        maxHigh = facts.hlcHigh;
        maxLow = facts.hlcLow;
      }
    }
  }
  return { tree, keys, tombstones, entryHlcMax: (BigInt(maxHigh) << 32n) | BigInt(maxLow), tombstoneBounds };
}

async function scanEntries(store: Pick<Store, 'scanHash'>, depth: number): Promise<ReplicaState> {
  const tree = new MerkleTree(depth);
  const keys = new KeyFilter();
  let tombstones = 0;
  let entryHlcMax: Hlc = 0n;
  const tombstoneBounds = new Array<Hlc>(partitionCount).fill(noTombstone);
  for await (const entry of store.scanHash('')) {
    const hash = keyHashText(entry.key);
    tree.updateText(hash, undefined, entryDigestText(entry.key, entry.version));
    keys.add(hash);
    if (entry.value === null) {
      tombstones++;
      const partition = partitionOfHash(hash);
      if (entry.version.hlc < tombstoneBounds[partition]!) tombstoneBounds[partition] = entry.version.hlc;
    }
    if (entry.version.hlc > entryHlcMax) entryHlcMax = entry.version.hlc;
  }
  return { tree, keys, tombstones, entryHlcMax, tombstoneBounds };
}
