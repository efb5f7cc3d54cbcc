/**
 * The layout in running partitioned nodes (`--replicas K`), on real processes: three nodes
 * with --replicas 2 agree on one layout of all three (the first node makes version 1 alone,
 * the coordinator joins the others), a restarted node keeps its layout (persisted in its
 * store), and a node started with another K next to them refuses to serve (exit 4 with the
 * mismatch) and then refuses to start on the data directory that holds their layout.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startNode, stopCleanly, waitFor, waitLinked, type NodeProcess } from '../../harness/testing.js';
import type { StatusMessage } from '../../src/control/proto.js';
import { startPeer } from '../helpers/cluster.js';

const partitioned = (k: number): string[] => ['--sync-interval-ms', '200', '--replicas', String(k)];

type Partitioned = NonNullable<StatusMessage['partitioned']>;

async function partitionedOf(node: NodeProcess): Promise<Partitioned> {
  const status = await node.status();
  assert.ok(status.partitioned, `${node.name} reports no partitioned status`);
  return status.partitioned;
}

/** Waits until every node's newest layout is one version owning, in all, 256 x K partition-replicas among `nodes.length` owners. */
async function waitOneLayout(nodes: NodeProcess[], k: number): Promise<Partitioned[]> {
  let views: Partitioned[] = [];
  await waitFor(
    async () => {
      views = await Promise.all(nodes.map(partitionedOf));
      const versions = new Set(views.map((v) => v.layoutVersion));
      return (
        versions.size === 1 &&
        views[0]!.layoutVersion !== '0' &&
        views.every((v) => v.activeVersions.length >= 1 && v.partitionsOwned > 0) &&
        views.reduce((sum, v) => sum + v.partitionsOwned, 0) === 256 * k
      );
    },
    { deadlineMs: 30_000, what: `one layout of ${nodes.length} nodes, K = ${k}` },
  );
  return views;
}

describe('layout runtime', () => {
  it('refuses bad partitioned-mode flags with a one-line usage error (exit 2); the config file takes replicas, weight, auto_join', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ckv-layout-flags-'));
    const start = (...flags: string[]) => runCli(['node', 'start', '--data-dir', dir, '--no-mdns', '--http', 'off', ...flags], { socket: join(dir, 's.sock') });
    for (const [flags, pattern] of [
      [['--replicas', '0'], /--replicas must be a whole number from 1 to 64, not 0/],
      [['--replicas', '65'], /--replicas must be/],
      [['--replicas', 'two'], /--replicas must be/],
      [['--replicas', '2', '--weight', '-1'], /--weight must be a whole number from 0 to 1000000/],
      [['--replicas', '2', '--weight', '1000001'], /--weight must be/],
      [['--weight', '2'], /give --replicas K too/],
      [['--no-auto-join'], /give --replicas K too/],
    ] as const) {
      const result = await start(...flags);
      assert.equal(result.code, 2, `${flags.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
      assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
    }
    const config = join(dir, 'ckv.toml');
    await writeFile(config, 'replicas = 0\n');
    const fromFile = await start('--config', config);
    assert.equal(fromFile.code, 2, fromFile.stderr);
    assert.match(fromFile.stderr, /--replicas must be/);
    await writeFile(config, 'replicas = 2\nweight = 3\nauto_join = "no"\n');
    const wrongType = await start('--config', config);
    assert.equal(wrongType.code, 2, wrongType.stderr);
    assert.match(wrongType.stderr, /auto_join must be true or false/);
    await rm(dir, { recursive: true, force: true });
  });

  it('three nodes with --replicas 2 converge on one layout of all three; a restart keeps it; another K refuses to serve', async () => {
    const a = await startPeer('A', { args: partitioned(2) });
    await waitFor(async () => (await partitionedOf(a)).layoutVersion === '1', { deadlineMs: 15_000, what: 'A to make layout version 1 alone' });
    const [b, c] = await Promise.all([startPeer('B', { bootstrap: [a], args: partitioned(2) }), startPeer('C', { bootstrap: [a], args: partitioned(2) })]);
    // Partitioned nodes only sync with members they share partitions with: B and C meet A.
    await waitLinked([[a, b], [a, c]]);
    const views = await waitOneLayout([a, b, c], 2);
    for (const view of views) {
      assert.equal(view.replicas, 2);
      assert.equal(view.mismatch, '');
    }
    // Every owner up in every node's view once the members meet (partitioned nodes meet the members they share partitions with).
    await waitFor(async () => (await Promise.all([a, b, c].map(partitionedOf))).every((v) => v.partitionsUnderReplicated === 0), {
      deadlineMs: 20_000,
      what: 'no partition under-replicated',
    });
    const version = views[0]!.layoutVersion;

    // Persisted: a restarted node has the layout before any peer tells it.
    await stopCleanly(b);
    const b2 = await b.respawn();
    const restored = await partitionedOf(b2);
    assert.equal(restored.layoutVersion, version, 'the restarted node restored its layout');
    assert.ok(restored.partitionsOwned > 0);
    await waitLinked([[a, b2]]);

    // A node with another K: refuses to serve, says why, and counts it.
    const d = await startPeer('D', { bootstrap: [a], args: partitioned(3) });
    await waitFor(async () => (await partitionedOf(d)).mismatch !== '', { deadlineMs: 20_000, what: 'D to report the replicas mismatch' });
    const put = await runCli(['put', 'k', 'v'], { socket: d.socket });
    assert.equal(put.code, 4, put.stderr);
    assert.match(put.stderr, /^ckv: .*--replicas 3.*--replicas 2/);
    assert.equal(put.stderr.trim().split('\n').length, 1, 'one line');
    const get = await runCli(['get', 'k'], { socket: d.socket });
    assert.equal(get.code, 4, get.stderr);
    assert.ok(Number((await d.status()).counters.layout_replicas_mismatch) >= 1);
    assert.match((await runCli(['status'], { socket: d.socket })).stdout.toString('utf8'), /error +this node is configured with --replicas 3/);
    // The others are not disturbed: D did not join their layout.
    assert.equal((await partitionedOf(a)).layoutVersion, version);

    // Its data directory now holds their layout: a start with --replicas 3 is refused.
    await stopCleanly(d);
    const refused = await runCli(['node', 'start', '--data-dir', d.dataDir, '--no-mdns', '--http', 'off', '--listen', '/ip4/127.0.0.1/tcp/0', '--replicas', '3'], {
      socket: `${d.dataDir}/again.sock`,
    });
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, /--replicas 3.*--replicas 2/);

    await Promise.all([stopCleanly(b2), stopCleanly(c)]);
    await stopCleanly(a);
  });

  it('a full-replication node next to a partitioned cluster refuses to serve', async () => {
    const a = await startPeer('A', { args: partitioned(1) });
    await waitFor(async () => (await partitionedOf(a)).layoutVersion === '1', { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const full = await startNode({ name: 'F', bootstrap: [a], args: ['--sync-interval-ms', '200'], readyDeadlineMs: 30_000 });
    await waitFor(async () => Number((await full.status()).counters.layout_replicas_mismatch) >= 1, { deadlineMs: 20_000, what: 'F to hear the layout' });
    const put = await runCli(['put', 'k', 'v'], { socket: full.socket });
    assert.equal(put.code, 4, put.stderr);
    assert.match(put.stderr, /--replicas all.*--replicas 1/);
    assert.equal((await full.status()).partitioned, null, 'a full-replication node has no partitioned status');
    await stopCleanly(full);
    await stopCleanly(a);
  });
});
