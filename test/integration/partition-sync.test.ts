/**
 * Anti-entropy per partition and rebalancing on real processes (partitioned mode, sync 1.2.0):
 * four nodes with --replicas 2 hold their keys on exactly their owners; a fifth node joins,
 * pulls exactly the partitions the new layout gives it, the old layout retires, the old owners
 * purge what they lost, and in the end every node holds exactly the keys it owns (each key on
 * its two owners, readable there with `ckv haskey`). `ckv balance` and `ckv purge` report on
 * it; a full-replication node refuses both (exit 4).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keyHashText } from '../../src/core/entry.js';
import { clusterLayoutOf } from '../../src/core/layout.js';
import { partitionOfHash } from '../../src/core/placement.js';
import { RendezvousPlacement } from '../../src/core/rendezvous.js';
import { runCli, stopCleanly, waitFor, waitMesh, type NodeProcess } from '../../harness/testing.js';
import { scanAll, startPeer } from '../helpers/cluster.js';
import { partitionedOf, waitOneLayout } from '../helpers/partitioned.js';

const k = 2;
const partitioned = ['--sync-interval-ms', '300', '--replicas', String(k)];
const keyCount = 400;
const keyOf = (i: number): string => `key-${String(i).padStart(4, '0')}`;

/** Waits until every node has one active layout, the same, of all of them (256 x K partition-replicas owned in all). */
const waitSettledLayout = (nodes: NodeProcess[]): Promise<unknown> =>
  waitOneLayout(nodes, { replicas: k, everyOwns: true, deadlineMs: 60_000, intervalMs: 250, what: `one settled layout of ${nodes.length} nodes` });

/** Node id -> the keys (of ours) it owns, for a layout of these nodes (weight 1 each, as auto-join makes them). */
function expectedHolders(nodeIds: string[]): Map<string, Set<string>> {
  const layout = clusterLayoutOf(1, nodeIds.map((nodeId) => ({ nodeId, weight: 1 })), k);
  const placement = new RendezvousPlacement();
  const byNode = new Map(nodeIds.map((nodeId) => [nodeId, new Set<string>()]));
  for (let i = 0; i < keyCount; i++) {
    for (const owner of placement.ownersOf(partitionOfHash(keyHashText(keyOf(i))), layout)) byNode.get(owner)!.add(keyOf(i));
  }
  return byNode;
}

async function keysOf(node: NodeProcess): Promise<Set<string>> {
  return new Set((await scanAll(node.client, 'key-')).map((entry) => entry.key));
}

/** Waits until each node holds exactly the keys it owns. */
async function waitExactlyOwned(nodes: NodeProcess[], nodeIds: string[], what: string): Promise<void> {
  const expected = expectedHolders(nodeIds);
  let last = '';
  const waiting = waitFor(
    async () => {
      const held = await Promise.all(nodes.map(keysOf));
      const wrong = nodes.flatMap((node, i) => {
        const want = expected.get(nodeIds[i]!)!;
        const missing = [...want].filter((key) => !held[i]!.has(key)).length;
        const extra = [...held[i]!].filter((key) => !want.has(key)).length;
        return missing + extra === 0 ? [] : [`${node.name}: ${missing} missing, ${extra} not owned`];
      });
      last = wrong.join('; ');
      return wrong.length === 0;
    },
    { deadlineMs: 90_000, what, intervalMs: 500 },
  );
  await waiting.catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; last seen: ${last}`);
  });
}

describe('partition sync', () => {
  it('a fifth node pulls exactly its partitions, the old layout retires, old owners purge what they lost', async () => {
    const a = await startPeer('A', { args: partitioned });
    await waitFor(async () => (await partitionedOf(a)).layoutVersion !== '0', { deadlineMs: 15_000, what: 'A to make the first layout' });
    const others = await Promise.all(['B', 'C', 'D'].map((name) => startPeer(name, { bootstrap: [a], args: partitioned })));
    const four = [a, ...others];
    await waitMesh(four);
    await waitSettledLayout(four);
    const fourIds = await Promise.all(four.map(async (node) => (await node.status()).nodeId));

    // Written through A (gossip delivers them to their owners; A purges those it does not own).
    for (let at = 0; at < keyCount; at += 100) {
      const { results } = await a.client.putMany(Array.from({ length: 100 }, (_, i) => ({ key: keyOf(at + i), value: Buffer.from(`value-${at + i}`) })));
      assert.ok(results.every((result) => result.version), 'every put stored');
    }
    // A holds keys it does not own until its purge runs: ckv purge does it now.
    const purge = await runCli(['purge', '--yes', '--json'], { socket: a.socket });
    assert.equal(purge.code, 0, purge.stderr);
    const purged = JSON.parse(purge.stdout.toString('utf8')) as { entries: number; blocked: number };
    assert.equal(purged.blocked, 0);
    await waitExactlyOwned(four, fourIds, 'four nodes holding exactly the keys they own');

    // A fifth node joins (auto-join): it pulls its partitions, the others purge what they lost.
    const e = await startPeer('E', { bootstrap: [a], args: partitioned });
    const five = [...four, e];
    await waitMesh(five);
    const balance = await runCli(['balance', '--json', '--single-layout'], { socket: e.socket, timeoutMs: 90_000 });
    assert.equal(balance.code, 0, balance.stderr);
    const steps = balance.stdout.toString('utf8').trim().split('\n').map((line) => JSON.parse(line) as { done: boolean; activeVersions: number[] });
    assert.equal(steps.at(-1)!.done, true);
    assert.equal(steps.at(-1)!.activeVersions.length, 1, 'balanced: one layout active');
    await waitSettledLayout(five);
    const fiveIds = [...fourIds, (await e.status()).nodeId];
    await waitExactlyOwned(five, fiveIds, 'five nodes holding exactly the keys they own');

    const statuses = await Promise.all(five.map((node) => node.status()));
    const eStatus = statuses.at(-1)!;
    assert.ok(Number(eStatus.counters.partitions_pulled) >= eStatus.partitioned!.partitionsOwned, 'E pulled each partition it owns');
    assert.ok(Number(eStatus.counters.sync_entries_outside_partitions) === 0);
    const dropped = statuses.slice(0, 4).reduce((sum, status) => sum + Number(status.counters.purge_dropped_entries), 0);
    assert.ok(dropped > 0, 'old owners dropped the partitions they lost');
    for (const status of statuses) assert.deepEqual(status.partitioned!.rebalanceBlockedBy, []);

    // Every key readable on each of its owners.
    const expected = expectedHolders(fiveIds);
    for (const i of [0, 1, 137, 399]) {
      const owners = five.filter((_, n) => expected.get(fiveIds[n]!)!.has(keyOf(i)));
      assert.equal(owners.length, k);
      for (const owner of owners) {
        const has = await runCli(['haskey', keyOf(i)], { socket: owner.socket });
        assert.equal(has.code, 0, `${keyOf(i)} on ${owner.name}: ${has.stderr}`);
      }
    }

    // Nothing left to purge anywhere.
    const again = await runCli(['purge', '--yes', '--json'], { socket: a.socket });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout.toString('utf8')) as { partitions: number }).partitions, 0);

    await Promise.all(five.slice(1).map((node) => stopCleanly(node)));
    await stopCleanly(a);
  });

  it('a full-replication node refuses purge and balance (exit 4)', async () => {
    const full = await startPeer('F');
    for (const args of [['purge', '--yes'], ['balance']]) {
      const result = await runCli(args, { socket: full.socket });
      assert.equal(result.code, 4, result.stderr);
      assert.match(result.stderr, /^ckv: ckv (purge|balance) is for partitioned mode \(--replicas K\); this node runs in full-replication mode/);
      assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
    }
    await stopCleanly(full);
  });
});
