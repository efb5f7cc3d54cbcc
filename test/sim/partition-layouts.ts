/**
 * Layouts in the placement-aware data simulator (partition-sim.ts), as layout-sim.ts models
 * them: layouts and acks travel encoded (the gossip wire format) over the lossy network
 * (`carry`); a change goes to a fanout of reachable peers and a node's own acks to every
 * reachable peer. After any change of a node's history (`after`) the node persists it,
 * gossips, and reacts: pulls, purge (the `early-purge` canary at once) and `reconcile`.
 * `reconcile` commits what the node's intent still needs: the coordinator (the smallest
 * reachable owning member) commits the joins of nodes that want in and an operator's removals
 * of dead nodes; a leaving node commits its own removal and stops once its view of the change
 * is complete (one active layout left).
 */
import { MalformedError } from '../../src/core/errors.js';
import { LayoutChangeError, decodeLayoutMessage, encodeLayoutMessage, type ClusterLayout } from '../../src/core/layout.js';
import type { LayoutOutcome } from '../../src/core/layout-history.js';
import { keyOf } from './partition-check.js';
import { purge, schedulePulls } from './partition-data.js';
import { carry, crash, gossipFanout, isUp, reachable, type PartitionWorld, type SimNode } from './partition-world.js';

export function deliverLayout(w: PartitionWorld, from: SimNode, to: SimNode, bytes: Uint8Array): void {
  let message = w.decoded.get(bytes);
  if (!message) {
    try {
      message = decodeLayoutMessage(bytes);
    } catch (error) {
      if (!(error instanceof MalformedError)) w.violate(`a layout message failed with ${String(error)}`);
      message = error as Error;
    }
    w.decoded.set(bytes, message);
  }
  if (message instanceof Error) return;
  const history = to.history!;
  if (message.type === 'layouts') after(w, to, history.receiveLayouts(message.layouts));
  else after(w, to, history.receiveAck(from.nodeId, message.ack).outcome);
}

export function layoutsMessage(node: SimNode): Uint8Array | undefined {
  const layouts = node.history!.active();
  if (layouts.length === 0) return undefined;
  const key = layouts.map(keyOf).join(' ');
  if (node.encoded?.key !== key) node.encoded = { key, bytes: encodeLayoutMessage({ type: 'layouts', layouts: [...layouts] }) };
  return node.encoded.bytes;
}

export function gossip(w: PartitionWorld, node: SimNode, to: SimNode[]): void {
  const bytes = layoutsMessage(node);
  if (bytes) for (const peer of to) carry(w, node, peer, () => deliverLayout(w, node, peer, bytes));
  const acks: Uint8Array[] = [];
  for (const ack of node.history!.ownAcks()) {
    const encoded = encodeLayoutMessage({ type: 'ack', ack });
    const key = `${ack.version}:${ack.digest}`;
    const text = Buffer.from(encoded).toString('latin1');
    if (node.flooded.get(key) === text) continue;
    node.flooded.set(key, text);
    acks.push(encoded);
  }
  for (const peer of w.nodes) if (reachable(node, peer)) for (const ack of acks) carry(w, node, peer, () => deliverLayout(w, node, peer, ack));
}

export function fanout(w: PartitionWorld, node: SimNode): SimNode[] {
  const peers = w.nodes.filter((peer) => reachable(node, peer));
  const chosen: SimNode[] = [];
  while (chosen.length < gossipFanout && peers.length > 0) chosen.push(peers.splice(w.rng.int(0, peers.length - 1), 1)[0]!);
  return chosen;
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
  gossip(w, node, fanout(w, node));
  if (w.canary === 'early-purge') void purge(w, node, true);
  schedulePulls(w, node);
  reconcile(w, node);
}

export function coordinatorOf(w: PartitionWorld, node: SimNode, newest: ClusterLayout): string | undefined {
  return newest.nodes.find((id) => {
    const member = w.byId.get(id)!;
    return newest.weights[id]! > 0 && !member.leaving && (member === node || reachable(node, member));
  });
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
      if (coordinatorOf(w, node, newest) !== node.nodeId) return;
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
