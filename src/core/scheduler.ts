/**
 * When to run anti-entropy, and with whom. Pure: the runtime passes `nowMs` in, supplies the
 * rng, and keeps one timer for `wakeAtMs()`. Rules:
 * - every `intervalMs` (± `jitterRatio`, so nodes do not fall into lockstep) sync with one
 *   random connected peer that is not backing off;
 * - a newly connected peer is synced at once: a node that rejoins catches up immediately,
 *   not a period later;
 * - after a failed session a peer backs off exponentially (base * 2^failures, capped, with
 *   jitter) and is skipped meanwhile; one success resets it;
 * - a periodic round that comes due during a burst of writes is put off by an interval, at
 *   most `burstRoundsDeferMax` times in a row: the caller passes its applied seq to `takeDue`,
 *   and a burst is `burstEntriesMin` entries applied since the previous round (whether that
 *   round ran or was put off). Mid-burst the trees differ wherever a write is in flight, so a
 *   periodic session costs both sides a descent through most of the tree and re-sends what
 *   gossip is delivering (limits.ts, syncBurstEntriesMin). Urgent sessions never wait.
 */
import {
  syncBurstEntriesMin,
  syncBurstRoundsDeferMax,
  syncBackoffMsBase,
  syncBackoffMsMax,
  syncIntervalMsDefault,
  syncJitterRatioDefault,
} from './limits.js';
import { assert } from './errors.js';

export interface SchedulerOptions {
  /** Returns a float in [0, 1). */
  rng: () => number;
  intervalMs?: number;
  jitterRatio?: number;
  backoffMsBase?: number;
  backoffMsMax?: number;
  /**
   * Urgent sessions (a peer just connected, or `requestNow`) in flight at once; at the limit
   * no other session starts, periodic rounds included. Membership sets 1: a node catching up
   * pulls from one peer at a time, so its missing entries cross the wire once, and the next
   * session then finds the peers in sync. Default: no limit.
   */
  urgentSessionsMax?: number;
  /** Entries applied since the previous periodic round that make the next one a burst's (default syncBurstEntriesMin). */
  burstEntriesMin?: number;
  /** Periodic rounds put off in a row during a burst, at most (default syncBurstRoundsDeferMax; 0: never). */
  burstRoundsDeferMax?: number;
}

interface PeerState {
  failures: number;
  retryAtMs: number;
  urgent: boolean;
  busy: boolean;
  /** The session in flight was taken as urgent (counts against urgentSessionsMax). */
  busyUrgent: boolean;
}

export class SyncScheduler<P extends string = string> {
  private readonly peers = new Map<P, PeerState>();
  private readonly rng: () => number;
  private readonly intervalMs: number;
  private readonly jitterRatio: number;
  private readonly backoffMsBase: number;
  private readonly backoffMsMax: number;
  private readonly urgentSessionsMax: number;
  private readonly burstEntriesMin: number;
  private readonly burstRoundsDeferMax: number;
  private urgentInFlight = 0;
  private nextRoundAtMs: number;
  /** The applied seq passed when the previous periodic round came due, or first passed (undefined: none yet). */
  private roundSeq: number | undefined;
  /** Periodic rounds put off in a row (reset by a round that runs). */
  private roundsDeferred = 0;
  private roundsDue = 0;
  private roundsDeferredSinceStart = 0;

  constructor(options: SchedulerOptions, nowMs: number) {
    this.rng = options.rng;
    this.intervalMs = options.intervalMs ?? syncIntervalMsDefault;
    this.jitterRatio = options.jitterRatio ?? syncJitterRatioDefault;
    this.backoffMsBase = options.backoffMsBase ?? syncBackoffMsBase;
    this.backoffMsMax = options.backoffMsMax ?? syncBackoffMsMax;
    this.urgentSessionsMax = options.urgentSessionsMax ?? Number.POSITIVE_INFINITY;
    this.burstEntriesMin = options.burstEntriesMin ?? syncBurstEntriesMin;
    this.burstRoundsDeferMax = options.burstRoundsDeferMax ?? syncBurstRoundsDeferMax;
    assert(this.burstEntriesMin >= 1 && this.burstRoundsDeferMax >= 0, 'burst deferral needs entries >= 1 and rounds >= 0');
    this.nextRoundAtMs = nowMs + this.jittered(this.intervalMs);
  }

  get peerCount(): number {
    return this.peers.size;
  }

  /** Periodic rounds that came due since the start, run or put off (for the simulator's check). */
  get roundsDueTotal(): number {
    return this.roundsDue;
  }

  /** Periodic rounds put off during bursts since the start (a counter for status). */
  get roundsDeferredTotal(): number {
    return this.roundsDeferredSinceStart;
  }

  /** Urgent sessions taken and not yet reported. */
  get urgentSessionsInFlight(): number {
    return this.urgentInFlight;
  }

  /** A peer connected: sync with it at once. */
  peerConnected(peer: P): void {
    const state = this.peers.get(peer);
    if (state) state.urgent = true;
    else this.peers.set(peer, { failures: 0, retryAtMs: 0, urgent: true, busy: false, busyUrgent: false });
  }

  /** A peer connected that the other side will sync with first: take it into periodic rounds only. */
  peerKnown(peer: P): void {
    if (!this.peers.has(peer)) this.peers.set(peer, { failures: 0, retryAtMs: 0, urgent: false, busy: false, busyUrgent: false });
  }

  peerDisconnected(peer: P): void {
    const state = this.peers.get(peer);
    if (state?.busyUrgent) this.urgentInFlight--;
    this.peers.delete(peer);
  }


  /**
   * Ask for a session with `peer` once its backoff (set by a failed `report`) has passed,
   * rather than at a random periodic round. With `soon`, after its first failure in a row the
   * backoff is at most `soon.withinMs` (jittered) from `soon.nowMs`; later failures back off
   * as usual, so a peer that stays busy is not asked again every few milliseconds.
   */
  retryWhenDue(peer: P, soon?: { nowMs: number; withinMs: number }): void {
    const state = this.peers.get(peer);
    if (!state) return;
    state.urgent = true;
    if (soon && state.failures === 1) state.retryAtMs = Math.min(state.retryAtMs, soon.nowMs + this.jittered(soon.withinMs));
  }

  /** Ask for a session with `peer` as soon as possible (for example `ckv sync`). */
  requestNow(peer: P): void {
    const state = this.peers.get(peer);
    if (state) {
      state.urgent = true;
      state.retryAtMs = 0;
    }
  }

  /**
   * The peer to sync with now, if any; it is marked busy until `report`. Call repeatedly
   * until undefined: urgent peers first, then the periodic round. `appliedSeq` (the replica's
   * applied seq, optional) lets a periodic round that comes due during a burst be put off.
   */
  takeDue(nowMs: number, appliedSeq?: number): P | undefined {
    // At the urgent limit no session starts, periodic ones included: a node catching up from
    // one peer must not have a periodic round pull the same entries from another meanwhile.
    if (this.urgentInFlight >= this.urgentSessionsMax) return undefined;
    // The first seq seen is the baseline of the first round: a burst that began before it is one.
    if (this.roundSeq === undefined) this.roundSeq = appliedSeq;
    for (const [peer, state] of this.peers) {
      if (state.urgent && !state.busy && state.retryAtMs <= nowMs) {
        state.urgent = false;
        state.busy = true;
        state.busyUrgent = true;
        this.urgentInFlight++;
        return peer;
      }
    }
    if (nowMs < this.nextRoundAtMs) return undefined;
    this.nextRoundAtMs = nowMs + this.jittered(this.intervalMs);
    this.roundsDue++;
    if (this.burstDue(appliedSeq)) {
      this.roundsDeferred++;
      this.roundsDeferredSinceStart++;
      return undefined;
    }
    this.roundsDeferred = 0;
    const eligible = [...this.peers].filter(([, s]) => !s.busy && s.retryAtMs <= nowMs);
    if (eligible.length === 0) return undefined;
    const [peer, state] = eligible[Math.floor(this.rng() * eligible.length)]!;
    state.busy = true;
    return peer;
  }

  /** The outcome of a session taken with takeDue. */
  report(peer: P, ok: boolean, nowMs: number): void {
    const state = this.peers.get(peer);
    if (!state) return;
    state.busy = false;
    if (state.busyUrgent) {
      state.busyUrgent = false;
      this.urgentInFlight--;
    }
    if (ok) {
      state.failures = 0;
      state.retryAtMs = 0;
      return;
    }
    state.failures++;
    const backoffMs = Math.min(this.backoffMsMax, this.backoffMsBase * 2 ** (state.failures - 1));
    state.retryAtMs = nowMs + this.jittered(backoffMs);
  }

  /** When the runtime should call takeDue next. */
  wakeAtMs(nowMs: number): number {
    let at = this.nextRoundAtMs;
    // Blocked until a report: the caller wakes again after it (no busy wait on a past round).
    if (this.urgentInFlight >= this.urgentSessionsMax) return Math.max(at, nowMs + this.intervalMs);
    for (const state of this.peers.values()) {
      if (state.urgent && !state.busy) at = Math.min(at, Math.max(nowMs, state.retryAtMs));
    }
    return at;
  }

  /** Whether the round due now falls in a burst and may still be put off; notes the seq either way. */
  private burstDue(appliedSeq: number | undefined): boolean {
    if (appliedSeq === undefined) return false;
    const previous = this.roundSeq;
    this.roundSeq = appliedSeq;
    return previous !== undefined && appliedSeq - previous >= this.burstEntriesMin && this.roundsDeferred < this.burstRoundsDeferMax;
  }

  private jittered(ms: number): number {
    return Math.max(1, Math.round(ms * (1 + this.jitterRatio * (2 * this.rng() - 1))));
  }
}
