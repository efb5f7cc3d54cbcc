/**
 * Identify watch: a connected peer that never became a member is identified again.
 *
 * A peer becomes a member only through a `peer:identify` event that shows our sync protocol
 * (./cluster.ts). Two things could leave a live connection with no such event, and nothing
 * would ever fix it: the bootstrap redial and the membership dial both see "connected" and do
 * not dial again, so the two nodes stayed strangers for good (seen in CI: 2 of 5 nodes never
 * met a third, and the layout never settled):
 * - the startup race: libp2p starts (and the bootstrap dials go out) before the node has
 *   registered its protocol handlers and its identify listener, so an identify that completes
 *   in between is missed on our side, and the remote's identify of us lists no sync protocol;
 * - identify times out (5 s) on a loaded machine, and libp2p never retries it.
 *
 * So every `checkIntervalMs` the runtime passes the set of connected peers that are not up
 * members; a peer seen there is identified again `retryDelaysMs` after it was first seen, then
 * after each further delay. A peer whose identify keeps failing is hung up on after the last
 * attempt: the redial loops then build a fresh connection (with a fresh identify). A peer whose
 * identify succeeds but shows no sync protocol (another cluster, or not a ckv node) is
 * `foreign`: it is asked again on the same schedule (its handlers may have been registered
 * after its first answer), then left connected and no longer watched (bootstrap health reports
 * it). The state is bounded by the open connections: a peer that disconnects is forgotten.
 */

/** The delays before each identify again, from when a connected non-member is first seen. */
export const identifyRetryDelaysMsDefault: readonly number[] = [2_000, 6_000, 15_000];
/** How often the runtime looks for connected peers that are not members. */
export const identifyCheckIntervalMsDefault = 1_000;

interface Watched {
  /** Identify attempts made by this watch so far. */
  attempts: number;
  /** When the next attempt (or the final decision) is due. */
  dueMs: number;
  /** An identify of it succeeded and showed no sync protocol. */
  foreign: boolean;
}

export interface IdentifyActions {
  /** Peers to identify again now. */
  identify: string[];
  /** Peers whose identify never succeeded after every attempt: close their connections. */
  hangUp: string[];
}

export class IdentifyWatch {
  private readonly watched = new Map<string, Watched>();

  constructor(private readonly retryDelaysMs: readonly number[] = identifyRetryDelaysMsDefault) {}

  /** An identify of `peerId` succeeded but showed no sync protocol of our cluster. */
  foreign(peerId: string): void {
    const entry = this.watched.get(peerId);
    if (entry) entry.foreign = true;
  }

  /**
   * `strangers`: the peers connected now that are not up members. Returns what to do; peers no
   * longer in the set (they became members, or disconnected) are forgotten.
   */
  check(strangers: Iterable<string>, nowMs: number): IdentifyActions {
    const actions: IdentifyActions = { identify: [], hangUp: [] };
    const current = new Set(strangers);
    for (const peerId of this.watched.keys()) if (!current.has(peerId)) this.watched.delete(peerId);
    for (const peerId of current) {
      let entry = this.watched.get(peerId);
      if (!entry) {
        entry = { attempts: 0, dueMs: nowMs + this.retryDelaysMs[0]!, foreign: false };
        this.watched.set(peerId, entry);
        continue;
      }
      if (nowMs < entry.dueMs || entry.attempts > this.retryDelaysMs.length) continue;
      if (entry.attempts < this.retryDelaysMs.length) {
        entry.attempts++;
        entry.dueMs = nowMs + (this.retryDelaysMs[entry.attempts] ?? this.retryDelaysMs.at(-1)!);
        actions.identify.push(peerId);
        continue;
      }
      // Every attempt made: a foreign peer is left alone, one that never answered is hung up on.
      entry.attempts++;
      if (!entry.foreign) actions.hangUp.push(peerId);
    }
    return actions;
  }

  /** Peers watched now (for tests and the status). */
  get size(): number {
    return this.watched.size;
  }
}
