/**
 * Noise's frame decoder stops at the end of what it was given without making an Error.
 *
 * @chainsafe/libp2p-noise (17.0.0) cuts the bytes a connection receives into noise messages with
 * @libp2p/utils' `LengthPrefixedDecoder` (7.4.1): after each chunk from the socket it reads
 * frames until the buffer is used up, and it learns that it is used up when the length decoder
 * (noise's `uint16BEDecode`) throws a RangeError for fewer than 2 bytes. A chunk almost always
 * ends where a message ends, so every socket read of every connection made and threw one new
 * RangeError, and V8 captures a stack trace for each (~14 frames deep here): ~4.5 us warm in a
 * probe, ~16 us in a node, and 4.9 % of all nodes' busy time at 5 nodes and 500 writes/s
 * (`node dist/bench/per-write-cpu.js --profile DIR`: `uint16BEDecode`'s self time), where each
 * write is read as two socket chunks on each of the five nodes.
 *
 * `installNoiseFrameDecoder()` wraps the class's `decode` so that each decoder's length
 * decoder, on its first use, is replaced by one that throws a RangeError made once, at load,
 * when it is given no bytes at all; otherwise it calls the original. The library catches it
 * exactly as before (`instanceof RangeError`: wait for more bytes), so framing, limits and
 * errors are unchanged; only the empty case stops allocating. A partial prefix (1 byte) still
 * goes to the original (rare: a chunk split inside a 2-byte prefix). Measured: two libp2p
 * nodes in one process at 1,000 messages a second (`node dist/bench/gossip-hop-cpu.js --rate
 * 1000`), ~240 -> ~215 us of CPU a message; at 2,000 a second, and for 5 nodes at 500 writes a
 * second, within the noise (docs/measurements.md, 2026-12-08 (1)).
 *
 * The class is @libp2p/utils' public export, the one noise imports (one copy in node_modules,
 * and the bundle holds one). If a future version has no `decode` to wrap, or a decoder keeps no
 * `lengthDecoder` function, nothing is changed and the library's own code runs (slower only):
 * `installNoiseFrameDecoder` says 'unsupported' (the node logs it), and
 * test/unit/noise-frame-decoder.test.ts fails.
 */
import { LengthPrefixedDecoder } from '@libp2p/utils';
import type { Uint8ArrayList } from 'uint8arraylist';

type LengthDecoder = (data: Uint8ArrayList | Uint8Array) => number;

interface DecoderLike {
  lengthDecoder?: LengthDecoder;
}

export type NoiseFrameDecoderPolicy = 'installed' | 'unsupported';

const patched = Symbol.for('ckv.noise.frameDecoderShortRead');
const guardedMark = Symbol.for('ckv.noise.guardedLengthDecoder');

/**
 * Thrown for an empty buffer: one object for the process, so no stack trace is captured per
 * read. The decoder only tests its class and drops it.
 */
const noBytesYet = new RangeError('no length prefix yet: waiting for more bytes');

/** `inner`, except that an empty buffer throws `noBytesYet` without calling it. */
function guarded(inner: LengthDecoder): LengthDecoder {
  const decode = ((data: Uint8ArrayList | Uint8Array): number => {
    if (data.byteLength === 0) throw noBytesYet;
    return inner(data);
  }) as LengthDecoder & { [guardedMark]?: true };
  decode[guardedMark] = true;
  return decode;
}

/** Idempotent: wraps LengthPrefixedDecoder.prototype.decode once per process. */
export function installNoiseFrameDecoder(): NoiseFrameDecoderPolicy {
  const proto = LengthPrefixedDecoder.prototype as unknown as Record<symbol, unknown> & { decode?: (this: DecoderLike, buf: Uint8Array | Uint8ArrayList) => Generator<Uint8ArrayList> };
  const original = proto.decode;
  if (typeof original !== 'function') return 'unsupported';
  if (proto[patched] === true) return 'installed';
  proto.decode = function decode(this: DecoderLike, buf: Uint8Array | Uint8ArrayList): Generator<Uint8ArrayList> {
    const lengthDecoder = this.lengthDecoder as (LengthDecoder & { [guardedMark]?: true }) | undefined;
    if (typeof lengthDecoder === 'function' && lengthDecoder[guardedMark] !== true) this.lengthDecoder = guarded(lengthDecoder);
    return original.call(this, buf);
  };
  proto[patched] = true;
  return 'installed';
}
