/**
 * The plan of a layout change: which partitions change owners, which nodes gain and lose
 * each, and how much data that moves. `ckv layout` prints it before a commit (staged vs
 * current) and during a transition (newest vs oldest active); the sizes come from the caller
 * (each partition's bytes and keys as some node measured them), so the core reads nothing.
 *
 * A node gaining a partition must receive all of it (its bytes count once per gaining
 * node); a node losing one may drop it once the change completes. Partitions whose owners
 * stay the same move nothing, even if their order (leadership) changes.
 */
import { assert } from './errors.js';
import { partitionCount, type Layout, type PartitionId, type Placement } from './placement.js';

/** Per-partition sizes, indexed by partition (partitionCount long); absent: unknown, counted as 0. */
export interface PartitionSizes {
  readonly bytes?: readonly number[];
  readonly keys?: readonly number[];
}

export interface PartitionMove {
  readonly partition: PartitionId;
  /** Owners before, sorted. */
  readonly from: readonly string[];
  /** Owners after, sorted. */
  readonly to: readonly string[];
  /** Owners after that were not before: each receives the whole partition. */
  readonly gaining: readonly string[];
  /** Owners before that are not after: each may drop the partition once the change completes. */
  readonly losing: readonly string[];
  readonly bytes: number;
  readonly keys: number;
}

export interface NodeMoves {
  readonly nodeId: string;
  /** Partitions it owns before and after. */
  readonly partitionsBefore: number;
  readonly partitionsAfter: number;
  readonly partitionsGained: number;
  readonly partitionsLost: number;
  /** Bytes (keys) it receives: the sizes of the partitions it gains. */
  readonly bytesIn: number;
  readonly keysIn: number;
  /** Bytes it may drop once the change completes. */
  readonly bytesOut: number;
}

export interface LayoutPlan {
  /** undefined: from nothing (the first layout). */
  readonly fromVersion: number | undefined;
  readonly toVersion: number;
  /** Only the partitions whose owners change, ascending. */
  readonly moves: readonly PartitionMove[];
  /** Every node of either layout, by node id. */
  readonly nodes: readonly NodeMoves[];
  readonly totals: {
    readonly partitionsChanged: number;
    /** Partition-replicas that move (the sum of gaining owners over partitions). */
    readonly replicasMoved: number;
    /** Partition-replicas in the new layout (partitions times owners). */
    readonly replicasAfter: number;
    readonly bytesMoved: number;
    readonly keysMoved: number;
  };
}

export function planOf(placement: Placement, from: Layout | undefined, to: Layout, sizes: PartitionSizes = {}): LayoutPlan {
  assert(sizes.bytes === undefined || sizes.bytes.length === partitionCount, 'bytes must list every partition');
  assert(sizes.keys === undefined || sizes.keys.length === partitionCount, 'keys must list every partition');
  const moves: PartitionMove[] = [];
  const nodes = new Map<string, { before: number; after: number; gained: number; lost: number; bytesIn: number; keysIn: number; bytesOut: number }>();
  const node = (nodeId: string) => {
    let entry = nodes.get(nodeId);
    if (!entry) {
      entry = { before: 0, after: 0, gained: 0, lost: 0, bytesIn: 0, keysIn: 0, bytesOut: 0 };
      nodes.set(nodeId, entry);
    }
    return entry;
  };
  for (const nodeId of from?.nodes ?? []) node(nodeId);
  for (const nodeId of to.nodes) node(nodeId);
  let replicasMoved = 0;
  let replicasAfter = 0;
  let bytesMoved = 0;
  let keysMoved = 0;
  for (const partition of placement.partitions()) {
    const before = from ? [...placement.ownersOf(partition, from)].sort() : [];
    const after = [...placement.ownersOf(partition, to)].sort();
    const bytes = sizes.bytes?.[partition] ?? 0;
    const keys = sizes.keys?.[partition] ?? 0;
    for (const nodeId of before) node(nodeId).before++;
    for (const nodeId of after) node(nodeId).after++;
    replicasAfter += after.length;
    const gaining = after.filter((nodeId) => !before.includes(nodeId));
    const losing = before.filter((nodeId) => !after.includes(nodeId));
    if (gaining.length === 0 && losing.length === 0) continue;
    for (const nodeId of gaining) {
      const entry = node(nodeId);
      entry.gained++;
      entry.bytesIn += bytes;
      entry.keysIn += keys;
    }
    for (const nodeId of losing) {
      const entry = node(nodeId);
      entry.lost++;
      entry.bytesOut += bytes;
    }
    replicasMoved += gaining.length;
    bytesMoved += bytes * gaining.length;
    keysMoved += keys * gaining.length;
    moves.push({ partition, from: before, to: after, gaining, losing, bytes, keys });
  }
  return {
    fromVersion: from?.version,
    toVersion: to.version,
    moves,
    nodes: [...nodes]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([nodeId, e]) => ({
        nodeId,
        partitionsBefore: e.before,
        partitionsAfter: e.after,
        partitionsGained: e.gained,
        partitionsLost: e.lost,
        bytesIn: e.bytesIn,
        keysIn: e.keysIn,
        bytesOut: e.bytesOut,
      })),
    totals: { partitionsChanged: moves.length, replicasMoved, replicasAfter, bytesMoved, keysMoved },
  };
}

/** What one node receives from one set of sources: the plan aggregated per (from, to) pair. */
export interface PlanTransfer {
  /** The partition's owners before (any of them can send it), sorted. */
  readonly from: readonly string[];
  /** The gaining owner. */
  readonly to: string;
  readonly partitions: number;
  readonly keys: number;
  readonly bytes: number;
}

/** The plan's moves aggregated per (owners before, gaining owner), largest first (bytes, then keys, then partitions). */
export function transfersOf(plan: LayoutPlan): PlanTransfer[] {
  const pairs = new Map<string, { from: readonly string[]; to: string; partitions: number; keys: number; bytes: number }>();
  for (const move of plan.moves) {
    for (const to of move.gaining) {
      const id = `${move.from.join(',')}>${to}`;
      const pair = pairs.get(id) ?? { from: move.from, to, partitions: 0, keys: 0, bytes: 0 };
      pair.partitions++;
      pair.keys += move.keys;
      pair.bytes += move.bytes;
      pairs.set(id, pair);
    }
  }
  return [...pairs.values()].sort((a, b) => b.bytes - a.bytes || b.keys - a.keys || b.partitions - a.partitions || (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
}
