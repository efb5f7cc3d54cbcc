/**
 * Catch-up by delta with real processes (docs/design-applied-sequence.md, part 1): a node
 * that held a watermark for its peer is stopped, the peer takes N writes, and the node,
 * restarted on its data directory, gets exactly those N entries as a delta (counters on both
 * sides), with equal roots at the end. Then the peer's store epoch is changed while both are
 * down (as if its directory had been made anew under the same identity): the node's
 * watermark names another epoch, so the peer sends no delta and the descent catches the node
 * up. And with three nodes, a node restarted after writes it missed is not sent them again by
 * gossip once its catch-up brought them (gossipsub's lazy push is off: libp2p.ts).
 * Only status (counters, key count, Merkle root) is observed; every wait has a deadline.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Level } from 'level';
import { counter, putChunked, stopCleanly, waitConverged, waitFor, waitMesh, type NodeProcess } from '../../harness/testing.js';
import { pad, putMany, startPeer } from '../helpers/cluster.js';

const fast = ['--sync-interval-ms', '200'];
const value100 = (i: number): Uint8Array => Buffer.from(`v${pad(i)}`.padEnd(100, '.'));

describe('catch-up by delta, real processes', () => {
  const running: NodeProcess[] = [];
  after(async () => {
    for (const node of running) await node.stop().catch(() => undefined);
  });

  it('a restarted node is not sent the missed writes again by gossip (3 nodes)', async () => {
    const a = await startPeer('A', { args: fast });
    running.push(a);
    const b = await startPeer('B', { bootstrap: [a], args: fast });
    running.push(b);
    let c = await startPeer('C', { bootstrap: [a], args: fast });
    running.push(c);
    await waitMesh([a, b, c]);
    const cDir = c.dataDir;
    await stopCleanly(c);
    await putChunked(a.client, 5_000, (i) => `g/${pad(i)}`, value100, 1_000, 4);
    await waitConverged([a, b], 30_000);
    c = await startPeer('C', { bootstrap: [a], args: fast, dataDir: cDir });
    running.push(c);
    await waitConverged([a, b, c], 60_000);
    // Gossipsub's lazy push (IHAVE) would advertise what A published in its last three
    // heartbeats (1 s each) to C, outside A's mesh after its clean stop (prune backoff), and C,
    // having seen none of it, would ask for all of it: 5,000 entries the catch-up brought.
    // Observed until C has been up for 4 s (four of A's heartbeats).
    await waitFor(async () => Number((await c.status()).uptimeMs) >= 4_000, { deadlineMs: 20_000, what: 'C to be up for 4 s' });
    const gossiped = counter(await c.status(), 'gossip_entries_received');
    assert.equal(gossiped, 0, `C received ${gossiped} entries by gossip with no new writes`);
    for (const node of [c, b, a]) await stopCleanly(node);
  });

  it('a restarted node gets what it missed as a delta; after the peer changed epoch, by descent', async () => {
    const count = 5_000;
    // A starts no periodic session (its mean interval is 10 minutes): C's own catch-up is the
    // session that runs when C comes back, and its delta is what this observes. (With A's
    // sessions every 200 ms, A's could reach C before C's catch-up started, and repair it by
    // descent: correct, but no delta to see; one CI run in many.)
    let a = await startPeer('A', { args: ['--sync-interval-ms', '600000'] });
    running.push(a);
    let c = await startPeer('C', { bootstrap: [a], args: fast });
    running.push(c);
    await waitMesh([a, c]);
    await putMany(a.client, 1_000, (i) => `d1/${pad(i)}`, value100, 128);
    await waitConverged([a, c], 30_000);
    // C's periodic sessions with A end in sync (or C's catch-up proved it): a watermark.
    await waitFor(async () => counter(await c.status(), 'sync_watermarks_recorded') >= 1, { deadlineMs: 20_000, what: 'C to record a watermark for A' });

    const cDir = c.dataDir;
    await stopCleanly(c);
    const load = await putMany(a.client, count, (i) => `d2/${pad(i)}`, value100, 256);
    c = await startPeer('C', { bootstrap: [a], args: fast, dataDir: cDir });
    running.push(c);
    const [aFinal, cFinal] = await waitConverged([a, c], 60_000);
    assert.equal(cFinal!.merkleRoot, aFinal!.merkleRoot);
    assert.equal(cFinal!.keyCount, aFinal!.keyCount);
    // The delta path was used: C received one delta holding at least the missed writes (its
    // watermark may predate the last of the first 1,000), and never needed the descent.
    const cStatus = await c.status();
    assert.ok(counter(cStatus, 'sync_delta_received') >= 1, `no delta received: ${JSON.stringify(cStatus.counters)}`);
    const deltaEntries = counter(cStatus, 'sync_delta_entries_received');
    assert.ok(deltaEntries >= count && deltaEntries <= count + 1_000, `delta of ${deltaEntries} entries for ${count} missed`);
    assert.equal(counter(cStatus, 'sync_delta_descended'), 0, 'the delta alone brought the roots together');
    assert.ok(counter(await a.status(), 'sync_delta_sent') >= 1, 'A served a delta');
    const bytesIn = counter(cStatus, 'sync_bytes_in');
    assert.ok(bytesIn <= 1.2 * load.wireBytes + 64 * 1024, `C received ${bytesIn} sync bytes for ${load.wireBytes} bytes of missed entries`);

    // While connected, later sessions do not ask for a delta (gossip brings the writes; a delta
    // from the old watermark would re-send them): more writes, more sessions, no more deltas.
    const deltasBefore = counter(cStatus, 'sync_delta_received');
    const sessionsOf = (status: Awaited<ReturnType<NodeProcess['status']>>): number =>
      counter(status, 'sync_sessions_in_sync') + counter(status, 'sync_sessions_synced') + counter(status, 'sync_sessions_incomplete');
    const sessionsBefore = sessionsOf(cStatus);
    await putMany(a.client, 500, (i) => `d4/${pad(i)}`, value100, 64);
    await waitFor(async () => sessionsOf(await c.status()) >= sessionsBefore + 3, { deadlineMs: 30_000, what: 'C to run 3 more sessions' });
    await waitConverged([a, c], 30_000);
    assert.equal(counter(await c.status(), 'sync_delta_received'), deltasBefore, 'no delta on a connection that already synced');

    // Both down; A's store gets another epoch, as a directory made anew under the same identity would.
    const aDir = a.dataDir;
    await stopCleanly(c);
    await stopCleanly(a);
    const db = new Level<string, Uint8Array>(join(aDir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    const meta = db.sublevel<string, Uint8Array>('m', { keyEncoding: 'utf8', valueEncoding: 'view' });
    const oldEpoch = await meta.get('epoch');
    assert.equal(oldEpoch?.byteLength, 16, 'A has an epoch');
    await meta.put('epoch', new Uint8Array(16).fill(0x5a));
    await db.close();

    a = await startPeer('A', { args: fast, dataDir: aDir });
    running.push(a);
    // A few writes C has not seen, so its session with A is not simply in sync.
    await putMany(a.client, 200, (i) => `d3/${pad(i)}`, value100, 64);
    c = await startPeer('C', { bootstrap: [a], args: fast, dataDir: cDir });
    running.push(c);
    const [aLast, cLast] = await waitConverged([a, c], 60_000);
    assert.equal(cLast!.merkleRoot, aLast!.merkleRoot);
    const after = await c.status();
    assert.equal(counter(after, 'sync_delta_received'), 0, 'no delta across epochs');
    // Either side's session may be the one that descends and repairs (A also starts sessions).
    const synced = counter(after, 'sync_sessions_synced') + counter(await a.status(), 'sync_sessions_synced');
    assert.ok(synced >= 1, 'the descent repaired the difference');
    // And the new epoch gives C a new watermark: the next catch-up is a delta again.
    await waitFor(async () => counter(await c.status(), 'sync_watermarks_recorded') >= 1, { deadlineMs: 20_000, what: 'C to record a watermark in the new epoch' });
    await stopCleanly(c);
    await stopCleanly(a);
  });
});
