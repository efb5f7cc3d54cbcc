/**
 * This node's GC floor (docs/design-delivery-gc.md section 2, rule 2): an HLC F such that
 * every write this node coordinated with a version below F is held (or superseded) by every
 * member that must hold it. The cluster watermark is the minimum of the members' floors; a
 * tombstone below it can no longer be overtaken by an older write still on its way.
 *
 * Full replication (writes are gossiped; no owner acknowledges them): derived from
 * anti-entropy. Before each sync session this node initiates, it reads S = the replica's
 * settled HLC (every local stamp below S is durable: Replica.settledHlc); if the session ends
 * `in-sync` (the peer's root equalled ours as sent in Hello), the peer then held everything
 * we held at Hello, so every write we coordinated below S. The floor is the minimum over the
 * members we know (up, unreachable or left; not removed or expired) of the last such S, and
 * undefined while any member has none (a member just added, or one away since before the
 * write): such a member holds the watermark back until it returns and syncs equal, or is
 * removed. The answer names the members it covers; a collector uses a floor only if it covers
 * every member the collector knows, so a member that joined since cannot be skipped. The S
 * values are kept in memory: after a restart the floor is undefined until sessions with
 * every member end equal again (a lower floor than before is always sound; the book keeps
 * the highest anyway).
 *
 * Partitioned mode: the minimum of the settled HLC and the oldest version among the writes
 * this node coordinated that some owner has not acknowledged (the delivery rows and writes in
 * flight, `pendingOldest`).
 */
import type { Hlc } from '../core/hlc.js';
import type { FloorAnswer } from '../net/gc-protocol.js';

export class GcFloor {
  /** Per member: the settled HLC before the last session we initiated that ended in-sync. */
  private readonly inSync = new Map<string, Hlc>();

  constructor(
    private readonly deps: {
      settledHlc: () => Hlc;
      /** The other members this node knows (node ids). */
      members: () => readonly string[];
      /** Partitioned mode: the oldest unacknowledged coordinated write, if any; undefined in full mode. */
      pendingOldest?: (() => Hlc | undefined) | undefined;
      partitioned: boolean;
    },
  ) {}

  /** A session we initiated with `nodeId` ended in-sync; `settled` was read before it started. */
  sessionInSync(nodeId: string, settled: Hlc): void {
    if (settled > (this.inSync.get(nodeId) ?? 0n)) this.inSync.set(nodeId, settled);
  }

  /** The last in-sync bound of each member (status). */
  inSyncOf(nodeId: string): Hlc | undefined {
    return this.inSync.get(nodeId);
  }

  answer(): FloorAnswer {
    const members = [...this.deps.members()];
    // Bounded: forget members no longer known.
    for (const nodeId of this.inSync.keys()) if (!members.includes(nodeId)) this.inSync.delete(nodeId);
    let floor = this.deps.settledHlc();
    if (this.deps.partitioned) {
      const oldest = this.deps.pendingOldest?.();
      if (oldest !== undefined && oldest < floor) floor = oldest;
      return { floor, members };
    }
    for (const member of members) {
      const bound = this.inSync.get(member);
      if (bound === undefined) return { floor: undefined, members };
      if (bound < floor) floor = bound;
    }
    return { floor, members };
  }
}
