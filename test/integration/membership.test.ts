/**
 * Membership on real processes: a node stopped, restarted and stopped again within a minute
 * shows as left on its peer (each leave is a new message: it carries the stopping node's
 * incarnation and a sequence number, so gossip's seen-cache cannot drop the second one), and
 * `ckv peers forget` refuses a connected peer with exit 4, forgets a stopped one, and a
 * forgotten node that comes back is listed again. A node killed (kill -9) and restarted with
 * one bootstrap address meets the rest of the cluster again at once: the others' alive
 * announcements carry a new sequence number, so gossip does not drop them as repeats.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, stopCleanly, waitFor, waitLinked, waitMesh, type NodeProcess } from '../../harness/testing.js';
import { startPeer } from '../helpers/cluster.js';

const fast = ['--sync-interval-ms', '200'];

async function stateOf(observer: NodeProcess, peerId: string): Promise<string | undefined> {
  return (await observer.peers()).find((p) => p.peerId === peerId)?.state;
}

/**
 * Waits until `observer` lists `peerId` in `state`. On a timeout the error says the state it
 * last saw and ends with the observer's log (and `subject`'s, the node whose state it waits
 * for): a leave not seen as 'left' happened in CI about once in ten runs, and needs both logs.
 */
async function waitState(observer: NodeProcess, peerId: string, state: string | undefined, what: string, subject?: NodeProcess): Promise<void> {
  let last: string | undefined;
  await waitFor(async () => (last = await stateOf(observer, peerId)) === state, { deadlineMs: 20_000, what }).catch((error: unknown) => {
    const logs = [observer, ...(subject !== undefined ? [subject] : [])].map((node) => `${node.name} log:\n${node.logTail(60)}`).join('\n');
    throw new Error(`${(error as Error).message} (last seen: ${last ?? 'not listed'})\n${logs}`);
  });
}

describe('membership', () => {
  it('a node stopped, restarted and stopped again within a minute shows as left', async () => {
    const a = await startPeer('A', { args: fast });
    let b = await startPeer('B', { bootstrap: [a], args: fast });
    await waitMesh([a, b]);
    const peerB = b.peerId;
    const startedMs = Date.now();

    await stopCleanly(b);
    await waitState(a, peerB, 'left', 'A to show B left after its first stop', b);
    b = await b.respawn();
    await waitState(a, peerB, 'up', 'A to show B up after its restart', b);
    await stopCleanly(b);
    await waitState(a, peerB, 'left', 'A to show B left after its second stop', b);
    assert.ok(Date.now() - startedMs < 60_000, 'the second stop came within the seen-cache window (two minutes)');
    await stopCleanly(a);
  });

  it('peers forget: a connected peer is refused (exit 4); a stopped one is forgotten and re-added when it returns', async () => {
    const a = await startPeer('A', { args: fast });
    let b = await startPeer('B', { bootstrap: [a], args: fast });
    await waitMesh([a, b]);
    const peerB = b.peerId;

    const refused = await runCli(['peers', 'forget', peerB], { socket: a.socket });
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, /^ckv: .*connected/);
    assert.equal(refused.stderr.trim().split('\n').length, 1, 'one line');
    assert.equal(await stateOf(a, peerB), 'up', 'still listed');

    await stopCleanly(b);
    await waitState(a, peerB, 'left', 'A to show B left');
    const forgotten = await runCli(['peers', 'forget', peerB], { socket: a.socket });
    assert.equal(forgotten.code, 0, forgotten.stderr);
    assert.equal(await stateOf(a, peerB), undefined, 'no longer listed');
    const again = await runCli(['peers', 'forget', peerB], { socket: a.socket });
    assert.equal(again.code, 1, 'an unknown peer: not found');

    b = await b.respawn();
    await waitState(a, peerB, 'up', 'A to list B again once it reconnects');
    await stopCleanly(b);
    await stopCleanly(a);
  });

  it('a node killed and restarted with one bootstrap address reconnects to every member at once', async () => {
    const a = await startPeer('A', { args: fast });
    const [b, c] = await Promise.all([startPeer('B', { bootstrap: [a], args: fast }), startPeer('C', { bootstrap: [a], args: fast })]);
    await waitMesh([a, b, c]); // B and C meet through A's gossip of their addresses
    await c.kill();
    const restarted = await c.respawn();
    // Well within gossip's 2-minute seen-cache, which used to drop B's identical announcement.
    await waitLinked([[restarted, b]], 20_000);
    await Promise.all([stopCleanly(restarted), stopCleanly(b)]);
    await stopCleanly(a);
  });
});
