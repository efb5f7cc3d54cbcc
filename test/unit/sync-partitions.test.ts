/**
 * Sync sessions restricted to partitions (partitioned mode): a session converges exactly the
 * partitions both sides cover, leaves every other partition as it was, never trusts a peer
 * beyond its own bitmap, and compares roots only when both sides cover the same bitmap.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { keyHash, type Entry } from '../../src/core/entry.js';
import { bitmapPartitions, partitionBitmap } from '../../src/core/layout.js';
import { MalformedError } from '../../src/core/errors.js';
import { PartitionView } from '../../src/core/partition-view.js';
import type { Replica } from '../../src/core/replica.js';
import { FrameType, decodeFrame, encodeFrame, type Frame } from '../../src/core/sync-frames.js';
import { runLoopbackSession, type LoopbackResult } from '../../src/core/sync-loopback.js';
import { SyncInitiator, SyncResponder, type SyncEffect } from '../../src/core/sync-session.js';
import { allEntries, memoryReplica, value, type TestClock } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const cluster = 'test';

function partitionOfKey(key: string): number {
  return keyHash(key)[0]!;
}

/** `count` keys whose partition is `partition`. */
function keysIn(partition: number, count: number, tag = 'k'): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if (partitionOfKey(`${tag}${i}`) === partition) keys.push(`${tag}${i}`);
  return keys;
}

function restrictedPair(a: Replica, b: Replica, aPartitions?: Uint8Array, bPartitions?: Uint8Array, salt = 99): Promise<LoopbackResult> {
  return runLoopbackSession(
    { ctx: a.syncContext({ cluster, partitions: aPartitions }), apply: (entries) => a.applyReceived(entries) },
    { ctx: b.syncContext({ cluster, partitions: bPartitions }), apply: (entries) => b.applyReceived(entries) },
    salt,
  );
}

/** Entries by key, grouped: those of the partitions in `bitmap`, and the others. */
async function split(replica: Replica, bitmap: Uint8Array): Promise<{ inside: Map<string, Entry>; outside: Map<string, Entry> }> {
  const inside = new Map<string, Entry>();
  const outside = new Map<string, Entry>();
  for (const [key, entry] of await allEntries(replica)) {
    (bitmap[partitionOfKey(key) >> 3]! & (1 << (partitionOfKey(key) & 7)) ? inside : outside).set(key, entry);
  }
  return { inside, outside };
}

async function collect(effects: AsyncGenerator<SyncEffect>): Promise<SyncEffect[]> {
  const out: SyncEffect[] = [];
  for await (const effect of effects) out.push(effect);
  return out;
}

function sentFrames(effects: SyncEffect[]): Frame[] {
  return effects.flatMap((effect) => (effect.kind === 'send' ? [decodeFrame(effect.frame, 4, 1 << 20)] : []));
}

describe('sync sessions restricted to partitions', () => {
  it('converge exactly the shared partitions and leave the others untouched', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 40 }),
        fc.array(fc.tuple(fc.nat(3000), fc.constantFrom('a', 'b', 'both'), fc.boolean()), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        async (partitions, ops, salt) => {
          const clock: TestClock = { ms: 1_700_000_000_000 };
          const a = await memoryReplica(nodeA, clock);
          const b = await memoryReplica(nodeB, clock);
          for (const [k, side, del] of ops) {
            clock.ms += 1;
            for (const r of side === 'both' ? [a, b] : side === 'a' ? [a] : [b]) {
              if (del) await r.delete(`k${k}`);
              else await r.put(`k${k}`, value(`${r.nodeId}-${clock.ms}`));
            }
          }
          const bitmap = partitionBitmap(partitions);
          const beforeA = await split(a, bitmap);
          const beforeB = await split(b, bitmap);
          const result = await restrictedPair(a, b, bitmap, bitmap, salt);
          assert.ok(result.initiator.outcome === 'synced' || result.initiator.outcome === 'in-sync', result.initiator.outcome);
          assert.deepEqual(result.initiator.partitions, bitmap);
          assert.deepEqual(result.responder.partitions, bitmap);
          const afterA = await split(a, bitmap);
          const afterB = await split(b, bitmap);
          assert.deepEqual(afterA.inside, afterB.inside, 'the shared partitions converged');
          assert.deepEqual(afterA.outside, beforeA.outside, "a's other partitions untouched");
          assert.deepEqual(afterB.outside, beforeB.outside, "b's other partitions untouched");
          // Every winning version of the shared partitions survived.
          for (const [key, entry] of [...beforeA.inside, ...beforeB.inside]) assert.ok(afterA.inside.has(key), `${key} (${entry.version.node}) lost`);
          assert.equal(result.initiator.entriesOutsidePartitions, 0);
          assert.equal(result.responder.entriesOutsidePartitions, 0);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('cover only what the responder shares too: the AND of both bitmaps', async () => {
    const a = await memoryReplica(nodeA);
    const b = await memoryReplica(nodeB);
    for (const p of [1, 2, 3]) for (const key of keysIn(p, 20)) await b.put(key, value(`b-${key}`));
    const result = await restrictedPair(a, b, partitionBitmap([1, 2]), partitionBitmap([2, 3]));
    assert.equal(result.initiator.outcome, 'synced');
    assert.deepEqual(bitmapPartitions(result.initiator.partitions!), [2]);
    assert.deepEqual(bitmapPartitions(result.responder.partitions!), [2]);
    const got = [...(await allEntries(a)).keys()];
    assert.equal(got.length, 20);
    for (const key of got) assert.equal(partitionOfKey(key), 2);
  });

  it('a new owner gets its partitions whole in one round trip, and nothing else', async () => {
    const a = await memoryReplica(nodeA);
    const b = await memoryReplica(nodeB);
    for (let i = 0; i < 2000; i++) await b.put(`key-${i}`, value(`value-${i}`));
    const bitmap = partitionBitmap([5, 77, 200]);
    const result = await restrictedPair(a, b, bitmap, undefined);
    assert.equal(result.initiator.outcome, 'synced');
    assert.equal(result.initiator.rounds, 1);
    const expected = (await split(b, bitmap)).inside;
    assert.ok(expected.size > 0);
    assert.deepEqual(await allEntries(a), expected);
    assert.equal(result.initiator.entriesReceived, expected.size);
  });

  it('a whole transfer cut after any frame keeps what arrived; another source then sends only the rest', async () => {
    const bitmap = partitionBitmap([5, 77, 200]);
    const b = await memoryReplica(nodeB);
    const c = await memoryReplica('00000000000000cc');
    const big = new Uint8Array(2048).fill(7);
    for (const p of [5, 77, 200]) {
      for (const key of keysIn(p, 150, `p${p}-`)) await b.put(key, big);
    }
    await c.applyRemote([...(await allEntries(b)).values()]); // c holds the same rows (a co-owner)
    const expected = (await split(b, bitmap)).inside;
    // What the source sends to an empty new owner: Partitions, Entries frames, an empty Children.
    const probe = new SyncInitiator((await memoryReplica(nodeA)).syncContext({ cluster, partitions: bitmap }), 7);
    const hello = (await collect(probe.start())).flatMap((e) => (e.kind === 'send' ? [e.frame] : []))[0]!;
    const answer = (await collect(new SyncResponder(b.syncContext({ cluster, partitions: bitmap })).handle(hello))).flatMap((e) =>
      e.kind === 'send' ? [e.frame] : [],
    );
    const types = answer.map((frame) => decodeFrame(frame, 4, 1 << 20).type);
    assert.equal(types[0], FrameType.partitions);
    assert.equal(types.at(-1), FrameType.children);
    assert.ok(types.filter((t) => t === FrameType.entries).length >= 3, 'several frames of entries');
    for (let cut = 0; cut < answer.length; cut++) {
      const a = await memoryReplica(nodeA);
      const initiator = new SyncInitiator(a.syncContext({ cluster, partitions: bitmap }), 7);
      await collect(initiator.start());
      let arrived = 0;
      for (const frame of answer.slice(0, cut)) {
        for (const effect of await collect(initiator.handle(frame))) {
          if (effect.kind === 'apply') {
            await a.applyReceived(effect.entries);
            arrived += effect.entries.length;
          }
        }
      }
      assert.equal((await allEntries(a)).size, arrived, `cut ${cut}: what arrived is kept`);
      const rest = await restrictedPair(a, c, bitmap, undefined);
      assert.ok(['synced', 'in-sync'].includes(rest.initiator.outcome), rest.initiator.outcome);
      assert.deepEqual(await allEntries(a), expected, `cut ${cut}: complete from the other source`);
      assert.equal(rest.initiator.entriesReceived, expected.size - arrived, `cut ${cut}: only the rest travelled`);
      if (arrived > 0 && arrived < expected.size) assert.ok(rest.initiator.rounds > 1, 'the partial owner descends');
    }
  });

  it('say in-sync when only other partitions differ, and not when a covered one does', async () => {
    const a = await memoryReplica(nodeA);
    const b = await memoryReplica(nodeB);
    const shared = keysIn(10, 30);
    for (const key of shared) {
      const version = await a.put(key, value(key));
      await b.applyRemote([{ key, value: value(key), version }]);
    }
    for (const key of keysIn(11, 30, 'a')) await a.put(key, value('only-a'));
    for (const key of keysIn(12, 30, 'b')) await b.put(key, value('only-b'));
    const quiet = await restrictedPair(a, b, partitionBitmap([10]), partitionBitmap([10, 11, 12]));
    assert.equal(quiet.initiator.outcome, 'in-sync');
    assert.equal(quiet.initiator.rounds, 1);
    assert.equal(quiet.initiator.entriesReceived + quiet.responder.entriesReceived, 0);

    // One covered partition differs: never in-sync, whatever the other partitions say.
    await b.put(shared[0]!, value('newer'));
    const differs = await restrictedPair(a, b, partitionBitmap([10]), partitionBitmap([10]));
    assert.equal(differs.initiator.outcome, 'synced');
    assert.equal(Buffer.from((await a.get(shared[0]!))!.value!).toString(), 'newer');

    // The initiator asks for more than the responder covers, and those differ: the Hello's
    // root is not comparable, so the session descends over the covered bitmap only.
    for (const key of keysIn(13, 5, 'c')) await b.put(key, value('c'));
    const narrower = await restrictedPair(a, b, partitionBitmap([10, 13]), partitionBitmap([10]));
    assert.equal(narrower.initiator.outcome, 'synced');
    assert.deepEqual(bitmapPartitions(narrower.initiator.partitions!), [10]);
    assert.equal(narrower.initiator.entriesReceived, 0);
  });

  it('the view roots are the roots of exactly the covered partitions', async () => {
    const a = await memoryReplica(nodeA);
    const b = await memoryReplica(nodeB);
    for (const key of keysIn(40, 10)) {
      const version = await a.put(key, value(key));
      await b.applyRemote([{ key, value: value(key), version }]);
    }
    await b.put(keysIn(41, 1)[0]!, value('x'));
    const bitmap = partitionBitmap([40]);
    const viewA = new PartitionView(a.syncContext({ cluster }).tree, bitmap);
    const viewB = new PartitionView(b.syncContext({ cluster }).tree, bitmap);
    assert.deepEqual(viewA.rootDigest, viewB.rootDigest);
    assert.equal(viewA.rootCount, 10);
    assert.notDeepEqual(a.root().digest, b.root().digest);
  });

  it('a hostile initiator: entries outside the bitmap are dropped and counted; a Step pulling them gets none', async () => {
    const responder = await memoryReplica(nodeB);
    for (const p of [20, 21]) for (const key of keysIn(p, 15)) await responder.put(key, value(key));
    const machine = new SyncResponder(responder.syncContext({ cluster, partitions: partitionBitmap([20]) }));
    const initiatorSide = await memoryReplica(nodeA);
    await initiatorSide.put(keysIn(20, 1, 'mine')[0]!, value('m'));
    // The initiator claims partitions 20 and 21; the responder covers 20 only.
    const hello = new SyncInitiator(initiatorSide.syncContext({ cluster, partitions: partitionBitmap([20, 21]) }), 7).start();
    const helloFrame = (await hello.next()).value as { kind: 'send'; frame: Uint8Array };
    const answer = sentFrames(await collect(machine.handle(helloFrame.frame)));
    assert.equal(answer[0]!.type, FrameType.partitions);
    assert.deepEqual(bitmapPartitions((answer[0] as { bitmap: Uint8Array }).bitmap), [20]);
    assert.ok(!answer.some((frame) => frame.type === FrameType.position || frame.type === FrameType.inSync));

    const inside = { key: keysIn(20, 1, 'evil-in')[0]!, value: value('in'), version: { hlc: 1n << 20n, node: nodeA } };
    const outside = [21, 22, 200].map((p) => ({ key: keysIn(p, 1, 'evil-out')[0]!, value: value('out'), version: { hlc: 1n << 20n, node: nodeA } }));
    const applied = (await collect(machine.handle(encodeFrame({ type: FrameType.entries, entries: [inside, ...outside] })))).flatMap((effect) =>
      effect.kind === 'apply' ? effect.entries.entries() : [],
    );
    assert.deepEqual(applied.map((entry) => entry.key), [inside.key]);

    // A Step pulling the level-1 subtree over partitions 16..31 and the whole of partition 21.
    const step = encodeFrame({ type: FrameType.step, level: 1, descend: [], pull: [{ level: 1, index: 1 }, { level: 2, index: 21 }], summaries: [] });
    const sent = sentFrames(await collect(machine.handle(step))).flatMap((frame) => (frame.type === FrameType.entries ? frame.entries : []));
    assert.equal(sent.length, 15);
    for (const entry of sent) assert.equal(partitionOfKey(entry.key), 20);

    const done = (await collect(machine.handle(encodeFrame({ type: FrameType.bye })))).find((effect) => effect.kind === 'done');
    assert.ok(done && done.kind === 'done');
    assert.equal(done.result.entriesOutsidePartitions, 3);
  });

  it('a hostile responder: a wider Partitions frame is malformed; entries outside are dropped and counted', async () => {
    const a = await memoryReplica(nodeA);
    const start = async (): Promise<SyncInitiator> => {
      const initiator = new SyncInitiator(a.syncContext({ cluster, partitions: partitionBitmap([7]) }), 3);
      await collect(initiator.start());
      return initiator;
    };
    const wider = await start();
    await assert.rejects(collect(wider.handle(encodeFrame({ type: FrameType.partitions, bitmap: partitionBitmap([7, 8]) }))), MalformedError);

    const late = await start();
    await collect(late.handle(encodeFrame({ type: FrameType.entries, entries: [] })));
    await assert.rejects(collect(late.handle(encodeFrame({ type: FrameType.partitions, bitmap: partitionBitmap([7]) }))), MalformedError);

    const initiator = await start();
    await collect(initiator.handle(encodeFrame({ type: FrameType.partitions, bitmap: partitionBitmap([7]) })));
    const good = { key: keysIn(7, 1)[0]!, value: value('g'), version: { hlc: 1n << 20n, node: nodeB } };
    const bad = { key: keysIn(9, 1)[0]!, value: value('b'), version: { hlc: 1n << 20n, node: nodeB } };
    const applied = (await collect(initiator.handle(encodeFrame({ type: FrameType.entries, entries: [good, bad] })))).flatMap((effect) =>
      effect.kind === 'apply' ? effect.entries.entries() : [],
    );
    assert.deepEqual(applied.map((entry) => entry.key), [good.key]);
    const done = (await collect(initiator.handle(encodeFrame({ type: FrameType.inSync })))).find((effect) => effect.kind === 'done');
    assert.ok(done && done.kind === 'done');
    assert.equal(done.result.entriesOutsidePartitions, 1);
  });

  it('a Hello with a bitmap round-trips; extensions out of order or repeated are malformed', () => {
    const bitmap = partitionBitmap([0, 9, 255]);
    const since = { epoch: new Uint8Array(16).fill(3), seq: 42 };
    const base = { type: FrameType.hello, cluster, depth: 4, childDigestBytes: 2, salt: 5, rootDigest: new Uint8Array(32), rootCount: 3, wallMs: 9 } as const;
    for (const frame of [
      { ...base, partitions: bitmap },
      { ...base, positions: true, since, partitions: bitmap },
      { ...base, positions: true },
    ]) {
      assert.deepEqual(decodeFrame(encodeFrame(frame), 2, 1024), frame);
    }
    const plain = encodeFrame(base);
    const ext = (...parts: number[][]): Uint8Array => Uint8Array.from([...plain, ...parts.flat()]);
    const partitionsExt = [2, ...bitmap];
    const positionsExt = [1, 0];
    assert.throws(() => decodeFrame(ext(partitionsExt, positionsExt), 2, 1024), MalformedError);
    assert.throws(() => decodeFrame(ext(partitionsExt, partitionsExt), 2, 1024), MalformedError);
    assert.throws(() => decodeFrame(ext([2, 1, 2, 3]), 2, 1024), MalformedError);
    assert.throws(() => decodeFrame(ext([3]), 2, 1024), MalformedError);
    assert.deepEqual(decodeFrame(encodeFrame({ type: FrameType.partitions, bitmap }), 2, 1024), { type: FrameType.partitions, bitmap });
  });

  it('an unrestricted pair is the unrestricted protocol: no Partitions frame, no partitions in the result', async () => {
    const a = await memoryReplica(nodeA);
    const b = await memoryReplica(nodeB);
    for (let i = 0; i < 50; i++) await b.put(`k${i}`, value('v'));
    const result = await restrictedPair(a, b, undefined, undefined);
    assert.equal(result.initiator.partitions, undefined);
    assert.equal(result.initiator.entriesOutsidePartitions, undefined);
    assert.equal((await allEntries(a)).size, 50);
  });
});
