/**
 * Delivery until acknowledged in the placement-aware data simulator (partition-sim.ts, option
 * `delivery`): each node keeps the real DeliveryQueue (src/core/delivery-queue.ts) over hint
 * rows on its disk (the MemoryStore survives crashes; rows are written as the queue decides,
 * durable at once), rebuilt from the disk at every boot.
 * - `holdUnacked`: when a coordinated write is acknowledged or its deadline passes, the write
 *   owners that have not acked get a row, before the ground truth counts the write;
 * - `deliveryTick`: every tick, rows are re-targeted against the node's ownership, due batches
 *   go to their targets over the lossy network, the target applies them (`applyRemote`) and
 *   its answer comes back; an applied or stale outcome acknowledges a row; a batch with no
 *   answer within the write timeout fails (backoff).
 * Canaries: `hints-lost-on-crash` (a boot does not reload the rows: they lived in memory),
 * `hints-removed-early` (a row is deleted when its batch is sent, not when it is acknowledged).
 */
import { DeliveryQueue, decodeHintRow, deliveryDefaults, encodeHintRow, hintRowKey, type HintRow, type RowChanges } from '../../src/core/delivery-queue.js';
import type { Entry } from '../../src/core/entry.js';
import { partitionOfHash } from '../../src/core/placement.js';
import { carry, isUp, writeTimeoutMs, type PartitionWorld, type SimNode } from './partition-world.js';

/** Builds the node's queue at boot: from its disk's rows (unless the canary forgets them). */
export async function openDelivery(w: PartitionWorld, node: SimNode): Promise<void> {
  const queue = new DeliveryQueue({ ...deliveryDefaults, random: () => w.rng.float() });
  if (w.canary === 'hints-lost-on-crash') {
    const stale = [];
    for await (const { key } of node.disk.scanHints()) stale.push({ key });
    await node.disk.writeHints(stale);
  } else {
    const rows: HintRow[] = [];
    for await (const { key, value } of node.disk.scanHints()) {
      const row = decodeHintRow(key, value);
      if (row) rows.push(row);
      else w.violate(`node ${node.index} holds a malformed hint row ${key}`);
    }
    queue.load(rows, w.queue.nowMs);
  }
  node.delivery = queue;
}

function persist(node: SimNode, changes: RowChanges): void {
  const ops = [...changes.put.map(encodeHintRow), ...changes.del.map((d) => ({ key: hintRowKey(d.target, d.keyHash) }))];
  if (ops.length > 0) void node.disk.writeHints(ops);
}

/** The coordinator keeps `entry` for every owner of `owners` not in `acked`. */
export function holdUnacked(w: PartitionWorld, node: SimNode, entry: Entry, owners: Iterable<string>, acked: ReadonlySet<string>): void {
  const queue = node.delivery;
  if (!queue || !isUp(node)) return;
  for (const target of owners) if (!acked.has(target)) persist(node, queue.hold(target, entry, w.queue.nowMs));
}

/** One round of delivery from `node` (see the top comment). */
export function deliveryTick(w: PartitionWorld, node: SimNode): void {
  const queue = node.delivery;
  const ownership = node.ownership;
  if (!queue || !ownership?.ready() || !isUp(node)) return;
  persist(node, queue.retarget((keyHash) => ownership.writeOwners(partitionOfHash(keyHash)), w.queue.nowMs));
  const boot = node.boot;
  for (const batch of queue.due(w.queue.nowMs)) {
    const target = w.byId.get(batch.target);
    let answered = false;
    const finish = (acked: readonly boolean[] | undefined): void => {
      if (answered || node.boot !== boot) return;
      answered = true;
      if (acked === undefined) return queue.failed(batch.target, w.queue.nowMs);
      const changes = queue.answered(
        batch.target,
        batch.rows.map((row, i) => ({ keyHash: row.keyHash, version: row.entry.version, acked: acked[i]! })),
        w.queue.nowMs,
      );
      if (w.canary !== 'hints-removed-early') persist(node, changes);
    };
    if (w.canary === 'hints-removed-early') {
      // The bug: rows deleted as they leave, whatever becomes of them.
      persist(node, queue.answered(batch.target, batch.rows.map((row) => ({ keyHash: row.keyHash, version: row.entry.version, acked: true })), w.queue.nowMs));
      answered = true;
    }
    w.queue.schedule(writeTimeoutMs, () => finish(undefined));
    if (!target) continue;
    const apply = (): void => {
      const replica = target.replica;
      if (!replica) return;
      void replica.applyRemote(batch.rows.map((row) => row.entry), { outcomes: true }).then(
        (report) => {
          const acked = batch.rows.map((_, i) => report.outcomes?.[i] === 'applied' || report.outcomes?.[i] === 'stale');
          if (target === node) finish(acked);
          else carry(w, target, node, () => finish(acked));
        },
        () => undefined,
      );
    };
    if (target === node) apply();
    else carry(w, node, target, apply);
  }
}

/** At the end: every up node's pending rows have reached zero. */
export function checkDelivered(w: PartitionWorld): void {
  for (const node of w.nodes) {
    if (!isUp(node) || !node.delivery) continue;
    const stats = node.delivery.stats(w.queue.nowMs);
    if (stats.pendingRows > 0) {
      w.violate(`node ${node.index} still has ${stats.pendingRows} pending deliveries at the end (to ${stats.targets.map((t) => `${w.nameOf(t.node)}: ${t.rows}`).join(', ')})`);
    }
  }
}
