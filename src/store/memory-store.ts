/**
 * An in-memory Store for unit tests, the deterministic simulator and in-memory benches.
 *
 * Mechanism, and why:
 * - Every entry lives in one `Slot` ({ entry, hashPrefix, bytes }) reachable two ways: `slots`
 *   by key (get, overwrite) and `buckets` by the first 4 hex digits of keyHashPrefix(key).
 *   Sync asks for Merkle subtrees (`scanHash(prefix)`) all the time, so those scans visit
 *   only the buckets under the prefix instead of every key. SHA-256 of a key is computed
 *   once, when the key first arrives, and kept in its slot.
 * - `scanKeys` sorts the key set lazily and keeps the sorted array until a new key arrives
 *   (overwrites do not change the key set), then binary-searches to the start.
 * - Everything is "durable" at once: a simulated crash discards the Replica and reopens this
 *   same instance, so `close()` only marks it closed and `open()` finds the data again.
 * - A saved snapshot (`saveSnapshot`) is a copy marked stale by the next `write()`;
 *   `readSnapshot` hands a current one back and keeps it, and one behind (only writes with
 *   tombstone counts came after it) too; it forgets a stale one.
 * - `write()` changes entries and the HLC bound synchronously, with no await in between, so
 *   no other task ever observes half a batch: that is the atomicity LevelDB's batch gives.
 * - Scans copy the matching slots into an array before yielding, so a write between two
 *   yields does not show up mid-scan (like a LevelDB iterator's implicit snapshot).
 *
 * - The applied-sequence index is a Map seq -> key: seqs only grow, so its insertion order is
 *   seq order, and `scanSince` walks it (a test and simulator store: linear is fine).
 *
 * Stored values are copied on write so a caller reusing its buffer cannot change the store.
 * Entries handed out are the stored objects: callers must not mutate their bytes.
 */
import { encodeEntry, encodedEntryBytes, hashPrefixOf, keyHashText, type Entry, type HashText } from '../core/entry.js';
import { assert } from '../core/errors.js';
import type { Hlc } from '../core/hlc.js';
import type { HintRowBytes, HintRowOp, RemovedRow, ScanKeysOptions, SequencedEntry, Store, TakenSnapshot, WriteIndex } from '../core/store.js';

/** Hex digits of keyHashPrefix that name a bucket: 65,536 buckets, ~1.5 keys each at 100k keys. */
const bucketDigits = 4;

interface Slot {
  entry: Entry;
  readonly hashPrefix: string;
  /** encodeEntry(entry).byteLength, kept so sizeBytes() is a running total. */
  bytes: number;
  /** The applied seq of this version (its row in `bySeq`). */
  seq: number;
  /**
   * The bytes the writer handed over for this version (WriteIndex.encodings: a received
   * entry's own), a copy, kept as LevelStore keeps them: the encoded scans hand them out, and
   * the simulator checks they are encodeEntry(entry)'s. Undefined: encoded from the entry.
   */
  encoded: Uint8Array | undefined;
}

export class MemoryStore implements Store {
  private isOpen = false;
  private readonly slots = new Map<string, Slot>();
  private readonly buckets = new Map<string, Map<string, Slot>>();
  /** All keys in UTF-16 order, or null after a new key arrived. */
  private sortedKeys: string[] | null = [];
  private hlc: Hlc = 0n;
  private readonly meta = new Map<string, Uint8Array>();
  private readonly hints = new Map<string, Uint8Array>();
  private entryBytes = 0;
  /** The applied-sequence index: seq -> key, one row per key, in seq order. */
  private readonly bySeq = new Map<number, string>();
  private seqLast = 0;
  /**
   * The saved snapshot (a copy) and the seq it was saved at; `stale` once a write came after
   * it, `replayable` until a remove() did (Store.readSnapshot's 'behind').
   */
  private snapshot: { bytes: Uint8Array; seqAt: number; stale: boolean; replayable: boolean } | undefined;
  /** The tombstone count the last write() gave (WriteIndex.tombstones), with that write's last seq. */
  private tombstones: { seq: number; count: number } | undefined;

  async open(): Promise<void> {
    this.isOpen = true;
  }

  async close(): Promise<void> {
    this.isOpen = false;
  }

  async get(key: string): Promise<Entry | undefined> {
    this.checkOpen();
    return this.slots.get(key)?.entry;
  }

  async getMany(keys: readonly string[], _keyHashes?: readonly HashText[], seqsOut?: (number | undefined)[]): Promise<(Entry | undefined)[]> {
    this.checkOpen();
    if (seqsOut) for (const key of keys) seqsOut.push(this.slots.get(key)?.seq);
    return keys.map((key) => this.slots.get(key)?.entry);
  }

  async write(entries: readonly Entry[], hlcLast: Hlc, keyHashes?: readonly HashText[], index?: WriteIndex): Promise<void> {
    this.checkOpen();
    const seqFirst = index?.seqFirst ?? this.seqLast + 1;
    assert(seqFirst > this.seqLast, `seq ${seqFirst} is not after the last stored seq ${this.seqLast}`);
    assert(index === undefined || index.previousSeqs.length === entries.length, 'a previous seq per entry');
    // No await below: the whole batch lands in one synchronous step.
    if (this.snapshot) this.snapshot.stale = true;
    assert(index?.encodings === undefined || index.encodings.length === entries.length, 'an encoding (or undefined) per entry');
    for (const [i, incoming] of entries.entries()) {
      const entry: Entry = incoming.value === null ? incoming : { ...incoming, value: incoming.value.slice() };
      const given = index?.encodings?.[i];
      const encoded = given === undefined ? undefined : new Uint8Array(given); // a copy (a Buffer's slice() is a view)
      const bytes = encoded?.byteLength ?? encodedEntryBytes(entry, Buffer.byteLength(entry.key, 'utf8'));
      const seq = seqFirst + i;
      const slot = this.slots.get(entry.key);
      // The index row of the version replaced goes: the caller's word for it if given (a
      // wrong one leaves a stale row, which the simulator's invariant catches), else ours.
      const previous = index ? index.previousSeqs[i] : slot?.seq;
      if (previous !== undefined && this.bySeq.get(previous) === entry.key) this.bySeq.delete(previous);
      this.bySeq.set(seq, entry.key);
      if (slot !== undefined) {
        this.entryBytes += bytes - slot.bytes;
        slot.entry = entry;
        slot.bytes = bytes;
        slot.seq = seq;
        slot.encoded = encoded;
        continue;
      }
      const hashPrefix = hashPrefixOf(keyHashes?.[i] ?? keyHashText(entry.key));
      const fresh: Slot = { entry, hashPrefix, bytes, seq, encoded };
      this.slots.set(entry.key, fresh);
      const bucketName = hashPrefix.slice(0, bucketDigits);
      let bucket = this.buckets.get(bucketName);
      if (bucket === undefined) {
        bucket = new Map();
        this.buckets.set(bucketName, bucket);
      }
      bucket.set(entry.key, fresh);
      this.entryBytes += bytes;
      this.sortedKeys = null;
    }
    this.hlc = hlcLast;
    if (entries.length > 0) this.seqLast = seqFirst + entries.length - 1;
    this.tombstones = index?.tombstones === undefined ? undefined : { seq: this.seqLast, count: index.tombstones };
  }

  async remove(rows: readonly RemovedRow[], hlcLast: Hlc): Promise<void> {
    this.checkOpen();
    // Synchronous, like write(): no task sees half of it. A removal leaves no row to replay.
    if (this.snapshot) {
      this.snapshot.stale = true;
      this.snapshot.replayable = false;
    }
    for (const row of rows) {
      const slot = this.slots.get(row.key);
      if (slot === undefined) continue;
      if (this.bySeq.get(row.seq) === row.key) this.bySeq.delete(row.seq);
      this.slots.delete(row.key);
      this.buckets.get(slot.hashPrefix.slice(0, bucketDigits))?.delete(row.key);
      this.entryBytes -= slot.bytes;
      this.sortedKeys = null;
    }
    this.hlc = hlcLast;
  }

  async readSeqLast(): Promise<number> {
    this.checkOpen();
    return this.seqLast;
  }

  async *scanSince(seqAfter: number, seqUpTo: number): AsyncIterable<SequencedEntry> {
    this.checkOpen();
    const matches: SequencedEntry[] = [];
    for (const [seq, key] of this.bySeq) {
      if (seq > seqUpTo) break; // insertion order is seq order
      if (seq > seqAfter) matches.push({ seq, entry: this.slots.get(key)!.entry });
    }
    yield* matches;
  }

  async *scanSinceEncoded(seqAfter: number, seqUpTo: number): AsyncIterable<readonly Uint8Array[]> {
    const encoded: Uint8Array[] = [];
    for await (const { entry } of this.scanSince(seqAfter, seqUpTo)) encoded.push(this.encodedOf(entry));
    // Two batches (when there are two entries or more): the consumer sees a batch boundary.
    const half = Math.ceil(encoded.length / 2);
    if (half > 0) yield encoded.slice(0, half);
    if (encoded.length > half) yield encoded.slice(half);
  }

  async *scanAllEncoded(): AsyncIterable<readonly Uint8Array[]> {
    const encoded: Uint8Array[] = [];
    for await (const entry of this.scanHash('')) encoded.push(this.encodedOf(entry));
    if (encoded.length > 0) yield encoded;
  }

  /** A stored entry's bytes: those its writer handed over, else its encoding. */
  private encodedOf(entry: Entry): Uint8Array {
    const slot = this.slots.get(entry.key);
    return slot?.entry === entry && slot.encoded !== undefined ? slot.encoded : encodeEntry(entry);
  }

  /** For the simulator's invariants: every stored entry with the bytes its writer handed over (undefined: none). */
  *storedEncodings(): Iterable<{ entry: Entry; encoded: Uint8Array | undefined }> {
    for (const slot of this.slots.values()) yield { entry: slot.entry, encoded: slot.encoded };
  }

  /** For the simulator's invariants: every index row (seq, key), in seq order. */
  indexRows(): [number, string][] {
    return [...this.bySeq];
  }

  /** For the simulator's invariants: the entry stored for `key`, synchronously. */
  peekEntry(key: string): Entry | undefined {
    return this.slots.get(key)?.entry;
  }

  /** For the simulator's invariants: the seq stored with `key`'s entry. */
  seqOf(key: string): number | undefined {
    return this.slots.get(key)?.seq;
  }

  async readHlc(): Promise<Hlc> {
    this.checkOpen();
    return this.hlc;
  }

  async *scanHashPrefixes(hexPrefixes: readonly string[]): AsyncIterable<Entry> {
    for (const prefix of hexPrefixes) yield* this.scanHash(prefix);
  }

  async *scanHash(hexPrefix: string): AsyncIterable<Entry> {
    this.checkOpen();
    assert(/^[0-9a-f]{0,8}$/.test(hexPrefix), `hash prefix must be 0 to 8 lowercase hex digits: ${hexPrefix}`);
    const matches: Entry[] = [];
    for (const bucket of this.bucketsUnder(hexPrefix)) {
      for (const slot of bucket.values()) {
        // Within a bucket only prefixes longer than the bucket name need a check.
        if (hexPrefix.length <= bucketDigits || slot.hashPrefix.startsWith(hexPrefix)) matches.push(slot.entry);
      }
    }
    yield* matches;
  }

  async *scanKeys(options: ScanKeysOptions = {}): AsyncIterable<Entry> {
    this.checkOpen();
    const { prefix = '', startAfter, limit = Infinity } = options;
    const keys = this.keysInOrder();
    let index = firstIndex(keys, (key) => key >= prefix);
    if (startAfter !== undefined) index = Math.max(index, firstIndex(keys, (key) => key > startAfter));
    const matches: Entry[] = [];
    for (; index < keys.length && matches.length < limit; index++) {
      const key = keys[index]!;
      if (!key.startsWith(prefix)) break; // keys with the prefix are contiguous
      matches.push(this.slots.get(key)!.entry);
    }
    yield* matches;
  }

  async saveSnapshot(bytes: Uint8Array): Promise<void> {
    this.checkOpen();
    this.snapshot = { bytes: bytes.slice(), seqAt: this.seqLast, stale: false, replayable: true };
  }

  async readSnapshot(): Promise<TakenSnapshot> {
    this.checkOpen();
    const saved = this.snapshot;
    if (saved === undefined) return { state: 'none' };
    // A copy: the snapshot stays here, and what the caller builds from the bytes must not change it.
    if (!saved.stale) return { state: 'current', bytes: saved.bytes.slice() };
    const count = this.tombstones;
    if (saved.replayable && count !== undefined && count.seq === this.seqLast && this.seqLast > saved.seqAt) {
      return { state: 'behind', bytes: saved.bytes.slice(), seqAt: saved.seqAt, tombstones: count.count };
    }
    this.snapshot = undefined;
    return { state: 'stale' };
  }

  async getMeta(name: string): Promise<Uint8Array | undefined> {
    this.checkOpen();
    return this.meta.get(name)?.slice();
  }

  async putMeta(name: string, value: Uint8Array): Promise<void> {
    this.checkOpen();
    this.meta.set(name, value.slice());
  }

  async writeHints(ops: readonly HintRowOp[]): Promise<void> {
    this.checkOpen();
    for (const op of ops) {
      if (op.value === undefined) this.hints.delete(op.key);
      else this.hints.set(op.key, op.value.slice());
    }
  }

  async *scanHints(): AsyncIterable<HintRowBytes> {
    this.checkOpen();
    const rows = [...this.hints].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, value] of rows) yield { key, value: value.slice() };
  }

  async sizeBytes(): Promise<number> {
    return this.entryBytes;
  }

  private checkOpen(): void {
    assert(this.isOpen, 'memory store is not open');
  }

  /** The buckets whose keys can have hash prefix `hexPrefix`. */
  private *bucketsUnder(hexPrefix: string): Iterable<Map<string, Slot>> {
    if (hexPrefix.length >= bucketDigits) {
      const bucket = this.buckets.get(hexPrefix.slice(0, bucketDigits));
      if (bucket !== undefined) yield bucket;
      return;
    }
    // A short prefix covers 16^(4 - length) bucket names: look them up one by one, unless
    // fewer buckets exist than that, in which case filtering the existing ones is cheaper.
    const suffixDigits = bucketDigits - hexPrefix.length;
    const candidates = 16 ** suffixDigits;
    if (hexPrefix === '' || this.buckets.size <= candidates) {
      for (const [name, bucket] of this.buckets) if (name.startsWith(hexPrefix)) yield bucket;
      return;
    }
    for (let suffix = 0; suffix < candidates; suffix++) {
      const bucket = this.buckets.get(hexPrefix + suffix.toString(16).padStart(suffixDigits, '0'));
      if (bucket !== undefined) yield bucket;
    }
  }

  private keysInOrder(): string[] {
    // Default sort compares UTF-16 code units, the same order as `<` on strings.
    this.sortedKeys ??= [...this.slots.keys()].sort();
    return this.sortedKeys;
  }
}

/** The first index in sorted `keys` where `isAtOrAfter` holds (keys.length if none). */
function firstIndex(keys: readonly string[], isAtOrAfter: (key: string) => boolean): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (isAtOrAfter(keys[middle]!)) high = middle;
    else low = middle + 1;
  }
  return low;
}
