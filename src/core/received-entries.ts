/**
 * A received frame's entries kept as their bytes (docs/design-bulk-apply.md, step 1): the
 * frame plus, per entry, where its fields are, read once by `decodeReceivedEntries`. Nothing
 * is made per entry while decoding: no key string, no value copy, no version object, no
 * bigint. The replica's bulk path (Replica.applyReceived) hashes each key and digest in place,
 * makes a version object only where it compares one with a stored or earlier version, and hands
 * the store each entry's bytes as its row; entry objects are made only for what asks for them
 * (`entry(i)`: a rewritten key, a watcher, an expiry).
 *
 * Every check readEntry makes is made here too, before anything is stored: a key of
 * 1..keyBytesMax bytes of valid UTF-8, known flags, no tombstone with an expiry, a TTL in
 * 1..ttlMsMax, a value of at most `valueBytesMax` whose length ends the entry exactly. A frame
 * failing one is malformed (MalformedError), as with readEntry.
 *
 * An entry is canonical when its bytes are exactly what encodeEntry writes for it (each varint
 * in its shortest form; UTF-8 has only one) and it is not above receivedEncodingBytesMax (a
 * kept view of a large entry would pin its frame): only then may a store keep its bytes as
 * they are. `canonical` says all are; otherwise the replica decodes the entries and encodes
 * again those that are not, as it always did (a peer with another encoder still works).
 */
import { isUtf8 } from 'node:buffer';
import { hash } from 'node:crypto';
import { byteRange, fromUtf8, toHex } from './bytes.js';
import { encodedEntryDigestText, encodedEntryFacts, ReceivedValues, type Entry, type HashText, type Version } from './entry.js';
import { assert, MalformedError } from './errors.js';
import { hlcWallMs, type Hlc } from './hlc.js';
import { keyBytesMax, nodeIdBytes, receivedEncodingBytesMax, ttlMsMax } from './limits.js';

const flagTombstone = 1;
const flagExpires = 2;
/** The fewest bytes an entry takes: key length, a 1-byte key, flags, hlc, node id. */
const entryBytesMin = 1 + 1 + 1 + 8 + nodeIdBytes;
/**
 * Int32 slots per entry in `at`: start, keyStart, flagsAt, valueStart (-1: tombstone), end, and
 * 1 if the entry's bytes are canonical (else 0).
 */
const fields = 6;

export class ReceivedEntries {
  /** Whether every entry's bytes are canonical (see the file comment). */
  readonly canonical: boolean;
  readonly length: number;
  /** The frame (or message) the entries are in; the entries are views of it. */
  readonly bytes: Uint8Array;
  private readonly at: Int32Array;
  private readonly view: DataView;

  constructor(bytes: Uint8Array, at: Int32Array, canonical: boolean) {
    assert(at.length % fields === 0, 'six fields an entry');
    this.bytes = bytes;
    this.at = at;
    this.length = at.length / fields;
    this.canonical = canonical;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Entries `from`..`to` (sharing this one's bytes). */
  slice(from: number, to: number): ReceivedEntries {
    if (from === 0 && to >= this.length) return this;
    return new ReceivedEntries(this.bytes, this.at.subarray(from * fields, Math.min(to, this.length) * fields), this.canonical);
  }

  /** The entries whose index `keep` accepts, in order. */
  filter(keep: (index: number) => boolean): ReceivedEntries {
    const kept: number[] = [];
    for (let i = 0; i < this.length; i++) if (keep(i)) kept.push(i);
    if (kept.length === this.length) return this;
    const at = new Int32Array(kept.length * fields);
    kept.forEach((index, k) => at.set(this.at.subarray(index * fields, (index + 1) * fields), k * fields));
    return new ReceivedEntries(this.bytes, at, this.canonical);
  }

  /** keyHash of entry i's key (bytes), hashed in place. */
  keyHash(i: number): Uint8Array {
    return hash('sha256', byteRange(this.bytes, this.at[i * fields + 1]!, this.at[i * fields + 2]!), 'buffer');
  }

  /**
   * Copies entry i's bytes into `target` at `offset`; returns the end. (Through a view and
   * set(): Buffer's copy() checks its arguments and makes the same view.)
   */
  copyEncoding(i: number, target: Uint8Array, offset: number): number {
    const start = this.at[i * fields]!;
    const end = this.at[i * fields + 4]!;
    target.set(byteRange(this.bytes, start, end), offset);
    return offset + end - start;
  }

  /** Entry i's encoding length. */
  encodingBytes(i: number): number {
    return this.at[i * fields + 4]! - this.at[i * fields]!;
  }

  /** Entry i's bytes (its encodeEntry bytes when canonical): a view of the frame. */
  encoding(i: number): Uint8Array {
    return byteRange(this.bytes, this.at[i * fields]!, this.at[i * fields + 4]!);
  }

  /** Where entry i's key bytes begin and end (offsets in `bytes`). */
  keyStart(i: number): number {
    return this.at[i * fields + 1]!;
  }

  keyEnd(i: number): number {
    return this.at[i * fields + 2]!;
  }

  /** Entry i's key's UTF-8 length. */
  keyBytes(i: number): number {
    return this.at[i * fields + 2]! - this.at[i * fields + 1]!;
  }

  /** Whether entry i's key is all ASCII (its UTF-16 units are its bytes). */
  keyIsAscii(i: number): boolean {
    return isAsciiAt(this.bytes, this.at[i * fields + 1]!, this.at[i * fields + 2]!);
  }

  key(i: number): string {
    return fromUtf8(byteRange(this.bytes, this.at[i * fields + 1]!, this.at[i * fields + 2]!));
  }

  isTombstone(i: number): boolean {
    return this.at[i * fields + 3]! < 0;
  }

  /** Whether entry i is a value written with a TTL. */
  expires(i: number): boolean {
    return (this.bytes[this.at[i * fields + 2]!]! & flagExpires) !== 0;
  }

  /** Entry i's value length (0 for a tombstone). */
  valueBytes(i: number): number {
    const valueStart = this.at[i * fields + 3]!;
    return valueStart < 0 ? 0 : this.at[i * fields + 4]! - valueStart;
  }

  hlc(i: number): Hlc {
    return this.view.getBigUint64(this.at[i * fields + 2]! + 1);
  }

  version(i: number): Version {
    const nodeAt = this.at[i * fields + 2]! + 9;
    return { hlc: this.hlc(i), node: toHex(byteRange(this.bytes, nodeAt, nodeAt + nodeIdBytes)) };
  }

  /** keyHashText of entry i's key, hashed in place. */
  keyHashText(i: number): HashText {
    return hash('sha256', byteRange(this.bytes, this.at[i * fields + 1]!, this.at[i * fields + 2]!), 'binary');
  }

  /** entryDigestText of entry i, from its bytes (read where they lie in the frame: no view of the entry first). */
  digestText(i: number): HashText {
    facts.keyStart = this.at[i * fields + 1]!;
    facts.flagsAt = this.at[i * fields + 2]!;
    return encodedEntryDigestText(this.bytes, facts);
  }

  /** Entry i as an object; its value copied (into `values` when given, as readEntry does). */
  entry(i: number, values?: ReceivedValues): Entry {
    const key = this.key(i);
    const version = this.version(i);
    const valueStart = this.at[i * fields + 3]!;
    if (valueStart < 0) return { key, value: null, version };
    const bytes = byteRange(this.bytes, valueStart, this.at[i * fields + 4]!);
    const value = values === undefined ? bytes.slice() : values.copy(bytes);
    if (!this.expires(i)) return { key, value, version };
    const ttlAt = this.at[i * fields + 2]! + 1 + 8 + nodeIdBytes;
    const ttlMs = readVarint(this.bytes, ttlAt, this.at[i * fields + 4]!, varint).value;
    return { key, value, version, expiresAtMs: hlcWallMs(version.hlc) + ttlMs };
  }

  /** Every entry as an object, values in shared chunks (as decodeFrame made them before). */
  entries(): Entry[] {
    const values = new ReceivedValues(this.bytes.byteLength);
    const out: Entry[] = [];
    for (let i = 0; i < this.length; i++) out.push(this.entry(i, values));
    return out;
  }

  /** Per entry its bytes when they may be kept (canonical), else undefined: Replica.applyRemote's `encodings`. */
  encodings(): (Uint8Array | undefined)[] {
    const out: (Uint8Array | undefined)[] = [];
    for (let i = 0; i < this.length; i++) out.push(this.at[i * fields + 5] === 1 ? this.encoding(i) : undefined);
    return out;
  }
}

const facts = encodedEntryFacts();
const varint = { value: 0, end: 0, minimal: true };

/** Whether bytes[from..to) are all ASCII. */
function isAsciiAt(bytes: Uint8Array, from: number, to: number): boolean {
  for (let b = from; b < to; b++) if (bytes[b]! >= 0x80) return false;
  return true;
}

/** A LEB128 varint of at most 8 bytes (ByteReader.varint's) at `at`, ending by `end`. */
function readVarint(bytes: Uint8Array, at: number, end: number, out: typeof varint): typeof varint {
  let value = 0;
  let scale = 1;
  for (let i = at; i < end && i < at + 8; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      out.value = value;
      out.end = i + 1;
      // The shortest form: one byte, or a last byte that adds something.
      out.minimal = i === at || byte !== 0;
      return out;
    }
    scale *= 0x80;
  }
  throw new MalformedError(end - at >= 8 ? 'varint longer than 8 bytes' : 'truncated: the frame ends inside a varint');
}

/**
 * Reads `count` entries (each encodeEntry's bytes, one after another) from `bytes` at `from`;
 * returns them and where they end. Throws MalformedError on anything readEntry refuses.
 * `unchecked` (the simulator's encoding canary only) calls every entry canonical.
 */
export function decodeReceivedEntries(
  bytes: Uint8Array,
  from: number,
  count: number,
  valueBytesMax: number,
  unchecked = false,
): { entries: ReceivedEntries; end: number } {
  if (count * entryBytesMin > bytes.byteLength - from) throw new MalformedError(`truncated: ${count} entries cannot fit in ${bytes.byteLength - from} bytes`);
  const at = new Int32Array(count * fields);
  const end = bytes.byteLength;
  let allCanonical = true;
  let p = from;
  for (let i = 0; i < count; i++) {
    const start = p;
    let canonical = true;
    readVarint(bytes, p, end, varint);
    const keyLength = varint.value;
    if (keyLength > keyBytesMax) throw new MalformedError(`key length is ${keyLength}; the limit is ${keyBytesMax}`);
    if (keyLength === 0) throw new MalformedError('empty key');
    canonical &&= varint.minimal;
    const keyStart = varint.end;
    const flagsAt = keyStart + keyLength;
    if (flagsAt + 1 + 8 + nodeIdBytes > end) throw new MalformedError('truncated: the frame ends inside an entry');
    // Most keys are ASCII, which is valid UTF-8: looked at here before a view and a native call.
    if (!isAsciiAt(bytes, keyStart, flagsAt) && !isUtf8(byteRange(bytes, keyStart, flagsAt))) throw new MalformedError('text is not valid UTF-8');
    const flags = bytes[flagsAt]!;
    if ((flags & ~(flagTombstone | flagExpires)) !== 0) throw new MalformedError(`unknown entry flags ${flags}`);
    if (flags === (flagTombstone | flagExpires)) throw new MalformedError('a tombstone with an expiry');
    p = flagsAt + 1 + 8 + nodeIdBytes;
    if (flags & flagExpires) {
      readVarint(bytes, p, end, varint);
      if (varint.value < 1 || varint.value > ttlMsMax) throw new MalformedError(`TTL ${varint.value} ms is outside 1..${ttlMsMax}`);
      canonical &&= varint.minimal;
      p = varint.end;
    }
    let valueStart = -1;
    if (!(flags & flagTombstone)) {
      readVarint(bytes, p, end, varint);
      if (varint.value > valueBytesMax) throw new MalformedError(`value length is ${varint.value}; the limit is ${valueBytesMax}`);
      canonical &&= varint.minimal;
      valueStart = varint.end;
      p = valueStart + varint.value;
      if (p > end) throw new MalformedError('truncated: the frame ends inside a value');
    }
    if (p - start > receivedEncodingBytesMax) canonical = false;
    canonical ||= unchecked;
    allCanonical &&= canonical;
    const base = i * fields;
    at[base] = start;
    at[base + 1] = keyStart;
    at[base + 2] = flagsAt;
    at[base + 3] = valueStart;
    at[base + 4] = p;
    at[base + 5] = canonical ? 1 : 0;
  }
  return { entries: new ReceivedEntries(bytes, at, allCanonical), end: p };
}
