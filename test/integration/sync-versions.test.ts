/**
 * Sync protocol versions during a rolling upgrade: a node dials `/ckv/<cluster>/sync/1.1.0`
 * first and sends the Hello's positions extension only there; toward a peer that speaks only
 * 1.0.0 (an older ckv, which refuses the extension as malformed) its Hello is the old one.
 * The peer here is a bare libp2p node that identifies as a ckv member and records the Hellos
 * it is sent, on each version it serves.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import type { Stream } from '@libp2p/interface';
import { FrameType, decodeFrame } from '../../src/core/sync-frames.js';
import { agentString } from '../../src/net/cluster.js';
import { FramedStream } from '../../src/net/framed-stream.js';
import { createNetwork, type CkvLibp2p } from '../../src/net/libp2p.js';
import { gossipTopic } from '../../src/net/gossip.js';
import { syncProtocolId, syncProtocolIdPositions } from '../../src/net/sync-protocol.js';
import { startNode, waitFor, type NodeProcess } from '../../harness/testing.js';

const MiB = 1024 * 1024;

interface SeenHello {
  protocol: string;
  positions: boolean;
}

/** A bare peer serving `protocols`: records each session's Hello, then ends the session. */
async function recordingPeer(nodeId: string, protocols: string[], seen: SeenHello[]): Promise<CkvLibp2p> {
  const raw = await createNetwork({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mdns: false,
    gossipTopic: gossipTopic('default'),
    userAgent: agentString(nodeId, 1),
  });
  for (const protocol of protocols) {
    await raw.handle(protocol, (stream: Stream) => {
      void (async () => {
        const framed = new FramedStream(stream, { frameBytesMax: MiB, signal: AbortSignal.timeout(5000) });
        try {
          const first = await framed.read();
          if (first !== undefined) {
            const frame = decodeFrame(first, 4, MiB);
            if (frame.type === FrameType.hello) seen.push({ protocol: stream.protocol ?? protocol, positions: frame.positions === true });
          }
        } catch {
          // only the Hello matters here
        }
        framed.abort(new Error('recording peer ends the session'));
      })();
    });
  }
  await raw.start();
  return raw;
}

async function dialNode(raw: CkvLibp2p, node: NodeProcess): Promise<void> {
  const status = await node.status();
  const address = status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
  assert.ok(address, 'the node listens on loopback');
  await raw.dial(multiaddr(address));
}

describe('sync protocol versions', { timeout: 90_000 }, () => {
  let node: NodeProcess;
  const peers: CkvLibp2p[] = [];

  before(async () => {
    node = await startNode({ name: 'upgraded', args: ['--sync-interval-ms', '200'] });
  });

  after(async () => {
    await Promise.all(peers.map((raw) => Promise.resolve(raw.stop()).catch(() => undefined)));
    await node?.stop().catch(() => undefined);
  });

  it('toward a 1.0.0-only peer the Hello has no positions extension', async () => {
    const seen: SeenHello[] = [];
    const raw = await recordingPeer('a1d0a1d0a1d00001', [syncProtocolId('default')], seen);
    peers.push(raw);
    await dialNode(raw, node);
    await waitFor(() => seen.length >= 2, { deadlineMs: 30_000, what: 'the node to start sessions with the old peer' });
    for (const hello of seen) {
      assert.equal(hello.protocol, syncProtocolId('default'));
      assert.equal(hello.positions, false, 'an old peer must not be sent the extension it refuses');
    }
  });

  it('toward a peer that speaks 1.1.0 the node uses it and sends its positions', async () => {
    const seen: SeenHello[] = [];
    const raw = await recordingPeer('e7e7e7e7e7e70002', [syncProtocolIdPositions('default'), syncProtocolId('default')], seen);
    peers.push(raw);
    await dialNode(raw, node);
    await waitFor(() => seen.length >= 2, { deadlineMs: 30_000, what: 'the node to start sessions with the new peer' });
    for (const hello of seen) {
      assert.equal(hello.protocol, syncProtocolIdPositions('default'));
      assert.equal(hello.positions, true);
    }
  });
});
