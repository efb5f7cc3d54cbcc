/**
 * Node lifecycle in the placement-aware data simulator (partition-sim.ts): a boot restores the
 * node's layout history from its snapshot, opens a Replica over its fenced disk (holds rule:
 * partition-world.ts) and ticks every ~1 s while the run lasts: layouts to one random peer,
 * its acks to every peer every third tick, anti-entropy every second tick, pulls while a
 * change is under way, `reconcile`, and a purge once one layout is active. Every replica
 * write is checked as it happens: no version is ever replaced by an older one.
 *
 * And the fault schedule (during the fault window, every 0.3-2 s): a crash (restarted 0.2-3 s
 * later) or, once a run, a death (removed by an operator 1-3 s later), a member that begins
 * leaving, or a network partition into two groups healed after 0.5-4 s. Crashes, deaths and
 * leaves always leave more than K owning members.
 */
import { Replica, type AppliedChange } from '../../src/core/replica.js';
import { compareVersions } from '../../src/core/entry.js';
import { LayoutHistory } from '../../src/core/layout-history.js';
import { LayoutOwnership } from '../../src/core/ownership.js';
import { partitionOfHash } from '../../src/core/placement.js';
import { versionText } from './partition-check.js';
import { antiEntropy, purge, startPulls } from './partition-data.js';
import { deliveryTick, openDelivery } from './partition-delivery.js';
import { layoutsMessage, ownAcksEncoded } from './layout-gossip.js';
import { after, announce, layoutNet, reconcile } from './partition-layouts.js';
import { crash, fencedStore, holdsPartition, isUp, reachable, wallOf, type PartitionWorld, type SimNode } from './partition-world.js';

/** Boots a node: its history from its snapshot, its replica, its tick; announces what it holds. */
export async function start(w: PartitionWorld, node: SimNode): Promise<void> {
  node.boot++;
  const boot = node.boot;
  node.status = 'up';
  node.pulls = new Map();
  node.busyWith = new Set();
  node.purging = false;
  node.pullsScheduled = false;
  node.flooded = new Map();
  node.encoded = undefined;
  const historyOptions = { self: node.nodeId, placement: w.placement };
  node.history = node.layoutDisk ? LayoutHistory.restore(historyOptions, node.layoutDisk) : new LayoutHistory(historyOptions);
  node.ownership = new LayoutOwnership(node.history, { onChange: (outcome) => after(w, node, outcome) });
  await openReplica(w, node);
  if (node.boot !== boot) return;
  if (w.options.delivery) {
    await openDelivery(w, node);
    if (node.boot !== boot) return;
    // Its peers see it come up (membership's `connected`): their rows for it are due now.
    for (const peer of w.nodes) peer.delivery?.connected(node.nodeId, w.queue.nowMs);
  }
  let ticks = node.index;
  const net = layoutNet(w);
  const tick = (): void => {
    if (node.boot !== boot || !isUp(node) || !w.running) return;
    ticks++;
    const peers = w.nodes.filter((peer) => reachable(node, peer));
    if (peers.length > 0) {
      const bytes = layoutsMessage(node);
      const peer = w.rng.pick(peers);
      if (bytes) net.send(node, peer, bytes);
      // Every third tick (~3 s) its acks go to everyone again (a gossipsub publish): a lost
      // flood must not leave a peer unaware that this node knows a layout.
      if (ticks % 3 === 0) {
        const acks = ownAcksEncoded(node);
        for (const p of peers) for (const ack of acks) net.send(node, p, ack);
      }
    }
    if (w.options.delivery) deliveryTick(w, node);
    else if (ticks % 2 === 0) antiEntropy(w, node);
    if (node.history!.active().length > 1) startPulls(w, node);
    reconcile(w, node);
    if (node.history!.active().length === 1) void purge(w, node, false);
    w.queue.schedule(w.rng.int(750, 1250), tick);
  };
  w.queue.schedule(w.rng.int(0, 1000), tick);
  announce(w, node);
}

export async function openReplica(w: PartitionWorld, node: SimNode): Promise<void> {
  const boot = node.boot;
  node.fence = { alive: true };
  const replica = await Replica.open({
    nodeId: node.nodeId,
    store: fencedStore(node.disk, node.fence, w.queue, w.rng),
    depth: w.depth,
    wallClockMs: () => wallOf(w, node),
    holds: (keyHash) => holdsPartition(w, node, partitionOfHash(keyHash)),
    rng: () => w.rng.float(),
    onApplied: (changes) => {
      for (const change of changes) onApplied(w, node, change);
    },
  });
  if (node.boot !== boot || node.status !== 'up') return;
  node.replica = replica;
}


export function onApplied(w: PartitionWorld, node: SimNode, change: AppliedChange): void {
  if (change.previous && compareVersions(change.entry.version, change.previous) <= 0) {
    w.violate(`node ${node.index} replaced ${change.entry.key}@${versionText(change.previous)} with older ${versionText(change.entry.version)}`);
  }
}

/** Members that still want in, can own data and are alive: crashes, deaths and leaves keep more than K. */
const ownersLeft = (w: PartitionWorld): number => w.nodes.filter((n) => n.wantsIn && n.weight > 0 && n.status !== 'dead').length;

/** One fault, then the next one scheduled, while the fault window lasts. */
export function faultStep(w: PartitionWorld): void {
  if (!w.faults) return;
  const up = w.nodes.filter((n) => isUp(n) && !n.leaving);
  const roll = w.rng.float();
  if (roll < 0.3 && up.length > 1) {
    const victim = w.rng.pick(up);
    const forGood = !w.options.delivery && w.stats.deaths === 0 && w.rng.chance(0.25) && victim.weight > 0 && ownersLeft(w) > w.replicas + 1 && victim !== w.nodes[0];
    if (forGood || ownersLeft(w) > w.replicas || victim.weight === 0) {
      w.stats.crashes++;
      crash(victim, forGood ? 'dead' : 'crashed');
      w.trace?.(`${w.queue.nowMs} node ${victim.index} ${forGood ? 'dies' : 'crashes'}`);
      if (forGood) {
        w.stats.deaths++;
        victim.wantsIn = false;
        w.queue.schedule(w.rng.int(1000, 3000), () => w.pendingRemovals.push(victim.nodeId));
      } else {
        w.queue.schedule(w.rng.int(200, 3000), () => {
          if (victim.status === 'crashed') void start(w, victim);
        });
      }
    }
  } else if (roll < 0.4 && ownersLeft(w) > w.replicas + 1 && !w.options.delivery) {
    const candidates = up.filter((n) => n.wantsIn && n !== w.nodes[0] && n.history!.newest()?.weights[n.nodeId] !== undefined);
    if (candidates.length > 0) {
      const leaver = w.rng.pick(candidates);
      w.stats.leaves++;
      w.trace?.(`${w.queue.nowMs} node ${leaver.index} begins leaving`);
      leaver.leaving = true;
      leaver.wantsIn = false;
      reconcile(w, leaver);
    }
  } else if (roll < 0.6) {
    w.stats.partitions++;
    for (const n of w.nodes) n.group = w.rng.int(0, 1);
    w.queue.schedule(w.rng.int(500, 4000), () => {
      for (const n of w.nodes) n.group = 0;
    });
  }
  w.queue.schedule(w.rng.int(300, 2000), () => faultStep(w));
}
