/**
 * The layout runtime's bytes (src/core/layout-wire.ts) and its automatic-join decisions
 * (src/core/layout-join.ts): envelopes and snapshots round-trip, every cut and every flipped
 * byte of a sample is refused or decodes to something well-formed (never a crash), a restored
 * history equals the one snapshotted; the coordinator and the joins it commits.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeIdFrom } from '../../src/core/entry.js';
import { utf8 } from '../../src/core/bytes.js';
import { MalformedError } from '../../src/core/errors.js';
import { clusterLayoutOf, partitionBitmap } from '../../src/core/layout.js';
import { LayoutHistory } from '../../src/core/layout-history.js';
import { coordinatorOf, joinsToCommit, shouldBootstrap } from '../../src/core/layout-join.js';
import {
  decodeLayoutEnvelope,
  decodeLayoutSnapshot,
  encodeLayoutEnvelope,
  encodeLayoutSnapshot,
  layoutSignedBytes,
  layoutSignatureDomain,
  type LayoutEnvelope,
} from '../../src/core/layout-wire.js';

const ids = (count: number, from = 0): string[] => Array.from({ length: count }, (_, i) => nodeIdFrom(utf8(`node-${from + i}`))).sort();
const members = (nodes: string[], weight = 1) => nodes.map((nodeId) => ({ nodeId, weight }));

function sampleEnvelope(): LayoutEnvelope {
  const nodes = ids(4);
  const a = clusterLayoutOf(1, members(nodes), 2);
  const b = clusterLayoutOf(2, [...members(nodes.slice(1)), { nodeId: ids(1, 9)[0]!, weight: 0 }], 2);
  return {
    seq: 1_764_000_000_000,
    parts: [
      { kind: 'message', message: { type: 'layouts', layouts: [a, b] } },
      { kind: 'message', message: { type: 'ack', ack: { nodeId: nodes[0]!, version: 2, digest: b.digest, partitions: partitionBitmap([1, 200]), switched: false } } },
      { kind: 'join', join: { nodeId: nodes[3]!, weight: 5, replicas: 2 } },
      { kind: 'sizes', sizes: { nodeId: nodes[1]!, partitions: [{ partition: 0, keys: 3, bytes: 300 }, { partition: 7, keys: 1, bytes: 0 }, { partition: 255, keys: 200_000, bytes: 2 ** 40 }] } },
    ],
  };
}

/** Decoding either throws MalformedError or returns a value: never anything else. */
function decodesOrRefuses(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): void {
  try {
    decode(bytes);
  } catch (error) {
    assert.ok(error instanceof MalformedError, `${String(error)}`);
  }
}

describe('layout envelopes and snapshots', () => {
  it('round-trip an envelope; refuse every cut; survive every flipped byte and random bytes', () => {
    const envelope = sampleEnvelope();
    const bytes = encodeLayoutEnvelope(envelope);
    assert.deepEqual(decodeLayoutEnvelope(bytes), envelope);
    for (let cut = 0; cut < bytes.byteLength; cut++) {
      assert.throws(() => decodeLayoutEnvelope(bytes.subarray(0, cut)), MalformedError, `cut at ${cut}`);
    }
    assert.throws(() => decodeLayoutEnvelope(Uint8Array.from([...bytes, 0])), MalformedError, 'trailing byte');
    for (let i = 0; i < bytes.byteLength; i++) {
      for (const flip of [1, 0x80, 0xff]) {
        const copy = bytes.slice();
        copy[i]! ^= flip;
        decodesOrRefuses(decodeLayoutEnvelope, copy);
      }
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (random) => decodesOrRefuses(decodeLayoutEnvelope, random)));
    assert.throws(() => decodeLayoutEnvelope(Uint8Array.from([1, 1, 0])), MalformedError, 'no part');
    assert.throws(() => decodeLayoutEnvelope(Uint8Array.from([2, 1, 1, 1, 0])), MalformedError, 'unknown version');
    assert.throws(() => decodeLayoutEnvelope(Uint8Array.from([1, 1, 1, 9, 0])), MalformedError, 'unknown part kind');
    // Sizes: partitions out of order, and past partitionCount.
    const sizesOf = (body: number[]) => Uint8Array.from([1, 1, 1, 3, body.length, ...body]);
    const id = [...Buffer.from(ids(1)[0]!, 'latin1')];
    assert.throws(() => decodeLayoutEnvelope(sizesOf([16, ...id, 2, 5, 1, 1, 5, 1, 1])), /ascending partition order/);
    assert.throws(() => decodeLayoutEnvelope(sizesOf([16, ...id, 0x81, 0x02])), /partition sizes is 257/);
    assert.deepEqual(decodeLayoutEnvelope(sizesOf([16, ...id, 1, 5, 1, 1])).parts, [{ kind: 'sizes', sizes: { nodeId: ids(1)[0]!, partitions: [{ partition: 5, keys: 1, bytes: 1 }] } }]);
  });

  it('signs the body behind a domain prefix', () => {
    const body = encodeLayoutEnvelope(sampleEnvelope());
    const signed = layoutSignedBytes(body);
    assert.deepEqual(signed.subarray(0, layoutSignatureDomain.byteLength), layoutSignatureDomain);
    assert.deepEqual(signed.subarray(layoutSignatureDomain.byteLength), body);
  });

  it('a restored snapshot is the history that was snapshotted (layouts, acks, conflicts)', () => {
    const nodes = ids(3);
    const history = new LayoutHistory({ self: nodes[0]! });
    history.stageAdd(nodes[0]!);
    history.stageReplicas(2);
    history.commit();
    // Another node committed version 2 at the same time: a conflict.
    const other = new LayoutHistory({ self: nodes[1]! });
    other.receiveLayouts(history.active());
    other.stageAdd(nodes[1]!);
    const theirs = other.commit().layout;
    history.stageAdd(nodes[2]!);
    history.commit();
    history.receiveLayouts([theirs]);
    history.receiveAck(nodes[1]!, other.ownAcks().at(-1)!);
    assert.equal(history.conflicts().length, 1);
    const bytes = encodeLayoutSnapshot(history.snapshot());
    const restored = LayoutHistory.restore({ self: nodes[0]! }, decodeLayoutSnapshot(bytes));
    assert.deepEqual(restored.snapshot(), history.snapshot());
    assert.deepEqual(encodeLayoutSnapshot(restored.snapshot()), bytes);
    for (let cut = 0; cut < bytes.byteLength; cut++) assert.throws(() => decodeLayoutSnapshot(bytes.subarray(0, cut)), MalformedError);
    // The empty history too.
    const empty = new LayoutHistory({ self: nodes[0]! });
    assert.deepEqual(decodeLayoutSnapshot(encodeLayoutSnapshot(empty.snapshot())), empty.snapshot());
  });

  it('keeps staged changes in the snapshot; every cut refused, every flipped byte decodes or refuses; version 1 still read', () => {
    const nodes = ids(4);
    const history = new LayoutHistory({ self: nodes[0]! });
    history.stageAdd(nodes[0]!);
    history.stageAdd(nodes[1]!);
    history.commit();
    history.stageAdd(nodes[3]!, 7);
    history.stageAdd(nodes[2]!, 0);
    history.stageRemove(nodes[1]!);
    history.stageReplicas(2);
    const bytes = encodeLayoutSnapshot(history.snapshot());
    const restored = LayoutHistory.restore({ self: nodes[0]! }, decodeLayoutSnapshot(bytes));
    assert.deepEqual(restored.staged(), history.staged());
    assert.deepEqual(restored.preview(), history.preview());
    for (let cut = 0; cut < bytes.byteLength; cut++) assert.throws(() => decodeLayoutSnapshot(bytes.subarray(0, cut)), MalformedError, `cut at ${cut}`);
    assert.throws(() => decodeLayoutSnapshot(Uint8Array.from([...bytes, 0])), MalformedError, 'trailing byte');
    for (let i = 0; i < bytes.byteLength; i++) {
      for (const flip of [1, 0x80, 0xff]) {
        const copy = bytes.slice();
        copy[i]! ^= flip;
        decodesOrRefuses(decodeLayoutSnapshot, copy);
      }
    }
    // 'all' staged, and nothing staged.
    history.stageReplicas(undefined);
    assert.equal(decodeLayoutSnapshot(encodeLayoutSnapshot(history.snapshot())).staged?.replicas, 'all');
    history.revert();
    const none = decodeLayoutSnapshot(encodeLayoutSnapshot(history.snapshot())).staged;
    assert.equal(none?.members.size, 0);
    assert.equal(none?.replicas, undefined);
    // A version 1 snapshot (written before staged changes were kept): the same without the staged part.
    const v2 = encodeLayoutSnapshot(history.snapshot());
    const v1 = Uint8Array.from([1, ...v2.subarray(1, v2.byteLength - 2)]);
    const old = decodeLayoutSnapshot(v1);
    assert.equal(old.staged, undefined);
    assert.deepEqual(old.layouts, history.active());
    assert.throws(() => decodeLayoutSnapshot(Uint8Array.from([3, ...v2.subarray(1)])), MalformedError, 'unknown version');
  });
});

describe('automatic joins', () => {
  const [n0, n1, n2, n3] = ids(4);
  const layout = clusterLayoutOf(3, [{ nodeId: n1!, weight: 1 }, { nodeId: n2!, weight: 1 }, { nodeId: n0!, weight: 0 }], 2);

  it('the coordinator is the smallest up node id of the newest layout with weight > 0', () => {
    assert.equal(coordinatorOf(layout, [n0!, n1!, n2!, n3!]), n1, 'n0 is a gateway, n3 not a member');
    assert.equal(coordinatorOf(layout, [n2!, n3!]), n2, 'n1 down');
    assert.equal(coordinatorOf(layout, [n0!, n3!]), undefined, 'no owner up');
    assert.equal(coordinatorOf(undefined, [n0!]), undefined, 'no layout');
  });

  it('joins up requesters that agree on K and are not members, sorted', () => {
    const requests = [
      { nodeId: n3!, weight: 2, replicas: 2 },
      { nodeId: n2!, weight: 1, replicas: 2 }, // already a member
      { nodeId: ids(1, 20)[0]!, weight: 1, replicas: 3 }, // another K
      { nodeId: ids(1, 21)[0]!, weight: 1, replicas: 2 }, // not up
    ];
    const up = new Set([n0!, n1!, n2!, n3!, ids(1, 20)[0]!]);
    assert.deepEqual(joinsToCommit(layout, requests, up), [{ nodeId: n3!, weight: 2 }]);
  });

  it('does not join a removed node back (an operator re-adds it)', () => {
    const removed = clusterLayoutOf(4, [{ nodeId: n1!, weight: 1 }, { nodeId: n2!, weight: 1 }], 2, [{ nodeId: n3!, at: 4 }]);
    const up = new Set([n0!, n1!, n2!, n3!]);
    const requests = [
      { nodeId: n3!, weight: 1, replicas: 2 },
      { nodeId: n0!, weight: 1, replicas: 2 },
    ];
    assert.deepEqual(joinsToCommit(removed, requests, up), [{ nodeId: n0!, weight: 1 }]);
  });

  it('a layout records removals (not a hand-off), carries them on, and an add lifts one', () => {
    const history = new LayoutHistory({ self: n0! });
    for (const n of [n0!, n1!, n2!, n3!]) history.stageAdd(n);
    history.commit();
    history.stageRemove(n2!);
    history.stageRemove(n3!, false); // n3 hands off (node leave): not recorded
    const v2 = history.commit().layout;
    assert.deepEqual(v2.removed, [{ nodeId: n2!, at: 2 }]);
    history.stageReplicas(1);
    assert.deepEqual(history.commit().layout.removed, [{ nodeId: n2!, at: 2 }], 'carried into later layouts');
    history.stageAdd(n2!, 3);
    const lifted = history.commit().layout;
    assert.deepEqual(lifted.removed, []);
    assert.equal(lifted.weights[n2!], 3);
    // A staged hand-off that is reverted and staged again as a removal is recorded.
    history.stageRemove(n1!, false);
    history.revert();
    history.stageRemove(n1!);
    assert.deepEqual(history.commit().layout.removed, [{ nodeId: n1!, at: 5 }]);
  });

  it('the first layout: made after the wait, by the smallest requester, never by a gateway or a --no-auto-join node', () => {
    const base = { self: n1!, hasLayout: false, autoJoin: true, weight: 1, replicas: 2, waited: true, requests: [] as { nodeId: string; weight: number; replicas: number | undefined }[], up: new Set<string>() };
    assert.equal(shouldBootstrap(base), true);
    assert.equal(shouldBootstrap({ ...base, waited: false }), false);
    assert.equal(shouldBootstrap({ ...base, hasLayout: true }), false);
    assert.equal(shouldBootstrap({ ...base, weight: 0 }), false);
    assert.equal(shouldBootstrap({ ...base, autoJoin: false }), false);
    const smaller = { nodeId: n0!, weight: 1, replicas: 2 };
    assert.equal(shouldBootstrap({ ...base, requests: [smaller], up: new Set([n0!]) }), false, 'n0 makes it');
    assert.equal(shouldBootstrap({ ...base, requests: [smaller], up: new Set() }), true, 'n0 is not up');
    assert.equal(shouldBootstrap({ ...base, requests: [{ ...smaller, weight: 0 }], up: new Set([n0!]) }), true, 'n0 is a gateway');
    assert.equal(shouldBootstrap({ ...base, requests: [{ ...smaller, replicas: 3 }], up: new Set([n0!]) }), true, 'n0 has another K');
  });
});
