import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeKnownPeers, encodeKnownPeers, knownPeerAddressesMax, knownPeersMax } from '../../src/net/known-peers.js';

describe('known peers', () => {
  it('round-trips, bounded in members and addresses', () => {
    const peers = Array.from({ length: knownPeersMax + 5 }, (_, i) => ({
      peerId: `peer-${i}`,
      addresses: Array.from({ length: knownPeerAddressesMax + 3 }, (_, j) => `/ip4/127.0.0.1/tcp/${4000 + j}`),
    }));
    const decoded = decodeKnownPeers(encodeKnownPeers(peers));
    assert.equal(decoded.length, knownPeersMax);
    assert.equal(decoded[0]!.peerId, 'peer-0');
    assert.ok(decoded.every((peer) => peer.addresses.length === knownPeerAddressesMax));
  });

  it('a damaged or foreign value is ignored, not thrown', () => {
    const te = new TextEncoder();
    for (const text of ['', 'not json', '{"v":2,"peers":[]}', '{"v":1,"peers":"x"}', '{"v":1}', 'null']) assert.deepEqual(decodeKnownPeers(te.encode(text)), [], text);
    assert.deepEqual(decodeKnownPeers(te.encode('{"v":1,"peers":[{"peerId":1,"addresses":[]},{"peerId":"p","addresses":["a",2]}]}')), [{ peerId: 'p', addresses: ['a'] }]);
  });
});
