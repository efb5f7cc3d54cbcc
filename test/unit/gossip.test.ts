import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GossipSub } from '@libp2p/gossipsub';
import type { AppliedChange, Replica } from '../../src/core/replica.js';
import { Gossip, decodeGossip, decodeMemberMessage, encodeGossip, encodeMemberMessage, gossipValueBytesMaxDefault } from '../../src/net/gossip.js';
import type { MemberMessage } from '../../src/core/membership.js';
import { keyHashText } from '../../src/core/entry.js';
import { Counters } from '../../src/util/counters.js';
import { value } from '../helpers/replicas.js';

/** Just what Gossip calls on gossipsub, with the subscribers set by the test. */
function fakePubsub(subscribers: string[], published: Uint8Array[]) {
  return {
    topicValidators: new Map(),
    addEventListener: () => undefined,
    removeEventListener: () => undefined,
    subscribe: () => undefined,
    unsubscribe: () => undefined,
    getSubscribers: () => subscribers,
    publish: async (_topic: string, data: Uint8Array) => {
      published.push(data);
      return { recipients: [] };
    },
  };
}

describe('Gossip.publishChange', () => {
  // A lone node does not encode or publish its writes; once a peer subscribes, it does.
  it('publishes local writes only while some peer subscribes to the topic', async () => {
    const subscribers: string[] = [];
    const published: Uint8Array[] = [];
    const counters = new Counters();
    const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const gossip = new Gossip(
      {
        pubsub: fakePubsub(subscribers, published) as unknown as GossipSub,
        replica: {} as Replica,
        counters,
        logger: silent,
        selfPeerId: 'self',
      },
      {
        cluster: 'test',
        gossipValueBytesMax: gossipValueBytesMaxDefault,
        valueBytesMax: 1024,
        onAnnounce: () => undefined,
        onMember: () => undefined,
      },
    );
    const change: AppliedChange = {
      entry: { key: 'k', value: value('v'), version: { hlc: 1n, node: '00000000000000aa' } },
      keyHash: keyHashText('k'),
      previous: undefined,
      origin: 'local',
    };
    gossip.start();
    gossip.publishChange(change);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(published.length, 0);
    assert.equal(counters.get('gossip_unsent_no_peers'), 1);

    subscribers.push('peer');
    gossip.publishChange(change);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(published.length, 1);
    assert.deepEqual(decodeGossip(published[0]!, 1024), { type: 'entry', entry: change.entry });
    assert.equal(counters.get('gossip_published'), 1);
    gossip.stop();
  });
});

describe('Gossip and placement', () => {
  // A write of a key no other node holds is not published, even with subscribers.
  it('publishes a write only when another node holds its key', async () => {
    const published: Uint8Array[] = [];
    const counters = new Counters();
    const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
    let others = 0;
    const gossip = new Gossip(
      { pubsub: fakePubsub(['peer'], published) as unknown as GossipSub, replica: {} as Replica, counters, logger: silent, selfPeerId: 'self' },
      { cluster: 'test', gossipValueBytesMax: gossipValueBytesMaxDefault, valueBytesMax: 1024, onAnnounce: () => undefined, onMember: () => undefined, otherHolders: () => others },
    );
    const entry = { key: 'k', value: value('v'), version: { hlc: 1n, node: '00000000000000aa' } };
    gossip.start();
    gossip.publishChange({ entry, keyHash: keyHashText('k'), previous: undefined, origin: 'local' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(published.length, 0);
    others = 2;
    gossip.publishChange({ entry, keyHash: keyHashText('k'), previous: undefined, origin: 'local' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(published.length, 1);
    gossip.stop();
  });
});

describe('member messages', () => {
  // Every field survives the round trip, and a repeat of the same claim differs in bytes (its
  // seq), so gossip's seen-cache, keyed by a hash of the bytes, cannot drop it.
  it('round-trip, and two announcements of the same addresses differ on the wire', () => {
    const alive = (seq: number): MemberMessage => ({ type: 'alive', nodeId: '00000000000000aa', peerId: 'peer', incarnation: 3, seq, addresses: ['/ip4/127.0.0.1/tcp/1'] });
    const leave: MemberMessage = { type: 'leave', nodeId: '00000000000000aa', peerId: 'peer', incarnation: 3, seq: 9 };
    for (const message of [alive(1), leave]) {
      const body = encodeMemberMessage(message);
      assert.deepEqual(decodeMemberMessage(body), message);
      const wire = encodeGossip({ type: 'member', message, body, signature: new Uint8Array([1, 2, 3]) });
      assert.deepEqual(decodeGossip(wire, 1024), { type: 'member', message, body, signature: new Uint8Array([1, 2, 3]) });
    }
    assert.notDeepEqual(encodeMemberMessage(alive(1)), encodeMemberMessage(alive(2)));
  });

  it('refuses a truncated or unknown member message', () => {
    const body = encodeMemberMessage({ type: 'leave', nodeId: '00000000000000aa', peerId: 'peer', incarnation: 1, seq: 1 });
    assert.throws(() => decodeMemberMessage(body.subarray(0, body.length - 1)), { name: 'MalformedError' });
    const unknown = Uint8Array.from(body);
    unknown[0] = 99;
    assert.throws(() => decodeMemberMessage(unknown), { name: 'MalformedError' });
  });
});
