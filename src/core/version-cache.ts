/**
 * What the replica's commits last stored for keys being rewritten: each key's version,
 * whether it is a tombstone, its expiry and its seq, so that a commit that rewrites such a
 * key again needs no store read to learn what it replaces.
 *
 * Why: a commit reads the version it replaces for every key the key filter says may be
 * stored (src/core/replica.ts `collect`): the Merkle tree needs the old digest, the store the
 * old index row, the merge the old version. A LevelDB read costs ~3.5-5 us a key even when
 * the rows are in memory, and the commit waits for it, so rewrites of stored keys ran ~3x
 * slower than writes of new keys (`node dist/bench/write-path.js`, the rewrite rows;
 * docs/measurements.md, 2026-12-05 (evening)). Keys rewritten again and again (a counter, a
 * session, a hot row) are the common case this serves; a key not here is read as before.
 *
 * Mechanism: a 4-way set-associative table in typed arrays, like a CPU cache. A key's set of
 * 4 slots is picked by bytes of its key hash; a slot keeps the whole hash (32 bytes) and the
 * state, and a key pushed out of its set by others since is simply not found. (Mapped to one
 * slot each, 50,000 keys rewritten kept ~80 % of them in 131,072 slots, and a commit with one
 * key not found still waits for a store read.) No object is kept per key: a first version
 * of this cache kept one in a Map, and holding on to an object per write made the garbage
 * collector copy it out of the young generation (writes of new keys ~15 % slower in the
 * write-path bench, roughly measured). Node ids are kept as indexes into a small table of the ids
 * seen (a cluster has few); an id that does not fit is not cached. The table starts at 1,024
 * slots and doubles (moving what it keeps) when half its slots hold keys, up to its bytes.
 *
 * What is recorded: versions a commit read from the store (keys being rewritten) and the
 * winners of commits that replaced a stored version. A key written for the first time is not
 * recorded: most keys of a write-once load are never written again, and recording them cost
 * writes of new keys some 5 % (the write-path bench, within its noise) for nothing. So a key's first rewrite
 * reads the store, and later rewrites find it here.
 *
 * Exactness: the replica is the only writer of entries and its commits run one at a time.
 * Each commit's winners are put here only once their store write succeeded, a drop removes
 * its keys before it touches the store, and a failed store write empties the cache (the
 * store may or may not hold the batch). A slot matches only its own key hash (SHA-256: two
 * keys never share one). So a version found here is exactly what the store holds. The
 * simulator runs every replica with this cache and checks the result against the
 * acknowledged writes and the index (its `versionCacheNotUpdated` canary: a cache that a
 * commit does not update).
 *
 * A found entry carries no value: a live one holds `cachedLiveValue` (empty) in its place.
 * The commit only asks whether a replaced entry is a tombstone, never for its bytes.
 */
import type { Entry, HashText, NodeId } from './entry.js';
import { assert } from './errors.js';

/** The placeholder value of a cached live entry: the cache keeps versions, not values. */
export const cachedLiveValue: Uint8Array = new Uint8Array(0);

/** One key's last stored state, as the commit reads it. */
export interface CachedVersion {
  /** The entry with its value replaced by cachedLiveValue (null for a tombstone). */
  readonly entry: Entry;
  /** The seq its index row is stored at. */
  readonly seq: number;
}

/** Bytes of a key hash (SHA-256), all kept per slot. */
const hashBytes = 32;
/** Bytes a slot takes across the typed arrays: the hash, hlc, seq, expiry, node index, state. */
export const versionCacheSlotBytes = hashBytes + 8 + 8 + 8 + 2 + 1;
/** Slots a key may take (the table is 4-way set-associative: a key's set is 4 slots). */
const ways = 4;
/** Distinct node ids the cache can name (it keeps their index per slot); more are not cached. */
const nodeIdsMax = 4096;

const empty = 0;
const live = 1;
const tombstone = 2;

/** Slots a table starts with (it doubles as writes come, up to its bytes: see VersionCache). */
const slotsFirst = 1024;

export class VersionCache {
  /** Slots the table may grow to (0: off). */
  private readonly slotsMax: number;
  private slots = 0;
  private hashes = new Uint8Array(0);
  private hlcs = new BigUint64Array(0);
  private seqs = new Float64Array(0);
  /** NaN: no expiry. */
  private expiries = new Float64Array(0);
  private nodeIndexes = new Uint16Array(0);
  private states = new Uint8Array(0);
  /** Slots holding a key: past half the slots the table doubles (a set of 4 then rarely overflows). */
  private occupied = 0;
  /** Which way of a full set the next key pushes out (rotating). */
  private victim = 0;
  private readonly nodeIds: NodeId[] = [];
  private readonly nodeIndexOf = new Map<NodeId, number>();

  /**
   * At most `bytesMax` bytes of slots (a power of two of them); under one set's worth (4
   * slots) turns the cache off. The table starts small and doubles when half its slots hold
   * keys: a replica that rewrites few keys (a test, a quiet node, a write-once load) stays
   * small.
   */
  constructor(bytesMax: number) {
    let slotsMax = 0;
    if (bytesMax >= ways * versionCacheSlotBytes) {
      slotsMax = ways;
      while (slotsMax * 2 * versionCacheSlotBytes <= bytesMax) slotsMax *= 2;
    }
    this.slotsMax = slotsMax;
    this.allocate(Math.min(slotsFirst, slotsMax));
  }

  /** Slots in the table now (0: off). */
  get capacity(): number {
    return this.slots;
  }

  /** Slots the table may grow to (0: off). */
  get capacityMax(): number {
    return this.slotsMax;
  }

  /** What the store holds for `key` (whose hash is `keyHash`), if this cache knows. */
  get(key: string, keyHash: HashText): CachedVersion | undefined {
    const slot = this.find(keyHash);
    if (slot < 0) return undefined;
    const version = { hlc: this.hlcs[slot]!, node: this.nodeIds[this.nodeIndexes[slot]!]! };
    const seq = this.seqs[slot]!;
    if (this.states[slot] === tombstone) return { entry: { key, value: null, version }, seq };
    const expiresAtMs = this.expiries[slot]!;
    return { entry: Number.isNaN(expiresAtMs) ? { key, value: cachedLiveValue, version } : { key, value: cachedLiveValue, version, expiresAtMs }, seq };
  }

  /** Records that the store now holds `entry` (key hash `keyHash`) at `seq`. */
  set(entry: Entry, keyHash: HashText, seq: number): void {
    if (this.slots === 0) return;
    assert(keyHash.length === hashBytes, 'a key hash is 32 bytes');
    let slot = this.find(keyHash);
    let nodeIndex = this.nodeIndexOf.get(entry.version.node);
    if (nodeIndex === undefined) {
      if (this.nodeIds.length >= nodeIdsMax) {
        // Not cacheable: whatever this key's slot held is stale now.
        if (slot >= 0) this.delete(keyHash);
        return;
      }
      nodeIndex = this.nodeIds.length;
      this.nodeIds.push(entry.version.node);
      this.nodeIndexOf.set(entry.version.node, nodeIndex);
    }
    if (slot < 0) {
      if (this.occupied >= this.slots / 2 && this.slots < this.slotsMax) this.grow();
      slot = this.freeSlotIn(this.setOf(keyHash));
      if (slot >= 0) this.occupied++;
      // The key's set is full: another key goes (at full size, or a set that filled early).
      else slot = this.setOf(keyHash) + (this.victim++ & (ways - 1));
    }
    const at = slot * hashBytes;
    for (let i = 0; i < hashBytes; i++) this.hashes[at + i] = keyHash.charCodeAt(i);
    this.hlcs[slot] = entry.version.hlc;
    this.seqs[slot] = seq;
    this.expiries[slot] = entry.value === null || entry.expiresAtMs === undefined ? Number.NaN : entry.expiresAtMs;
    this.nodeIndexes[slot] = nodeIndex;
    this.states[slot] = entry.value === null ? tombstone : live;
  }

  /** Forgets the key with hash `keyHash` (the store is about to change it outside a commit's winners). */
  delete(keyHash: HashText): void {
    const slot = this.find(keyHash);
    if (slot >= 0) {
      this.states[slot] = empty;
      this.occupied--;
    }
  }

  /** Forgets everything (a store write failed: what the store holds is not known). */
  clear(): void {
    this.states.fill(empty);
    this.occupied = 0;
  }

  private allocate(slots: number): void {
    this.slots = slots;
    this.hashes = new Uint8Array(slots * hashBytes);
    this.hlcs = new BigUint64Array(slots);
    this.seqs = new Float64Array(slots);
    this.expiries = new Float64Array(slots);
    this.nodeIndexes = new Uint16Array(slots);
    this.states = new Uint8Array(slots);
  }

  /** Doubles the table, moving each kept key to its set in the larger one (a set's keys split between two: they fit). */
  private grow(): void {
    const old = { slots: this.slots, hashes: this.hashes, hlcs: this.hlcs, seqs: this.seqs, expiries: this.expiries, nodeIndexes: this.nodeIndexes, states: this.states };
    this.allocate(this.slots * 2);
    for (let from = 0; from < old.slots; from++) {
      if (old.states[from] === empty) continue;
      const at = from * hashBytes;
      const to = this.freeSlotIn(this.setOfWord(((old.hashes[at + 4]! << 24) | (old.hashes[at + 5]! << 16) | (old.hashes[at + 6]! << 8) | old.hashes[at + 7]!) >>> 0));
      assert(to >= 0, 'a grown set has room for the keys of the set it came from');
      this.hashes.set(old.hashes.subarray(at, at + hashBytes), to * hashBytes);
      this.hlcs[to] = old.hlcs[from]!;
      this.seqs[to] = old.seqs[from]!;
      this.expiries[to] = old.expiries[from]!;
      this.nodeIndexes[to] = old.nodeIndexes[from]!;
      this.states[to] = old.states[from]!;
    }
  }

  /** The slot holding `keyHash`, or -1. */
  private find(keyHash: HashText): number {
    if (this.slots === 0) return -1;
    const first = this.setOf(keyHash);
    for (let slot = first; slot < first + ways; slot++) if (this.states[slot] !== empty && this.holds(slot, keyHash)) return slot;
    return -1;
  }

  /** An empty slot of the set starting at `first`, or -1. */
  private freeSlotIn(first: number): number {
    for (let slot = first; slot < first + ways; slot++) if (this.states[slot] === empty) return slot;
    return -1;
  }

  private holds(slot: number, keyHash: HashText): boolean {
    const at = slot * hashBytes;
    for (let i = 0; i < hashBytes; i++) if (this.hashes[at + i] !== keyHash.charCodeAt(i)) return false;
    return true;
  }

  /** The first slot of the set for a key hash, from its bytes 4..7 (bytes 0..3 order the store's rows; any uniform bytes do). */
  private setOf(keyHash: HashText): number {
    return this.setOfWord(((keyHash.charCodeAt(4) << 24) | (keyHash.charCodeAt(5) << 16) | (keyHash.charCodeAt(6) << 8) | keyHash.charCodeAt(7)) >>> 0);
  }

  private setOfWord(word: number): number {
    return (word & (this.slots / ways - 1)) * ways;
  }
}
