/**
 * The status page's console endpoints against real `ckv node start` processes (A with --http;
 * B and C bootstrapped to A), plain fetch:
 * - `GET /api/cluster`: a row per node; every member's report carries its own view of the
 *   others (the matrix): all up and in sync; after C is frozen (SIGSTOP) its row says it did
 *   not answer while B's and A's views still list it; a burst of requests costs one round;
 * - `GET /api/events?after=SEQ`: members up at start, C's "member down" after it is killed,
 *   only newer events after a seq, bad parameters are 400;
 * - `GET /kv?values=1`: previews (text cut to 200 bytes, binary named), version times,
 *   tombstones only with deleted=1, paging with after=, the lower limit with values.
 * And a hostile member (a raw libp2p node that names a node id and speaks the sync and query
 * protocols, but answers the health query with a malformed reply and drops sync streams): the
 * node counts the reply (query_rejected), shows that member as not answering, records the
 * failed sessions in its timeline, and keeps serving.
 * No fixed sleeps: every wait polls with a deadline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { agentString } from '../../src/net/cluster.js';
import { FramedStream } from '../../src/net/framed-stream.js';
import { createNetwork, type CkvLibp2p } from '../../src/net/libp2p.js';
import { gossipTopic } from '../../src/net/gossip.js';
import { queryProtocolId } from '../../src/net/query-protocol.js';
import { syncProtocolId } from '../../src/net/sync-protocol.js';
import { fetchWithin, counter, startNode, waitFor, type NodeProcess } from '../../harness/testing.js';

interface ClusterView {
  timeMs: number;
  healthy: boolean;
  problems: string[];
  nodes: {
    nodeId: string;
    peerId: string;
    self: boolean;
    state: string;
    inSync: boolean;
    answered: boolean;
    error: string;
    report: null | { keys: number; merkleRoot: string; peers: { nodeId: string; state: string; inSync: boolean; lastSyncMs: number; clockOffsetMs: number }[] };
  }[];
}

interface EventsReply {
  lastSeq: number;
  dropped: number;
  events: { seq: number; timeMs: number; kind: string; nodeId: string; peerId: string; detail: string }[];
}

async function getJson<T>(url: string): Promise<T> {
  const reply = await fetchWithin(url, {}, 10_000);
  const text = await reply.text();
  assert.equal(reply.status, 200, `${url}: ${reply.status} ${text}`);
  return JSON.parse(text) as T;
}

async function libp2pAddress(node: NodeProcess): Promise<string> {
  const status = await node.status();
  const address = status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
  assert.ok(address, `no 127.0.0.1 address in ${status.listenAddresses.join(' ')}`);
  return address;
}

describe('status page console endpoints, 3 nodes', { timeout: 120_000 }, () => {
  let a: NodeProcess;
  let b: NodeProcess;
  let c: NodeProcess;
  let base = '';
  const ids: Record<string, string> = {};

  before(async () => {
    // Tombstone GC only when asked: the listing tests look at tombstones.
    const fast = ['--sync-interval-ms', '200', '--gc-interval-ms', '0'];
    a = await startNode({ name: 'A', args: ['--http', '127.0.0.1:0', ...fast] });
    base = (await a.status()).httpUrl;
    const boot = await libp2pAddress(a);
    [b, c] = await Promise.all(['B', 'C'].map((name) => startNode({ name, args: ['--bootstrap', boot, ...fast] }))) as [NodeProcess, NodeProcess];
    for (const [name, node] of Object.entries({ A: a, B: b, C: c })) ids[name] = (await node.status()).nodeId;
  });

  after(async () => {
    for (const node of [c, b, a]) {
      if (node?.frozen) node.thaw();
    }
    await Promise.all([a, b, c].map((node) => node?.stop().catch(() => undefined)));
  });

  it('GET /api/cluster: every node answers with its view of every other, all up and in sync', async () => {
    let view: ClusterView | undefined;
    await waitFor(
      async () => {
        view = await getJson<ClusterView>(`${base}api/cluster`);
        if (view.nodes.length !== 3 || !view.nodes.every((n) => n.answered && n.inSync)) return false;
        // Each report names the two others, up and in sync.
        return view.nodes.every((n) => {
          const others = Object.values(ids).filter((id) => id !== n.nodeId);
          return others.every((id) => n.report!.peers.some((p) => p.nodeId === id && p.state === 'up' && p.inSync));
        });
      },
      { deadlineMs: 30_000, intervalMs: 300, what: `every node up, answering and in sync with every other (last: ${JSON.stringify(view)})` },
    );
    assert.equal(view!.healthy, true, view!.problems.join('; '));
    const self = view!.nodes.find((n) => n.self)!;
    assert.equal(self.nodeId, ids.A);
    assert.equal(self.state, 'self');
    const roots = new Set(view!.nodes.map((n) => n.report!.merkleRoot));
    assert.equal(roots.size, 1, 'one Merkle root');
  });

  it('a burst of /api/cluster requests costs one query round (reused for 1 s)', async () => {
    // Each round reads the node's status once: its time tells the rounds apart.
    const replies = await Promise.all(Array.from({ length: 20 }, () => getJson<ClusterView>(`${base}api/cluster`)));
    const rounds = new Set(replies.map((r) => r.timeMs)).size;
    assert.ok(rounds <= 2, `20 requests at once gave ${rounds} rounds`);
  });

  it('GET /kv?values=1: previews, version times, tombstones on request, paging', async () => {
    const put = async (key: string, body: string | Uint8Array): Promise<void> => {
      const reply = await fetchWithin(`${base}kv/${encodeURIComponent(key)}`, { method: 'PUT', body });
      assert.equal(reply.status, 200, await reply.text());
    };
    await put('browse/01-text', 'hello, console');
    await put('browse/02-long', 'x'.repeat(1000));
    await put('browse/03-binary', new Uint8Array([0, 1, 2, 255, 254]));
    await put('browse/04-gone', 'soon deleted');
    assert.equal((await fetchWithin(`${base}kv/browse%2F04-gone`, { method: 'DELETE' })).status, 200);
    for (let i = 0; i < 5; i++) await put(`browse/1${i}-page`, `v${i}`);

    type Item = { key: string; version: string; deleted?: boolean; timeMs: number; bytes: number; preview: string; binary: boolean; truncated: boolean };
    const items = await getJson<Item[]>(`${base}kv?prefix=browse/0&values=1`);
    assert.deepEqual(items.map((i) => i.key), ['browse/01-text', 'browse/02-long', 'browse/03-binary'], 'no tombstone unless asked');
    const [text, long, binary] = items as [Item, Item, Item];
    assert.equal(text.preview, 'hello, console');
    assert.equal(text.bytes, 14);
    assert.equal((text as Item & { time: string }).time, new Date(text.timeMs).toISOString());
    assert.ok(Math.abs(text.timeMs - Date.now()) < 60_000 && text.version.startsWith(`${text.timeMs}.`), `timeMs ${text.timeMs} is the version's wall time (${text.version})`);
    assert.equal(long.preview.length, 200);
    assert.equal(long.truncated, true);
    assert.equal(long.bytes, 1000);
    assert.equal(binary.binary, true);
    assert.equal(binary.preview, '');
    assert.equal(binary.bytes, 5);

    const withDeleted = await getJson<Item[]>(`${base}kv?prefix=browse/0&values=1&deleted=1`);
    const gone = withDeleted.find((i) => i.key === 'browse/04-gone');
    assert.ok(gone?.deleted, `tombstone listed with deleted=1: ${JSON.stringify(withDeleted)}`);
    assert.equal(gone.bytes, 0);

    const first = await fetchWithin(`${base}kv?prefix=browse/1&values=1&limit=3`);
    assert.equal(first.headers.get('x-ckv-truncated'), 'true');
    const page1 = (await first.json()) as Item[];
    const page2 = await getJson<Item[]>(`${base}kv?prefix=browse/1&values=1&limit=3&after=${encodeURIComponent(page1.at(-1)!.key)}`);
    assert.deepEqual([...page1, ...page2].map((i) => i.key), [0, 1, 2, 3, 4].map((i) => `browse/1${i}-page`));

    const tooMany = await fetchWithin(`${base}kv?values=1&limit=5000`);
    assert.equal(tooMany.status, 400, 'values=1 allows at most 1000 a page');
    await tooMany.body?.cancel();
    const plain = await fetchWithin(`${base}kv?limit=5000`);
    assert.equal(plain.status, 200);
    await plain.body?.cancel();
  });

  it('C frozen: /api/cluster says it does not answer, the others still list it', async () => {
    c.freeze();
    try {
      let view: ClusterView | undefined;
      await waitFor(
        async () => {
          view = await getJson<ClusterView>(`${base}api/cluster`);
          const row = view.nodes.find((n) => n.nodeId === ids.C);
          return row !== undefined && !row.answered;
        },
        { deadlineMs: 20_000, intervalMs: 300, what: `C's row to show no answer (last: ${JSON.stringify(view)})` },
      );
      const row = view!.nodes.find((n) => n.nodeId === ids.C)!;
      assert.equal(row.report, null);
      assert.ok(row.state !== 'up' || row.error !== '', `an error or a state says why: ${JSON.stringify(row)}`);
      assert.equal(view!.healthy, false);
      const bRow = view!.nodes.find((n) => n.nodeId === ids.B)!;
      assert.ok(bRow.answered, `B still answers: ${JSON.stringify(bRow)}`);
    } finally {
      c.thaw();
    }
  });

  it('GET /api/events: members up, then C killed is "member down"; after=SEQ gives only newer ones', async () => {
    const start = await getJson<EventsReply>(`${base}api/events`);
    assert.ok(start.events.some((e) => e.kind === 'node started'), JSON.stringify(start.events));
    for (const name of ['B', 'C']) assert.ok(start.events.some((e) => e.kind === 'member up' && e.nodeId === ids[name]), `member up for ${name}: ${JSON.stringify(start.events)}`);
    assert.ok(start.events.every((e) => (e as typeof e & { time: string }).time === new Date(e.timeMs).toISOString()), 'each event has its ISO time');
    const seqs = start.events.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'oldest first');
    assert.equal(start.lastSeq, seqs.at(-1));

    await c.kill();
    let reply: EventsReply | undefined;
    await waitFor(
      async () => {
        reply = await getJson<EventsReply>(`${base}api/events?after=${start.lastSeq}`);
        return reply.events.some((e) => e.kind === 'member down' && e.nodeId === ids.C);
      },
      { deadlineMs: 15_000, intervalMs: 200, what: `a "member down" event for C (last: ${JSON.stringify(reply)})` },
    );
    assert.ok(reply!.events.every((e) => e.seq > start.lastSeq), 'only events after the seq asked');
    const limited = await getJson<EventsReply>(`${base}api/events?after=0&limit=1`);
    assert.equal(limited.events.length, 1);
    for (const bad of ['after=-1', 'after=x', 'limit=0', 'limit=501']) {
      const r = await fetchWithin(`${base}api/events?${bad}`);
      assert.equal(r.status, 400, bad);
      await r.body?.cancel();
    }
  });
});

describe('a member whose health reply is malformed', { timeout: 60_000 }, () => {
  let node: NodeProcess;
  let raw: CkvLibp2p | undefined;
  const fakeNodeId = 'feedfacecafe0001';

  before(async () => {
    node = await startNode({ name: 'target', args: ['--http', '127.0.0.1:0', '--sync-interval-ms', '200', '--gc-interval-ms', '0'] });
    raw = await createNetwork({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      mdns: false,
      gossipTopic: gossipTopic('default'),
      userAgent: agentString(fakeNodeId, 1),
    });
    // Speaks the sync protocol (so identify makes it a member) but drops every session.
    await raw.handle(syncProtocolId('default'), (stream) => stream.abort(new Error('hostile peer drops sync')));
    // Answers the health query with a reply that does not decode: version 1, then garbage.
    await raw.handle(queryProtocolId('default'), (stream) => {
      void (async () => {
        const framed = new FramedStream(stream, { frameBytesMax: 4096, signal: AbortSignal.timeout(5000) });
        try {
          await framed.read();
          await framed.write(new Uint8Array([1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]));
          await framed.close();
        } catch (error) {
          framed.abort(error as Error);
        }
      })();
    });
    await raw.start();
  });

  after(async () => {
    await Promise.resolve(raw?.stop()).catch(() => undefined);
    await node?.stop().catch(() => undefined);
  });

  it('is counted (query_rejected), shown as not answering, its failed syncs in the timeline', async () => {
    const status = await node.status();
    const base = status.httpUrl;
    const address = status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
    assert.ok(address);
    await raw!.dial(multiaddr(address));
    let view: ClusterView | undefined;
    await waitFor(
      async () => {
        view = await getJson<ClusterView>(`${base}api/cluster`);
        const row = view.nodes.find((n) => n.nodeId === fakeNodeId);
        return row !== undefined && row.state === 'up' && !row.answered && /malformed/.test(row.error);
      },
      { deadlineMs: 20_000, intervalMs: 200, what: `the hostile member's row: up, not answering, malformed (last: ${JSON.stringify(view)})` },
    );
    await waitFor(async () => counter(await node.status(), 'query_rejected') > 0, { deadlineMs: 5000, intervalMs: 100, what: 'query_rejected counted' });
    let events: EventsReply | undefined;
    await waitFor(
      async () => {
        events = await getJson<EventsReply>(`${base}api/events`);
        return events.events.some((e) => e.kind === 'member up' && e.nodeId === fakeNodeId) && events.events.some((e) => e.kind === 'sync failed' && e.nodeId === fakeNodeId && e.detail !== '');
      },
      { deadlineMs: 15_000, intervalMs: 200, what: `member up and sync failed (with why) for the hostile member (last: ${JSON.stringify(events?.events.slice(-5))})` },
    );
    // Still serving.
    const put = await fetchWithin(`${base}kv/still-here`, { method: 'PUT', body: 'yes' });
    assert.equal(put.status, 200, await put.text());
    assert.equal((await getJson<ClusterView>(`${base}api/cluster`)).nodes.find((n) => n.self)?.answered, true);
  });
});
