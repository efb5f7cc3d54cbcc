/**
 * A peer that dies in the middle of a sync frame is not hostile. A raw libp2p node opens sync
 * sessions with a real ckv node and goes away half-way through a frame, three ways: its stream
 * ends cleanly inside the frame (truncated by close), its stream is aborted (a reset), its
 * whole connection is closed. Each is counted as `sync_failed`, none as `sync_rejected`
 * (kept for malformed input, test/integration/hostile.test.ts), and the node's log says why in
 * words: no `[object Event]`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { createNetwork, type CkvLibp2p } from '../../src/net/libp2p.js';
import { encodeVarint } from '../../src/net/framed-stream.js';
import { gossipTopic } from '../../src/net/gossip.js';
import { syncProtocolId } from '../../src/net/sync-protocol.js';
import { counter, waitFor, type NodeProcess } from '../../harness/testing.js';
import { startPeer } from '../helpers/cluster.js';

const rawNodes: CkvLibp2p[] = [];
after(async () => {
  await Promise.allSettled(rawNodes.splice(0).map((n) => n.stop()));
});

async function rawNode(): Promise<CkvLibp2p> {
  const node = await createNetwork({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mdns: false,
    gossipTopic: gossipTopic('default'),
  });
  rawNodes.push(node);
  return node;
}

/** The first 100 bytes of a 1000-byte frame: the node is then waiting inside the frame. */
function halfFrame(stream: Stream): void {
  stream.send(encodeVarint(1000));
  stream.send(new Uint8Array(100).fill(7));
}

describe('a peer that dies mid-frame', () => {
  let target: NodeProcess;

  before(async () => {
    target = await startPeer('target');
  });

  it('counts as sync_failed, not sync_rejected, and the log says why', { timeout: 60_000 }, async () => {
    const before = await target.status();
    const failedAtStart = counter(before, 'sync_failed');
    const rejectedAtStart = counter(before, 'sync_rejected');
    const open = async (raw: CkvLibp2p): Promise<Stream> =>
      raw.dialProtocol(multiaddr(target.address), syncProtocolId('default'), { signal: AbortSignal.timeout(10_000) });

    // 1. Our end closes cleanly inside the frame.
    const first = await rawNode();
    const truncated = await open(first);
    halfFrame(truncated);
    await truncated.close().catch(() => undefined);
    await waitFor(async () => counter(await target.status(), 'sync_failed') >= failedAtStart + 1, {
      deadlineMs: 10_000,
      what: 'the truncated session to count as sync_failed',
    });

    // 2. The stream is aborted (reset) inside the frame.
    const aborted = await open(first);
    halfFrame(aborted);
    aborted.abort(new Error('peer process dying'));
    await waitFor(async () => counter(await target.status(), 'sync_failed') >= failedAtStart + 2, {
      deadlineMs: 10_000,
      what: 'the aborted session to count as sync_failed',
    });

    // 3. The whole connection goes away inside the frame.
    const second = await rawNode();
    const dropped = await open(second);
    halfFrame(dropped);
    await Promise.all(second.getConnections().map((connection) => connection.abort(new Error('connection reset'))));
    await waitFor(async () => counter(await target.status(), 'sync_failed') >= failedAtStart + 3, {
      deadlineMs: 15_000,
      what: 'the dropped connection to count as sync_failed',
    });

    const after = await target.status();
    assert.equal(counter(after, 'sync_rejected'), rejectedAtStart, 'a peer dying mid-frame is not hostile input');
    const log = target.stderrText();
    const failures = log.split('\n').filter((line) => line.includes('sync session failed'));
    assert.ok(failures.length >= 3, `three failures logged:\n${log}`);
    for (const line of failures) {
      assert.doesNotMatch(line, /\[object /, line);
      assert.match(line, / error=\S/, line);
    }
    assert.match(log, /sync session failed .*error="stream ended after 100 of 1000 frame bytes"/);
    assert.equal(target.process.exitCode, null, 'the node is still running');
  });
});
