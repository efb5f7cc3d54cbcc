/**
 * Automatic joins in partitioned mode: who commits them and what. Pure decisions (no I/O, no
 * clock); src/net/layout-service.ts feeds them what it knows and carries out the result.
 *
 * - The coordinator is the smallest node id among the up nodes (this one included) that are
 *   in the newest layout with weight > 0. Only it commits joins, batched: every up node that
 *   asked to join (a signed join request, with its --replicas equal to the layout's K) and is
 *   not in the newest layout. One committer keeps concurrent commits (conflicts) rare: when
 *   every joiner committed itself, the simulator saw 750 conflicts for 12 joiners at 30 nodes.
 *   Two coordinators (a network split, or views that disagree for a moment) may still commit
 *   the same version: the history's conflict rule (greater digest wins) converges them, and
 *   the loser's joins are committed again on the next tick, since those nodes are still out.
 * - The first layout: a node that has none, has heard none, and has waited its bootstrap time
 *   makes version 1 of itself alone, unless an up peer with a smaller node id also asked to
 *   join with no layout yet (that one makes it, and joins us: fewer conflicts when nodes start
 *   together). A gateway (weight 0) never makes a layout: it could own nothing.
 * - A node started with --no-auto-join never asks to join and never makes the first layout;
 *   an operator adds it (`ckv layout add`, `ckv layout apply`).
 */
import { removedAt, type ClusterLayout, type LayoutMember } from './layout.js';
import type { LayoutJoin } from './layout-wire.js';

/** The node that commits automatic joins, among `up` (node ids, this node included); undefined if none. */
export function coordinatorOf(newest: ClusterLayout | undefined, up: Iterable<string>): string | undefined {
  if (!newest) return undefined;
  let best: string | undefined;
  for (const nodeId of up) {
    if ((newest.weights[nodeId] ?? 0) > 0 && (best === undefined || nodeId < best)) best = nodeId;
  }
  return best;
}

/** The joins the coordinator commits now: up nodes that asked, agree on K, are not in `newest` and were not removed from it. */
export function joinsToCommit(newest: ClusterLayout, requests: Iterable<LayoutJoin>, up: ReadonlySet<string>): LayoutMember[] {
  const joins: LayoutMember[] = [];
  for (const request of requests) {
    if (!up.has(request.nodeId) || newest.weights[request.nodeId] !== undefined || request.replicas !== newest.replicas) continue;
    // A removed node is not joined back automatically (an operator's `layout add` lifts the removal).
    if (removedAt(newest, request.nodeId) !== undefined) continue;
    joins.push({ nodeId: request.nodeId, weight: request.weight });
  }
  return joins.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
}

/**
 * Whether this node makes the first layout now: it has none, it asks to join (auto-join on,
 * weight > 0), its bootstrap wait is over, and no up peer of a smaller node id asked to join
 * with the same K (that peer makes it).
 */
export function shouldBootstrap(options: {
  self: string;
  hasLayout: boolean;
  autoJoin: boolean;
  weight: number;
  replicas: number | undefined;
  waited: boolean;
  requests: Iterable<LayoutJoin>;
  up: ReadonlySet<string>;
}): boolean {
  if (options.hasLayout || !options.autoJoin || options.weight <= 0 || !options.waited) return false;
  for (const request of options.requests) {
    if (options.up.has(request.nodeId) && request.weight > 0 && request.replicas === options.replicas && request.nodeId < options.self) return false;
  }
  return true;
}
