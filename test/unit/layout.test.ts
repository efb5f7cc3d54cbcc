import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeIdFrom } from '../../src/core/entry.js';
import { utf8 } from '../../src/core/bytes.js';
import { MalformedError } from '../../src/core/errors.js';
import {
  LayoutChangeError,
  bitmapPartitions,
  clusterLayoutOf,
  decodeLayoutMessage,
  encodeLayoutMessage,
  partitionBitmap,
  replicasMismatch,
  type LayoutMessage,
} from '../../src/core/layout.js';
import { layoutMembersMax, layoutReplicasMax, layoutWeightMax } from '../../src/core/limits.js';

const ids = (count: number, from = 0): string[] => Array.from({ length: count }, (_, i) => nodeIdFrom(utf8(`node-${from + i}`)));
const members = (nodes: string[], weight = 1) => nodes.map((nodeId) => ({ nodeId, weight }));

const sample = (): LayoutMessage[] => {
  const nodes = ids(5);
  const a = clusterLayoutOf(3, members(nodes), 3);
  const b = clusterLayoutOf(4, [...members(nodes.slice(1)), { nodeId: ids(1, 50)[0]!, weight: 0 }, { nodeId: ids(1, 51)[0]!, weight: layoutWeightMax }]);
  const removed = ids(2, 60).map((nodeId, i) => ({ nodeId, at: 3 + i }));
  const c = clusterLayoutOf(5, members(nodes.slice(2)), 2, [...removed, { nodeId: nodes[0]!, at: 5 }]);
  return [
    { type: 'layouts', layouts: [a] },
    { type: 'layouts', layouts: [a, b] },
    { type: 'layouts', layouts: [a, b, c] },
    { type: 'ack', ack: { nodeId: nodes[0]!, version: 4, digest: b.digest, partitions: partitionBitmap([0, 7, 8, 255]), switched: false } },
    { type: 'ack', ack: { nodeId: nodes[1]!, version: 1, digest: a.digest, partitions: partitionBitmap([]), switched: true } },
  ];
};

describe('cluster layouts', () => {
  it('are canonical: member order does not matter; members, weights, K and version all change the digest', () => {
    const nodes = ids(4);
    const a = clusterLayoutOf(2, members(nodes), 3);
    const b = clusterLayoutOf(2, members([...nodes].reverse()), 3);
    assert.deepEqual(a, b);
    assert.deepEqual(a.nodes, [...nodes].sort());
    const others = [
      clusterLayoutOf(3, members(nodes), 3),
      clusterLayoutOf(2, members(nodes), 2),
      clusterLayoutOf(2, members(nodes)),
      clusterLayoutOf(2, members(nodes, 2), 3),
      clusterLayoutOf(2, members(nodes.slice(1)), 3),
    ];
    assert.equal(new Set([a, ...others].map((l) => l.digest)).size, 6);
    assert.equal(a.replicas, 3);
    assert.equal(clusterLayoutOf(2, members(nodes)).replicas, undefined);
  });

  it('refuse operator mistakes with a typed error', () => {
    const [x, y] = ids(2);
    const bad: [string, () => unknown][] = [
      ['version 0', () => clusterLayoutOf(0, members([x!]))],
      ['a node twice', () => clusterLayoutOf(1, [...members([x!]), { nodeId: x!, weight: 2 }])],
      ['not a node id', () => clusterLayoutOf(1, members(['nope']))],
      ['a negative weight', () => clusterLayoutOf(1, [{ nodeId: x!, weight: -1 }])],
      ['a fractional weight', () => clusterLayoutOf(1, [{ nodeId: x!, weight: 0.5 }])],
      ['a weight over the limit', () => clusterLayoutOf(1, [{ nodeId: x!, weight: layoutWeightMax + 1 }])],
      ['only gateways', () => clusterLayoutOf(1, [{ nodeId: x!, weight: 0 }, { nodeId: y!, weight: 0 }])],
      ['K = 0', () => clusterLayoutOf(1, members([x!]), 0)],
      ['K over the limit', () => clusterLayoutOf(1, members([x!]), layoutReplicasMax + 1)],
      ['too many nodes', () => clusterLayoutOf(1, members(ids(layoutMembersMax + 1)))],
    ];
    for (const [what, make] of bad) assert.throws(make, LayoutChangeError, what);
  });

  it('a node whose --replicas disagrees with its cluster says so', () => {
    const layout = clusterLayoutOf(1, members(ids(3)), 3);
    assert.equal(replicasMismatch(3, layout), undefined);
    assert.equal(replicasMismatch(2, undefined), undefined);
    const error = replicasMismatch(undefined, layout);
    assert.ok(error);
    assert.equal(error.code, 'ERR_REPLICAS_MISMATCH');
    assert.match(error.message, /--replicas all, but its cluster's layout has 3/);
    assert.match(replicasMismatch(2, clusterLayoutOf(1, members(ids(3))))!.message, /--replicas 2, but .* has all/);
  });

  it('encode and decode: every message round-trips', () => {
    for (const message of sample()) assert.deepEqual(decodeLayoutMessage(encodeLayoutMessage(message)), message);
    assert.deepEqual(bitmapPartitions(partitionBitmap([0, 7, 8, 255])), [0, 7, 8, 255]);
  });

  it('decode: every cut and every flipped byte is a MalformedError or a valid message, never a crash', () => {
    for (const message of sample()) {
      const bytes = encodeLayoutMessage(message);
      for (let cut = 0; cut < bytes.byteLength; cut++) assert.throws(() => decodeLayoutMessage(bytes.subarray(0, cut)), MalformedError);
      assert.throws(() => decodeLayoutMessage(Uint8Array.from([...bytes, 0])), MalformedError);
      for (let i = 0; i < bytes.byteLength; i++) {
        for (const flip of [0x01, 0x80, 0xff]) {
          const copy = bytes.slice();
          copy[i]! ^= flip;
          try {
            const decoded = decodeLayoutMessage(copy);
            // Whatever decodes re-encodes to the same bytes: the decoder only takes canonical input.
            assert.deepEqual(encodeLayoutMessage(decoded), copy);
          } catch (error) {
            assert.ok(error instanceof MalformedError, `byte ${i} ^ ${flip}: ${String(error)}`);
          }
        }
      }
    }
  });

  it('decode: random bytes are a MalformedError, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(1, 2), (body, type) => {
        for (const bytes of [body, Uint8Array.from([1, type, ...body])]) {
          try {
            decodeLayoutMessage(bytes);
          } catch (error) {
            assert.ok(error instanceof MalformedError, String(error));
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('decode: refuses unknown versions and types, unsorted or repeated members, and counts over the limits', () => {
    const nodes = ids(2).sort();
    const layout = clusterLayoutOf(1, members(nodes));
    const good = encodeLayoutMessage({ type: 'layouts', layouts: [layout] });
    assert.throws(() => decodeLayoutMessage(Uint8Array.from([3, ...good.subarray(1)])), /wire version 3/);
    assert.throws(() => decodeLayoutMessage(Uint8Array.from([1, 3, ...good.subarray(2)])), /unknown layout message type 3/);
    // Swap the two members: same bytes, out of order.
    const text = Buffer.from(good).toString('latin1');
    const swapped = text.replace(nodes[0]!, '#').replace(nodes[1]!, nodes[0]!).replace('#', nodes[1]!);
    assert.throws(() => decodeLayoutMessage(Uint8Array.from(Buffer.from(swapped, 'latin1'))), /ascending node id order/);
    const repeated = text.replace(nodes[1]!, nodes[0]!);
    assert.throws(() => decodeLayoutMessage(Uint8Array.from(Buffer.from(repeated, 'latin1'))), /ascending node id order/);
    // 17 layouts in one message, 2000 members in one layout.
    assert.throws(() => decodeLayoutMessage(Uint8Array.from([1, 1, 17])), /layouts in a message is 17/);
    assert.throws(() => decodeLayoutMessage(Uint8Array.from([1, 1, 1, 1, 0, 0xd0, 0x0f])), /layout members is 2000/);
    assert.throws(() => decodeLayoutMessage(Uint8Array.from([1, 1, 0])), /no layout/);
    // Two layouts of one version in one message.
    const twice = encodeLayoutMessage({ type: 'layouts', layouts: [layout] });
    const body = twice.subarray(3);
    assert.throws(() => decodeLayoutMessage(Uint8Array.from([twice[0]!, 1, 2, ...body, ...body])), /ascending version order/);
  });

  it('record removed nodes: canonical, in the digest, bounded and checked; version 1 bytes (no removed list) still decode', () => {
    const nodes = ids(4);
    const [x, y] = ids(2, 70);
    const plain = clusterLayoutOf(3, members(nodes), 2);
    const a = clusterLayoutOf(3, members(nodes), 2, [{ nodeId: y!, at: 2 }, { nodeId: x!, at: 3 }]);
    const b = clusterLayoutOf(3, members(nodes), 2, [{ nodeId: x!, at: 3 }, { nodeId: y!, at: 2 }]);
    assert.deepEqual(a, b, 'order does not matter');
    assert.deepEqual(a.removed.map((r) => r.nodeId), [x!, y!].sort());
    assert.notEqual(a.digest, plain.digest, 'the removed list is in the digest');
    assert.notEqual(clusterLayoutOf(3, members(nodes), 2, [{ nodeId: x!, at: 2 }]).digest, clusterLayoutOf(3, members(nodes), 2, [{ nodeId: x!, at: 3 }]).digest);
    assert.deepEqual(decodeLayoutMessage(encodeLayoutMessage({ type: 'layouts', layouts: [a] })), { type: 'layouts', layouts: [a] });
    assert.throws(() => clusterLayoutOf(3, members(nodes), 2, [{ nodeId: nodes[0]!, at: 2 }]), /both a member and removed/);
    assert.throws(() => clusterLayoutOf(3, members(nodes), 2, [{ nodeId: x!, at: 4 }]), /removed at version 4, not 1\.\.3/);
    assert.throws(() => clusterLayoutOf(3, members(nodes), 2, [{ nodeId: x!, at: 1 }, { nodeId: x!, at: 2 }]), /listed twice/);
    assert.throws(() => clusterLayoutOf(3, members(nodes), 2, [{ nodeId: 'nope', at: 1 }]), LayoutChangeError);

    // Version 1: the same layout without the removed count.
    const v2 = encodeLayoutMessage({ type: 'layouts', layouts: [plain] });
    assert.equal(v2[v2.byteLength - 1], 0, 'an empty removed list is its count, 0');
    const v1 = Uint8Array.from([1, ...v2.subarray(1, v2.byteLength - 1)]);
    assert.deepEqual(decodeLayoutMessage(v1), { type: 'layouts', layouts: [plain] });
    assert.throws(() => decodeLayoutMessage(Uint8Array.from([...v1, 0])), MalformedError, 'version 1 has no removed list');

    // Malformed removed lists: out of order, over the bound, at 0.
    const encoded = Buffer.from(encodeLayoutMessage({ type: 'layouts', layouts: [a] })).toString('latin1');
    const [first, second] = [x!, y!].sort();
    const swapped = encoded.replace(first!, '#').replace(second!, first!).replace('#', second!);
    assert.throws(() => decodeLayoutMessage(Uint8Array.from(Buffer.from(swapped, 'latin1'))), /removed nodes not in ascending node id order/);
    const over = Uint8Array.from([...v2.subarray(0, v2.byteLength - 1), 0x81, 0x08]);
    assert.throws(() => decodeLayoutMessage(over), /removed nodes is 1025/);
    const atZero = Uint8Array.from([...v2.subarray(0, v2.byteLength - 1), 1, 16, ...Buffer.from(x!, 'latin1'), 0]);
    assert.throws(() => decodeLayoutMessage(atZero), /layout version 0/);
  });
});
