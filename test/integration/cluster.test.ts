/**
 * Real ckv clusters on 127.0.0.1: `ckv node start` processes joined by --bootstrap, writes
 * through the control API, convergence observed through `status` (key count and Merkle root)
 * only. Covers gossip replication of puts and deletes, watch, anti-entropy alone (gossip off),
 * a rejoining node catching up by itself, a new node joining a 100k-key cluster, identity
 * across restarts, cluster names and cluster keys keeping clusters apart, and concurrent
 * writers converging on one winner per key.
 *
 * Measurements (console.log) use this raw size of an entry: key bytes + value bytes + 26
 * (version, flags and length overhead), summed over the entries a node missed; they also
 * give the exact size of the entries' wire encoding (key + value + 19 bytes for these keys).
 * Every wait polls a condition until a deadline; processes are cleaned up by the helpers.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VersionMessage } from '../../src/control/proto.js';
import { counter, isUpAt, runCliOk, stopCleanly, tempDir, waitConverged, waitFor, waitMesh, waitStar, type NodeProcess } from '../../harness/testing.js';
import { collectWatch, formatBytes, hasTcpConnectionTo, pad, putMany, scanAll, sessionsInitiated, startPeer, tcpPort } from '../helpers/cluster.js';

// Tombstone GC only when asked: tests look for a delete's tombstone on every node, which a
// cluster whose members all hold it collects at its next GC run (every 10 s by default).
const fast = ['--sync-interval-ms', '200', '--gc-interval-ms', '0'];
const value100 = (i: number): Uint8Array => Buffer.from(`v${pad(i)}`.padEnd(100, '.'));
const text = (s: string): Uint8Array => Buffer.from(s, 'utf8');

/** One line of measurements, greppable: `[measure] name: k=v ...`. */
function measure(name: string, fields: Record<string, string | number>): void {
  console.log(`[measure] ${name}: ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ')}`);
}

/** Sum of `received` over the node's `sync` log lines (sessions that moved entries). */
function syncLog(peer: NodeProcess): { sessions: number; received: number } {
  let sessions = 0;
  let received = 0;
  for (const line of peer.stderrText().split('\n')) {
    const match = / info sync .*received=(\d+)/.exec(line);
    if (!match) continue;
    sessions++;
    received += Number(match[1]);
  }
  return { sessions, received };
}

/** Last-writer-wins order of versions as the API reports them: HLC, then node id. */
function compareVersionMessages(x: VersionMessage, y: VersionMessage): number {
  const [hx, hy] = [BigInt(x.hlc), BigInt(y.hlc)];
  if (hx !== hy) return hx < hy ? -1 : 1;
  return x.node === y.node ? 0 : x.node < y.node ? -1 : 1;
}

async function getText(peer: NodeProcess, key: string): Promise<string | undefined> {
  const reply = await peer.client.get(key);
  return reply.found ? reply.value.toString('utf8') : undefined;
}

describe('three nodes, B and C bootstrapped to A', () => {
  let a: NodeProcess;
  let b: NodeProcess;
  let c: NodeProcess;

  before(async () => {
    a = await startPeer('A', { args: fast });
    [b, c] = await Promise.all([startPeer('B', { bootstrap: [a], args: fast }), startPeer('C', { bootstrap: [a], args: fast })]);
    // Bootstrap makes a star: B and C connect to A only (nothing makes them dial each other).
    await waitStar(a, [b, c]);
  });

  it('replicates a put and a delete from A to B and C; watch on C sees them', async () => {
    const watch = collectWatch(c.client, 't1/');
    const changes = watch.changes;
    try {
      // The watch is live once it reports a local write on C.
      await c.client.put('t1/marker', text('marker'));
      await waitFor(() => changes.some((ch) => ch.key === 't1/marker'), { deadlineMs: 10_000, what: 'the watch on C to be live' });

      const put = await a.client.put('t1/greeting', text('hello from A'));
      for (const peer of [b, c]) {
        await waitFor(async () => (await getText(peer, 't1/greeting')) === 'hello from A', {
          deadlineMs: 10_000,
          what: `the put on A to reach ${peer.name}`,
        });
      }
      // Keys that begin with U+FEFF arrive as they were written (a UTF-8 decoder drops a
      // leading one as a byte-order mark unless told not to: they once arrived without it).
      for (const key of ['\uFEFF', '\uFEFFt1/bom']) {
        await a.client.put(key, text(`value of ${JSON.stringify(key)}`));
        for (const peer of [b, c]) {
          await waitFor(async () => (await getText(peer, key)) === `value of ${JSON.stringify(key)}`, {
            deadlineMs: 10_000,
            what: `the put of ${JSON.stringify(key)} on A to reach ${peer.name} under the same key`,
          });
        }
      }
      await waitFor(() => changes.some((ch) => ch.key === 't1/greeting' && !ch.deleted), { deadlineMs: 10_000, what: "C's watch to see A's put" });
      const seen = changes.find((ch) => ch.key === 't1/greeting' && !ch.deleted)!;
      assert.equal(seen.origin, 'remote');
      assert.equal(seen.version?.text, put.version.text, 'the watch reports the version A issued');
      assert.equal(seen.valueBytes, String('hello from A'.length));

      const del = await a.client.delete('t1/greeting');
      for (const peer of [b, c]) {
        await waitFor(
          async () => {
            const reply = await peer.client.get('t1/greeting');
            return !reply.found && reply.deleted && reply.version?.text === del.version.text;
          },
          { deadlineMs: 10_000, what: `the delete on A to reach ${peer.name}` },
        );
      }
      await waitFor(() => changes.some((ch) => ch.key === 't1/greeting' && ch.deleted), { deadlineMs: 10_000, what: "C's watch to see A's delete" });
    } finally {
      await watch.stop();
    }
  });

  it('a stopped node catches up on rejoin by itself (no read or write on it)', async () => {
    const count = 10_000;
    const before = { peerId: c.peerId, nodeId: c.nodeId };
    const cDir = c.dataDir;
    await stopCleanly(c);
    await waitFor(async () => !(await isUpAt(a, before.peerId)), { deadlineMs: 10_000, what: 'A to see C gone' });

    const load = await putMany(a.client, count, (i) => `t3/${pad(i)}`, value100, 256);
    const aAfter = await a.status();
    const startedMs = Date.now();
    c = await startPeer('C', { bootstrap: [a], args: fast, dataDir: cDir });
    const readyMs = Date.now() - startedMs;
    assert.equal(c.peerId, before.peerId, 'same peer id after restart');
    assert.equal(c.nodeId, before.nodeId, 'same node id after restart');

    // Only status is asked of C: the catch-up must start by itself.
    const [aFinal, cFinal] = await waitConverged([a, c], 60_000);
    const convergedMs = Date.now() - startedMs;
    assert.equal(aFinal!.keyCount, aAfter.keyCount, 'A took no other writes meanwhile');
    assert.equal(cFinal!.merkleRoot, aFinal!.merkleRoot);
    assert.ok(Number(cFinal!.keyCount) >= count);
    measure('rejoin (10k keys missed)', {
      load_ms: load.ms,
      c_ready_ms: readyMs,
      c_start_to_equal_roots_ms: convergedMs,
      c_sync_bytes_in: counter(cFinal!, 'sync_bytes_in'),
      raw_missed_bytes: load.rawBytes,
      entry_encoding_bytes: load.wireBytes,
      c_sync_entries_applied: counter(cFinal!, 'sync_entries_applied'),
    });
    // One peer catches C up: the missing entries cross the wire once, not once per peer.
    // (2.0x the entries' encoding before, when A and B both pushed at once.)
    const bytesIn = counter(cFinal!, 'sync_bytes_in');
    assert.ok(bytesIn <= 1.5 * load.wireBytes, `C received ${bytesIn} sync bytes for ${load.wireBytes} bytes of missed entries`);
    // And the entries are really there (read after the fact).
    for (const i of [0, 4_999, count - 1]) assert.equal(await getText(c, `t3/${pad(i)}`), Buffer.from(value100(i)).toString());
    // Bootstrap makes a star: B and C connect to A only (nothing makes them dial each other).
    await waitStar(a, [b, c]);
  });

  it('three concurrent writers of the same 1,000 keys agree on one winner per key', async () => {
    const count = 1_000;
    const nodes = [a, b, c];
    const byNodeId = new Map(nodes.map((n) => [n.nodeId, n.name]));
    // What each node's put returned: the winner of a key must be the greatest of the three.
    const issued = new Map<string, VersionMessage[]>();
    const startedMs = Date.now();
    await Promise.all(
      nodes.map((n) =>
        putMany(n.client, count, (i) => `t8/${pad(i)}`, (i) => text(`${n.name}-${i}`), 128, {
          onReply: (i, version) => {
            const list = issued.get(`t8/${pad(i)}`) ?? [];
            list.push(version);
            issued.set(`t8/${pad(i)}`, list);
          },
        }),
      ),
    );
    const writtenMs = Date.now() - startedMs;
    await waitConverged(nodes, 30_000);
    const convergedMs = Date.now() - startedMs;

    const scans = await Promise.all(nodes.map((n) => scanAll(n.client, 't8/')));
    const summary = (e: { key: string; value: Buffer; version: { text: string } | null; deleted: boolean }): string =>
      `${e.key}=${e.value.toString('utf8')}@${e.version?.text}${e.deleted ? ' (deleted)' : ''}`;
    const reference = scans[0]!.map(summary);
    assert.equal(reference.length, count);
    for (const [i, scan] of scans.entries()) assert.deepEqual(scan.map(summary), reference, `${nodes[i]!.name} holds the same winners as A`);

    const wins = new Map<string, number>();
    for (const [i, entry] of scans[0]!.entries()) {
      assert.equal(entry.key, `t8/${pad(i)}`);
      const writer = byNodeId.get(entry.version!.node);
      assert.ok(writer, `the winner of ${entry.key} was written by one of the nodes`);
      assert.equal(entry.value.toString('utf8'), `${writer}-${i}`, `${entry.key}: the value belongs to the winning version`);
      const versions = issued.get(entry.key)!;
      assert.equal(versions.length, 3);
      const greatest = versions.reduce((x, y) => (compareVersionMessages(x, y) >= 0 ? x : y));
      assert.equal(entry.version!.text, greatest.text, `${entry.key}: the greatest of the three issued versions wins`);
      wins.set(writer, (wins.get(writer) ?? 0) + 1);
    }
    measure('concurrent writers (3 x 1000 keys)', {
      write_ms: writtenMs,
      converge_ms: convergedMs,
      ...Object.fromEntries([...wins].map(([name, n]) => [`wins_${name}`, n])),
    });
  });
});

describe('three nodes in a full mesh: a burst on one node', () => {
  // The writes of one commit travel as one gossip message, sent by the writer to every node
  // and not forwarded: every receiver gets each write exactly once, in far fewer messages
  // than writes. Sync runs rarely here (60 s), so the writes arrive by gossip.
  it('converges on all by gossip: each write received once per node, batched into few messages', async () => {
    const args = ['--sync-interval-ms', '60000'];
    const a = await startPeer('A5', { args });
    const b = await startPeer('B5', { bootstrap: [a], args });
    const c = await startPeer('C5', { bootstrap: [a, b], args });
    await waitMesh([a, b, c]);
    const before = await Promise.all([a, b, c].map((n) => n.status()));

    // Bulk (PutMany of 500) and unary puts (64 in flight), 6,000 writes in all.
    const bulk = 4000;
    const chunk = 500;
    await Promise.all(
      Array.from({ length: bulk / chunk }, (_, j) =>
        a.client.putMany(Array.from({ length: chunk }, (_, i) => ({ key: `t5/bulk/${pad(j * chunk + i)}`, value: value100(i) }))),
      ),
    );
    const unary = 2000;
    await putMany(a.client, unary, (i) => `t5/one/${pad(i)}`, value100, 64);
    const count = bulk + unary;
    const after = await waitConverged([a, b, c], 60_000);
    assert.equal(Number(after[0]!.keyCount) - Number(before[0]!.keyCount), count);

    const delta = (i: number, name: string): number => counter(after[i]!, name) - counter(before[i]!, name);
    for (const i of [1, 2]) {
      const messages = delta(i, 'gossip_write_messages_received');
      const repeats = delta(i, 'gossip_write_copies_received') - messages;
      measure(`burst of ${count} writes on A, received by ${['A', 'B', 'C'][i]}`, { messages, entries: delta(i, 'gossip_entries_received'), repeats, sync_entries: delta(i, 'sync_entries_applied') });
      assert.equal(delta(i, 'gossip_entries_received'), count, 'every write arrived by gossip, once');
      assert.ok(messages * 10 <= count, `${messages} messages for ${count} writes: batched`);
      // Before, gossipsub forwarded each write message from the other receiver too: two copies each.
      assert.equal(repeats, 0, 'no write message arrives twice');
    }
    assert.equal(delta(0, 'gossip_unsent_no_peers'), 0);
  });
});

describe('anti-entropy alone (gossip off)', () => {
  it('B converges with A through sync sessions after 10,000 writes on A', async () => {
    const args = ['--test-no-gossip', ...fast];
    const a = await startPeer('A2', { args });
    const b = await startPeer('B2', { bootstrap: [a], args });
    await waitMesh([a, b]);
    const [a0, b0] = await Promise.all([a.status(), b.status()]);

    const count = 10_000;
    const startedMs = Date.now();
    const load = await putMany(a.client, count, (i) => `t2/${pad(i)}`, value100, 256);
    const writtenMs = Date.now();
    const [aFinal, bFinal] = await waitConverged([a, b], 60_000);
    const doneMs = Date.now();

    assert.equal(bFinal!.keyCount, String(count));
    assert.equal(bFinal!.merkleRoot, aFinal!.merkleRoot);
    for (const s of [aFinal!, bFinal!]) {
      assert.equal(counter(s, 'gossip_received'), 0, 'no gossip with --test-no-gossip');
      assert.equal(counter(s, 'gossip_published'), 0, 'no gossip with --test-no-gossip');
    }
    assert.equal(counter(bFinal!, 'sync_entries_applied') - counter(b0!, 'sync_entries_applied'), count, 'every entry applied once');
    const sessions = sessionsInitiated(aFinal!) - sessionsInitiated(a0!) + sessionsInitiated(bFinal!) - sessionsInitiated(b0!);
    const bytesIn = counter(bFinal!, 'sync_bytes_in') - counter(b0!, 'sync_bytes_in');
    const moved = [syncLog(a), syncLog(b)];
    measure('anti-entropy only (10k keys, 100 B values, B connected while A writes)', {
      sessions_total: sessions,
      sessions_moving_entries: moved[0]!.sessions + moved[1]!.sessions,
      b_sync_bytes_in: bytesIn,
      raw_missed_bytes: load.rawBytes,
      ratio: (bytesIn / load.rawBytes).toFixed(3),
      entry_encoding_bytes: load.wireBytes,
      write_ms: writtenMs - startedMs,
      converge_after_last_write_ms: doneMs - writtenMs,
      converge_from_first_write_ms: doneMs - startedMs,
    });
    assert.ok(bytesIn < load.rawBytes * 2, `sync moved ${bytesIn} bytes for ${load.rawBytes} raw bytes`);
  });
});

describe('restart', () => {
  it('keeps data, peer id and node id', async () => {
    const first = await startPeer('P', { args: fast });
    await first.client.put('t5/kept', text('still here'));
    const s1 = await first.status();
    await stopCleanly(first);
    const second = await first.respawn();
    const s2 = await second.status();
    assert.equal(s2.peerId, s1.peerId);
    assert.equal(s2.nodeId, s1.nodeId);
    assert.equal(s2.keyCount, s1.keyCount);
    assert.equal(s2.merkleRoot, s1.merkleRoot);
    assert.equal(await getText(second, 't5/kept'), 'still here');
  });

  // A started without --bootstrap finds B and C again after a restart only through its list
  // of known peers (src/net/known-peers.ts): its new port is unknown to them. The list was
  // saved up to 2 s after a member came up, and a stop within that window dropped the save.
  it('a node started without --bootstrap and stopped right after its peers came up finds them again', async () => {
    const a = await startPeer('A6', { args: fast });
    const [b, c] = await Promise.all([startPeer('B6', { bootstrap: [a], args: fast }), startPeer('C6', { bootstrap: [a], args: fast })]);
    await waitMesh([a, b, c]);
    await stopCleanly(a);
    await b.client.put('t6/while-away', text('written while A was down'));
    const again = await a.respawn();
    await waitMesh([again, b, c]);
    await waitFor(async () => (await getText(again, 't6/while-away')) === 'written while A was down', { deadlineMs: 20_000, intervalMs: 100, what: 'A to receive the write it missed' });
  });
});

describe('separate clusters on one host', () => {
  it('--cluster red and --cluster blue, connected, never exchange writes or list each other', async () => {
    const red1 = await startPeer('red1', { args: ['--cluster', 'red', ...fast] });
    const [red2, blue] = await Promise.all([
      startPeer('red2', { bootstrap: [red1], args: ['--cluster', 'red', ...fast] }),
      startPeer('blue', { bootstrap: [red1], args: ['--cluster', 'blue', ...fast] }),
    ]);
    await waitMesh([red1, red2]);
    // blue really holds a transport connection to red1 (so "ignored" is not vacuous).
    await waitFor(() => hasTcpConnectionTo(blue.process.pid!, tcpPort(red1.address)), {
      deadlineMs: 10_000,
      what: 'blue to be connected to red1',
    });

    await red1.client.put('mix/red', text('red'));
    await blue.client.put('mix/blue', text('blue'));
    await waitFor(async () => (await getText(red2, 'mix/red')) === 'red', { deadlineMs: 10_000, what: 'red2 to get the red write' });
    // Let anti-entropy run a few rounds after the write before looking at blue.
    const sessionsAt = async (): Promise<number> => sessionsInitiated(await red1.status()) + sessionsInitiated(await red2.status());
    const base = await sessionsAt();
    await waitFor(async () => (await sessionsAt()) >= base + 3, { deadlineMs: 15_000, what: 'red to run sync sessions' });

    assert.equal(hasTcpConnectionTo(blue.process.pid!, tcpPort(red1.address)), true, 'still connected');
    assert.equal((await blue.client.get('mix/red')).found, false, 'the red write is not on blue');
    for (const red of [red1, red2]) assert.equal((await red.client.get('mix/blue')).found, false, `the blue write is not on ${red.name}`);
    const [r1, r2, bl] = await Promise.all([red1.status(), red2.status(), blue.status()]);
    assert.equal(r1.keyCount, '1');
    assert.equal(r2.keyCount, '1');
    assert.equal(bl.keyCount, '1');
    assert.equal(counter(bl, 'gossip_received'), 0);
    assert.equal(r1.cluster, 'red');
    assert.equal(bl.cluster, 'blue');
    for (const red of [red1, red2]) {
      assert.ok(!(await red.peers()).some((p) => p.peerId === blue.peerId && p.state === 'up'), `${red.name} does not list blue as up`);
    }
    assert.ok(!(await blue.peers()).some((p) => p.state === 'up'), 'blue lists no red node as up');
  });
});

describe('cluster key', () => {
  it('a node with another key never connects; a node with the same key does', async () => {
    const dir = tempDir();
    const [k1, k2] = [join(dir, 'k1.key'), join(dir, 'k2.key')];
    writeFileSync(k1, (await runCliOk(['cluster-key'])).stdout);
    writeFileSync(k2, (await runCliOk(['cluster-key'])).stdout);

    const a = await startPeer('A7', { args: ['--cluster-key', k1, ...fast] });
    const [b, c] = await Promise.all([
      startPeer('B7', { bootstrap: [a], args: ['--cluster-key', k1, ...fast] }),
      startPeer('C7', { bootstrap: [a], args: ['--cluster-key', k2, ...fast] }),
    ]);
    const cStartedMs = Date.now();
    await waitMesh([a, b]);
    await a.client.put('t7/secret', text('for K1 only'));
    await waitFor(async () => (await getText(b, 't7/secret')) === 'for K1 only', { deadlineMs: 10_000, what: 'B (same key) to get the write' });

    // Watch C while A and B run sync rounds and C's keeper redials A (1 s backoff, doubling).
    const sessionsAt = async (): Promise<number> => sessionsInitiated(await a.status()) + sessionsInitiated(await b.status());
    const base = await sessionsAt();
    const violations: string[] = [];
    await waitFor(
      async () => {
        const cPeers = await c.peers();
        if (cPeers.length > 0) violations.push(`C lists peers: ${JSON.stringify(cPeers)}`);
        const cKeys = (await c.status()).keyCount;
        if (cKeys !== '0') violations.push(`C holds ${cKeys} keys`);
        return violations.length > 0 || ((await sessionsAt()) >= base + 3 && Date.now() - cStartedMs > 2_500);
      },
      { deadlineMs: 20_000, what: 'sync rounds on A and B and redials from C' },
    );
    assert.deepEqual(violations, []);
    assert.equal((await c.client.get('t7/secret')).found, false);
    assert.ok(!(await a.peers()).some((p) => p.peerId === c.peerId), 'A does not list C');
  });
});

describe('a new node joins a cluster holding 100,000 keys', () => {
  it('receives every key: equal key count and root', async () => {
    const count = 100_000;
    const a = await startPeer('A4', { args: fast });
    const load = await putMany(a.client, count, (i) => `t4/${pad(i)}`, value100, 512);
    const aStatus = await a.status();
    assert.equal(aStatus.keyCount, String(count));

    const startedMs = Date.now();
    const n = await startPeer('N4', { bootstrap: [a], args: fast });
    const readyMs = Date.now() - startedMs;
    const [aFinal, nFinal] = await waitConverged([a, n], 90_000, 200);
    const convergedMs = Date.now() - startedMs;
    assert.equal(nFinal!.keyCount, String(count));
    assert.equal(nFinal!.merkleRoot, aStatus.merkleRoot);
    assert.equal(aFinal!.merkleRoot, aStatus.merkleRoot);
    const bytesIn = counter(nFinal!, 'sync_bytes_in');
    measure('new node joins 100k-key cluster', {
      load_ms: load.ms,
      load_puts_per_s: Math.round((count / load.ms) * 1000),
      n_ready_ms: readyMs,
      n_start_to_equal_roots_ms: convergedMs,
      n_sync_bytes_in: `${bytesIn} (${formatBytes(bytesIn)})`,
      raw_bytes: `${load.rawBytes} (${formatBytes(load.rawBytes)})`,
      ratio: (bytesIn / load.rawBytes).toFixed(3),
      entry_encoding_bytes: load.wireBytes,
      n_sync_entries_applied: counter(nFinal!, 'sync_entries_applied'),
      sessions: sessionsInitiated(aFinal!) + sessionsInitiated(nFinal!),
    });
  });
});
