/**
 * A small binary writer and a bounds-checked reader: the one codec for entries, sync frames
 * and gossip messages. Integers are unsigned LEB128 varints (small counts cost one byte);
 * stamps are fixed 8 bytes. Every read checks bounds and throws MalformedError, so bytes
 * from a peer can never make us read past a buffer or allocate what it claims.
 */
import { MalformedError } from './errors.js';

const textEncoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the text (a key may begin with one), not a byte-order
// mark to drop: without it, a key "\uFEFFa" written on one node arrived on the others as "a".
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const hostIsLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * `count` unsigned 32-bit integers stored big-endian at `bytes[offset..]`, copied by one native
 * copy and byte swap: a start reads ~100k of them (snapshot leaf counts, key filter words)
 * before V8 has compiled anything, where a loop of DataView reads ran ~10x slower. The caller
 * has checked the bounds.
 */
export function readU32ArrayBigEndian(bytes: Uint8Array, offset: number, count: number): Uint32Array {
  const values = new Uint32Array(count);
  const target = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  target.set(bytes.subarray(offset, offset + 4 * count));
  if (hostIsLittleEndian) target.swap32();
  return values;
}

/** Writes `values` big-endian at `bytes[offset..]` (readU32ArrayBigEndian's inverse); the caller has sized `bytes`. */
export function writeU32ArrayBigEndian(bytes: Uint8Array, offset: number, values: Uint32Array): void {
  const target = Buffer.from(bytes.buffer, bytes.byteOffset + offset, 4 * values.length);
  target.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  if (hostIsLittleEndian) target.swap32();
}

/**
 * Bytes `from`..`to` of `bytes` as a plain Uint8Array over the same memory. Not
 * `subarray`: on a Buffer that builds another Buffer through its species constructor, about
 * three times the cost, which showed in per-entry hashing (docs/measurements.md).
 */
export function byteRange(bytes: Uint8Array, from: number, to: number): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + from, to - from);
}

export function utf8(text: string): Uint8Array {
  return textEncoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  try {
    return textDecoder.decode(bytes);
  } catch {
    throw new MalformedError('text is not valid UTF-8');
  }
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class ByteWriter {
  private buffer: Uint8Array;
  private view: DataView;
  private length = 0;

  constructor(initialBytes = 256) {
    this.buffer = new Uint8Array(initialBytes);
    this.view = new DataView(this.buffer.buffer);
  }

  get byteLength(): number {
    return this.length;
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.byteLength) return;
    let capacity = this.buffer.byteLength * 2;
    while (capacity < this.length + bytes) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
    this.view = new DataView(next.buffer);
  }

  u8(value: number): this {
    this.reserve(1);
    this.buffer[this.length++] = value & 0xff;
    return this;
  }

  u16(value: number): this {
    this.reserve(2);
    this.view.setUint16(this.length, value);
    this.length += 2;
    return this;
  }

  u32(value: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, value);
    this.length += 4;
    return this;
  }

  u64(value: bigint): this {
    this.reserve(8);
    this.view.setBigUint64(this.length, value);
    this.length += 8;
    return this;
  }

  /** Unsigned varint for values up to 2^53. */
  varint(value: number): this {
    let v = value;
    while (v >= 0x80) {
      this.u8((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    return this.u8(v);
  }

  raw(bytes: Uint8Array): this {
    this.reserve(bytes.byteLength);
    this.buffer.set(bytes, this.length);
    this.length += bytes.byteLength;
    return this;
  }

  /** Length-prefixed bytes. */
  bytes(bytes: Uint8Array): this {
    return this.varint(bytes.byteLength).raw(bytes);
  }

  string(text: string): this {
    return this.bytes(utf8(text));
  }

  /** The bytes written: a view of the buffer, not a copy (a 64 MiB value is not copied again). */
  finish(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

export class ByteReader {
  private offset = 0;
  private readonly view: DataView;

  constructor(private readonly buffer: Uint8Array) {
    this.view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  get remaining(): number {
    return this.buffer.byteLength - this.offset;
  }

  /** Bytes read so far: the offset of the next read in the buffer. */
  get position(): number {
    return this.offset;
  }

  private need(bytes: number): void {
    if (bytes > this.remaining) throw new MalformedError(`truncated: need ${bytes} bytes, ${this.remaining} left`);
  }

  u8(): number {
    this.need(1);
    return this.buffer[this.offset++]!;
  }

  u16(): number {
    this.need(2);
    const value = this.view.getUint16(this.offset);
    this.offset += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.offset);
    this.offset += 4;
    return value;
  }

  u64(): bigint {
    this.need(8);
    const value = this.view.getBigUint64(this.offset);
    this.offset += 8;
    return value;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
    throw new MalformedError('varint longer than 8 bytes');
  }

  /** A varint that must not exceed `max`: counts and lengths from peers are bounded here. */
  bounded(max: number, what: string): number {
    const value = this.varint();
    if (value > max) throw new MalformedError(`${what} is ${value}; the limit is ${max}`);
    return value;
  }

  /**
   * Steps over the next `length` bytes and returns their offset in `source`: for a caller that
   * reads a few bytes in place rather than through a view of their own (readVersion's node id).
   */
  skip(length: number): number {
    this.need(length);
    const at = this.offset;
    this.offset += length;
    return at;
  }

  /** The memory read (skip's offsets are into it). */
  get source(): Uint8Array {
    return this.buffer;
  }

  /**
   * The next `length` bytes: a plain Uint8Array over the reader's memory (byteRange), also
   * when the reader reads a Buffer (gossip messages come as Buffers). So `.slice()` of it is
   * a copy: a Buffer's slice() is another view, which let a decoded value pin the whole
   * received message.
   */
  raw(length: number): Uint8Array {
    this.need(length);
    const bytes = byteRange(this.buffer, this.offset, this.offset + length);
    this.offset += length;
    return bytes;
  }

  bytes(max: number, what = 'length'): Uint8Array {
    return this.raw(this.bounded(max, what));
  }

  string(max: number, what = 'text'): string {
    return fromUtf8(this.bytes(max, what));
  }

  end(): void {
    if (this.remaining !== 0) throw new MalformedError(`${this.remaining} trailing bytes`);
  }
}
