/**
 * The protocol-merge shortcut (src/net/peer-store-merges.ts) on two real libp2p nodes over
 * loopback TCP: the merges libp2p makes for each stream are answered without the store once
 * identify has listed the protocol, and everything that could change the record still
 * reaches the store.
 */
import '../../src/util/polyfill.js'; // libp2p needs Promise.withResolvers (Node 20)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { shortcutKnownProtocolMerges, shortcutWindowMs, type MergeShortcutStats } from '../../src/net/peer-store-merges.js';

const testProtocol = '/ckv-test/merges/1.0.0';

async function startNode(): Promise<Libp2p<{ identify: ReturnType<ReturnType<typeof identify>> }>> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
  });
}

/** Resolves when `check` holds, polling; fails after `deadlineMs`. */
async function until(check: () => Promise<boolean> | boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const endMs = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > endMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('peer store: merges of protocols already listed skip the store', () => {
  let a: Awaited<ReturnType<typeof startNode>>;
  let b: Awaited<ReturnType<typeof startNode>>;
  let stats: MergeShortcutStats;
  let clockMs = 0;

  before(async () => {
    [a, b] = await Promise.all([startNode(), startNode()]);
    await b.handle(testProtocol, async (stream) => {
      await stream.close();
    });
    stats = shortcutKnownProtocolMerges(a, () => clockMs);
    await a.dial(b.getMultiaddrs()[0]!);
    await until(async () => (await a.peerStore.get(b.peerId).catch(() => undefined))?.protocols.includes(testProtocol) === true, "identify to list b's protocol");
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("answers libp2p's merge for each new stream without the store", async () => {
    const { skipped, stored } = stats;
    for (let i = 0; i < 5; i++) {
      const stream = await a.dialProtocol(b.peerId, testProtocol);
      await stream.close();
    }
    assert.equal(stats.skipped - skipped, 5, 'every stream open merged its protocol through the shortcut');
    assert.equal(stats.stored - stored, 0);
    assert.ok((await a.peerStore.get(b.peerId)).protocols.includes(testProtocol));
  });

  it('passes merges of other data, of unknown protocols and after the window to the store', async () => {
    const { stored } = stats;
    const address = multiaddr('/ip4/127.0.0.9/tcp/4001');
    await a.peerStore.merge(b.peerId, { multiaddrs: [address] });
    assert.ok((await a.peerStore.get(b.peerId)).addresses.some((entry) => entry.multiaddr.equals(address)), 'other data is stored');
    await a.peerStore.merge(b.peerId, { protocols: ['/ckv-test/new/1.0.0'] });
    assert.ok((await a.peerStore.get(b.peerId)).protocols.includes('/ckv-test/new/1.0.0'), 'an unknown protocol is stored');
    assert.equal(stats.stored - stored, 2);
    // Now announced: the same merge again is skipped.
    const skipped = stats.skipped;
    await a.peerStore.merge(b.peerId, { protocols: ['/ckv-test/new/1.0.0', testProtocol] });
    assert.equal(stats.skipped - skipped, 1);
    // Past the window the store sees one merge again (and stamps the record), then skips again.
    clockMs += shortcutWindowMs;
    await a.peerStore.merge(b.peerId, { protocols: [testProtocol] });
    assert.equal(stats.stored - stored, 3, 'the first merge after the window goes to the store');
    await a.peerStore.merge(b.peerId, { protocols: [testProtocol] });
    assert.equal(stats.skipped - skipped, 2);
  });

  it('forgets a deleted peer: the next merge recreates its record', async () => {
    await a.peerStore.delete(b.peerId);
    assert.equal(await a.peerStore.has(b.peerId), false);
    const { stored } = stats;
    await a.peerStore.merge(b.peerId, { protocols: [testProtocol] });
    assert.equal(stats.stored - stored, 1);
    assert.deepEqual((await a.peerStore.get(b.peerId)).protocols, [testProtocol]);
  });

  it('never shortcuts the store for the node itself, and installs once', async () => {
    const { stored } = stats;
    await a.peerStore.merge(a.peerId, { protocols: [testProtocol] });
    await a.peerStore.merge(a.peerId, { protocols: [testProtocol] });
    assert.equal(stats.stored - stored, 2);
    assert.equal(shortcutKnownProtocolMerges(a), stats);
  });
});
