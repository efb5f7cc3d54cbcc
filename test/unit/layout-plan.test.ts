import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeIdFrom } from '../../src/core/entry.js';
import { utf8 } from '../../src/core/bytes.js';
import { clusterLayoutOf } from '../../src/core/layout.js';
import { planOf, transfersOf } from '../../src/core/layout-plan.js';
import { partitionCount } from '../../src/core/placement.js';
import { RendezvousPlacement } from '../../src/core/rendezvous.js';

const ids = (count: number, from = 0): string[] => Array.from({ length: count }, (_, i) => nodeIdFrom(utf8(`node-${from + i}`)));
const members = (nodes: string[]) => nodes.map((nodeId) => ({ nodeId, weight: 1 }));
const placement = new RendezvousPlacement();
const bytes = Array.from({ length: partitionCount }, (_, p) => 1000 + p);
const keys = Array.from({ length: partitionCount }, (_, p) => 10 + (p % 7));

describe('planOf', () => {
  it('a join: only the joiner gains, each loss matches a gain, sizes add up', () => {
    const nodes = ids(5);
    const joiner = ids(1, 99)[0]!;
    const from = clusterLayoutOf(1, members(nodes), 3);
    const to = clusterLayoutOf(2, members([...nodes, joiner]), 3);
    const plan = planOf(placement, from, to, { bytes, keys });
    assert.equal(plan.fromVersion, 1);
    assert.equal(plan.toVersion, 2);
    assert.ok(plan.moves.length > 0);
    let expectBytes = 0;
    for (const move of plan.moves) {
      assert.deepEqual(move.gaining, [joiner]);
      assert.equal(move.losing.length, 1);
      assert.equal(move.bytes, bytes[move.partition]);
      expectBytes += move.bytes;
    }
    assert.equal(plan.totals.partitionsChanged, plan.moves.length);
    assert.equal(plan.totals.replicasMoved, plan.moves.length);
    assert.equal(plan.totals.bytesMoved, expectBytes);
    assert.equal(plan.totals.replicasAfter, partitionCount * 3);
    const joinerRow = plan.nodes.find((n) => n.nodeId === joiner)!;
    assert.equal(joinerRow.partitionsBefore, 0);
    assert.equal(joinerRow.partitionsGained, plan.moves.length);
    assert.equal(joinerRow.bytesIn, expectBytes);
    assert.equal(plan.nodes.reduce((sum, n) => sum + n.partitionsLost, 0), plan.moves.length);
    assert.equal(plan.nodes.reduce((sum, n) => sum + n.bytesOut, 0), expectBytes);
    assert.deepEqual(plan.nodes.map((n) => n.nodeId), [...nodes, joiner].sort());
    // Nothing changes: an empty plan.
    assert.equal(planOf(placement, to, clusterLayoutOf(3, members([...nodes, joiner]), 3)).moves.length, 0);

    // Per (owners before, gaining owner): every move counted once, sizes add up, largest first.
    const transfers = transfersOf(plan);
    assert.equal(transfers.reduce((sum, t) => sum + t.partitions, 0), plan.moves.length);
    assert.equal(transfers.reduce((sum, t) => sum + t.bytes, 0), expectBytes);
    assert.equal(transfers.reduce((sum, t) => sum + t.keys, 0), plan.totals.keysMoved);
    assert.ok(transfers.every((t) => t.to === joiner && t.from.length === 3));
    for (const t of transfers) {
      const moves = plan.moves.filter((m) => m.from.join() === t.from.join());
      assert.equal(moves.length, t.partitions);
      assert.equal(moves.reduce((sum, m) => sum + m.bytes, 0), t.bytes);
    }
    for (let i = 1; i < transfers.length; i++) assert.ok(transfers[i - 1]!.bytes >= transfers[i]!.bytes, 'largest first');
  });

  it('from nothing: every owner gains its partitions; a change of K moves the difference', () => {
    const nodes = ids(4);
    const first = clusterLayoutOf(1, members(nodes), 2);
    const plan = planOf(placement, undefined, first, { bytes });
    assert.equal(plan.fromVersion, undefined);
    assert.equal(plan.moves.length, partitionCount);
    assert.equal(plan.totals.replicasMoved, partitionCount * 2);
    assert.equal(plan.totals.keysMoved, 0);
    const wider = planOf(placement, first, clusterLayoutOf(2, members(nodes), 3));
    assert.equal(wider.totals.replicasMoved, partitionCount);
    for (const move of wider.moves) assert.equal(move.losing.length, 0);
  });
});
