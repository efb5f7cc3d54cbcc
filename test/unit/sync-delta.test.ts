/**
 * Catch-up by delta (docs/design-applied-sequence.md, part 1): the applied-sequence index as
 * the replica keeps it, the Hello extension and Position frame, the delta session over two
 * memory replicas (and its fallbacks), and the watermarks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MalformedError } from '../../src/core/errors.js';
import { Replica } from '../../src/core/replica.js';
import { runLoopbackSession, type LoopbackResult } from '../../src/core/sync-loopback.js';
import { FrameType, decodeFrame, encodeFrame, type HelloFrame, type PositionFrame } from '../../src/core/sync-frames.js';
import { driveSession } from '../../src/core/session-driver.js';
import { SyncInitiator, SyncResponder, type SyncEffect, type SyncResult } from '../../src/core/sync-session.js';
import { SyncWatermarks } from '../../src/core/sync-watermarks.js';
import { entriesFirstFrameBytesTarget, entriesFrameBytesTarget } from '../../src/core/limits.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { allEntries, value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const cluster = 'test';

async function open(nodeId: string, store = new MemoryStore(), seed = 1, wallMs = 1_700_000_000_000): Promise<Replica> {
  let state = seed;
  const rng = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  return Replica.open({ nodeId, store, wallClockMs: () => wallMs, rng });
}

/** One session a -> b as the node runs it: a names b's watermark, and records the next one. */
async function deltaSync(a: Replica, b: Replica): Promise<LoopbackResult & { recorded: boolean }> {
  const result = await runLoopbackSession(
    { ctx: a.syncContext({ cluster, peerNodeId: b.nodeId }), apply: (entries) => a.applyReceived(entries) },
    { ctx: b.syncContext({ cluster }), apply: (entries) => b.applyReceived(entries) },
    77,
  );
  return { ...result, recorded: a.recordSession(b.nodeId, result.initiator) };
}

function sameState(a: Map<string, unknown>, b: Map<string, unknown>): void {
  assert.deepStrictEqual(a, b);
}

const epoch = (byte: number): Uint8Array => new Uint8Array(16).fill(byte);

describe('applied-sequence index, through the replica', () => {
  it('numbers every applied change, local or remote, one index row per key at its last seq', async () => {
    const store = new MemoryStore();
    const replica = await open(nodeA, store);
    await replica.put('a', value('1'));
    await replica.writeMany([
      { key: 'b', value: value('1') },
      { key: 'a', value: value('2') },
    ]);
    await replica.applyRemote([{ key: 'c', value: null, version: { hlc: 5n, node: nodeB } }]);
    await replica.delete('b');
    // Five changes (a; b and a in one commit; c; b); 'a' and 'b' were overwritten, so their
    // rows moved to their last seq.
    assert.equal(replica.position().seq, 5);
    assert.deepStrictEqual(store.indexRows(), [
      [3, 'a'],
      [4, 'c'],
      [5, 'b'],
    ]);
    // A stale remote entry changes nothing and takes no seq.
    await replica.applyRemote([{ key: 'c', value: null, version: { hlc: 1n, node: nodeB } }]);
    assert.equal(replica.position().seq, 5);
    await replica.close();
    const reopened = await open(nodeA, store, 99);
    assert.equal(reopened.position().seq, 5, 'the seq resumes after a restart');
    assert.deepStrictEqual(reopened.epoch, replica.epoch, 'the epoch is made once per store');
    await reopened.put('d', value('x'));
    assert.deepStrictEqual(store.indexRows().at(-1), [6, 'd']);
  });
});

describe('sync frames: the Hello extension and the Position frame', () => {
  const hello: HelloFrame = {
    type: FrameType.hello,
    cluster,
    depth: 4,
    childDigestBytes: 2,
    salt: 9,
    rootDigest: new Uint8Array(32).fill(3),
    rootCount: 12,
    wallMs: 1_700_000_000_000,
  };

  it('reads a Hello without the extension (the older frame) and round-trips one with it', () => {
    assert.deepStrictEqual(decodeFrame(encodeFrame(hello), 2, 1024), hello);
    const withSince: HelloFrame = { ...hello, positions: true, since: { epoch: epoch(7), seq: 2 ** 40 } };
    assert.deepStrictEqual(decodeFrame(encodeFrame(withSince), 2, 1024), withSince);
    const positionsOnly: HelloFrame = { ...hello, positions: true };
    assert.deepStrictEqual(decodeFrame(encodeFrame(positionsOnly), 2, 1024), positionsOnly);
  });

  it('round-trips a Position frame', () => {
    const frame: PositionFrame = { type: FrameType.position, position: { epoch: epoch(1), seq: 123_456 }, rootDigest: new Uint8Array(32).fill(9), rootCount: 5, delta: true };
    assert.deepStrictEqual(decodeFrame(encodeFrame(frame), 2, 1024), frame);
  });

  it('refuses a malformed extension or Position as MalformedError', () => {
    const base = encodeFrame(hello);
    const bad = [
      new Uint8Array([...base, 2, 0]), // unknown extension tag
      new Uint8Array([...base, 1, 2]), // since flag neither 0 nor 1
      new Uint8Array([...base, 1, 1, ...epoch(1).subarray(0, 10)]), // epoch cut short
      new Uint8Array([...base, 1, 0, 0]), // trailing byte
    ];
    for (const bytes of bad) assert.throws(() => decodeFrame(bytes, 2, 1024), MalformedError);
    const position = encodeFrame({ type: FrameType.position, position: { epoch: epoch(1), seq: 1 }, rootDigest: new Uint8Array(32), rootCount: 0, delta: false });
    const badFlag = position.slice();
    badFlag[badFlag.length - 1] = 2;
    assert.throws(() => decodeFrame(badFlag, 2, 1024), MalformedError);
    assert.throws(() => decodeFrame(position.subarray(0, 20), 2, 1024), MalformedError);
  });
});

describe('catch-up by delta', () => {
  it('a new node gets everything in one scan and a watermark; a later session gets only what changed', async () => {
    const a = await open(nodeA, new MemoryStore(), 1);
    const b = await open(nodeB, new MemoryStore(), 2);
    for (let i = 0; i < 50; i++) await b.put(`k${i}`, value(`v${i}`));

    const first = await deltaSync(a, b);
    assert.equal(first.initiator.outcome, 'synced');
    assert.equal(first.initiator.delta, undefined, 'no watermark yet: no delta');
    assert.equal(first.initiator.entriesReceived, 50);
    assert.deepStrictEqual(first.initiator.heldPosition, b.position());
    assert.ok(first.recorded);
    sameState(await allEntries(a), await allEntries(b));

    // B changes 20 keys, 10 of them twice: the delta is the 20 keys, each once, at their last version.
    for (let i = 0; i < 20; i++) await b.put(`k${i}`, value(`w${i}`));
    for (let i = 0; i < 10; i++) await b.put(`k${i}`, value(`x${i}`));
    await b.put('new', value('n'));
    const second = await deltaSync(a, b);
    assert.equal(second.initiator.outcome, 'synced');
    assert.deepStrictEqual(second.initiator.delta, { entries: 21 });
    assert.deepStrictEqual(second.responder.delta, { entries: 21 });
    assert.equal(second.initiator.entriesReceived, 21, 'nothing but the delta: the descent found nothing');
    assert.equal(second.initiator.rounds, 1, 'one round trip: Hello, then Position, the delta and Children that matched');
    assert.deepStrictEqual(second.initiator.heldPosition, b.position());
    sameState(await allEntries(a), await allEntries(b));

    // Nothing changed since: one round trip, in sync, and the watermark stays.
    const third = await deltaSync(a, b);
    assert.equal(third.initiator.outcome, 'in-sync');
    assert.deepStrictEqual(a.watermarkOf(nodeB), b.position());
  });

  it('falls back to the descent when the peer is another epoch (a wiped peer)', async () => {
    const a = await open(nodeA, new MemoryStore(), 1);
    const b = await open(nodeB, new MemoryStore(), 2);
    for (let i = 0; i < 30; i++) await b.put(`k${i}`, value(`v${i}`));
    await deltaSync(a, b);
    // B's directory is made anew (new epoch, seqs from 1), with other data.
    const wiped = await open(nodeB, new MemoryStore(), 3, 1_700_000_000_100);
    assert.notDeepStrictEqual(wiped.epoch, b.epoch);
    for (let i = 0; i < 5; i++) await wiped.put(`k${i}`, value(`new${i}`));
    const result = await deltaSync(a, wiped);
    assert.equal(result.initiator.delta, undefined, 'no delta from another epoch');
    assert.equal(result.initiator.outcome, 'synced');
    assert.deepStrictEqual(result.initiator.peerPosition, { epoch: wiped.epoch, seq: 5 }, 'its position as of our Hello');
    assert.equal(wiped.position().seq, 30, 'then it took the 25 keys it lacked from us');
    const aEntries = await allEntries(a);
    for (let i = 0; i < 5; i++) assert.equal(new TextDecoder().decode(aEntries.get(`k${i}`)!.value!), `new${i}`);
  });

  it('a wrong watermark (the initiator lacks what it claims) costs a descent, never data', async () => {
    const a = await open(nodeA, new MemoryStore(), 1);
    const b = await open(nodeB, new MemoryStore(), 2);
    for (let i = 0; i < 40; i++) await b.put(`k${i}`, value(`v${i}`));
    await a.put('own', value('a'));
    // As if A had lost everything it held from B: it names B's current position.
    a.recordSession(nodeB, { heldPosition: b.position() } as SyncResult);
    const result = await deltaSync(a, b);
    assert.deepStrictEqual(result.initiator.delta, { entries: 0 });
    assert.equal(result.initiator.heldPosition, undefined, 'the roots differed after the delta');
    assert.equal(result.initiator.outcome, 'synced');
    assert.equal((await allEntries(a)).size, 41);
    assert.equal((await allEntries(b)).size, 41, 'the descent also pushed what B lacked');
  });

  // The receiver does most of a catch-up's work: the first frame of the delta is small
  // (entriesFirstFrameBytesTarget) so it starts while the sender reads on; the rest are large.
  it('streams a delta in a small first frame, then frames of entriesFrameBytesTarget', async () => {
    const a = await open(nodeA, new MemoryStore(), 1);
    const b = await open(nodeB, new MemoryStore(), 2);
    await b.put('first', value('v'));
    await deltaSync(a, b);
    for (let i = 0; i < 4000; i++) await b.put(`m${i}`, value('x'.repeat(100)));
    const entriesFrames: number[] = [];
    const result = await runLoopbackSession(
      { ctx: a.syncContext({ cluster, peerNodeId: b.nodeId }), apply: (entries) => a.applyReceived(entries) },
      { ctx: b.syncContext({ cluster }), apply: (entries) => b.applyReceived(entries) },
      77,
      {
        onFrame: (direction, frame) => {
          if (direction === 'toInitiator' && frame[1] === FrameType.entries) entriesFrames.push(frame.byteLength); // [1]: the frame type
        },
      },
    );
    assert.equal(result.initiator.delta?.entries, 4000);
    assert.ok(entriesFrames.length >= 3, `several frames (${entriesFrames.join(', ')})`);
    const entryBytesMax = 200;
    assert.ok(entriesFrames[0]! >= entriesFirstFrameBytesTarget && entriesFrames[0]! < entriesFirstFrameBytesTarget + entryBytesMax + 64, `first frame ${entriesFrames[0]} bytes`);
    assert.ok(entriesFrames[1]! >= entriesFrameBytesTarget, `second frame ${entriesFrames[1]} bytes`);
  });

  it('refuses a delta it did not ask for, and a Position that is not the first frame', async () => {
    const a = await open(nodeA);
    const run = async (frames: Uint8Array[]): Promise<void> => {
      const initiator = new SyncInitiator(a.syncContext({ cluster }), 1);
      for await (const effect of initiator.start()) void effect;
      for (const frame of frames) {
        const effects: SyncEffect[] = [];
        for await (const effect of initiator.handle(frame)) effects.push(effect);
      }
    };
    const position = (delta: boolean): Uint8Array =>
      encodeFrame({ type: FrameType.position, position: { epoch: epoch(1), seq: 5 }, rootDigest: new Uint8Array(32), rootCount: 1, delta });
    await assert.rejects(run([position(true)]), MalformedError);
    await assert.rejects(run([encodeFrame({ type: FrameType.entries, entries: [] }), position(false)]), MalformedError);
  });
});

describe('the responder reports the Hello before it answers', () => {
  // The peer's clock offset is measured when onHello runs: after a streamed delta it would
  // read the peer as behind by the delta's duration (and a node refused writes as "ahead").
  it('calls onHello before the first frame of its answer is sent, delta or not', async () => {
    const a = await open(nodeA, new MemoryStore(), 1);
    const b = await open(nodeB, new MemoryStore(), 2);
    for (let i = 0; i < 20; i++) await b.put(`k${i}`, value(`v${i}`));
    await deltaSync(a, b);
    for (let i = 0; i < 3000; i++) await b.put(`m${i}`, value('x'.repeat(100)));
    const hello: Uint8Array[] = [];
    for await (const effect of new SyncInitiator(a.syncContext({ cluster, peerNodeId: nodeB }), 5).start()) if (effect.kind === 'send') hello.push(effect.frame);
    const events: string[] = [];
    let delivered = false;
    await assert.rejects(
      driveSession(
        new SyncResponder(b.syncContext({ cluster })),
        {
          send: (frame) => void events.push(`send ${frame[1]}`),
          receive: async () => {
            if (delivered) return undefined; // then the initiator "goes away"
            delivered = true;
            return hello[0];
          },
          close: () => undefined,
        },
        { apply: async () => undefined, onHello: () => void events.push('hello') },
      ),
      /ended the session early/,
    );
    assert.equal(events[0], 'hello');
    assert.equal(events[1], `send ${FrameType.position}`);
    assert.ok(events.filter((event) => event === `send ${FrameType.entries}`).length >= 2, 'a delta of several frames followed');
  });
});

describe('SyncWatermarks', () => {
  it('moves forward within an epoch, is replaced by another epoch, and is bounded', () => {
    const marks = new SyncWatermarks(3);
    assert.ok(marks.record('p1', { epoch: epoch(1), seq: 10 }));
    assert.ok(!marks.record('p1', { epoch: epoch(1), seq: 5 }), 'an older session ending late does not move it back');
    assert.ok(marks.record('p1', { epoch: epoch(2), seq: 3 }));
    assert.deepStrictEqual(marks.get('p1'), { epoch: epoch(2), seq: 3 });
    for (const peer of ['p2', 'p3', 'p4']) marks.record(peer, { epoch: epoch(1), seq: 1 });
    assert.equal(marks.size, 3);
    assert.equal(marks.get('p1'), undefined, 'the one recorded longest ago went');
  });

  it('round-trips through its meta row; a row that does not decode gives none', () => {
    const marks = new SyncWatermarks();
    marks.record(nodeB, { epoch: epoch(4), seq: 2 ** 45 });
    marks.record(nodeA, { epoch: epoch(5), seq: 0 });
    const decoded = SyncWatermarks.decode(marks.encode());
    assert.deepStrictEqual(decoded.get(nodeB), { epoch: epoch(4), seq: 2 ** 45 });
    assert.deepStrictEqual(decoded.get(nodeA), { epoch: epoch(5), seq: 0 });
    assert.equal(SyncWatermarks.decode(new Uint8Array([1, 5, 0])).size, 0);
    assert.equal(SyncWatermarks.decode(marks.encode(), 1).size, 0, 'more rows than the bound: dropped');
  });

  it('survives a restart of the replica', async () => {
    const store = new MemoryStore();
    const a = await open(nodeA, store);
    assert.ok(a.recordSession(nodeB, { heldPosition: { epoch: epoch(8), seq: 42 } } as SyncResult));
    await a.close();
    const reopened = await open(nodeA, store);
    assert.deepStrictEqual(reopened.watermarkOf(nodeB), { epoch: epoch(8), seq: 42 });
  });
});
