import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeIdFrom } from '../../src/core/entry.js';
import { utf8 } from '../../src/core/bytes.js';
import { bitmapHas, bitmapPartitions } from '../../src/core/layout.js';
import { LayoutHistory } from '../../src/core/layout-history.js';
import { LayoutOwnership, acksNeeded, quorumMet } from '../../src/core/ownership.js';
import { partitionCount } from '../../src/core/placement.js';
import { RendezvousPlacement } from '../../src/core/rendezvous.js';

const ids = (count: number, from = 0): string[] => Array.from({ length: count }, (_, i) => nodeIdFrom(utf8(`node-${from + i}`)));
const placement = new RendezvousPlacement();

function settle(histories: LayoutHistory[]): void {
  for (let round = 0; round < 10; round++) {
    for (const from of histories) {
      for (const to of histories) {
        if (to === from) continue;
        to.receiveLayouts(from.active());
        for (const ack of from.ownAcks()) to.receiveAck(from.self, ack);
      }
    }
  }
}

/** Every node acknowledges every partition it may (the pulls done). */
function syncEverything(histories: LayoutHistory[]): void {
  for (let round = 0; round < 3; round++) {
    for (const h of histories) {
      for (const layout of h.active().slice(1)) if (h.syncMayStart(layout.version)) h.acknowledge(layout.version, h.unsyncedPartitions(layout.version));
    }
    settle(histories);
  }
}

/** `total` nodes' histories, the first `members` of them in layout v1 with K = 3 (settled among them), and a view over each. */
function clusterOf(total: number, members: number): { nodes: string[]; histories: LayoutHistory[]; views: LayoutOwnership[] } {
  const nodes = ids(total);
  const histories = nodes.map((self) => new LayoutHistory({ self, placement }));
  for (const nodeId of nodes.slice(0, members)) histories[0]!.stageAdd(nodeId);
  histories[0]!.stageReplicas(3);
  histories[0]!.commit();
  settle(histories.slice(0, members));
  return { nodes, histories, views: histories.map((h) => new LayoutOwnership(h)) };
}

describe('ownership', () => {
  it('acks needed: one, a majority, all; zero owners need none', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => acksNeeded('quorum', n)), [1, 2, 2, 3, 3]);
    assert.equal(acksNeeded('one', 3), 1);
    assert.equal(acksNeeded('all', 3), 3);
    assert.equal(acksNeeded('all', 0), 0);
  });

  it('a quorum must be met in every active layout', () => {
    const sets = [['a', 'b', 'c'], ['b', 'c', 'd']];
    assert.ok(quorumMet(sets, new Set(['b', 'c']), 'quorum'));
    assert.ok(!quorumMet(sets, new Set(['a', 'b']), 'quorum'));
    assert.ok(quorumMet(sets, new Set(['b']), 'one'));
    assert.ok(!quorumMet(sets, new Set(['a', 'b', 'c']), 'all'));
  });

  it('K = 3 of 5: holds, shares and pulls follow the layouts; a joiner pulls only what it gains, from the old owners', () => {
    const { nodes, histories, views } = clusterOf(6, 5);
    const a = views[0]!;
    assert.ok(a.ready());
    let held = 0;
    for (let p = 0; p < partitionCount; p++) {
      assert.equal(a.writeOwners(p).length, 3);
      assert.equal(a.holds(p), a.writeOwners(p).includes(a.self));
      if (a.holds(p)) held++;
    }
    assert.equal(bitmapPartitions(a.heldPartitions()).length, held);
    const shared = a.sharedPartitions(nodes[1]!);
    for (const p of bitmapPartitions(shared)) assert.ok(a.writeOwners(p).includes(nodes[1]!));
    assert.deepEqual(a.pulls(), []);

    // Node 5 joins: v2 active beside v1.
    histories[5]!.receiveLayouts(histories[0]!.active());
    histories[0]!.stageAdd(nodes[5]!);
    histories[0]!.commit();
    settle(histories);
    const joiner = views[5]!;
    const pulls = joiner.pulls();
    assert.ok(pulls.length > 0);
    for (const pull of pulls) {
      assert.equal(pull.version, 2);
      assert.deepEqual(pull.sources, [...placement.ownersOf(pull.partition, histories[0]!.active()[0]!)].sort());
      assert.equal(joiner.writeSets(pull.partition).length, 2);
      assert.deepEqual(pull.departed, []);
    }
    // Continuing owners pull nothing from anyone.
    for (const pull of views[0]!.pulls()) assert.deepEqual(pull.sources, []);
    let changes = 0;
    const tracked = new LayoutOwnership(histories[5]!, { onChange: () => changes++ });
    tracked.pulled(2, pulls.map((p) => p.partition));
    assert.equal(changes, 1);
    assert.deepEqual(tracked.pulls(), []);
    assert.ok(bitmapHas(histories[5]!.ackOf(2, nodes[5]!)!.partitions, pulls[0]!.partition));

    // Node 4 is removed (dead): the new owners of its partitions pull from the other old owners
    // and see node 4 as departed.
    for (const h of histories) h.receiveLayouts([]);
    syncEverything(histories);
    settle(histories);
    assert.equal(histories[0]!.active().length, 1);
    histories[0]!.stageRemove(nodes[4]!);
    histories[0]!.commit();
    settle(histories);
    let departedSeen = 0;
    for (const view of views) {
      for (const pull of view.pulls()) {
        if (pull.sources.includes(nodes[4]!)) {
          assert.deepEqual(pull.departed, [nodes[4]!]);
          departedSeen++;
        } else assert.deepEqual(pull.departed, []);
      }
    }
    assert.ok(departedSeen > 0);
  });

  it('gaining: a joiner gains exactly what it pulls until it acks; periodic sessions leave those partitions alone on both sides', () => {
    const { nodes, histories, views } = clusterOf(6, 5);
    // One layout: nobody gains anything, settled sharing is sharing.
    for (const view of views.slice(0, 5)) assert.deepEqual(bitmapPartitions(view.gaining(view.self)), []);
    assert.deepEqual(views[0]!.settledSharedPartitions(nodes[1]!), views[0]!.sharedPartitions(nodes[1]!));

    histories[5]!.receiveLayouts(histories[0]!.active());
    histories[0]!.stageAdd(nodes[5]!);
    histories[0]!.commit();
    settle(histories);
    const joiner = views[5]!;
    const pulled = joiner.pulls().map((pull) => pull.partition).sort((x, y) => x - y);
    assert.ok(pulled.length > 0);
    // The joiner's own view and an old owner's view (from gossiped acks) agree on what it gains.
    assert.deepEqual(bitmapPartitions(joiner.gaining(joiner.self)), pulled);
    assert.deepEqual(bitmapPartitions(views[0]!.gaining(nodes[5]!)), pulled);
    for (const view of views.slice(0, 5)) assert.deepEqual(bitmapPartitions(view.gaining(view.self)), [], 'old owners gain nothing in a join');
    for (const [i, view] of views.slice(0, 5).entries()) {
      // Neither side syncs a partition the joiner is gaining with the other periodically.
      const fromOld = bitmapPartitions(view.settledSharedPartitions(nodes[5]!));
      const fromJoiner = bitmapPartitions(joiner.settledSharedPartitions(nodes[i]!));
      assert.deepEqual(fromOld, fromJoiner);
      for (const p of fromOld) assert.ok(!pulled.includes(p));
      // Between old owners nothing changes.
      const other = nodes[(i + 1) % 5]!;
      assert.deepEqual(view.settledSharedPartitions(other), view.sharedPartitions(other));
    }
    // Half acknowledged: the rest is still gained, the acked half is shared again.
    const half = pulled.slice(0, Math.floor(pulled.length / 2));
    joiner.pulled(2, half);
    settle(histories);
    assert.deepEqual(bitmapPartitions(views[0]!.gaining(nodes[5]!)), pulled.slice(half.length));
    const sharedAgain = bitmapPartitions(joiner.settledSharedPartitions(nodes[0]!));
    for (const p of half) assert.equal(sharedAgain.includes(p), joiner.writeOwners(p).includes(nodes[0]!));
    joiner.pulled(2, pulled.slice(half.length));
    settle(histories);
    assert.deepEqual(bitmapPartitions(joiner.gaining(joiner.self)), []);
  });

  it('awaitingAcks: a change waits for each node of the new layout to know it; a dead node holds it until a newer layout removes it', () => {
    const { nodes, histories, views } = clusterOf(5, 4);
    for (const view of views.slice(0, 4)) assert.deepEqual(view.awaitingAcks(), [], 'one layout: no change, nothing awaited');

    // Node 4 joins (v2), but node 3 is down: it never hears v2.
    const up = histories.filter((_, i) => i !== 3);
    histories[4]!.receiveLayouts(histories[0]!.active());
    histories[0]!.stageAdd(nodes[4]!);
    histories[0]!.commit();
    settle(up);
    const joiner = views[4]!;
    for (const i of [0, 1, 2, 4]) assert.deepEqual(views[i]!.awaitingAcks(), [nodes[3]!], `node ${i} waits for node 3 alone`);
    assert.deepEqual(joiner.pulls(), [], 'no sync of v2 before every node of it knows it');

    // An operator removes dead node 3 (v3): v2 still waits for it, but v3 does not, so nothing
    // is awaited and the joiner pulls (for v3).
    histories[0]!.stageRemove(nodes[3]!);
    histories[0]!.commit();
    settle(up);
    for (const i of [0, 1, 2, 4]) assert.deepEqual(views[i]!.awaitingAcks(), [], `node ${i} awaits nobody once node 3 is removed`);
    assert.ok(!histories[0]!.syncMayStart(2), 'v2 itself still waits');
    assert.ok(joiner.pulls().length > 0 && joiner.pulls().every((pull) => pull.version === 3));
    // Once v3 is synced it retires v1 and v2 with it (v2 never started its sync): v3 alone is left.
    syncEverything(up);
    for (const i of [0, 1, 2, 4]) assert.deepEqual(histories[i]!.active().map((layout) => layout.version), [3]);
  });
});
