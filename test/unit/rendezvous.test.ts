import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeIdFrom } from '../../src/core/entry.js';
import { utf8 } from '../../src/core/bytes.js';
import { partitionCount, type Layout } from '../../src/core/placement.js';
import { RendezvousPlacement, hashUnit } from '../../src/core/rendezvous.js';

/** Deterministic node ids, as production makes them (SHA-256 of an identity). */
const ids = (count: number, from = 0): string[] => Array.from({ length: count }, (_, i) => nodeIdFrom(utf8(`node-${from + i}`)));

function layout(nodes: string[], replicas?: number, weights?: Record<string, number>): Layout {
  return { version: 1, nodes: [...nodes].sort(), ...(weights ? { weights } : {}), ...(replicas === undefined ? {} : { replicas }) };
}

/** Partition-replicas per node. */
function shares(placement: RendezvousPlacement, l: Layout): Map<string, number> {
  const counts = new Map<string, number>(l.nodes.map((n) => [n, 0]));
  for (const owners of placement.ownerTable(l)) for (const n of owners) counts.set(n, counts.get(n)! + 1);
  return counts;
}

/** Partition-replicas that changed owner from a to b: owners in b not in a, over all partitions. */
function moved(placement: RendezvousPlacement, a: Layout, b: Layout): number {
  let count = 0;
  for (let p = 0; p < partitionCount; p++) {
    const before = new Set(placement.ownersOf(p, a));
    for (const n of placement.ownersOf(p, b)) if (!before.has(n)) count++;
  }
  return count;
}

describe('RendezvousPlacement', () => {
  it('hash units are in (0, 1) and fixed across platforms (pinned values)', () => {
    for (let p = 0; p < partitionCount; p++) {
      const u = hashUnit(p, 'a');
      assert.ok(u > 0 && u < 1);
    }
    // Pinned: a change of hashing would move every partition of every cluster.
    assert.equal(hashUnit(0, '0000000000000000'), hashUnit(0, '0000000000000000'));
    assert.equal(hashUnit(7, 'abcdef0123456789').toString(), PINNED_UNIT);
  });

  it('is deterministic: the same owners from a fresh instance and any member order', () => {
    const nodes = ids(7);
    const a = new RendezvousPlacement().ownerTable(layout(nodes, 3));
    const b = new RendezvousPlacement().ownerTable(layout([...nodes].reverse(), 3));
    assert.deepEqual(a, b);
  });

  it('gives each partition K distinct owners, K capped by the nodes of weight > 0', () => {
    const placement = new RendezvousPlacement();
    for (const [n, k] of [[1, 3], [2, 3], [3, 3], [5, 3], [9, 3], [5, 1], [5, 5], [4, 7]] as const) {
      const l = layout(ids(n), k);
      for (let p = 0; p < partitionCount; p++) {
        const owners = placement.ownersOf(p, l);
        assert.equal(owners.length, Math.min(n, k));
        assert.equal(new Set(owners).size, owners.length);
      }
    }
    // No K: every node (full replication, by rendezvous order).
    assert.equal(placement.ownersOf(0, layout(ids(4))).length, 4);
    assert.throws(() => placement.ownersOf(256, layout(ids(3), 1)), /out of range/);
  });

  for (const [n, tolerance] of [[5, 0.15], [9, 0.25]] as const) {
    it(`balances K=3 over 256 partitions within ${tolerance * 100}% for N=${n}`, () => {
      const placement = new RendezvousPlacement();
      const counts = shares(placement, layout(ids(n), 3));
      const ideal = (partitionCount * 3) / n;
      for (const [node, count] of counts) {
        assert.ok(Math.abs(count - ideal) <= tolerance * ideal, `${node} owns ${count} partition-replicas; ideal ${ideal.toFixed(1)}`);
      }
    });
  }

  for (const n of [5, 9]) {
    it(`a join to N=${n} moves only to the joiner, about K/(N+1) of partition-replicas (<= 1.3x ideal)`, () => {
      const placement = new RendezvousPlacement();
      const before = layout(ids(n), 3);
      const joiner = ids(1, 100)[0]!;
      const after = layout([...before.nodes, joiner], 3);
      let count = 0;
      for (let p = 0; p < partitionCount; p++) {
        const a = placement.ownersOf(p, before);
        const b = placement.ownersOf(p, after);
        const gained = b.filter((x) => !a.includes(x));
        assert.ok(gained.every((x) => x === joiner), `partition ${p} gained ${gained.join(',')}, not only the joiner`);
        count += gained.length;
      }
      const ideal = (partitionCount * 3) / (n + 1);
      assert.equal(count, moved(placement, before, after));
      assert.ok(count <= 1.3 * ideal, `a join moved ${count} partition-replicas; ideal ${ideal.toFixed(1)}`);
      assert.ok(count >= 0.7 * ideal, `a join moved only ${count} partition-replicas; ideal ${ideal.toFixed(1)}`);
    });
  }

  it("a leave moves only the leaver's partitions, each to one new owner", () => {
    const placement = new RendezvousPlacement();
    const nodes = ids(7);
    const before = layout(nodes, 3);
    const leaver = nodes[3]!;
    const after = layout(nodes.filter((x) => x !== leaver), 3);
    let leaverPartitions = 0;
    for (let p = 0; p < partitionCount; p++) {
      const a = placement.ownersOf(p, before);
      const b = placement.ownersOf(p, after);
      if (a.includes(leaver)) {
        leaverPartitions++;
        assert.equal(b.filter((x) => !a.includes(x)).length, 1);
        assert.deepEqual(a.filter((x) => x !== leaver).every((x) => b.includes(x)), true);
      } else {
        assert.deepEqual(b, a, `partition ${p} changed though the leaver did not own it`);
      }
    }
    assert.equal(moved(placement, before, after), leaverPartitions);
  });

  it('weights skew ownership in proportion (K=1) and monotonically (K=3)', () => {
    const placement = new RendezvousPlacement();
    const nodes = ids(5);
    const weights = Object.fromEntries(nodes.map((x, i) => [x, [1, 1, 2, 2, 4][i]!]));
    const one = shares(placement, layout(nodes, 1, weights));
    for (const [node, count] of one) {
      const ideal = (partitionCount * weights[node]!) / 10;
      assert.ok(Math.abs(count - ideal) <= 0.35 * ideal + 4, `${node} (weight ${weights[node]}) owns ${count}; ideal ${ideal.toFixed(1)}`);
    }
    const three = shares(placement, layout(nodes, 3, weights));
    const byWeight = (w: number): number[] => nodes.filter((x) => weights[x] === w).map((x) => three.get(x)!);
    assert.ok(Math.min(...byWeight(4)) > Math.max(...byWeight(2)));
    assert.ok(Math.min(...byWeight(2)) > Math.max(...byWeight(1)));
    assert.ok(Math.max(...three.values()) <= partitionCount);
  });

  it('a gateway (weight 0) owns nothing and does not count toward K', () => {
    const placement = new RendezvousPlacement();
    const nodes = ids(4);
    const gateway = nodes[0]!;
    const l = layout(nodes, 3, { [gateway]: 0 });
    for (let p = 0; p < partitionCount; p++) {
      assert.ok(!placement.ownersOf(p, l).includes(gateway));
      assert.equal(placement.ownersOf(p, l).length, 3);
    }
    const small = layout(nodes.slice(0, 3), 3, { [gateway]: 0 });
    assert.equal(placement.ownersOf(0, small).length, 2);
  });
});

// Computed independently: Python, ((int.from_bytes(sha256(b'ckv/rendezvous/1 7 abcdef0123456789').digest()[:7], 'big') >> 3) + 0.5) / 2**53.
const PINNED_UNIT = '0.028841590175194665';
