/**
 * Values that expire (TTL): the pure rules, shared by every read path and the sweeper.
 *
 * A write with a TTL stores `expiresAtMs` = its HLC wall time + the TTL (entry.ts carries it
 * in every encoding). Every node derives the same expiry from the same entry, so they agree
 * on it without talking. A read at `nowMs` >= expiresAtMs sees the key as absent:
 * `visibleAt` turns such an entry into the tombstone it becomes, with the SAME version.
 *
 * Why the same version (and not a later one such as (expiresAtMs, 0, writer)): the version
 * identifies the write, and the write's fate (expire at t) is part of it. A tombstone at the
 * write's own version (1) has the write's Merkle digest, so roots agree before, during and
 * after sweeping, whichever node swept first; (2) loses to every later write, so a key
 * re-written (without TTL, or deleted) after the TTL write keeps the re-write on every node,
 * even on one that swept before the re-write reached it. A tombstone stamped at expiresAtMs
 * would beat such a re-write whenever the re-write was stamped before the expiry, and the
 * sweeping node would spread that loss by anti-entropy.
 *
 * The sweeper (src/node/ttl-sweeper.ts) replaces the stored value by that tombstone if the
 * key still holds exactly that version (Replica.expireUnchanged); the tombstone is then an
 * ordinary one, collected by tombstone GC.
 *
 * Pure: the time is passed in (the node's HLC reading: Replica.hlcNow).
 */
import type { Entry, Version } from './entry.js';
import { hlcWallMs } from './hlc.js';
import { ttlMsMax } from './limits.js';

export { ttlMsMax };

/** Milliseconds per unit of a TTL text. */
const unitMs: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A TTL text ("500ms", "30s", "5m", "2h", "7d"; a whole number and a unit) in ms, or a
 * one-line reason it is not one (callers wrap it in their error kind).
 */
export function parseTtl(text: string): number | string {
  const match = /^(\d{1,15})(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) return `TTL "${text}" is not a whole number with a unit (ms, s, m, h, d), e.g. 30s`;
  return checkTtlMs(Number(match[1]) * unitMs[match[2]!]!);
}

/** `ttlMs` if it is a TTL a write may ask (1 ms to ttlMsMax), else why not. */
export function checkTtlMs(ttlMs: number): number | string {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) return `TTL ${ttlMs} ms: it must be at least 1 ms`;
  if (ttlMs > ttlMsMax) return `TTL ${ttlMs} ms is over the limit of ${ttlMsMax} ms (365 days)`;
  return ttlMs;
}

/** A freshly stamped entry; with a TTL (a value only), its expiry counts from the stamp's wall time. */
export function stampedEntry(key: string, value: Uint8Array | null, version: Version, ttlMs: number | undefined): Entry {
  if (value === null || ttlMs === undefined) return { key, value, version };
  return { key, value, version, expiresAtMs: hlcWallMs(version.hlc) + ttlMs };
}

/** Whether `entry` is a value whose expiry has come at `nowMs`. */
export function isExpired(entry: Entry, nowMs: number): boolean {
  return entry.value !== null && entry.expiresAtMs !== undefined && nowMs >= entry.expiresAtMs;
}

/** The tombstone an expired value becomes: same key and version, no value, no expiry. */
export function expiredTombstone(entry: Entry): Entry {
  return { key: entry.key, value: null, version: entry.version };
}

/** `entry` as a read at `nowMs` sees it: an expired value is its tombstone. */
export function visibleAt(entry: Entry, nowMs: number): Entry;
export function visibleAt(entry: Entry | undefined, nowMs: number): Entry | undefined;
export function visibleAt(entry: Entry | undefined, nowMs: number): Entry | undefined {
  return entry !== undefined && isExpired(entry, nowMs) ? expiredTombstone(entry) : entry;
}

/**
 * `entries` as a read at `nowMs` sees them (visibleAt each). A plain iterator rather than an
 * async generator: one `then` an entry, not a generator's queue (an export streams millions).
 */
export function visibleEntries(entries: AsyncIterable<Entry>, nowMs: number): AsyncIterable<Entry> {
  return {
    [Symbol.asyncIterator]: () => {
      const inner = entries[Symbol.asyncIterator]();
      const shown = (result: IteratorResult<Entry>): IteratorResult<Entry> =>
        result.done === true || result.value.expiresAtMs === undefined ? result : { done: false, value: visibleAt(result.value, nowMs) };
      return {
        next: () => inner.next().then(shown),
        return: async (value?: unknown) => (inner.return ? inner.return(value) : { done: true as const, value: undefined }),
      };
    },
  };
}
