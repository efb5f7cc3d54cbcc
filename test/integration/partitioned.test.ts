/**
 * Partitioned mode (`--replicas 3`) as a user sees it, on real processes on 127.0.0.1: real
 * libp2p, LevelDB and gRPC, the `ckv` CLI for the commands under test.
 *
 * Where each key must be is computed by the test (test/helpers/partitioned.ts: the core's
 * rendezvous placement over the node ids the layout should hold), and checked on every node's
 * own store (Scan is local), so "every key on exactly its owners" means: each owner has it, and
 * no other node does once the rebalance is over (old owners purged what they handed off).
 *
 * 1. One cluster through its life: 5 nodes (each holds about 3/5 of the keys, every key
 *    readable from every node, `put --consistency all --json` names the owners and acks);
 *    a 6th joins under a write load while a reader checks acknowledged keys (no put through
 *    the old nodes fails, no miss, nothing lost, copies moved within 1.3x of the
 *    ideal 1/6 of the replica data); `ckv node leave` of one node; `kill -9` of one node and `ckv node remove` of it (K copies restored from the
 *    survivors); then one owner down: `get --from quorum` answers, `--from all` exits 3,
 *    `--from all --allow-partial` answers.
 * 2. Kills during a rebalance: a 5th node joins 4 under writes; as soon as it has a pull
 *    pending it is killed (-9), and so is an old owner that is offloading; both restart; the
 *    cluster converges with every acknowledged write on exactly its owners.
 *
 * Every wait is a condition with a deadline. Heavy (up to 6 processes): in test/integration,
 * which scripts/run-tests.mjs runs one file at a time.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCliOk, waitFor, withDeadline, type NodeProcess } from '../../harness/testing.js';
import {
  cli,
  cliJson,
  failuresBesidesJoiner,
  localKeys,
  ownersOf,
  startLoad,
  startPartitioned,
  startReader,
  statusJson,
  unreadable,
  waitPlacement,
  waitSettled,
} from '../helpers/partitioned.js';

const settleMs = 60_000;

function ids(nodes: NodeProcess[]): string[] {
  return nodes.map((node) => node.nodeId);
}

describe('partitioned mode, K = 3', () => {
  it('5 nodes, a join under writes, an owner killed (quorum reads), node remove of it, a leave', async (t) => {
    const cluster = await startPartitioned(5);
    try {
      const nodes = (): NodeProcess[] => cluster.nodes.filter((node) => node.running);
      await waitSettled(cluster.nodes, settleMs, 'the 5 nodes to agree on one layout with nothing pending');

      // -- 5 nodes: about 3/5 of the keys each, all readable from everywhere.
      const keyCount = 1000;
      const load0 = startLoad(nodes, 'p/', { writesMax: keyCount, inFlight: 16 });
      await waitUntilDone(load0, keyCount);
      assert.equal(load0.failures, 0, 'no put failed with every node up');
      const acked = new Map(load0.acked);
      let members = ids(cluster.nodes);
      await waitPlacement(cluster.nodes, 'p/', acked.keys(), members, settleMs, 'every key on exactly its 3 owners (5 nodes)');
      for (const node of cluster.nodes) {
        const share = (await localKeys(node, 'p/')).size / keyCount;
        assert.ok(share > 0.4 && share < 0.8, `${node.name} holds ${(share * 100).toFixed(0)}% of the keys, expected about 60%`);
      }
      for (const node of cluster.nodes) assert.equal(await unreadable(node, acked), undefined);
      // Through the CLI too, from every node, for a few keys.
      for (const [i, node] of cluster.nodes.entries()) {
        const key = [...acked.keys()][i * 37]!;
        const got = await runCliOk(['get', key], { socket: node.socket });
        assert.equal(got.stdout.toString('utf8'), acked.get(key), `ckv get ${key} on ${node.name}`);
      }

      // put --consistency all --json: the reply names the owners and which of them acked.
      const putAll = await cliJson<{ owners: string[]; acked: string[] }>(cluster.nodes[0]!, ['put', 'c/all', 'x', '--consistency', 'all']);
      assert.deepEqual([...putAll.owners].sort(), [...ownersOf('c/all', members)].sort(), 'owners in the put reply');
      assert.deepEqual([...putAll.acked].sort(), [...putAll.owners].sort(), 'with --consistency all every owner acked');
      const putOne = await cliJson<{ owners: string[]; acked: string[] }>(cluster.nodes[1]!, ['put', 'c/one', 'y', '--consistency', 'one']);
      assert.ok(putOne.acked.length >= 1 && putOne.acked.every((id) => putOne.owners.includes(id)), 'acks come from owners');
      acked.set('c/all', 'x');
      acked.set('c/one', 'y');
      const whereis = await cliJson<Record<string, unknown>>(cluster.nodes[2]!, ['whereis', 'c/all', '--probe']);
      for (const owner of ownersOf('c/all', members)) assert.ok(JSON.stringify(whereis).includes(owner), `whereis --probe names owner ${owner}`);

      // -- A 6th node joins under writes; a reader checks acknowledged keys all along.
      const before = new Map<string, Set<string>>();
      for (const node of cluster.nodes) before.set(node.nodeId, await localKeys(node, 'p/'));
      const versionBefore = (await statusJson(cluster.nodes[0]!)).partitioned!.layoutVersion;
      const load = startLoad(nodes, 'j/', { writesMax: 3000, inFlight: 4 });
      // Quorum reads: with quorum writes (2 of 3) they always meet an owner that has the write; a
      // default read is local on an owner, which may be the one the write has not reached yet.
      const reader = startReader(nodes, load.acked, { from: 'quorum' });
      const [sixth] = await cluster.add(1);
      members = ids(cluster.nodes);
      await waitSettled(cluster.nodes, settleMs, 'the 6 nodes to settle on a newer layout', versionBefore + 1);
      await waitPlacement(cluster.nodes, '', acked.keys(), members, settleMs, 'every key on exactly its 3 owners (6 nodes)');
      await load.stop();
      await reader.stop();
      const joinMisses = [...reader.misses]; // asserted at the end, so the rest runs whatever it says
      assert.ok(reader.reads > 0, 'the reader read');
      // No put through the old nodes fails during a join (the joiner's own first seconds as a
      // coordinator: see the helper); asserted at the end, so the rest runs whatever it says.
      const joinFailures = failuresBesidesJoiner(load, sixth!);
      console.log(`# join: ${load.acked.size} puts acknowledged, ${load.failures} failed; ${reader.reads} reads, ${reader.errors} failed, ${joinMisses.length} missed`);
      for (const [key, value] of load.acked) acked.set(key, value);
      await waitPlacement(cluster.nodes, '', acked.keys(), members, settleMs, 'every acknowledged key (old and written during the join) on exactly its owners');
      // Moved copies of the keys that existed before: only what the joiner gained, about 1/6.
      let gained = 0;
      for (const node of cluster.nodes) {
        const had = before.get(node.nodeId) ?? new Set<string>();
        for (const key of await localKeys(node, 'p/')) if (!had.has(key)) gained++;
      }
      const ideal = (3 * keyCount) / 6;
      assert.ok(gained <= 1.3 * ideal, `the join moved ${gained} copies, ideal ${ideal} (1/6 of the replica data): over 1.3x`);
      assert.ok(gained > 0, 'the joiner received data');
      assert.equal((await localKeys(sixth!, 'p/')).size, gained, 'copies moved only to the joiner');

      // -- One owner killed (-9): quorum reads answer, --from all exits 3 unless --allow-partial.
      const dead = cluster.nodes[4]!;
      let survivors = cluster.nodes.filter((node) => node !== dead);
      const key = [...acked.keys()].find((k) => ownersOf(k, members).includes(dead.nodeId))!;
      await dead.kill();
      const asker = survivors.find((node) => ownersOf(key, members).includes(node.nodeId))!;
      const quorum = await cli(asker, ['get', key, '--from', 'quorum']);
      assert.equal(quorum.code, 0, `get --from quorum with one owner down: ${quorum.stderr}`);
      assert.equal(quorum.stdout.toString('utf8'), acked.get(key));
      const all = await cli(asker, ['get', key, '--from', 'all']);
      assert.equal(all.code, 3, `get --from all with one owner down exits 3 (got ${all.code}: ${all.stderr})`);
      assert.match(all.stderr, /^ckv: /, 'a one-line error');
      const partial = await cli(asker, ['get', key, '--from', 'all', '--allow-partial']);
      assert.equal(partial.code, 0, `--allow-partial: ${partial.stderr}`);
      assert.equal(partial.stdout.toString('utf8'), acked.get(key));
      assert.deepEqual(joinMisses, [], `no quorum read missed an acknowledged key during the join (${reader.reads} reads)`);
      assert.equal(joinFailures.count, 0, `no put through the old nodes failed during the join (${joinFailures.reasons})`);

      // Todo subtests (they run and report, without failing the file): bugs of the merged
      // branches found here.
      await t.test('node remove of the killed node restores K copies from the survivors', async () => {
        const removed = await cli(survivors[0]!, ['node', 'remove', dead.nodeId], 60_000);
        assert.equal(removed.code, 0, `ckv node remove: ${removed.stderr}`);
        members = ids(survivors);
        await waitSettled(survivors, 45_000, 'the 5 survivors to settle after the removal');
        await waitPlacement(survivors, '', acked.keys(), members, 30_000, 'K copies restored from the survivors');
        for (const node of survivors) assert.equal(await unreadable(node, acked), undefined);
      });
      await t.test('node leave hands off, stops, and every key is on exactly its owners', async () => {
        const leaver = survivors[2]!;
        const leave = await cli(leaver, ['node', 'leave'], 60_000);
        assert.equal(leave.code, 0, `ckv node leave: ${leave.stderr}`);
        await withDeadline(leaver.exited, 30_000, 'the leaving node to stop once it handed off');
        survivors = survivors.filter((node) => node !== leaver);
        members = ids(survivors);
        await waitSettled(survivors, 45_000, 'the remaining nodes to settle after the leave');
        await waitPlacement(survivors, '', acked.keys(), members, 30_000, 'every key on exactly its 3 owners after the leave');
      });
    } finally {
      await cluster.stop();
    }
  });

  it('kill -9 of a new owner mid-pull and of an old owner mid-offload, both restarted: converges', async () => {
    const cluster = await startPartitioned(4);
    try {
      const nodes = (): NodeProcess[] => cluster.nodes.filter((node) => node.running);
      await waitSettled(cluster.nodes, settleMs, 'the 4 nodes to agree on one layout with nothing pending');
      const keyCount = 3000;
      const load0 = startLoad(nodes, 'k/', { writesMax: keyCount, inFlight: 32 });
      await waitUntilDone(load0, keyCount);
      const acked = new Map(load0.acked);
      const oldMembers = ids(cluster.nodes);
      await waitPlacement(cluster.nodes, 'k/', acked.keys(), oldMembers, settleMs, 'every key on its 3 owners (4 nodes)');

      const versionBefore = (await statusJson(cluster.nodes[0]!)).partitioned!.layoutVersion;
      const load = startLoad(nodes, 'w/', { writesMax: 3000, inFlight: 4 });
      const [joiner] = await cluster.add(1);
      const members = ids(cluster.nodes);
      // An old owner that loses partitions to the joiner (it offloads them).
      const loser = cluster.nodes.find((node) => node !== joiner && [...acked.keys()].some((k) => ownersOf(k, oldMembers).includes(node.nodeId) && !ownersOf(k, members).includes(node.nodeId)))!;
      let midway = false;
      await waitUntil(async () => {
        const p = (await statusJson(joiner!)).partitioned;
        midway = p !== undefined && p.rebalance.pending > 0;
        return midway || (p !== undefined && p.layoutVersion > versionBefore);
      }, 'the joiner to start its pulls');
      await Promise.all([joiner!.kill(), loser.kill()]);
      await cluster.respawn(joiner!);
      await cluster.respawn(loser);
      await load.stop();
      for (const [key, value] of load.acked) acked.set(key, value);
      await waitSettled(cluster.nodes, 45_000, 'the 5 nodes to settle after the kills');
      await waitPlacement(cluster.nodes, '', acked.keys(), members, 30_000, 'every acknowledged key on exactly its owners after the kills');
      for (const node of cluster.nodes) assert.equal(await unreadable(node, acked), undefined);
      // Recorded, not asserted: whether the kill landed while pulls were pending.
      console.log(`# kills mid-rebalance: joiner had pulls pending when killed: ${midway}; ${load.failures} puts not acknowledged`);
    } finally {
      await cluster.stop();
    }
  });
});

/** Waits for a load of `count` writes to finish (bounded: 2 minutes). */
async function waitUntilDone(load: ReturnType<typeof startLoad>, count: number): Promise<void> {
  await waitUntil(() => load.acked.size + load.failures >= count, `${count} writes to finish`, 120_000);
  await load.stop();
}

async function waitUntil(condition: () => Promise<boolean> | boolean, what: string, deadlineMs = 60_000): Promise<void> {
  await waitFor(condition, { deadlineMs, intervalMs: 100, what });
}
