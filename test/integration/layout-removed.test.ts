/**
 * Removed nodes stay removed, on real processes (partitioned mode, K = 2):
 * - a running node removed by an operator (`layout remove` + `apply`) sees itself removed: it
 *   refuses reads and writes (NodeRemovedError, exit 4, one line), its status says `removed`,
 *   and it is not joined back (the layout records the removal);
 * - a node killed (-9), removed (`node remove`), keys deleted meanwhile, then started again on
 *   its old data directory: it learns of its removal and refuses to serve (none of the deleted
 *   keys come back through it, nor through the others); stopped, its data directory refuses to
 *   start (exit 4); `ckv purge --all` empties it, and it comes back as a new member (a new node
 *   id) that holds no deleted key.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, stopCleanly, waitFor, waitLinked, type NodeProcess } from '../../harness/testing.js';
import { startPeer } from '../helpers/cluster.js';
import { statusJson } from '../helpers/partitioned.js';

const partitioned = ['--sync-interval-ms', '200', '--replicas', '2'];

interface LayoutJson {
  current: { version: number; members: { nodeId: string }[]; removed: { nodeId: string; at: number }[] } | null;
  committedVersion: number;
}

async function layoutOf(node: NodeProcess, ...args: string[]): Promise<LayoutJson> {
  const result = await runCli(['layout', ...args, '--json'], { socket: node.socket });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout.toString('utf8')) as LayoutJson;
}

async function membersOf(node: NodeProcess): Promise<string[]> {
  return ((await layoutOf(node)).current?.members.map((m) => m.nodeId) ?? []).sort();
}

async function refusedRemoved(node: NodeProcess, args: string[]): Promise<void> {
  const result = await runCli(args, { socket: node.socket });
  assert.equal(result.code, 4, `${args.join(' ')}: ${result.stderr}`);
  assert.match(result.stderr, /^ckv: this node \([0-9a-f]{16}\) was removed from the cluster at layout v\d+: stop it and run 'ckv purge --all --data-dir DIR'/);
  assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
}

async function waitRemoved(node: NodeProcess, what: string): Promise<number> {
  let at = 0;
  await waitFor(
    async () => {
      at = (await statusJson(node)).partitioned?.removedAt ?? 0;
      return at > 0;
    },
    { deadlineMs: 20_000, what },
  );
  return at;
}

describe('removed nodes stay removed', () => {
  it('a running node removed by layout remove refuses to serve and is not joined back', async () => {
    const a = await startPeer('A', { args: partitioned });
    await waitFor(async () => (await layoutOf(a)).current?.version === 1, { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const [b, c] = await Promise.all([startPeer('B', { bootstrap: [a], args: partitioned }), startPeer('C', { bootstrap: [a], args: partitioned })]);
    await waitLinked([[a, b], [a, c]]);
    const all = [a.nodeId, b.nodeId, c.nodeId].sort();
    await waitFor(async () => (await membersOf(a)).join() === all.join(), { deadlineMs: 20_000, what: 'B and C to join' });
    assert.equal((await runCli(['put', 'k', 'v'], { socket: c.socket })).code, 0);

    await layoutOf(a, 'remove', c.nodeId);
    const applied = await layoutOf(a, 'apply');
    assert.deepEqual(applied.current?.removed, [{ nodeId: c.nodeId, at: applied.committedVersion }]);
    assert.match((await runCli(['layout'], { socket: a.socket })).stdout.toString('utf8'), new RegExp(`removed \\(not rejoined automatically[^\\n]*${c.nodeId} at v${applied.committedVersion}`));

    assert.equal(await waitRemoved(c, 'C to see itself removed'), applied.committedVersion);
    await refusedRemoved(c, ['get', 'k']);
    await refusedRemoved(c, ['put', 'k2', 'v']);
    assert.match((await runCli(['status'], { socket: c.socket })).stdout.toString('utf8'), new RegExp(`removed +at layout v${applied.committedVersion}: this node refuses to serve`));
    assert.ok(Number((await c.status()).counters.layout_self_removed) >= 1);

    // Still out after a later change (B's weight): the removal is carried into every later layout.
    await layoutOf(a, 'weight', b.nodeId, '2');
    const later = await layoutOf(a, 'apply');
    assert.deepEqual(later.current?.removed.map((r) => r.nodeId), [c.nodeId]);
    assert.deepEqual(await membersOf(a), [a.nodeId, b.nodeId].sort());
    await waitFor(async () => (await layoutOf(c)).current?.version === later.committedVersion, { deadlineMs: 20_000, what: 'C to hear the later layout' });
    assert.deepEqual(await membersOf(c), [a.nodeId, b.nodeId].sort(), 'C is not joined back');
    await refusedRemoved(c, ['get', 'k']);
    await Promise.all([stopCleanly(c), stopCleanly(b)]);
    await stopCleanly(a);
  });

  it('a killed and removed node started again on its old data refuses; after purge --all it joins as a new member; no deleted key returns', async () => {
    const a = await startPeer('A', { args: partitioned });
    await waitFor(async () => (await layoutOf(a)).current?.version === 1, { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const [b, c] = await Promise.all([startPeer('B', { bootstrap: [a], args: partitioned }), startPeer('C', { bootstrap: [a], args: partitioned })]);
    await waitLinked([[a, b], [a, c]]);
    const oldId = c.nodeId;
    await waitFor(async () => (await membersOf(a)).length === 3, { deadlineMs: 20_000, what: 'B and C to join' });
    const keys = Array.from({ length: 20 }, (_, i) => `r/${i}`);
    for (const key of keys) assert.equal((await runCli(['put', key, `v-${key}`, '--consistency', 'all'], { socket: a.socket })).code, 0);

    await c.kill();
    await waitFor(async () => (await a.peers()).find((p) => p.peerId === c.peerId)?.state !== 'up', { deadlineMs: 20_000, what: 'A to see C down' });
    const removed = await runCli(['node', 'remove', oldId], { socket: a.socket });
    assert.equal(removed.code, 0, removed.stderr);
    const removedLayout = await layoutOf(a);
    assert.deepEqual(removedLayout.current?.removed.map((r) => r.nodeId), [oldId]);
    // The change completes (the old layout, with dead C, retires: until then a quorum there needs C).
    await waitFor(async () => (await Promise.all([a, b].map(statusJson))).every((st) => st.partitioned?.activeVersions?.length === 1), {
      deadlineMs: 45_000,
      what: 'the removal to complete on A and B',
    });
    const deleted = keys.slice(0, 5);
    for (const key of deleted) {
      const del = await runCli(['del', key], { socket: a.socket });
      assert.equal(del.code, 0, `del ${key}: ${del.stderr}`);
    }

    // Started again on its old data: it hears its removal and refuses to serve.
    const c2 = await c.respawn();
    await waitRemoved(c2, 'the restarted C to learn of its removal');
    await refusedRemoved(c2, ['get', deleted[0]!]);
    for (const node of [a, b]) {
      for (const key of deleted) assert.equal((await runCli(['get', key], { socket: node.socket })).code, 1, `${node.name}: ${key} came back`);
    }
    assert.ok(!(await membersOf(a)).includes(oldId), 'the removed C is not joined back');

    // Stopped, its data directory refuses to start (exit 4, one line).
    await stopCleanly(c2);
    const start = await runCli(['node', 'start', '--data-dir', c.dataDir, '--no-mdns', '--http', 'off', '--listen', '/ip4/127.0.0.1/tcp/0', ...partitioned], {
      socket: `${c.dataDir}/again.sock`,
    });
    assert.equal(start.code, 4, start.stderr);
    assert.match(start.stderr, new RegExp(`this node \\(${oldId}\\) was removed from the cluster at layout v\\d+`));

    // purge --all: every row and the identity go; it comes back as a new member.
    const purge = await runCli(['purge', '--all', '--data-dir', c.dataDir, '--yes', '--json']);
    assert.equal(purge.code, 0, purge.stderr);
    const report = JSON.parse(purge.stdout.toString('utf8')) as { entries: number; removedAt: number | null };
    assert.ok(report.entries >= 1, `purge reported ${report.entries} entries`);
    assert.ok(report.removedAt !== null && report.removedAt > 0);
    const c3 = await c2.respawn();
    const newId = (await c3.status()).nodeId;
    assert.notEqual(newId, oldId, 'a new identity');
    await waitFor(async () => (await membersOf(a)).includes(newId), { deadlineMs: 30_000, what: 'the purged C to join as a new member' });
    assert.ok((await layoutOf(a)).current?.removed.some((r) => r.nodeId === oldId), 'the old identity stays removed');
    await waitFor(async () => (await statusJson(c3)).partitioned?.partitionsUnderReplicated === 0, { deadlineMs: 30_000, what: 'C3 to see every partition with K owners up' });
    for (const key of keys) {
      const got = await runCli(['get', key, '--from', 'all'], { socket: c3.socket });
      assert.equal(got.code, deleted.includes(key) ? 1 : 0, `${key} from the new C: ${got.stderr}`);
    }
    await Promise.all([stopCleanly(c3), stopCleanly(b)]);
    await stopCleanly(a);
  });
});
