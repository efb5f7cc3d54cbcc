/**
 * The ckv backup file format, version 1 (docs/backup-format.md is its specification): what
 * `ckv export` writes and `ckv import` reads. Big-endian integers throughout.
 *
 *   header   magic "\x89CKVB\r\n\x1a" (8) | u16 format version (1) | u16 flags (bit 0:
 *            tombstones included) | u64 created-at wall ms | 8-byte source node id |
 *            u16 prefix bytes | prefix (UTF-8) | u32 CRC32 of the header bytes before it
 *   block*   u8 kind (1) | u8 codec (0 stored, 1 deflate-raw) | u32 entries | u32 raw bytes |
 *            u32 stored bytes | u32 CRC32 of the stored payload | u32 CRC32 of the 18 bytes
 *            before it | payload (stored bytes)
 *   trailer  u8 kind (2) | u64 entries | u64 blocks | u64 raw bytes | u32 CRC32 of every byte
 *            of the file before the trailer | u32 CRC32 of the 29 bytes before it; then the
 *            file ends
 *
 * A block's raw payload is its entries back to back in the core's entry encoding
 * (src/core/entry.ts writeEntry: varint key length, key, u8 flags, u64 hlc, 8-byte node id,
 * with flag 2 (TTL) a varint TTL in ms,
 * then for a live value varint length and value), exactly what the Export RPC streams and the
 * Import RPC takes, so neither side re-encodes an entry. A block holds up to about 1 MiB of
 * entries, or one entry alone (a value up to the 64 MiB limit). Stored codec is used when
 * deflate does not make the block smaller.
 *
 * Reading checks every length against its limit before it allocates, each header and block
 * against its CRC before using it (a block's payload before it is inflated, and inflating is
 * bounded by the raw size it announced), that a block holds exactly the entries it says, and
 * at the end the trailer's counts and the CRC over the whole file: a truncated file, a flipped
 * byte or trailing bytes fail with BackupDamagedError naming the byte offset of the damage.
 * The reader yields a block only once it is verified, so a caller that applies blocks as they
 * come applies nothing from the damaged block on.
 */
import { promisify } from 'node:util';
import { crc32, deflateRaw, inflateRaw } from 'node:zlib';
import { CkvError } from '../core/errors.js';
import { keyBytesMax, nodeIdBytes, ttlMsMax, valueBytesMax } from '../core/limits.js';

export const backupMagic = Buffer.from([0x89, 0x43, 0x4b, 0x56, 0x42, 0x0d, 0x0a, 0x1a]);
export const backupFormatVersion = 1;
export const flagIncludesDeleted = 1;

export const blockKind = 1;
export const trailerKind = 2;
export const codecStored = 0;
export const codecDeflateRaw = 1;

/** Bytes of a block's frame before its payload. */
export const blockHeaderBytes = 22;
/** Bytes of the trailer. */
export const trailerBytes = 33;
/** Fixed bytes of the header (without the prefix). */
const headerFixedBytes = 8 + 2 + 2 + 8 + nodeIdBytes + 2 + 4;

/** Bytes of one maximal entry in the core encoding: key, value, their varints, flags, version. */
export const entryBytesMax = valueBytesMax + keyBytesMax + 64;
/** Raw bytes of a block: about 1 MiB of entries, or one entry alone. */
export const blockRawBytesMax = entryBytesMax;
/** Entries in a block (the smallest entry is 20 bytes: 1 MiB holds at most ~52,000). */
export const blockEntriesMax = 65_536;
/** What a writer aims at: a block is flushed before it passes this (one larger entry goes alone). */
export const blockRawBytesTarget = 1024 * 1024;
/** Entries a writer puts in a block at most. */
export const blockEntriesTarget = 16_384;
/** Smallest encoded entry: 1-byte key length, 1-byte key, flags, hlc, node id (a tombstone). */
const entryBytesMin = 1 + 1 + 1 + 8 + nodeIdBytes;
/** deflateRaw's level: 1 compresses small keys and values ~3x here at several times level 6's speed. */
const deflateLevel = 1;

const deflateRawAsync = promisify(deflateRaw);
const inflateRawAsync = promisify(inflateRaw);

/**
 * A backup file that is damaged (truncated, a flipped byte, trailing bytes) or not a ckv
 * backup: the message names the byte offset. Exit code 8 (src/errors.ts).
 */
export class BackupDamagedError extends CkvError {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super('ERR_BACKUP_DAMAGED', `backup damaged at byte offset ${offset}: ${reason}`);
    this.name = 'BackupDamagedError';
  }
}

export interface BackupHeader {
  formatVersion: number;
  includesDeleted: boolean;
  createdAtMs: number;
  /** 16 hex digits. */
  sourceNodeId: string;
  prefix: string;
}

export interface BackupTrailer {
  entries: number;
  blocks: number;
  rawBytes: number;
}

export function encodeHeader(header: Omit<BackupHeader, 'formatVersion'>): Buffer {
  const prefix = Buffer.from(header.prefix, 'utf8');
  if (prefix.byteLength > keyBytesMax) throw new RangeError(`prefix is ${prefix.byteLength} bytes; the limit is ${keyBytesMax}`);
  const out = Buffer.alloc(headerFixedBytes + prefix.byteLength);
  let at = backupMagic.copy(out, 0);
  at = out.writeUInt16BE(backupFormatVersion, at);
  at = out.writeUInt16BE(header.includesDeleted ? flagIncludesDeleted : 0, at);
  at = out.writeBigUInt64BE(BigInt(header.createdAtMs), at);
  at += out.write(header.sourceNodeId.padEnd(nodeIdBytes * 2, '0').slice(0, nodeIdBytes * 2), at, nodeIdBytes, 'hex');
  at = out.writeUInt16BE(prefix.byteLength, at);
  at += prefix.copy(out, at);
  out.writeUInt32BE(crc32(out.subarray(0, at)), at);
  return out;
}

/**
 * One block's frame and payload, compressed on the thread pool (several blocks can compress
 * at once). `raw` is `entries` entries in the core encoding.
 */
export async function encodeBlock(raw: Uint8Array, entries: number): Promise<Buffer[]> {
  if (entries < 1 || entries > blockEntriesMax) throw new RangeError(`a block holds 1..${blockEntriesMax} entries, not ${entries}`);
  if (raw.byteLength > blockRawBytesMax) throw new RangeError(`a block's raw bytes are at most ${blockRawBytesMax}, not ${raw.byteLength}`);
  const deflated = await deflateRawAsync(raw, { level: deflateLevel });
  const stored = deflated.byteLength < raw.byteLength;
  const payload = stored ? deflated : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const frame = Buffer.alloc(blockHeaderBytes);
  frame[0] = blockKind;
  frame[1] = stored ? codecDeflateRaw : codecStored;
  frame.writeUInt32BE(entries, 2);
  frame.writeUInt32BE(raw.byteLength, 6);
  frame.writeUInt32BE(payload.byteLength, 10);
  frame.writeUInt32BE(crc32(payload), 14);
  frame.writeUInt32BE(crc32(frame.subarray(0, 18)), 18);
  return [frame, payload];
}

/** The trailer, given the CRC32 of every byte before it. */
export function encodeTrailer(trailer: BackupTrailer, fileCrc: number): Buffer {
  const out = Buffer.alloc(trailerBytes);
  out[0] = trailerKind;
  out.writeBigUInt64BE(BigInt(trailer.entries), 1);
  out.writeBigUInt64BE(BigInt(trailer.blocks), 9);
  out.writeBigUInt64BE(BigInt(trailer.rawBytes), 17);
  out.writeUInt32BE(fileCrc >>> 0, 25);
  out.writeUInt32BE(crc32(out.subarray(0, 29)), 29);
  return out;
}

/**
 * Writes a backup to `sink` in order: the header, blocks as they are added (up to
 * `compressingMax` compressing at once, written in the order added), the trailer on finish.
 * Keeps the running CRC32 over every byte written.
 */
export class BackupWriter {
  private crc = 0;
  private written = Promise.resolve();
  private readonly inFlight: Promise<void>[] = [];
  entries = 0;
  blocks = 0;
  rawBytes = 0;
  /** Bytes handed to the sink so far. */
  bytes = 0;

  constructor(
    private readonly sink: (bytes: Buffer) => Promise<void>,
    header: Omit<BackupHeader, 'formatVersion'>,
    private readonly compressingMax = 4,
  ) {
    this.written = this.emit([encodeHeader(header)]);
  }

  private async emit(parts: Buffer[]): Promise<void> {
    for (const part of parts) {
      this.crc = crc32(part, this.crc);
      this.bytes += part.byteLength;
      await this.sink(part);
    }
  }

  /** Adds a block of `entries` entries; resolves once there is room for another. */
  async add(raw: Uint8Array, entries: number): Promise<void> {
    const encoded = encodeBlock(raw, entries);
    encoded.catch(() => undefined); // awaited below, in order
    const previous = this.written;
    this.written = (async () => {
      await previous;
      const parts = await encoded;
      await this.emit(parts);
      this.entries += entries;
      this.blocks += 1;
      this.rawBytes += raw.byteLength;
    })();
    const done = this.written;
    this.inFlight.push(done);
    done.then(
      () => this.inFlight.splice(this.inFlight.indexOf(done), 1),
      () => undefined,
    );
    if (this.inFlight.length >= this.compressingMax) await this.inFlight[0];
  }

  /** Waits for every block, then writes the trailer. */
  async finish(): Promise<BackupTrailer> {
    await this.written;
    const trailer = { entries: this.entries, blocks: this.blocks, rawBytes: this.rawBytes };
    await this.emit([encodeTrailer(trailer, this.crc)]);
    return trailer;
  }
}

/**
 * Reads exactly the bytes asked for from an async source of chunks (a file or stdin stream),
 * counting the offset; a short read is reported with how much there was.
 */
export class ByteSource {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  /** Offset in the file of the next byte read returns. */
  offset = 0;

  constructor(private readonly source: AsyncIterator<Buffer | Uint8Array>) {}

  /** Buffers until `bytes` are available or the source ends; returns what is available (<= bytes). */
  private async fill(bytes: number): Promise<void> {
    while (this.buffered < bytes && !this.done) {
      const next = await this.source.next();
      if (next.done) {
        this.done = true;
        break;
      }
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      if (chunk.byteLength === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.byteLength;
    }
  }

  /** Exactly `bytes` bytes, or `undefined` if the source ends first (the bytes there were are consumed). */
  async read(bytes: number): Promise<Buffer | undefined> {
    await this.fill(bytes);
    if (this.buffered < bytes) {
      this.offset += this.buffered;
      this.chunks = [];
      this.buffered = 0;
      return undefined;
    }
    let out: Buffer;
    const first = this.chunks[0];
    if (first !== undefined && first.byteLength >= bytes) {
      out = first.subarray(0, bytes);
      if (first.byteLength === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
    } else {
      out = Buffer.allocUnsafe(bytes);
      let filled = 0;
      while (filled < bytes) {
        const chunk = this.chunks[0]!;
        const take = Math.min(chunk.byteLength, bytes - filled);
        chunk.copy(out, filled, 0, take);
        filled += take;
        if (take === chunk.byteLength) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(take);
      }
    }
    this.buffered -= bytes;
    this.offset += bytes;
    return out;
  }

  /** Whether the source has no more bytes. */
  async atEnd(): Promise<boolean> {
    await this.fill(1);
    return this.buffered === 0;
  }
}

/** A verified block: its entries in the core encoding. */
export interface BackupBlock {
  /** Its position: 0 for the first block. */
  index: number;
  /** Byte offset of its frame in the file. */
  offset: number;
  /** Bytes it takes in the file (frame and payload). */
  fileBytes: number;
  entries: number;
  raw: Buffer;
}

/**
 * Reads a backup: `header()` first, then `blocks()` yields each block once verified and ends
 * after the trailer is verified (and nothing follows it). Throws BackupDamagedError.
 */
export class BackupReader {
  private crc = 0;
  private entries = 0;
  private blocksRead = 0;
  private rawBytes = 0;
  trailer: BackupTrailer | undefined;

  constructor(private readonly input: ByteSource) {}

  /** Bytes of the file read so far. */
  get offset(): number {
    return this.input.offset;
  }

  /** `bytes` more bytes of `what`, which starts at byte `start` of the file; a short file is damage. */
  private async need(bytes: number, what: string, start = this.input.offset): Promise<Buffer> {
    const out = await this.input.read(bytes);
    if (out === undefined) {
      throw new BackupDamagedError(this.input.offset, `the file ends there, inside ${what} starting at byte ${start} (truncated)`);
    }
    this.crc = crc32(out, this.crc);
    return out;
  }

  async header(): Promise<BackupHeader> {
    const fixed = await this.input.read(headerFixedBytes - 4);
    if (fixed === undefined) throw new BackupDamagedError(this.input.offset, 'the file ends inside the header (truncated, or not a ckv backup)');
    if (!fixed.subarray(0, 8).equals(backupMagic)) throw new BackupDamagedError(0, 'not a ckv backup file (its first bytes are not the ckv backup magic)');
    this.crc = crc32(fixed, this.crc);
    const formatVersion = fixed.readUInt16BE(8);
    if (formatVersion !== backupFormatVersion) {
      throw new BackupDamagedError(8, `format version ${formatVersion}; this ckv reads version ${backupFormatVersion} (a newer ckv wrote it, or the header is damaged)`);
    }
    const flags = fixed.readUInt16BE(10);
    const createdAtMs = Number(fixed.readBigUInt64BE(12));
    const sourceNodeId = fixed.toString('hex', 20, 20 + nodeIdBytes);
    const prefixBytes = fixed.readUInt16BE(20 + nodeIdBytes);
    if (prefixBytes > keyBytesMax) throw new BackupDamagedError(20 + nodeIdBytes, `header prefix length ${prefixBytes} is over ${keyBytesMax} (damaged header)`);
    const prefix = await this.need(prefixBytes, 'the header', 0);
    const headerCrc = (await this.input.read(4)) ?? failTruncated(this.input.offset, 'the header');
    const expected = this.crc;
    this.crc = crc32(headerCrc, this.crc);
    if (headerCrc.readUInt32BE(0) !== expected) throw new BackupDamagedError(0, 'the header fails its checksum');
    if ((flags & ~flagIncludesDeleted) !== 0) throw new BackupDamagedError(10, `unknown header flags ${flags}`);
    return { formatVersion, includesDeleted: (flags & flagIncludesDeleted) !== 0, createdAtMs, sourceNodeId, prefix: prefix.toString('utf8') };
  }

  /** Each block, verified; ends once the trailer is verified. */
  async *blocks(): AsyncGenerator<BackupBlock> {
    for (;;) {
      const offset = this.input.offset;
      const crcBefore = this.crc;
      const kind = await this.input.read(1);
      if (kind === undefined) throw new BackupDamagedError(offset, 'the file ends there, before its trailer (truncated)');
      this.crc = crc32(kind, this.crc);
      if (kind[0] === trailerKind) {
        await this.readTrailer(offset, crcBefore, kind);
        return;
      }
      if (kind[0] !== blockKind) throw new BackupDamagedError(offset, `a block was expected there (kind byte ${kind[0]})`);
      const rest = await this.need(blockHeaderBytes - 1, `block ${this.blocksRead}`, offset);
      const frame = Buffer.concat([kind, rest]);
      if (frame.readUInt32BE(18) !== crc32(frame.subarray(0, 18))) throw new BackupDamagedError(offset, `block ${this.blocksRead} header fails its checksum`);
      const codec = frame[1]!;
      const entries = frame.readUInt32BE(2);
      const rawBytes = frame.readUInt32BE(6);
      const storedBytes = frame.readUInt32BE(10);
      const damaged = (why: string): BackupDamagedError => new BackupDamagedError(offset, `block ${this.blocksRead}: ${why}`);
      if (codec !== codecStored && codec !== codecDeflateRaw) throw damaged(`unknown codec ${codec}`);
      if (entries < 1 || entries > blockEntriesMax) throw damaged(`${entries} entries; a block holds 1..${blockEntriesMax}`);
      if (rawBytes > blockRawBytesMax || rawBytes < entries * entryBytesMin) throw damaged(`${rawBytes} raw bytes cannot hold ${entries} entries within the limits`);
      if (storedBytes > rawBytes || (codec === codecStored && storedBytes !== rawBytes)) throw damaged(`${storedBytes} stored bytes for ${rawBytes} raw bytes`);
      const payload = await this.need(storedBytes, `block ${this.blocksRead}`, offset);
      if (crc32(payload) !== frame.readUInt32BE(14)) {
        throw damaged(`its ${storedBytes} bytes of data (from byte ${offset + blockHeaderBytes}) fail their checksum`);
      }
      let raw: Buffer;
      if (codec === codecStored) raw = payload;
      else {
        try {
          raw = await inflateRawAsync(payload, { maxOutputLength: rawBytes });
        } catch (error) {
          throw damaged(`it does not inflate (${error instanceof Error ? error.message : String(error)})`);
        }
      }
      if (raw.byteLength !== rawBytes) throw damaged(`it inflates to ${raw.byteLength} bytes, not the ${rawBytes} announced`);
      const counted = countEntries(raw);
      if (counted !== entries) throw damaged(`it holds ${counted ?? 'malformed'} entries, not the ${entries} announced`);
      const index = this.blocksRead++;
      this.entries += entries;
      this.rawBytes += rawBytes;
      yield { index, offset, fileBytes: blockHeaderBytes + storedBytes, entries, raw };
    }
  }

  private async readTrailer(offset: number, fileCrc: number, kind: Buffer): Promise<void> {
    const rest = await this.need(trailerBytes - 1, 'the trailer', offset);
    const trailer = Buffer.concat([kind, rest]);
    if (trailer.readUInt32BE(29) !== crc32(trailer.subarray(0, 29))) throw new BackupDamagedError(offset, 'the trailer fails its checksum');
    const entries = Number(trailer.readBigUInt64BE(1));
    const blocks = Number(trailer.readBigUInt64BE(9));
    const rawBytes = Number(trailer.readBigUInt64BE(17));
    if (entries !== this.entries || blocks !== this.blocksRead || rawBytes !== this.rawBytes) {
      throw new BackupDamagedError(
        offset,
        `the trailer counts ${entries} entries in ${blocks} blocks (${rawBytes} bytes), but the file holds ${this.entries} in ${this.blocksRead} (${this.rawBytes} bytes)`,
      );
    }
    if (trailer.readUInt32BE(25) !== fileCrc >>> 0) throw new BackupDamagedError(offset, 'the checksum over the whole file does not match');
    if (!(await this.input.atEnd())) throw new BackupDamagedError(offset + trailerBytes, 'bytes follow the trailer');
    this.trailer = { entries, blocks, rawBytes };
  }
}

function failTruncated(offset: number, what: string): never {
  throw new BackupDamagedError(offset, `the file ends inside ${what} (truncated)`);
}

/**
 * How many entries in the core encoding `raw` holds back to back, walking only their lengths
 * (each bounded by the core's limits); undefined if it is not a whole number of entries.
 */
export function countEntries(raw: Uint8Array): number | undefined {
  let at = 0;
  let count = 0;
  const varint = (): number | undefined => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8 && at < raw.byteLength; i++) {
      const byte = raw[at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
    return undefined;
  };
  while (at < raw.byteLength) {
    const keyBytes = varint();
    if (keyBytes === undefined || keyBytes === 0 || keyBytes > keyBytesMax) return undefined;
    at += keyBytes;
    if (at + 1 + 8 + nodeIdBytes > raw.byteLength) return undefined;
    const flags = raw[at]!;
    at += 1 + 8 + nodeIdBytes;
    if (flags === 2) {
      // A value with an expiry (src/core/entry.ts): its TTL comes before the value.
      const ttlMs = varint();
      if (ttlMs === undefined || ttlMs < 1 || ttlMs > ttlMsMax) return undefined;
    }
    if (flags === 0 || flags === 2) {
      const valueBytes = varint();
      if (valueBytes === undefined || valueBytes > valueBytesMax) return undefined;
      at += valueBytes;
    } else if (flags !== 1) return undefined;
    if (at > raw.byteLength) return undefined;
    count++;
  }
  return count;
}
