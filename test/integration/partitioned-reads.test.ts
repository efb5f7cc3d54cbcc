/**
 * Prefix reads across owners in partitioned mode, on real processes (libp2p, LevelDB, gRPC,
 * the CLI): 5 nodes with --replicas 3, keys written through PutMany from several nodes.
 *
 * - `ckv keys`, `ckv get --prefix` and `ckv export` list every key on every node (each node
 *   holds about 3/5 of them: `keys --from local` lists fewer).
 * - `ckv watch` (the Watch call) on one node sees writes made on another node to partitions
 *   it does not own, each once (every owner reports it).
 * - PutMany with consistency `all` with one owner killed fails exactly the keys that owner
 *   owns (UNAVAILABLE), and succeeds for the others; with `one` every key succeeds.
 * - One owner killed: every node still lists every key (its partitions from the other owners).
 * - Three nodes killed, so that every owner of some partitions is down: `ckv keys` exits 3
 *   naming how many partitions; `--allow-partial` lists exactly the keys of the partitions
 *   with an owner up and says on stderr how many partitions are missing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor, type NodeProcess } from '../../harness/testing.js';
import { collectWatch } from '../helpers/cluster.js';
import { cli, ownersOf, startPartitioned, waitSettled } from '../helpers/partitioned.js';

const settleMs = 60_000;
const keyCount = 300;
const grpcUnavailable = 14;

async function keysOn(node: NodeProcess, extra: string[] = []): Promise<{ code: number | null; keys: string[]; stderr: string }> {
  const result = await cli(node, ['keys', 'r/', ...extra]);
  const keys = result.stdout.toString('utf8').split('\n').filter((line) => line !== '');
  return { code: result.code, keys, stderr: result.stderr };
}

describe('partitioned prefix reads across owners (5 nodes, K = 3)', () => {
  it('keys, get --prefix and export list every key on every node; owners down; PutMany consistency', async () => {
    const cluster = await startPartitioned(5);
    const dir = await mkdtemp(join(tmpdir(), 'ckv-reads-'));
    try {
      await waitSettled(cluster.nodes, settleMs, 'the 5 nodes to agree on one layout with nothing pending');
      const members = cluster.nodes.map((node) => node.nodeId);
      const all = Array.from({ length: keyCount }, (_, i) => `r/${String(i).padStart(4, '0')}`);
      // Written from every node, 60 keys each, acknowledged by every owner.
      for (const [n, node] of cluster.nodes.entries()) {
        const puts = all.slice(n * 60, n * 60 + 60).map((key) => ({ key, value: new TextEncoder().encode(`v:${key}`), consistency: 'all' }));
        const { results } = await node.client.putMany(puts);
        assert.deepEqual(
          results.filter((r) => r.error !== ''),
          [],
          `PutMany with consistency all on ${node.name}, every node up`,
        );
      }

      for (const node of cluster.nodes) {
        const listed = await keysOn(node);
        assert.equal(listed.code, 0, listed.stderr);
        assert.deepEqual(listed.keys, all, `ckv keys r/ on ${node.name} lists every key, in order`);
        const local = await keysOn(node, ['--from', 'local']);
        assert.ok(local.keys.length > keyCount * 0.4 && local.keys.length < keyCount * 0.8, `${node.name} holds ${local.keys.length} of ${keyCount} itself`);
      }
      const got = await cli(cluster.nodes[2]!, ['get', '--prefix', 'r/', '--json']);
      assert.equal(got.code, 0, got.stderr);
      const lines = got.stdout
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { key: string; value: string });
      assert.deepEqual(
        lines.map((l) => l.key),
        all,
      );
      assert.ok(
        lines.every((l) => l.value === `v:${l.key}`),
        'get --prefix returns each value',
      );
      const exported = await cli(cluster.nodes[4]!, ['export', 'r/', '-o', join(dir, 'r.ckvb')]);
      assert.equal(exported.code, 0, exported.stderr);
      assert.match(exported.stderr, new RegExp(`exported ${keyCount} entries`), 'export writes every key');

      // -- watch on one node sees writes to partitions it does not own (made on another node).
      const watcher = cluster.nodes[0]!;
      const watch = collectWatch(watcher.client, 'w/');
      const changes = watch.changes;
      try {
        const notOwned = Array.from({ length: 200 }, (_, i) => `w/${i}`).filter((key) => !ownersOf(key, members).includes(watcher.nodeId));
        // Live once it reports a marker written elsewhere (its streams to the members are open).
        const marker = notOwned[0]!;
        await waitFor(
          async () => {
            await cluster.nodes[1]!.client.putMany([{ key: marker, value: new Uint8Array([0]), consistency: 'all' }]);
            return changes.some((ch) => ch.key === marker);
          },
          { deadlineMs: 20_000, intervalMs: 500, what: `the watch on ${watcher.name} to see a write to a partition it does not own` },
        );
        const watched = notOwned.slice(1, 41);
        const writer = cluster.nodes[3]!;
        const wrote = await writer.client.putMany(watched.map((key) => ({ key, value: new Uint8Array(7), consistency: 'all' })));
        assert.deepEqual(
          wrote.results.filter((r) => r.error !== ''),
          [],
        );
        await waitFor(() => watched.every((key) => changes.some((ch) => ch.key === key)), { deadlineMs: 20_000, what: `every write from ${writer.name} in the watch on ${watcher.name}` });
        for (const key of watched) {
          const seen = changes.filter((ch) => ch.key === key);
          assert.equal(seen.length, 1, `${key} shown once though its 3 owners each report it`);
          assert.equal(seen[0]!.valueBytes, '7');
        }
      } finally {
        await watch.stop();
      }

      // -- One node killed: PutMany consistency all fails exactly the keys it owns.
      const dead = cluster.nodes[4]!;
      await dead.kill();
      const survivors = cluster.nodes.slice(0, 4);
      const more = Array.from({ length: 40 }, (_, i) => `m/${i}`);
      const { results } = await survivors[0]!.client.putMany(more.map((key) => ({ key, value: new Uint8Array([1]), consistency: 'all' })));
      more.forEach((key, i) => {
        const ownedByDead = ownersOf(key, members).includes(dead.nodeId);
        const result = results[i]!;
        if (ownedByDead) assert.equal(result.code, grpcUnavailable, `${key}: an owner is down, consistency all fails (${result.error})`);
        else assert.equal(result.error, '', `${key}: every owner up`);
      });
      assert.ok(
        more.some((key) => ownersOf(key, members).includes(dead.nodeId)),
        'some keys are owned by the dead node',
      );
      const one = await survivors[1]!.client.putMany(more.map((key) => ({ key, value: new Uint8Array([2]), consistency: 'one' })));
      assert.deepEqual(
        one.results.filter((r) => r.error !== ''),
        [],
        'consistency one succeeds with one owner down',
      );

      // Every survivor still lists every key: the dead node's partitions come from other owners.
      for (const node of survivors) assert.deepEqual((await keysOn(node)).keys, all, `ckv keys r/ on ${node.name} with ${dead.name} down`);

      // -- Three down: the partitions owned by exactly those three have no owner up.
      await cluster.nodes[3]!.kill();
      await cluster.nodes[2]!.kill();
      const up = new Set(members.slice(0, 2));
      const reachable = all.filter((key) => ownersOf(key, members).some((owner) => up.has(owner)));
      assert.ok(reachable.length < keyCount, 'some keys have every owner down');
      const refused = await keysOn(cluster.nodes[0]!);
      assert.equal(refused.code, 3, `every owner of some partitions down: exit 3 (${refused.stderr})`);
      assert.match(refused.stderr, /\d+ of 256 partitions have no read owner/);
      const partial = await keysOn(cluster.nodes[0]!, ['--allow-partial']);
      assert.equal(partial.code, 0, partial.stderr);
      assert.deepEqual(partial.keys, reachable, '--allow-partial lists the keys of the partitions with an owner up');
      assert.match(partial.stderr, /\d+ of 256 partitions had no read owner up/);
      const local = await keysOn(cluster.nodes[1]!, ['--from', 'local']);
      assert.equal(local.code, 0, 'this node\'s copy needs no owner');
    } finally {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
