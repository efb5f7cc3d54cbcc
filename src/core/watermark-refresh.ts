/**
 * Keeps catch-up watermarks fresh after a burst of writes.
 *
 * A node's watermark for a peer (sync-watermarks.ts) is proven only by a session this node
 * starts with that peer and that ends with equal roots. Periodic sessions pick a random peer
 * about once a second, so after a burst most watermarks lag by the burst's tail. A node
 * stopped or killed then, and restarted, catches up from a peer by a delta since that old
 * watermark: everything it missed plus everything it already had (measured: 22k-40k entries
 * received for 10k missed, a kill 0.5 s after a burst of 30k writes converged).
 *
 * So once the node has applied nothing for `quietMs` (the burst is over: a session during it
 * ends with roots differing and proves no position), each up peer whose watermark lags by
 * `lagEntriesMin` or more of this node's own applied entries is asked for one session: in
 * sync, one round trip, and the watermark is proven again. A peer asked is asked again only
 * after another `lagEntriesMin` applied entries or `retryMs` (its session found the roots
 * different, failed or was refused), so a lagging peer costs at most a round trip per retryMs.
 *
 * A peer that came up after the burst began is left alone until it has been up `upForMs`:
 * it missed part of the burst and is catching up, and our session would push at it the
 * entries it pulls in its own (a running node leaves the catch-up to the peer, membership.ts).
 * The burst began after the last look that saw the seq still; Membership looks as each member
 * comes up and starts the refresh with a still look (`start`), so a cluster's first burst,
 * seconds after its members came up, counts as begun after them.
 *
 * The quiet is timed from a look that saw the seq unchanged, not from the look that saw it
 * move: a process the machine did not run for a while (two cores shared by five nodes) sees
 * nothing applied over that gap only because it ran nothing; input it has not read yet would
 * move the seq. Timed from its first look after the gap, the burst goes on when it reads it
 * (with a 50 ms quiet timed from the move, the 5-node unary throughput bench lost ~20 % to
 * sessions started mid-burst).
 *
 * Pure: the caller passes the time, the replica's applied seq and the lagging peers
 * (Membership.tick does, and asks wakeAtMs for when to look next).
 */
import { watermarkRefreshLagEntries, watermarkRefreshQuietMs, watermarkRefreshRetryMs, watermarkRefreshUpForMs } from './limits.js';

export interface WatermarkRefreshOptions {
  /** Applied nothing for this long before peers are asked. Default watermarkRefreshQuietMs. */
  quietMs?: number;
  /** A watermark this many applied entries old is worth a round trip. Default watermarkRefreshLagEntries. */
  lagEntriesMin?: number;
  /** A peer still lagging is asked again after this long. Default watermarkRefreshRetryMs. */
  retryMs?: number;
  /** A peer that came up after the burst began waits this long. Default watermarkRefreshUpForMs. */
  upForMs?: number;
}

/** A peer whose watermark lags, up (and sharing data with us) since `upSinceMs`. */
export interface LaggingPeer {
  nodeId: string;
  upSinceMs: number;
}

export class WatermarkRefresh {
  readonly quietMs: number;
  readonly lagEntriesMin: number;
  readonly retryMs: number;
  readonly upForMs: number;
  /**
   * The applied seq at the last look and when that look was; the first look since the seq
   * last moved that saw it unchanged (Infinity: none yet), from which the quiet is timed.
   */
  private seqSeen = -1;
  private lookedAtMs = Number.NEGATIVE_INFINITY;
  private quietSinceMs = Number.NEGATIVE_INFINITY;
  /**
   * The look before the one that saw the burst begin: a peer up since before it saw all of it.
   * Undefined after `start` until the first burst: that one begins after the last look
   * however short the quiet before it was.
   */
  private burstSinceMs: number | undefined = Number.NEGATIVE_INFINITY;
  /** Per peer asked and still lagging: our applied seq and the time then. */
  private readonly asked = new Map<string, { seq: number; ms: number }>();

  constructor(options: WatermarkRefreshOptions = {}) {
    this.quietMs = options.quietMs ?? watermarkRefreshQuietMs;
    this.lagEntriesMin = options.lagEntriesMin ?? watermarkRefreshLagEntries;
    this.retryMs = options.retryMs ?? watermarkRefreshRetryMs;
    this.upForMs = options.upForMs ?? watermarkRefreshUpForMs;
  }

  /** The peers to sync with now, of `lagging`, given our applied seq `seqLast`. */
  due(nowMs: number, seqLast: number, lagging: readonly LaggingPeer[]): string[] {
    this.look(nowMs, seqLast);
    // Forget peers no longer lagging (proven since, or gone): bounded by the lagging peers.
    for (const nodeId of this.asked.keys()) if (!lagging.some((peer) => peer.nodeId === nodeId)) this.asked.delete(nodeId);
    if (nowMs - this.quietSinceMs < this.quietMs) return [];
    const due = lagging.filter((peer) => this.askableAtMs(peer, seqLast) <= nowMs).map((peer) => peer.nodeId);
    for (const nodeId of due) this.asked.set(nodeId, { seq: seqLast, ms: nowMs });
    return due;
  }

  /**
   * When to call `due` next (Infinity: nothing to wait for). While entries are being applied,
   * `quietMs` from now (a burst may be under way: its end is noticed within ~2 x quietMs);
   * after, once the quiet is long enough and a lagging peer may be asked.
   */
  wakeAtMs(nowMs: number, seqLast: number, lagging: readonly LaggingPeer[]): number {
    if (seqLast !== this.seqSeen) {
      this.look(nowMs, seqLast);
      return nowMs + this.quietMs;
    }
    // A look that sees the seq unchanged starts the quiet, if none had.
    if (lagging.length > 0) this.look(nowMs, seqLast);
    let at = Number.POSITIVE_INFINITY;
    for (const peer of lagging) at = Math.min(at, this.askableAtMs(peer, seqLast));
    return at === Number.POSITIVE_INFINITY ? at : Math.max(nowMs, at, this.quietSinceMs + this.quietMs);
  }

  /**
   * A still look at `seqLast` with no burst before it: for a caller that knows nothing is being
   * applied (Membership, created before it has any peer). Without it the first look counts as
   * a move (the node may be applying a catch-up), and a burst then seen without a quiet of
   * quietMs before it counts as under way since always.
   */
  start(nowMs: number, seqLast: number): void {
    this.seqSeen = seqLast;
    this.quietSinceMs = nowMs;
    this.lookedAtMs = nowMs;
    this.burstSinceMs = undefined;
  }

  /**
   * Note our applied seq at `nowMs` (due and wakeAtMs look too). Membership looks as a member
   * comes up, so a burst that begins later is known to have begun after it: with no look in
   * between, the last look would be from before the member was up, and the member would wait
   * upForMs as if it had come up mid-burst (a node killed a few seconds after a cluster's
   * first burst then caught up by the whole burst again).
   */
  look(nowMs: number, seqLast: number): void {
    if (seqLast !== this.seqSeen) {
      // Moving again after a quiet: a new burst, begun after the previous look.
      if (this.burstSinceMs === undefined || nowMs - this.quietSinceMs >= this.quietMs) this.burstSinceMs = this.lookedAtMs;
      this.seqSeen = seqLast;
      this.quietSinceMs = Number.POSITIVE_INFINITY;
    } else if (this.quietSinceMs === Number.POSITIVE_INFINITY) {
      this.quietSinceMs = nowMs;
    }
    this.lookedAtMs = nowMs;
  }

  /** When `peer` may be asked (again): at once if never asked or another burst came since. */
  private askableAtMs(peer: LaggingPeer, seqLast: number): number {
    const asked = this.asked.get(peer.nodeId);
    const again = asked === undefined || seqLast - asked.seq >= this.lagEntriesMin ? Number.NEGATIVE_INFINITY : asked.ms + this.retryMs;
    // Up since before the burst began (at or before the last look that saw no burst): it saw
    // all of it. Else it is catching up: wait.
    const settled = this.burstSinceMs === undefined || peer.upSinceMs <= this.burstSinceMs ? Number.NEGATIVE_INFINITY : peer.upSinceMs + this.upForMs;
    return Math.max(again, settled);
  }
}
