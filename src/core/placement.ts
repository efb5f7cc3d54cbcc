/**
 * Placement: which nodes hold which keys. Replication is an interface (as Garage's
 * `partition_of`, `write_nodes`, `read_nodes`) with, today, one implementation:
 * `FullReplication`, where every member owns every partition. The partitioned mode (each key
 * on K of N nodes, weighted rendezvous hashing over versioned layouts) implements the same
 * interface (`RendezvousPlacement`, rendezvous.ts); the replica, gossip and sync ask it instead
 * of assuming every node holds every key. Which layouts are active, and so which nodes a
 * write goes to and a read comes from during a change, is layout-history.ts's.
 *
 * A partition is a depth-2 subtree of the Merkle tree: the first two hex digits of
 * SHA-256(key), so 256 partitions, each one contiguous range of the store's hash index and one
 * subtree that sync can compare on its own. The partitioning is the same in every mode; only
 * the owners differ.
 *
 * A layout is the set of nodes placement chooses among, with a version that increases with
 * every change, so old layouts lose (the partitioned mode stages and applies them; under full
 * replication the version only counts membership changes).
 */
import type { HashText } from './entry.js';
import { assert } from './errors.js';

/** Hex digits of the key hash that name a partition. Part of the protocol: peers must agree. */
export const partitionHexDigits = 2;
export const partitionCount = 16 ** partitionHexDigits;
// partitionOfHash reads one byte: two hex digits.
assert(partitionHexDigits === 2, 'partitionOfHash reads exactly one byte');

export type PartitionId = number;

export interface Layout {
  /** Increases with every change; a message naming an older version is old news. */
  readonly version: number;
  /** Node ids that take part, sorted (gateways, weight 0, included). */
  readonly nodes: readonly string[];
  /**
   * Each node's relative capacity (an integer, 0..layoutWeightMax): placement gives a node a
   * share of partitions in proportion to it; 0 makes the node a gateway that owns nothing.
   * Absent (membership's full-replication layouts), or a node absent from it: weight 1.
   */
  readonly weights?: Readonly<Record<string, number>>;
  /**
   * K, the owners of each partition, capped by the nodes of weight > 0. Absent: every such
   * node (full replication).
   */
  readonly replicas?: number;
}

/** A node's weight in a layout (1 when the layout carries none). */
export function weightOf(layout: Layout, nodeId: string): number {
  return layout.weights?.[nodeId] ?? 1;
}

/** The nodes that may own partitions (weight > 0), sorted. */
export function eligibleNodes(layout: Layout): readonly string[] {
  if (!layout.weights) return layout.nodes;
  return layout.nodes.filter((nodeId) => weightOf(layout, nodeId) > 0);
}

/** How many distinct owners each partition has under `layout`: min(K, eligible nodes). */
export function ownerCountOf(layout: Layout): number {
  const eligible = eligibleNodes(layout).length;
  return layout.replicas === undefined ? eligible : Math.min(layout.replicas, eligible);
}

/** Asserts a partition id is one of the partitionCount partitions. */
export function assertPartition(partition: PartitionId): void {
  // The message is made only on failure: this runs for every key placed.
  if (!(Number.isInteger(partition) && partition >= 0 && partition < partitionCount)) assert(false, `partition ${partition} out of range`);
}

export interface Placement {
  /** 'full' or 'partitioned' (rendezvous.ts). */
  readonly mode: string;
  /** The partition a key hash (keyHashText) falls in. */
  partitionOf(keyHash: HashText): PartitionId;
  /** Every partition, in order. */
  partitions(): readonly PartitionId[];
  /** The nodes that hold `partition` under `layout`. */
  ownersOf(partition: PartitionId, layout: Layout): readonly string[];
}

/** The first byte of the hash (HashText is one char per byte): its first two hex digits. */
export function partitionOfHash(keyHash: HashText): PartitionId {
  assert(keyHash.length > 0, 'an empty key hash');
  return keyHash.charCodeAt(0);
}

const allPartitions: readonly PartitionId[] = Array.from({ length: partitionCount }, (_, i) => i);

/** Every member owns every partition: today's behaviour (a gateway, weight 0, owns nothing). */
export class FullReplication implements Placement {
  readonly mode = 'full';

  partitionOf(keyHash: HashText): PartitionId {
    return partitionOfHash(keyHash);
  }

  partitions(): readonly PartitionId[] {
    return allPartitions;
  }

  ownersOf(partition: PartitionId, layout: Layout): readonly string[] {
    assertPartition(partition);
    return eligibleNodes(layout);
  }
}

/** Whether `nodeId` holds the key whose hash is `keyHash`. */
export function holds(placement: Placement, layout: Layout, nodeId: string, keyHash: HashText): boolean {
  return placement.ownersOf(placement.partitionOf(keyHash), layout).includes(nodeId);
}

/** Whether two nodes hold any partition in common: only then do they sync with each other. */
export function shareAnyPartition(placement: Placement, layout: Layout, a: string, b: string): boolean {
  return placement.partitions().some((partition) => {
    const owners = placement.ownersOf(partition, layout);
    return owners.includes(a) && owners.includes(b);
  });
}

/** A layout of these nodes at this version (sorted, distinct). */
export function layoutOf(version: number, nodes: Iterable<string>): Layout {
  return { version, nodes: [...new Set(nodes)].sort() };
}
