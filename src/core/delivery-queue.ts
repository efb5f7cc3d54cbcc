/**
 * Delivery until acknowledged (issue 12, part 1): the pure state machine of the writes some
 * owner has not acknowledged yet ("hints"). The runtime (src/node/delivery.ts) persists the
 * rows this queue tells it to, sends the batches it hands out, and reports the answers.
 *
 * - **Rows.** One row per (target node id, key hash) holding the whole entry (key, version,
 *   value or tombstone): the coordinator may be a gateway that does not store the key. A newer
 *   version of the key for the same target replaces the row (coalescing), so rows are bounded
 *   by keys times owners, not by writes; an older or equal version changes nothing.
 * - **Schedule.** Per target: exponential backoff with jitter, `delayMsMin` doubling to
 *   `delayMsMax`, each delay drawn in [d/2, d] from the injected random source; `connected`
 *   resets it to "now" (and for `connectGraceMs` after it a failure retries in
 *   `connectRetryMs`: the target may not serve yet). One batch per target is in flight at a time; a batch whose every row
 *   was acknowledged sends the next one at once. Each batch says why it is due (`cause`): the
 *   runtime counts the attempts the target's return caused apart from backoff retries.
 * - **Removal.** Only `acked(target, key hash, version)` removes a row, and only if the row
 *   still holds that version (delete-if-unchanged): a newer write that coalesced while the
 *   batch was in flight stays. No timer ever removes a row.
 * - **Re-targeting.** `retarget(ownersOf)` (after a layout change) turns a row whose target no
 *   longer owns the key's partition in any active layout into rows for every current owner
 *   (conservatively all: one that has it answers "older", which acknowledges), so a removed
 *   node's rows reach the partition's new owners.
 * - **Limits.** `rowsMax` and `bytesMax` bound what is held; past either, `blocking(targets)`
 *   names a target with pending rows among a new write's owners, and the runtime refuses that
 *   write (DeliveryBacklogError: backpressure, not loss). A write already stored somewhere is
 *   always held: the limit is checked before a write, never by dropping a row.
 *
 * Persisted form (`encodeHintRow` / `decodeHintRow`): key `<target hex>/<key hash hex>`, value
 * format byte (1), the time the row first became pending (u64 ms, for its age), the entry
 * (encodeEntry). A row that does not decode, or whose key does not match its entry, is
 * dropped and counted at load, never loaded.
 *
 * Pure: no I/O, no clock, no randomness of its own (`nowMs` and `random` are passed in).
 */
import { ByteReader, ByteWriter, toHex } from './bytes.js';
import { compareVersions, isNodeId, keyHashText, readEntry, versionEquals, writeEntry, type Entry, type HashText, type Version } from './entry.js';
import { assert } from './errors.js';

export interface DeliveryQueueOptions {
  /** Rows held before new writes to a target with rows are refused (backpressure). */
  rowsMax: number;
  /** Bytes (entries' encoded size) held before new writes are refused. */
  bytesMax: number;
  /** First retry delay; doubles per failed attempt up to `delayMsMax`. */
  delayMsMin: number;
  delayMsMax: number;
  /** Rows per batch sent to one target, and the bytes a batch stops growing at. */
  batchRowsMax: number;
  batchBytesTarget: number;
  /** Uniform in [0, 1): the jitter source. */
  random: () => number;
}

export const deliveryDefaults = {
  rowsMax: 1_000_000,
  bytesMax: 1024 * 1024 * 1024,
  delayMsMin: 500,
  delayMsMax: 30_000,
  batchRowsMax: 512,
  batchBytesTarget: 1024 * 1024,
} as const;

export interface HintRow {
  readonly target: string;
  readonly keyHash: HashText;
  readonly entry: Entry;
  /** When this (target, key) first became pending: the row's age counts from here. */
  readonly sinceMs: number;
  /** Encoded size of the entry (what the byte limit counts). */
  readonly bytes: number;
}

/** Row changes to persist, in order, in one batch. */
export interface RowChanges {
  readonly put: HintRow[];
  readonly del: { readonly target: string; readonly keyHash: HashText }[];
}

/**
 * Why a target's batch is due: its first row (`new`), the rows read back at start (`load`), a
 * retry after a failure (`backoff`), the target coming up (`connect`, also the quick retries
 * within `connectGraceMs` of it), or the previous batch fully acknowledged (`next`).
 */
export type DeliveryCause = 'new' | 'load' | 'backoff' | 'connect' | 'next';

export interface DeliveryBatch {
  readonly target: string;
  readonly rows: readonly HintRow[];
  readonly cause: DeliveryCause;
}

/** The answer for one row of a batch: acknowledged (applied or older), or not. */
export interface RowAnswer {
  readonly keyHash: HashText;
  readonly version: Version;
  readonly acked: boolean;
}

export interface TargetStats {
  node: string;
  rows: number;
  bytes: number;
  oldestAgeMs: number;
  /** 0 when due (or in flight). */
  nextAttemptInMs: number;
}

export interface DeliveryStats {
  pendingRows: number;
  pendingBytes: number;
  oldestAgeMs: number;
  targets: TargetStats[];
}

interface Schedule {
  attempt: number;
  nextAtMs: number;
  inFlight: boolean;
  /** When the target last (re)connected: failures soon after retry quickly (see connectGraceMs). */
  connectedAtMs: number;
  cause: DeliveryCause;
}

/**
 * A target that just came up may not serve the replicate protocol for a moment (its node
 * registers it after joining the cluster): within this long of `connected`, a failed batch is
 * tried again after `connectRetryMs` without advancing the backoff.
 */
export const connectGraceMs = 2_000;
export const connectRetryMs = 100;

export class DeliveryQueue {
  private readonly rows = new Map<string, Map<HashText, HintRow>>();
  private readonly schedules = new Map<string, Schedule>();
  private rowCount = 0;
  private byteCount = 0;

  constructor(private readonly options: DeliveryQueueOptions) {
    assert(options.delayMsMin > 0 && options.delayMsMax >= options.delayMsMin && options.batchRowsMax > 0, 'delivery queue options');
  }

  get pendingRows(): number {
    return this.rowCount;
  }

  /** The oldest HLC among the pending rows (undefined: none): tombstone GC's floor (src/node/gc-floor.ts). O(rows). */
  oldestHlc(): bigint | undefined {
    let oldest: bigint | undefined;
    for (const rows of this.rows.values()) for (const row of rows.values()) if (oldest === undefined || row.entry.version.hlc < oldest) oldest = row.entry.version.hlc;
    return oldest;
  }

  get pendingBytes(): number {
    return this.byteCount;
  }

  /** The row for (target, key hash), if any. */
  row(target: string, keyHash: HashText): HintRow | undefined {
    return this.rows.get(target)?.get(keyHash);
  }

  /** How many rows `target` has pending. */
  rowsOf(target: string): number {
    return this.rows.get(target)?.size ?? 0;
  }

  /** Every row (for tests and re-targeting). */
  *all(): IterableIterator<HintRow> {
    for (const rows of this.rows.values()) yield* rows.values();
  }

  /** Rows read back at start (already decoded): each becomes pending, due at once. */
  load(rows: Iterable<HintRow>, nowMs: number): void {
    for (const row of rows) {
      const current = this.row(row.target, row.keyHash);
      if (current !== undefined && compareVersions(current.entry.version, row.entry.version) >= 0) continue;
      this.set(row);
      this.schedule(row.target, nowMs, true);
    }
  }

  /**
   * Past a limit, the first of `targets` that holds rows (the write would add to its backlog):
   * the runtime refuses the write naming it. Undefined: the write may go ahead.
   */
  blocking(targets: Iterable<string>): { target: string; rows: number; bytes: number } | undefined {
    if (this.rowCount < this.options.rowsMax && this.byteCount < this.options.bytesMax) return undefined;
    for (const target of targets) {
      const rows = this.rows.get(target);
      if (rows !== undefined && rows.size > 0) return { target, rows: this.rowCount, bytes: this.byteCount };
    }
    return undefined;
  }

  /**
   * `target` has not acknowledged `entry`: keep it (coalesced with an older version of the key).
   * `nowMs` is the schedule's (monotonic) clock; `wallMs` the wall clock the row's age counts from.
   */
  hold(target: string, entry: Entry, nowMs: number, wallMs: number = nowMs, keyHash: HashText = keyHashText(entry.key)): RowChanges {
    const current = this.row(target, keyHash);
    if (current !== undefined && compareVersions(current.entry.version, entry.version) >= 0) return { put: [], del: [] };
    const row: HintRow = { target, keyHash, entry, sinceMs: current?.sinceMs ?? wallMs, bytes: hintEntryBytes(entry) };
    this.set(row);
    this.schedule(target, nowMs, false);
    return { put: [row], del: [] };
  }

  /** The batches due at `nowMs`, one per target, each target then in flight until `answered` or `failed`. */
  due(nowMs: number): DeliveryBatch[] {
    const batches: DeliveryBatch[] = [];
    for (const [target, schedule] of this.schedules) {
      if (schedule.inFlight || schedule.nextAtMs > nowMs) continue;
      const rows = this.rows.get(target);
      if (rows === undefined || rows.size === 0) {
        this.schedules.delete(target);
        continue;
      }
      const batch: HintRow[] = [];
      let bytes = 0;
      for (const row of rows.values()) {
        if (batch.length >= this.options.batchRowsMax || (batch.length > 0 && bytes + row.bytes > this.options.batchBytesTarget)) break;
        batch.push(row);
        bytes += row.bytes;
      }
      schedule.inFlight = true;
      batches.push({ target, rows: batch, cause: schedule.cause });
    }
    return batches;
  }

  /**
   * The answers to `target`'s batch: each acknowledged row is deleted if it still holds the
   * version sent. All acknowledged: the next batch is due at once; any not: back off.
   */
  answered(target: string, answers: readonly RowAnswer[], nowMs: number): RowChanges {
    const del: RowChanges['del'] = [];
    let allAcked = true;
    for (const answer of answers) {
      if (!answer.acked) {
        allAcked = false;
        continue;
      }
      const row = this.row(target, answer.keyHash);
      if (row === undefined || !versionEquals(row.entry.version, answer.version)) continue;
      this.remove(row);
      del.push({ target, keyHash: answer.keyHash });
    }
    this.settle(target, nowMs, allAcked);
    return { put: [], del };
  }

  /** `target`'s batch got no answer (unreachable, stream failed): back off. */
  failed(target: string, nowMs: number): void {
    this.settle(target, nowMs, false);
  }

  /** `target` (re)connected: its rows are due now, the backoff starts over. */
  connected(target: string, nowMs: number): void {
    const schedule = this.schedules.get(target);
    if (schedule === undefined) return;
    schedule.attempt = 0;
    schedule.nextAtMs = Math.min(schedule.nextAtMs, nowMs);
    schedule.connectedAtMs = nowMs;
    if (!schedule.inFlight) schedule.cause = 'connect';
  }

  /**
   * After a layout change: `ownersOf(keyHash)` is the key's owners in every active layout
   * (undefined: unknown, leave the row). A row whose target is not among them becomes a row
   * for each of them (coalesced with what they hold), and is deleted.
   */
  retarget(ownersOf: (keyHash: HashText) => readonly string[] | undefined, nowMs: number): RowChanges {
    const changes: RowChanges = { put: [], del: [] };
    for (const row of [...this.all()]) {
      const owners = ownersOf(row.keyHash);
      if (owners === undefined || owners.length === 0 || owners.includes(row.target)) continue;
      for (const owner of owners) {
        const held = this.hold(owner, row.entry, nowMs, row.sinceMs, row.keyHash);
        changes.put.push(...held.put);
      }
      this.remove(row);
      changes.del.push({ target: row.target, keyHash: row.keyHash });
    }
    return changes;
  }

  /** The earliest time a batch is due (undefined: nothing to send, or all in flight). */
  nextDueMs(): number | undefined {
    let next: number | undefined;
    for (const schedule of this.schedules.values()) if (!schedule.inFlight && (next === undefined || schedule.nextAtMs < next)) next = schedule.nextAtMs;
    return next;
  }

  /** Per target and in all; ages by `wallMs`, next attempts by the schedule's `nowMs`. */
  stats(nowMs: number, wallMs: number = nowMs): DeliveryStats {
    const targets: TargetStats[] = [];
    let oldest = 0;
    for (const [node, rows] of this.rows) {
      let bytes = 0;
      let since = Infinity;
      for (const row of rows.values()) {
        bytes += row.bytes;
        since = Math.min(since, row.sinceMs);
      }
      const ageMs = Math.max(0, wallMs - since);
      oldest = Math.max(oldest, ageMs);
      const schedule = this.schedules.get(node);
      const nextAttemptInMs = schedule === undefined || schedule.inFlight ? 0 : Math.max(0, schedule.nextAtMs - nowMs);
      targets.push({ node, rows: rows.size, bytes, oldestAgeMs: ageMs, nextAttemptInMs });
    }
    targets.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    return { pendingRows: this.rowCount, pendingBytes: this.byteCount, oldestAgeMs: oldest, targets };
  }

  /** The delay before attempt `attempt + 1` (exported for tests through the queue's schedule). */
  delayMs(attempt: number): number {
    const base = Math.min(this.options.delayMsMax, this.options.delayMsMin * 2 ** Math.min(attempt, 30));
    return base / 2 + (base / 2) * this.options.random();
  }

  private settle(target: string, nowMs: number, allAcked: boolean): void {
    const schedule = this.schedules.get(target);
    if (schedule === undefined) return;
    schedule.inFlight = false;
    if (!this.rows.has(target)) {
      this.schedules.delete(target);
      return;
    }
    if (allAcked) {
      schedule.attempt = 0;
      schedule.nextAtMs = nowMs;
      schedule.cause = 'next';
      return;
    }
    if (nowMs - schedule.connectedAtMs < connectGraceMs) {
      schedule.nextAtMs = nowMs + connectRetryMs;
      schedule.cause = 'connect';
      return;
    }
    schedule.cause = 'backoff';
    schedule.nextAtMs = nowMs + this.delayMs(schedule.attempt);
    schedule.attempt++;
  }

  /** A target gains a row: a new target's first attempt is one backoff step away (or now, at load). */
  private schedule(target: string, nowMs: number, now: boolean): void {
    if (this.schedules.has(target)) return;
    this.schedules.set(target, { attempt: now ? 0 : 1, nextAtMs: now ? nowMs : nowMs + this.delayMs(0), inFlight: false, connectedAtMs: -Infinity, cause: now ? 'load' : 'new' });
  }

  private set(row: HintRow): void {
    let rows = this.rows.get(row.target);
    if (rows === undefined) this.rows.set(row.target, (rows = new Map()));
    const old = rows.get(row.keyHash);
    if (old !== undefined) {
      this.byteCount -= old.bytes;
      this.rowCount--;
      rows.delete(row.keyHash);
    }
    rows.set(row.keyHash, row);
    this.byteCount += row.bytes;
    this.rowCount++;
  }

  private remove(row: HintRow): void {
    const rows = this.rows.get(row.target);
    if (rows?.get(row.keyHash) !== row) return;
    rows.delete(row.keyHash);
    this.rowCount--;
    this.byteCount -= row.bytes;
    if (rows.size === 0) this.rows.delete(row.target);
  }
}

/** What a row costs against the byte limit: its entry's encoded size. */
export function hintEntryBytes(entry: Entry): number {
  return 40 + Buffer.byteLength(entry.key, 'utf8') + (entry.value?.byteLength ?? 0);
}

const hintRowFormat = 1;

/** A row's store key: `<target>/<key hash hex>`. */
export function hintRowKey(target: string, keyHash: HashText): string {
  return `${target}/${toHex(Buffer.from(keyHash, 'latin1'))}`;
}

export function encodeHintRow(row: HintRow): { key: string; value: Uint8Array } {
  const w = new ByteWriter(64 + row.bytes).u8(hintRowFormat).u64(BigInt(Math.max(0, Math.floor(row.sinceMs))));
  writeEntry(w, row.entry);
  return { key: hintRowKey(row.target, row.keyHash), value: w.finish() };
}

/** A persisted row, or undefined if it is malformed or hostile (the caller drops and counts it). */
export function decodeHintRow(key: string, value: Uint8Array, valueBytesMax?: number): HintRow | undefined {
  try {
    const slash = key.indexOf('/');
    const target = key.slice(0, slash);
    if (slash < 0 || !isNodeId(target)) return undefined;
    const r = new ByteReader(value);
    if (r.u8() !== hintRowFormat) return undefined;
    const sinceMs = Number(r.u64());
    const entry = readEntry(r, valueBytesMax);
    r.end();
    const keyHash = keyHashText(entry.key);
    if (hintRowKey(target, keyHash) !== key || !Number.isSafeInteger(sinceMs)) return undefined;
    return { target, keyHash, entry, sinceMs, bytes: hintEntryBytes(entry) };
  } catch {
    return undefined;
  }
}
