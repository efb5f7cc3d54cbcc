/**
 * The Watch stream's `Change` message (ckv.proto), encoded by hand straight from the node's
 * ChangeEvent into one buffer of its exact size; and, the same way, a Put's `PutReply` and a
 * PutMany's `PutManyReply` (a version per put: through the schema encoder, a reply of 1,000
 * cost ~2.5 ms warm, ~15 % of the node's CPU under bulk writes; by hand ~10x less).
 *
 * Why: every change applied on a node is one Watch message to each watcher (the convergence
 * bench watches every node, so each node sends one per write in the cluster). Through
 * proto-loader each went object -> protobufjs fromObject (two decimal strings parsed into Long)
 * -> encode -> a copy behind grpc-js's 5-byte header. The server registers Watch with an
 * identity serializer and writes these buffers; the bytes decode to the same message
 * (test/unit/watch-codec.test.ts decodes them with proto-loader's own deserializer against
 * the previous path). Knowing each message's size also lets the server bound a slow
 * watcher's backlog in bytes (server.ts), which grpc-js's object-mode stream counts in
 * messages.
 */
import { hlcCounter, hlcWallMs } from '../core/hlc.js';
import type { ChangeEvent } from '../node/api.js';
import type { Version } from '../core/entry.js';

const wireVarint = 0;
const wireLength = 2;
/** Change.expires_at_ms: field 110, varint (a two-byte tag). */
const expiresAtTag = (110 << 3) | wireVarint;

/** Digits of a non-negative integer up to 2^53 in `base`: a varint's bytes (0x80), decimal text's length (10). */
function digitsIn(n: number, base: number): number {
  let digits = 1;
  while (n >= base) {
    n = Math.floor(n / base);
    digits++;
  }
  return digits;
}

function varintBytes(n: number): number {
  return digitsIn(n, 0x80);
}

/** n: a non-negative integer up to 2^53. */
function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[at++] = n;
  return at;
}

/** A length-delimited field of `bytes` bytes: tag, length, then the caller writes them. */
function lengthField(bytes: number): number {
  return 1 + varintBytes(bytes) + bytes;
}

/**
 * A Version message's bytes (hlc, absent at 0; node, absent when empty; text,
 * "wallMs.counter@node") from the stamp's two parts and the node id's bytes.
 */
function versionBodyBytes(wall: number, counter: number, node: Buffer): number {
  return (wall === 0 && counter === 0 ? 0 : 1 + stampVarintBytes(wall, counter)) + (node.byteLength ? lengthField(node.byteLength) : 0) + lengthField(versionTextBytes(wall, counter, node));
}

function versionTextBytes(wall: number, counter: number, node: Buffer): number {
  return decimalDigits(wall) + 1 + decimalDigits(counter) + 1 + node.byteLength;
}

/** Writes the Version body versionBodyBytes measured; returns the end. */
function writeVersionBody(buf: Buffer, at: number, wall: number, counter: number, node: Buffer): number {
  if (wall !== 0 || counter !== 0) {
    buf[at++] = (1 << 3) | wireVarint; // Version.hlc
    at = writeStampVarint(buf, at, wall, counter);
  }
  if (node.byteLength) {
    buf[at++] = (2 << 3) | wireLength; // Version.node
    at = writeVarint(buf, at, node.byteLength);
    buf.set(node, at);
    at += node.byteLength;
  }
  buf[at++] = (3 << 3) | wireLength; // Version.text
  at = writeVarint(buf, at, versionTextBytes(wall, counter, node));
  at = writeDecimal(buf, at, wall);
  buf[at++] = 0x2e; // '.'
  at = writeDecimal(buf, at, counter);
  buf[at++] = 0x40; // '@'
  buf.set(node, at);
  return at + node.byteLength;
}

/** PutReply's repeated string fields' tags: owners = 40, acked = 41, length-delimited (two varint bytes each). */
const ownersTag = [0xc2, 0x02];
const ackedTag = [0xca, 0x02];

/**
 * A Put's reply (PutReply: the version, and in partitioned mode the owners and those that
 * acked), the bytes protobufjs makes from the reply object, without parsing the hlc's decimal
 * text back into a Long (the lean Put path, ./lean-unary.ts).
 */
export function encodePutReply(version: Version, owners: readonly string[], acked: readonly string[]): Buffer {
  const wall = hlcWallMs(version.hlc);
  const counter = hlcCounter(version.hlc);
  const node = nodeBytes.of(version.node);
  const versionBytes = versionBodyBytes(wall, counter, node);
  let total = lengthField(versionBytes);
  for (const list of [owners, acked]) for (const s of list) total += 1 + lengthField(Buffer.byteLength(s, 'utf8'));
  const buf = Buffer.allocUnsafe(total);
  buf[0] = (1 << 3) | wireLength;
  let at = writeVarint(buf, 1, versionBytes);
  at = writeVersionBody(buf, at, wall, counter, node);
  for (const [tag, list] of [[ownersTag, owners], [ackedTag, acked]] as const) {
    for (const s of list) {
      buf[at++] = tag[0]!;
      buf[at++] = tag[1]!;
      at = writeVarint(buf, at, Buffer.byteLength(s, 'utf8'));
      at += buf.write(s, at, 'utf8');
    }
  }
  if (at !== total) throw new Error(`PutReply encoded to ${at} bytes, expected ${total}`);
  return buf;
}

export function encodeChange(change: ChangeEvent): Buffer {
  const { entry, origin, appliedAtMs } = change;
  const wall = hlcWallMs(entry.version.hlc);
  const counter = hlcCounter(entry.version.hlc);
  const node = nodeBytes.of(entry.version.node);
  const keyBytes = Buffer.byteLength(entry.key, 'utf8');
  const originBytes = Buffer.byteLength(origin, 'utf8');
  const valueBytes = change.valueBytes ?? entry.value?.byteLength ?? 0;
  const deleted = entry.value === null;
  const appliedAt = Math.max(0, Math.floor(appliedAtMs));
  const expiresAt = deleted ? 0 : (entry.expiresAtMs ?? 0);

  // proto3: fields at their default (0, '', false) are not sent.
  const versionBytes = versionBodyBytes(wall, counter, node);
  const total =
    (keyBytes ? lengthField(keyBytes) : 0) +
    lengthField(versionBytes) +
    (originBytes ? lengthField(originBytes) : 0) +
    (deleted ? 2 : 0) +
    (valueBytes ? 1 + varintBytes(valueBytes) : 0) +
    (appliedAt ? 1 + varintBytes(appliedAt) : 0) +
    (expiresAt ? varintBytes(expiresAtTag) + varintBytes(expiresAt) : 0);

  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  if (keyBytes) {
    buf[at++] = (1 << 3) | wireLength;
    at = writeVarint(buf, at, keyBytes);
    at += buf.write(entry.key, at, 'utf8');
  }
  buf[at++] = (2 << 3) | wireLength;
  at = writeVarint(buf, at, versionBytes);
  at = writeVersionBody(buf, at, wall, counter, node);
  if (originBytes) {
    buf[at++] = (3 << 3) | wireLength;
    at = writeVarint(buf, at, originBytes);
    at += buf.write(origin, at, 'utf8');
  }
  if (deleted) {
    buf[at++] = (4 << 3) | wireVarint;
    buf[at++] = 1;
  }
  if (valueBytes) {
    buf[at++] = (5 << 3) | wireVarint;
    at = writeVarint(buf, at, valueBytes);
  }
  if (appliedAt) {
    buf[at++] = (6 << 3) | wireVarint;
    at = writeVarint(buf, at, appliedAt);
  }
  if (expiresAt) {
    at = writeVarint(buf, at, expiresAtTag);
    at = writeVarint(buf, at, expiresAt);
  }
  if (at !== total) throw new Error(`Change encoded to ${at} bytes, expected ${total}`);
  return buf;
}

/** A put's outcome in a PutManyReply: the version it was stored at, or why it was refused. */
export type PutOutcome = Version | PutRefusal;

/** A refused put: the error table's one-line message and gRPC status code. */
export interface PutRefusal {
  error: string;
  code: number;
}

/**
 * A PutMany's reply (PutManyReply: one PutResult per put, in order), the bytes the schema
 * encoder (wire.ts) makes from `{ results }` with each result as requests.ts's
 * putResultMessage makes it, without the objects, the decimal text, BigInt varints or a
 * native call per field: a version's stamp is split into its wall ms and counter once, and
 * its text ("wallMs.counter@node") written digit by digit.
 */
export function encodePutManyReply(outcomes: readonly PutOutcome[]): Buffer {
  const count = outcomes.length;
  const walls = new Float64Array(count);
  const counters = new Int32Array(count);
  const versionBytes = new Int32Array(count);
  const resultBytes = new Int32Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const outcome = outcomes[i]!;
    let bytes: number;
    if ('error' in outcome) {
      const errorBytes = Buffer.byteLength(outcome.error, 'utf8');
      const code = outcome.code >>> 0;
      bytes = (errorBytes ? lengthField(errorBytes) : 0) + (code ? 1 + varintBytes(code) : 0);
    } else {
      walls[i] = hlcWallMs(outcome.hlc);
      counters[i] = hlcCounter(outcome.hlc);
      versionBytes[i] = versionBodyBytes(walls[i]!, counters[i]!, nodeBytes.of(outcome.node));
      bytes = lengthField(versionBytes[i]!);
    }
    resultBytes[i] = bytes;
    total += lengthField(bytes);
  }
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const outcome = outcomes[i]!;
    buf[at++] = (1 << 3) | wireLength; // PutManyReply.results
    at = writeVarint(buf, at, resultBytes[i]!);
    if ('error' in outcome) {
      const errorBytes = Buffer.byteLength(outcome.error, 'utf8');
      if (errorBytes) {
        buf[at++] = (2 << 3) | wireLength; // PutResult.error
        at = writeVarint(buf, at, errorBytes);
        at += buf.write(outcome.error, at, 'utf8');
      }
      const code = outcome.code >>> 0;
      if (code) {
        buf[at++] = (3 << 3) | wireVarint; // PutResult.code
        at = writeVarint(buf, at, code);
      }
    } else {
      buf[at++] = (1 << 3) | wireLength; // PutResult.version
      at = writeVarint(buf, at, versionBytes[i]!);
      at = writeVersionBody(buf, at, walls[i]!, counters[i]!, nodeBytes.of(outcome.node));
    }
  }
  if (at !== total) throw new Error(`PutManyReply encoded to ${at} bytes, expected ${total}`);
  return buf;
}

/** A node id's UTF-8 bytes, made again only when the id changes (a node's replies name itself). */
class NodeBytes {
  private id: string | undefined;
  private bytes = Buffer.alloc(0);
  of(id: string): Buffer {
    if (id !== this.id) {
      this.id = id;
      this.bytes = Buffer.from(id, 'utf8');
    }
    return this.bytes;
  }
}

const nodeBytes = new NodeBytes();

/**
 * A stamp (wall ms << 16 | counter: up to 64 bits, past a double's 53) as a varint, from its
 * two 32-bit halves as protobufjs writes a 64-bit varint; no BigInt.
 */
function writeStampVarint(buf: Buffer, at: number, wall: number, counter: number): number {
  let lo = ((wall % 0x10000) * 0x10000 + counter) >>> 0;
  let hi = Math.floor(wall / 0x10000) >>> 0;
  while (hi !== 0) {
    buf[at++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  while (lo > 0x7f) {
    buf[at++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  buf[at++] = lo;
  return at;
}

function stampVarintBytes(wall: number, counter: number): number {
  let lo = ((wall % 0x10000) * 0x10000 + counter) >>> 0;
  let hi = Math.floor(wall / 0x10000) >>> 0;
  let bytes = 1;
  while (hi !== 0) {
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
    bytes++;
  }
  while (lo > 0x7f) {
    lo >>>= 7;
    bytes++;
  }
  return bytes;
}

function decimalDigits(n: number): number {
  return digitsIn(n, 10);
}

/** n (a non-negative integer up to 2^53) in ASCII decimal at `at`; returns the end. */
function writeDecimal(buf: Buffer, at: number, n: number): number {
  const end = at + decimalDigits(n);
  for (let i = end - 1; i >= at; i--) {
    buf[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return end;
}
