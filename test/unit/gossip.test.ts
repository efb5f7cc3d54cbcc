import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TopicValidatorResult, type GossipSub } from '@libp2p/gossipsub';
import type { AppliedChange, ApplyReport, Replica } from '../../src/core/replica.js';
import type { ReceivedEntries } from '../../src/core/received-entries.js';
import { Gossip, GossipType, decodeGossip, decodeMemberMessage, encodeGossip, encodeMemberMessage, gossipEntryBytes, gossipValueBytesMaxDefault, type GossipMessage } from '../../src/net/gossip.js';
import type { MemberMessage } from '../../src/core/membership.js';
import { ByteWriter } from '../../src/core/bytes.js';
import { encodeEntry, keyHashText, writeEntry, type Entry } from '../../src/core/entry.js';
import { gossipBatchBytesMax, gossipBatchEntriesMax } from '../../src/core/limits.js';
import { messageIdOf } from '../../src/net/libp2p.js';
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


/**
 * decodeGossip, with each write's encoding checked (every entry here is encoded canonically,
 * so each is a view of exactly encodeEntry's bytes) and left out, to compare with a message.
 */
function decoded(bytes: Uint8Array, valueBytesMax: number): GossipMessage {
  const message = decodeGossip(bytes, valueBytesMax);
  if (message.type === 'entry') {
    const { encoding, received: _received, ...rest } = message;
    assert.deepEqual(Buffer.from(encoding!), Buffer.from(encodeEntry(message.entry)));
    return rest;
  }
  if (message.type === 'entries') {
    const { encodings, received: _received, ...rest } = message;
    message.entries.forEach((entry, i) => assert.deepEqual(Buffer.from(encodings![i]!), Buffer.from(encodeEntry(entry))));
    return rest;
  }
  return message;
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
      hlc: 1n,
      expires: false,
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
    assert.deepEqual(decoded(published[0]!, 1024), { type: 'entry', entry: change.entry });
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
    gossip.publishChange({ entry, keyHash: keyHashText('k'), previous: undefined, origin: 'local', hlc: 1n, expires: false });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(published.length, 0);
    others = 2;
    gossip.publishChange({ entry, keyHash: keyHashText('k'), previous: undefined, origin: 'local', hlc: 1n, expires: false });
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
      assert.deepEqual(decoded(wire, 1024), { type: 'member', message, body, signature: new Uint8Array([1, 2, 3]) });
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

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const nodeA = '00000000000000aa';

function entryOf(i: number, valueBytes = 100): Entry {
  return { key: `k/${i}`, value: new Uint8Array(valueBytes).fill(i % 251), version: { hlc: BigInt(1000 + i), node: nodeA } };
}

function changeOf(entry: Entry): AppliedChange {
  return { entry, keyHash: keyHashText(entry.key), previous: undefined, origin: 'local', hlc: entry.version.hlc, expires: entry.expiresAtMs !== undefined };
}

/** An `entries` message written field by field (not by encodeGossip), with any count. */
function entriesBytes(count: number, entries: Entry[]): Uint8Array {
  const w = new ByteWriter().u8(1).u8(GossipType.entries).varint(count);
  for (const entry of entries) writeEntry(w, entry);
  return w.finish();
}

describe('gossip entries message', () => {
  it('round-trips values, tombstones and multi-byte keys', () => {
    const entries: Entry[] = [entryOf(1), { key: 'gone', value: null, version: { hlc: 5n, node: nodeA } }, { key: 'clé/日本', value: new Uint8Array(0), version: { hlc: 6n, node: nodeA } }];
    const wire = encodeGossip({ type: 'entries', entries });
    assert.equal(wire[1], GossipType.entries);
    assert.equal(wire.byteLength, 3 + entries.reduce((sum, e) => sum + gossipEntryBytes(e), 0), 'exact size: header + encoded entries');
    assert.deepEqual(decoded(wire, 1024), { type: 'entries', entries });
    // The same bytes as the generic writer produces.
    assert.deepEqual(wire, entriesBytes(entries.length, entries));
  });

  // Decoded values are views of one copy of the message, never of the network buffer. (The
  // entries are made from the message's bytes when first read: until then the bytes must stay.)
  it('decodes values that do not share the received bytes', () => {
    const entries = [entryOf(1), entryOf(2)];
    const wire = encodeGossip({ type: 'entries', entries });
    const decoded = decodeGossip(wire, 1024) as { entries: Entry[] };
    assert.equal(decoded.entries.length, 2);
    wire.fill(0);
    assert.deepEqual(decoded.entries, [entryOf(1), entryOf(2)]);
    assert.equal(decoded.entries[0]!.version.node, nodeA);
  });

  // gossipsub hands messages over as Buffers, whose slice() is a view, not a copy.
  it('decodes values that do not share the received bytes when they come as a Buffer', () => {
    const entries = [entryOf(1), entryOf(2)];
    const wire = Buffer.from(encodeGossip({ type: 'entries', entries }));
    const decoded = decodeGossip(wire, 1024) as { entries: Entry[] };
    for (const entry of decoded.entries) assert.notEqual(entry.value!.buffer, wire.buffer, 'a value is a view of the message');
    assert.equal(decoded.entries.length, 2);
    wire.fill(0);
    assert.deepEqual(decoded.entries, [entryOf(1), entryOf(2)]);
  });

  it('holds 1 to gossipBatchEntriesMax entries: the encoder refuses more, the decoder refuses 0, more, and junk', () => {
    const max = Array.from({ length: gossipBatchEntriesMax }, (_, i) => entryOf(i, 1));
    assert.equal((decodeGossip(encodeGossip({ type: 'entries', entries: max }), 1024) as { entries: Entry[] }).entries.length, gossipBatchEntriesMax);
    assert.throws(() => encodeGossip({ type: 'entries', entries: [...max, entryOf(-1, 1)] }), RangeError);
    assert.throws(() => encodeGossip({ type: 'entries', entries: [] }), RangeError);

    const malformed: [string, Uint8Array][] = [
      ['count over the bound', entriesBytes(gossipBatchEntriesMax + 1, [...max, entryOf(-1, 1)])],
      ['no entries', entriesBytes(0, [])],
      ['fewer entries than counted', entriesBytes(3, [entryOf(1), entryOf(2)])],
      ['trailing bytes', Uint8Array.from([...entriesBytes(1, [entryOf(1)]), 0])],
      ['truncated entry', entriesBytes(2, [entryOf(1), entryOf(2)]).subarray(0, 150)],
      ['value over the limit', entriesBytes(1, [entryOf(1, 2000)])],
      ['empty key', entriesBytes(1, [{ ...entryOf(1), key: '' }])],
      ['unknown flags', (() => {
        const bytes = Uint8Array.from(entriesBytes(1, [entryOf(1)]));
        bytes[3 + 1 + 'k/1'.length] = 0x80;
        return bytes;
      })()],
      ['key not UTF-8', (() => {
        const bytes = Uint8Array.from(entriesBytes(1, [entryOf(1)]));
        bytes[4] = 0xff;
        return bytes;
      })()],
    ];
    for (const [what, bytes] of malformed) assert.throws(() => decodeGossip(bytes, 1024), { name: 'MalformedError' }, what);
  });

  // Types 1-5 as older nodes put them on the wire (bytes written by the encoder before type 6).
  it('still decodes the older message types', () => {
    const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
    assert.deepEqual(decoded(hex('0101026b31000123456789abcdef00000000000000aa03010203'), 1024), {
      type: 'entry',
      entry: { key: 'k1', value: Uint8Array.from([1, 2, 3]), version: { hlc: 0x0123456789abcdefn, node: nodeA } },
    });
    assert.deepEqual(decoded(hex('010104676f6e6501000000000000000500000000000000bb'), 1024), {
      type: 'entry',
      entry: { key: 'gone', value: null, version: { hlc: 5n, node: '00000000000000bb' } },
    });
    assert.deepEqual(decoded(hex('010203626967000000000000000700000000000000aaa08d06057065657241'), 1 << 20), {
      type: 'announce',
      key: 'big',
      version: { hlc: 7n, node: nodeA },
      valueBytes: 100000,
      origin: 'peerA',
    });
    assert.deepEqual(decoded(hex('0103057065657242'), 1024), { type: 'leave', peer: 'peerB' });
    assert.deepEqual(decoded(hex('010405706565724201122f6970342f312e322e332e342f7463702f35'), 1024), { type: 'members', peer: 'peerB', addresses: ['/ip4/1.2.3.4/tcp/5'] });
  });
});

describe('Gossip batching', () => {
  function publisher(): { gossip: Gossip; published: Uint8Array[]; counters: Counters } {
    const published: Uint8Array[] = [];
    const counters = new Counters();
    const gossip = new Gossip(
      { pubsub: fakePubsub(['peer'], published) as unknown as GossipSub, replica: {} as Replica, counters, logger: silent, selfPeerId: 'self' },
      { cluster: 'test', gossipValueBytesMax: gossipValueBytesMaxDefault, valueBytesMax: 1 << 20, onAnnounce: () => undefined, onMember: () => undefined },
    );
    gossip.start();
    return { gossip, published, counters };
  }
  const decodeAll = (published: Uint8Array[]) => published.map((bytes) => decoded(bytes, 1 << 20));

  // A lone write goes out before anything else runs (no timer), in the old `entry` format.
  it('publishes a lone write within the same turn, as an entry message', async () => {
    const { gossip, published } = publisher();
    gossip.publishChange(changeOf(entryOf(1)));
    assert.equal(published.length, 0, 'collected, not yet published');
    await Promise.resolve();
    assert.deepEqual(decodeAll(published), [{ type: 'entry', entry: entryOf(1) }]);
    gossip.stop();
  });

  it('publishes the writes told in one turn as one entries message', async () => {
    const { gossip, published, counters } = publisher();
    for (let i = 0; i < 5; i++) gossip.publishChange(changeOf(entryOf(i)));
    await Promise.resolve();
    assert.deepEqual(decodeAll(published), [{ type: 'entries', entries: [0, 1, 2, 3, 4].map((i) => entryOf(i)) }]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(counters.get('gossip_published'), 1);
    // The next turn's writes are the next message.
    gossip.publishChange(changeOf(entryOf(5)));
    gossip.publishChange(changeOf(entryOf(6)));
    await Promise.resolve();
    assert.equal(published.length, 2);
    gossip.stop();
  });

  it('splits a turn at gossipBatchEntriesMax entries and at gossipBatchBytesMax bytes', async () => {
    const { gossip, published } = publisher();
    const many = gossipBatchEntriesMax * 2 + 10;
    for (let i = 0; i < many; i++) gossip.publishChange(changeOf(entryOf(i, 10)));
    await Promise.resolve();
    const counts = decodeAll(published).map((m) => (m.type === 'entries' ? m.entries.length : 1));
    assert.deepEqual(counts, [gossipBatchEntriesMax, gossipBatchEntriesMax, 10]);

    published.length = 0;
    const big = 60 * 1024; // under the 64 KiB gossip value limit: four fit in 256 KiB, five do not
    for (let i = 0; i < 9; i++) gossip.publishChange(changeOf(entryOf(i, big)));
    await Promise.resolve();
    assert.ok(published.every((bytes) => bytes.byteLength <= gossipBatchBytesMax), 'every message within the byte bound');
    const entries = decodeAll(published).flatMap((m) => (m.type === 'entries' ? m.entries : m.type === 'entry' ? [m.entry] : []));
    assert.deepEqual(entries.map((e) => e.key), Array.from({ length: 9 }, (_, i) => `k/${i}`), 'every write once, in order');
    assert.equal(published.length, 3);
    gossip.stop();
  });

  // A value over the gossip limit is announced at once, on its own; the rest are batched.
  it('announces a large value separately', async () => {
    const { gossip, published } = publisher();
    gossip.publishChange(changeOf(entryOf(1)));
    gossip.publishChange(changeOf(entryOf(2, gossipValueBytesMaxDefault + 1)));
    gossip.publishChange(changeOf(entryOf(3)));
    await Promise.resolve();
    assert.deepEqual(
      decodeAll(published).map((m) => m.type),
      ['announce', 'entries'],
    );
    gossip.stop();
  });

  it('publishes what it collected when stopped', () => {
    const { gossip, published } = publisher();
    gossip.publishChange(changeOf(entryOf(1)));
    gossip.publishChange(changeOf(entryOf(2)));
    gossip.stop();
    assert.equal(published.length, 1);
  });

  it('counts every write of a batch unsent when no peer subscribes', async () => {
    const published: Uint8Array[] = [];
    const counters = new Counters();
    const gossip = new Gossip(
      { pubsub: fakePubsub([], published) as unknown as GossipSub, replica: {} as Replica, counters, logger: silent, selfPeerId: 'self' },
      { cluster: 'test', gossipValueBytesMax: gossipValueBytesMaxDefault, valueBytesMax: 1024, onAnnounce: () => undefined, onMember: () => undefined },
    );
    gossip.start();
    for (let i = 0; i < 3; i++) gossip.publishChange(changeOf(entryOf(i)));
    await Promise.resolve();
    assert.equal(published.length, 0);
    assert.equal(counters.get('gossip_unsent_no_peers'), 3);
    gossip.stop();
  });
});

describe('Gossip receiving', () => {
  /** A replica that records whenRoom and applyReceived calls; the room is given by the test. */
  function receiver(report: Partial<ApplyReport> = {}) {
    const calls: { whenRoom: number[]; applied: Entry[][]; encodings: string[][] } = { whenRoom: [], applied: [], encodings: [] };
    let openRoom: () => void = () => undefined;
    const room = new Promise<void>((resolve) => (openRoom = resolve));
    const replica = {
      whenRoom: (entries: number) => {
        calls.whenRoom.push(entries);
        return room;
      },
      applyReceived: async (received: ReceivedEntries) => {
        calls.applied.push(received.entries());
        calls.encodings.push(received.encodings().map((bytes) => (bytes === undefined ? 'none' : Buffer.from(bytes).toString('hex'))));
        return { applied: received.length, stale: 0, rejectedClockDrift: 0, rejectedInvalid: 0, rejectedNotHeld: 0, ...report };
      },
    };
    const pubsub = fakePubsub(['peer'], []);
    const counters = new Counters();
    const gossip = new Gossip(
      { pubsub: pubsub as unknown as GossipSub, replica: replica as unknown as Replica, counters, logger: silent, selfPeerId: 'self' },
      { cluster: 'test', gossipValueBytesMax: gossipValueBytesMaxDefault, valueBytesMax: 1024, onAnnounce: () => undefined, onMember: () => undefined },
    );
    gossip.start();
    const validator = pubsub.topicValidators.get(gossip.topic) as (peer: unknown, message: { topic: string; data: Uint8Array }) => Promise<TopicValidatorResult>;
    const validate = (data: Uint8Array) => validator(undefined, { topic: gossip.topic, data });
    return { gossip, calls, counters, validate, openRoom };
  }

  // One message, one wait for room for all its entries, one applyReceived; not forwarded.
  it('waits for room for the whole message, applies it as one applyReceived, and does not forward it', async () => {
    const { gossip, calls, counters, validate, openRoom } = receiver();
    const entries = [1, 2, 3].map((i) => entryOf(i));
    let result: TopicValidatorResult | undefined;
    const validating = validate(encodeGossip({ type: 'entries', entries })).then((r) => (result = r));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls.whenRoom, [3]);
    assert.equal(calls.applied.length, 0, 'nothing applied before there is room');
    assert.equal(result, undefined, 'the validator (and so the read from that peer) waits for room');
    openRoom();
    await validating;
    assert.equal(result, TopicValidatorResult.Ignore, 'applied here, so gossipsub neither forwards nor delivers it');
    assert.deepEqual(calls.applied, [entries]);
    // Each entry's bytes go along (the store keeps them as they are: Replica.applyReceived).
    assert.deepEqual(calls.encodings, [entries.map((entry) => Buffer.from(encodeEntry(entry)).toString('hex'))]);
    assert.equal(counters.get('gossip_received'), 1);
    assert.equal(counters.get('gossip_write_messages_received'), 1);
    assert.equal(counters.get('gossip_entries_received'), 3);

    // An old single-entry message takes the same path.
    assert.equal(await validate(encodeGossip({ type: 'entry', entry: entryOf(9) })), TopicValidatorResult.Ignore);
    assert.deepEqual(calls.applied[1], [entryOf(9)]);
    assert.deepEqual(calls.encodings[1], [Buffer.from(encodeEntry(entryOf(9))).toString('hex')]);
    gossip.stop();
  });

  it('rejects and counts a malformed message; counts entries the replica refuses', async () => {
    const { gossip, calls, counters, validate, openRoom } = receiver({ applied: 1, rejectedInvalid: 2 });
    openRoom();
    assert.equal(await validate(entriesBytes(3, [entryOf(1)])), TopicValidatorResult.Reject);
    assert.equal(await validate(Uint8Array.from([1, 99])), TopicValidatorResult.Reject, 'unknown type');
    assert.equal(counters.get('gossip_rejected'), 2);
    assert.equal(calls.applied.length, 0, 'nothing of a malformed message reaches the replica');

    assert.equal(await validate(encodeGossip({ type: 'entries', entries: [1, 2, 3].map((i) => entryOf(i)) })), TopicValidatorResult.Ignore);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(counters.get('gossip_rejected'), 4, 'the two entries the replica refused are counted');
    gossip.stop();
  });

  // observeCopy sees each message whose id gossipsub computes: our own publishes are not
  // received copies; every copy from a peer is, repeats included.
  it('counts received copies, not its own publishes', async () => {
    const published: Uint8Array[] = [];
    const counters = new Counters();
    const pubsub = fakePubsub(['peer'], published);
    const gossip = new Gossip(
      { pubsub: pubsub as unknown as GossipSub, replica: {} as Replica, counters, logger: silent, selfPeerId: 'self' },
      { cluster: 'test', gossipValueBytesMax: gossipValueBytesMaxDefault, valueBytesMax: 1024, onAnnounce: () => undefined, onMember: () => undefined },
    );
    // As libp2p.ts's message id function does: gossipsub computes the id of what we publish.
    const publish = pubsub.publish;
    pubsub.publish = (topic, data) => (gossip.observeCopy(data), publish(topic, data));
    gossip.start();
    gossip.publishChange(changeOf(entryOf(1)));
    await Promise.resolve();
    assert.equal(published.length, 1);
    assert.equal(counters.get('gossip_write_copies_received'), 0, 'our own publish is not a received copy');
    const peerCopy = encodeGossip({ type: 'entry', entry: entryOf(2) });
    gossip.observeCopy(peerCopy);
    gossip.observeCopy(Uint8Array.from(peerCopy));
    gossip.observeCopy(encodeGossip({ type: 'entries', entries: [entryOf(3), entryOf(4)] }));
    gossip.observeCopy(encodeGossip({ type: 'leave', peer: 'p' }));
    assert.equal(counters.get('gossip_write_copies_received'), 3, 'write messages only, repeats included');
    gossip.stop();
  });
});

describe('gossip message ids', () => {
  it('are the SHA-256 of the message data, as every ckv version computes them (ids cross the wire in IHAVE, IWANT and IDONTWANT)', () => {
    const data = encodeGossip({ type: 'entries', entries: [{ key: 'k', value: value('v'), version: { hlc: 1n, node: 'a1b2c3d4e5f60718' } }] });
    const id = messageIdOf({ data });
    assert.equal(Buffer.from(id).toString('hex'), createHash('sha256').update(data).digest('hex'));
    assert.equal(Buffer.from(messageIdOf({ data: new Uint8Array(0) })).toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});
