/**
 * Delivery until acknowledged on real processes (issue 12, part 1): 500 writes pending for a
 * down owner survive `kill -9` of the node holding them, a restart a year ahead, and a second
 * `kill -9` in the middle of delivery; delivery resumes, is idempotent, and starts because the
 * owner came up. 4 nodes, --replicas 3.
 *
 * 1. Owner O killed -9; coordinator C writes 500 keys O owns (half `--consistency one`, half
 *    quorum: acknowledged by the other owners), keeping each acknowledged version. C's status
 *    shows 500 rows for O.
 * 2. C killed -9 and restarted with its clock a year ahead (`--test-clock-skew-ms`): all 500
 *    rows are still there, the oldest now a year old (no timer drops a row).
 * 3. O restarted with another --merkle-depth, so no anti-entropy session can repair it: only
 *    delivery brings it the writes. C's delivery block is polled every few ms; once some but
 *    not all rows are delivered, C is killed -9 (mid-delivery), with O holding part of them.
 *    C's log says its first batch to O was caused by O coming up (`delivering on reconnect`),
 *    not by its backoff; the delay from the poll that saw O up to the first rows delivered is
 *    printed (a diagnostic: the machine is shared, no wall-clock assertion).
 * 4. C restarted (still a year ahead): delivery resumes, pending reaches 0, and O holds every
 *    key exactly once, each at exactly the version the write was acknowledged with, as do the
 *    other owners (re-delivered rows answered "older" changed nothing).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GiveUp, runCli, startNode, waitFor, type NodeProcess } from '../../harness/testing.js';
import { ownersOf, startPartitioned, waitSettled } from '../helpers/partitioned.js';
import { counterOf, deliveryOf, keysOwnedBy, pendingOf, putAll, seesUp, versionProblems, waitSeesDown } from '../helpers/delivery.js';

const yearMs = 365 * 86_400_000;
const writes = 500;

/** 32 KiB values: a delivery batch carries ~32 rows (1 MiB), so 500 take ~16 batches: a poll can catch it half-way. */
const valueOf = (i: number): Uint8Array => new TextEncoder().encode(`v${i}:`.padEnd(32 * 1024, 'x'));

/** Every entry of `node`'s own store under `prefix` (tombstones included), duplicates kept. */
async function scanLocal(node: NodeProcess, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const entry of node.client.scan({ prefix, withValues: false, includeDeleted: true, from: 'local' })) keys.push(entry.key);
  return keys;
}

describe('delivery until acknowledged: kill -9 mid-delivery, a year of clock (4 nodes, K = 3)', () => {
  it('keeps 500 pending writes across kill -9 and a year, resumes on the owner\'s return, delivers each exactly once', async () => {
    const cluster = await startPartitioned(4);
    try {
      await waitSettled(cluster.nodes, 60_000, 'one layout of 4 nodes');
      const members = cluster.nodes.map((n) => n.nodeId);
      let c = cluster.nodes[2]!;
      let o = cluster.nodes[3]!;
      const keys = keysOwnedBy('hint-', o.nodeId, members, writes);

      // 1. O down; 500 acknowledged writes it owns; 500 rows pending for it on C.
      await o.kill();
      await waitSeesDown(c, o.nodeId);
      const acked = await putAll(c, keys, valueOf, (i) => (i % 2 === 0 ? 'one' : 'quorum'));
      const expected = (key: string): string => acked.get(key)!.text;
      assert.equal((await deliveryOf(c)).targets.get(o.nodeId), writes, 'rows pending for O');
      const text = await runCli(['status'], { socket: c.socket });
      assert.match(text.stdout.toString('utf8'), new RegExp(`^  to ${o.nodeId}  ${writes} rows`, 'm'));

      // 2. C killed -9, restarted a year ahead: nothing dropped.
      await c.kill();
      const skewed = [...c.options.args, '--test-clock-skew-ms', String(yearMs)];
      c = await startNode({ ...c.options, args: skewed });
      cluster.nodes[2] = c;
      const afterJump = await c.status();
      assert.equal(Number(afterJump.delivery?.pendingRows), writes, 'the rows survived kill -9 and a year of clock');
      assert.ok(Number(afterJump.delivery?.oldestAgeMs) >= yearMs - 60_000, `the oldest row is a year old now: ${afterJump.delivery?.oldestAgeMs}`);
      // Its rows were due at start and failed (O is down): C is in backoff when O returns.
      await waitFor(async () => (await counterOf(c, 'delivery_batches_failed')) > 0, { deadlineMs: 20_000, what: 'C to try O and fail' });

      // 3. O back, unable to sync; C killed -9 once some but not all rows are delivered.
      o = await startNode({ ...o.options, args: [...o.options.args, '--merkle-depth', '5'] });
      cluster.nodes[3] = o;
      let upAt = 0;
      let firstAt = 0;
      let seen = writes;
      await waitFor(
        async () => {
          if (upAt === 0 && (await seesUp(c, o.nodeId))) upAt = performance.now();
          seen = await pendingOf(c);
          if (seen < writes && firstAt === 0) firstAt = performance.now();
          if (seen === 0) throw new GiveUp('delivery finished between two polls: the kill would not be mid-delivery');
          return seen < writes;
        },
        { deadlineMs: 30_000, intervalMs: 5, what: 'C to start delivering to O' },
      );
      await c.kill();
      const onO = new Set(await scanLocal(o, 'hint-')).size;
      const reconnect = /delivering on reconnect[^\n]*/.exec(c.stderrText())?.[0];
      console.log(
        `# delivery: ${writes - seen} of ${writes} rows acknowledged at the kill (${onO} on O); first rows delivered ${upAt > 0 ? Math.round(firstAt - upAt) : '?'} ms after the poll that saw O up; C logged: ${reconnect ?? 'nothing'}`,
      );
      assert.ok(reconnect?.includes(o.nodeId), `C's first batch to O was caused by O coming up, not by backoff:\n${c.logTail(30)}`);
      assert.ok(onO > 0 && onO < writes, `O holds part of the writes when C is killed: ${onO}`);

      // 4. C restarted: delivery resumes; pending reaches 0; every owner holds each key once at its acked version.
      c = await startNode({ ...c.options, args: skewed });
      cluster.nodes[2] = c;
      await waitFor(async () => (await pendingOf(c)) === 0, { deadlineMs: 60_000, intervalMs: 50, what: 'delivery to O to finish after the restart' });
      const onOKeys = await scanLocal(o, 'hint-');
      assert.equal(onOKeys.length, writes, 'O holds each key exactly once');
      assert.deepEqual(new Set(onOKeys), new Set(keys));
      const problems = await versionProblems(cluster.nodes, keys, (key) => ownersOf(key, members), expected);
      assert.equal(problems, undefined, 'every owner holds exactly the acknowledged version');
      const value = await o.client.get(keys[7]!, { from: 'local' });
      assert.deepEqual(value.value, Buffer.from(valueOf(7)));
    } finally {
      await cluster.stop();
    }
  });
});
