/**
 * The paths a large catch-up takes through a sync session: reading many differing leaves
 * through a cover of few ranges (coverOf), the responder answering a Step in one pass, and
 * the driver applying Entries frames pipelined (bounded, settled before anything else).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Entry } from '../../src/core/entry.js';
import { syncApplyBytesInFlightMax } from '../../src/core/limits.js';
import { MerkleTree } from '../../src/core/merkle.js';
import { sameRoot } from '../../src/core/replica.js';
import { driveSession, type FrameTransport } from '../../src/core/session-driver.js';
import { FrameType, decodeFrame, encodeFrame, type SubtreeRef } from '../../src/core/sync-frames.js';
import { SyncInitiator, SyncResponder, coverOf } from '../../src/core/sync-session.js';
import { keyHash } from '../../src/core/entry.js';
import { allEntries, memoryReplica, syncPair, value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';

function treeWith(keys: number, depth = 3): MerkleTree {
  const tree = new MerkleTree(depth);
  for (let i = 0; i < keys; i++) {
    const digest = keyHash(`d${i}`);
    tree.update(keyHash(`k${i}`), undefined, digest);
  }
  return tree;
}

function within(ref: SubtreeRef, range: SubtreeRef): boolean {
  return ref.level >= range.level && Math.floor(ref.index / 16 ** (ref.level - range.level)) === range.index;
}

describe('coverOf: the ranges read for many subtrees', () => {
  it('covers every ref once, in hash order, without overlap, whatever the seek cost', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3000 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.nat()), { maxLength: 200 }),
        fc.integer({ min: 0, max: 500 }),
        (keys, raw, seekCost) => {
          const tree = treeWith(keys);
          const refs = raw.map(([level, n]) => ({ level, index: n % 16 ** level }));
          const cover = coverOf(tree, refs, seekCost);
          for (const ref of refs) assert.ok(cover.some((range) => within(ref, range)), `ref ${ref.level}/${ref.index} not covered`);
          // Each range is a ref or an ancestor of one, and the prefixes are sorted and disjoint.
          for (const range of cover) assert.ok(refs.some((ref) => within(ref, range)), 'a range with no ref under it');
          const prefixes = cover.map((range) => MerkleTree.hashPrefix(range.level, range.index));
          for (let i = 1; i < prefixes.length; i++) {
            assert.ok(prefixes[i - 1]! < prefixes[i]!, `prefixes out of order: ${prefixes[i - 1]} ${prefixes[i]}`);
            assert.ok(!prefixes[i]!.startsWith(prefixes[i - 1]!), `prefixes overlap: ${prefixes[i - 1]} ${prefixes[i]}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads a dense set of leaves as a few wide ranges, a sparse one leaf by leaf', () => {
    const tree = treeWith(4000);
    const all = Array.from({ length: 16 ** 3 }, (_, index) => ({ level: 3, index }));
    const dense = all.filter((ref) => ref.index % 3 === 0);
    assert.ok(coverOf(tree, dense, 64).length <= 16, 'dense leaves read as level-1 ranges');
    const sparse = [{ level: 3, index: 5 }, { level: 3, index: 2000 }];
    assert.deepEqual(coverOf(tree, sparse, 64), sparse);
    assert.deepEqual(coverOf(tree, dense.slice(0, 20), 0), dense.slice(0, 20), 'free seeks never widen');
  });
});

describe('a large catch-up session', () => {
  it('a replica that missed many writes over most leaves catches up in one session, each entry once', async () => {
    const clock = { ms: 1_700_000_000_000 };
    const behind = await memoryReplica(nodeA, clock);
    const ahead = await memoryReplica(nodeB, clock);
    const base: Entry[] = [];
    for (let i = 0; i < 3000; i++) {
      const version = await ahead.put(`base-${i}`, value(`v${i}`));
      base.push({ key: `base-${i}`, value: value(`v${i}`), version });
    }
    await behind.applyRemote(base);
    // Missed: 6,000 new keys (most of the 4,096 leaves differ) and 500 updates; the one
    // behind also wrote 200 keys of its own and updated 100 base keys later than the other.
    for (let i = 0; i < 6000; i++) await ahead.put(`new-${i}`, value(`n${i}`));
    for (let i = 0; i < 500; i++) await ahead.put(`base-${i}`, value(`u${i}`));
    clock.ms += 10;
    for (let i = 0; i < 200; i++) await behind.put(`own-${i}`, value(`o${i}`));
    for (let i = 2000; i < 2100; i++) await behind.put(`base-${i}`, value(`b${i}`));
    const result = await syncPair(behind, ahead);
    assert.equal(result.initiator.outcome, 'synced');
    assert.ok(sameRoot(behind, ahead), 'roots differ after one session');
    assert.deepEqual(await allEntries(behind), await allEntries(ahead));
    assert.equal(result.initiator.entriesReceived, 6500, 'every missed entry once');
    assert.equal(result.initiator.entriesSent, 300, 'every entry the other lacked once');
  });

  it('a hostile Step pulling overlapping subtrees and summarized leaves gets each entry once, and a valid reply', async () => {
    const responder = await memoryReplica(nodeB);
    for (let i = 0; i < 500; i++) await responder.put(`k${i}`, value(`v${i}`));
    const machine = new SyncResponder(responder.syncContext({ cluster: 'test' }));
    const initiatorSide = await memoryReplica(nodeA);
    await initiatorSide.put('mine', value('m'));
    const hello = new SyncInitiator(initiatorSide.syncContext({ cluster: 'test' }), 7).start();
    const helloFrame = (await hello.next()).value as { kind: 'send'; frame: Uint8Array };
    for await (const effect of machine.handle(helloFrame.frame)) assert.equal(effect.kind, 'send');
    const depth = responder.depth;
    const step = encodeFrame({
      type: FrameType.step,
      level: 1,
      descend: [],
      pull: [{ level: 1, index: 3 }, { level: 2, index: 3 * 16 + 1 }, { level: 1, index: 3 }, { level: depth, index: 3 * 16 ** (depth - 1) }],
      summaries: [{ leaf: 3 * 16 ** (depth - 1), items: [{ keyFingerprint: 1, version: { hlc: 1n, node: nodeA } }] }],
    });
    const sent = new Map<string, number>();
    let children = 0;
    for await (const effect of machine.handle(step)) {
      assert.equal(effect.kind, 'send');
      const frame = decodeFrame((effect as { frame: Uint8Array }).frame, 4, 1024);
      if (frame.type === FrameType.children) children++;
      if (frame.type === FrameType.entries) for (const entry of frame.entries) sent.set(entry.key, (sent.get(entry.key) ?? 0) + 1);
    }
    assert.equal(children, 1, 'the round ends with one Children frame');
    const expected = new Set<string>();
    for await (const entry of responder.scanHash('3')) expected.add(entry.key);
    assert.ok(expected.size > 0);
    assert.deepEqual(new Set(sent.keys()), expected, 'exactly the entries under the pulled subtree');
    for (const [key, times] of sent) assert.equal(times, 1, `${key} sent ${times} times`);
  });
});

/** A transport fed from a script of frames; records what is sent. */
function scripted(frames: Uint8Array[]): FrameTransport & { sent: Uint8Array[] } {
  const queue = [...frames];
  const sent: Uint8Array[] = [];
  return {
    sent,
    send: (frame) => void sent.push(frame),
    receive: () => Promise.resolve(queue.shift()),
    close: () => undefined,
  };
}

function entriesFrame(from: number, count: number, valueBytes: number): Uint8Array {
  const entries: Entry[] = [];
  for (let i = from; i < from + count; i++) {
    entries.push({ key: `p${i}`, value: new Uint8Array(valueBytes), version: { hlc: BigInt(i + 1) << 16n, node: nodeA } });
  }
  return encodeFrame({ type: FrameType.entries, entries });
}

describe('the session driver applies entries pipelined', () => {
  it('starts consecutive applies without waiting, within the byte bound, and settles them before the next frame of another type', async () => {
    const responder = await memoryReplica(nodeB);
    const machine = new SyncResponder(responder.syncContext({ cluster: 'test' }));
    const initiatorSide = await memoryReplica(nodeA);
    await initiatorSide.put('x', value('x'));
    const hello = (await new SyncInitiator(initiatorSide.syncContext({ cluster: 'test' }), 9).start().next()).value as { frame: Uint8Array };
    const valueBytes = 64 * 1024;
    const perFrame = 4;
    const frames = [hello.frame];
    for (let f = 0; f < 12; f++) frames.push(entriesFrame(f * perFrame, perFrame, valueBytes));
    frames.push(encodeFrame({ type: FrameType.bye }));
    const transport = scripted(frames);
    let inFlightBytes = 0;
    let inFlightBytesMax = 0;
    let inFlightMax = 0;
    let inFlight = 0;
    const release: (() => void)[] = [];
    let applied = 0;
    const resultPromise = driveSession(machine, transport, {
      apply: async (entries) => {
        const bytes = entries.entries().reduce((sum, e) => sum + e.key.length + (e.value?.byteLength ?? 0), 0);
        inFlight++;
        inFlightBytes += bytes;
        inFlightMax = Math.max(inFlightMax, inFlight);
        inFlightBytesMax = Math.max(inFlightBytesMax, inFlightBytes);
        await new Promise<void>((resolve) => release.push(resolve));
        await responder.applyReceived(entries);
        applied += entries.length;
        inFlight--;
        inFlightBytes -= bytes;
      },
    });
    // Release applies slowly, oldest first, until the session ends.
    let settled = false;
    void resultPromise.finally(() => (settled = true));
    while (!settled) {
      await new Promise((resolve) => setImmediate(resolve));
      release.shift()?.();
    }
    const result = await resultPromise;
    assert.equal(result.outcome, 'synced');
    assert.equal(applied, 12 * perFrame, 'every entry applied before the result');
    assert.ok(inFlightMax > 1, 'applies overlapped');
    assert.ok(inFlightBytesMax <= syncApplyBytesInFlightMax, `${inFlightBytesMax} bytes in flight`);
  });

  it('a failed apply fails the session', async () => {
    const responder = await memoryReplica(nodeB);
    const machine = new SyncResponder(responder.syncContext({ cluster: 'test' }));
    const initiatorSide = await memoryReplica(nodeA);
    await initiatorSide.put('x', value('x'));
    const hello = (await new SyncInitiator(initiatorSide.syncContext({ cluster: 'test' }), 9).start().next()).value as { frame: Uint8Array };
    const transport = scripted([hello.frame, entriesFrame(0, 2, 10), entriesFrame(2, 2, 10), encodeFrame({ type: FrameType.bye })]);
    let calls = 0;
    await assert.rejects(
      driveSession(machine, transport, {
        apply: async () => {
          calls++;
          if (calls === 1) throw new Error('disk full');
        },
      }),
      /disk full/,
    );
  });
});
