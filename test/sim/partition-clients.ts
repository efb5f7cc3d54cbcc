/**
 * Clients of the placement-aware data simulator (partition-sim.ts):
 * - a write: a random up member coordinates a put or delete of a small key space; it stamps
 *   the write if it is a write owner, else asks a reachable owner to; the stamped entry goes
 *   to every write owner over the lossy network and each owner that applies it (or holds
 *   newer) acks. The write is acknowledged once `quorumMet(writeSets(p), acks, 'quorum')` in
 *   the coordinator's current view (a view that grew meanwhile sends to the new owners too);
 *   acknowledged writes are the ground truth. The `newest-only` canary sends to, and counts
 *   acks in, the newest layout's owners only.
 * - a quorum read (invariant 6): a member asks its read owners of the key's partition; once a
 *   quorum answered, the greatest version must be at least the key's last write acknowledged
 *   before the read began.
 */
import { compareVersions, type Entry, type Version } from '../../src/core/entry.js';
import { utf8 } from '../../src/core/bytes.js';
import { acksNeeded, quorumMet } from '../../src/core/ownership.js';
import type { PartitionId } from '../../src/core/placement.js';
import { partitionOfKey, versionText } from './partition-check.js';
import { holdUnacked } from './partition-delivery.js';
import { carry, holdsPartition, isUp, writeTimeoutMs, type PartitionWorld, type SimNode } from './partition-world.js';

/** The owner sets a write counts acks in, and the nodes it goes to, in `node`'s view. */
export function writeSetsOf(w: PartitionWorld, node: SimNode, p: PartitionId): readonly (readonly string[])[] {
  const newest = node.history!.newest()!;
  return w.canary === 'newest-only' ? [w.placement.ownersOf(p, newest)] : node.ownership!.writeSets(p);
}

export function clientWrite(w: PartitionWorld): void {
  const candidates = w.nodes.filter((n) => isUp(n) && !n.leaving && n.history!.newest()?.weights[n.nodeId] !== undefined);
  if (candidates.length === 0) return;
  const coordinator = w.rng.pick(candidates);
  const key = `k${w.rng.int(0, w.keys - 1)}`;
  const isDelete = w.rng.chance(0.25);
  const p = partitionOfKey(key);
  const owners = [...new Set(writeSetsOf(w, coordinator, p).flat())];
  const stamper = owners.includes(coordinator.nodeId) ? coordinator : w.byId.get(w.rng.pick(owners))!;
  w.stats.writes++;
  const boot = coordinator.boot;
  const stamp = (): void => {
    const replica = stamper.replica;
    if (!replica || !holdsPartition(w, stamper, p)) return;
    const value = utf8(`${coordinator.index}@${w.queue.nowMs}`);
    const stamperBoot = stamper.boot;
    (isDelete ? replica.delete(key) : replica.put(key, value)).then(
      (version) => {
        w.stamped.set(`${key} ${versionText(version)}`, isDelete);
        if (stamper.boot !== stamperBoot) return;
        const entry: Entry = { key, value: isDelete ? null : value, version };
        const reply = (): void => coordinate(w, coordinator, boot, entry, p, isDelete, stamper.nodeId);
        if (stamper === coordinator) reply();
        else carry(w, stamper, coordinator, reply);
      },
      () => undefined,
    );
  };
  if (stamper === coordinator) stamp();
  else carry(w, coordinator, stamper, stamp);
}

/** The coordinator sends a stamped write to every write owner and counts their acks. */
export function coordinate(w: PartitionWorld, coordinator: SimNode, boot: number, entry: Entry, p: PartitionId, isDelete: boolean, stamper: string): void {
  if (coordinator.boot !== boot) return;
  const acks = new Set<string>([stamper]);
  const sent = new Set<string>([stamper]);
  let done = false;
  const deadlineMs = w.queue.nowMs + writeTimeoutMs;
  const check = (): void => {
    if (done || coordinator.boot !== boot || w.queue.nowMs > deadlineMs) return;
    const sets = writeSetsOf(w, coordinator, p);
    if (quorumMet(sets, acks, 'quorum')) {
      done = true;
      if (w.options.delivery) holdUnacked(w, coordinator, entry, sets.flat(), acks);
      w.stats.acknowledgedWrites++;
      const best = w.acked.get(entry.key);
      if (!best || compareVersions(entry.version, best.version) > 0) w.acked.set(entry.key, { version: entry.version, deleted: isDelete });
      // Half the time a client reads it back soon after (from any member: read your writes).
      if (w.rng.chance(0.5)) w.queue.schedule(w.rng.int(5, 300), () => clientRead(w, entry.key));
      return;
    }
    // Send to owners not sent to yet (the view may have grown since).
    for (const id of new Set(sets.flat())) {
      if (sent.has(id)) continue;
      sent.add(id);
      const owner = w.byId.get(id)!;
      carry(w, coordinator, owner, () => {
        void owner.replica!.applyRemote([entry]).then(
          (report) => {
            if (report.applied + report.stale === 0) return;
            carry(w, owner, coordinator, () => {
              acks.add(id);
              check();
            });
          },
          () => undefined,
        );
      });
    }
  };
  check();
  // Not acknowledged in time: kept for the owners that did not ack all the same (production
  // keeps a failed write's rows: it may be stored on those that acked).
  if (w.options.delivery) {
    w.queue.schedule(writeTimeoutMs, () => {
      if (done || coordinator.boot !== boot) return;
      done = true;
      holdUnacked(w, coordinator, entry, writeSetsOf(w, coordinator, p).flat(), acks);
    });
  }
}

/**
 * A quorum read during the run (invariant 6): a member asks its read owners of the key's
 * partition; once a quorum answered, the greatest version must be at least the key's last
 * write acknowledged before the read began.
 */
export function clientRead(w: PartitionWorld, readKey?: string): void {
  const candidates = w.nodes.filter((n) => isUp(n) && n.history!.newest()?.weights[n.nodeId] !== undefined);
  if (candidates.length === 0) return;
  const reader = w.rng.pick(candidates);
  const key = readKey ?? `k${w.rng.int(0, w.keys - 1)}`;
  const p = partitionOfKey(key);
  const owners = reader.ownership!.readOwners(p);
  const before = w.acked.get(key);
  const needed = acksNeeded('quorum', owners.length);
  const boot = reader.boot;
  const answers = new Map<string, Version | undefined>();
  const deadlineMs = w.queue.nowMs + writeTimeoutMs;
  w.stats.reads++;
  for (const id of owners) {
    const owner = w.byId.get(id)!;
    const answer = (version: Version | undefined): void => {
      // Per owner: the network duplicates messages, and a duplicate is not a second answer.
      if (reader.boot !== boot || w.queue.nowMs > deadlineMs || answers.size >= needed || answers.has(id)) return;
      answers.set(id, version);
      if (answers.size < needed || !before) return;
      const best = [...answers.values()].reduce<Version | undefined>((a, b) => (!a || (b && compareVersions(b, a) > 0) ? b : a), undefined);
      if (!best || compareVersions(best, before.version) < 0) {
        w.violate(
          `node ${reader.index} read ${key} from a quorum of owners ${owners.map(w.nameOf).join(',')} of partition ${p} and got ${best ? versionText(best) : 'nothing'}; ${versionText(before.version)} was acknowledged before the read`,
        );
      }
    };
    const ask = (): void => {
      const replica = owner.replica;
      if (!replica) return;
      const ownerBoot = owner.boot;
      void replica.get(key).then(
        (entry) => {
          if (owner.boot !== ownerBoot) return;
          if (owner === reader) answer(entry?.version);
          else carry(w, owner, reader, () => answer(entry?.version));
        },
        () => undefined,
      );
    };
    if (owner === reader) ask();
    else carry(w, reader, owner, ask);
  }
}
