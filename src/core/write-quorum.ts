/**
 * The pure part of a partitioned write (the coordinator, src/node/coordinator.ts, does the
 * I/O): one `WriteTally` per written entry counts which owners acknowledged it and decides,
 * from the partition's owner sets in every active layout (`Ownership.writeSets`) and the
 * consistency asked, when the write is acknowledged (`quorumMet` in every set) or can no longer
 * be (too many owners of one set failed). A timeout is an event passed in (`expire`), never a
 * clock read here. `RetryQueue` holds owners that did not acknowledge a write for a few
 * background retries: bounded in entries (the oldest is dropped and counted when full) and in
 * attempts per entry, with the due time computed from a `nowMs` passed in. Durable delivery
 * (retries that survive a restart) is the next issue's.
 */
import { assert } from './errors.js';
import type { Entry } from './entry.js';
import type { ApplyOutcome } from './replica.js';
import { acksNeeded, quorumMet, type Consistency } from './ownership.js';

/** How one owner answered a replicated entry. Only append: part of the replicate protocol. */
export const replicateOutcomes = ['applied', 'older', 'not-owner', 'refused-clock', 'refused-invalid'] as const;
export type ReplicateOutcome = (typeof replicateOutcomes)[number];

/** What an owner answers for an entry its replica merged with this outcome (Replica.applyRemote). */
export function replicateOutcomeOf(outcome: ApplyOutcome): ReplicateOutcome {
  switch (outcome) {
    case 'applied':
      return 'applied';
    case 'stale':
      return 'older';
    case 'not-held':
      return 'not-owner';
    case 'clock-drift':
      return 'refused-clock';
    default:
      return 'refused-invalid';
  }
}

/** An owner has the entry (or a newer version of its key) durably: it counts as an ack. */
export function isAck(outcome: ReplicateOutcome): boolean {
  return outcome === 'applied' || outcome === 'older';
}

export type TallyState = 'pending' | 'met' | 'failed' | 'expired';

export class WriteTally {
  readonly acked = new Set<string>();
  /** Every owner, sorted, once. */
  readonly owners: readonly string[];
  readonly failed = new Map<string, string>();
  private stateNow: TallyState = 'pending';

  constructor(
    /** The owner sets of every active layout (writeSets), oldest first. */
    readonly sets: readonly (readonly string[])[],
    readonly consistency: Consistency,
  ) {
    assert(sets.length > 0, 'a write has at least one owner set');
    this.owners = sets.length === 1 ? [...sets[0]!].sort() : [...new Set(sets.flat())].sort();
  }


  get state(): TallyState {
    return this.stateNow;
  }

  /** Acks the strictest set still needs at this consistency (0 once met). */
  get acksWanted(): number {
    return Math.max(...this.sets.map((set) => Math.max(0, acksNeeded(this.consistency, set.length) - set.filter((n) => this.acked.has(n)).length)));
  }

  /** An owner answered. Returns the state after it (answers after a decision are still recorded). */
  answer(nodeId: string, outcome: ReplicateOutcome | Error): TallyState {
    if (!(outcome instanceof Error) && isAck(outcome)) {
      this.acked.add(nodeId);
      this.failed.delete(nodeId);
    } else if (!this.acked.has(nodeId)) {
      this.failed.set(nodeId, outcome instanceof Error ? outcome.message : outcome);
    }
    if (this.stateNow !== 'pending') return this.stateNow;
    if (quorumMet(this.sets, this.acked, this.consistency)) this.stateNow = 'met';
    else if (!this.stillPossible()) this.stateNow = 'failed';
    return this.stateNow;
  }

  /** The deadline passed: a pending write is expired (met and failed stay as they are). */
  expire(): TallyState {
    if (this.stateNow === 'pending') this.stateNow = quorumMet(this.sets, this.acked, this.consistency) ? 'met' : 'expired';
    return this.stateNow;
  }

  /** Owners that have neither acked nor failed yet. */
  get waitingOn(): string[] {
    return this.owners.filter((n) => !this.acked.has(n) && !this.failed.has(n));
  }

  /** Owners that did not ack (failed or silent): the ones to retry. */
  get notAcked(): string[] {
    return this.owners.filter((n) => !this.acked.has(n));
  }

  private stillPossible(): boolean {
    return this.sets.every((set) => set.filter((n) => !this.failed.has(n)).length >= acksNeeded(this.consistency, set.length));
  }
}

/** One owner that still lacks an entry. */
export interface Retry {
  readonly nodeId: string;
  readonly entry: Entry;
  readonly attempts: number;
  readonly dueMs: number;
}

export interface RetryQueueOptions {
  /** Retries held at once; the oldest is dropped past it (anti-entropy still repairs). */
  entriesMax: number;
  /** Attempts per (owner, entry) after the first send. */
  attemptsMax: number;
  /** Delay before the first retry; doubles each attempt. */
  delayMs: number;
}

/** Bounded background retries, ordered by due time; the caller sends what `due` returns. */
export class RetryQueue {
  private readonly items: Retry[] = [];
  /** Retries dropped: queue full, or out of attempts. */
  dropped = 0;

  constructor(private readonly options: RetryQueueOptions) {
    assert(options.entriesMax > 0 && options.attemptsMax >= 0 && options.delayMs >= 0, 'retry queue options');
  }

  get size(): number {
    return this.items.length;
  }

  /** Schedule attempt `attempts + 1` to `nodeId`, unless out of attempts. A newer entry of the same key to the same owner replaces an older one. */
  add(nodeId: string, entry: Entry, nowMs: number, attempts = 0): boolean {
    if (attempts >= this.options.attemptsMax) {
      this.dropped++;
      return false;
    }
    const same = this.items.findIndex((r) => r.nodeId === nodeId && r.entry.key === entry.key);
    if (same >= 0) this.items.splice(same, 1);
    if (this.items.length >= this.options.entriesMax) {
      this.items.shift();
      this.dropped++;
    }
    this.items.push({ nodeId, entry, attempts: attempts + 1, dueMs: nowMs + this.options.delayMs * 2 ** attempts });
    return true;
  }

  /** Retries due at `nowMs`, removed from the queue. */
  due(nowMs: number): Retry[] {
    const ready: Retry[] = [];
    for (let i = 0; i < this.items.length; ) {
      if (this.items[i]!.dueMs <= nowMs) ready.push(...this.items.splice(i, 1));
      else i++;
    }
    return ready;
  }

  /** The next due time, if any. */
  nextDueMs(): number | undefined {
    let next: number | undefined;
    for (const r of this.items) if (next === undefined || r.dueMs < next) next = r.dueMs;
    return next;
  }
}
