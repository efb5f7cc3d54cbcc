/**
 * The production Store: LevelDB through `level` (classic-level). The only importer of `level`.
 *
 * Layout: one database at `location`, sublevels (abstract-level prefixes their keys
 * with '!' + name + '!'):
 * - `e` entries. Key: keyHashPrefix(key) (8 hex digits) + key (UTF-8). Value: encodeEntry(entry).
 *   Keys sort in hash order, which is Merkle order, so `scanHash(p)` is one range scan
 *   [p, p + 'g') ('g' sorts after every hex digit) for p shorter than 8 digits; with all 8
 *   the key follows p, so the scan stops at the first row without the prefix.
 * - `k` key-order index. Key: the key as UTF-16BE bytes; value empty.
 *   LevelDB compares bytes; UTF-16BE bytes compare like JS strings (UTF-16 code units), as
 *   the Store contract requires, where UTF-8 would put U+E000..U+FFFF after astral
 *   characters. `scanKeys` walks `k` and fetches entries from `e` with getMany in batches,
 *   all from one explicit snapshot so the index and the entries agree.
 * - `m` meta: name -> bytes. 'hlc' holds the HLC bound as 8 bytes big-endian; 'format' the
 *   layout version (below).
 * - `h` delivery rows (hints, src/core/delivery-queue.ts). Key: `<target node id>/<key hash
 *   hex>` (UTF-8). Value: the encoded row. Written by `writeHints` only, apart from entries.
 * - `s` applied-sequence index (store.ts). Key: the seq as 8 bytes big-endian (byte order is
 *   seq order). Value: the entry itself (encodeEntry), so a delta is one sequential scan of
 *   `s`: fetching each entry from `e` by key instead (getMany, one seek each) made the scan
 *   ~4x slower than reading the rows (100k entries, measured in docs/measurements.md). The
 *   price is the entry's bytes written twice; the batch's JS cost is the same (the `s` value
 *   is a view of the `e` value's bytes). The `e` row's value ends with the same seq (8 bytes
 *   big-endian after encodeEntry's bytes), so the commit's read of the old version (getMany)
 *   also finds the index row it must delete.
 *
 * A sync responder streaming a delta or a new node's whole state reads the rows' values as
 * they are (`scanSinceEncoded`, `scanAllEncoded`: an `s` value is the encoded entry, an `e`
 * value is it plus the seq) and copies them into frames: decoding each entry and encoding it
 * again cost ~2-3x the CPU of the whole serving side (docs/measurements.md).
 *
 * Layout format 2 (meta 'format' = [2]) added `s` and the seq suffix. A directory without
 * the marker (made by an older version, or new) is brought to format 2 at open before
 * anything else reads it: the index is cleared, then every entry is renumbered 1..n in hash
 * order and written back with its index row, in batches, and the marker is put last; a
 * crash midway starts over at the next open. Older versions cannot read format 2 (the
 * suffix is trailing bytes to their decoder): a downgrade needs an export and import.
 *
 * The replica's snapshot (saveSnapshot, at a clean stop and at a running node's checkpoints)
 * is a file in the directory,
 * `CKV-SNAPSHOT` (LevelDB leaves files it does not name alone): kept in LevelDB, its ~2.5 MiB
 * would be replayed from the log and rewritten into a table at every open. Its marker is the
 * meta row 'snapshot': format byte, the HLC row it moved aside, the file's SHA-256. Every
 * write() puts 'hlc' back (this version's and every older one's), so a snapshot is current
 * only while 'hlc' is absent. readSnapshot hands a current one out and leaves it in place
 * (the next write makes it stale); a stale or damaged one it forgets: one synced batch deletes
 * the marker and restores 'hlc', then the file is removed. A snapshot only writes came after
 * is 'behind' instead, also left in place (a start replays those writes, replica-replay.ts):
 * the marker's batch puts 'snapshot-seq' (the seq it was saved at; remove() deletes it) and
 * every write() puts 'tombstones' (its last seq and the replica's tombstone count; a write
 * without a count deletes it), so behind means: 'snapshot-seq' there, and 'tombstones' written
 * by the last write, after the snapshot.
 *
 * `write(entries, hlcLast)` is one batch on the root database over e, k and m['hlc'], so
 * after a crash either the whole batch is there or none of it. Its rows carry the sublevel
 * prefixes already, encoded one by one into scratch memory the native batch copies from
 * (batch-rows.ts): the same batch with a sublevel option per row cost ~10x more CPU.
 * `getMany` reads the root the same way. The bytes on disk are those the sublevels read and
 * write, so other reads and scans go through the sublevels.
 * A user delete is a tombstone entry; rows are deleted only by `remove` (the purge of
 * partitions a partitioned node no longer holds: e, k and s rows, and 'hlc' put back, in one
 * batch). A directory held by another process (or another instance in this process) fails
 * to open with LEVEL_LOCKED, which becomes StoreLockedError.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import { byteRange, ByteReader } from '../core/bytes.js';
import { batchRows, RowScratch } from './batch-rows.js';
import {
  decodeEntry,
  encodeEntry,
  encodeEntryInto,
  readEntry,
  encodedEntryBytes,
  hashPrefixDigits,
  keyHashPrefix,
  keyHashText,
  type Entry,
  type HashText,
} from '../core/entry.js';
import { MalformedError, StoreLockedError, assert } from '../core/errors.js';
import type { Hlc } from '../core/hlc.js';
import { keyBytesMax } from '../core/limits.js';
import type { HintRowBytes, HintRowOp, ReceivedRows, RemovedRow, ScanKeysOptions, SequencedEntry, Store, TakenSnapshot, WriteIndex } from '../core/store.js';

/** Index keys fetched from `e` per getMany: big enough to amortise the native call. */
const scanKeysBatchKeys = 256;
/**
 * Point reads of at most this many keys (a Get, a commit's read of the versions it replaces)
 * run on the calling thread, through classic-level's getSync: LevelDB's Get from the memtable,
 * the block cache or the OS's page cache takes microseconds, while a read on libuv's pool
 * wakes a pool thread and then the main thread for its result (~0.1-0.2 ms on an idle VM,
 * and on a busy one the woken thread takes the CPU from the caller). Larger reads (a scan's
 * batches) stay on the pool, so that one cannot hold the event loop for long.
 */
export const syncReadKeysMax = 64;
/** Rows one native call of `scanHashPrefixes` reads at most (it starts at 16 and grows: a leaf holds a few). */
const scanBatchRowsMax = 1024;

const hlcMetaName = 'hlc';
/** The layout version (see the top comment). */
const formatMetaName = 'format';
const layoutFormat = 2;
/** Bytes of a seq: in an `s` row key and at the end of an `e` row value. */
const seqBytes = 8;
/** Index rows one delta-scan batch reads (one nextv): large, to amortise the native call. */
const scanSinceBatchRows = 1024;
/** Entries one migration batch renumbers. */
const migrateBatchRows = 4096;
/** The marker of a saved snapshot (see the top comment and saveSnapshot). */
const snapshotMetaName = 'snapshot';
/** The snapshot file, in the LevelDB directory. */
const snapshotFileName = 'CKV-SNAPSHOT';
/** Marker layout: format, whether an HLC row was moved, that row (8 bytes), SHA-256 of the file. */
const snapshotMarkerFormat = 1;
const snapshotMarkerBytes = 1 + 1 + 8 + 32;
/**
 * The seq the snapshot was saved at (8 bytes), put with its marker and deleted by remove():
 * a row of its own, so the marker stays the one older versions read (they forget a snapshot
 * that is not current, marker and all, at their open; they ignore this row).
 */
const snapshotSeqMetaName = 'snapshot-seq';
/** The tombstone count the last write() gave (WriteIndex.tombstones): that write's last seq, then the count (8 bytes each). */
const tombstonesMetaName = 'tombstones';
const tombstonesRowBytes = 16;
/**
 * What a bulk scan's iterator reads per native call (classic-level's `highWaterMarkBytes`):
 * a call stops after this many bytes or the rows asked for, whichever comes first. The
 * default, 16 KiB, is ~100 rows of a 100-byte value, so a scan of 100k rows took ~1,000
 * thread-pool round trips; with 1 MiB a nextv of 1024 rows is one call. The gain is small
 * (raw nextv over 100k rows: ~10 % at best; classic-level making one Buffer per row is most of
 * a scan's cost, docs/measurements.md, 2026-12-03 (late evening)). Memory per open iterator:
 * this plus at most one row (a value is at most valueBytesMax), as before.
 * Typed loosely: abstract-level's option types do not name classic-level's own option.
 */
const readAhead: object = { highWaterMarkBytes: 1024 * 1024 };
/** valueBatches reads the next batch ahead only after a batch of at most this many bytes (2 MiB: any batch of rows under 1 MiB each). */
const readAheadAfterBytesMax = 2 * 1024 * 1024;
const hexDigits = Buffer.from('0123456789abcdef');
/**
 * A key range past every row (each root key starts with a sublevel's '!', 0x21): compacting
 * it moves no table, but LevelDB's CompactRange first writes the memtable to a table (see
 * flushMemtable).
 */
const pastEveryRow = { start: new Uint8Array([0xff, 0xff]), end: new Uint8Array([0xff, 0xff, 0xff]) };
/** write()'s assertion message, made once (it is checked for every entry). */
const storedKeyLengthMessage = `a stored key has 1..${keyBytesMax} bytes`;
/** The value of every `k` row. */
const emptyBytes = new Uint8Array(0);

/**
 * Writes LevelDB's memtable (up to its 4 MiB write buffer of the latest writes) to a table and
 * starts an empty log, at a clean stop (saveSnapshot). Otherwise the next open replays the log
 * into a memtable and writes that table itself, on the start's critical path: ~10 ms for 3 MiB
 * of rows, with the start idle meanwhile (docs/measurements.md, 2026-12-03 (night)). The work
 * is the same, moved to the stop. classic-level's compactRange; `level`'s types do not name it.
 */
async function flushMemtable(db: Level<Uint8Array, Uint8Array>): Promise<void> {
  const compactRange = (db as unknown as { compactRange?: (start: Uint8Array, end: Uint8Array) => Promise<void> }).compactRange;
  if (compactRange !== undefined) await compactRange.call(db, pastEveryRow.start, pastEveryRow.end);
}

function openLayout(location: string) {
  // The root only takes pre-encoded rows (write, getMany): bytes in, bytes out.
  const db = new Level<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' });
  const e = db.sublevel<string, Uint8Array>('e', { keyEncoding: 'utf8', valueEncoding: 'view' });
  const k = db.sublevel<Uint8Array, Uint8Array>('k', { keyEncoding: 'view', valueEncoding: 'view' });
  const m = db.sublevel<string, Uint8Array>('m', { keyEncoding: 'utf8', valueEncoding: 'view' });
  const s = db.sublevel<Uint8Array, Uint8Array>('s', { keyEncoding: 'view', valueEncoding: 'view' });
  const h = db.sublevel<string, Uint8Array>('h', { keyEncoding: 'utf8', valueEncoding: 'view' });
  const rows = {
    e: Buffer.from(e.prefix),
    k: Buffer.from(k.prefix),
    s: Buffer.from(s.prefix),
    hlc: Buffer.from(m.prefix + hlcMetaName),
    snapshot: Buffer.from(m.prefix + snapshotMetaName),
    snapshotSeq: Buffer.from(m.prefix + snapshotSeqMetaName),
    tombstones: Buffer.from(m.prefix + tombstonesMetaName),
  };
  return { db, e, k, m, s, h, rows };
}

type Layout = ReturnType<typeof openLayout>;

/** How writeBatch's `fill` adds rows: to the batch, through views of the scratch memory. */
interface RowWriter {
  put(key: Uint8Array, value: Uint8Array): void;
  del(key: Uint8Array): void;
  keyView(length: number): Uint8Array;
  valueView(length: number): Uint8Array;
}

export class LevelStore implements Store {
  /** Set by open() (shared by concurrent callers), cleared by close(). */
  private opening: Promise<Layout> | undefined;
  private layout: Layout | undefined;
  /** The greatest seq written (read at open, then kept up to date by write). */
  private seqLast = 0;
  /** Where write() encodes each row before the batch copies it (batch-rows.ts). */
  private readonly scratch = new RowScratch();
  /** The snapshot file's read, started by prefetchSnapshot(), taken by the next readSnapshot() (dropped by saveSnapshot and close). */
  private snapshotRead: Promise<SnapshotFileRead> | undefined;

  constructor(readonly location: string) {}

  /**
   * Starts reading the snapshot file now, for the first readSnapshot() to take. A node calls it
   * before open(): LevelDB's open (its log's recovery) and the ~2.6 MiB read then run side by
   * side on libuv's pool, where readSnapshot would read the file only after the open, its
   * marker row and the replica's other reads, with the main thread idle meanwhile (~10-25 ms
   * of a restart here, docs/measurements.md, 2026-12-06 (8)). What was read counts only if its
   * SHA-256 is the one the marker row names (as a read at readSnapshot time), so a file saved
   * or removed in between is never taken for the marker's. Dropped by saveSnapshot() and
   * close(). Idempotent until taken.
   */
  prefetchSnapshot(): void {
    this.snapshotRead ??= readSnapshotFile(path.join(this.location, snapshotFileName));
  }

  async open(): Promise<void> {
    if (this.opening === undefined) {
      const opening = this.openDb();
      this.opening = opening;
      opening.then(
        (layout) => {
          if (this.opening === opening) this.layout = layout;
        },
        () => {
          if (this.opening === opening) this.opening = undefined;
        },
      );
    }
    await this.opening;
  }

  async close(): Promise<void> {
    this.snapshotRead = undefined;
    const opening = this.opening;
    if (opening === undefined) return;
    this.opening = undefined;
    this.layout = undefined;
    let layout: Layout;
    try {
      layout = await opening;
    } catch {
      return; // it never opened
    }
    await layout.db.close();
  }

  async get(key: string): Promise<Entry | undefined> {
    const [entry] = await this.getMany([key]);
    return entry;
  }

  async getMany(keys: readonly string[], keyHashes?: readonly HashText[], seqsOut?: (number | undefined)[]): Promise<(Entry | undefined)[]> {
    if (keys.length === 0) return [];
    const { db, rows } = this.live();
    const keyBytes = keys.map((key) => Buffer.byteLength(key, 'utf8'));
    let total = 0;
    for (const bytes of keyBytes) total += rows.e.byteLength + hashPrefixDigits + bytes;
    const arena = Buffer.allocUnsafe(total);
    const rowKeys: Uint8Array[] = [];
    let at = 0;
    for (let i = 0; i < keys.length; i++) {
      const end = writeEntryRowKey(arena, at, rows.e, keyHashes?.[i] ?? keyHashText(keys[i]!), keys[i]!, keyBytes[i]!);
      rowKeys.push(byteRange(arena, at, end));
      at = end;
    }
    // On this thread when small (syncReadKeysMax); a read error throws here as it would reject there.
    const values = rowKeys.length <= syncReadKeysMax ? rowKeys.map((rowKey) => db.getSync(rowKey)) : await db.getMany(rowKeys);
    return values.map((bytes, i) => {
      if (bytes === undefined) {
        seqsOut?.push(undefined);
        return undefined;
      }
      const stored = decodeStoredSeq(keys[i]!, bytes);
      seqsOut?.push(stored.seq);
      return stored.entry;
    });
  }

  async write(entries: readonly Entry[], hlcLast: Hlc, keyHashes?: readonly HashText[], index?: WriteIndex): Promise<void> {
    if (index === undefined) {
      // Without the replica's numbering (tests, tools): number after our last seq and find
      // the rows to delete ourselves. Not safe against a concurrent write; the replica never
      // comes here.
      const previousSeqs: (number | undefined)[] = [];
      await this.getMany(
        entries.map((entry) => entry.key),
        keyHashes,
        previousSeqs,
      );
      index = { seqFirst: this.seqLast + 1, previousSeqs };
    }
    assert(index.seqFirst > this.seqLast, `seq ${index.seqFirst} is not after the last stored seq ${this.seqLast}`);
    assert(index.previousSeqs.length === entries.length, 'a previous seq per entry');
    const encodings = index.encodings;
    assert(encodings === undefined || encodings.length === entries.length, 'an encoding (or undefined) per entry');
    await this.writeBatch(entries.length, hlcLast, index, ({ put, del, keyView, valueView }, rows, scratch) => {
      const keyRow = scratch.keyBytes;
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!;
        const seq = index.seqFirst + i;
        const keyBytes = Buffer.byteLength(entry.key, 'utf8');
        // The key scratch holds the longest row key of a valid key (a longer one would be cut).
        assert(keyBytes > 0 && keyBytes <= keyBytesMax, storedKeyLengthMessage);
        // The `e` row: its value is the entry, then its seq. A received entry's bytes, when
        // they came along (WriteIndex.encodings), are copied as they are: the same bytes.
        const encoding = encodings?.[i];
        const valueRow = scratch.valueBytesFor((encoding === undefined ? encodedEntryBytes(entry, keyBytes) : encoding.byteLength) + seqBytes);
        let entryEnd: number;
        if (encoding === undefined) entryEnd = encodeEntryInto(valueRow, 0, entry, keyBytes);
        else {
          valueRow.set(encoding, 0);
          entryEnd = encoding.byteLength;
        }
        const valueEnd = writeSeq(valueRow, entryEnd, seq);
        put(keyView(writeEntryRowKey(keyRow, 0, rows.e, keyHashes?.[i] ?? keyHashText(entry.key), entry.key, keyBytes)), valueView(valueEnd));
        // The index row's value is the entry: the same bytes as the `e` row's, without the seq.
        keyRow.set(rows.s, 0);
        put(keyView(writeSeq(keyRow, rows.s.byteLength, seq)), valueView(valueEnd - seqBytes));
        const previous = index.previousSeqs[i];
        if (previous !== undefined) del(keyView(writeSeq(keyRow, rows.s.byteLength, previous)));
        keyRow.set(rows.k, 0);
        put(keyView(writeUtf16be(keyRow, rows.k.byteLength, entry.key)), emptyBytes);
      }
    });
  }

  /**
   * write() for received entries kept as their bytes (Store.writeReceived): the same rows, each
   * made from the entry's bytes (the `e` row's key takes the key's bytes as they are, the `k`
   * row's UTF-16BE is the bytes themselves with a zero before each when the key is ASCII, and
   * the values are the entry's bytes) instead of from an entry object.
   */
  async writeReceived(received: ReceivedRows, hlcLast: Hlc, keyHashes: readonly HashText[], index: WriteIndex): Promise<void> {
    const { batches, indexes } = received;
    const count = indexes.length;
    assert(index.seqFirst > this.seqLast, `seq ${index.seqFirst} is not after the last stored seq ${this.seqLast}`);
    assert(batches.length === count && keyHashes.length === count && index.previousSeqs.length === count, 'a batch, a key hash and a previous seq per entry');
    await this.writeBatch(count, hlcLast, index, ({ put, del, keyView, valueView }, rows, scratch) => {
      const keyRow = scratch.keyBytes;
      for (let w = 0; w < count; w++) {
        const entries = batches[w]!;
        const i = indexes[w]!;
        const seq = index.seqFirst + w;
        const bytes = entries.bytes;
        const keyStart = entries.keyStart(i);
        const keyEnd = entries.keyEnd(i);
        assert(keyEnd > keyStart && keyEnd - keyStart <= keyBytesMax, storedKeyLengthMessage);
        const valueRow = scratch.valueBytesFor(entries.encodingBytes(i) + seqBytes);
        const valueEnd = writeSeq(valueRow, entries.copyEncoding(i, valueRow, 0), seq);
        keyRow.set(rows.e, 0);
        let at = writeHashPrefix(keyRow, rows.e.byteLength, keyHashes[w]!);
        for (let b = keyStart; b < keyEnd; b++) keyRow[at++] = bytes[b]!;
        put(keyView(at), valueView(valueEnd));
        keyRow.set(rows.s, 0);
        put(keyView(writeSeq(keyRow, rows.s.byteLength, seq)), valueView(valueEnd - seqBytes));
        const previous = index.previousSeqs[w];
        if (previous !== undefined) del(keyView(writeSeq(keyRow, rows.s.byteLength, previous)));
        keyRow.set(rows.k, 0);
        if (entries.keyIsAscii(i)) {
          at = rows.k.byteLength;
          for (let b = keyStart; b < keyEnd; b++) {
            keyRow[at++] = 0;
            keyRow[at++] = bytes[b]!;
          }
        } else at = writeUtf16be(keyRow, rows.k.byteLength, entries.key(i));
        put(keyView(at), emptyBytes);
      }
    });
  }

  /**
   * One atomic batch of `count` entries numbered from index.seqFirst: `fill` puts their rows,
   * each encoded into the scratch memory (batch-rows.ts) and handed over as a view of it (a
   * batch that does not copy what it is given gets copies); then the HLC bound, and the
   * tombstone count with the last seq (its row deleted when the count is not known), through
   * the public put(): the batch then counts as not empty, and write() writes it.
   */
  private async writeBatch(count: number, hlcLast: Hlc, index: WriteIndex, fill: (writer: RowWriter, rows: Layout['rows'], scratch: RowScratch) => void): Promise<void> {
    const { db, rows } = this.live();
    const batch = db.batch();
    const { put, del, copies } = batchRows(batch);
    const seqLast = count > 0 ? Math.max(this.seqLast, index.seqFirst + count - 1) : this.seqLast;
    const scratch = this.scratch;
    const keyView = copies ? (length: number) => scratch.keyView(length) : (length: number) => scratch.keyCopy(length);
    const valueView = copies ? (length: number) => scratch.valueView(length) : (length: number) => scratch.valueCopy(length);
    try {
      fill({ put, del, keyView, valueView }, rows, scratch);
      this.putWriteTail(batch, rows, hlcLast, index.tombstones, seqLast);
    } catch (error) {
      await batch.close();
      throw error;
    }
    await batch.write();
    this.seqLast = seqLast;
  }

  /** writeBatch's last rows (see there). */
  private putWriteTail(batch: ReturnType<Layout['db']['batch']>, rows: Layout['rows'], hlcLast: Hlc, tombstones: number | undefined, seqLast: number): void {
    const hlcRow = Buffer.allocUnsafe(rows.hlc.byteLength + 8);
    hlcRow.set(rows.hlc, 0);
    hlcRow.writeBigUInt64BE(hlcLast, rows.hlc.byteLength);
    batch.put(byteRange(hlcRow, 0, rows.hlc.byteLength), byteRange(hlcRow, rows.hlc.byteLength, hlcRow.byteLength));
    if (tombstones === undefined) batch.del(rows.tombstones);
    else {
      const count = Buffer.allocUnsafe(tombstonesRowBytes);
      count.writeBigUInt64BE(BigInt(seqLast), 0);
      count.writeBigUInt64BE(BigInt(tombstones), 8);
      batch.put(rows.tombstones, count);
    }
  }

  /** One batch: each entry's e, k and s rows deleted, and 'hlc' put back (a snapshot goes stale, and cannot be replayed: no row says what went). */
  async remove(rows: readonly RemovedRow[], hlcLast: Hlc): Promise<void> {
    const { db, rows: prefixes } = this.live();
    const batch = db.batch();
    try {
      for (const row of rows) {
        const keyBytes = Buffer.byteLength(row.key, 'utf8');
        const eKey = Buffer.allocUnsafe(prefixes.e.byteLength + hashPrefixDigits + keyBytes);
        batch.del(eKey.subarray(0, writeEntryRowKey(eKey, 0, prefixes.e, row.keyHash, row.key, keyBytes)));
        const sKey = Buffer.allocUnsafe(prefixes.s.byteLength + seqBytes);
        sKey.set(prefixes.s, 0);
        batch.del(sKey.subarray(0, writeSeq(sKey, prefixes.s.byteLength, row.seq)));
        const kKey = Buffer.allocUnsafe(prefixes.k.byteLength + 2 * row.key.length);
        kKey.set(prefixes.k, 0);
        batch.del(kKey.subarray(0, writeUtf16be(kKey, prefixes.k.byteLength, row.key)));
      }
      const hlc = Buffer.allocUnsafe(8);
      hlc.writeBigUInt64BE(hlcLast, 0);
      batch.put(prefixes.hlc, hlc);
      batch.del(prefixes.snapshotSeq);
    } catch (error) {
      await batch.close();
      throw error;
    }
    await batch.write();
  }

  async readSeqLast(): Promise<number> {
    this.live();
    return this.seqLast;
  }

  /** One iterator over `s` after `seqAfter`, read in batches (nextv): the rows hold the entries. */
  async *scanSince(seqAfter: number, seqUpTo: number): AsyncIterable<SequencedEntry> {
    if (seqUpTo <= seqAfter) return;
    const iterator = this.live().s.iterator({ gt: seqKey(seqAfter), lte: seqKey(seqUpTo), ...readAhead });
    try {
      for (;;) {
        const rows = await iterator.nextv(scanSinceBatchRows);
        if (rows.length === 0) break;
        for (const [seqRow, bytes] of rows) {
          const seq = readSeq(seqRow, 0);
          let entry: Entry;
          try {
            entry = decodeEntry(plainView(bytes));
          } catch (error) {
            const reason = error instanceof Error ? error.message : String(error);
            throw new MalformedError(`index row ${seq} does not decode: ${reason}`);
          }
          yield { seq, entry };
        }
      }
    } finally {
      await iterator.close();
    }
  }

  /** scanSince's rows as they are stored (an `s` row's value is the encoded entry), a nextv batch at a time. */
  async *scanSinceEncoded(seqAfter: number, seqUpTo: number): AsyncIterable<readonly Uint8Array[]> {
    if (seqUpTo <= seqAfter) return;
    yield* valueBatches(this.live().s.iterator({ gt: seqKey(seqAfter), lte: seqKey(seqUpTo), keys: false, ...readAhead }), (bytes) => bytes);
  }

  /** Every `e` row's value without its seq suffix (the encoded entry), a nextv batch at a time. */
  async *scanAllEncoded(): AsyncIterable<readonly Uint8Array[]> {
    yield* valueBatches(this.live().e.iterator({ keys: false, ...readAhead }), (bytes) => {
      if (bytes.byteLength <= seqBytes) throw new MalformedError(`stored entry row of ${bytes.byteLength} bytes holds no entry`);
      return byteRange(bytes, 0, bytes.byteLength - seqBytes);
    });
  }

  async readHlc(): Promise<Hlc> {
    const { m } = this.live();
    // From saveSnapshot to the next write the bound sits in the snapshot marker.
    const bytes = (await m.get(hlcMetaName)) ?? movedHlc(await m.get(snapshotMetaName));
    if (bytes === undefined) return 0n;
    if (bytes.byteLength !== 8) throw new MalformedError(`stored HLC is ${bytes.byteLength} bytes; expected 8 bytes`);
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
  }

  async *scanHashPrefixes(hexPrefixes: readonly string[]): AsyncIterable<Entry> {
    if (hexPrefixes.length === 0) return;
    const iterator = this.live().e.iterator({ gte: hexPrefixes[0]!, ...readAhead });
    try {
      for (const prefix of hexPrefixes) {
        assert(/^[0-9a-f]{1,8}$/.test(prefix), `hash prefix must be 1 to 8 lowercase hex digits: ${prefix}`);
        iterator.seek(prefix);
        // Rows come in batches (nextv: one native call each), not one awaited call a row.
        let batchRows = 16;
        for (let more = true; more; ) {
          const rows = await iterator.nextv(batchRows);
          if (rows.length === 0) break; // the end (a batch may hold fewer rows than asked)
          for (const [storedKey, bytes] of rows) {
            if (!storedKey.startsWith(prefix)) {
              more = false;
              break;
            }
            yield decodeStored(storedKey.slice(hashPrefixDigits), bytes);
          }
          batchRows = Math.min(batchRows * 4, scanBatchRowsMax);
        }
      }
    } finally {
      await iterator.close();
    }
  }

  async *scanHash(hexPrefix: string): AsyncIterable<Entry> {
    assert(/^[0-9a-f]{0,8}$/.test(hexPrefix), `hash prefix must be 0 to 8 lowercase hex digits: ${hexPrefix}`);
    // 'g' sorts after every hex digit but not after every key character, so a full-length
    // prefix (where the key follows) is bounded by checking each row instead.
    const full = hexPrefix.length === hashPrefixDigits;
    const range = hexPrefix === '' ? {} : full ? { gte: hexPrefix } : { gte: hexPrefix, lt: hexPrefix + 'g' };
    for await (const [storedKey, bytes] of this.live().e.iterator({ ...range, ...readAhead })) {
      if (full && !storedKey.startsWith(hexPrefix)) break;
      yield decodeStored(storedKey.slice(hashPrefixDigits), bytes);
    }
  }

  async *scanKeys(options: ScanKeysOptions = {}): AsyncIterable<Entry> {
    const { prefix = '', startAfter, limit } = options;
    if (limit !== undefined && limit <= 0) return;
    const { db, e, k } = this.live();
    const range =
      startAfter !== undefined && startAfter >= prefix ? { gt: utf16be(startAfter) } : { gte: utf16be(prefix) };
    const snapshot = db.snapshot();
    try {
      let keys: string[] = [];
      let remaining = limit ?? Infinity;
      const flush = async (): Promise<Entry[]> => {
        const values = await e.getMany(
          keys.map((key) => keyHashPrefix(key) + key),
          { snapshot },
        );
        const entries = keys.map((key, i) => {
          const bytes = values[i];
          if (bytes === undefined) throw new MalformedError(`key index lists ${JSON.stringify(key)} but it has no entry`);
          return decodeStored(key, bytes);
        });
        keys = [];
        return entries;
      };
      for await (const indexKey of k.keys({ ...range, snapshot })) {
        const key = fromUtf16be(indexKey);
        if (!key.startsWith(prefix)) break; // keys with the prefix are contiguous
        keys.push(key);
        remaining--;
        if (remaining === 0) break;
        if (keys.length === scanKeysBatchKeys) yield* await flush();
      }
      if (keys.length > 0) yield* await flush();
    } finally {
      await snapshot.close();
    }
  }

  /**
   * The file first, durable (written aside, fsynced, renamed over, directory fsynced), then
   * one synced batch: the marker (with the HLC row and the file's SHA-256) in, the HLC row
   * out. Synced, so an OS crash cannot keep the marker and lose an earlier batch the snapshot
   * describes; a crash before the batch leaves a file without a marker, which counts as none.
   */
  async saveSnapshot(bytes: Uint8Array, options: { flush?: boolean } = {}): Promise<void> {
    const { db, m, s, rows } = this.live();
    this.snapshotRead = undefined; // read before this save: never the file a later readSnapshot should see
    const hlc = (await m.get(hlcMetaName)) ?? movedHlc(await m.get(snapshotMetaName));
    const file = path.join(this.location, snapshotFileName);
    const temporary = `${file}.tmp`;
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
    await syncDirectory(this.location);
    const marker = new Uint8Array(snapshotMarkerBytes);
    marker[0] = snapshotMarkerFormat;
    if (hlc !== undefined && hlc.byteLength === 8) {
      marker[1] = 1;
      marker.set(hlc, 2);
    }
    marker.set(createHash('sha256').update(bytes).digest(), 10);
    // The seq of the last index row, not this.seqLast: a purge may have removed the row of the
    // greatest seq, and after a restart the replica numbers from the last row left (openDb),
    // so that seq is given again and a replay must start below it.
    const lastRow = await s.keys({ reverse: true, limit: 1 }).all();
    const seqAt = Buffer.allocUnsafe(8);
    seqAt.writeBigUInt64BE(BigInt(lastRow.length === 0 ? 0 : readSeq(lastRow[0]!, 0)), 0);
    // On the root with the rows' full keys: a sublevel's batch takes no `sync` option.
    await db.batch(
      [
        { type: 'put', key: rows.snapshot, value: marker },
        { type: 'put', key: rows.snapshotSeq, value: seqAt },
        { type: 'del', key: rows.hlc },
      ],
      { sync: true },
    );
    // The snapshot is saved: a flush that fails only leaves the next open its log to replay.
    if (options.flush !== false) await flushMemtable(db).catch(() => undefined);
  }

  /** LevelDB's memtable to a table (flushMemtable): the next open has no log to replay. */
  async flush(): Promise<void> {
    await flushMemtable(this.live().db);
  }

  /**
   * Current iff the marker is there, the HLC row is still absent (see saveSnapshot), and the
   * file matches the marker's SHA-256. A current snapshot is left in place: it stays current
   * until the next write() or remove(), each of which puts the HLC row back in the same batch
   * that changes rows (a batch a crash keeps made it stale; one a crash lost left the rows as
   * the snapshot describes them), so a node killed after a start and before its first write
   * starts from it again instead of scanning. Anything else (stale, a file missing or not the
   * marker's) is forgotten: one synced batch deletes the marker and puts the HLC row back,
   * then the file is removed.
   */
  async readSnapshot(): Promise<TakenSnapshot> {
    const { db, m, rows } = this.live();
    const file = path.join(this.location, snapshotFileName);
    const prefetched = this.snapshotRead;
    this.snapshotRead = undefined;
    const marker = await m.get(snapshotMetaName);
    if (marker === undefined) {
      await prefetched; // a read in flight: done before the file is removed
      await rm(file, { force: true }); // left by a stop that died before its marker, or a forget that died after
      return { state: 'none' };
    }
    const hlc = await m.get(hlcMetaName);
    if (hlc === undefined) {
      const bytes = await snapshotFileOf(marker, file, prefetched);
      if (bytes !== undefined) return { state: 'current', bytes };
    } else {
      const behind = await this.snapshotBehind(marker, file, prefetched);
      if (behind !== undefined) return behind;
    }
    const moved = movedHlc(marker);
    await db.batch(
      [
        { type: 'del', key: rows.snapshot },
        { type: 'del', key: rows.snapshotSeq },
        ...(hlc === undefined && moved !== undefined ? [{ type: 'put' as const, key: rows.hlc, value: moved }] : []),
      ],
      { sync: true },
    );
    await rm(file, { force: true });
    // A file missing, or not the one the marker names: as if none was saved (the replica scans).
    return hlc !== undefined ? { state: 'stale' } : { state: 'none' };
  }

  /**
   * readSnapshot's 'behind': the marker's file is intact, the seq it was saved at is known
   * (no remove() since), and the last write() gave its tombstone count and came after it
   * (a count from before the snapshot, or one a write by an older version left behind,
   * does not match the last seq).
   */
  private async snapshotBehind(marker: Uint8Array, file: string, prefetched: Promise<SnapshotFileRead> | undefined): Promise<TakenSnapshot | undefined> {
    const { m } = this.live();
    const seqRow = await m.get(snapshotSeqMetaName);
    const countRow = await m.get(tombstonesMetaName);
    if (seqRow === undefined || seqRow.byteLength !== 8 || countRow === undefined || countRow.byteLength !== tombstonesRowBytes) return undefined;
    const seqAt = Number(Buffer.from(seqRow.buffer, seqRow.byteOffset, 8).readBigUInt64BE(0));
    const counted = Buffer.from(countRow.buffer, countRow.byteOffset, tombstonesRowBytes);
    const countSeq = Number(counted.readBigUInt64BE(0));
    if (countSeq !== this.seqLast || countSeq <= seqAt) return undefined;
    const bytes = await snapshotFileOf(marker, file, prefetched);
    return bytes === undefined ? undefined : { state: 'behind', bytes, seqAt, tombstones: Number(counted.readBigUInt64BE(8)) };
  }

  async getMeta(name: string): Promise<Uint8Array | undefined> {
    const bytes = await this.live().m.get(name);
    return bytes === undefined ? undefined : plainView(bytes).slice();
  }

  async putMeta(name: string, value: Uint8Array): Promise<void> {
    await this.live().m.put(name, value);
  }

  /** Delivery rows: one batch on the `h` sublevel, in order (LevelDB applies a batch atomically). */
  async writeHints(ops: readonly HintRowOp[]): Promise<void> {
    if (ops.length === 0) return;
    await this.live().h.batch(ops.map((op) => (op.value === undefined ? { type: 'del' as const, key: op.key } : { type: 'put' as const, key: op.key, value: op.value })));
  }

  async *scanHints(): AsyncIterable<HintRowBytes> {
    for await (const [key, value] of this.live().h.iterator()) yield { key, value: plainView(value).slice() };
  }

  /**
   * Sum of the files in the directory (LevelDB keeps no subdirectories). The files are stat'ed
   * all at once: one after another, each stat waited for an event-loop turn of its own, and
   * while a catch-up applies (turns of 20-130 ms) a Status took 200-350 ms.
   */
  async sizeBytes(): Promise<number> {
    const sizes = await Promise.all(
      (await readdir(this.location)).map(async (name) => {
        try {
          const stats = await stat(path.join(this.location, name));
          return stats.isFile() ? stats.size : 0;
        } catch (error) {
          // Compaction may delete a file between readdir and stat.
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
          return 0;
        }
      }),
    );
    return sizes.reduce((sum, size) => sum + size, 0);
  }

  private async openDb(): Promise<Layout> {
    await mkdir(this.location, { recursive: true });
    const layout = openLayout(this.location);
    try {
      await layout.db.open();
    } catch (error) {
      if (isLockedError(error)) throw new StoreLockedError(this.location);
      throw error;
    }
    try {
      const format = await layout.m.get(formatMetaName);
      if (format !== undefined && format[0]! > layoutFormat) {
        throw new MalformedError(`store layout format ${format[0]} is newer than this version's ${layoutFormat}`);
      }
      if (format === undefined || format[0] !== layoutFormat) await migrateToFormat2(layout);
      const last = await layout.s.keys({ reverse: true, limit: 1 }).all();
      this.seqLast = last.length === 0 ? 0 : readSeq(last[0]!, 0);
    } catch (error) {
      await layout.db.close();
      throw error;
    }
    return layout;
  }

  private live(): Layout {
    assert(this.layout !== undefined, `level store ${this.location} is not open`);
    return this.layout;
  }
}

/**
 * Bring a directory without the format marker to format 2 (see the top comment): clear the
 * index, renumber every entry 1..n in hash order with its index row, then put the marker.
 * Entries already carrying a seq (a migration that crashed midway) are renumbered too.
 */
async function migrateToFormat2(layout: Layout): Promise<void> {
  const { db, e, s, m, rows } = layout;
  await s.clear();
  let seq = 0;
  const iterator = e.iterator(readAhead);
  try {
    for (;;) {
      const batchRows = await iterator.nextv(migrateBatchRows);
      if (batchRows.length === 0) break;
      const batch = db.batch();
      for (const [storedKey, bytes] of batchRows) {
        const { entry } = decodeStoredSeq(storedKey.slice(hashPrefixDigits), bytes);
        seq++;
        const entryBytes = encodeEntry(entry);
        const value = Buffer.allocUnsafe(entryBytes.byteLength + seqBytes);
        value.set(entryBytes, 0);
        writeSeq(value, entryBytes.byteLength, seq);
        batch.put(Buffer.concat([rows.e, Buffer.from(storedKey, 'utf8')]), value);
        const sKey = Buffer.allocUnsafe(rows.s.byteLength + seqBytes);
        sKey.set(rows.s, 0);
        writeSeq(sKey, rows.s.byteLength, seq);
        batch.put(sKey, entryBytes);
      }
      await batch.write();
    }
  } finally {
    await iterator.close();
  }
  await m.put(formatMetaName, Uint8Array.of(layoutFormat));
}

/**
 * An iterator's values, a nextv batch at a time, each batch's next asked for before the batch
 * is handed out: LevelDB reads it on the thread pool while the caller works on this one (the
 * start scan hashes every entry; a sync responder frames and sends). Awaiting each nextv only
 * when the caller came back left the two in turn: a 100k-entry start scan took 210-250 ms
 * against 184-208 ms read ahead (docs/measurements.md, 2026-12-05 (morning)). One batch ahead
 * at most (an iterator takes one nextv at a time), and only after a batch of at most
 * `readAheadAfterBytesMax`: a batch is up to readAhead's 1 MiB plus one row, and a row may hold
 * a 64 MiB value, so reading ahead of such a batch could hold two of them at once. With it, a
 * scan holds at most what it held before plus one small batch.
 */
async function* valueBatches(
  iterator: { nextv(size: number): Promise<[unknown, Uint8Array][]>; close(): Promise<void> },
  entryOf: (bytes: Uint8Array) => Uint8Array,
): AsyncIterable<Uint8Array[]> {
  let ahead: Promise<[unknown, Uint8Array][]> | undefined = iterator.nextv(scanSinceBatchRows);
  try {
    for (;;) {
      const rows: [unknown, Uint8Array][] = await ahead;
      ahead = undefined;
      if (rows.length === 0) return;
      let bytes = 0;
      const batch = rows.map(([, row]) => {
        bytes += row.byteLength;
        return entryOf(row);
      });
      if (bytes <= readAheadAfterBytesMax) {
        ahead = iterator.nextv(scanSinceBatchRows);
        // Awaited in `finally` if the caller stops early; this only keeps a failure there from
        // counting as unhandled meanwhile.
        ahead.catch(() => undefined);
      }
      yield batch;
      ahead ??= iterator.nextv(scanSinceBatchRows);
    }
  } finally {
    // The read in flight ends before the iterator closes (abstract-level's close() would wait for
    // it too; this does not rely on that). Its failure no longer matters.
    if (ahead !== undefined) await ahead.catch(() => undefined);
    await iterator.close();
  }
}

/** A seq as 8 bytes big-endian at `offset`; returns the end. Seqs stay below 2^53. */
/**
 * The seq as 8 bytes big-endian at `offset`; returns the end. Byte by byte: Buffer's
 * writeUInt32BE checks its arguments in JavaScript, ~0.5 us a call on the cold code of a
 * restarted node's catch-up (two seqs a row). The caller has sized `target`.
 */
function writeSeq(target: Uint8Array, offset: number, seq: number): number {
  if (!(Number.isSafeInteger(seq) && seq >= 0)) assert(false, `seq ${seq} is not a non-negative safe integer`);
  const high = Math.floor(seq / 2 ** 32);
  const low = seq >>> 0;
  target[offset] = high >>> 24;
  target[offset + 1] = (high >>> 16) & 0xff;
  target[offset + 2] = (high >>> 8) & 0xff;
  target[offset + 3] = high & 0xff;
  target[offset + 4] = low >>> 24;
  target[offset + 5] = (low >>> 16) & 0xff;
  target[offset + 6] = (low >>> 8) & 0xff;
  target[offset + 7] = low & 0xff;
  return offset + seqBytes;
}

function readSeq(bytes: Uint8Array, offset: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, seqBytes);
  return view.getUint32(0) * 2 ** 32 + view.getUint32(4);
}

function seqKey(seq: number): Uint8Array {
  const key = Buffer.allocUnsafe(seqBytes);
  writeSeq(key, 0, seq);
  return key;
}

/** The snapshot file's bytes, none (no such file), or why it could not be read. */
type SnapshotFileRead = { bytes: Uint8Array } | { bytes: undefined } | { error: unknown };

/**
 * The snapshot file's bytes if the marker names them (its format, length and SHA-256); undefined
 * if missing or not the marker's. What `prefetched` read when given (LevelStore.prefetchSnapshot),
 * else read now.
 */
async function snapshotFileOf(marker: Uint8Array, file: string, prefetched: Promise<SnapshotFileRead> | undefined): Promise<Uint8Array | undefined> {
  if (marker.byteLength !== snapshotMarkerBytes || marker[0] !== snapshotMarkerFormat) return undefined;
  const read = await (prefetched ?? readSnapshotFile(file));
  if ('error' in read) throw read.error;
  const { bytes } = read;
  if (bytes === undefined) return undefined;
  return Buffer.compare(createHash('sha256').update(bytes).digest(), marker.subarray(10)) === 0 ? bytes : undefined;
}

/** Reads the snapshot file; never rejects (a prefetch nobody takes must not be an unhandled rejection). */
async function readSnapshotFile(file: string): Promise<SnapshotFileRead> {
  try {
    // The read buffer itself (the file's own memory, offset 0), not a copy of it: the tree
    // keeps its levels there (decodeSnapshot). A copy of ~2.6 MiB cost a start ~10 ms on a
    // VM where fresh memory is slow to touch (docs/measurements.md, 2026-12-06 (5)).
    const read = await readFile(file);
    return { bytes: new Uint8Array(read.buffer, read.byteOffset, read.byteLength) };
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? { bytes: undefined } : { error };
  }
}

/** The HLC row a snapshot marker moved aside, if any. */
function movedHlc(marker: Uint8Array | undefined): Uint8Array | undefined {
  if (marker === undefined || marker.byteLength !== snapshotMarkerBytes || marker[1] !== 1) return undefined;
  return marker.slice(2, 10);
}

/** fsync a directory, so a rename in it is durable. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** classic-level reports a held lock as LEVEL_DATABASE_NOT_OPEN caused by LEVEL_LOCKED. */
function isLockedError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const causeCode = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return code === 'LEVEL_LOCKED' || (code === 'LEVEL_DATABASE_NOT_OPEN' && causeCode === 'LEVEL_LOCKED');
}

/**
 * Decode an entry read from disk. Level hands out Buffers; decoding a plain Uint8Array view
 * makes the entry's value a plain, copied Uint8Array (Buffer#slice would not copy).
 */
function decodeStored(key: string, bytes: Uint8Array): Entry {
  return decodeStoredSeq(key, bytes).entry;
}

/**
 * An `e` row: the entry, then its seq (8 bytes; absent only in a format-1 row, which the
 * migration at open reads: seq 0 there).
 */
function decodeStoredSeq(key: string, bytes: Uint8Array): { entry: Entry; seq: number } {
  let entry: Entry;
  let seq = 0;
  try {
    const reader = new ByteReader(plainView(bytes));
    entry = readEntry(reader);
    if (reader.remaining === seqBytes) seq = readSeq(bytes, bytes.byteLength - seqBytes);
    else reader.end();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new MalformedError(`stored entry for key ${JSON.stringify(key)} does not decode: ${reason}`);
  }
  if (entry.key !== key) {
    throw new MalformedError(`stored entry for key ${JSON.stringify(key)} holds key ${JSON.stringify(entry.key)}`);
  }
  return { entry, seq };
}

function plainView(bytes: Uint8Array): Uint8Array {
  return byteRange(bytes, 0, bytes.byteLength);
}

/** An `e` row key at `offset`: the sublevel prefix, 8 hex digits of the key hash, the key. */
function writeEntryRowKey(target: Buffer, offset: number, prefix: Uint8Array, hash: HashText, key: string, keyBytes: number): number {
  target.set(prefix, offset);
  const at = writeHashPrefix(target, offset + prefix.byteLength, hash);
  return at + target.write(key, at, keyBytes, 'utf8');
}

/** The hash's first hashPrefixDigits hex digits at `offset` (an `e` row key's sort prefix); returns the end. */
function writeHashPrefix(target: Uint8Array, offset: number, hash: HashText): number {
  let at = offset;
  for (let i = 0; i < hashPrefixDigits / 2; i++) {
    target[at++] = hexDigits[hash.charCodeAt(i) >> 4]!;
    target[at++] = hexDigits[hash.charCodeAt(i) & 0xf]!;
  }
  return at;
}

/** The key as UTF-16BE at `offset` (a `k` row); returns the end. */
function writeUtf16be(target: Uint8Array, offset: number, text: string): number {
  let at = offset;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    target[at++] = unit >> 8;
    target[at++] = unit & 0xff;
  }
  return at;
}

function utf16be(text: string): Uint8Array {
  const bytes = Buffer.from(text, 'utf16le').swap16();
  return plainView(bytes);
}

function fromUtf16be(bytes: Uint8Array): string {
  // Copy before swapping: the index key buffer belongs to the iterator.
  return Buffer.from(bytes).swap16().toString('utf16le');
}
