/**
 * A hostile peer: a raw libp2p node (createNetwork, its own key, the default cluster's gossip
 * topic) connected to a real ckv node process. It publishes garbage and malformed messages
 * on the gossip topic, opens sync streams and sends malformed frames (random bytes, a Hello
 * with a bad version, a truncated Hello, a valid Hello followed by garbage, an enormous
 * length prefix), and opens more sync sessions than the node serves at once. The node must
 * stay up, count what it rejects (gossip_rejected, sync_rejected, sync_refused_busy), answer
 * the surplus sessions with a typed busy refusal, and keep serving: CLI put/get work and a
 * normal ckv peer still syncs with it. Sessions that say Hello and fall silent lose their
 * slots within the idle timeout, and one peer gets at most two of the four slots.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey, Stream } from '@libp2p/interface';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createNetwork, type CkvLibp2p } from '../../src/net/libp2p.js';
import { FramedStream, encodeVarint } from '../../src/net/framed-stream.js';
import { encodeGossip, encodeMemberMessage, gossipTopic } from '../../src/net/gossip.js';
import type { MemberMessage } from '../../src/core/membership.js';
import { syncProtocolId } from '../../src/net/sync-protocol.js';
import { FrameType, RefuseReason, decodeFrame, encodeFrame, type Frame, type HelloFrame } from '../../src/core/sync-frames.js';
import { hlcPack } from '../../src/core/hlc.js';
import { inboundSessionsPerPeerMax, merkleDepthDefault, syncIdleMsMax } from '../../src/core/limits.js';
import { counter, runCliOk, waitConverged, waitFor, waitMesh, withDeadline, type NodeProcess } from '../../harness/testing.js';
import { startPeer } from '../helpers/cluster.js';

const MiB = 1024 * 1024;
const topic = gossipTopic('default');
const syncProtocol = syncProtocolId('default');
const fast = ['--sync-interval-ms', '200'];

const rawNodes: CkvLibp2p[] = [];
async function rawNode(): Promise<CkvLibp2p> {
  return (await rawNodeWithKey()).node;
}

/** A raw node and its own key, so it can sign what it forges. */
async function rawNodeWithKey(): Promise<{ node: CkvLibp2p; privateKey: PrivateKey }> {
  const privateKey = await generateKeyPair('Ed25519');
  const node = await createNetwork({
    privateKey,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mdns: false,
    gossipTopic: topic,
  });
  rawNodes.push(node);
  return { node, privateKey };
}
after(async () => {
  await Promise.allSettled(rawNodes.splice(0).map((n) => n.stop()));
});

function hello(overrides: Partial<HelloFrame> = {}): HelloFrame {
  return {
    type: FrameType.hello,
    cluster: 'default',
    depth: merkleDepthDefault,
    childDigestBytes: 4,
    salt: 0x1234_5678,
    // A root nobody has, with entries: the responder must descend (it cannot answer InSync).
    rootDigest: new Uint8Array(randomBytes(32)),
    rootCount: 12_345,
    wallMs: Date.now(),
    ...overrides,
  };
}

/** Bytes of a frame whose version is 1 and whose type does not exist. */
function garbageFrame(bytes = 512): Uint8Array {
  const frame = new Uint8Array(randomBytes(bytes));
  frame[0] = 1;
  frame[1] = 0xee;
  return frame;
}

interface Outcome {
  /** Frames the node sent before the stream ended. */
  frames: Frame[];
  /** 'end' (clean close) or the error that ended it (a reset). */
  end: 'end' | string;
}

/** Reads every frame until the node ends or resets the stream. */
async function drain(framed: FramedStream, what: string): Promise<Outcome> {
  const frames: Frame[] = [];
  const run = async (): Promise<Outcome> => {
    try {
      for (;;) {
        const frame = await framed.read();
        if (frame === undefined) return { frames, end: 'end' };
        frames.push(decodeFrame(frame, 4, MiB));
      }
    } catch (error) {
      return { frames, end: (error as Error).message || String(error) };
    }
  };
  return withDeadline(run(), 10_000, what);
}

async function assertAlive(target: NodeProcess): Promise<void> {
  assert.equal(target.process.exitCode, null, `the node is still running; stderr:\n${target.stderrText()}`);
  assert.equal(target.process.signalCode, null);
  await target.status();
}

describe('a hostile libp2p peer against a ckv node', () => {
  let target: NodeProcess;
  let raw: CkvLibp2p;

  before(async () => {
    target = await startPeer('target', { args: fast });
    raw = await rawNode();
    await raw.dial(multiaddr(target.address));
  });

  it('gossip: garbage and malformed messages are rejected and counted; the node stays up', async () => {
    const pubsub = raw.services.pubsub;
    pubsub.subscribe(topic);
    await waitFor(() => pubsub.getSubscribers(topic).some((p) => p.toString() === target.peerId), {
      deadlineMs: 10_000,
      what: 'the raw node to see the target subscribed',
    });

    const entry = { key: 'hostile/x', value: new Uint8Array([1, 2, 3]), version: { hlc: hlcPack(Date.now(), 0), node: '00000000000000aa' } };
    const valid = encodeGossip({ type: 'entry', entry });
    const withFlags = Uint8Array.from(valid);
    withFlags[3 + entry.key.length] = 0x80; // u8 version, u8 type, varint key length, key, then flags
    const messages: [string, Uint8Array][] = [
      ['random bytes', Uint8Array.from([0xab, ...randomBytes(63)])],
      ['version only', Uint8Array.of(1)],
      ['unknown type', Uint8Array.of(1, 99, 1, 2, 3)],
      ['version 2', Uint8Array.from([2, ...valid.subarray(1)])],
      ['truncated entry', valid.subarray(0, valid.byteLength - 2)],
      ['trailing byte', Uint8Array.from([...valid, 0])],
      ['unknown entry flags', withFlags],
      ['empty key', Uint8Array.from([1, 1, 0, ...valid.subarray(3 + entry.key.length)])],
      ['leave with a huge length', Uint8Array.of(1, 3, 0xff, 0xff, 0xff, 0xff, 0x0f, 65, 66)],
      ['announce over the value limit', encodeGossip({ type: 'announce', key: 'hostile/big', version: entry.version, valueBytes: 65 * MiB, origin: raw.peerId.toString() })],
    ];
    const before = counter(await target.status(), 'gossip_rejected');
    for (const [name, data] of messages) {
      const result = await pubsub.publish(topic, data);
      assert.ok(result.recipients.some((p) => p.toString() === target.peerId), `"${name}" was sent to the target`);
    }
    await waitFor(async () => counter(await target.status(), 'gossip_rejected') - before >= messages.length, {
      deadlineMs: 10_000,
      what: `gossip_rejected to rise by ${messages.length}`,
    });
    const after = await target.status();
    assert.equal(counter(after, 'gossip_rejected') - before, messages.length, 'each malformed message counted once');
    assert.equal(after.keyCount, '0', 'nothing malformed reached the store');
    await assertAlive(target);
  });

  it('sync: malformed frames end the session and are counted; the node keeps serving', async () => {
    const address = multiaddr(target.address);
    const open = async (): Promise<{ stream: Stream; framed: FramedStream }> => {
      const stream = await raw.dialProtocol(address, syncProtocol, { signal: AbortSignal.timeout(10_000) });
      return { stream, framed: new FramedStream(stream, { frameBytesMax: MiB, signal: AbortSignal.timeout(15_000) }) };
    };
    const rejected = async (): Promise<number> => counter(await target.status(), 'sync_rejected');
    const start = await rejected();

    // 1. Random bytes, unframed, then our end closes.
    {
      const { stream, framed } = await open();
      stream.send(new Uint8Array(randomBytes(4096)));
      await stream.close().catch(() => undefined);
      const outcome = await drain(framed, 'the node to end the random-bytes session');
      assert.ok(outcome.frames.every((f) => f.type === FrameType.refuse), `only a refusal, if anything: ${JSON.stringify(outcome)}`);
    }
    await assertAlive(target);

    // 2. A frame of random bytes (version 1, no such frame type).
    let expected = 0;
    {
      const { framed } = await open();
      await framed.write(garbageFrame());
      const outcome = await drain(framed, 'the node to end the garbage-frame session');
      assert.equal(outcome.frames.length, 0);
      assert.notEqual(outcome.end, 'end', 'the node resets the stream');
      expected++;
    }
    await waitFor(async () => (await rejected()) - start >= expected, { deadlineMs: 5_000, what: 'sync_rejected to count the garbage frame' });

    // 3. A Hello with a bad protocol version: a typed refusal.
    {
      const { framed } = await open();
      const frame = encodeFrame(hello());
      frame[0] = 99;
      await framed.write(frame);
      const outcome = await drain(framed, 'the node to answer the bad-version Hello');
      assert.equal(outcome.frames.length, 1, JSON.stringify(outcome));
      const [refusal] = outcome.frames;
      assert.equal(refusal?.type, FrameType.refuse);
      assert.equal(refusal.type === FrameType.refuse && refusal.reason, RefuseReason.unsupportedVersion);
    }
    await assertAlive(target);

    // 4. A truncated Hello.
    {
      const { framed } = await open();
      const frame = encodeFrame(hello());
      await framed.write(frame.subarray(0, 20));
      const outcome = await drain(framed, 'the node to end the truncated-Hello session');
      assert.equal(outcome.frames.length, 0);
      assert.notEqual(outcome.end, 'end');
      expected++;
    }

    // 5. A valid Hello (the node answers and waits for the next step), then garbage.
    {
      const { framed } = await open();
      await framed.write(encodeFrame(hello()));
      const first = await withDeadline(framed.read(), 10_000, 'the answer to a valid Hello');
      assert.ok(first);
      assert.equal(decodeFrame(first, 4, MiB).type, FrameType.children, 'the node descends: a root nobody has');
      await framed.write(garbageFrame(2048));
      const outcome = await drain(framed, 'the node to end the session after the garbage');
      assert.equal(outcome.frames.length, 0);
      assert.notEqual(outcome.end, 'end');
      expected++;
    }

    // 6. A length prefix announcing a 100 MiB frame (over the 64 MiB value limit), then bytes.
    {
      const { stream, framed } = await open();
      stream.send(encodeVarint(100 * MiB));
      stream.send(new Uint8Array(64 * 1024));
      const outcome = await drain(framed, 'the node to reset the stream of the enormous frame');
      assert.equal(outcome.frames.length, 0);
      assert.notEqual(outcome.end, 'end', 'the node resets the stream');
      expected++;
    }

    await waitFor(async () => (await rejected()) - start >= expected, {
      deadlineMs: 10_000,
      what: `sync_rejected to rise by at least ${expected}`,
    });
    const rejectedNow = (await rejected()) - start;
    console.log(`[measure] hostile sync: sync_rejected rose by ${rejectedNow} for ${expected} malformed sessions (+1 random-bytes session)`);
    await assertAlive(target);

    // The node still serves: the CLI, and a normal peer's sync (gossip off, so only sync can carry it).
    await runCliOk(['put', 'after/hostile', 'still serving'], { socket: target.socket });
    assert.equal((await runCliOk(['get', 'after/hostile'], { socket: target.socket })).stdout.toString(), 'still serving');
    const peer = await startPeer('normal', { bootstrap: [target], args: ['--test-no-gossip', ...fast] });
    await waitMesh([target, peer]);
    const [t, p] = await waitConverged([target, peer], 20_000);
    assert.equal(p!.keyCount, t!.keyCount);
    assert.ok(Number(p!.keyCount) >= 1);
    assert.ok(counter(p!, 'sync_entries_applied') >= 1, 'the normal peer got the data by sync');
    assert.equal((await peer.client.get('after/hostile')).value.toString(), 'still serving');
    await assertAlive(target);
  });
});

describe('more sync sessions than the node serves at once', () => {
  it('answers the surplus Hellos with Refuse(busy) and serves again once slots free up', async () => {
    const target = await startPeer('busy-target', { args: fast });
    // Three peers, two sessions each: a node serves at most inboundSessionsPerPeerMax (2) for
    // one peer, so the first four sessions fill its slots from two peers and the third peer's
    // two are past the node-wide limit.
    const raws = [await rawNode(), await rawNode(), await rawNode()];
    const address = multiaddr(target.address);
    for (const r of raws) await r.dial(address);
    const raw = raws[0]!;
    const sessionsMax = 4;
    const total = sessionsMax + 2;
    assert.equal(inboundSessionsPerPeerMax, 2, 'two sessions a peer: the peers below fill the slots evenly');

    const streams: FramedStream[] = [];
    for (let i = 0; i < total; i++) {
      const stream = await raws[Math.floor(i / 2)]!.dialProtocol(address, syncProtocol, { signal: AbortSignal.timeout(10_000) });
      const framed = new FramedStream(stream, { frameBytesMax: MiB, signal: AbortSignal.timeout(30_000) });
      // A Hello that cannot be answered InSync, so each served session stays open; we never send the next step.
      await framed.write(encodeFrame(hello({ salt: i })));
      streams.push(framed);
    }
    const replies: Frame[] = [];
    for (const [i, framed] of streams.entries()) {
      const frame = await withDeadline(framed.read(), 10_000, `the reply on stream ${i}`);
      assert.ok(frame, `stream ${i} got a reply`);
      replies.push(decodeFrame(frame, 4, MiB));
    }
    const busy = replies.map((f, i) => [i, f] as const).filter(([, f]) => f.type === FrameType.refuse);
    assert.deepEqual(
      busy.map(([i]) => i),
      [4, 5],
      `the sessions past the first ${sessionsMax} are refused: ${JSON.stringify(replies.map((f) => f.type))}`,
    );
    for (const [, f] of busy) assert.equal(f.type === FrameType.refuse && f.reason, RefuseReason.busy);
    for (const f of replies.slice(0, sessionsMax)) assert.equal(f.type, FrameType.children);
    assert.equal(counter(await target.status(), 'sync_refused_busy'), 2);

    // Drop the hanging sessions: the node frees their slots and serves a new session.
    for (const framed of streams) framed.abort(new Error('test done'));
    await waitFor(
      async () => {
        const stream = await raw.dialProtocol(address, syncProtocol, { signal: AbortSignal.timeout(5_000) });
        const framed = new FramedStream(stream, { frameBytesMax: MiB, signal: AbortSignal.timeout(5_000) });
        try {
          await framed.write(encodeFrame(hello()));
          const reply = await framed.read();
          return reply !== undefined && decodeFrame(reply, 4, MiB).type === FrameType.children;
        } finally {
          framed.abort(new Error('probe done'));
        }
      },
      { deadlineMs: 10_000, intervalMs: 100, what: 'the node to serve a session again' },
    );
    await assertAlive(target);
  });
});

/**
 * Opens a sync session from `from`, sends a Hello that cannot be answered InSync (so a served
 * session stays open, waiting for our next step) and returns the node's first reply.
 */
async function helloSession(from: CkvLibp2p, address: Multiaddr, salt: number): Promise<{ framed: FramedStream; reply: Frame }> {
  const stream = await from.dialProtocol(address, syncProtocol, { signal: AbortSignal.timeout(10_000) });
  const framed = new FramedStream(stream, { frameBytesMax: MiB, signal: AbortSignal.timeout(60_000) });
  await framed.write(encodeFrame(hello({ salt })));
  const frame = await withDeadline(framed.read(), 10_000, `the reply to Hello ${salt}`);
  assert.ok(frame, `Hello ${salt} got a reply`);
  return { framed, reply: decodeFrame(frame, 4, MiB) };
}

describe('idle and greedy sync sessions', () => {
  it(`a Hello followed by silence gives its slot back within the idle timeout (${syncIdleMsMax} ms)`, async () => {
    const target = await startPeer('idle-target', { args: fast });
    const address = multiaddr(target.address);
    const [a, b, c] = [await rawNode(), await rawNode(), await rawNode()];
    for (const r of [a, b, c]) await r.dial(address);

    // a and b take the four slots, each session a Hello and then silence.
    const openedAtMs = Date.now();
    const silent: FramedStream[] = [];
    for (const [i, from] of [a, a, b, b].entries()) {
      const { framed, reply } = await helloSession(from, address, i);
      assert.equal(reply.type, FrameType.children, `silent session ${i} is served`);
      silent.push(framed);
    }
    const refused = await helloSession(c, address, 10);
    assert.equal(refused.reply.type, FrameType.refuse, 'every slot is held');
    refused.framed.abort(new Error('probe done'));

    // The node resets each silent session after the idle timeout, long before the 60 s
    // session timeout (drain gives each 10 s).
    for (const [i, framed] of silent.entries()) {
      const outcome = await drain(framed, `the node to end silent session ${i}`);
      assert.equal(outcome.frames.length, 0);
      assert.notEqual(outcome.end, 'end', `the node resets silent session ${i}`);
    }
    const endedAfterMs = Date.now() - openedAtMs;
    console.log(`[measure] 4 silent sessions reset ${endedAfterMs} ms after they opened (idle timeout ${syncIdleMsMax} ms)`);
    assert.ok(endedAfterMs < syncIdleMsMax + 5_000, `silent sessions ended after ${endedAfterMs} ms`);

    // Their slots are free again: c is served.
    await waitFor(
      async () => {
        const { framed, reply } = await helloSession(c, address, 11);
        framed.abort(new Error('probe done'));
        return reply.type === FrameType.children;
      },
      { deadlineMs: 3_000, intervalMs: 100, what: 'a new session to be served once the silent ones ended' },
    );
    await assertAlive(target);
  });

  it(`one peer gets at most ${inboundSessionsPerPeerMax} of the 4 slots; another peer is still served`, async () => {
    const target = await startPeer('greedy-target', { args: fast });
    const address = multiaddr(target.address);
    const greedy = await rawNode();
    const other = await rawNode();
    for (const r of [greedy, other]) await r.dial(address);
    const busyBefore = counter(await target.status(), 'sync_refused_busy');

    const sessions: { framed: FramedStream; reply: Frame }[] = [];
    for (let i = 0; i < 4; i++) sessions.push(await helloSession(greedy, address, i));
    assert.deepEqual(
      sessions.map((s) => s.reply.type),
      [FrameType.children, FrameType.children, FrameType.refuse, FrameType.refuse],
      'the greedy peer is served twice and refused after',
    );
    for (const { reply } of sessions.slice(2)) {
      assert.equal(reply.type === FrameType.refuse && reply.reason, RefuseReason.busy);
      assert.match(reply.type === FrameType.refuse ? reply.message : '', /for this peer/);
    }

    // Two slots are still free for everyone else.
    const served = await helloSession(other, address, 99);
    assert.equal(served.reply.type, FrameType.children, 'another peer is served while the greedy one holds its share');
    assert.equal(counter(await target.status(), 'sync_refused_busy') - busyBefore, 2);
    for (const s of [...sessions, served]) s.framed.abort(new Error('test done'));
    await assertAlive(target);
  });
});

// A hostile member speaks for another node: an old-style unsigned leave naming it, a signed
// leave naming it but signed with the hostile key, and a signed leave of the hostile peer
// claiming the victim's node id. The target must keep the victim up, count the forgeries, and
// keep syncing with it: a value too large to gossip (it only travels by sync) still arrives.
describe('spoofed membership messages', () => {
  it('a leave about another node is never taken; sync with it goes on', async () => {
    const target = await startPeer('target', { args: fast });
    const victim = await startPeer('victim', { bootstrap: [target], args: fast });
    await waitMesh([target, victim]);
    const { node: raw, privateKey: rawKey } = await rawNodeWithKey();
    await raw.dial(multiaddr(target.address));
    const pubsub = raw.services.pubsub;
    pubsub.subscribe(topic);
    await waitFor(() => pubsub.getSubscribers(topic).some((p) => p.toString() === target.peerId), {
      deadlineMs: 10_000,
      what: 'the raw node to see the target subscribed',
    });

    const forged = (message: MemberMessage, signature: Uint8Array, body = encodeMemberMessage(message)): Uint8Array =>
      encodeGossip({ type: 'member', message, body, signature });
    const victimLeave: MemberMessage = { type: 'leave', nodeId: victim.nodeId, peerId: victim.peerId, incarnation: 1_000, seq: 1_000 };
    const claimsVictimId: MemberMessage = { type: 'leave', nodeId: victim.nodeId, peerId: raw.peerId.toString(), incarnation: 1_000, seq: 1 };
    const messages = [
      encodeGossip({ type: 'leave', peer: victim.peerId }),
      forged(victimLeave, await rawKey.sign(encodeMemberMessage(victimLeave))),
      forged(claimsVictimId, await rawKey.sign(encodeMemberMessage(claimsVictimId))),
    ];
    const before = counter(await target.status(), 'member_rejected');
    for (const data of messages) await pubsub.publish(topic, data);
    await waitFor(async () => counter(await target.status(), 'member_rejected') - before >= 2, {
      deadlineMs: 10_000,
      what: 'the two signed forgeries to be counted',
    });
    const stateOfVictim = async (): Promise<string | undefined> => (await target.peers()).find((p) => p.peerId === victim.peerId)?.state;
    assert.equal(await stateOfVictim(), 'up');

    const big = new Uint8Array(randomBytes(256 * 1024));
    await victim.client.put('spoof/big', big);
    await waitFor(async () => (await target.client.get('spoof/big')).found, { deadlineMs: 20_000, what: 'the 256 KiB value to reach the target by sync' });
    assert.deepEqual(new Uint8Array((await target.client.get('spoof/big')).value), big);
    assert.equal(await stateOfVictim(), 'up');
  });
});
