import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteWriter } from '../../src/core/bytes.js';
import { encodeEntry } from '../../src/core/entry.js';
import { MalformedError } from '../../src/core/errors.js';
import { controlFrameBytesMax, merkleDepthMax, merkleFanout, receivedEncodingBytesMax, syncProtocolVersion } from '../../src/core/limits.js';
import {
  FrameType,
  RefuseReason,
  UnsupportedVersionError,
  decodeFrame,
  encodeChildren,
  encodeEntriesFrameEncoded,
  encodeFrame,
  refuseReasonName,
  type ChildrenFrame,
  type Frame,
  type LeafNeed,
  type LeafSummary,
} from '../../src/core/sync-frames.js';
import { decodesOrMalformed, entryArb, record, versionArb } from '../helpers/core-gen.js';

const valueLimit = 1 << 20;
const listMax = merkleFanout ** merkleDepthMax;

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u8 = fc.integer({ min: 0, max: 255 });

/** Sorted distinct indices: the protocol delta-codes them. */
const sortedIndices = (max: number, maxLength: number) =>
  fc.uniqueArray(fc.integer({ min: 0, max }), { maxLength }).map((xs) => xs.sort((a, b) => a - b));

const fingerprintListsArb: fc.Arbitrary<LeafNeed[]> = sortedIndices(listMax - 1, 8).chain((leaves) =>
  fc.tuple(...leaves.map(() => fc.array(u32, { maxLength: 6 }))).map((lists) =>
    leaves.map((leaf, i) => ({ leaf, fingerprints: lists[i]! })),
  ),
);

const helloArb: fc.Arbitrary<Frame> = record({
  type: fc.constant(FrameType.hello),
  cluster: fc.string({ unit: 'binary', maxLength: 60 }),
  depth: u8,
  childDigestBytes: u8,
  salt: u32,
  rootDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  rootCount: fc.oneof(fc.nat(), fc.maxSafeNat()),
  wallMs: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
});

const refuseArb: fc.Arbitrary<Frame> = record({
  type: fc.constant(FrameType.refuse),
  reason: u8,
  // At most 200 UTF-16 units: the encoder keeps the first 200.
  message: fc.string({ unit: 'binary', maxLength: 100 }),
});

const summariesArb: fc.Arbitrary<LeafSummary[]> = sortedIndices(listMax - 1, 8).chain((leaves) =>
  fc.tuple(...leaves.map(() => fc.array(record({ keyFingerprint: u32, version: versionArb }), { maxLength: 6 }))).map((lists) =>
    leaves.map((leaf, i) => ({ leaf, items: lists[i]! })),
  ),
);

const stepArb: fc.Arbitrary<Frame> = record({
  type: fc.constant(FrameType.step),
  level: u8,
  descend: sortedIndices(listMax - 1, 20),
  pull: fc.array(record({ level: u8, index: fc.integer({ min: 0, max: listMax - 1 }) }), { maxLength: 10 }),
  summaries: summariesArb,
});

const entriesArb: fc.Arbitrary<Frame> = record({
  type: fc.constant(FrameType.entries),
  entries: fc.array(entryArb, { maxLength: 8 }),
});

const simpleFrameArb: fc.Arbitrary<Frame> = fc.oneof(
  helloArb,
  refuseArb,
  fc.constant<Frame>({ type: FrameType.inSync }),
  fc.constant<Frame>({ type: FrameType.bye }),
  stepArb,
  entriesArb,
);

function popcount(mask: number): number {
  let n = 0;
  for (let m = mask; m !== 0; m &= m - 1) n++;
  return n;
}

/** A children frame and the projection width it is encoded with. */
const childrenArb: fc.Arbitrary<[ChildrenFrame, number]> = fc.integer({ min: 1, max: 4 }).chain((width) =>
  fc
    .record({
      level: u8,
      parents: sortedIndices(listMax - 1, 12),
      masks: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 12, maxLength: 12 }),
      projectionSeeds: fc.array(fc.integer({ min: 0, max: 256 ** width - 1 }), { minLength: 192, maxLength: 192 }),
      needs: fingerprintListsArb,
    })
    .map(({ level, parents, masks, projectionSeeds, needs }): [ChildrenFrame, number] => {
      let next = 0;
      const groups = parents.map((parent, g) => {
        const nonEmptyMask = masks[g]!;
        const projections = Array.from({ length: popcount(nonEmptyMask) }, () => projectionSeeds[next++]!);
        return { parent, nonEmptyMask, projections };
      });
      return [{ type: FrameType.children, level, groups, needs }, width];
    }),
);

/** Any valid frame, encoded, with the width to decode it with. */
const encodedFrameArb: fc.Arbitrary<[Uint8Array, number]> = fc.oneof(
  fc.tuple(simpleFrameArb, fc.integer({ min: 1, max: 4 })).map(([frame, width]): [Uint8Array, number] => [
    encodeFrame(frame),
    width,
  ]),
  childrenArb.map(([frame, width]): [Uint8Array, number] => [encodeChildren(frame, width), width]),
);

/**
 * A decoded frame without an Entries frame's `encodings`, after checking them: each entry of a
 * frame encodeFrame made is canonical, so each encoding is a view of exactly encodeEntry's bytes
 * (none for an entry above receivedEncodingBytesMax).
 */
function checked(frame: Frame): Frame {
  if (frame.type !== FrameType.entries) return frame;
  const { encodings, received: _received, ...rest } = frame;
  assert.equal(encodings?.length, frame.entries.length, 'an encoding per entry');
  frame.entries.forEach((entry, i) => {
    const canonical = encodeEntry(entry);
    if (canonical.byteLength > receivedEncodingBytesMax) assert.equal(encodings![i], undefined);
    else assert.deepEqual(Buffer.from(encodings![i]!), Buffer.from(canonical));
  });
  return rest;
}

function varintBytes(value: number): number[] {
  return [...new ByteWriter(16).varint(value).finish()];
}

describe('sync frame encoding', () => {
  // The responder's copy of stored bytes (sendEncoded) must be the frame encodeFrame makes.
  it('an Entries frame from encoded entries is byte for byte encodeFrame of the entries', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 200 }), (entries) => {
        const copied = encodeEntriesFrameEncoded(entries.map((entry) => encodeEntry(entry)));
        assert.deepEqual(Buffer.from(copied), Buffer.from(encodeFrame({ type: FrameType.entries, entries })));
      }),
      { numRuns: 300 },
    );
  });

  // Every non-children frame type decodes to exactly what was encoded, with any session width.
  it('round-trips hello, refuse, inSync, bye, step and entries frames', () => {
    fc.assert(
      fc.property(simpleFrameArb, fc.integer({ min: 1, max: 4 }), (frame, width) => {
        const bytes = encodeFrame(frame);
        assert.equal(bytes[0], syncProtocolVersion);
        assert.equal(bytes[1], frame.type);
        assert.deepEqual(checked(decodeFrame(bytes, width, valueLimit)), frame);
      }),
      { numRuns: 1000 },
    );
  });

  // Children frames, encoded with encodeChildren at widths 1..4, decode to the same groups and needs.
  it('round-trips children frames at widths 1 to 4', () => {
    const widths = new Set<number>();
    fc.assert(
      fc.property(childrenArb, ([frame, width]) => {
        widths.add(width);
        assert.deepEqual(decodeFrame(encodeChildren(frame, width), width, valueLimit), frame);
      }),
      { numRuns: 500 },
    );
    assert.deepEqual([...widths].sort(), [1, 2, 3, 4]);
    // encodeFrame refuses children frames: their width is a session parameter.
    assert.throws(() => encodeFrame({ type: FrameType.children, level: 1, groups: [], needs: [] }));
  });

  // Hand-written frames of each type at their boundaries.
  it('round-trips boundary frames', () => {
    const frames: [Frame, number][] = [
      [{ type: FrameType.inSync }, 4],
      [{ type: FrameType.bye }, 4],
      [{ type: FrameType.entries, entries: [] }, 4],
      [{ type: FrameType.refuse, reason: RefuseReason.busy, message: '' }, 4],
      [
        {
          type: FrameType.hello,
          cluster: '',
          depth: 4,
          childDigestBytes: 4,
          salt: 0xffffffff,
          rootDigest: new Uint8Array(32).fill(0xff),
          rootCount: Number.MAX_SAFE_INTEGER,
          wallMs: 2 ** 48 - 1,
        },
        4,
      ],
      [{ type: FrameType.step, level: 0, descend: [0, listMax - 1], pull: [{ level: 5, index: listMax - 1 }], summaries: [] }, 4],
    ];
    for (const [frame, width] of frames) assert.deepEqual(checked(decodeFrame(encodeFrame(frame), width, valueLimit)), frame);
    const children: ChildrenFrame = {
      type: FrameType.children,
      level: 1,
      groups: [{ parent: 0, nonEmptyMask: 0xffff, projections: Array.from({ length: 16 }, (_, i) => 0xffffffff - i) }],
      needs: [{ leaf: listMax - 1, fingerprints: [0, 0xffffffff] }],
    };
    assert.deepEqual(decodeFrame(encodeChildren(children, 4), 4, valueLimit), children);
    assert.equal(refuseReasonName(RefuseReason.busy), 'busy');
    assert.equal(refuseReasonName(200), 'unknown(200)');
  });

  // A refusal message longer than 200 characters is cut to 200 and still decodes.
  it('truncates long refuse messages', () => {
    const frame: Frame = { type: FrameType.refuse, reason: RefuseReason.malformed, message: 'x'.repeat(5_000) };
    const decoded = decodeFrame(encodeFrame(frame), 4, valueLimit);
    assert.deepEqual(decoded, { ...frame, message: 'x'.repeat(200) });
  });
});

describe('sync frame decoding of hostile input', () => {
  // Random bytes (with plausible headers) either decode or throw MalformedError; never RangeError/TypeError.
  it('random bytes throw only MalformedError', { timeout: 5_000 }, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(syncProtocolVersion, syncProtocolVersion, syncProtocolVersion, 0, 2, 255),
        fc.integer({ min: 0, max: 9 }),
        fc.uint8Array({ maxLength: 160 }),
        fc.integer({ min: 1, max: 4 }),
        (version, type, body, width) => {
          const bytes = Uint8Array.from([version, type, ...body]);
          const outcome = decodesOrMalformed(() => decodeFrame(bytes, width, valueLimit));
          if (version !== syncProtocolVersion) assert.equal(outcome, 'malformed');
          if (type === 0 || type > 7) assert.equal(outcome, 'malformed');
        },
      ),
      { numRuns: 4000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        decodesOrMalformed(() => decodeFrame(bytes, 4, valueLimit));
      }),
      { numRuns: 1000 },
    );
  });

  // Valid frames with bytes flipped either decode or throw MalformedError.
  it('corrupted valid frames throw only MalformedError', { timeout: 5_000 }, () => {
    fc.assert(
      fc.property(
        encodedFrameArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        ([bytes, width], flips) => {
          const corrupted = bytes.slice();
          for (const [at, xor] of flips) corrupted[at % corrupted.byteLength]! ^= xor;
          decodesOrMalformed(() => decodeFrame(corrupted, width, valueLimit));
        },
      ),
      { numRuns: 3000 },
    );
  });

  // Every strict prefix of a valid frame, and a valid frame plus a trailing byte, throws MalformedError.
  it('truncated or extended valid frames throw MalformedError', { timeout: 5_000 }, () => {
    fc.assert(
      fc.property(encodedFrameArb, fc.nat(), ([bytes, width], cut) => {
        assert.throws(() => decodeFrame(bytes.subarray(0, cut % bytes.byteLength), width, valueLimit), MalformedError);
        const extended = new Uint8Array(bytes.byteLength + 1);
        extended.set(bytes);
        assert.throws(() => decodeFrame(extended, width, valueLimit), MalformedError);
      }),
      { numRuns: 2000 },
    );
  });

  // An unknown protocol version is an UnsupportedVersionError, which is a MalformedError.
  it('rejects other protocol versions with UnsupportedVersionError', () => {
    for (const version of [0, syncProtocolVersion + 1, 255]) {
      const bytes = encodeFrame({ type: FrameType.bye });
      bytes[0] = version;
      assert.throws(
        () => decodeFrame(bytes, 4, valueLimit),
        (error: unknown) =>
          error instanceof UnsupportedVersionError &&
          error instanceof MalformedError &&
          error.name === 'UnsupportedVersionError' &&
          error.version === version,
      );
    }
  });

  // Frames claiming enormous counts are rejected at the count ("... the limit is"), quickly and without
  // allocating for it; counts within the bound fail at the first missing byte.
  it('rejects huge claimed counts quickly', () => {
    const header = (type: number) => [syncProtocolVersion, type];
    const hostile: [string, number[], RegExp][] = [
      ['2^40 entries', [...header(FrameType.entries), ...varintBytes(2 ** 40)], /limit/],
      ['2^53 entries', [...header(FrameType.entries), ...varintBytes(2 ** 53)], /limit/],
      ['entries count = frame size', [...header(FrameType.entries), ...varintBytes(6), 1, 107, 0], /truncated/],
      ['2^40 child groups', [...header(FrameType.children), 1, ...varintBytes(2 ** 40)], /limit/],
      ['max child groups, no data', [...header(FrameType.children), 1, ...varintBytes(listMax)], /truncated/],
      ['2^40 descend indices', [...header(FrameType.step), 1, ...varintBytes(2 ** 40)], /limit/],
      ['2^40 pulls', [...header(FrameType.step), 1, 0, ...varintBytes(2 ** 40)], /limit/],
      ['2^40 summaries', [...header(FrameType.step), 1, 0, 0, ...varintBytes(2 ** 40)], /limit/],
      ['2^40 summary items', [...header(FrameType.step), 1, 0, 0, 0, 0, 1, 0, ...varintBytes(2 ** 40)], /limit/],
      ['2^40 summary nodes', [...header(FrameType.step), 1, 0, 0, ...varintBytes(2 ** 40)], /limit/],
      ['summary item naming no node', [...header(FrameType.step), 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0], /limit/],
      ['2^40-byte cluster name', [...header(FrameType.hello), ...varintBytes(2 ** 40)], /limit/],
      ['2^40-byte refuse message', [...header(FrameType.refuse), 1, ...varintBytes(2 ** 40)], /limit/],
      ['2^40-byte entry value', [...header(FrameType.entries), 1, 1, 107, 0, ...new Array<number>(16).fill(0), ...varintBytes(2 ** 40)], /limit/],
    ];
    for (const [what, bytes, message] of hostile) {
      const start = performance.now();
      assert.throws(
        () => decodeFrame(Uint8Array.from(bytes), 4, valueLimit),
        (error: unknown) => error instanceof MalformedError && message.test(error.message),
        what,
      );
      const elapsedMs = performance.now() - start;
      assert.ok(elapsedMs < 250, `${what}: took ${elapsedMs.toFixed(1)} ms`);
    }
  });

  // A control frame larger than controlFrameBytesMax is refused before it is parsed.
  it('rejects oversized control frames', () => {
    const bytes = new Uint8Array(controlFrameBytesMax + 1);
    bytes[0] = syncProtocolVersion;
    bytes[1] = FrameType.step;
    assert.throws(() => decodeFrame(bytes, 4, valueLimit), /exceeds/);
  });

  // An entry value over the caller's limit is malformed.
  it('bounds entry values by the given limit', () => {
    const frame: Frame = {
      type: FrameType.entries,
      entries: [{ key: 'k', value: new Uint8Array(100), version: { hlc: 1n, node: '00000000000000aa' } }],
    };
    const bytes = encodeFrame(frame);
    assert.deepEqual(checked(decodeFrame(bytes, 4, 100)), frame);
    assert.throws(() => decodeFrame(bytes, 4, 99), MalformedError);
  });

  // A peer may encode a length the long way (a varint with a zero continuation byte): the entry
  // is the same, but its bytes are not canonical, so none are kept for it (the store encodes it
  // again); the frame's other entries keep theirs, but for a large one. The encoding canary
  // keeps them all.
  it('keeps the bytes of an entry as its encoding only when they are canonical and not large', () => {
    const version = { hlc: 1n << 20n, node: '00000000000000aa' };
    const entries = [
      { key: 'plain', value: new Uint8Array([1, 2, 3]), version },
      { key: 'padded key length', value: new Uint8Array([4]), version },
      { key: 'padded value length', value: new Uint8Array([5, 6]), version },
      { key: 'padded ttl', value: new Uint8Array([7]), version, expiresAtMs: Number(version.hlc >> 16n) + 5 },
      { key: 'tombstone', value: null, version },
      // Canonical but large: encoded again rather than keep the frame (receivedEncodingBytesMax).
      { key: 'large', value: new Uint8Array(receivedEncodingBytesMax), version },
    ];
    const pad = (bytes: Uint8Array, at: number): Uint8Array => Buffer.concat([bytes.subarray(0, at), Buffer.from([bytes[at]! | 0x80, 0]), bytes.subarray(at + 1)]);
    const encoded = entries.map((entry) => encodeEntry(entry));
    const keyEnd = (i: number): number => 1 + encoded[i]![0]!;
    const wire = [
      encoded[0]!,
      pad(encoded[1]!, 0),
      pad(encoded[2]!, keyEnd(2) + 1 + 16),
      pad(encoded[3]!, keyEnd(3) + 1 + 16),
      encoded[4]!,
      encoded[5]!,
    ];
    const frame = new ByteWriter().u8(syncProtocolVersion).u8(FrameType.entries).varint(wire.length);
    for (const bytes of wire) frame.raw(bytes);
    const bytes = frame.finish();
    const decoded = decodeFrame(bytes, 4, valueLimit);
    assert.equal(decoded.type, FrameType.entries);
    if (decoded.type !== FrameType.entries) return;
    assert.deepEqual(decoded.entries, entries, 'the padded entries decode to the same entries');
    assert.deepEqual(
      decoded.encodings!.map((e) => (e === undefined ? undefined : Buffer.from(e))),
      [Buffer.from(encoded[0]!), undefined, undefined, undefined, Buffer.from(encoded[4]!), undefined],
    );
    const unchecked = decodeFrame(bytes, 4, valueLimit, { encodingsUnchecked: true });
    assert.ok(unchecked.type === FrameType.entries && unchecked.encodings!.every((e, i) => Buffer.compare(e!, wire[i]!) === 0));
  });
});
