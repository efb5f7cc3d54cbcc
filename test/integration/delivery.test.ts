/**
 * Delivery until acknowledged (hints) on real processes: 5 nodes, --replicas 3.
 *
 * One owner O is killed (-9); 500 writes whose partitions O owns go through a coordinator C
 * (half `--consistency one`, half quorum): each is acknowledged, and C's status shows 500 rows
 * pending for O. C is killed -9 and restarted with its clock a year ahead: the rows are all
 * still there (nothing expires). O comes back with another --merkle-depth, so no anti-entropy
 * session can repair it: only delivery can bring it the writes. As soon as C sees O up, C is
 * killed -9 again (in the middle of delivery, or just before it: the race decides, both must
 * end the same) and restarted: delivery resumes, every write is on O and the pending rows reach
 * zero. The time from the status poll that first sees O up (on the restarted C) to the poll
 * that sees nothing pending is measured and printed (asserted only against a generous bound:
 * the machine is shared).
 *
 * Then another owner P is killed, 50 writes it owns are made, and P is `node remove`d: its
 * rows are re-targeted to the partitions' new owners (`delivery_rows_retargeted`), pending
 * reaches zero, and every key is on exactly its new owners.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startNode, waitFor, type NodeProcess } from '../../harness/testing.js';
import { localKeys, startPartitioned, statusJson, waitPlacement, waitSettled } from '../helpers/partitioned.js';
import { keysOwnedBy, putAll, seesUp } from '../helpers/delivery.js';

const yearMs = 365 * 86_400_000;

interface DeliveryJson {
  pendingRows: number;
  pendingBytes: number;
  oldestAgeMs: number;
  targets: { node: string; rows: number; bytes: number; oldestAgeMs: number; nextAttemptInMs: number }[];
}

/** Pending rows through gRPC Status (no CLI process: polled every few ms). */
async function pendingOf(node: NodeProcess): Promise<number> {
  const status = await node.client.status();
  assert.ok(status.delivery, `${node.name} reports no delivery block`);
  return Number(status.delivery.pendingRows);
}

async function deliveryOf(node: NodeProcess): Promise<DeliveryJson> {
  const status = (await statusJson(node)) as unknown as { delivery?: DeliveryJson };
  assert.ok(status.delivery, `${node.name} reports no delivery block`);
  return status.delivery;
}

const rowsFor = (d: DeliveryJson, nodeId: string): number => d.targets.find((t) => t.node === nodeId)?.rows ?? 0;

/** 16 KiB values: delivery takes long enough to be caught in the middle. */
const valueOf = (i: number): Uint8Array => new TextEncoder().encode(`v${i}:`.padEnd(16 * 1024, 'x'));

describe('delivery until acknowledged (5 nodes, K = 3)', () => {
  it('survives kill -9 of the coordinator and a year of clock; resumes on the owner\'s return; a removed owner\'s rows reach the new owners', async () => {
    const cluster = await startPartitioned(5);
    try {
      await waitSettled(cluster.nodes, 60_000, 'one layout of 5 nodes');
      const members = cluster.nodes.map((n) => n.nodeId);
      let c = cluster.nodes[0]!;
      const cArgs = c.options.args;
      let o = cluster.nodes[4]!;
      const oArgs = o.options.args;
      const p = cluster.nodes[3]!;
      const keys = keysOwnedBy('hint-', o.nodeId, members, 500);

      // 1. O down; 500 writes it owns, all acknowledged by the others; 500 rows pending for O.
      await o.kill();
      await waitFor(async () => !(await seesUp(c, o.nodeId)), { deadlineMs: 20_000, what: 'C to see O down' });
      await putAll(c, keys, valueOf, (i) => (i % 2 === 0 ? 'one' : 'quorum'));
      let pending = await deliveryOf(c);
      assert.equal(rowsFor(pending, o.nodeId), 500, `500 rows pending for O: ${JSON.stringify(pending)}`);
      const text = await runCli(['status'], { socket: c.socket });
      assert.match(text.stdout.toString('utf8'), new RegExp(`^  to ${o.nodeId}  500 rows`, 'm'));

      // 2. C killed -9 and restarted a year ahead: every row is still pending.
      await c.kill();
      c = await startNode({ ...c.options, args: [...c.options.args, '--test-clock-skew-ms', String(yearMs)] });
      cluster.nodes[0] = c;
      pending = await deliveryOf(c);
      assert.equal(rowsFor(pending, o.nodeId), 500, 'the rows survived kill -9 and a year of clock');
      assert.ok(pending.oldestAgeMs >= yearMs - 60_000, `the oldest row is a year old now: ${pending.oldestAgeMs}`);

      // 3. O back, unable to sync (another --merkle-depth). C's status is polled: the poll that
      // first sees O up, the first that sees fewer rows pending (delivery started); then C is
      // killed -9 (mid-delivery if rows are still pending) and restarted on its real clock.
      o = await startNode({ ...o.options, args: [...o.options.args, '--merkle-depth', '5'] });
      cluster.nodes[4] = o;
      let upAt = 0;
      let startedAt = 0;
      await waitFor(
        async () => {
          if (upAt === 0 && (await seesUp(c, o.nodeId))) upAt = performance.now();
          if (upAt > 0 && (await pendingOf(c)) < 500) startedAt = performance.now();
          return startedAt > 0;
        },
        { deadlineMs: 30_000, intervalMs: 10, what: 'C to see O up and start delivering' },
      );
      await c.kill();
      const onO = (await localKeys(o, 'hint-')).size;
      c = await startNode({ ...c.options, args: cArgs });
      cluster.nodes[0] = c;
      let restartedUpAt = 0;
      await waitFor(
        async () => {
          if (restartedUpAt === 0 && (await seesUp(c, o.nodeId))) restartedUpAt = performance.now();
          return restartedUpAt > 0 && (await pendingOf(c)) === 0;
        },
        { deadlineMs: 60_000, intervalMs: 20, what: 'delivery to O to finish after the restart' },
      );
      const startMs = startedAt - upAt;
      const resumedMs = performance.now() - restartedUpAt;
      console.log(`# delivery: started ${Math.round(startMs)} ms after the poll that saw O up; ${onO} of 500 on O when C was killed -9; after the restart, O seen up to 0 pending in ${Math.round(resumedMs)} ms`);
      assert.ok(startMs < 10_000 && resumedMs < 15_000, `delivery started ${startMs} ms / finished ${resumedMs} ms after C saw O up`);
      const held = await localKeys(o, 'hint-');
      assert.deepEqual(keys.filter((key) => !held.has(key)), [], 'every write is on O');
      for (const [i, key] of keys.entries()) {
        if (i % 50 !== 0) continue;
        const entry = await o.client.get(key, { from: 'local' });
        assert.deepEqual(entry.value, Buffer.from(valueOf(i)));
      }

      // O back on the cluster's Merkle depth (a layout change needs its sessions to work).
      await o.stop();
      o = await startNode({ ...o.options, args: oArgs });
      cluster.nodes[4] = o;

      // 4. P down with rows pending on another coordinator (C ran a year ahead: its HLC bound
      // would refuse its writes), then removed: the rows go to the new owners.
      const g = cluster.nodes[1]!;
      const pKeys = keysOwnedBy('moved-', p.nodeId, members, 50);
      await p.kill();
      await waitFor(async () => !(await seesUp(g, p.nodeId)), { deadlineMs: 20_000, what: 'G to see P down' });
      await putAll(g, pKeys, valueOf, () => 'quorum');
      assert.equal(rowsFor(await deliveryOf(g), p.nodeId), 50);
      const removed = await runCli(['node', 'remove', p.nodeId], { socket: g.socket });
      assert.equal(removed.code, 0, removed.stderr);
      cluster.nodes.splice(cluster.nodes.indexOf(p), 1);
      await waitFor(async () => (await pendingOf(g)) === 0, { deadlineMs: 90_000, what: "P's rows re-targeted and delivered" }).catch(async (error: unknown) => {
        const s = await statusJson(g);
        throw new Error(`${(error as Error).message}: ${JSON.stringify((s as unknown as { delivery: unknown }).delivery)} ${JSON.stringify(s.partitioned)}\n${g.logTail(40)}`);
      });
      const status = await statusJson(g);
      assert.ok((status.counters['delivery_rows_retargeted'] ?? 0) >= 50, `re-targeted: ${status.counters['delivery_rows_retargeted']}`);
      await waitPlacement(cluster.nodes, 'moved-', pKeys, members.filter((id) => id !== p.nodeId), 90_000, 'the moved keys on their new owners');
    } finally {
      await cluster.stop();
    }
  });
});
