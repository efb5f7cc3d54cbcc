/**
 * Partitioned writes and reads on real processes (real libp2p, LevelDB, gRPC, the CLI):
 * 4 owning nodes with --replicas 3 and a gateway (--weight 0, owns nothing).
 *
 * A cluster forms through a change: the first node makes layout 1 of itself alone, then the
 * others join (layout 2), pull their partitions and layout 1 retires; both tests start once
 * that is done (writes during a change, to the owners of both layouts with a quorum in each,
 * are covered by test/unit/write-quorum.test.ts). The first: a put on the gateway reaches
 * exactly the key's owners (ckv haskey on every node: nothing is gossiped), its JSON lists the
 * owners and those that acked, `get` of one and of several keys returns the value from every
 * node, whereis names the partition and the owners (up or down) and --probe their versions;
 * with one owner down a quorum write succeeds and `--consistency all` exits 3 naming the acks;
 * with every read owner down, `get` exits 3.
 *
 * The second: a quorum read with one owner down succeeds, `--from all` exits 3 and succeeds with --allow-partial (its JSON says which owner
 * did not answer), and read repair: an owner that missed a write (down while it was made; the
 * node that coordinated it, which keeps it for the owner, stopped), restarted with another
 * --merkle-depth so that no anti-entropy session can repair it, gets the newest version from
 * a `get --from all --allow-partial` (`read_repair`).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fetchWithin, counter, runCli, runCliOk, stopCleanly, waitFor, waitMesh, type NodeProcess } from '../../harness/testing.js';
import { sessionsInitiated, startPeer } from '../helpers/cluster.js';
import { partitionedOf, waitOneLayout } from '../helpers/partitioned.js';

const k = 3;
const args = (extra: string[] = []): string[] => ['--sync-interval-ms', '200', '--replicas', String(k), ...extra];

interface WhereIs {
  partition: number;
  layouts: { version: number; owners: { nodeId: string; up: boolean }[] }[];
  readOwners: string[];
  holders: { nodeId: string; version?: string }[];
}

async function whereIs(node: NodeProcess, key: string, probe = false): Promise<WhereIs> {
  const out = await runCliOk(['whereis', key, '--json', ...(probe ? ['--probe'] : [])], { socket: node.socket });
  return JSON.parse(out.stdout.toString('utf8')) as WhereIs;
}

async function nodeIdOf(node: NodeProcess): Promise<string> {
  return (await node.status()).nodeId;
}

async function hasKey(node: NodeProcess, key: string): Promise<{ code: number | null; version?: string }> {
  const result = await runCli(['haskey', key, '--json'], { socket: node.socket });
  const parsed = JSON.parse(result.stdout.toString('utf8') || '{}') as { version?: string };
  return { code: result.code, ...(parsed.version ? { version: parsed.version } : {}) };
}

async function hasKeys(nodes: NodeProcess[], key: string): Promise<Map<string, number | null>> {
  const held = new Map<string, number | null>();
  for (const node of nodes) held.set(await nodeIdOf(node), (await hasKey(node, key)).code);
  return held;
}

/** The write owners of a key: its owners in every active layout. */
function writeOwnersOf(where: WhereIs): string[] {
  return [...new Set(where.layouts.flatMap((l) => l.owners.map((o) => o.nodeId)))].sort();
}

describe('partitioned writes and reads (4 nodes, --replicas 3, and a gateway)', () => {
  it('a write reaches exactly its owners, from a gateway; reads from every node; one owner down', async () => {
    const a = await startPeer('A', { args: args() });
    await waitFor(async () => (await partitionedOf(a)).layoutVersion === '1', { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const [b, c, d, g] = await Promise.all([
      startPeer('B', { bootstrap: [a], args: args() }),
      startPeer('C', { bootstrap: [a], args: args() }),
      startPeer('D', { bootstrap: [a], args: args() }),
      startPeer('G', { bootstrap: [a], args: args(['--weight', '0', '--http', '127.0.0.1:0']) }),
    ]);
    const nodes = [a, b, c, d, g];
    await waitMesh(nodes);
    // One complete layout (the new owners pulled their partitions, layout 1 retired): the
    // owners do not change under the test (a retired owner purges what it no longer owns).
    await waitOneLayout(nodes, { replicas: k, gateways: [g], deadlineMs: 40_000 });
    assert.equal((await partitionedOf(g)).partitionsOwned, 0, 'the gateway owns nothing');
    const gId = await nodeIdOf(g);

    // A key D owns: its write owners are K = 3 nodes of the newest layout (and A while layout 1 is active).
    const dId = await nodeIdOf(d);
    let key = '';
    let where: WhereIs | undefined;
    for (let i = 0; i < 100 && key === ''; i++) {
      const candidate = await whereIs(g, `key-${i}`);
      const newest = candidate.layouts.at(-1)!;
      assert.equal(newest.owners.length, k, `K = ${k} owners in the newest layout`);
      if (newest.owners.some((o) => o.nodeId === dId) && newest.owners.every((o) => o.up)) {
        key = `key-${i}`;
        where = candidate;
      }
    }
    assert.ok(where, 'a key owned by D');
    assert.ok(where.partition >= 0 && where.partition < 256);
    const owners = writeOwnersOf(where);
    assert.ok(!owners.includes(gId));

    // 1. A put on the gateway: acked by every write owner, stored on exactly them.
    const put = await runCliOk(['put', key, 'one', '--consistency', 'all', '--json'], { socket: g.socket });
    const reply = JSON.parse(put.stdout.toString('utf8')) as { version: string; owners: string[]; acked: string[] };
    assert.deepEqual([...reply.owners].sort(), owners);
    assert.deepEqual([...reply.acked].sort(), owners);
    for (const [nodeId, code] of await hasKeys(nodes, key)) assert.equal(code, owners.includes(nodeId) ? 0 : 1, `haskey on ${nodeId}`);
    // Not gossiped, not synced: after a few more anti-entropy sessions the others still lack it.
    const sessionsBefore = sessionsInitiated(await b.status());
    await waitFor(async () => sessionsInitiated(await b.status()) >= sessionsBefore + 3, { deadlineMs: 15_000, what: 'three more sessions started by B' });
    for (const [nodeId, code] of await hasKeys(nodes, key)) assert.equal(code, owners.includes(nodeId) ? 0 : 1, `haskey on ${nodeId}, later`);
    assert.ok(counter(await g.status(), 'coordinated_writes_acked') >= 1);

    // 2. get from every node; whereis --probe gives each owner's version.
    for (const node of nodes) {
      const got = await runCliOk(['get', key], { socket: node.socket });
      assert.equal(got.stdout.toString('utf8'), 'one', `get on ${node.name}`);
    }
    // Several keys: each read from its owners (the gateway holds none).
    assert.equal((await runCliOk(['get', key, key, '--from', 'one'], { socket: g.socket })).stdout.toString('utf8'), `${key}\none\n${key}\none\n`);
    const json = JSON.parse((await runCliOk(['get', key, '--json'], { socket: g.socket })).stdout.toString('utf8')) as {
      value: string;
      from: string;
      answers: { nodeId: string; version?: string }[];
    };
    assert.equal(json.value, 'one');
    assert.equal(json.from, 'one', 'a non-owner reads from one owner by default');
    assert.ok(json.answers.some((x) => x.version === reply.version));
    const probed = await whereIs(b, key, true);
    assert.deepEqual(probed.holders.map((h) => h.nodeId).sort(), owners);
    assert.ok(probed.holders.every((h) => h.version === reply.version));
    const text = (await runCliOk(['whereis', key], { socket: g.socket })).stdout.toString('utf8');
    assert.match(text, new RegExp(`^partition ${where.partition}\n`));
    assert.match(text, new RegExp(`layout \\d+: .*${dId} \\(up\\)`));

    // HTTP on the gateway: PUT ?consistency= replies with owners and acked, GET ?from= reads the owners.
    const base = (await g.status()).httpUrl;
    const httpPut = await fetchWithin(`${base}kv/${encodeURIComponent(key)}?consistency=all`, { method: 'PUT', body: 'http' });
    assert.equal(httpPut.status, 200);
    const httpReply = (await httpPut.json()) as { version: string; owners: string[]; acked: string[] };
    assert.deepEqual([...httpReply.owners].sort(), owners);
    assert.deepEqual([...httpReply.acked].sort(), owners);
    const httpGet = await fetchWithin(`${base}kv/${encodeURIComponent(key)}?from=all`);
    assert.equal(httpGet.status, 200);
    assert.equal(await httpGet.text(), 'http');
    assert.deepEqual(httpGet.headers.get('x-ckv-answered')?.split(',').sort(), owners);
    assert.equal((await fetchWithin(`${base}kv/${encodeURIComponent(key)}?from=most`)).status, 400);

    // 3. D down: a quorum write still succeeds (acked by the others), an all-write exits 3.
    await stopCleanly(d);
    await waitFor(async () => !(await whereIs(g, key)).layouts.at(-1)!.owners.find((o) => o.nodeId === dId)!.up, {
      deadlineMs: 10_000,
      what: 'the gateway to see D down',
    });
    assert.match((await runCliOk(['whereis', key], { socket: g.socket })).stdout.toString('utf8'), new RegExp(`${dId} \\(down\\)`));
    const two = JSON.parse((await runCliOk(['put', key, 'two', '--json'], { socket: g.socket })).stdout.toString('utf8')) as { acked: string[] };
    assert.deepEqual([...two.acked].sort(), owners.filter((o) => o !== dId));
    const putAll = await runCli(['put', key, 'three', '--consistency', 'all'], { socket: g.socket });
    assert.equal(putAll.code, 3, putAll.stderr);
    assert.match(putAll.stderr, new RegExp(`acknowledged by ${owners.length - 1} of ${owners.length} owners; consistency all needs`));
    assert.match(putAll.stderr, /may be stored on the owners that acked/);
    assert.equal(putAll.stderr.trim().split('\n').length, 1, 'one line');
    // The refused all-write is on the owners that acked: a read sees it.
    assert.equal((await runCliOk(['get', key], { socket: g.socket })).stdout.toString('utf8'), 'three');

    // 4. Every read owner down: a read exits 3, saying no owner answered.
    const readOwners = (await whereIs(g, key)).readOwners;
    const readers = nodes.filter((n) => n !== d);
    const stopped: NodeProcess[] = [];
    for (const node of readers) if (readOwners.includes(await nodeIdOf(node))) stopped.push(node);
    await Promise.all(stopped.map((n) => stopCleanly(n)));
    const get = await runCli(['get', key], { socket: g.socket });
    assert.equal(get.code, 3, get.stderr);
    assert.match(get.stderr, new RegExp(`0 of ${readOwners.length} owners of "${key}" answered; --from one asks 1`));

    await Promise.all(readers.filter((n) => !stopped.includes(n)).map((n) => stopCleanly(n)));
  });

  it('once the layout is complete: quorum reads with one owner down, --from all, read repair', async () => {
    const a = await startPeer('A', { args: args() });
    await waitFor(async () => (await partitionedOf(a)).layoutVersion === '1', { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const [b, c, d] = await Promise.all([
      startPeer('B', { bootstrap: [a], args: args() }),
      startPeer('C', { bootstrap: [a], args: args() }),
      startPeer('D', { bootstrap: [a], args: args() }),
    ]);
    await waitMesh([a, b, c, d]);
    // Every one of the four owns partitions: a layout that has not yet taken D in would pass
    // otherwise, and D's join would then open a second layout under the test (CI saw that).
    await waitOneLayout([a, b, c, d], { replicas: k, everyOwns: true, deadlineMs: 40_000 });
    const dId = await nodeIdOf(d);
    const aId = await nodeIdOf(a);
    // A key D owns and A does not: A coordinates, reading from the 3 owners.
    let key = '';
    let owners: string[] = [];
    for (let i = 0; i < 200 && key === ''; i++) {
      const where = await whereIs(a, `key-${i}`);
      assert.equal(where.layouts.length, 1);
      const set = where.layouts[0]!.owners.map((o) => o.nodeId).sort();
      assert.equal(set.length, k);
      assert.deepEqual([...where.readOwners].sort(), set);
      if (!set.includes(aId) && set.includes(dId)) {
        key = `key-${i}`;
        owners = set;
      }
    }
    assert.notEqual(key, '', 'a key D owns and A does not');
    const one = JSON.parse((await runCliOk(['put', key, 'one', '--consistency', 'all', '--json'], { socket: a.socket })).stdout.toString('utf8')) as { version: string };
    const all = JSON.parse((await runCliOk(['get', key, '--from', 'all', '--json'], { socket: a.socket })).stdout.toString('utf8')) as {
      asked: number;
      answers: { nodeId: string; version?: string }[];
    };
    assert.equal(all.asked, k);
    assert.deepEqual(all.answers.map((x) => x.nodeId).sort(), owners);
    assert.ok(all.answers.every((x) => x.version === one.version), JSON.stringify(all));

    // D down: quorum reads work, all does not unless partial.
    await stopCleanly(d);
    await waitFor(async () => !(await whereIs(a, key)).layouts[0]!.owners.find((o) => o.nodeId === dId)!.up, { deadlineMs: 10_000, what: 'A to see D down' });
    // Written through B, which keeps it for D (delivery until acknowledged) and is stopped
    // below before D returns, so that D stays stale for the read repair at the end.
    await runCliOk(['put', key, 'two'], { socket: b.socket });
    assert.equal((await runCliOk(['get', key, '--from', 'quorum'], { socket: a.socket })).stdout.toString('utf8'), 'two');
    const refused = await runCli(['get', key, '--from', 'all'], { socket: a.socket });
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, new RegExp(`2 of 3 owners of "${key}" answered; --from all asks 3 .*${dId}: not up.*; use --allow-partial`));
    const partial = JSON.parse((await runCliOk(['get', key, '--from', 'all', '--allow-partial', '--json'], { socket: a.socket })).stdout.toString('utf8')) as {
      value: string;
      answers: { nodeId: string; error?: string }[];
    };
    assert.equal(partial.value, 'two');
    assert.match(partial.answers.find((x) => x.nodeId === dId)?.error ?? '', /not up/);

    // Read repair: B, which holds the write for D, stops; D comes back with another Merkle
    // depth, so no anti-entropy session can bring it the write: only a read can.
    assert.equal(Number((await b.status()).delivery?.pendingRows ?? 0), 1, 'B keeps the write for D');
    const newest = (await hasKey(a, key)).version ?? (await hasKey(c, key)).version;
    assert.ok(newest !== undefined && newest !== one.version);
    await stopCleanly(b);
    const d2 = await startPeer('D', { dataDir: d.dataDir, bootstrap: [a], args: args(['--merkle-depth', '5']) });
    await waitMesh([a, c, d2]);
    assert.equal((await hasKey(d2, key)).version, one.version, 'D still holds the first version');
    const repairsBefore = counter(await a.status(), 'read_repair');
    const read = JSON.parse((await runCliOk(['get', key, '--from', 'all', '--allow-partial', '--json'], { socket: a.socket })).stdout.toString('utf8')) as {
      value: string;
      answers: { nodeId: string; version?: string }[];
    };
    assert.equal(read.value, 'two');
    assert.equal(read.answers.find((x) => x.nodeId === dId)?.version, one.version, 'D answered with its stale version');
    await waitFor(async () => (await hasKey(d2, key)).version === newest, { deadlineMs: 10_000, what: 'read repair to bring D the newest version' });
    assert.ok(counter(await a.status(), 'read_repair') > repairsBefore);

    await Promise.all([stopCleanly(c), stopCleanly(d2)]);
    await stopCleanly(a);
  });
});
