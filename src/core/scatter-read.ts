/**
 * Scatter-gather of a prefix read in partitioned mode (pure: the pages come from a function
 * passed in; no I/O, no clock).
 *
 * Every key lives in one of P partitions, each on its read owners. A prefix read that must
 * see every key covers every partition by asking, per partition, ONE read owner (`assign`):
 * this node when it is a read owner of the partition, else the first up owner in rank order.
 * Partitions are grouped by the owner asked, and each owner gets one request restricted to its
 * partitions (a bitmap, as sync 1.2.0 sessions use). Each owner's answer is a stream of pages
 * in key order, each at most `pageEntries` entries (the owner also bounds a page's bytes), with
 * a continuation (`resumeAfter`: the last key the owner examined) so memory stays bounded: at
 * most one page per stream is held. `scatterScan` merges the sorted streams into one in key
 * order (the store's order: JS string order, UTF-16 code units) and stops at `limit`. A key is in
 * one partition and each partition in one stream at a time (checkPage refuses a key of a
 * partition not asked), so two streams never answer one key; should they, the newest version
 * wins.
 *
 * An owner that fails (unreachable, timed out, or a reply that breaks the rules: `checkPage`)
 * is excluded for those partitions, which are re-assigned to their next candidate owner,
 * starting after the last key the failed stream delivered (nothing is delivered twice, nothing
 * skipped). Partitions with no candidate left are `missing`: `onMissing` is told (it throws to
 * fail the read, OwnersUnavailableError, or records the count for `--allow-partial`).
 * Tombstones are returned (the caller hides them): a newer tombstone must hide an older live
 * version when two streams overlap.
 */
import { compareVersions, keyHashText, type Entry } from './entry.js';
import { MalformedError } from './errors.js';
import { partitionCount, partitionOfHash, type PartitionId } from './placement.js';

/** One page of an owner's answer: entries in key order, all > startAfter. */
export interface ScanPage {
  entries: Entry[];
  /** Undefined: the owner has nothing more. Else: ask again after this key. */
  resumeAfter: string | undefined;
}

export interface PageRequest {
  owner: string;
  partitions: readonly PartitionId[];
  prefix: string;
  startAfter: string | undefined;
  pageEntries: number;
}

export type PageFetch = (request: PageRequest) => Promise<ScanPage>;

export interface ScatterOptions {
  prefix: string;
  startAfter?: string | undefined;
  /** At most this many entries in all (tombstones included); undefined = no limit. */
  limit?: number | undefined;
  /** Entries asked per page (the owner may send fewer). */
  pageEntries: number;
  /** This node's id (preferred when it is a read owner). */
  self: string;
  /** The read owners of a partition, highest rank first. */
  readOwners: (partition: PartitionId) => readonly string[];
  /** Whether a node can be asked now (up; this node always can). */
  usable: (nodeId: string) => boolean;
  fetch: PageFetch;
  /** Partitions no owner can answer for (throw to fail the read). */
  onMissing: (partitions: readonly PartitionId[]) => void;
  /** An owner failed (its partitions go to the next candidate); `rejected`: its page broke checkPage's rules. */
  onOwnerFailed?: (owner: string, error: Error, rejected: boolean) => void;
}

/**
 * Per partition the owner to ask: this node if it is a read owner, else the first usable
 * owner in rank order not in `excluded(p)`. Returns the partitions grouped by owner, and those
 * with no candidate.
 */
export function assign(
  partitions: Iterable<PartitionId>,
  readOwners: (partition: PartitionId) => readonly string[],
  self: string,
  usable: (nodeId: string) => boolean,
  excluded: (partition: PartitionId) => ReadonlySet<string> | undefined = () => undefined,
): { byOwner: Map<string, PartitionId[]>; missing: PartitionId[] } {
  const byOwner = new Map<string, PartitionId[]>();
  const missing: PartitionId[] = [];
  for (const p of partitions) {
    const owners = readOwners(p);
    const out = excluded(p);
    const ok = (n: string): boolean => !out?.has(n) && (n === self || usable(n));
    const owner = owners.includes(self) && ok(self) ? self : owners.find(ok);
    if (owner === undefined) missing.push(p);
    else byOwner.set(owner, [...(byOwner.get(owner) ?? []), p]);
  }
  return { byOwner, missing };
}

/**
 * Checks an owner's page against what was asked: at most `pageEntries` entries, keys strictly
 * ascending, each > startAfter, under the prefix and in an asked partition; resumeAfter (if
 * any) > startAfter and >= the last entry's key. Throws MalformedError.
 */
export function checkPage(page: ScanPage, request: PageRequest): void {
  if (page.entries.length > request.pageEntries) throw new MalformedError(`page of ${page.entries.length} entries; asked at most ${request.pageEntries}`);
  const asked = new Set(request.partitions);
  let previous = request.startAfter;
  for (const entry of page.entries) {
    if (previous !== undefined && !(entry.key > previous)) throw new MalformedError('page keys out of order');
    if (!entry.key.startsWith(request.prefix)) throw new MalformedError('page key outside the prefix');
    if (!asked.has(partitionOfHash(keyHashText(entry.key)))) throw new MalformedError('page key of a partition not asked');
    previous = entry.key;
  }
  const resume = page.resumeAfter;
  if (resume !== undefined) {
    if (request.startAfter !== undefined && !(resume > request.startAfter)) throw new MalformedError('page continuation does not advance');
    if (previous !== undefined && resume < previous) throw new MalformedError('page continuation before its last key');
    if (!resume.startsWith(request.prefix)) throw new MalformedError('page continuation outside the prefix');
  }
}

interface Stream {
  owner: string;
  partitions: PartitionId[];
  entries: Entry[];
  at: number;
  /** The last key fetched from this stream (the next page starts after it). */
  after: string | undefined;
  /** False once the owner said it has nothing more. */
  more: boolean;
  /** The last key merged out of this stream (a replacement stream starts after it). */
  delivered: string | undefined;
}

/** The merged entries of every partition under the prefix, in key order (see the top comment). */
export async function* scatterScan(options: ScatterOptions): AsyncGenerator<Entry> {
  const { prefix, self, readOwners, usable, pageEntries } = options;
  const excluded = new Map<PartitionId, Set<string>>();
  const streams: Stream[] = [];
  const open = (partitions: readonly PartitionId[], after: string | undefined): void => {
    const { byOwner, missing } = assign(partitions, readOwners, self, usable, (p) => excluded.get(p));
    if (missing.length > 0) options.onMissing(missing);
    for (const [owner, owned] of byOwner) streams.push({ owner, partitions: owned, entries: [], at: 0, after, more: true, delivered: after });
  };
  open(
    Array.from({ length: partitionCount }, (_, p) => p),
    options.startAfter,
  );
  const refill = async (stream: Stream): Promise<void> => {
    const request: PageRequest = { owner: stream.owner, partitions: stream.partitions, prefix, startAfter: stream.after, pageEntries };
    let rejected = false;
    try {
      const page = await options.fetch(request);
      rejected = true;
      checkPage(page, request);
      rejected = false;
      stream.entries = page.entries;
      stream.at = 0;
      stream.more = page.resumeAfter !== undefined;
      if (page.resumeAfter !== undefined) stream.after = page.resumeAfter;
      else if (page.entries.length > 0) stream.after = page.entries[page.entries.length - 1]!.key;
    } catch (error) {
      options.onOwnerFailed?.(stream.owner, error as Error, rejected);
      stream.entries = [];
      stream.at = 0;
      stream.more = false;
      for (const p of stream.partitions) excluded.set(p, new Set([...(excluded.get(p) ?? []), stream.owner]));
      // Resume after what this stream delivered: its current page was dropped whole.
      open(stream.partitions, stream.delivered);
    }
  };
  let sent = 0;
  const limit = options.limit ?? Infinity;
  while (sent < limit) {
    // Every stream with an empty buffer that has more: fetch its next page (all at once).
    for (;;) {
      const empty = streams.filter((s) => s.at >= s.entries.length && s.more);
      if (empty.length === 0) break;
      await Promise.all(empty.map(refill));
    }
    for (let i = streams.length - 1; i >= 0; i--) if (streams[i]!.at >= streams[i]!.entries.length && !streams[i]!.more) streams.splice(i, 1);
    if (streams.length === 0) return;
    let best: Entry | undefined;
    for (const s of streams) {
      const head = s.entries[s.at]!;
      if (best === undefined || head.key < best.key || (head.key === best.key && compareVersions(head.version, best.version) > 0)) best = head;
    }
    for (const s of streams) {
      if (s.entries[s.at]!.key === best!.key) {
        s.delivered = best!.key;
        s.at++;
      }
    }
    sent++;
    yield best!;
  }
}
