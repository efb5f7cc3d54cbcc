/**
 * The production Store: LevelDB through `level` (classic-level). The only importer of `level`.
 *
 * Layout: one database at `location` (keyEncoding 'utf8', valueEncoding 'view'), three sublevels:
 * - `e` entries. Key: keyHashPrefix(key) (8 hex digits) + key. Value: encodeEntry(entry).
 *   Keys sort in hash order, which is Merkle order, so `scanHash(p)` is one range scan
 *   [p, p + 'g'): 'g' sorts after every hex digit, and the 8-digit prefix comes first, so a
 *   prefix of at most 8 digits never matches into the key part.
 * - `k` key-order index. Key: the key as UTF-16BE bytes (keyEncoding 'view'); value empty.
 *   LevelDB compares bytes; UTF-16BE bytes compare like JS strings (UTF-16 code units), as
 *   the Store contract requires, where UTF-8 would put U+E000..U+FFFF after astral
 *   characters. `scanKeys` walks `k` and fetches entries from `e` with getMany in batches,
 *   all from one explicit snapshot so the index and the entries agree.
 * - `m` meta: name -> bytes. 'hlc' holds the HLC bound as 8 bytes big-endian.
 *
 * `write(entries, hlcLast)` is one `db.batch` over e, k and m['hlc'], so after a crash
 * either the whole batch is there or none of it. Nothing is ever deleted: tombstones are
 * entries. A directory held by another process (or another instance in this process)
 * fails to open with LEVEL_LOCKED, which becomes StoreLockedError.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import { decodeEntry, encodeEntry, keyHashPrefix, type Entry } from '../core/entry.js';
import { MalformedError, StoreLockedError, assert } from '../core/errors.js';
import type { Hlc } from '../core/hlc.js';
import type { ScanKeysOptions, Store } from './store.js';

/** Index keys fetched from `e` per getMany: big enough to amortise the native call. */
const scanKeysBatchKeys = 256;

const hashPrefixDigits = 8;
const hlcMetaName = 'hlc';
const emptyBytes = new Uint8Array(0);

function openLayout(location: string) {
  const db = new Level<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' });
  return {
    db,
    e: db.sublevel<string, Uint8Array>('e', { keyEncoding: 'utf8', valueEncoding: 'view' }),
    k: db.sublevel<Uint8Array, Uint8Array>('k', { keyEncoding: 'view', valueEncoding: 'view' }),
    m: db.sublevel<string, Uint8Array>('m', { keyEncoding: 'utf8', valueEncoding: 'view' }),
  };
}

type Layout = ReturnType<typeof openLayout>;

export class LevelStore implements Store {
  /** Set by open() (shared by concurrent callers), cleared by close(). */
  private opening: Promise<Layout> | undefined;
  private layout: Layout | undefined;

  constructor(readonly location: string) {}

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
    const bytes = await this.live().e.get(keyHashPrefix(key) + key);
    return bytes === undefined ? undefined : decodeStored(key, bytes);
  }

  async getMany(keys: readonly string[]): Promise<(Entry | undefined)[]> {
    if (keys.length === 0) return [];
    const values = await this.live().e.getMany(keys.map((key) => keyHashPrefix(key) + key));
    return values.map((bytes, i) => (bytes === undefined ? undefined : decodeStored(keys[i]!, bytes)));
  }

  async write(entries: readonly Entry[], hlcLast: Hlc): Promise<void> {
    const { db, e, k, m } = this.live();
    // One batch across sublevels is one LevelDB WriteBatch: all of it or none of it.
    const batch = db.batch();
    for (const entry of entries) {
      batch.put(keyHashPrefix(entry.key) + entry.key, encodeEntry(entry), { sublevel: e });
      batch.put(utf16be(entry.key), emptyBytes, { sublevel: k });
    }
    batch.put(hlcMetaName, hlcToBytes(hlcLast), { sublevel: m });
    await batch.write();
  }

  async readHlc(): Promise<Hlc> {
    const bytes = await this.live().m.get(hlcMetaName);
    if (bytes === undefined) return 0n;
    if (bytes.byteLength !== 8) throw new MalformedError(`stored HLC is ${bytes.byteLength} bytes; expected 8 bytes`);
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
  }

  async *scanHashPrefixes(hexPrefixes: readonly string[]): AsyncIterable<Entry> {
    if (hexPrefixes.length === 0) return;
    const iterator = this.live().e.iterator({ gte: hexPrefixes[0]! });
    try {
      for (const prefix of hexPrefixes) {
        assert(/^[0-9a-f]{1,8}$/.test(prefix), `hash prefix must be 1 to 8 lowercase hex digits: ${prefix}`);
        iterator.seek(prefix);
        for (;;) {
          const item = await iterator.next();
          if (item === undefined || !item[0].startsWith(prefix)) break;
          yield decodeStored(item[0].slice(hashPrefixDigits), item[1]);
        }
      }
    } finally {
      await iterator.close();
    }
  }

  async *scanHash(hexPrefix: string): AsyncIterable<Entry> {
    assert(/^[0-9a-f]{0,8}$/.test(hexPrefix), `hash prefix must be 0 to 8 lowercase hex digits: ${hexPrefix}`);
    const range = hexPrefix === '' ? {} : { gte: hexPrefix, lt: hexPrefix + 'g' };
    for await (const [storedKey, bytes] of this.live().e.iterator(range)) {
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

  async getMeta(name: string): Promise<Uint8Array | undefined> {
    const bytes = await this.live().m.get(name);
    return bytes === undefined ? undefined : plainView(bytes).slice();
  }

  async putMeta(name: string, value: Uint8Array): Promise<void> {
    await this.live().m.put(name, value);
  }

  /** Sum of the files in the directory (LevelDB keeps no subdirectories). */
  async sizeBytes(): Promise<number> {
    let total = 0;
    for (const name of await readdir(this.location)) {
      try {
        const stats = await stat(path.join(this.location, name));
        if (stats.isFile()) total += stats.size;
      } catch (error) {
        // Compaction may delete a file between readdir and stat.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    return total;
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
    return layout;
  }

  private live(): Layout {
    assert(this.layout !== undefined, `level store ${this.location} is not open`);
    return this.layout;
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
  let entry: Entry;
  try {
    entry = decodeEntry(plainView(bytes));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new MalformedError(`stored entry for key ${JSON.stringify(key)} does not decode: ${reason}`);
  }
  if (entry.key !== key) {
    throw new MalformedError(`stored entry for key ${JSON.stringify(key)} holds key ${JSON.stringify(entry.key)}`);
  }
  return entry;
}

function plainView(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function utf16be(text: string): Uint8Array {
  const bytes = Buffer.from(text, 'utf16le').swap16();
  return plainView(bytes);
}

function fromUtf16be(bytes: Uint8Array): string {
  // Copy before swapping: the index key buffer belongs to the iterator.
  return Buffer.from(bytes).swap16().toString('utf16le');
}

function hlcToBytes(hlc: Hlc): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, hlc);
  return bytes;
}
