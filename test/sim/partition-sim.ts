/**
 * The placement-aware data simulator (partitioned mode): nodes run the real Replica (over
 * memory stores), the real LayoutHistory and LayoutOwnership, and real sync sessions, over one
 * seeded event queue that plays the network, the disks and the faults. Everything random comes
 * from one Prng, so a seed replays exactly (`npm run sim -- --partitioned --seed N`).
 *
 * Model:
 * - Layouts as in layout-sim.ts: node 0 commits the first layout (the initial members, K);
 *   later nodes join on first contact (the coordinator, the smallest reachable owning member,
 *   commits the joins), a leaving node commits its own removal and stops once its view of the
 *   change is complete, a node that dies (at most one a run) is removed by an operator.
 *   Layouts and acks travel encoded (the gossip wire format), lossy, duplicated and late.
 * - A replica holds (accepts remote entries of) a key when its node's ownership holds the
 *   key's partition: it owns it in some active layout.
 * - Writes: a random up member coordinates a put or delete of a small key space. It stamps
 *   the write if it is a write owner (`writeOwners(p)`), else asks a reachable owner to; the
 *   stamped entry goes to every write owner over the lossy network; each owner that applies
 *   it (or holds newer) acks. The write is acknowledged once `quorumMet(writeSets(p), acks,
 *   'quorum')` in the coordinator's current view (a view that grew meanwhile sends to the new
 *   owners too); acknowledged writes are the ground truth.
 * - Anti-entropy: every ~2 s a node runs a sync session (the core's session driver over a
 *   frame channel, frames lossy and late; a loss, a partition or a crash breaks it) with the
 *   next node, round-robin, of those it shares partitions with. Sessions are restricted as in
 *   production (sync 1.2.0): the initiator asks for `sharedPartitions(peer)` in its view, the
 *   responder covers that AND its `heldPartitions()`; each replica also refuses entries of
 *   partitions it does not hold.
 * - Pulls: a new owner runs `pulls()`; for each partition it needs a successful session with
 *   every source after the pull became due, then calls `pulled` (its ack). A source that is
 *   dead or gone and removed from the newest layout is skipped (as production: see
 *   docs/partitioned-mode.md, Simulator; without the skip a change removing a dead node
 *   never completes).
 * - Purge: once a node has one active layout, rows of partitions it no longer holds are first
 *   offloaded (a successful session, restricted to those partitions, with every owner of
 *   each), then dropped with `Replica.dropUnchanged` (a row written meanwhile is kept).
 * - Faults, during the fault window: partitions and heals, crashes and restarts, one death,
 *   per-node clock skew (sometimes one node beyond the drift limit), disk writes durable only
 *   0-3 ms after they are issued (a crash before loses them: never acknowledged).
 * After the window the network heals, clocks agree, crashed nodes restart; nodes keep running
 * for `settleMs` (pulls, retirements, purges, anti-entropy), then the checker runs.
 *
 * Invariants (against ground truth, not what nodes claim; 1-5 at the end, partition-check.ts):
 * 1. every up node ends on the same single active layout, whose members are exactly the nodes
 *    that want in;
 * 2. each partition's owners hold identical entries for that partition;
 * 3. every acknowledged write (or a newer version of its key) is on all K owners;
 * 4. no node holds rows of a partition it does not own (one layout active, purge ran);
 * 5. no deleted key returns: where the last acknowledged write of a key is a delete, every
 *    owner holds that tombstone or a newer version some coordinator really wrote; and no
 *    replica ever replaced a version with an older one (checked as it happens);
 * 6. during the run, a quorum read (a member asks a quorum of its `readOwners`) returns at
 *    least the key's last write acknowledged before the read began: a write acknowledged
 *    during a change is where reads look, whichever layout they read from.
 * Canaries (options), each a placement bug the checker must catch: `modulo-holds` (replicas
 * decide what they hold by a modulo placement, not the layouts' rendezvous owners),
 * `early-purge` (a node drops the partitions it does not own in the newest layout as soon as
 * it learns it: no offload, before the new owners pulled), `newest-only` (the coordinator
 * sends a write to, and counts acks in, the newest layout's owners only).
 *
 * Option `delivery` (partition-delivery.ts): coordinators keep delivery rows (the real
 * DeliveryQueue over rows on the node's disk, which survive crashes) for owners that did not
 * ack and deliver them; anti-entropy is off and nobody leaves or dies, so delivery is the only
 * repair: invariant 3 must hold through it, and every node's pending rows reach zero.
 * Invariant 2 then holds for acknowledged versions only (a write never acknowledged whose
 * stamper could not hand it on stays where it was stamped: anti-entropy's job). Its canaries:
 * `hints-lost-on-crash` (rows in memory only), `hints-removed-early` (deleted when sent).
 *
 * Files: this one is the run (first layout, joins, clients and faults scheduled, the event
 * loop, the checker); partition-world.ts the state, the network and the disks;
 * partition-layouts.ts gossip, commits and reconcile; partition-nodes.ts boots, ticks and the
 * fault schedule; partition-data.ts sessions, anti-entropy, pulls and purge;
 * partition-clients.ts writes and quorum reads; partition-check.ts the end-of-run checker.
 */
import { checkEnd } from './partition-check.js';
import { checkDelivered } from './partition-delivery.js';
import { clientRead, clientWrite } from './partition-clients.js';
import { gossip } from './layout-gossip.js';
import { commit, layoutNet } from './partition-layouts.js';
import { faultStep, start } from './partition-nodes.js';
import { createWorld, reachable, sessionTimeoutMs, type PartitionSimOptions, type PartitionSimReport } from './partition-world.js';

export type { PartitionCanary, PartitionSimOptions, PartitionSimReport } from './partition-world.js';

export async function runPartitionSimulation(options: PartitionSimOptions): Promise<PartitionSimReport> {
  const w = createWorld(options);
  const count = options.nodes;
  const writes = options.writes ?? 40;
  const faultWindowMs = options.faultWindowMs ?? 8_000;
  // Anti-entropy meets each co-owner once a round (every other tick): larger clusters need longer.
  const settleMs = options.settleMs ?? 16_000 + 1_000 * Math.max(0, count - 10);
  const { nodes, initialCount, queue, rng, stats, trace } = w;

  // The first layout: node 0 commits the initial members.
  for (const node of nodes.slice(0, initialCount)) {
    node.wantsIn = true;
    await start(w, node);
  }
  {
    const first = nodes[0]!.history!;
    for (const node of nodes.slice(0, initialCount)) first.stageAdd(node.nodeId, node.weight);
    first.stageReplicas(w.replicas);
    commit(w, nodes[0]!);
  }
  // Joins, spread over the fault window: first contact from a member that can reach it.
  for (const node of nodes.slice(initialCount)) {
    queue.schedule(rng.int(500, faultWindowMs), () => {
      stats.joins++;
      node.wantsIn = true;
      trace?.(`${queue.nowMs} node ${node.index} starts (weight ${node.weight})`);
      void start(w, node).then(() => {
        const contact = nodes.find((peer) => reachable(peer, node) && peer.history?.newest());
        if (contact) gossip(layoutNet(w), contact, [node]);
      });
    });
  }
  for (let i = 0; i < writes; i++) queue.schedule(rng.int(0, faultWindowMs - 1), () => clientWrite(w));
  for (let r = 0; r < writes / 2; r++) queue.schedule(rng.int(0, faultWindowMs + settleMs / 2), () => clientRead(w));
  queue.schedule(rng.int(300, 2000), () => faultStep(w));
  // The end of faults: heal, clocks agree, restart the crashed.
  queue.schedule(faultWindowMs, () => {
    w.faults = false;
    for (const n of nodes) n.group = 0;
    for (const n of nodes) n.skewMs = rng.int(-50, 50);
    for (const n of nodes) if (n.status === 'crashed') void start(w, n);
    // The heal reconnects everyone: rows are due now.
    for (const n of nodes) for (const peer of nodes) n.delivery?.connected(peer.nodeId, queue.nowMs);
  });
  queue.schedule(faultWindowMs + settleMs, () => {
    w.running = false;
  });

  const limitMs = faultWindowMs + settleMs + 2 * sessionTimeoutMs;
  for (let event = queue.pop(); event; event = queue.pop()) {
    event.run();
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (queue.nowMs > limitMs) {
      w.violate(`the event queue did not drain by ${limitMs} ms`);
      break;
    }
  }
  stats.simulatedMs = queue.nowMs;
  checkEnd(nodes, { acked: w.acked, stamped: w.stamped, unackedMayDiverge: options.delivery === true }, w.placement, w.violate, stats);
  if (options.delivery) checkDelivered(w);
  return { seed: options.seed, nodes: count, ok: w.violations.length === 0, violations: w.violations, stats };
}
