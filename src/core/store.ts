/**
 * The storage port of the core: what a replica needs from durable state, and nothing else.
 * Two implementations, in src/store/: `level-store.ts` (LevelDB, production) and
 * `memory-store.ts` (tests, simulator, in-memory benches). One compliance suite
 * (test/unit/store-compliance.test.ts) runs against both.
 *
 * Entries are found two ways: by key order (prefix scans for users) and by key-hash prefix
 * (Merkle subtrees for sync). `keyHashPrefix(key)` (8 lowercase hex digits of SHA-256(key))
 * is the hash order; a Merkle node at level l is the set of keys whose hash prefix starts
 * with its l hex digits.
 *
 * Beside the entries a store keeps one opaque snapshot of the replica's derived state (saved
 * at a clean stop, replica-snapshot.ts), and says whether a write came after it: a start
 * may skip the full scan only then (`saveSnapshot`, `readSnapshot`).
 *
 * The applied-sequence index (docs/design-applied-sequence.md): every stored entry carries
 * the `seq` this node gave the change when it applied it (the replica assigns them, gap-free
 * and increasing, and passes them to `write`), and the store keeps one index row per key,
 * `seq -> key`, for the entry's current version: overwriting a key deletes its old row in the
 * same atomic batch. `scanSince(seq)` reads the entries applied after `seq` in seq order, one
 * range scan: what a peer that held everything up to `seq` lacks (catch-up by delta).
 */
import type { Entry, HashText } from './entry.js';
import type { Hlc } from './hlc.js';
import type { ReceivedEntries } from './received-entries.js';

export interface ScanKeysOptions {
  /** Only keys that start with this prefix (default: all). */
  prefix?: string;
  /** Only keys strictly greater than this one, for paging (default: from the start). */
  startAfter?: string;
  /** At most this many entries (default: no limit). */
  limit?: number;
}

/** How `write` numbers its entries in the applied-sequence index (see the top comment). */
export interface WriteIndex {
  readonly seqFirst: number;
  /** Per entry, the seq of the version it replaces (undefined: the key was not stored). */
  readonly previousSeqs: readonly (number | undefined)[];
  /**
   * The replica's tombstone count once this batch is applied, kept with it: what a start from
   * a snapshot older than the entries cannot derive from the rows written since (whether each
   * version they replaced was a tombstone). Undefined: not known (the store forgets any count
   * it kept, and readSnapshot says 'stale' instead of 'behind').
   */
  readonly tombstones?: number;
  /**
   * Per entry, encodeEntry(entry) as a peer sent it (checked canonical when it was decoded:
   * canonicalEncoding or decodeReceivedEntries), or undefined: the store keeps these bytes as they are instead of
   * encoding the entry again. Absent: encode every entry.
   */
  readonly encodings?: readonly (Uint8Array | undefined)[];
}

/** Store.writeReceived's entries: entry w is `batches[w]`'s entry `indexes[w]`. */
export interface ReceivedRows {
  readonly batches: readonly ReceivedEntries[];
  readonly indexes: readonly number[];
}

/** An entry `Store.remove` deletes: its key, keyHashText(key), and the seq stored with it. */
export interface RemovedRow {
  readonly key: string;
  readonly keyHash: HashText;
  readonly seq: number;
}

export interface SequencedEntry {
  readonly seq: number;
  readonly entry: Entry;
}

/**
 * What `readSnapshot` found: nothing saved, a snapshot a later change made stale, a current
 * one, or one that is behind: only write()s came after it, each with the replica's tombstone
 * count (WriteIndex.tombstones), so the entries it lacks are `scanSince(seqAt, readSeqLast())`
 * and `tombstones` is the count after the last of them (replica-replay.ts).
 */
export type TakenSnapshot =
  | { readonly state: 'none' }
  | { readonly state: 'stale' }
  | { readonly state: 'current'; readonly bytes: Uint8Array }
  | { readonly state: 'behind'; readonly bytes: Uint8Array; readonly seqAt: number; readonly tombstones: number };

export interface Store {
  /** Idempotent. A LevelDB directory held by another process throws StoreLockedError. */
  open(): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;

  get(key: string): Promise<Entry | undefined>;

  /**
   * `get` for many keys in one call (one native round for LevelDB); results in the same order.
   * `keyHashes[i]`, if given, is keyHashText(keys[i]): the replica has it, so it is not hashed again.
   * `seqsOut`, if given, receives each found entry's seq (the commit deletes that index row).
   */
  getMany(keys: readonly string[], keyHashes?: readonly HashText[], seqsOut?: (number | undefined)[]): Promise<(Entry | undefined)[]>;

  /**
   * Atomically store `entries` (each replaces whatever the key held) together with the HLC
   * upper bound `hlcLast`: after a crash either all of it is there or none. Callers have
   * already decided, by the merge rule, that each entry wins. `keyHashes` as in getMany.
   * `index`: entries[i] gets seq `index.seqFirst + i` (greater than any seq stored before)
   * and its key's previous index row, `index.previousSeqs[i]` (the seq getMany reported for
   * the version it replaces), is deleted in the same batch. Without `index` (tests, tools)
   * the store numbers the entries after its last seq itself and reads the previous seqs.
   */
  write(entries: readonly Entry[], hlcLast: Hlc, keyHashes?: readonly HashText[], index?: WriteIndex): Promise<void>;

  /**
   * Optional: write() for received entries kept as their bytes (Replica.applyReceived), entry
   * w being `rows.batches[w]`'s entry `rows.indexes[w]`, whose bytes are canonical: each row
   * is made from them, no entry object. The same contract as write() with `keyHashes` and
   * `index` given (its `encodings` unused). A store without it gets the entries decoded.
   */
  writeReceived?(rows: ReceivedRows, hlcLast: Hlc, keyHashes: readonly HashText[], index: WriteIndex): Promise<void>;

  /** The greatest seq stored (0 for a new store): the replica numbers its next commit after it. */
  readSeqLast(): Promise<number>;

  /**
   * Entries whose seq is greater than `seqAfter` and at most `seqUpTo`, in seq order, with
   * their seqs: one pass over the index (a key overwritten meanwhile shows once, under its
   * newest seq, if that is still in range).
   */
  scanSince(seqAfter: number, seqUpTo: number): AsyncIterable<SequencedEntry>;

  /**
   * scanSince's entries in their canonical encoding (entry.ts: as stored, as sent in sync
   * frames), in batches, without their seqs: a sync responder streaming a delta copies them
   * into Entries frames without decoding and re-encoding each one. Optional: without it the
   * responder uses scanSince.
   */
  scanSinceEncoded?(seqAfter: number, seqUpTo: number): AsyncIterable<readonly Uint8Array[]>;

  /** Every entry (scanHash('')) encoded and in batches, as scanSinceEncoded: a new node's whole state. Optional. */
  scanAllEncoded?(): AsyncIterable<readonly Uint8Array[]>;

  /** The HLC bound persisted by the last write (0n for a new store). */
  readHlc(): Promise<Hlc>;

  /** Entries, tombstones included, whose keyHashPrefix starts with `hexPrefix` ('' = all); any order. */
  scanHash(hexPrefix: string): AsyncIterable<Entry>;

  /**
   * Entries whose keyHashPrefix starts with any of `hexPrefixes` (sorted, distinct, none a
   * prefix of another), in hash order. One pass over many small subtrees: sync reads
   * thousands of leaves a session, and an iterator per leaf would dominate its cost.
   */
  scanHashPrefixes(hexPrefixes: readonly string[]): AsyncIterable<Entry>;

  /** Entries, tombstones included, in key order (by UTF-16 code units, as JS compares strings). */
  scanKeys(options?: ScanKeysOptions): AsyncIterable<Entry>;

  /**
   * Keep `bytes` (the replica's derived state, replica-snapshot.ts) as the snapshot of the
   * entries as they are now. A later `write()`, by this or any other instance or version of
   * the store, makes it stale (`remove` too); reading it does not (`readSnapshot`).
   * `flush` (default true): also write what the store holds only in memory and its log to
   * its files, so that the next open has nothing to replay (a clean stop); a running node's
   * checkpoint leaves that for later (`flush`), outside its turn of the write queue.
   */
  saveSnapshot(bytes: Uint8Array, options?: { flush?: boolean }): Promise<void>;

  /** See saveSnapshot's `flush`: only the next open's speed depends on it. Optional. */
  flush?(): Promise<void>;

  /**
   * The saved snapshot, if there is one and no write() or remove() came after it ('current'),
   * left as it is: it stays current until the next write() or remove(), so a start killed
   * before its first write finds it again (the change that makes it stale is atomic with the
   * rows it changes: a crash keeps both or neither). If at least one write() and nothing else
   * came after it, and the last write() gave its tombstone count, it is 'behind' (with the
   * seq it was saved at and that count), also left as it is. Any other is stale and
   * forgotten ('stale' once, then 'none'): a remove() after it, a write() without a count.
   * The HLC bound (readHlc) is the same before and after. The bytes handed out are the
   * caller's: a replica keeps them as its tree's memory (decodeSnapshot), so a store hands out
   * its own copy, never memory it keeps.
   */
  readSnapshot(): Promise<TakenSnapshot>;

  /** Small named values that are not entries (node identity, schema version, store epoch, sync watermarks). */
  getMeta(name: string): Promise<Uint8Array | undefined>;
  putMeta(name: string, value: Uint8Array): Promise<void>;

  /**
   * Partitioned mode (purge of partitions this node no longer holds): delete these entries,
   * with their key-order rows and their index rows (`seq`: the seq stored with the entry, as
   * getMany reports it), and put the HLC bound `hlcLast` back, in one atomic batch; a saved
   * snapshot becomes stale. The caller (the replica's commit loop) read these exact versions
   * just before. Optional: a store without it cannot purge (the replica says so).
   */
  remove?(rows: readonly RemovedRow[], hlcLast: Hlc): Promise<void>;

  /** Approximate bytes the store occupies (on disk for LevelDB). */
  sizeBytes(): Promise<number>;

  /**
   * Delivery rows (hints, src/core/delivery-queue.ts), kept apart from the entries: puts and
   * deletes (`value` undefined) applied in order, in one atomic batch. Optional: a store
   * without them keeps no hints.
   */
  writeHints?(ops: readonly HintRowOp[]): Promise<void>;
  /** Every delivery row, in key order. */
  scanHints?(): AsyncIterable<HintRowBytes>;
}

/** A delivery row as stored: its key and its encoded value. */
export interface HintRowBytes {
  readonly key: string;
  readonly value: Uint8Array;
}

/** A put of a delivery row, or its delete (no value). */
export interface HintRowOp {
  readonly key: string;
  readonly value?: Uint8Array;
}
