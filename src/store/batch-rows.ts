/**
 * How LevelStore.write hands its rows to LevelDB: straight to classic-level's native batch,
 * through one scratch memory reused row after row.
 *
 * classic-level's native batch copies a row's key and value the moment it is added
 * (binding.cc, `batch_put`: each is copied out of the JS memory, then into LevelDB's
 * WriteBatch, before the call returns). So every row of every write can be encoded into the
 * same scratch bytes and handed over through a view of them made once per length, where
 * encoding the rows into an arena per write and making two new views per row (five per
 * entry) cost about as much main-thread CPU as the native calls: a 1,000-entry batch of three
 * rows an entry took ~2 us an entry to build that way and ~1 us this way (a throwaway probe;
 * docs/measurements.md, 2026-12-05 (late night)). The views are what a restarted node catching
 * up allocates most per entry (docs/design-bulk-apply.md).
 *
 * A batch that does not copy what it is given (any other than classic-level's, or a future
 * one whose native add keeps a reference) must get rows of its own: `batchRows` says which,
 * and the scratch then hands out copies.
 */
import { byteRange } from '../core/bytes.js';
import { keyBytesMax } from '../core/limits.js';

/**
 * Scratch for row keys. The longest is a `k` row: a 3-byte prefix and 2 bytes per UTF-16 unit
 * of a key of at most keyBytesMax UTF-8 bytes (so at most that many units); LevelStore.write
 * asserts the key's length.
 */
const keyScratchBytes = 4 * keyBytesMax;
/**
 * Scratch for row values (an encoded entry and its seq). A larger row gets memory of its own
 * (values reach valueBytesMax, 64 MiB): the scratch a store keeps stays this small.
 */
const valueScratchBytes = 64 * 1024;
/**
 * Views are kept for lengths up to this (at most this many views a scratch, ~70 bytes each);
 * a longer row gets a new view, whose cost is small beside copying that many bytes.
 */
const viewsKeptLengthMax = 2048;

type Put = (key: Uint8Array, value: Uint8Array) => void;
type Del = (key: Uint8Array) => void;

/**
 * The batch's own row calls. classic-level's ChainedBatch defines `_put` and `_del` (the
 * private API abstract-level's public put() and del() end in): the rows, already encoded with
 * their sublevel prefixes, go straight to the native batch. The public calls would first check
 * the key and value, look up both encodings, build an options object and run hooks (ckv
 * registers none) for every row: as much CPU as the native call itself (docs/measurements.md,
 * 2026-12-04 (night)). A write's last row still goes through put(), so abstract-level counts
 * the batch as not empty and writes it. `copies`: the batch copies each row as it is added
 * (only the native one is known to); otherwise abstract-level's base class, whose `_put`
 * does nothing and whose default batch keeps the rows it collects, gets the public calls.
 */
export function batchRows(batch: object): { put: Put; del: Del; copies: boolean } {
  const own = Object.getPrototypeOf(batch) as object;
  if (Object.hasOwn(own, '_put') && Object.hasOwn(own, '_del')) {
    const raw = batch as { _put: Put; _del: Del };
    return { put: raw._put.bind(raw), del: raw._del.bind(raw), copies: true };
  }
  const rows = batch as { put: Put; del: Del };
  return { put: rows.put.bind(rows), del: rows.del.bind(rows), copies: false };
}

/** Memory to encode one row's key and value into, and views of it by length. One per store; writes run one at a time. */
export class RowScratch {
  /** Row keys are encoded here, at offset 0. */
  readonly keyBytes = Buffer.allocUnsafeSlow(keyScratchBytes);
  private readonly valueScratch = Buffer.allocUnsafeSlow(valueScratchBytes);
  /** The value memory of the row being written: the scratch, or a larger row's own. */
  private valueBytes: Buffer = this.valueScratch;
  /**
   * Views by length, made on first use. Filled with undefined from the start: an empty array
   * is one V8 holds in another form than one with views in it, so code compiled for a store in
   * use (the warm-up's, node/warm-up.ts) would be thrown away at a fresh store's first write.
   */
  private readonly keyViews: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(viewsKeptLengthMax + 1).fill(undefined);
  private readonly valueViews: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(viewsKeptLengthMax + 1).fill(undefined);

  /** Memory for a row value of `length` bytes, at offset 0; valueView and valueCopy then read it. */
  valueBytesFor(length: number): Buffer {
    this.valueBytes = length <= valueScratchBytes ? this.valueScratch : Buffer.allocUnsafeSlow(length);
    return this.valueBytes;
  }

  /** Key bytes 0..length, for a batch that copies them at once: valid until the next row. */
  keyView(length: number): Uint8Array {
    if (length > viewsKeptLengthMax) return byteRange(this.keyBytes, 0, length);
    return (this.keyViews[length] ??= byteRange(this.keyBytes, 0, length));
  }

  /** Value bytes 0..length of the current row, for a batch that copies them at once. */
  valueView(length: number): Uint8Array {
    if (this.valueBytes !== this.valueScratch || length > viewsKeptLengthMax) return byteRange(this.valueBytes, 0, length);
    return (this.valueViews[length] ??= byteRange(this.valueScratch, 0, length));
  }

  /** Key bytes 0..length, copied: for a batch that keeps what it is given. */
  keyCopy(length: number): Uint8Array {
    return new Uint8Array(this.keyBytes.subarray(0, length));
  }

  /** Value bytes 0..length of the current row, copied. */
  valueCopy(length: number): Uint8Array {
    return new Uint8Array(this.valueBytes.subarray(0, length));
  }
}
