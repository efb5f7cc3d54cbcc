/**
 * Weighted rendezvous (highest random weight) placement: the partitioned mode's `Placement`.
 *
 * Each (partition, node) pair gets a pseudo-random number u in (0, 1) from SHA-256, and the
 * node a score
 *
 *     score(partition, node) = weight(node) / -ln(u(partition, node))
 *
 * The K nodes of highest score own the partition (K = the layout's `replicas`, capped by the
 * nodes of weight > 0; a gateway, weight 0, never owns anything). With -ln(u) exponential,
 * weight/-ln(u) is the logarithmic method of weighted rendezvous: with K = 1 a node owns a
 * share of partitions in proportion to its weight (Schindelhauer and Schomaker, "Weighted
 * distributed hash tables", 2005); with K > 1 shares grow with weight, each capped at one
 * replica of every partition.
 *
 * Why rendezvous: a node's score for a partition depends on that pair only, never on the
 * other nodes. So a join changes a partition's owners only where the new node's score enters
 * the top K (about K/(N+1) of the partition-replicas, each moving to the joiner), and a leave
 * only where the leaver was an owner (each replaced by the next in rank). No ring, no virtual
 * nodes, no table to agree on beyond the layout itself.
 *
 * Determinism across nodes and platforms: u comes from SHA-256 over a fixed text (the
 * protocol: only change it with a new layout format), read as 53 bits, so u is exact. The
 * score uses Math.log, which V8 computes with its own port of fdlibm (base/ieee754), the
 * same bits on every platform. Ties in score (equal weights and u equal to 53 bits, or
 * rounding) are broken by u, then by node id, so the order is total.
 */
import { keyHash } from './entry.js';
import { assert } from './errors.js';
import {
  assertPartition,
  eligibleNodes,
  ownerCountOf,
  partitionCount,
  partitionOfHash,
  weightOf,
  type Layout,
  type PartitionId,
  type Placement,
} from './placement.js';
import type { HashText } from './entry.js';

/** The hashed text's prefix: part of the protocol (every node must compute the same u). */
export const rendezvousHashPrefix = 'ckv/rendezvous/1';

/**
 * Node ids whose 256 hash units are cached. Computing them costs 256 SHA-256s (~0.1 ms);
 * a cluster has at most membersMax nodes, and the cache is cleared whole when it outgrows
 * this, so ids of nodes long gone do not accumulate.
 */
const unitCacheNodesMax = 4096;

/** Owner tables kept by layout digest (each 256 small arrays). */
const tablesByDigestMax = 64;

const allPartitions: readonly PartitionId[] = Array.from({ length: partitionCount }, (_, i) => i);

/** u(partition, node) in (0, 1): 53 bits of SHA-256("ckv/rendezvous/1 <partition> <node id>"). */
export function hashUnit(partition: PartitionId, nodeId: string): number {
  const digest = keyHash(`${rendezvousHashPrefix} ${partition} ${nodeId}`);
  // The first 53 bits, big-endian: exact in a double.
  const bits = Number(new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0) >> 11n);
  // + 0.5 keeps u strictly inside (0, 1): ln(u) is finite and negative.
  return (bits + 0.5) / 2 ** 53;
}

/** The rendezvous score of a node of this weight with this hash unit (0 for a gateway). */
export function rendezvousScore(weight: number, unit: number): number {
  if (weight === 0) return 0;
  return weight / -Math.log(unit);
}

export class RendezvousPlacement implements Placement {
  readonly mode = 'partitioned';
  private units = new Map<string, Float64Array>();
  /** Owners of every partition, per layout object (layouts are immutable). */
  private readonly owners = new WeakMap<Layout, readonly (readonly string[])[]>();
  /**
   * ...and per layout digest (layout.ts), so copies of one layout (decoded from gossip by
   * each receiver) share one table. Bounded: cleared whole past tablesByDigestMax.
   */
  private byDigest = new Map<string, readonly (readonly string[])[]>();

  partitionOf(keyHash: HashText): PartitionId {
    return partitionOfHash(keyHash);
  }

  partitions(): readonly PartitionId[] {
    return allPartitions;
  }

  /** The owners of `partition`, highest score first (the first is the partition's "leader"). */
  ownersOf(partition: PartitionId, layout: Layout): readonly string[] {
    assertPartition(partition);
    return this.ownerTable(layout)[partition]!;
  }

  /** Every partition's owners, indexed by partition. */
  ownerTable(layout: Layout): readonly (readonly string[])[] {
    let table = this.owners.get(layout);
    if (!table) {
      const digest = (layout as { digest?: unknown }).digest;
      const key = typeof digest === 'string' ? `${layout.version}:${digest}` : undefined;
      table = key === undefined ? undefined : this.byDigest.get(key);
      if (!table) {
        table = this.compute(layout);
        if (key !== undefined) {
          if (this.byDigest.size >= tablesByDigestMax) this.byDigest = new Map();
          this.byDigest.set(key, table);
        }
      }
      this.owners.set(layout, table);
    }
    return table;
  }

  private compute(layout: Layout): readonly (readonly string[])[] {
    const eligible = eligibleNodes(layout);
    const count = ownerCountOf(layout);
    assert(count <= eligible.length, 'more owners than eligible nodes');
    const weights = eligible.map((nodeId) => weightOf(layout, nodeId));
    const units = eligible.map((nodeId) => this.unitsOf(nodeId));
    const table: string[][] = [];
    const order = eligible.map((_, i) => i);
    const scores = new Float64Array(eligible.length);
    for (let partition = 0; partition < partitionCount; partition++) {
      for (let i = 0; i < eligible.length; i++) scores[i] = rendezvousScore(weights[i]!, units[i]![partition]!);
      order.sort((a, b) => {
        const byScore = scores[b]! - scores[a]!;
        if (byScore !== 0) return byScore;
        const byUnit = units[b]![partition]! - units[a]![partition]!;
        if (byUnit !== 0) return byUnit;
        return eligible[a]! < eligible[b]! ? -1 : 1;
      });
      table.push(order.slice(0, count).map((i) => eligible[i]!));
    }
    return table;
  }

  private unitsOf(nodeId: string): Float64Array {
    let units = this.units.get(nodeId);
    if (!units) {
      if (this.units.size >= unitCacheNodesMax) this.units = new Map();
      units = new Float64Array(partitionCount);
      for (let partition = 0; partition < partitionCount; partition++) units[partition] = hashUnit(partition, nodeId);
      this.units.set(nodeId, units);
    }
    return units;
  }
}
