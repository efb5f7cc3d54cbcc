/**
 * Entries, versions and the last-writer-wins rule.
 *
 * An entry is `{ key, value | null (tombstone), version }` with version = (hlc, nodeId).
 * Versions are totally ordered: HLC first, then node id bytes (fixed-length hex compares like
 * the bytes). Every node keeps the greatest version it has seen for a key, so all nodes agree
 * on the winner whatever order writes arrive in. Equal versions mean the same write.
 *
 * `entryDigest = SHA-256(key || 0 || hlc || nodeId)`: the value is implied by the version,
 * so digests are cheap to compute for large values and identical on every node. So is the
 * expiry (`expiresAtMs`, a write with a TTL: src/core/ttl.ts): one version is one write,
 * with one TTL; an expired value and the tombstone the sweeper makes of it share the version,
 * hence the digest.
 * SHA-256 here is pure computation (node:crypto's hash), not I/O. The one-shot `hash()` is
 * used on the write path: it costs about 60% of a createHash/update/digest chain.
 */
import { createHash, hash } from 'node:crypto';
import { byteRange, ByteReader, ByteWriter, fromHex, toHex, utf8 } from './bytes.js';
import { assert, InvalidKeyError, MalformedError, ValueTooLargeError } from './errors.js';
import { hlcCounter, hlcPack, hlcWallMs, type Hlc } from './hlc.js';
import {
  hlcCounterMax,
  hlcWallMsMax,
  keyBytesMax,
  nodeIdBytes,
  receivedEncodingBytesMax,
  receivedValuesChunkBytesMax,
  receivedValuesSharedBytesMax,
  ttlMsMax,
  valueBytesMax,
} from './limits.js';

/** A node id: `nodeIdBytes` bytes as lowercase hex, so string order is byte order. */
export type NodeId = string;

export interface Version {
  readonly hlc: Hlc;
  readonly node: NodeId;
}

export interface Entry {
  readonly key: string;
  /** null is a tombstone: the key was deleted at `version`. */
  readonly value: Uint8Array | null;
  readonly version: Version;
  /**
   * A value written with a TTL: the wall time (ms) from which it reads as absent, = the
   * write's HLC wall time + the TTL (src/core/ttl.ts). Never on a tombstone.
   */
  readonly expiresAtMs?: number | undefined;
}

export function compareVersions(a: Version, b: Version): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  return 0;
}

export function versionEquals(a: Version, b: Version): boolean {
  return a.hlc === b.hlc && a.node === b.node;
}

/** A version as people and HTTP ETags see it: "wallMs.counter@node". */
export function versionToText(version: Version): string {
  return `${hlcWallMs(version.hlc)}.${hlcCounter(version.hlc)}@${version.node}`;
}

/** The inverse of versionToText; undefined for anything that is not one. */
export function parseVersionText(text: string): Version | undefined {
  const match = /^(\d{1,16})\.(\d{1,5})@([0-9a-f]+)$/.exec(text);
  if (!match) return undefined;
  const wallMs = Number(match[1]);
  const counter = Number(match[2]);
  const node = match[3]!;
  if (wallMs > hlcWallMsMax || counter > hlcCounterMax || !isNodeId(node)) return undefined;
  return { hlc: hlcPack(wallMs, counter), node };
}

/**
 * A condition on a local write, checked atomically against the version the node holds when
 * the write is merged (Replica): `ifVersion`, the key holds exactly this version (a
 * tombstone's counts); `ifAbsent`, the key holds nothing or a tombstone.
 */
export type WriteCondition = { readonly ifVersion: Version } | { readonly ifAbsent: true };

/** What the condition expects, in words (for ConditionFailedError). */
export function conditionText(condition: WriteCondition): string {
  return 'ifVersion' in condition ? `version ${versionToText(condition.ifVersion)}` : 'the key to be absent';
}

/** Whether `condition` holds for a key whose current entry is `current`. */
export function conditionHolds(condition: WriteCondition, current: Entry | undefined): boolean {
  if ('ifVersion' in condition) return current !== undefined && versionEquals(current.version, condition.ifVersion);
  return current === undefined || current.value === null;
}

/**
 * A merge rule decides whether `incoming` replaces `current`. Production uses lastWriterWins;
 * the simulator's canary test injects a wrong rule to prove the checker catches it.
 */
export type MergeRule = (incoming: Version, current: Version | undefined) => boolean;

export const lastWriterWins: MergeRule = (incoming, current) =>
  current === undefined || compareVersions(incoming, current) > 0;

/** The entry that survives of two versions of one key. Commutative, associative, idempotent. */
export function mergeEntries(a: Entry, b: Entry): Entry {
  return compareVersions(a.version, b.version) >= 0 ? a : b;
}

export function isNodeId(text: string): boolean {
  return text.length === nodeIdBytes * 2 && /^[0-9a-f]+$/.test(text);
}

/** A node id derived from arbitrary identity bytes (for example a libp2p peer id). */
export function nodeIdFrom(identity: Uint8Array): NodeId {
  return createHash('sha256').update(identity).digest('hex').slice(0, nodeIdBytes * 2);
}

/** UTF-8 bytes of a valid key; throws InvalidKeyError otherwise. */
export function checkKey(key: string): Uint8Array {
  validateKey(key);
  return utf8(key);
}

/** checkKey without encoding the key: returns its UTF-8 length. */
export function validateKey(key: string): number {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError('key must not be empty');
  const keyBytes = Buffer.byteLength(key, 'utf8');
  if (keyBytes > keyBytesMax) {
    throw new InvalidKeyError(`key is ${keyBytes} bytes; the limit is ${keyBytesMax} bytes`);
  }
  if (!key.isWellFormed()) throw new InvalidKeyError('key is not valid Unicode text');
  return keyBytes;
}

export function checkValue(value: Uint8Array, limit = valueBytesMax): void {
  if (value.byteLength > limit) throw new ValueTooLargeError(value.byteLength, limit);
}

/** SHA-256 of the key: its position in the Merkle tree. */
export function keyHash(key: string): Uint8Array {
  return hash('sha256', key, 'buffer');
}

/**
 * A hash as a latin1 ('binary') string: char code i is byte i. The write path carries hashes
 * this way because such a string costs about a third of a Buffer to make (no backing store).
 */
export type HashText = string;

/** keyHash as HashText. */
export function keyHashText(key: string): HashText {
  return hash('sha256', key, 'binary');
}

/** Hex digits of the key hash that prefix a stored entry's key (the storage sort prefix). */
export const hashPrefixDigits = 8;

/** Lowercase hex of the first 4 bytes of the key hash: the storage sort prefix. */
export function keyHashPrefix(key: string): string {
  return hashPrefixOf(keyHashText(key));
}

/** keyHashPrefix from a HashText already computed. */
export function hashPrefixOf(keyHash: HashText): string {
  return Buffer.from(keyHash.slice(0, hashPrefixDigits / 2), 'latin1').toString('hex');
}

/** Bytes of the digest input after the key: a 0 separator, the hlc and the node id. */
const digestTailBytes = 1 + 8 + nodeIdBytes;
/** Reused digest input; grows for long keys (3 UTF-8 bytes per UTF-16 unit at most). */
let digestInput = Buffer.alloc(256);

export function entryDigest(key: string, version: Version): Uint8Array {
  return hash('sha256', digestInputOf(key, version), 'buffer');
}

/** entryDigest as HashText. */
export function entryDigestText(key: string, version: Version): HashText {
  return hash('sha256', digestInputOf(key, version), 'binary');
}

/** key || 0 || hlc || nodeId, in a buffer reused by the next call. */
function digestInputOf(key: string, version: Version): Uint8Array {
  if (digestInput.byteLength < key.length * 3 + digestTailBytes) digestInput = Buffer.alloc(key.length * 3 + digestTailBytes);
  const keyBytes = digestInput.write(key, 0, 'utf8');
  return byteRange(digestInput, 0, writeVersionTail(digestInput, keyBytes, version));
}

/** Writes 0, hlc, node id at `offset`; returns the end. */
function writeVersionTail(target: Buffer, offset: number, version: Version): number {
  target[offset] = 0;
  return writeVersionInto(target, offset + 1, version);
}

/**
 * The last version written by writeVersionInto, split into bytes once: each put writes its
 * version twice (digest, entry) and a batch mostly shares one node id.
 */
const versionCache = { hlc: -1n, high: 0, low: 0, node: '', nodeBytes: new Uint8Array(nodeIdBytes) };

/** writeVersion into a buffer at `offset`; returns the end. A malformed node id writes zeros. */
function writeVersionInto(target: Uint8Array, offset: number, version: Version): number {
  const cache = versionCache;
  if (version.hlc !== cache.hlc) {
    if (version.hlc < 0n || version.hlc >> 64n !== 0n) throw new RangeError(`hlc ${version.hlc} is not a u64`);
    cache.high = Number(version.hlc >> 32n);
    cache.low = Number(version.hlc & 0xffffffffn);
    cache.hlc = version.hlc;
  }
  if (version.node !== cache.node) {
    const nodeBytes = new Uint8Array(nodeIdBytes);
    Buffer.from(nodeBytes.buffer).write(version.node, 0, nodeIdBytes, 'hex');
    cache.nodeBytes = nodeBytes;
    cache.node = version.node;
  }
  for (let shift = 24, i = 0; i < 4; i++, shift -= 8) {
    target[offset + i] = (cache.high >>> shift) & 0xff;
    target[offset + 4 + i] = (cache.low >>> shift) & 0xff;
  }
  target.set(cache.nodeBytes, offset + 8);
  return offset + 8 + nodeIdBytes;
}

export function writeVersion(writer: ByteWriter, version: Version): void {
  writer.u64(version.hlc).raw(fromHex(version.node));
}

export function readVersion(reader: ByteReader): Version {
  const hlc = reader.u64();
  const node = nodeIdText(reader.source, reader.skip(nodeIdBytes));
  return { hlc, node };
}

/**
 * The last node id decoded, as bytes and as text: the entries of a gossip message or a sync
 * frame mostly carry one or a few writers' ids, and turning 8 bytes into hex made a Buffer and
 * a string an entry (~8 ms of a 10k-entry catch-up on a fresh process). Compared byte by byte.
 */
const lastNodeIdBytes = new Uint8Array(nodeIdBytes);
let lastNodeIdText = '';

/** The node id at `bytes[at..at + nodeIdBytes]` as text, read in place (no view an entry). */
function nodeIdText(bytes: Uint8Array, at: number): string {
  let same = lastNodeIdText !== '';
  for (let i = 0; same && i < nodeIdBytes; i++) same = bytes[at + i] === lastNodeIdBytes[i];
  if (same) return lastNodeIdText;
  for (let i = 0; i < nodeIdBytes; i++) lastNodeIdBytes[i] = bytes[at + i]!;
  lastNodeIdText = toHex(lastNodeIdBytes);
  return lastNodeIdText;
}

const flagTombstone = 1;
/** A live value with an expiry: a varint TTL (ms) follows the version. Added with TTLs (format note in docs/backup-format.md). */
const flagExpires = 2;
const flagsKnown = flagTombstone | flagExpires;

/** The TTL the encoding carries for `entry` (0: none): expiresAtMs less the version's wall time. */
function encodedTtlMs(entry: Entry): number {
  if (entry.value === null || entry.expiresAtMs === undefined) return 0;
  const ttlMs = entry.expiresAtMs - hlcWallMs(entry.version.hlc);
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > ttlMsMax) throw new RangeError(`expiry ${entry.expiresAtMs} is not 1..${ttlMsMax} ms after its version`);
  return ttlMs;
}

function flagsOf(entry: Entry, ttlMs: number): number {
  return entry.value === null ? flagTombstone : ttlMs > 0 ? flagExpires : 0;
}

/**
 * Canonical encoding: varint keyLength, key, u8 flags, u64 hlc, 8-byte node, then with
 * flagExpires a varint TTL in ms (expiresAtMs = the version's wall time + TTL, 1..ttlMsMax),
 * then for a live value varint valueLength and value. Used on disk and on the wire. The TTL
 * is stored relative to the version so no row can expire before it was written; readers
 * from before TTLs refuse flag 2 (unknown flags) rather than misread the row.
 */
export function writeEntry(writer: ByteWriter, entry: Entry): void {
  const ttlMs = encodedTtlMs(entry);
  writer.string(entry.key);
  writer.u8(flagsOf(entry, ttlMs));
  writeVersion(writer, entry.version);
  if (ttlMs > 0) writer.varint(ttlMs);
  if (entry.value !== null) writer.bytes(entry.value);
}

/**
 * Copies of the values of one received frame or message (readEntry's `values`), carved out of
 * chunks of at most receivedValuesChunkBytesMax that only this frame's values share: one
 * allocation for hundreds of small values instead of one each (limits.ts says what that
 * costs). A chunk is no larger than what the frame can still hold, so a one-entry message
 * allocates about its value, as a copy of its own would. A value above
 * receivedValuesSharedBytesMax is copied on its own. Each value is a plain Uint8Array (not a
 * Buffer: its slice() copies).
 */
export class ReceivedValues {
  private chunk: Uint8Array | undefined;
  private used = 0;
  /** Bytes of the frame not yet copied from: its values' total is at most this. */
  private frameBytesLeft: number;

  /** `frameBytes`: the received frame's or message's length. */
  constructor(frameBytes: number) {
    this.frameBytesLeft = frameBytes;
  }

  /** A copy of `bytes` (a value of the frame). */
  copy(bytes: Uint8Array): Uint8Array {
    const length = bytes.byteLength;
    this.frameBytesLeft = Math.max(0, this.frameBytesLeft - length);
    if (length > receivedValuesSharedBytesMax || length === 0) return bytes.slice();
    if (this.chunk === undefined || this.used + length > this.chunk.byteLength) {
      this.chunk = new Uint8Array(Math.min(receivedValuesChunkBytesMax, length + this.frameBytesLeft));
      this.used = 0;
    }
    this.chunk.set(bytes, this.used);
    const value = new Uint8Array(this.chunk.buffer, this.used, length);
    this.used += length;
    return value;
  }
}

/**
 * One entry (writeEntry's encoding). Its value is copied, so that a kept entry never keeps the
 * received bytes in memory: into `values` (the frame's shared chunks) when given, else on its own.
 */
export function readEntry(reader: ByteReader, limit = valueBytesMax, values?: ReceivedValues): Entry {
  const key = reader.string(keyBytesMax, 'key length');
  if (key.length === 0) throw new MalformedError('empty key');
  const flags = reader.u8();
  if ((flags & ~flagsKnown) !== 0) throw new MalformedError(`unknown entry flags ${flags}`);
  if (flags === (flagTombstone | flagExpires)) throw new MalformedError('a tombstone with an expiry');
  const version = readVersion(reader);
  let expiresAtMs: number | undefined;
  if (flags & flagExpires) {
    const ttlMs = reader.varint();
    if (ttlMs < 1 || ttlMs > ttlMsMax) throw new MalformedError(`TTL ${ttlMs} ms is outside 1..${ttlMsMax}`);
    expiresAtMs = hlcWallMs(version.hlc) + ttlMs;
  }
  let value: Uint8Array | null = null;
  if (!(flags & flagTombstone)) {
    const bytes = reader.bytes(limit, 'value length');
    value = values === undefined ? bytes.slice() : values.copy(bytes);
  }
  return expiresAtMs === undefined ? { key, value, version } : { key, value, version, expiresAtMs };
}

export function encodeEntry(entry: Entry): Uint8Array {
  const keyBytes = Buffer.byteLength(entry.key, 'utf8');
  const bytes = Buffer.alloc(encodedEntryBytes(entry, keyBytes)); // not pooled: callers may keep it
  encodeEntryInto(bytes, 0, entry, keyBytes);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Length of encodeEntry(entry), given the key's UTF-8 length. */
export function encodedEntryBytes(entry: Entry, keyBytes: number): number {
  const valueBytes = entry.value === null ? 0 : varintBytes(entry.value.byteLength) + entry.value.byteLength;
  const ttlMs = encodedTtlMs(entry);
  return varintBytes(keyBytes) + keyBytes + 1 + 8 + nodeIdBytes + (ttlMs > 0 ? varintBytes(ttlMs) : 0) + valueBytes;
}

/**
 * encodeEntry into `target` at `offset` (the same bytes as writeEntry), with no allocation:
 * the store encodes a whole batch into one buffer. Returns the end offset.
 */
export function encodeEntryInto(target: Buffer, offset: number, entry: Entry, keyBytes: number): number {
  const ttlMs = encodedTtlMs(entry);
  let at = writeVarint(target, offset, keyBytes);
  at += target.write(entry.key, at, keyBytes, 'utf8');
  target[at++] = flagsOf(entry, ttlMs);
  at = writeVersionInto(target, at, entry.version);
  if (ttlMs > 0) at = writeVarint(target, at, ttlMs);
  if (entry.value !== null) {
    at = writeVarint(target, at, entry.value.byteLength);
    target.set(entry.value, at);
    at += entry.value.byteLength;
  }
  return at;
}

function varintBytes(value: number): number {
  let bytes = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) bytes++;
  return bytes;
}

/** The same LEB128 varint as ByteWriter.varint. */
function writeVarint(target: Uint8Array, offset: number, value: number): number {
  let at = offset;
  let v = value;
  while (v >= 0x80) {
    target[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  target[at++] = v;
  return at;
}

/**
 * The bytes `bytes[start, end)` that readEntry just read `entry` from, as a view, if they are
 * exactly encodeEntry(entry); else undefined. A store keeps a received entry's bytes as they
 * are (no encoding again) only when this holds, so every stored row stays canonical: what a
 * scan hands out, a digest or a peer's delta is the same whoever sent the entry.
 *
 * The length alone decides it. Every field after the decode is either fixed (flags, version)
 * or encoded the shortest way its value allows (the varints: key length, TTL, value length;
 * the key's UTF-8, which the fatal decoder accepts only in its one shortest form), so the bytes
 * read are at least encodedEntryBytes(entry) long, and equal only when each field is canonical.
 * (A decoder that changed the key, e.g. one that dropped a byte-order mark, makes the
 * encoding shorter still: not equal either.) A peer that pads a varint is not refused: its
 * entry is encoded again, as every entry was before; so is an entry above
 * receivedEncodingBytesMax.
 */
export function canonicalEncoding(bytes: Uint8Array, start: number, end: number, entry: Entry): Uint8Array | undefined {
  if (end - start > receivedEncodingBytesMax) return undefined; // see the limit: pins its frame
  readVarintAt(bytes, start, varintOut);
  if (varintOut.end < 0) return undefined;
  return end - start === encodedEntryBytes(entry, varintOut.value) ? byteRange(bytes, start, end) : undefined;
}

export function decodeEntry(bytes: Uint8Array, limit = valueBytesMax): Entry {
  const reader = new ByteReader(bytes);
  const entry = readEntry(reader, limit);
  reader.end();
  return entry;
}

/**
 * Whether encodeEntry's bytes carry an expiry, read from the flags byte after the key alone:
 * nothing is decoded or copied. The TTL sweeper's start scan looks at every stored row and
 * decodes only the few that have one. Throws MalformedError if the bytes end before the flags.
 */
export function encodedEntryExpires(bytes: Uint8Array): boolean {
  readVarintAt(bytes, 0, varintOut);
  if (varintOut.end < 0) throw new MalformedError('entry key length does not decode');
  const flagsAt = varintOut.end + varintOut.value;
  if (flagsAt >= bytes.byteLength) throw new MalformedError(`entry of ${bytes.byteLength} bytes ends before its flags`);
  return (bytes[flagsAt]! & flagExpires) !== 0;
}

/**
 * Where things are in encodeEntry's bytes, read in place (readEncodedEntryFacts): for a scan
 * that needs each row's hashes and stamp but not the entry (the replica's open after a crash,
 * replica-scan.ts). One object, reused row after row.
 */
export interface EncodedEntryFacts {
  /** The key's UTF-8 bytes are [keyStart, flagsAt); the flags byte is at flagsAt, the version's 16 bytes after it. */
  keyStart: number;
  flagsAt: number;
  tombstone: boolean;
  /** The stamp as two unsigned 32-bit halves (a bigint a row would be garbage). */
  hlcHigh: number;
  hlcLow: number;
}

export function encodedEntryFacts(): EncodedEntryFacts {
  return { keyStart: 0, flagsAt: 0, tombstone: false, hlcHigh: 0, hlcLow: 0 };
}

/** A LEB128 varint of at most 5 bytes at `at` into `out` (value, end); end -1 when it does not decode. */
function readVarintAt(bytes: Uint8Array, at: number, out: { value: number; end: number }): void {
  let value = 0;
  let scale = 1;
  for (let i = at; i < bytes.byteLength && i < at + 5; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      out.value = value;
      out.end = i + 1;
      return;
    }
    scale *= 0x80;
  }
  out.end = -1;
}

const varintOut = { value: 0, end: 0 };

/**
 * Fills `facts` from encodeEntry's bytes without decoding or copying anything. Checks what
 * decodeEntry checks of the row's shape (a key of 1..keyBytesMax bytes, known flags, a TTL in
 * range, a value whose length ends the row exactly) and throws MalformedError otherwise; the
 * key's UTF-8 and the node id are not decoded.
 */
export function readEncodedEntryFacts(bytes: Uint8Array, facts: EncodedEntryFacts): void {
  readVarintAt(bytes, 0, varintOut);
  if (varintOut.end < 0) throw new MalformedError('entry key length does not decode');
  const keyBytes = varintOut.value;
  if (keyBytes === 0 || keyBytes > keyBytesMax) throw new MalformedError(`entry key of ${keyBytes} bytes`);
  const keyStart = varintOut.end;
  const flagsAt = keyStart + keyBytes;
  let at = flagsAt + 1 + 8 + nodeIdBytes;
  if (at > bytes.byteLength) throw new MalformedError(`entry of ${bytes.byteLength} bytes ends before its version`);
  const flags = bytes[flagsAt]!;
  if ((flags & ~flagsKnown) !== 0 || flags === (flagTombstone | flagExpires)) throw new MalformedError(`unknown entry flags ${flags}`);
  if (flags & flagExpires) {
    readVarintAt(bytes, at, varintOut);
    if (varintOut.end < 0 || varintOut.value < 1 || varintOut.value > ttlMsMax) throw new MalformedError('entry TTL does not decode or is out of range');
    at = varintOut.end;
  }
  if (flags & flagTombstone) {
    if (at !== bytes.byteLength) throw new MalformedError(`a tombstone of ${bytes.byteLength} bytes has ${bytes.byteLength - at} extra`);
  } else {
    readVarintAt(bytes, at, varintOut);
    if (varintOut.end < 0 || varintOut.end + varintOut.value !== bytes.byteLength) throw new MalformedError(`entry value length does not match its ${bytes.byteLength} bytes`);
  }
  const hlcAt = flagsAt + 1;
  facts.keyStart = keyStart;
  facts.flagsAt = flagsAt;
  facts.tombstone = (flags & flagTombstone) !== 0;
  facts.hlcHigh = ((bytes[hlcAt]! << 24) | (bytes[hlcAt + 1]! << 16) | (bytes[hlcAt + 2]! << 8) | bytes[hlcAt + 3]!) >>> 0;
  facts.hlcLow = ((bytes[hlcAt + 4]! << 24) | (bytes[hlcAt + 5]! << 16) | (bytes[hlcAt + 6]! << 8) | bytes[hlcAt + 7]!) >>> 0;
}

/** keyHashText of the key in `bytes` (facts from readEncodedEntryFacts): SHA-256 of its bytes as stored. */
export function encodedKeyHashText(bytes: Uint8Array, facts: EncodedEntryFacts): HashText {
  return hash('sha256', byteRange(bytes, facts.keyStart, facts.flagsAt), 'binary');
}

/**
 * entryDigestText of the entry in `bytes`. Its input (key, 0, hlc, node id) is the row's own
 * bytes from the key to the end of the version with the flags byte where the 0 goes: hashed in
 * place when the flags are 0 (a live value without expiry), else through a copy.
 */
export function encodedEntryDigestText(bytes: Uint8Array, facts: EncodedEntryFacts): HashText {
  const end = facts.flagsAt + 1 + 8 + nodeIdBytes;
  if (bytes[facts.flagsAt] === 0) return hash('sha256', byteRange(bytes, facts.keyStart, end), 'binary');
  const length = end - facts.keyStart;
  if (digestInput.byteLength < length) digestInput = Buffer.alloc(length);
  digestInput.set(byteRange(bytes, facts.keyStart, end), 0);
  digestInput[facts.flagsAt - facts.keyStart] = 0;
  return hash('sha256', byteRange(digestInput, 0, length), 'binary');
}

/** The facts canonicalEntryDigestText reads (one object, reused). */
const canonicalFacts = encodedEntryFacts();

/**
 * entryDigestText of the entry whose canonical bytes (encodeEntry's) these are: hashed in
 * place for a live value without expiry, through a copy otherwise (encodedEntryDigestText).
 * The bytes were checked when they were decoded (canonicalEncoding); only the key's place is
 * read here.
 */
export function canonicalEntryDigestText(bytes: Uint8Array): HashText {
  readVarintAt(bytes, 0, varintOut);
  assert(varintOut.end > 0, 'a canonical encoding starts with its key length');
  canonicalFacts.keyStart = varintOut.end;
  canonicalFacts.flagsAt = varintOut.end + varintOut.value;
  return encodedEntryDigestText(bytes, canonicalFacts);
}

/** Bytes the entry costs on the wire: what "raw size of the entries" means in benches. */
export function entryWireBytes(entry: Entry): number {
  return encodeEntry(entry).byteLength;
}
