/**
 * Pending deliveries across layout changes and past their limit, on real processes (issue 12,
 * part 1). 5 nodes, --replicas 3; n04 (G) runs with a small `--delivery-bytes-max`.
 *
 * 1. `node remove` of an owner with pending rows: P killed, G coordinates 50 writes P owns
 *    (quorum: acknowledged by the other owners; 50 rows for P on G); `ckv node remove P`:
 *    the rows are re-targeted to the partitions' new owners and delivered (pending 0), and
 *    every key is on exactly its new owners at exactly its acknowledged version.
 * 2. `node leave` of a node holding pending rows: X killed, L coordinates 40 writes X owns
 *    (rows for X on L); `ckv node leave` on L. While X is down the leave waits and says how
 *    many writes are pending; X returns; the rows are delivered, then the leave completes
 *    (exit 0) and L stops without a row left (its log never says it stopped with deliveries
 *    pending); X holds every key at its acknowledged version.
 * 3. The backlog limit: X killed again (3 members left, K = 3: X owns every key); G writes
 *    8 KiB values at `--consistency one` until one is refused (DeliveryBacklogError: rows for
 *    X past G's limit); `ckv put` then exits 3 with one line naming X; X returns, G's rows
 *    drain, and the same `ckv put` is accepted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, spawnCli, startNode, waitFor, type NodeProcess } from '../../harness/testing.js';
import { ownersOf, startPartitioned, waitPlacement, waitSettled } from '../helpers/partitioned.js';
import { counterOf, deliveryOf, keysOwnedBy, pendingOf, putAll, versionProblems, waitSeesDown } from '../helpers/delivery.js';

const small = (i: number): Uint8Array => new TextEncoder().encode(`value-${i}`);
const backlogBytesMax = 200_000;

describe('pending deliveries across node remove, node leave and their limit (5 nodes, K = 3)', () => {
  it('re-targets a removed owner\'s rows, delivers a leaving node\'s rows before it stops, refuses writes past the limit with exit 3', async () => {
    const cluster = await startPartitioned(4);
    try {
      const [g] = await cluster.add(1, ['--delivery-bytes-max', String(backlogBytesMax)]);
      assert.ok(g);
      await waitSettled(cluster.nodes, 60_000, 'one layout of 5 nodes');
      const [n00, l, x, p] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess, NodeProcess];
      let xNode = x;
      const members5 = cluster.nodes.map((n) => n.nodeId);

      // 1. P removed with 50 rows pending for it on G.
      const pKeys = keysOwnedBy('moved-', p.nodeId, members5, 50);
      await p.kill();
      await waitSeesDown(g, p.nodeId);
      const pVersions = await putAll(g, pKeys, small, () => 'quorum');
      assert.equal((await deliveryOf(g)).targets.get(p.nodeId), 50, 'rows pending for P');
      const removed = await runCli(['node', 'remove', p.nodeId], { socket: g.socket });
      assert.equal(removed.code, 0, removed.stderr);
      cluster.nodes.splice(cluster.nodes.indexOf(p), 1);
      const members4 = members5.filter((id) => id !== p.nodeId);
      await waitFor(async () => (await pendingOf(g)) === 0, { deadlineMs: 60_000, what: "P's rows re-targeted and delivered" });
      assert.ok((await counterOf(g, 'delivery_rows_retargeted')) >= 50, 'the rows were re-targeted');
      await waitPlacement(cluster.nodes, 'moved-', pKeys, members4, 60_000, 'the moved keys on exactly their new owners');
      assert.equal(await versionProblems(cluster.nodes, pKeys, (key) => ownersOf(key, members4), (key) => pVersions.get(key)!.text), undefined);
      await waitSettled(cluster.nodes, 60_000, 'one layout of 4 nodes after the removal', 2);

      // 2. L leaves while holding rows for X, which is down.
      const xKeys = keysOwnedBy('left-', x.nodeId, members4, 40);
      await x.kill();
      await waitSeesDown(l, x.nodeId);
      const xVersions = await putAll(l, xKeys, small, (i) => (i % 2 === 0 ? 'one' : 'quorum'));
      assert.equal((await deliveryOf(l)).targets.get(x.nodeId), 40, 'rows pending for X on L');
      const leave = spawnCli(['node', 'leave'], { socket: l.socket });
      await waitFor(() => /40 writes pending/.test(leave.stderrText()), { deadlineMs: 30_000, what: 'the leave to say it waits for 40 pending writes' });
      assert.equal(await pendingOf(l), 40, 'nothing dropped while the leave waits');
      xNode = await startNode(x.options);
      cluster.nodes[cluster.nodes.indexOf(x)] = xNode;
      const left = await Promise.race([leave.result, new Promise<undefined>((done) => setTimeout(() => done(undefined), 120_000).unref())]);
      assert.ok(left, `the leave did not finish in 120 s:\n${leave.stderrText()}\n${l.logTail(30)}`);
      assert.equal(left.code, 0, left.stderr);
      await waitFor(() => !l.running, { deadlineMs: 30_000, what: 'L to stop after the leave' });
      assert.doesNotMatch(l.stderrText(), /stopping with deliveries pending/, 'L stopped with nothing pending');
      cluster.nodes.splice(cluster.nodes.indexOf(l), 1);
      const members3 = members4.filter((id) => id !== l.nodeId);
      assert.equal(await versionProblems(cluster.nodes, xKeys, (key) => ownersOf(key, members3), (key) => xVersions.get(key)!.text), undefined);
      await waitSettled(cluster.nodes, 60_000, 'one layout of 3 nodes after the leave', 3);

      // 3. Past G's byte limit with X down: refused with exit 3, accepted again once X is back.
      await xNode.kill();
      await waitSeesDown(g, xNode.nodeId);
      const value = new Uint8Array(8 * 1024).fill(120);
      let refusal = '';
      for (let i = 0; i < 100 && refusal === ''; i++) {
        await g.client.put(`full-${i}`, value, {}, 'one').catch((error: unknown) => {
          refusal = error instanceof Error ? error.message : String(error);
        });
      }
      assert.match(refusal, /pending deliveries to [0-9a-f]+ hold \d+ rows/, 'a write refused past the limit');
      assert.ok((await counterOf(g, 'delivery_backlog_refused')) >= 1);
      const refused = await runCli(['put', 'full-cli', 'v'], { socket: g.socket });
      assert.equal(refused.code, 3, refused.stderr);
      assert.match(refused.stderr, new RegExp(`^ckv: .*pending deliveries to ${xNode.nodeId} .*\\n$`));
      assert.equal(refused.stderr.split('\n').length, 2, 'one line');
      const xIndex = cluster.nodes.indexOf(xNode);
      xNode = await startNode(xNode.options);
      cluster.nodes[xIndex] = xNode;
      await waitFor(async () => (await pendingOf(g)) === 0, { deadlineMs: 60_000, what: "G's rows for X delivered" });
      const accepted = await runCli(['put', 'full-cli', 'v'], { socket: g.socket });
      assert.equal(accepted.code, 0, accepted.stderr);
      assert.ok(n00.running);
    } finally {
      await cluster.stop();
    }
  });
});
