/**
 * Data movement in the placement-aware data simulator (partition-sim.ts):
 * - `session`: one sync session between two nodes, the core's session driver over a frame
 *   channel whose frames are delayed (in order), lost during faults (which breaks it), and
 *   broken by a partition or a crash of either side; restricted as production's (sync 1.2.0);
 * - `antiEntropy`: a session with the next co-owner, round-robin from a random start;
 * - pulls: for each partition a node must pull (`LayoutOwnership.pulls()`), a successful
 *   session with every source after the pull became due, then `pulled` (its ack); sources that
 *   are dead or gone and removed from the newest layout are skipped unless
 *   `waitForRemovedSources`;
 * - `purge`: rows of partitions the node no longer holds are offloaded (a session restricted
 *   to them with every owner) and then dropped with `Replica.dropUnchanged` (a row written
 *   meanwhile is kept); the `early-purge` canary drops at once, without offload.
 */
import type { DropRequest } from '../../src/core/replica.js';
import type { ReceivedEntries } from '../../src/core/received-entries.js';
import { FrameChannel } from '../../src/core/frame-channel.js';
import { driveSession, type FrameTransport } from '../../src/core/session-driver.js';
import { SyncInitiator, SyncResponder, type SyncResult } from '../../src/core/sync-session.js';
import { partitionBitmap } from '../../src/core/layout.js';
import { writeBatchOpsMax } from '../../src/core/limits.js';
import { partitionCount, type PartitionId } from '../../src/core/placement.js';
import { keyOf } from './layout-gossip.js';
import { partitionOfKey } from './partition-check.js';
import { cluster, holdsPartition, reachable, isUp, sessionTimeoutMs, wallOf, type PartitionWorld, type SimNode } from './partition-world.js';

/**
 * One session from `from` (initiator) to `to`, restricted as production's (sync 1.2.0): the
 * initiator asks for `partitions` (default: what it shares with `to` in its view), the
 * responder covers that AND what it holds. `done(ok)` once both sides finished or it broke.
 */
export function session(w: PartitionWorld, from: SimNode, to: SimNode, done: (ok: boolean) => void, partitions?: Uint8Array): void {
  if (!reachable(from, to)) return done(false);
  w.stats.sessions++;
  from.busyWith.add(to.nodeId);
  const boots = [from.boot, to.boot];
  let over = false;
  const results: (SyncResult | undefined)[] = [undefined, undefined];
  const inboxes = [new FrameChannel(), new FrameChannel()];
  const lastDelivery = [0, 0];
  const alive = (): boolean => !over && from.boot === boots[0] && to.boot === boots[1];
  const end = (ok: boolean): void => {
    if (over) return;
    over = true;
    if (from.boot === boots[0]) from.busyWith.delete(to.nodeId);
    if (!ok) {
      w.stats.sessionsFailed++;
      const broken = new Error('session aborted');
      for (const inbox of inboxes) inbox.fail(broken);
    }
    done(ok);
  };
  w.queue.schedule(sessionTimeoutMs, () => end(false));
  const sides: [SimNode, SyncInitiator | SyncResponder][] = [
    [from, new SyncInitiator(from.replica!.syncContext({ cluster, wallClockMs: () => wallOf(w, from), partitions: partitions ?? from.ownership!.sharedPartitions(to.nodeId) }), w.rng.u32())],
    [to, new SyncResponder(to.replica!.syncContext({ cluster, partitions: to.ownership!.heldPartitions() }))],
  ];
  for (const [i, [node, machine]] of sides.entries()) {
    const other = 1 - i;
    const transmit = (deliver: () => void, lossy: boolean): void => {
      if (over) throw new Error('session aborted');
      if (!reachable(from, to) || !alive() || (lossy && w.faults && w.rng.chance(w.frameLoss))) {
        end(false);
        throw new Error('link broke');
      }
      const atMs = Math.max(w.queue.nowMs + w.rng.int(1, w.delayMsMax), lastDelivery[other]!);
      lastDelivery[other] = atMs;
      w.queue.schedule(atMs - w.queue.nowMs, () => {
        if (!over) deliver();
      });
    };
    const transport: FrameTransport = {
      send: (frame) => transmit(() => inboxes[other]!.push(frame), true),
      receive: () => inboxes[i]!.receive(),
      close: () => transmit(() => inboxes[other]!.close(), false),
    };
    const apply = async (entries: ReceivedEntries): Promise<void> => {
      const replica = alive() ? node.replica : undefined;
      if (!replica) throw new Error('session aborted or node down');
      await replica.applyReceived(entries);
    };
    driveSession(machine, transport, { apply }).then(
      (result) => {
        if (over) return;
        results[i] = result;
        if (results[0] && results[1]) end(alive() && (results[0].outcome === 'in-sync' || results[0].outcome === 'synced'));
      },
      () => end(false),
    );
  }
}

/** A session with the next node this node shares partitions with (its co-owners, as sync schedules them). */
export function antiEntropy(w: PartitionWorld, node: SimNode): void {
  if (!node.ownership!.ready()) return;
  const layouts = node.history!.active().map(keyOf).join(' ');
  if (node.coOwnersKey !== layouts) {
    const coOwners = new Set<string>();
    for (let p = 0; p < partitionCount; p++) {
      const owners = node.ownership!.writeOwners(p);
      if (owners.includes(node.nodeId)) for (const id of owners) if (id !== node.nodeId) coOwners.add(id);
    }
    node.coOwners = [...coOwners].sort();
    node.coOwnersKey = layouts;
    node.coOwnerNext = w.rng.int(0, Math.max(0, node.coOwners.length - 1));
  }
  // Round-robin from a random start: every pair of co-owners meets within a round.
  const count = node.coOwners.length;
  for (let i = 0; i < count; i++) {
    const peer = w.byId.get(node.coOwners[(node.coOwnerNext + i) % count]!)!;
    if (!reachable(node, peer) || node.busyWith.has(peer.nodeId)) continue;
    node.coOwnerNext = (node.coOwnerNext + i + 1) % count;
    session(w, node, peer, () => undefined);
    return;
  }
}

/** startPulls soon, once for a burst of history changes (acks arrive in floods). */
export function schedulePulls(w: PartitionWorld, node: SimNode): void {
  if (node.pullsScheduled) return;
  node.pullsScheduled = true;
  const boot = node.boot;
  w.queue.schedule(20, () => {
    if (node.boot !== boot) return;
    node.pullsScheduled = false;
    startPulls(w, node);
  });
}

/** Pulls that became due: a session with each source, then `pulled`. */
export function startPulls(w: PartitionWorld, node: SimNode): void {
  if (!isUp(node)) return;
  const ownership = node.ownership!;
  const newest = ownership.newest();
  const due = ownership.pulls();
  const boot = node.boot;
  const skipped = (id: string): boolean => !w.options.waitForRemovedSources && newest?.weights[id] === undefined && ['dead', 'gone'].includes(w.byId.get(id)!.status);
  const needed = new Set<string>();
  const finished = new Map<number, PartitionId[]>();
  for (const pull of due) {
    const key = `${pull.version}:${pull.partition}`;
    let done = node.pulls.get(key);
    if (!done) node.pulls.set(key, (done = new Set()));
    const sources = pull.sources.filter((id) => !skipped(id));
    const enough = sources.every((id) => done.has(id));
    if (enough) finished.set(pull.version, [...(finished.get(pull.version) ?? []), pull.partition]);
    else for (const id of sources) if (!done.has(id)) needed.add(id);
  }
  for (const [version, partitions] of finished) {
    for (const p of partitions) node.pulls.delete(`${version}:${p}`);
    w.stats.pulled += partitions.length;
    ownership.pulled(version, partitions);
    if (node.boot !== boot) return;
  }
  for (const id of needed) {
    const source = w.byId.get(id)!;
    if (!reachable(node, source) || node.busyWith.has(id)) continue;
    // Only pulls due before the session started count it.
    const waiting = [...node.pulls.values()].filter((done) => !done.has(id));
    session(w, node, source, (ok) => {
      if (!ok || node.boot !== boot) return;
      for (const done of waiting) done.add(id);
      startPulls(w, node);
    });
  }
}

/**
 * Drop rows of partitions this node does not hold: first offloaded (a session with every
 * owner of each), then dropped (`early` = the canary: no offload, and whatever the layouts).
 */
export async function purge(w: PartitionWorld, node: SimNode, early: boolean): Promise<void> {
  if (!isUp(node) || node.purging) return;
  const history = node.history!;
  const newest = history.newest();
  if (!newest) return;
  const holds = (p: PartitionId): boolean => (early ? w.placement.ownersOf(p, newest).includes(node.nodeId) : holdsPartition(w, node, p));
  const drop = new Set<PartitionId>();
  for await (const entry of node.disk.scanHash('')) {
    const p = partitionOfKey(entry.key);
    if (!holds(p)) drop.add(p);
  }
  if (drop.size === 0 || !isUp(node) || node.purging) return;
  node.purging = true;
  const boot = node.boot;
  if (!early) {
    const owners = new Set<string>();
    for (const p of drop) for (const id of history.writeOwners(p)) if (id !== node.nodeId) owners.add(id);
    let ok = true;
    for (const id of owners) {
      ok = await new Promise<boolean>((resolve) => session(w, node, w.byId.get(id)!, resolve, partitionBitmap([...drop])));
      if (!ok || node.boot !== boot) break;
    }
    if (!ok || node.boot !== boot) {
      if (node.boot === boot) node.purging = false;
      return;
    }
  }
  // Drop, as production's purge: each row if it is still the version read (a write that
  // came meanwhile is kept).
  const drops: DropRequest[] = [];
  for await (const entry of node.disk.scanHash('')) {
    const p = partitionOfKey(entry.key);
    if (drop.has(p) && !holds(p)) drops.push({ key: entry.key, version: entry.version });
  }
  const replica = node.replica;
  if (!replica || node.boot !== boot) return;
  let dropped = 0;
  try {
    for (let i = 0; i < drops.length; i += writeBatchOpsMax) dropped += (await replica.dropUnchanged(drops.slice(i, i + writeBatchOpsMax))).dropped;
  } catch {
    return; // crashed meanwhile: the next boot purges again
  }
  w.stats.purges++;
  w.stats.purgedRows += dropped;
  w.trace?.(`${w.queue.nowMs} node ${node.index} purged ${dropped} rows of partitions ${[...drop].join(',')}`);
  if (node.boot === boot) node.purging = false;
}
