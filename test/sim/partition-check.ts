/**
 * The end-of-run checker of the placement-aware data simulator (partition-sim.ts): once faults
 * stopped and the cluster quiesced, it reads every up node's store and layouts and checks them
 * against the ground truth the simulator kept (writes acknowledged, versions stamped), never
 * against what nodes claim (their acks, their `holds`):
 * 1. every up node ends on the same single active layout, whose members are exactly the nodes
 *    that want in;
 * 2. each partition's owners (in that layout) hold identical entries for that partition;
 * 3. every acknowledged write, or a newer version of its key, is on all K owners;
 * 4. no node holds rows of a partition it does not own (purge ran);
 * 5. no deleted key returns: where the last acknowledged write of a key is a delete, owners
 *    hold that tombstone or a newer version, and no node holds a version nobody stamped.
 * (Invariant 6, reads during the run, and "no version replaced by an older one" are checked
 * by the simulator as they happen.)
 */
import { compareVersions, keyHashText, type Entry, type Version } from '../../src/core/entry.js';
import { hlcToString } from '../../src/core/hlc.js';
import type { LayoutHistory } from '../../src/core/layout-history.js';
import { partitionCount, partitionOfHash, type PartitionId, type Placement } from '../../src/core/placement.js';
import type { MemoryStore } from '../../src/store/memory-store.js';
import { keyOf } from './layout-gossip.js';

export const versionText = (v: Version): string => `${hlcToString(v.hlc)}/${v.node.slice(0, 6)}`;

const partitions = new Map<string, PartitionId>();
/** A key's partition (memoized: the key space is small and scans ask often). */
export function partitionOfKey(key: string): PartitionId {
  let p = partitions.get(key);
  if (p === undefined) partitions.set(key, (p = partitionOfHash(keyHashText(key))));
  return p;
}

/** What the checker reads of a simulated node. */
export interface CheckedNode {
  readonly index: number;
  readonly nodeId: string;
  readonly status: string;
  readonly wantsIn: boolean;
  readonly history: LayoutHistory | undefined;
  readonly replica: unknown;
  readonly disk: MemoryStore;
}

export interface GroundTruth {
  /** Per key, the greatest acknowledged version and whether it was a delete. */
  readonly acked: ReadonlyMap<string, { version: Version; deleted: boolean }>;
  /** Every version some node stamped, as "key versionText". */
  readonly stamped: ReadonlyMap<string, boolean>;
  /**
   * Invariant 2 only for acknowledged versions: without anti-entropy (option `delivery`) a
   * write never acknowledged whose stamper could not hand it on stays where it was stamped.
   */
  readonly unackedMayDiverge?: boolean;
}

export function checkEnd(
  nodes: readonly CheckedNode[],
  truth: GroundTruth,
  placement: Placement,
  violate: (text: string) => void,
  stats: { finalVersion: number; entries: number },
): void {
  const nameOf = (nodeId: string): string => `${nodes.find((n) => n.nodeId === nodeId)?.index ?? nodeId}`;
  const up = nodes.filter((n) => n.status === 'up');
  for (const n of up) if (!n.replica) violate(`node ${n.index} has no open replica at the end`);
  const newest = up[0]?.history?.newest();
  if (!newest) return violate('no up node holds a layout');
  stats.finalVersion = newest.version;
  // 1. One layout everywhere, with exactly the nodes that want in.
  for (const node of up) {
    const active = node.history!.active();
    const last = active[active.length - 1]!;
    if (keyOf(last) !== keyOf(newest)) violate(`node ${node.index} ends on layout ${keyOf(last)}, node ${up[0]!.index} on ${keyOf(newest)}`);
    else if (active.length !== 1) violate(`node ${node.index} ends with layouts ${active.map((l) => l.version).join(',')} active: a change never completed`);
  }
  const wanted = nodes.filter((n) => n.wantsIn).map((n) => n.index).sort((a, b) => a - b);
  const members = newest.nodes.map((id) => Number(nameOf(id))).sort((a, b) => a - b);
  if (wanted.join(' ') !== members.join(' ')) violate(`the final layout holds nodes ${members.join(' ')}, the nodes that want in are ${wanted.join(' ')}`);
  // What each up node stores, by partition (its disk, not what its replica says).
  const stores = new Map<string, Map<PartitionId, Map<string, Entry>>>();
  for (const node of up) {
    const byPartition = new Map<PartitionId, Map<string, Entry>>();
    for (const [, key] of node.disk.indexRows()) {
      const entry = node.disk.peekEntry(key)!;
      const p = partitionOfKey(key);
      if (!byPartition.has(p)) byPartition.set(p, new Map());
      byPartition.get(p)!.set(key, entry);
      stats.entries++;
      if (!truth.stamped.has(`${key} ${versionText(entry.version)}`)) violate(`node ${node.index} holds ${key}@${versionText(entry.version)}, which nobody wrote`);
    }
    stores.set(node.nodeId, byPartition);
    // 4. Nothing of partitions it does not own.
    for (const [p, entries] of byPartition) {
      if (!placement.ownersOf(p, newest).includes(node.nodeId)) violate(`node ${node.index} holds ${entries.size} rows of partition ${p}, which it does not own`);
    }
  }
  const entryText = (e: Entry | undefined): string => (e ? `${versionText(e.version)}${e.value === null ? ' (deleted)' : ''}` : 'nothing');
  // 2. Owners agree, partition by partition.
  for (let p = 0; p < partitionCount; p++) {
    const owners = placement.ownersOf(p, newest);
    const reference = stores.get(owners[0]!)?.get(p) ?? new Map<string, Entry>();
    for (const owner of owners.slice(1)) {
      const other = stores.get(owner)?.get(p) ?? new Map<string, Entry>();
      for (const key of new Set([...reference.keys(), ...other.keys()])) {
        const a = reference.get(key);
        const b = other.get(key);
        if (!a || !b || compareVersions(a.version, b.version) !== 0) {
          const newer = !a ? b! : !b || compareVersions(a.version, b.version) > 0 ? a : b;
          const acked = truth.acked.get(key);
          if (truth.unackedMayDiverge && (!acked || compareVersions(newer.version, acked.version) > 0)) continue;
          violate(`partition ${p}: owner ${nameOf(owners[0]!)} holds ${key}@${entryText(a)}, owner ${nameOf(owner)} ${entryText(b)}`);
          break;
        }
      }
    }
  }
  // 3 and 5. Acknowledged writes on every owner; no deleted key back.
  for (const [key, acked] of truth.acked) {
    const p = partitionOfKey(key);
    for (const owner of placement.ownersOf(p, newest)) {
      const held = stores.get(owner)?.get(p)?.get(key);
      if (!held || compareVersions(held.version, acked.version) < 0) {
        violate(`owner ${nameOf(owner)} of partition ${p} lost acknowledged ${acked.deleted ? 'delete' : 'write'} ${key}@${versionText(acked.version)} (holds ${entryText(held)})`);
      } else if (acked.deleted && held.value !== null && compareVersions(held.version, acked.version) === 0) {
        violate(`owner ${nameOf(owner)} returns deleted key ${key}`);
      }
    }
  }
}
