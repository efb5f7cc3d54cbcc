/**
 * Layouts in the placement-aware data simulator (partition-sim.ts), as layout-sim.ts models
 * them (the gossip both share: layout-gossip.ts): layouts and acks travel encoded (the gossip
 * wire format) over the lossy network (`carry`); a change goes to a fanout of reachable peers
 * and a node's own acks to every reachable peer. After any change of a node's history (`after`) the node persists it,
 * gossips, and reacts: pulls, purge (the `early-purge` canary at once) and `reconcile`.
 * `reconcile` commits what the node's intent still needs: the coordinator (the smallest
 * reachable owning member) commits the joins of nodes that want in and an operator's removals
 * of dead nodes; a leaving node commits its own removal and stops once its view of the change
 * is complete (one active layout left).
 */
import { MalformedError } from '../../src/core/errors.js';
import { LayoutChangeError } from '../../src/core/layout.js';
import type { LayoutOutcome } from '../../src/core/layout-history.js';
import { coordinatorOf, decodeOnce, fanout, gossip, keyOf, type GossipNet } from './layout-gossip.js';
import { purge, schedulePulls } from './partition-data.js';
import { carry, crash, isUp, reachable, type PartitionWorld, type SimNode } from './partition-world.js';

/** Layout messages travel by `carry` (lossy, late) and are delivered by `deliverLayout`. */
export function layoutNet(w: PartitionWorld): GossipNet<SimNode> {
  let net = nets.get(w);
  if (!net) {
    net = { nodes: w.nodes, rng: w.rng, reachable, send: (from, to, bytes) => carry(w, from, to, () => deliverLayout(w, from, to, bytes)) };
    nets.set(w, net);
  }
  return net;
}
const nets = new WeakMap<PartitionWorld, GossipNet<SimNode>>();

export function deliverLayout(w: PartitionWorld, from: SimNode, to: SimNode, bytes: Uint8Array): void {
  const message = decodeOnce(w.decoded, bytes);
  if (message instanceof Error) {
    if (!(message instanceof MalformedError)) w.violate(`a layout message failed with ${String(message)}`);
    return;
  }
  const history = to.history!;
  if (message.type === 'layouts') after(w, to, history.receiveLayouts(message.layouts));
  else after(w, to, history.receiveAck(from.nodeId, message.ack).outcome);
}

/** A change: the layouts to a fanout, the node's changed acks to every reachable node. */
export function announce(w: PartitionWorld, node: SimNode): void {
  const net = layoutNet(w);
  gossip(net, node, fanout(net, node));
}

/** After any change of a node's history: persist, gossip, and react (pulls, purge, commits). */
export function after(w: PartitionWorld, node: SimNode, outcome: LayoutOutcome): void {
  if (!outcome.changed && outcome.conflicts.length === 0 && outcome.retired.length === 0) return;
  if (!isUp(node)) return;
  const history = node.history!;
  if (outcome.retired.length > 0) {
    w.stats.retirements++;
    w.trace?.(`${w.queue.nowMs} node ${node.index} retired ${outcome.retired.join(',')}; active ${history.active().map(keyOf).join(' ')}`);
  }
  node.layoutDisk = history.snapshot();
  announce(w, node);
  if (w.canary === 'early-purge') void purge(w, node, true);
  schedulePulls(w, node);
  reconcile(w, node);
}

export function reconcile(w: PartitionWorld, node: SimNode): void {
  if (!isUp(node)) return;
  const history = node.history!;
  const newest = history.newest();
  if (!newest) return;
  if (node.leaving && newest.weights[node.nodeId] === undefined && history.active().length === 1) {
    w.trace?.(`${w.queue.nowMs} node ${node.index} handed off (layout ${keyOf(newest)}) and stops`);
    crash(node, 'gone');
    return;
  }
  if (w.queue.nowMs - node.lastCommitMs < 1000) return;
  try {
    if (node.leaving) {
      if (newest.weights[node.nodeId] === undefined) return;
      history.stageRemove(node.nodeId);
    } else {
      if (coordinatorOf(layoutNet(w), w.byId, node, newest) !== node.nodeId) return;
      const joins = w.nodes.filter((n) => n.wantsIn && (n === node || reachable(node, n)) && newest.weights[n.nodeId] === undefined);
      const dead = w.pendingRemovals.filter((id) => newest.weights[id] !== undefined);
      if (dead.length > 0) for (const id of dead) history.stageRemove(id);
      else if (joins.length > 0) for (const n of joins) history.stageAdd(n.nodeId, n.weight);
      else return;
    }
    commit(w, node);
  } catch (error) {
    history.revert();
    if (!(error instanceof LayoutChangeError)) throw error;
  }
}

export function commit(w: PartitionWorld, node: SimNode): void {
  const { layout, outcome } = node.history!.commit();
  w.trace?.(`${w.queue.nowMs} node ${node.index} commits ${keyOf(layout)}: ${layout.nodes.map((id) => `${w.nameOf(id)}:${layout.weights[id]}`).join(' ')}`);
  w.stats.commits++;
  node.lastCommitMs = w.queue.nowMs;
  after(w, node, outcome);
}
