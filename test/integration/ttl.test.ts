/**
 * Values that expire (`ckv put --ttl`, `PUT /kv/KEY?ttl=`), on real processes (libp2p,
 * LevelDB, gRPC, the CLI, HTTP):
 *
 * - 3 nodes, full replication: a value with a short TTL is readable on every node, then absent
 *   on every node (get, keys, HTTP) once expired; every node's sweeper turns it into a
 *   tombstone with the write's own version (identical everywhere: HasKey on each node shows the
 *   same version, the Merkle roots agree and `ckv sync` finds every peer in sync). A key
 *   re-written without TTL before the expiry keeps the re-write everywhere. A bad `--ttl` is a
 *   usage error (exit 2), a bad `?ttl=` a 400. A node down across the expiry sweeps the value
 *   after it starts (its start scan); PutMany carries a TTL per put.
 * - 3 nodes with `--replicas 2` (partitioned mode): the value is readable from every node, then
 *   absent from every node (get, keys) after its expiry.
 * - In both modes a watcher sees the expiry as a deletion at the write's version (origin
 *   'expired' when its own node swept it).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, fetchWithin, waitConverged, waitFor, withDeadline, type NodeProcess } from '../../harness/testing.js';
import type { ChangeMessage } from '../../src/control/proto.js';
import { cli, startPartitioned, waitSettled } from '../helpers/partitioned.js';

const ttlMs = 5_000;
const deadlineMs = 30_000;

async function valueOn(node: NodeProcess, key: string): Promise<string | undefined> {
  const result = await cli(node, ['get', key]);
  if (result.code === 1) return undefined;
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.toString('utf8');
}

async function keysOn(node: NodeProcess, prefix: string): Promise<string[]> {
  const result = await cli(node, ['keys', prefix]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.toString('utf8').split('\n').filter((line) => line !== '');
}

describe('TTL on 3 nodes (full replication)', () => {
  let cluster: Cluster;
  before(async () => {
    // Tombstone GC only when asked (`--gc-interval-ms 0`): the tests look at the tombstones the
    // sweepers made, which a collection run (every 10 s by default) could remove first on a
    // loaded machine (test/integration/gc.test.ts covers collecting them).
    cluster = await Cluster.start(3, { args: ['--sync-interval-ms', '200', '--http', '127.0.0.1:0', '--gc-interval-ms', '0'] });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('readable everywhere, then absent everywhere (get, keys, HTTP); swept into identical tombstones; a re-write survives', async () => {
    const nodes = cluster.nodes;
    const [a, b] = [nodes[0]!, nodes[1]!];
    // A watcher on the third node: it sees the expiry as a deletion when that node sweeps.
    const changes = nodes[2]!.client.watch('ttl/k')[Symbol.asyncIterator]();
    const expiry = (async (): Promise<ChangeMessage | undefined> => {
      for (;;) {
        const next = await changes.next();
        if (next.done) return undefined;
        if (next.value.key === 'ttl/k' && next.value.deleted) return next.value;
      }
    })();
    const put = await cli(a, ['put', 'ttl/k', 'short-lived', '--ttl', `${ttlMs}ms`, '--json']);
    assert.equal(put.code, 0, put.stderr);
    const putJson = JSON.parse(put.stdout.toString('utf8')) as { version: string; expiresAtMs: number };
    const wallMs = Number(putJson.version.split('.')[0]);
    assert.equal(putJson.expiresAtMs, wallMs + ttlMs);
    // Over HTTP on another node; and a key re-written without TTL before its expiry.
    const httpUrl = (await b.status()).httpUrl;
    const httpPut = await fetchWithin(`${httpUrl}kv/ttl/http?ttl=${ttlMs}ms`, { method: 'PUT', body: 'via http' });
    assert.equal(httpPut.status, 200, await httpPut.text());
    const httpGet = await fetchWithin(`${httpUrl}kv/ttl/http`);
    await httpGet.arrayBuffer();
    if (httpGet.status === 200) assert.match(httpGet.headers.get('x-ckv-expires-at-ms') ?? '', /^\d{13}$/);
    assert.equal((await cli(a, ['put', 'ttl/rewritten', 'first', '--ttl', `${ttlMs}ms`])).code, 0);
    assert.equal((await cli(b, ['put', 'ttl/rewritten', 'kept'])).code, 0);

    // Readable on every node before the expiry (3 s: time enough on a loaded machine? the
    // checks below only need it to have been seen once per node, or to have expired).
    for (const node of nodes) {
      const got = await cli(node, ['get', 'ttl/k', '--json']);
      const json = JSON.parse(got.stdout.toString('utf8')) as { found: boolean; expiresAtMs?: number };
      if (Date.now() < putJson.expiresAtMs - 500) {
        assert.equal(got.code, 0, got.stderr);
        assert.equal(json.found, true);
        assert.equal(json.expiresAtMs, putJson.expiresAtMs);
      }
    }

    // Absent everywhere once expired: get, keys, HTTP.
    await waitFor(async () => (await Promise.all(nodes.map((node) => valueOn(node, 'ttl/k')))).every((v) => v === undefined), {
      deadlineMs,
      what: 'ttl/k to read as absent on every node',
    });
    for (const node of nodes) {
      assert.equal(await valueOn(node, 'ttl/http'), undefined, `${node.name}: ttl/http`);
      assert.deepEqual(await keysOn(node, 'ttl/'), ['ttl/rewritten'], node.name);
      assert.equal(await valueOn(node, 'ttl/rewritten'), 'kept', `${node.name}: the re-write without TTL survives`);
      const httpGet = await fetchWithin(`${(await node.status()).httpUrl}kv/ttl/k`);
      assert.equal(httpGet.status, 404, `${node.name}: HTTP GET of an expired key`);
      await httpGet.arrayBuffer();
    }

    // Every node's sweeper made the tombstones: the same version everywhere, the write's own.
    await waitFor(async () => (await Promise.all(nodes.map((node) => node.status()))).every((s) => Number(s.counters.ttl_swept ?? 0) >= 2), {
      deadlineMs,
      what: 'every node to sweep both expired values',
    });
    const held = await Promise.all(nodes.map((node) => node.client.hasKey('ttl/k')));
    for (const holding of held) {
      assert.equal(holding.found, true);
      assert.equal(holding.deleted, true);
      assert.equal(holding.version?.text, putJson.version);
    }
    const expired = await withDeadline(expiry, deadlineMs, 'the watcher to see ttl/k expire');
    assert.equal(expired?.origin, 'expired');
    assert.equal(expired?.version?.text, putJson.version, "the expiry's tombstone has the write's version");
    await changes.return?.();
    await waitConverged(nodes, deadlineMs);
    for (const node of nodes) {
      const sync = await cli(node, ['sync', '--json']);
      assert.equal(sync.code, 0, sync.stderr);
      const steps = sync.stdout.toString('utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { phase: string; outcome: string });
      const outcomes = steps.filter((step) => step.phase !== 'started').map((step) => step.outcome);
      // 'skipped': that peer was syncing with us at that moment (its own session serves both).
      assert.ok(outcomes.length >= 2 && outcomes.every((o) => o === 'in-sync' || o === 'skipped') && outcomes.includes('in-sync'), `${node.name}: ${outcomes.join(', ')}`);
    }
  });

  it('a node stopped before the expiry and started after it sweeps the value it holds (its start scan)', async () => {
    const node = cluster.nodes[2]!;
    const put = await cli(node, ['put', 'ttl/restart', 'v', '--ttl', '2s', '--json']);
    assert.equal(put.code, 0, put.stderr);
    const { expiresAtMs } = JSON.parse(put.stdout.toString('utf8')) as { expiresAtMs: number };
    const restarted = await cluster.restart(node, async () => {
      await waitFor(() => Date.now() > expiresAtMs + 100, { deadlineMs, what: 'the expiry to pass while the node is down' });
    });
    assert.equal(await valueOn(restarted, 'ttl/restart'), undefined, 'expired on the restarted node');
    // Its peers' tombstone has the value's version: sync applies nothing, so its start scan
    // finds it and sweeps it (GC, which would remove it too, runs only when asked here).
    await waitFor(async () => Number((await restarted.status()).counters.ttl_swept ?? 0) >= 1, {
      deadlineMs,
      what: 'the restarted node to sweep ttl/restart',
    });
    await waitConverged(cluster.nodes, deadlineMs);
  });

  it('gRPC PutMany: each put its own TTL (Get shows it); one over the limit fails alone (INVALID_ARGUMENT)', async () => {
    const node = cluster.nodes[2]!;
    const reply = await node.client.putMany([
      { key: 'ttl/many/a', value: new TextEncoder().encode('a'), ttlMs: 3_600_000 },
      { key: 'ttl/many/b', value: new TextEncoder().encode('b') },
      { key: 'ttl/many/c', value: new TextEncoder().encode('c'), ttlMs: 366 * 24 * 3_600_000 },
    ]);
    const [a, b, c] = reply.results;
    assert.ok(a?.version && b?.version, JSON.stringify(reply.results));
    assert.equal(c?.code, 3, c?.error);
    assert.match(c?.error ?? '', /over the limit/);
    const wallMs = Number(BigInt(a.version.hlc) >> 16n);
    assert.equal((await node.client.get('ttl/many/a')).expiresAtMs, wallMs + 3_600_000);
    assert.equal((await node.client.get('ttl/many/b')).expiresAtMs, 0);
    assert.equal((await node.client.get('ttl/many/c')).found, false);
  });

  it('a bad --ttl is a usage error (exit 2); a bad ?ttl= a 400; nothing is written', async () => {
    const node = cluster.nodes[0]!;
    for (const ttl of ['30', '1w', '0s', '366d']) {
      const result = await cli(node, ['put', 'ttl/bad', 'x', '--ttl', ttl]);
      assert.equal(result.code, 2, `${ttl}: ${result.stderr}`);
      assert.match(result.stderr, /^ckv: --ttl: .+\n$/);
    }
    const response = await fetchWithin(`${(await node.status()).httpUrl}kv/ttl/bad?ttl=soon`, { method: 'PUT', body: 'x' });
    assert.equal(response.status, 400);
    await response.arrayBuffer();
    assert.equal(await valueOn(node, 'ttl/bad'), undefined);
  });
});

describe('TTL in partitioned mode (3 nodes, --replicas 2)', () => {
  it('readable from every node, then absent from every node (get, keys)', async () => {
    const cluster = await startPartitioned(3, { replicas: 2 });
    try {
      const nodes = cluster.nodes;
      await waitSettled(nodes, 60_000, 'the 3 nodes to agree on one layout', 1, 2);
      // A watcher sees the expiry once, from whichever node sweeps first (itself: 'expired'; an
      // owner it subscribed to: 'remote'), whether or not its node owns the key.
      const changes = nodes[1]!.client.watch('pttl/')[Symbol.asyncIterator]();
      const seen: ChangeMessage[] = [];
      const expiry = (async (): Promise<void> => {
        for (;;) {
          const next = await changes.next();
          if (next.done) return;
          seen.push(next.value);
          if (next.value.deleted) return;
        }
      })();
      const put = await cli(nodes[0]!, ['put', 'pttl/k', 'short-lived', '--ttl', `${ttlMs}ms`, '--json']);
      assert.equal(put.code, 0, put.stderr);
      const { expiresAtMs, version } = JSON.parse(put.stdout.toString('utf8')) as { expiresAtMs: number; version: string };
      for (const node of nodes) {
        const value = await valueOn(node, 'pttl/k');
        if (Date.now() < expiresAtMs - 500) assert.equal(value, 'short-lived', node.name);
      }
      await waitFor(async () => (await Promise.all(nodes.map((node) => valueOn(node, 'pttl/k')))).every((v) => v === undefined), {
        deadlineMs,
        what: 'pttl/k to read as absent on every node',
      });
      for (const node of nodes) assert.deepEqual(await keysOn(node, 'pttl/'), [], node.name);
      await withDeadline(expiry, deadlineMs, 'the partitioned watcher to see pttl/k expire');
      const expired = seen.at(-1);
      assert.ok(expired?.deleted && expired.key === 'pttl/k', JSON.stringify(seen));
      assert.match(expired.origin, /^(expired|remote)$/);
      assert.equal(expired.version?.text, version);
      await changes.return?.();
    } finally {
      await cluster.stop();
    }
  });
});
