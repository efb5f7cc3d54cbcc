/** Test helpers: fast-check arbitraries for core types and a small deterministic PRNG. */
import fc from 'fast-check';
import { toHex } from '../../src/core/bytes.js';
import type { Entry, NodeId, Version } from '../../src/core/entry.js';
import { MalformedError } from '../../src/core/errors.js';
import type { Hlc } from '../../src/core/hlc.js';

/** mulberry32: a seeded rng returning floats in [0, 1), for deterministic schedules and data. */
export function seededRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `length` pseudo-random bytes from `rng`. */
export function randomBytes(rng: () => number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(rng() * 256);
  return bytes;
}

/**
 * fc.record producing plain objects only: by default fast-check sometimes builds objects with a
 * null prototype, which deepStrictEqual tells apart from the decoder's plain objects.
 */
export function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}

/** Any 8-byte node id, as 16 lowercase hex digits. */
export const nodeIdArb: fc.Arbitrary<NodeId> = fc.uint8Array({ minLength: 8, maxLength: 8 }).map(toHex);

/** Node ids drawn from a few values (including the extremes) so ties on the node are common. */
export const fewNodeIdsArb: fc.Arbitrary<NodeId> = fc.constantFrom(
  '0000000000000000',
  '00000000000000aa',
  '00000000000000ab',
  '7fffffffffffffff',
  'ffffffffffffffff',
);

/** Any 64-bit stamp, with small stamps frequent so equal stamps happen. */
export const hlcArb: fc.Arbitrary<Hlc> = fc.oneof(
  fc.bigInt({ min: 0n, max: 3n }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);

export const versionArb: fc.Arbitrary<Version> = record({
  hlc: hlcArb,
  node: fc.oneof(fewNodeIdsArb, nodeIdArb),
});

/**
 * Valid keys: 1 to 40 code points from all of Unicode (no lone surrogates), some ASCII-only, and
 * some beginning with U+FEFF (a UTF-8 decoder drops it as a byte-order mark unless told not to).
 */
export const keyArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), weight: 5 },
  { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 20 }), weight: 4 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 10 }).map((rest) => `\uFEFF${rest}`), weight: 1 },
);

/** A value (possibly empty) or a tombstone. */
export const valueArb: fc.Arbitrary<Uint8Array | null> = fc.option(fc.uint8Array({ maxLength: 64 }), {
  nil: null,
  freq: 4,
});

export const entryArb: fc.Arbitrary<Entry> = record({ key: keyArb, value: valueArb, version: versionArb });

/** Runs `fn`; returns the error it threw (undefined if none). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/**
 * Runs a decoder: it may return, or throw MalformedError (or a subclass). Any other error is
 * rethrown wrapped, so a property fails with the offending error type in the message.
 */
export function decodesOrMalformed(fn: () => unknown): 'ok' | 'malformed' {
  const error = thrown(fn);
  if (error === undefined) return 'ok';
  if (error instanceof MalformedError) return 'malformed';
  const name = error instanceof Error ? error.name : typeof error;
  throw new Error(`expected MalformedError, got ${name}: ${String(error)}`, { cause: error });
}
