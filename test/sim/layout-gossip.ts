/**
 * Layout gossip as both partitioned-mode simulators model it (layout-sim.ts, and the data
 * simulator's partition-layouts.ts / partition-nodes.ts), over whatever network the simulator
 * plays (`GossipNet.send`: lossy, late, duplicated):
 * - a change goes to a fanout of `gossipFanout` random reachable peers (an epidemic; the
 *   periodic re-announcement reaches the rest). Production floods gossipsub to every peer; a
 *   fanout keeps a 50-node run at O(N) messages per change instead of O(N^2);
 * - a node's own acks go to every reachable peer. Acks are statements about their sender,
 *   signed in production and flooded by gossipsub in one hop, so their origin is known however
 *   they travel; here they go straight to everyone, which is the same. A change floods only
 *   the acks that changed since this boot last flooded them; the periodic re-announcement
 *   (`ownAcksEncoded`) repeats all;
 * - a node's layouts message is encoded once while its active layouts stay the same, and each
 *   message's bytes are decoded once (a flood sends the same bytes to every peer, and decoded
 *   layouts are immutable: acks' bitmaps are copied by the history);
 * - the coordinator of joins and removals, in a node's view, is the smallest id among the
 *   reachable owning members of its newest layout.
 * The order of random draws is part of each simulator's replay: these helpers draw exactly as
 * the code they replaced.
 * Also the canary placement both simulators use (owners by partition modulo the members).
 */
import type { HashText } from '../../src/core/entry.js';
import { decodeLayoutMessage, encodeLayoutMessage, type ClusterLayout, type LayoutMessage } from '../../src/core/layout.js';
import type { LayoutHistory } from '../../src/core/layout-history.js';
import { eligibleNodes, ownerCountOf, partitionCount, partitionOfHash, type Layout, type PartitionId, type Placement } from '../../src/core/placement.js';
import type { Prng } from './prng.js';

/** Peers a change is gossiped to at once. */
export const gossipFanout = 6;

export const keyOf = (layout: ClusterLayout): string => `${layout.version}:${layout.digest}`;

/** What gossip reads and keeps of a simulated node. */
export interface GossipNode {
  history: LayoutHistory | undefined;
  leaving: boolean;
  /** The last ack flooded per layout (version:digest), this boot. */
  flooded: Map<string, string>;
  /** Its layouts message, while its active layouts stay the same. */
  encoded?: { key: string; bytes: Uint8Array };
}

/** The simulated network gossip runs over. */
export interface GossipNet<N extends GossipNode> {
  readonly nodes: readonly N[];
  readonly rng: Prng;
  reachable(a: N, b: N): boolean;
  /** Sends encoded layout-message bytes (the simulator decides loss, delay, delivery). */
  send(from: N, to: N, bytes: Uint8Array): void;
}

/** The canary placement: owners by partition modulo the sorted eligible members; a join moves nearly everything. */
export class ModuloPlacement implements Placement {
  readonly mode = 'modulo-canary';
  private readonly all = Array.from({ length: partitionCount }, (_, i) => i);
  partitionOf(keyHash: HashText): PartitionId {
    return partitionOfHash(keyHash);
  }
  partitions(): readonly PartitionId[] {
    return this.all;
  }
  ownersOf(partition: PartitionId, layout: Layout): readonly string[] {
    const eligible = eligibleNodes(layout);
    return Array.from({ length: ownerCountOf(layout) }, (_, i) => eligible[(partition + i) % eligible.length]!);
  }
}

/** The node's active layouts, encoded (kept while they stay the same); undefined before its first layout. */
export function layoutsMessage(node: GossipNode): Uint8Array | undefined {
  const layouts = node.history!.active();
  if (layouts.length === 0) return undefined;
  const key = layouts.map(keyOf).join(' ');
  if (node.encoded?.key !== key) node.encoded = { key, bytes: encodeLayoutMessage({ type: 'layouts', layouts: [...layouts] }) };
  return node.encoded.bytes;
}

/** All the node's own acks, encoded (the periodic re-announcement). */
export function ownAcksEncoded(node: GossipNode): Uint8Array[] {
  return node.history!.ownAcks().map((ack) => encodeLayoutMessage({ type: 'ack', ack }));
}

/** Gossip of a change: the layouts to `to` (a fanout), the node's changed own acks to every reachable node. */
export function gossip<N extends GossipNode>(net: GossipNet<N>, node: N, to: readonly N[]): void {
  const bytes = layoutsMessage(node);
  if (bytes) for (const peer of to) net.send(node, peer, bytes);
  const acks: Uint8Array[] = [];
  for (const ack of node.history!.ownAcks()) {
    const encoded = encodeLayoutMessage({ type: 'ack', ack });
    const key = `${ack.version}:${ack.digest}`;
    const text = Buffer.from(encoded).toString('latin1');
    if (node.flooded.get(key) === text) continue;
    node.flooded.set(key, text);
    acks.push(encoded);
  }
  for (const peer of net.nodes) if (net.reachable(node, peer)) for (const ack of acks) net.send(node, peer, ack);
}

/** The peers news goes to at once: gossipFanout random reachable ones. */
export function fanout<N extends GossipNode>(net: GossipNet<N>, node: N): N[] {
  const peers = net.nodes.filter((peer) => net.reachable(node, peer));
  const chosen: N[] = [];
  while (chosen.length < gossipFanout && peers.length > 0) chosen.push(peers.splice(net.rng.int(0, peers.length - 1), 1)[0]!);
  return chosen;
}

/** The coordinator in `node`'s view: the smallest id among the reachable owning members of `newest`. */
export function coordinatorOf<N extends GossipNode>(net: Pick<GossipNet<N>, 'reachable'>, byId: ReadonlyMap<string, N>, node: N, newest: ClusterLayout): string | undefined {
  return newest.nodes.find((id) => {
    const member = byId.get(id)!;
    return newest.weights[id]! > 0 && !member.leaving && (member === node || net.reachable(node, member));
  });
}

/** Decodes a layout message once per bytes object; a malformed one is the error it threw. */
export function decodeOnce(cache: WeakMap<Uint8Array, LayoutMessage | Error>, bytes: Uint8Array): LayoutMessage | Error {
  let decoded = cache.get(bytes);
  if (!decoded) {
    try {
      decoded = decodeLayoutMessage(bytes);
    } catch (error) {
      decoded = error as Error;
    }
    cache.set(bytes, decoded);
  }
  return decoded;
}
