/**
 * What `ckv layout` shows, read from a node's layout history at one moment: the newest layout
 * with each member's weight, partitions owned and whether it is up; every active layout (more
 * than one while a change is in progress) with its partitions synced at every owner and
 * pending; the staged changes and, if they cannot be committed, why; conflicts; and the plan
 * (src/core/layout-plan.ts) of the staged change, else of the change in progress (oldest
 * active to newest), with each move's keys and bytes from the partition sizes the caller passes
 * (what nodes reported: layout-service.ts); every partition's owners and size. No I/O.
 */
import { LayoutChangeError, type ClusterLayout } from '../core/layout.js';
import type { LayoutHistory } from '../core/layout-history.js';
import { planOf, type LayoutPlan, type PartitionSizes } from '../core/layout-plan.js';
import { partitionCount } from '../core/placement.js';

export interface LayoutMemberView {
  nodeId: string;
  /** '' when not up (or unknown). */
  peerId: string;
  weight: number;
  /** Partitions it owns in this layout. */
  partitions: number;
  up: boolean;
}

export interface ActiveLayoutView {
  version: number;
  digest: string;
  nodes: number;
  /** Partitions synced at every owner (the oldest active layout counts as synced). */
  partitionsSynced: number;
  partitionsPending: number;
  /** Every node of it acked it: its new owners may pull. */
  syncStarted: boolean;
}

export interface LayoutView {
  /** This node's --replicas. */
  replicas: number;
  self: string;
  current: { version: number; replicas: number | undefined; digest: string; members: LayoutMemberView[]; removed: { nodeId: string; at: number }[] } | undefined;
  active: ActiveLayoutView[];
  staged: { nodeId: string; weight: number; remove: boolean }[];
  /** '' (none), 'all' or K. */
  stagedReplicas: string;
  /** Why the staged changes cannot be committed ('' if they can or there are none). */
  stagedError: string;
  conflicts: { version: number; kept: string; dropped: string }[];
  plan: LayoutPlan | undefined;
  /** What the plan is of: 'staged', 'in-progress' or ''. */
  planOf: string;
  /** The version a change just committed (0 otherwise). */
  committedVersion: number;
  /** Every partition of the newest layout: its owners and size (the largest any node reported). */
  partitions: { partition: number; owners: string[]; keys: number; bytes: number }[];
  /** Nodes whose partition sizes the plan's sizes come from (this node included, if it holds rows). */
  sizesReporters: number;
}

export function layoutView(
  history: LayoutHistory,
  replicas: number,
  up: ReadonlyMap<string, string>,
  committedVersion = 0,
  sizes: PartitionSizes & { reporters?: number } = {},
): LayoutView {
  const newest = history.newest();
  const active = history.active();
  const staged = history.staged();
  const placement = history.placement;
  const ownedIn = (layout: ClusterLayout): Map<string, number> => {
    const counts = new Map<string, number>();
    for (let p = 0; p < partitionCount; p++) for (const nodeId of placement.ownersOf(p, layout)) counts.set(nodeId, (counts.get(nodeId) ?? 0) + 1);
    return counts;
  };
  let plan: LayoutPlan | undefined;
  let planKind = '';
  let stagedError = '';
  const hasStaged = staged.members.size > 0 || staged.replicas !== undefined;
  if (hasStaged) {
    try {
      plan = planOf(placement, newest, history.preview(), sizes);
      planKind = 'staged';
    } catch (error) {
      if (!(error instanceof LayoutChangeError)) throw error;
      stagedError = error.message;
    }
  }
  if (!plan && active.length > 1) {
    plan = planOf(placement, active[0], newest!, sizes);
    planKind = 'in-progress';
  }
  const owned = newest ? ownedIn(newest) : new Map<string, number>();
  return {
    replicas,
    self: history.self,
    current: newest && {
      version: newest.version,
      replicas: newest.replicas,
      digest: newest.digest,
      members: newest.nodes.map((nodeId) => ({
        nodeId,
        peerId: up.get(nodeId) ?? '',
        weight: newest.weights[nodeId]!,
        partitions: owned.get(nodeId) ?? 0,
        up: up.has(nodeId),
      })),
      removed: newest.removed.map((r) => ({ nodeId: r.nodeId, at: r.at })),
    },
    active: active.map((layout, i) => {
      let synced = 0;
      for (let p = 0; p < partitionCount; p++) if (i === 0 || history.partitionSynced(layout, p)) synced++;
      return {
        version: layout.version,
        digest: layout.digest,
        nodes: layout.nodes.length,
        partitionsSynced: synced,
        partitionsPending: partitionCount - synced,
        syncStarted: i === 0 || history.syncMayStart(layout.version),
      };
    }),
    staged: [...staged.members].map(([nodeId, change]) => ({ nodeId, weight: change === 'remove' ? 0 : change, remove: change === 'remove' })),
    stagedReplicas: staged.replicas === undefined ? '' : String(staged.replicas),
    stagedError,
    conflicts: history.conflicts().map((c) => ({ version: c.version, kept: c.kept.digest, dropped: c.dropped.digest })),
    plan,
    planOf: planKind,
    committedVersion,
    partitions: newest
      ? Array.from({ length: partitionCount }, (_, p) => ({ partition: p, owners: [...placement.ownersOf(p, newest)], keys: sizes.keys?.[p] ?? 0, bytes: sizes.bytes?.[p] ?? 0 }))
      : [],
    sizesReporters: sizes.reporters ?? 0,
  };
}
