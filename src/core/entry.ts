/**
 * Entries, versions and the last-writer-wins rule.
 *
 * An entry is `{ key, value | null (tombstone), version }` with version = (hlc, nodeId).
 * Versions are totally ordered: HLC first, then node id bytes (fixed-length hex compares like
 * the bytes). Every node keeps the greatest version it has seen for a key, so all nodes agree
 * on the winner whatever order writes arrive in. Equal versions mean the same write.
 *
 * `entryDigest = SHA-256(key || 0 || hlc || nodeId)`: the value is implied by the version,
 * so digests are cheap to compute for large values and identical on every node.
 * SHA-256 here is pure computation (node:crypto's hash), not I/O.
 */
import { createHash } from 'node:crypto';
import { ByteReader, ByteWriter, fromHex, toHex, utf8 } from './bytes.js';
import { InvalidKeyError, MalformedError, ValueTooLargeError } from './errors.js';
import type { Hlc } from './hlc.js';
import { keyBytesMax, nodeIdBytes, valueBytesMax } from './limits.js';

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
}

export function compareVersions(a: Version, b: Version): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  return 0;
}

export function versionEquals(a: Version, b: Version): boolean {
  return a.hlc === b.hlc && a.node === b.node;
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
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError('key must not be empty');
  const bytes = utf8(key);
  if (bytes.byteLength > keyBytesMax) {
    throw new InvalidKeyError(`key is ${bytes.byteLength} bytes; the limit is ${keyBytesMax} bytes`);
  }
  if (!key.isWellFormed()) throw new InvalidKeyError('key is not valid Unicode text');
  return bytes;
}

export function checkValue(value: Uint8Array, limit = valueBytesMax): void {
  if (value.byteLength > limit) throw new ValueTooLargeError(value.byteLength, limit);
}

/** SHA-256 of the key: its position in the Merkle tree. */
export function keyHash(key: string): Uint8Array {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Lowercase hex of the first 4 bytes of the key hash: the storage sort prefix. */
export function keyHashPrefix(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 8);
}

const versionBytes = new Uint8Array(8 + nodeIdBytes);
const versionView = new DataView(versionBytes.buffer);

export function entryDigest(key: string, version: Version): Uint8Array {
  versionView.setBigUint64(0, version.hlc);
  versionBytes.set(fromHex(version.node), 8);
  return createHash('sha256').update(key, 'utf8').update(new Uint8Array([0])).update(versionBytes).digest();
}

export function writeVersion(writer: ByteWriter, version: Version): void {
  writer.u64(version.hlc).raw(fromHex(version.node));
}

export function readVersion(reader: ByteReader): Version {
  const hlc = reader.u64();
  const node = toHex(reader.raw(nodeIdBytes));
  return { hlc, node };
}

const flagTombstone = 1;

/**
 * Canonical encoding: varint keyLength, key, u8 flags, u64 hlc, 8-byte node, then for a live
 * value varint valueLength and value. Used on disk and on the wire.
 */
export function writeEntry(writer: ByteWriter, entry: Entry): void {
  writer.string(entry.key);
  writer.u8(entry.value === null ? flagTombstone : 0);
  writeVersion(writer, entry.version);
  if (entry.value !== null) writer.bytes(entry.value);
}

export function readEntry(reader: ByteReader, limit = valueBytesMax): Entry {
  const key = reader.string(keyBytesMax, 'key length');
  if (key.length === 0) throw new MalformedError('empty key');
  const flags = reader.u8();
  if ((flags & ~flagTombstone) !== 0) throw new MalformedError(`unknown entry flags ${flags}`);
  const version = readVersion(reader);
  // Copy the value out so a stored entry never pins a large network buffer.
  const value = flags & flagTombstone ? null : reader.bytes(limit, 'value length').slice();
  return { key, value, version };
}

export function encodeEntry(entry: Entry): Uint8Array {
  const writer = new ByteWriter(32 + entry.key.length * 3 + (entry.value?.byteLength ?? 0));
  writeEntry(writer, entry);
  return writer.finish();
}

export function decodeEntry(bytes: Uint8Array, limit = valueBytesMax): Entry {
  const reader = new ByteReader(bytes);
  const entry = readEntry(reader, limit);
  reader.end();
  return entry;
}

/** Bytes the entry costs on the wire: what "raw size of the entries" means in benches. */
export function entryWireBytes(entry: Entry): number {
  return encodeEntry(entry).byteLength;
}
