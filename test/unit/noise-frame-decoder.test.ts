/**
 * Noise's frame decoder with src/net/noise-frame-decoder.ts installed, on the library's real
 * LengthPrefixedDecoder and noise's real 2-byte length decoder: the same frames come out however
 * the bytes are cut into chunks, the library's limits still throw, and the length decoder is no
 * longer called (to throw a new RangeError) once a chunk's frames are used up.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { LengthPrefixedDecoder } from '@libp2p/utils';
import { Uint8ArrayList } from 'uint8arraylist';
import { installNoiseFrameDecoder } from '../../src/net/noise-frame-decoder.js';

/** What a length decoder is given (the buffer list type of @libp2p/utils' own dependency). */
type LengthInput = Parameters<NonNullable<NonNullable<ConstructorParameters<typeof LengthPrefixedDecoder>[0]>['lengthDecoder']>>[0];
/** noise's own length decoder (@chainsafe/libp2p-noise, encoder.ts), loaded next to its entry point. */
let uint16BEDecode: (data: LengthInput) => number;

before(async () => {
  assert.equal(installNoiseFrameDecoder(), 'installed', 'the patch must apply to the @libp2p/utils version in use');
  assert.equal(installNoiseFrameDecoder(), 'installed', 'idempotent');
  const entry = import.meta.resolve('@chainsafe/libp2p-noise');
  ({ uint16BEDecode } = (await import(new URL('./encoder.js', entry).href)) as { uint16BEDecode: typeof uint16BEDecode });
});

/** A decoder as noise makes one, whose length decoder records how often it met an empty buffer. */
function noiseDecoder(maxBufferSize = 16 * 1024 * 1024): { decoder: LengthPrefixedDecoder; emptyCalls: () => number } {
  let empty = 0;
  const decoder = new LengthPrefixedDecoder({
    lengthDecoder: (data) => {
      if (data.byteLength === 0) empty++;
      return uint16BEDecode(data);
    },
    maxBufferSize,
    encodingLength: () => 2,
  });
  return { decoder, emptyCalls: () => empty };
}

function framed(payloads: Uint8Array[]): Uint8Array {
  const out = new Uint8ArrayList();
  for (const payload of payloads) {
    out.append(Uint8Array.of(payload.byteLength >> 8, payload.byteLength & 0xff));
    out.append(payload);
  }
  return out.subarray();
}

function payloads(count: number, seed: number): Uint8Array[] {
  let x = seed;
  const next = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  return Array.from({ length: count }, () => Uint8Array.from({ length: 1 + (next() % 600) }, () => next() & 0xff));
}

describe('noise frame decoder', () => {
  it('yields every frame whole however the bytes are cut (1-byte chunks, prefixes split, many frames a chunk)', () => {
    const sent = payloads(200, 7);
    const bytes = framed(sent);
    for (const cut of [1, 2, 3, 7, 143, 1000, bytes.byteLength]) {
      const { decoder } = noiseDecoder();
      const received: Uint8Array[] = [];
      for (let at = 0; at < bytes.byteLength; at += cut) for (const frame of decoder.decode(bytes.subarray(at, at + cut))) received.push(frame.subarray());
      assert.equal(received.length, sent.length, `cut ${cut}`);
      received.forEach((frame, i) => assert.deepEqual(frame, sent[i], `cut ${cut}, frame ${i}`));
    }
  });

  it('does not ask the length decoder about an empty buffer: one whole frame per chunk', () => {
    const { decoder, emptyCalls } = noiseDecoder();
    let frames = 0;
    for (const payload of payloads(100, 3)) for (const _ of decoder.decode(framed([payload]))) frames++;
    assert.equal(frames, 100);
    assert.equal(emptyCalls(), 0, 'the library asks once per chunk without the patch');
  });

  it('keeps the library limits: a buffer past its maximum throws', () => {
    const { decoder } = noiseDecoder(1024);
    const big = framed([new Uint8Array(2000)]);
    assert.throws(() => [...decoder.decode(big)], /Buffer length limit exceeded/);
  });
});
